// The sending end of one item on one connection as a state machine (PROTOCOL.md §6):
// it says which frame to send next and checks every answer against what was sent.
import { PeerError, ProtocolError } from '../errors.js';
import type { EndFrame, Frame, OfferFrame, TrailerFrame } from './codec.js';
import { ErrorCode, Kind, MAX_EAGER_SIZE } from './constants.js';

/** What a sender knows of an item before it offers it. */
export interface ItemHeader {
  id: Buffer;
  /** A file's length; for a stream, its length once a TRAILER declared it, else undefined. */
  size: number | undefined;
  name: string;
  mode?: number;
  mtimeMs?: number;
  /** v2: an empty directory, size 0. */
  directory?: boolean;
  /** v3: a stream of unknown length, sent as CHUNKs and ended by a TRAILER. */
  stream?: boolean;
  /** v4: only ask what the receiver would answer (a dry run); its answer settles the item. */
  query?: boolean;
}

export type SenderEvent =
  | { type: 'accepted'; offset: number; prefixHash: bigint }
  | { type: 'rejected'; code: number; reason: string }
  /** The receiver holds this item from an earlier attempt; the driver must check `hash` itself. */
  | { type: 'confirmed-earlier'; hash: bigint }
  | { type: 'confirmed'; hash: bigint }
  /** v3: the receiver holds the stream's bytes before `offset` durably. */
  | { type: 'acked'; offset: number }
  /** v6: the receiver held every byte of an eager item already; its CONFIRM follows. */
  | { type: 'held' };

type Phase = 'offered' | 'sending' | 'ended' | 'done';

export class SenderItem {
  readonly #slot: number;
  readonly #item: ItemHeader;
  #phase: Phase = 'offered';
  #size: number | undefined;
  #hash = 0n;
  #acked = 0;
  /** v6: sent eagerly (§6.3); `held` once the receiver said it had every byte already. */
  #eager: { held: boolean } | undefined;

  constructor(slot: number, item: ItemHeader) {
    this.#slot = slot;
    this.#item = item;
    this.#size = item.size;
  }

  get slot(): number {
    return this.#slot;
  }

