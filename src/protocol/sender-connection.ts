// The sending end of one connection as a state machine (PROTOCOL.md §2, §6): the hello and its
// negotiation, the proof of a shared secret, the SESSION, the routing of the receiver's frames to
// their item by slot, and the two deadlines (hello, silence). Events and `now` (milliseconds on
// any monotonic clock) in, actions out; the driver (src/send/connection.ts) does the I/O and
// wakes the machine at `nextDeadline()`, so every timeout rule is tested without a clock.
import { AuthError, HandshakeError, PeerError, ProtocolError, TransientError } from '../errors.js';
import { SecretProof } from './auth.js';
import type { Frame, Hello } from './codec.js';
import { ErrorCode, Kind, maxOpenItems, Role } from './constants.js';
import type { Incoming } from './frame-parser.js';
import { negotiate, ourHello } from './handshake.js';
import { OpenEagerBytes } from './open-eager-bytes.js';

/** The peer took the connection and sent no hello in time: retried, unless it never did (sender.ts). */
export class NoHelloError extends TransientError {}

export interface SenderConnectionOptions {
  /** The receiver as the user named it, for messages. */
  peer: string;
  /** The run this connection belongs to (§4.8), announced from version 2. */
  session: Buffer;
  /** §2.1: prove this shared secret, and take nothing from a receiver that has not proved it. */
  secret?: Buffer;
  /** The connection runs over TLS: says which side of a TLS mismatch a hang-up points to. */
  tls: boolean;
  /** From the start until the receiver's hello (--connect-timeout). */
  connectTimeoutMs: number;
  /** Once greeted: the longest the connection may carry nothing either way (--timeout). */
  idleTimeoutMs: number;
}

export type SenderConnectionAction =
  | { type: 'send'; frame: Frame }
  /** The handshake is over: items may go, `window` of them at once. */
  | { type: 'open'; version: number; window: number }
  /** A frame for the item in `slot`. */
  | { type: 'deliver'; slot: number; frame: Frame }
  /** The connection is over: every item on it fails with `error`. */
  | { type: 'fail'; error: Error };

type Phase =
  | 'hello' // waiting for the receiver's hello
  | 'challenge' // §2.1: our CHALLENGE sent, waiting for the receiver's
  | 'proof' // our PROOF sent, waiting for the receiver's
  | 'open'
  | 'failed';

export class SenderConnection {
  readonly #options: SenderConnectionOptions;
  readonly #hello: Hello;
  #phase: Phase = 'hello';
  #proof: SecretProof | undefined;
  #version = 1;
  #connected = false;
  readonly #helloDue: number;
  #lastActivity: number;
  readonly #openSlots = new Set<number>();
  readonly #freeSlots: number[] = [];
  readonly #eager = new OpenEagerBytes();

  constructor(options: SenderConnectionOptions, now: number) {
    this.#options = options;
    this.#hello = ourHello(Role.Sender, options.secret !== undefined);
    this.#helloDue = now + options.connectTimeoutMs;
    this.#lastActivity = now;
  }

  /** The hello this end sends first, without waiting for the receiver's (§2). */
  hello(): Hello {
    return this.#hello;
  }

  get peer(): string {
    return this.#options.peer;
  }

  get version(): number {
    return this.#version;
  }

