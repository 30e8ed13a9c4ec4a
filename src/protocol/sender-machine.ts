// The sending end of one item on one connection as a state machine (PROTOCOL.md §6):
// it says which frame to send next and checks every answer against what was sent.
import { PeerError, ProtocolError } from '../errors.js';
import type { EndFrame, Frame, Hello, OfferFrame } from './codec.js';
import { ErrorCode, Kind, Role } from './constants.js';
import { ourHello } from './handshake.js';

/** What a sender knows of an item before it offers it. */
export interface ItemHeader {
  id: Buffer;
  size: number;
  name: string;
  mode?: number;
  mtimeMs?: number;
  /** v2: an empty directory, size 0. */
  directory?: boolean;
}

export type SenderEvent =
  | { type: 'accepted'; offset: number; prefixHash: bigint }
  | { type: 'rejected'; code: number; reason: string }
  /** The receiver holds this item from an earlier attempt; the driver must check `hash` itself. */
  | { type: 'confirmed-earlier'; hash: bigint }
  | { type: 'confirmed'; hash: bigint };

type Phase = 'offered' | 'sending' | 'ended' | 'done';

export function senderHello(): Hello {
  return ourHello(Role.Sender);
}

export class SenderItem {
  readonly #slot: number;
  readonly #item: ItemHeader;
  #phase: Phase = 'offered';
  #hash = 0n;

  constructor(slot: number, item: ItemHeader) {
    this.#slot = slot;
    this.#item = item;
  }

  get slot(): number {
    return this.#slot;
  }

  offer(): OfferFrame {
    const { id, size, mode, mtimeMs } = this.#item;
    const frame: OfferFrame = {
      kind: Kind.Offer,
      slot: this.#slot,
      id,
      size,
      name: Buffer.from(this.#item.name),
    };
    if (mode !== undefined) frame.mode = mode;
    if (mtimeMs !== undefined) frame.mtimeMs = mtimeMs;
    if (this.#item.directory) frame.directory = true;
    return frame;
  }

  /** After the last DATA: the END frame carrying the payload's hash. */
  end(hash: bigint): EndFrame {
    if (this.#phase !== 'sending') throw new ProtocolError(`END in phase ${this.#phase}`, ErrorCode.Internal);
    this.#phase = 'ended';
    this.#hash = hash;
    return { kind: Kind.End, slot: this.#slot, hash };
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
        if (this.#phase !== 'offered') throw this.#unexpected(frame);
        if (frame.offset > this.#item.size) {
          throw new ProtocolError(`receiver holds ${frame.offset} bytes of a ${this.#item.size}-byte item`);
        }
        this.#phase = 'sending';
        return { type: 'accepted', offset: frame.offset, prefixHash: frame.prefixHash };
      case Kind.Reject:
        this.#phase = 'done';
        return { type: 'rejected', code: frame.code, reason: frame.reason };
      case Kind.Confirm: {
        if (this.#phase === 'sending') throw this.#unexpected(frame);
        if (!frame.id.equals(this.#item.id) || frame.size !== this.#item.size) {
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

  #unexpected(frame: Frame): ProtocolError {
    return new ProtocolError(
      `unexpected frame kind ${frame.kind} in phase ${this.#phase}`,
      ErrorCode.Unexpected,
    );
  }
}
