// What takes an accepted item's data on the receiver, and the small pieces every kind shares.

import { hashHex } from '../hash.js';
import { RejectCode } from '../protocol/constants.js';
import type { CommitOutcome, ValidOffer } from '../protocol/receiver-machine.js';
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
  write(offset: number, payload: Buffer, truncate: boolean): Promise<void>;
  /** §7: verify, make durable, journal, place; only a 'confirmed' outcome may be confirmed. */
  commit(expected: bigint): Promise<CommitOutcome>;
  /** The connection is gone: keep what is durable for a resume, unless told to `discard` it. */
  abandon(discard?: boolean): Promise<void>;
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
