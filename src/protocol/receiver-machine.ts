// The receiving end of one connection as a state machine (PROTOCOL.md §6): frames and store
// results in, actions out. It enforces the session rules; a driver does the I/O.
import {
  type AckshipError,
  AuthError,
  type HandshakeError,
  LocalIoError,
  PeerError,
  ProtocolError,
  RejectedError,
  TransientError,
} from '../errors.js';
import { SecretProof } from './auth.js';
import type {
  ChunkFrame,
  ConfirmFrame,
  Frame,
  Hello,
  MessageFrame,
  OfferFrame,
  ResultFrame,
} from './codec.js';
import {
  ErrorCode,
  isRetryableReject,
  Kind,
  MAX_EAGER_OPEN_BYTES,
  MAX_MTIME_MS,
  maxOpenItems,
  RejectCode,
  Role,
} from './constants.js';
import type { Incoming } from './frame-parser.js';
import { negotiate, ourHello } from './handshake.js';
import { messageFieldsProblem, messageId } from './message-fields.js';
import { checkName } from './names.js';
import { OpenEagerBytes } from './open-eager-bytes.js';
import { type Payload, payloadHash, payloadLength } from './payload.js';

export interface ReceiverLimits {
  /** Largest declared size accepted, in bytes (for a stream: the most it may grow to). */
  maxSize: number;
  /** Longest name accepted, in UTF-8 bytes; at most the protocol's 4096. */
  maxNameLength: number;
  /** OFFERs one connection may make; one more ends the session with ERROR 8 (busy). */
  maxItemsPerConnection: number;
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
  /** v3: a stream of unknown length (CHUNKs, then a TRAILER); `size` is 0. */
  stream: boolean;
  /** v4: a message for the application (§4.12): its key (whose digest is `id`) and meta. */
  message?: { key: string; meta: Array<[string, string]> };
  /** v4: only asking what the answer would be (a dry run, §4.1): decide, open nothing, settle at once. */
  query?: boolean;
}

/** What the store says of an offer. */
export type OfferDecision =
  | { type: 'accept'; offset: number; prefixHash: bigint }
  | { type: 'reject'; code: RejectCode; reason: string }
  | { type: 'confirmed'; size: number; hash: bigint };

/** What the store says after END: placed and durable, or refused. */
export type CommitOutcome =
  /** A message's outcome may carry the application's reply, or say it was taken earlier. */
  | { type: 'confirmed'; hash: bigint; reply?: Buffer; duplicate?: boolean }
  | { type: 'reject'; code: RejectCode; reason: string };

export type ReceiverAction =
  | { type: 'send'; frame: Frame }
  | { type: 'open'; offer: ValidOffer }
  /**
   * v4: a message; its DATA follows at once (no ACCEPT), and is answered after its END. With
   * `refusal` the message is refused then, and its data dropped as it comes.
   */
  | { type: 'message'; offer: ValidOffer; refusal?: { code: RejectCode; reason: string } }
  | { type: 'write'; slot: number; offset: number; payload: Payload; truncate: boolean }
  /**
   * The item's data is all in: verify, make durable, place. v6: an eager item's `write` is its
   * one DATA, written first (`truncate`: over a prefix held from an earlier attempt).
   */
  | { type: 'commit'; slot: number; hash: bigint; write?: { payload: Payload; truncate: boolean } }
  /** `final`: the sender will not retry the item (§4.3). */
  | { type: 'rejected'; slot: number; name: string; reason: string; final: boolean }
  /** v2: the connection belongs to this sender run (§4.8). */
  | { type: 'session'; id: Buffer }
  /** The session is over: tell the peer why when `notify`, then close. */
  | { type: 'fail'; error: AckshipError; notify: boolean };

type Item =
  | { phase: 'deciding'; offer: ValidOffer }
  | { phase: 'receiving'; offer: ValidOffer; accepted: number; next: number | undefined; acked: number }
  /**
   * v6 (§6.3): an eager file, answered once both the store's decision and its END are in. Its
   * one DATA waits here meanwhile: at most MAX_EAGER_SIZE bytes, MAX_EAGER_OPEN_BYTES over all.
   */
  | {
      phase: 'eager';
      offer: ValidOffer;
      decision: OfferDecision | undefined;
      payload: Payload | undefined;
      hash: bigint | undefined;
    }
  /** `size`: the length confirmed, declared by OFFER, or for a stream by its TRAILER. */
  | { phase: 'committing'; offer: ValidOffer; size: number };

