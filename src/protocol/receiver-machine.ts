// The receiving end of one connection as a state machine (PROTOCOL.md §6): frames and store
// results in, actions out. It enforces the session rules; a driver does the I/O.
import { type AckshipError, type HandshakeError, LocalIoError, PeerError, ProtocolError } from '../errors.js';
import type { Frame, Hello, OfferFrame } from './codec.js';
import { ErrorCode, Kind, maxOpenItems, RejectCode, Role } from './constants.js';
import type { Incoming } from './frame-parser.js';
import { negotiate, ourHello } from './handshake.js';
import { checkName } from './names.js';

export interface ReceiverLimits {
  /** Largest declared size accepted, in bytes. */
  maxSize: number;
}

/** An offer whose name passed §5, handed to the store. */
export interface ValidOffer {
  slot: number;
  id: Buffer;
  size: number;
  name: string;
  parts: string[];
  mode?: number;
  mtimeMs?: number;
  /** v2: an empty directory to create, with no data. */
  directory: boolean;
}

/** What the store says of an offer. */
export type OfferDecision =
  | { type: 'accept'; offset: number; prefixHash: bigint }
  | { type: 'reject'; code: RejectCode; reason: string }
  | { type: 'confirmed'; size: number; hash: bigint };

/** What the store says after END: placed and durable, or refused. */
export type CommitOutcome =
  | { type: 'confirmed'; hash: bigint }
  | { type: 'reject'; code: RejectCode; reason: string };

export type ReceiverAction =
  | { type: 'send'; frame: Frame }
  | { type: 'open'; offer: ValidOffer }
  | { type: 'write'; slot: number; offset: number; payload: Buffer; truncate: boolean }
  | { type: 'commit'; slot: number; hash: bigint }
  | { type: 'rejected'; slot: number; name: string; reason: string }
  /** v2: the connection belongs to this sender run (§4.8). */
  | { type: 'session'; id: Buffer }
  /** The session is over: tell the peer why when `notify`, then close. */
  | { type: 'fail'; error: AckshipError; notify: boolean };

type Item =
  | { phase: 'deciding'; offer: ValidOffer }
  | { phase: 'receiving'; offer: ValidOffer; accepted: number; next: number | undefined }
  | { phase: 'committing'; offer: ValidOffer };

export class ReceiverMachine {
  readonly #limits: ReceiverLimits;
  readonly #items = new Map<number, Item>();
  #version: number | undefined;
  #sessionAllowed = true;
  #failed = false;

  constructor(limits: ReceiverLimits) {
    this.#limits = limits;
  }

  /** The hello this end sends first. */
  static hello(): Hello {
    return ourHello(Role.Receiver);
  }