  offer(): OfferFrame {
    const { id, mode, mtimeMs, stream } = this.#item;
    const frame: OfferFrame = {
      kind: Kind.Offer,
      slot: this.#slot,
      id,
      size: stream ? 0 : (this.#size ?? 0),
      name: Buffer.from(this.#item.name),
    };
    if (mode !== undefined) frame.mode = mode;
    if (mtimeMs !== undefined) frame.mtimeMs = mtimeMs;
    if (this.#item.directory) frame.directory = true;
    if (stream) frame.stream = true;
    if (this.#item.query) frame.query = true;
    return frame;
  }

  /**
   * v6 (§6.3): a small file's OFFER, its one DATA and its END, all sent at once: the item's
   * next frame from the receiver is its CONFIRM or REJECT, never an ACCEPT.
   */
  eager(payload: Buffer, hash: bigint): Frame[] {
    const { directory, stream, query } = this.#item;
    if (this.#phase !== 'offered' || directory || stream || query || payload.length !== this.#size)
      throw new ProtocolError('an eager OFFER is for a file, with all of its bytes', ErrorCode.Internal);
    if (payload.length > MAX_EAGER_SIZE)
      throw new ProtocolError(`an eager OFFER carries at most ${MAX_EAGER_SIZE} bytes`, ErrorCode.Internal);
    // Not `{ ...this.offer(), eager: true }`: on Node 20's V8 that gets a shape of its own each time.
    const offer = this.offer();
    offer.eager = true;
    this.#phase = 'sending';
    this.#eager = { held: false };
    const data: Frame[] =
      payload.length === 0 ? [] : [{ kind: Kind.Data, slot: this.#slot, offset: 0, payload }];
    return [offer, ...data, this.end(hash)];
  }

  /** After the last DATA: the END frame carrying the payload's hash. */
  end(hash: bigint): EndFrame {
    if (this.#phase !== 'sending') throw new ProtocolError(`END in phase ${this.#phase}`, ErrorCode.Internal);
    this.#phase = 'ended';
    this.#hash = hash;
    return { kind: Kind.End, slot: this.#slot, hash };
  }

  /** v3: after a stream's last CHUNK, the TRAILER with its length and hash. */
  trailer(size: number, hash: bigint): TrailerFrame {
    if (this.#phase !== 'sending')
      throw new ProtocolError(`TRAILER in phase ${this.#phase}`, ErrorCode.Internal);
    this.#phase = 'ended';
    this.#size = size;
    this.#hash = hash;
    return { kind: Kind.Trailer, slot: this.#slot, size, hash };
  }

  /** Checks a frame from the receiver against the item's phase; throws on anything out of place. */
  receive(frame: Frame): SenderEvent {
    if (frame.kind === Kind.Error)
      throw new PeerError(`receiver ended the session: ${frame.message}`, frame.code);
    if (this.#phase === 'done') throw this.#unexpected(frame);
    if ('slot' in frame && frame.slot !== this.#slot) {
      throw new ProtocolError(
        `frame for slot ${frame.slot}, expected slot ${this.#slot}`,
        ErrorCode.Unexpected,
      );
    }
    switch (frame.kind) {
      case Kind.Accept:
        if (this.#eager !== undefined) return this.#held(frame);
        if (this.#phase !== 'offered') throw this.#unexpected(frame);
        if (!this.#item.stream && frame.offset > (this.#size ?? 0)) {
          throw new ProtocolError(`receiver holds ${frame.offset} bytes of a ${this.#size}-byte item`);
        }
        // A query's ACCEPT is its whole answer: the receiver opened nothing.
        this.#phase = this.#item.query ? 'done' : 'sending';
        this.#acked = frame.offset;
        return { type: 'accepted', offset: frame.offset, prefixHash: frame.prefixHash };
      case Kind.Ack:
        if (!this.#item.stream || this.#phase === 'offered') throw this.#unexpected(frame);
        if (frame.offset < this.#acked) {
          throw new ProtocolError(`receiver acknowledged offset ${frame.offset} after ${this.#acked}`);
        }
        this.#acked = frame.offset;
        return { type: 'acked', offset: frame.offset };
      case Kind.Reject:
        this.#phase = 'done';
        return { type: 'rejected', code: frame.code, reason: frame.reason };
      case Kind.Confirm: {
        if (this.#phase === 'sending') throw this.#unexpected(frame);
        if (this.#size === undefined) {
          throw new ProtocolError('receiver confirmed a stream before its TRAILER: not counted as delivered');
        }
        if (!frame.id.equals(this.#item.id) || frame.size !== this.#size) {
          throw new ProtocolError('confirmation does not match the item offered: not counted as delivered');
        }
        const earlier = this.#phase === 'offered';
        if (!earlier && frame.hash !== this.#hash) {
          throw new ProtocolError(
            'confirmation carries another hash than the one sent: not counted as delivered',
          );
        }
        this.#phase = 'done';
        return { type: earlier ? 'confirmed-earlier' : 'confirmed', hash: frame.hash };
      }
      default:
        throw this.#unexpected(frame);
    }
  }

  /** v6: an eager item's only ACCEPT says the receiver held all of exactly these bytes. */
  #held(frame: Extract<Frame, { kind: typeof Kind.Accept }>): SenderEvent {
    const eager = this.#eager as { held: boolean };
    const size = this.#size ?? 0;
    if (eager.held || size === 0 || frame.offset !== size || frame.prefixHash !== this.#hash)
      throw this.#unexpected(frame);
    eager.held = true;
    return { type: 'held' };
  }

  #unexpected(frame: Frame): ProtocolError {
    return new ProtocolError(
      `unexpected frame kind ${frame.kind} in phase ${this.#phase}`,
      ErrorCode.Unexpected,
    );
  }
}