/**
 * The items open on a connection, by slot, with their transfer ids indexed: every OFFER is
 * checked against all of them (§7.1), and a scan of 256 ids per OFFER was 2% of a small
 * file's receiver CPU. Eager items count by their declared size until settled (§6.3).
 */
class OpenItems extends Map<number, Item> {
  readonly #ids = new Set<string>();
  readonly eager = new OpenEagerBytes();

  override set(slot: number, item: Item): this {
    const before = this.get(slot);
    if (before !== undefined) this.#ids.delete(before.offer.id.toString('latin1'));
    else if (item.phase === 'eager') this.eager.add(slot, item.offer.size);
    this.#ids.add(item.offer.id.toString('latin1'));
    return super.set(slot, item);
  }

  override delete(slot: number): boolean {
    const item = this.get(slot);
    if (item !== undefined) this.#ids.delete(item.offer.id.toString('latin1'));
    this.eager.remove(slot);
    return super.delete(slot);
  }

  override clear(): void {
    this.#ids.clear();
    this.eager.clear();
    super.clear();
  }

  hasId(id: Buffer): boolean {
    return this.#ids.has(id.toString('latin1'));
  }
}

export class ReceiverMachine {
  readonly #limits: ReceiverLimits;
  readonly #secret: Buffer | undefined;
  /** §2.1: with a shared secret, nothing but the proof is taken until the sender proved it. */
  #proof: SecretProof | undefined;
  readonly #items = new OpenItems();
  #version: number | undefined;
  #sessionAllowed = true;
  #failed = false;
  #offers = 0;
  /**
   * Slots whose item was refused on its own while its data came (refuse()): what the sender
   * still sent for it, DATA, CHUNK, END or TRAILER, is dropped until the slot's next OFFER (§6).
   */
  readonly #refusedSlots = new Set<number>();

  /** `secret`: senders must prove they know it (§2.1). */
  constructor(limits: ReceiverLimits, secret?: Buffer) {
    this.#limits = limits;
    this.#secret = secret;
  }

  /** Items offered and not yet settled (confirmed or rejected). */
  get openItems(): number {
    return this.#items.size;
  }