  receive(message: Incoming): ReceiverAction[] {
    if (this.#failed) return [];
    if (message.kind === 'hello') {
      try {
        this.#version = negotiate(ReceiverMachine.hello(), message.hello);
        return [];
      } catch (err) {
        return this.#fail(err as HandshakeError, false);
      }
    }
    if (this.#version === undefined) return this.#violation('frame before hello', ErrorCode.Unexpected);
    switch (message.kind) {
      case Kind.Offer:
        this.#sessionAllowed = false;
        return this.#offer(message);
      case Kind.Session:
        if (this.#version < 2 || !this.#sessionAllowed) {
          return this.#violation(
            'SESSION is allowed once, before any OFFER, from version 2',
            ErrorCode.Unexpected,
          );
        }
        this.#sessionAllowed = false;
        return [{ type: 'session', id: message.id }];
      case Kind.Data:
        return this.#data(message.slot, message.offset, message.payload);
      case Kind.End:
        return this.#end(message.slot, message.hash);
      case Kind.Error:
        return this.#fail(new PeerError(`sender ended the session: ${message.message}`, message.code), false);
      default:
        return this.#violation(`a sender may not send frame kind ${message.kind}`, ErrorCode.Unexpected);
    }
  }

  /** The store's answer to an `open` action. */
  decided(slot: number, decision: OfferDecision): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (this.#failed || item?.phase !== 'deciding') return [];
    const { offer } = item;
    switch (decision.type) {
      case 'accept':
        this.#items.set(slot, { phase: 'receiving', offer, accepted: decision.offset, next: undefined });
        return [
          {
            type: 'send',
            frame: { kind: Kind.Accept, slot, offset: decision.offset, prefixHash: decision.prefixHash },
          },
        ];
      case 'confirmed':
        this.#items.delete(slot);
        return [
          {
            type: 'send',
            frame: { kind: Kind.Confirm, slot, id: offer.id, size: decision.size, hash: decision.hash },
          },
        ];
      case 'reject':
        this.#items.delete(slot);
        return this.#reject(slot, offer.name, decision.code, decision.reason);
    }
  }

  /** The store's answer to a `commit` action. */
  committed(slot: number, outcome: CommitOutcome): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (this.#failed || item?.phase !== 'committing') return [];
    this.#items.delete(slot);
    if (outcome.type === 'reject') return this.#reject(slot, item.offer.name, outcome.code, outcome.reason);
    const { id, size } = item.offer;
    return [{ type: 'send', frame: { kind: Kind.Confirm, slot, id, size, hash: outcome.hash } }];
  }

  /**
   * Writing an accepted item's data failed (a full disk): the item is refused and the session
   * ends (§6), because DATA the peer already sent for it could not be told from a violation.
   */
  writeFailed(slot: number, code: RejectCode, reason: string): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (this.#failed || item?.phase !== 'receiving') return [];
    const refusal = this.#reject(slot, item.offer.name, code, reason);
    return [...refusal, ...this.#fail(new LocalIoError(reason), false)];
  }

  /** A local failure (timeout, shutdown) ends the session. */
  abort(error: ProtocolError): ReceiverAction[] {
    return this.#failed ? [] : this.#fail(error, true);
  }

  #offer(frame: OfferFrame): ReceiverAction[] {
    const { slot } = frame;
    if (this.#items.has(slot)) return this.#violation(`slot ${slot} is already in use`, ErrorCode.Unexpected);
    const limit = maxOpenItems(this.#version ?? 1);
    if (this.#items.size >= limit)
      return this.#violation(`more than ${limit} items open at once`, ErrorCode.Unexpected);
    if (frame.directory && (this.#version ?? 1) < 2) {
      return this.#violation('directory items need protocol version 2', ErrorCode.Unexpected);
    }
    const check = checkName(frame.name);
    if (!check.ok) return this.#reject(slot, frame.name.toString('utf8'), RejectCode.BadName, check.reason);
    if (frame.size > this.#limits.maxSize) {
      return this.#reject(
        slot,
        check.name,
        RejectCode.TooLarge,
        `declared size ${frame.size} exceeds the receiver's limit of ${this.#limits.maxSize} bytes`,
      );
    }
    const offer: ValidOffer = {
      slot,
      id: frame.id,
      size: frame.size,
      name: check.name,
      parts: check.parts,
      directory: frame.directory === true,
    };
    if (frame.mode !== undefined) offer.mode = frame.mode;
    if (frame.mtimeMs !== undefined) offer.mtimeMs = frame.mtimeMs;
    this.#items.set(slot, { phase: 'deciding', offer });
    return [{ type: 'open', offer }];
  }

  #data(slot: number, offset: number, payload: Buffer): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (item?.phase !== 'receiving') return this.#violation(`DATA for slot ${slot}, which is not accepted`);
    // §6: the first DATA starts at the accepted offset (resume) or at 0 (start over); later
    // ones continue exactly where the previous one ended.
    const expected = item.next ?? item.accepted;
    const restart = item.next === undefined && offset === 0;
    if (offset !== expected && !restart) {
      return this.#violation(`DATA at offset ${offset} for slot ${slot}, expected ${expected}`);
    }
    const end = offset + payload.length;
    if (end > item.offer.size) {
      return this.#violation(`DATA runs to ${end}, past the declared size ${item.offer.size}`);
    }
    item.next = end;
    return [{ type: 'write', slot, offset, payload, truncate: restart && item.accepted > 0 }];
  }

  #end(slot: number, hash: bigint): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (item?.phase !== 'receiving') return this.#violation(`END for slot ${slot}, which is not accepted`);
    const received = item.next ?? item.accepted;
    if (received !== item.offer.size) {
      return this.#violation(`END after ${received} of ${item.offer.size} declared bytes`);
    }
    this.#items.set(slot, { phase: 'committing', offer: item.offer });
    return [{ type: 'commit', slot, hash }];
  }

  #reject(slot: number, name: string, code: RejectCode, reason: string): ReceiverAction[] {
    return [
      { type: 'send', frame: { kind: Kind.Reject, slot, code, reason } },
      { type: 'rejected', slot, name, reason },
    ];
  }

  #violation(message: string, code: ErrorCode = ErrorCode.Malformed): ReceiverAction[] {
    return this.#fail(new ProtocolError(message, code), true);
  }

  #fail(error: AckshipError, notify: boolean): ReceiverAction[] {
    this.#failed = true;
    this.#items.clear();
    return [{ type: 'fail', error, notify }];
  }
}