  /** Items this connection may carry at once (§6). */
  get window(): number {
    return maxOpenItems(this.#version);
  }

  get failed(): boolean {
    return this.#phase === 'failed';
  }

  /** The transport is up (TCP, and TLS when used): a silence from here on is not ackship's. */
  connected(now: number): void {
    this.#connected = true;
    this.#lastActivity = now;
  }

  /** Bytes moved either way: the connection is not silent. */
  activity(now: number): void {
    this.#lastActivity = now;
  }

  /**
   * When the driver must call `timeout()` next; undefined once failed. Activity moves it later;
   * the hello may move it sooner (a --timeout shorter than --connect-timeout).
   */
  nextDeadline(): number | undefined {
    if (this.#phase === 'failed') return undefined;
    const silence = this.#lastActivity + this.#options.idleTimeoutMs;
    // Silence counts from the start too: a connection an overloaded receiver's kernel queued is
    // retried after --timeout, whatever --connect-timeout says (the stress's backlog scenario).
    return this.#phase === 'hello' ? Math.min(this.#helloDue, silence) : silence;
  }

  /** The clock reached or passed `nextDeadline()` (a timer may fire late or early). */
  timeout(now: number): SenderConnectionAction[] {
    const due = this.nextDeadline();
    if (due === undefined || now < due) return [];
    const { peer, connectTimeoutMs, idleTimeoutMs } = this.#options;
    if (this.#phase !== 'hello' || now < this.#helloDue) {
      return this.#fail(new TransientError(`${peer} was silent for ${idleTimeoutMs / 1000} s`));
    }
    // An ackship receiver sends its hello as soon as it accepts (§2), even when too busy to
    // serve: a peer that took the connection and stays silent is something else, or a receiver
    // whose kernel queued the connection while the program could not accept it (overload).
    const seconds = connectTimeoutMs / 1000;
    return this.#fail(
      this.#connected
        ? new NoHelloError(`${peer} accepted the connection but sent no ackship hello within ${seconds} s`)
        : new TransientError(`could not connect to ${peer} within ${seconds} s (--connect-timeout)`),
    );
  }

  receive(message: Incoming, now: number): SenderConnectionAction[] {
    if (this.#phase === 'failed') return [];
    this.#lastActivity = now;
    try {
      if (message.kind === Kind.Error) {
        throw new PeerError(`receiver ended the session: ${message.message}`, message.code);
      }
      switch (this.#phase) {
        case 'hello':
          if (message.kind !== 'hello') throw new HandshakeError('receiver sent a frame before its hello');
          return this.#greeted(message.hello);
        case 'challenge':
          if (message.kind !== Kind.Challenge) throw this.#outOfTurn(message, 'CHALLENGE');
          this.#phase = 'proof';
          return [{ type: 'send', frame: (this.#proof as SecretProof).answer(message) }];
        case 'proof':
          if (message.kind !== Kind.Proof) throw this.#outOfTurn(message, 'PROOF');
          (this.#proof as SecretProof).check(message);
          return this.#open();
        default:
          return this.#route(message);
      }
    } catch (err) {
      return this.#fail(err as Error);
    }
  }

  /** The receiver hung up (or the transport broke, with `reason` from the socket). */
  closed(): SenderConnectionAction[] {
    return this.#fail(new TransientError(`${this.#options.peer} closed the connection${this.#closeHint()}`));
  }

  /** The connection ends for a reason of the driver's (a socket error, an abort, an item gone wrong). */
  fail(error: Error): SenderConnectionAction[] {
    return this.#fail(error);
  }

  /** A free slot for a new item, or undefined while the window is full (or not yet open). */
  openSlot(): number | undefined {
    if (this.#phase !== 'open') return undefined;
    const slot = this.#freeSlots.shift();
    if (slot !== undefined) this.#openSlots.add(slot);
    return slot;
  }

  /**
   * Whether the item in `slot` may go eagerly (§6.3): true, and counted until its slot is
   * released, while the connection's open eager items leave room for `size` more bytes.
   */
  reserveEager(slot: number, size: number): boolean {
    if (!this.#openSlots.has(slot) || this.#eager.has(slot) || !this.#eager.fits(size)) return false;
    this.#eager.add(slot, size);
    return true;
  }

  /** The item in `slot` is settled: the receiver may not address it again. */
  releaseSlot(slot: number): void {
    if (!this.#openSlots.delete(slot)) return;
    this.#freeSlots.push(slot);
    this.#eager.remove(slot);
  }

  #greeted(theirs: Hello): SenderConnectionAction[] {
    this.#version = negotiate(this.#hello, theirs);
    const { secret } = this.#options;
    if (secret === undefined) return this.#open();
    // §2.1: both ends prove the shared secret before anything else is sent.
    this.#proof = new SecretProof(secret, Role.Sender, this.#version);
    this.#phase = 'challenge';
    return [{ type: 'send', frame: this.#proof.challenge() }];
  }

  #open(): SenderConnectionAction[] {
    this.#phase = 'open';
    for (let slot = 0; slot < this.window; slot++) this.#freeSlots.push(slot);
    const actions: SenderConnectionAction[] = [];
    if (this.#version >= 2)
      actions.push({ type: 'send', frame: { kind: Kind.Session, id: this.#options.session } });
    actions.push({ type: 'open', version: this.#version, window: this.window });
    return actions;
  }

  #route(message: Incoming): SenderConnectionAction[] {
    if (message.kind === 'hello' || message.kind === Kind.Challenge || message.kind === Kind.Proof) {
      throw new ProtocolError('receiver sent a handshake message after the handshake', ErrorCode.Unexpected);
    }
    if (message.kind === Kind.Confirm || message.kind === Kind.Result) {
      // §2.1: with a shared secret a confirmation counts only with its tag; without, it has none.
      if (this.#proof !== undefined) this.#proof.verify(message);
      else if (message.tag !== undefined)
        throw new ProtocolError('a confirmation carries a tag in a session without a secret');
    }
    if (!('slot' in message) || !this.#openSlots.has(message.slot)) {
      throw new ProtocolError(
        `receiver sent frame kind ${message.kind} for no open item`,
        ErrorCode.Unexpected,
      );
    }
    if (message.kind === Kind.Working) {
      // v5 (§4.14): the receiver is alive and still at work on the item; its arrival was the point.
      if (this.#version < 5) throw new ProtocolError('WORKING before version 5', ErrorCode.Unexpected);
      return [];
    }
    return [{ type: 'deliver', slot: message.slot, frame: message }];
  }

  #outOfTurn(message: Incoming, expected: string): AuthError {
    return new AuthError(`the receiver sent frame kind ${message.kind} where its ${expected} was due`);
  }

  /** A receiver that hangs up before its hello may speak TLS where we do not, or the reverse. */
  #closeHint(): string {
    if (this.#phase !== 'hello') return '';
    return this.#options.tls
      ? ' before its hello (is it serving TLS, with --tls-cert?)'
      : ' before its hello (if it serves TLS, give --tls-ca or --tls-fingerprint)';
  }

  #fail(error: Error): SenderConnectionAction[] {
    if (this.#phase === 'failed') return [];
    this.#phase = 'failed';
    return [{ type: 'fail', error }];
  }
}
