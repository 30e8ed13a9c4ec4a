// What takes an accepted item's data on the receiver, and the small pieces every kind shares.

import { hashHex } from '../hash.js';
import { isRetryableReject, RejectCode } from '../protocol/constants.js';
import type { Payload } from '../protocol/payload.js';
import type { CommitOutcome, OfferDecision, ValidOffer } from '../protocol/receiver-machine.js';
import type { ConfirmedRecord } from './journal.js';
import { PlacementRefused } from './placement.js';

/** Where an accepted item's data goes until it is committed. */
export interface ItemWriter {
  readonly name: string;
  readonly size: number;
  /** Called when another connection takes this transfer id over. */
  onTakeover: () => void;
  /** v3 streams: called once the bytes before `offset` are durable (or out on stdout). */
  onDurable: (offset: number) => void;
  write(offset: number, payload: Payload, truncate: boolean): Promise<void>;
  /** §7: verify, make durable, journal, place; only a 'confirmed' outcome may be confirmed. */
  commit(expected: bigint): Promise<CommitOutcome>;
  /**
   * v6 (§6.3): an eager item's one DATA, then its commit, where the writer does both as one
   * (a part file: in one job off the event loop's thread). Without it, writeAndCommit() below.
   */
  writeAndCommit?(payload: Payload, truncate: boolean, expected: bigint): Promise<CommitOutcome>;
  /** The connection is gone: keep what is durable for a resume, unless told to `discard` it. */
  abandon(discard?: boolean): Promise<void>;
}

export type OpenResult = { decision: OfferDecision; writer?: ItemWriter };

/** Where a receiver's items go: a directory or stdout (ReceiveStore), or an application's handler. */
export interface ItemSink {
  /** §6: the answer to an OFFER, with the writer that takes its data when accepted. */
  open(offer: ValidOffer, peer: string): Promise<OpenResult>;
  /** v4: the writer of a message, at once: its data follows without an ACCEPT (§4.12). */
  take(offer: ValidOffer, peer: string): ItemWriter;
  /** A shutdown's grace period is over: work that would hold the sessions open gives up now. */
  interrupt?(): void;
  close(): Promise<void>;
}

/** An item refused before its data came: the data is dropped as it arrives, and the END answered so. */
export class RefusingWriter implements ItemWriter {
  readonly name: string;
  readonly size: number;
  readonly #outcome: CommitOutcome;
  onTakeover: () => void = () => {};
  onDurable: (offset: number) => void = () => {};

  constructor(offer: ValidOffer, code: RejectCode, reason: string) {
    this.name = offer.name;
    this.size = offer.size;
    this.#outcome = { type: 'reject', code, reason };
  }

  async write(): Promise<void> {}

  async commit(): Promise<CommitOutcome> {
    return this.#outcome;
  }

  async abandon(): Promise<void> {}
}

/** A full disk is "no space" (not retryable); any other write failure may pass. */
export function ioRejectCode(err: unknown): RejectCode {
  if (err instanceof PlacementRefused) return err.rejectCode;
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? RejectCode.NoSpace : RejectCode.ReceiverIo;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function journalRecord(offer: ValidOffer, size: number, hash: bigint): ConfirmedRecord {
  return { id: offer.id.toString('hex'), size, hash: hashHex(hash), name: offer.name };
}

/**
 * v6 (§6.3): an eager item's one DATA, then its commit. All of its data is in, so a write that
 * fails refuses the item alone (the session goes on), freeing the partial when for good.
 */
export async function writeAndCommit(
  writer: ItemWriter,
  write: { payload: Payload; truncate: boolean },
  hash: bigint,
): Promise<CommitOutcome> {
  if (writer.writeAndCommit !== undefined) return writer.writeAndCommit(write.payload, write.truncate, hash);
  try {
    await writer.write(0, write.payload, write.truncate);
  } catch (err) {
    return writeRefused(writer, err);
  }
  return writer.commit(hash);
}

/** An item whose write failed: refused, and for good (its partial freed) when no retry can help. */
export async function writeRefused(writer: ItemWriter, err: unknown): Promise<CommitOutcome> {
  const code = ioRejectCode(err);
  await writer.abandon(!isRetryableReject(code));
  // A refusal of the name (other bytes under it) is no failure to write: it says so as it is.
  const reason =
    err instanceof PlacementRefused ? err.message : `receiver could not write the item: ${errorMessage(err)}`;
  return { type: 'reject', code, reason };
}