  /** The hello this end sends first. */
  hello(): Hello {
    return ourHello(Role.Receiver, this.#secret !== undefined);
  }

  receive(message: Incoming): ReceiverAction[] {
    if (this.#failed) return [];
    if (message.kind === 'hello') {
      try {
        this.#version = negotiate(this.hello(), message.hello);
      } catch (err) {
        return this.#fail(err as HandshakeError, false);
      }
      if (this.#secret === undefined) return [];
      this.#proof = new SecretProof(this.#secret, Role.Receiver, this.#version);
      return [{ type: 'send', frame: this.#proof.challenge() }];
    }
    if (this.#version === undefined) return this.#violation('frame before hello', ErrorCode.Unexpected);
    if (this.#proof !== undefined && !this.#proof.proven) return this.#authenticate(message);
    switch (message.kind) {
      case Kind.Offer:
        this.#sessionAllowed = false;
        this.#refusedSlots.delete(message.slot);
        return this.#offer(message);
      case Kind.Message:
        this.#sessionAllowed = false;
        this.#refusedSlots.delete(message.slot);
        return this.#message(message);
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
        if (this.#refusedSlots.has(message.slot)) return [];
        return this.#data(message.slot, message.offset, message.payload);
      case Kind.End:
        if (this.#refusedSlots.delete(message.slot)) return [];
        return this.#end(message.slot, message.hash, undefined);
      case Kind.Chunk:
        if (this.#refusedSlots.has(message.slot)) return [];
        return this.#chunk(message);
      case Kind.Trailer:
        if (this.#refusedSlots.delete(message.slot)) return [];
        return this.#end(message.slot, message.hash, message.size);
      case Kind.Error:
        return this.#fail(new PeerError(`sender ended the session: ${message.message}`, message.code), false);
      default:
        return this.#violation(`a sender may not send frame kind ${message.kind}`, ErrorCode.Unexpected);
    }
  }

  /** §2.1: the sender's CHALLENGE and PROOF, and nothing else, until its proof checked out. */
  #authenticate(frame: Frame): ReceiverAction[] {
    const proof = this.#proof as SecretProof;
    try {
      switch (frame.kind) {
        case Kind.Challenge:
          return [{ type: 'send', frame: proof.answer(frame) }];
        case Kind.Proof:
          proof.check(frame);
          return [];
        case Kind.Error:
          return this.#fail(new PeerError(`sender ended the session: ${frame.message}`, frame.code), false);
        default:
          throw new AuthError(`the sender sent frame kind ${frame.kind} before proving the shared secret`);
      }
    } catch (err) {
      return this.#fail(err as AuthError, true);
    }
  }

  /** A CONFIRM or RESULT, sealed when the session has a shared secret. */
  #confirm(frame: ConfirmFrame | ResultFrame): ReceiverAction[] {
    return [{ type: 'send', frame: this.#proof === undefined ? frame : this.#proof.seal(frame) }];
  }

  /** The store's answer to an `open` action. */
  decided(slot: number, decision: OfferDecision): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (!this.#failed && item?.phase === 'eager' && item.decision === undefined) {
      item.decision = decision;
      return this.#answerEager(slot, item);
    }
    if (this.#failed || item?.phase !== 'deciding') return [];
    const { offer } = item;
    switch (decision.type) {
      case 'accept':
        if (offer.query) {
          this.#items.delete(slot);
          return [
            {
              type: 'send',
              frame: { kind: Kind.Accept, slot, offset: decision.offset, prefixHash: decision.prefixHash },
            },
          ];
        }
        this.#items.set(slot, {
          phase: 'receiving',
          offer,
          accepted: decision.offset,
          next: undefined,
          acked: decision.offset,
        });
        return [
          {
            type: 'send',
            frame: { kind: Kind.Accept, slot, offset: decision.offset, prefixHash: decision.prefixHash },
          },
        ];
      case 'confirmed':
      case 'reject':
        return this.#settleByDecision(slot, offer, decision);
    }
  }

  /** A decision that settles the item without its data: a refusal, or a confirmation of before. */
  #settleByDecision(
    slot: number,
    offer: ValidOffer,
    decision: Exclude<OfferDecision, { type: 'accept' }>,
  ): ReceiverAction[] {
    this.#items.delete(slot);
    if (decision.type === 'reject')
      return this.#reject(slot, offer.name, decision.code, decision.reason, !offer.query);
    return this.#confirm({
      kind: Kind.Confirm,
      slot,
      id: offer.id,
      size: decision.size,
      hash: decision.hash,
    });
  }

  /** The store's answer to a `commit` action. */
  committed(slot: number, outcome: CommitOutcome): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (this.#failed || item?.phase !== 'committing') return [];
    this.#items.delete(slot);
    if (outcome.type === 'reject') return this.#reject(slot, item.offer.name, outcome.code, outcome.reason);
    if (item.offer.message !== undefined) {
      return this.#confirm({
        kind: Kind.Result,
        slot,
        id: item.offer.id,
        size: item.size,
        hash: outcome.hash,
        duplicate: outcome.duplicate === true,
        reply: outcome.reply ?? Buffer.alloc(0),
      });
    }
    return this.#confirm({
      kind: Kind.Confirm,
      slot,
      id: item.offer.id,
      size: item.size,
      hash: outcome.hash,
    });
  }

  /**
   * v3: a stream's bytes before `offset` are durable (fsynced, or written to the receiver's
   * output): tell the sender, which may drop them. Repeating the last offset is a keepalive.
   */
  durable(slot: number, offset: number): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (this.#failed || item?.phase !== 'receiving' || !item.offer.stream || offset < item.acked) return [];
    item.acked = offset;
    return [{ type: 'send', frame: { kind: Kind.Ack, slot, offset } }];
  }

  /**
   * The store refused an item being received for a reason of its own (its name holds other
   * bytes): REJECT, and the session goes on; what the sender already sent for it is dropped
   * (§6). A refusal per file of a re-run tree had ended a session each, and their reconnects
   * filled the receiver's connection cap.
   */
  refuse(slot: number, code: RejectCode, reason: string): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (this.#failed || item?.phase !== 'receiving') return [];
    this.#items.delete(slot);
    this.#refusedSlots.add(slot);
    return this.#reject(slot, item.offer.name, code, reason);
  }

  /**
   * Writing an accepted item's data failed (a full disk): the item is refused and the session
   * ends (§6), because the disk that failed it would fail the session's other items too.
   */
  writeFailed(slot: number, code: RejectCode, reason: string): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (this.#failed || item?.phase !== 'receiving') return [];
    return this.#refuseMidItem(slot, item.offer.name, code, reason, new LocalIoError(reason));
  }

  /**
   * v5, called by the driver about once a second while commits are under way: a WORKING for
   * each item whose data is whole and that is still being placed and made durable, or is in its
   * application's hands (§4.14), so that the sender's silence rule does not give up a
   * connection that is only slow. Nothing for older senders, which do not know the frame.
   */
  working(): ReceiverAction[] {
    if (this.#failed || this.#version === undefined || this.#version < 5) return [];
    const actions: ReceiverAction[] = [];
    for (const [slot, item] of this.#items) {
      if (item.phase === 'committing') actions.push({ type: 'send', frame: { kind: Kind.Working, slot } });
    }
    return actions;
  }

  /** A local failure (timeout, shutdown) ends the session. */
  abort(error: ProtocolError): ReceiverAction[] {
    return this.#failed ? [] : this.#fail(error, true);
  }

  /** §6: why a new item may not open in `slot` under `id`, as the actions that end the session. */
  #admit(slot: number, id: Buffer): ReceiverAction[] | undefined {
    if (++this.#offers > this.#limits.maxItemsPerConnection) {
      const limit = this.#limits.maxItemsPerConnection;
      return this.#violation(
        `more than ${limit} items on one connection; go on over a new one`,
        ErrorCode.Busy,
      );
    }
    if (this.#items.has(slot)) return this.#violation(`slot ${slot} is already in use`, ErrorCode.Unexpected);
    // §7.1: an id is one item; offered twice on one connection, neither copy could take the other over.
    if (this.#items.hasId(id))
      return this.#violation('transfer id is already open on this connection', ErrorCode.Unexpected);
    const limit = maxOpenItems(this.#version ?? 1);
    if (this.#items.size >= limit)
      return this.#violation(`more than ${limit} items open at once`, ErrorCode.Unexpected);
    return undefined;
  }

  /** v4 (§4.12): a message is taken at once; its data follows without an ACCEPT. */
  #message(frame: MessageFrame): ReceiverAction[] {
    if ((this.#version ?? 1) < 4)
      return this.#violation('MESSAGE needs protocol version 4', ErrorCode.Unexpected);
    const { slot, size, key, name, meta } = frame;
    const id = messageId(key);
    const refused = this.#admit(slot, id);
    if (refused !== undefined) return refused;
    const offer: ValidOffer = {
      slot,
      id,
      size,
      name,
      parts: [],
      directory: false,
      stream: false,
      message: { key, meta },
    };
    this.#items.set(slot, { phase: 'receiving', offer, accepted: 0, next: undefined, acked: 0 });
    const problem = messageFieldsProblem(frame);
    if (problem !== undefined)
      return [{ type: 'message', offer, refusal: { code: RejectCode.BadName, reason: problem } }];
    if (size > this.#limits.maxSize) {
      const reason = `message of ${size} bytes exceeds the receiver's limit of ${this.#limits.maxSize} bytes`;
      return [{ type: 'message', offer, refusal: { code: RejectCode.TooLarge, reason } }];
    }
    return [{ type: 'message', offer }];
  }

  #offer(frame: OfferFrame): ReceiverAction[] {
    const { slot } = frame;
    const refused = this.#admit(slot, frame.id);
    if (refused !== undefined) return refused;
    if (frame.directory && (this.#version ?? 1) < 2) {
      return this.#violation('directory items need protocol version 2', ErrorCode.Unexpected);
    }
    if (frame.stream && (this.#version ?? 1) < 3) {
      return this.#violation('stream items need protocol version 3', ErrorCode.Unexpected);
    }
    if (frame.query && (this.#version ?? 1) < 4) {
      return this.#violation('OFFER queries need protocol version 4', ErrorCode.Unexpected);
    }
    if (frame.eager && (this.#version ?? 1) < 6) {
      return this.#violation('eager OFFERs need protocol version 6', ErrorCode.Unexpected);
    }
    if (frame.eager && !this.#items.eager.fits(frame.size)) {
      return this.#violation(
        `eager items of more than ${MAX_EAGER_OPEN_BYTES} bytes open at once`,
        ErrorCode.Unexpected,
      );
    }
    const check = checkName(frame.name);
    const offer: ValidOffer = {
      slot,
      id: frame.id,
      size: frame.size,
      name: check.ok ? check.name : frame.name.toString('utf8'),
      parts: check.ok ? check.parts : [],
      directory: frame.directory === true,
      stream: frame.stream === true,
    };
    if (frame.mode !== undefined) offer.mode = frame.mode;
    if (frame.mtimeMs !== undefined) offer.mtimeMs = frame.mtimeMs;
    if (frame.query) offer.query = true;
    const refusal = check.ok ? this.#offerRefusal(frame) : { code: RejectCode.BadName, reason: check.reason };
    if (frame.eager) {
      // Its DATA and END are on their way already: whatever the answer, it follows them.
      const decision = refusal && { type: 'reject' as const, ...refusal };
      this.#items.set(slot, { phase: 'eager', offer, decision, payload: undefined, hash: undefined });
      return decision === undefined ? [{ type: 'open', offer }] : [];
    }
    // A query's refusal is an answer, not an item refused: it is not reported as one.
    if (refusal !== undefined)
      return this.#reject(slot, offer.name, refusal.code, refusal.reason, !frame.query);
    this.#items.set(slot, { phase: 'deciding', offer });
    return [{ type: 'open', offer }];
  }

  /** Why an OFFER with a well-formed name is refused before the store sees it, if it is. */
  #offerRefusal(frame: OfferFrame): { code: RejectCode; reason: string } | undefined {
    if (frame.name.length > this.#limits.maxNameLength) {
      const reason = `name is ${frame.name.length} bytes, the receiver's limit is ${this.#limits.maxNameLength}`;
      return { code: RejectCode.BadName, reason };
    }
    if (frame.mtimeMs !== undefined && Math.abs(frame.mtimeMs) > MAX_MTIME_MS) {
      const reason = `mtime ${frame.mtimeMs} ms is outside the ±${MAX_MTIME_MS} ms a receiver can set`;
      return { code: RejectCode.BadName, reason };
    }
    if (frame.size > this.#limits.maxSize) {
      const reason = `declared size ${frame.size} exceeds the receiver's limit of ${this.#limits.maxSize} bytes`;
      return { code: RejectCode.TooLarge, reason };
    }
    return undefined;
  }

  /**
   * v6 (§6.3): an eager item's one DATA, at 0 and of its whole size; it waits for the decision.
   * A file of size 0 has none.
   */
  #eagerData(item: Extract<Item, { phase: 'eager' }>, offset: number, payload: Payload): ReceiverAction[] {
    const { slot, size } = item.offer;
    const length = payloadLength(payload);
    const misplaced = item.payload !== undefined || item.hash !== undefined || offset !== 0;
    if (misplaced || size === 0 || length !== size) {
      return this.#violation(
        `eager slot ${slot} takes one DATA of all its ${size} bytes at offset 0, not ${length} at ${offset}`,
      );
    }
    item.payload = payload;
    return [];
  }

  /** v6: once an eager item has both its decision and its END, its one answer. */
  #answerEager(slot: number, item: Extract<Item, { phase: 'eager' }>): ReceiverAction[] {
    const { offer, decision, payload, hash } = item;
    if (decision === undefined || hash === undefined) return [];
    if (decision.type !== 'accept') return this.#settleByDecision(slot, offer, decision);
    this.#items.set(slot, { phase: 'committing', offer, size: offer.size });
    if (payload === undefined) return [{ type: 'commit', slot, hash }];
    // The receiver held every byte already (an earlier attempt's part, the file under its
    // name): nothing to write, and the sender hears so, ahead of the CONFIRM.
    if (decision.offset === offer.size && decision.prefixHash === hash) {
      const held: Frame = { kind: Kind.Accept, slot, offset: decision.offset, prefixHash: hash };
      return [
        { type: 'send', frame: held },
        { type: 'commit', slot, hash },
      ];
    }
    return [{ type: 'commit', slot, hash, write: { payload, truncate: decision.offset > 0 } }];
  }

  #data(slot: number, offset: number, payload: Payload): ReceiverAction[] {
    const item = this.#items.get(slot);
    if (item?.phase === 'eager') return this.#eagerData(item, offset, payload);
    if (item?.phase !== 'receiving' || item.offer.stream) {
      return this.#violation(`DATA for slot ${slot}, which is not an accepted file`, ErrorCode.Unexpected);
    }
    // §6: the first DATA starts at the accepted offset (resume) or at 0 (start over); later
    // ones continue exactly where the previous one ended.
    const restart = item.next === undefined && offset === 0;
    const length = payloadLength(payload);
    const misplaced = this.#misplaced(item, offset, length, restart);
    if (misplaced !== undefined) return this.#violation(misplaced);
    const end = offset + length;
    if (end > item.offer.size) {
      return this.#violation(`DATA runs to ${end}, past the declared size ${item.offer.size}`);
    }
    item.next = end;
    return [{ type: 'write', slot, offset, payload, truncate: restart && item.accepted > 0 }];
  }

  /** v3 (§4.9): a piece of a stream is written only once its own hash checks out. */
  #chunk(frame: ChunkFrame): ReceiverAction[] {
    const { slot, offset, payload } = frame;
    const item = this.#items.get(slot);
    if (item?.phase !== 'receiving' || !item.offer.stream) {
      return this.#violation(`CHUNK for slot ${slot}, which is not an accepted stream`, ErrorCode.Unexpected);
    }
    // A stream never starts over: its sender may no longer hold the beginning.
    const length = payloadLength(payload);
    const misplaced = this.#misplaced(item, offset, length, false);
    if (misplaced !== undefined) return this.#violation(misplaced);
    const { name } = item.offer;
    const actual = payloadHash(payload);
    if (actual !== frame.hash) {
      const reason = `CHUNK at offset ${offset} failed its checksum; the verified prefix is kept`;
      return this.#refuseMidItem(slot, name, RejectCode.Checksum, reason, new TransientError(reason));
    }
    const end = offset + length;
    if (end > this.#limits.maxSize) {
      const reason = `stream passed the receiver's limit of ${this.#limits.maxSize} bytes`;
      const code = RejectCode.TooLarge;
      return this.#refuseMidItem(slot, name, code, reason, new RejectedError(reason, code));
    }
    item.next = end;
    return [{ type: 'write', slot, offset, payload, truncate: false }];
  }

  /** §6: why a piece of payload at `offset` is out of place, if it is. */
  #misplaced(
    item: Extract<Item, { phase: 'receiving' }>,
    offset: number,
    length: number,
    restart: boolean,
  ): string | undefined {
    const expected = item.next ?? item.accepted;
    if (offset !== expected && !restart) {
      return `payload at offset ${offset} for slot ${item.offer.slot}, expected ${expected}`;
    }
    if (length === 0 && item.offer.stream) return 'an empty CHUNK';
    return undefined;
  }

  /** END of a file (`declared` undefined) or a stream's TRAILER, which declares its length. */
  #end(slot: number, hash: bigint, declared: number | undefined): ReceiverAction[] {
    const frame = declared === undefined ? 'END' : 'TRAILER';
    const item = this.#items.get(slot);
    if (item?.phase === 'eager' && declared === undefined && item.hash === undefined) {
      const received = item.payload === undefined ? 0 : item.offer.size;
      if (received !== item.offer.size)
        return this.#violation(`END after ${received} of ${item.offer.size} declared bytes`);
      item.hash = hash;
      return this.#answerEager(slot, item);
    }
    if (item?.phase !== 'receiving' || item.offer.stream !== (declared !== undefined)) {
      return this.#violation(
        `${frame} for slot ${slot}, which is not an accepted ${declared === undefined ? 'file' : 'stream'}`,
        ErrorCode.Unexpected,
      );
    }
    const size = declared ?? item.offer.size;
    const received = item.next ?? item.accepted;
    if (received !== size) {
      return this.#violation(`${frame} after ${received} of ${size} declared bytes`);
    }
    this.#items.set(slot, { phase: 'committing', offer: item.offer, size });
    return [{ type: 'commit', slot, hash }];
  }

  /**
   * The item is refused while its data is in flight, and the session ends too (§6): a failing
   * disk, or bytes that failed their own checksum, say that more than this item is amiss.
   */
  #refuseMidItem(
    slot: number,
    name: string,
    code: RejectCode,
    reason: string,
    error: AckshipError,
  ): ReceiverAction[] {
    return [...this.#reject(slot, name, code, reason), ...this.#fail(error, false)];
  }

  /** `report`: tell the driver an item was refused (not for the answer to a query). */
  #reject(slot: number, name: string, code: RejectCode, reason: string, report = true): ReceiverAction[] {
    // A sender before v4 knows no "handler failed": it retries "receiver I/O" the same way.
    const wireCode =
      code === RejectCode.HandlerFailed && (this.#version ?? 1) < 4 ? RejectCode.ReceiverIo : code;
    const send: ReceiverAction = { type: 'send', frame: { kind: Kind.Reject, slot, code: wireCode, reason } };
    if (!report) return [send];
    return [send, { type: 'rejected', slot, name, reason, final: !isRetryableReject(code) }];
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
