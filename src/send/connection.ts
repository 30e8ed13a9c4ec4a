// One sender connection (PROTOCOL.md §2, §6): connect, exchange hellos, announce the run's
// session, then carry up to a window of items at once. Frames from the receiver are routed to
// their item by slot; every way the connection can die becomes one typed error for all of them.
import type { Socket } from 'node:net';
import {
  AuthError,
  HandshakeError,
  NoSuchHostError,
  PeerError,
  ProtocolError,
  TransientError,
} from '../errors.js';
import { type Address, formatAddress } from '../net-address.js';
import { SecretProof } from '../protocol/auth.js';
import { encodeFrame, encodeHello, type Frame } from '../protocol/codec.js';
import { ErrorCode, Kind, maxOpenItems, Role } from '../protocol/constants.js';
import { FrameParser, type Incoming } from '../protocol/frame-parser.js';
import { negotiate, ourHello } from '../protocol/handshake.js';
import { type ClientTls, connectTo, tlsFailure } from '../transport.js';
import { AsyncQueue } from './async-queue.js';
import type { RateLimiter } from './rate-limit.js';

/** How the sender and the receiver know each other: a shared secret (§2.1), TLS, both or neither. */
export interface PeerTrust {
  secret?: Buffer;
  tls?: ClientTls;
}

/** What an item sees of the connection: its slot and the frames addressed to it. */
export interface SlotLink {
  readonly slot: number;
  next(): Promise<Frame>;
  /** A frame that has already arrived, if any: lets a long write notice an early REJECT. */
  poll(): Frame | undefined;
}

/**
 * A host name that does not resolve, whatever the resolver said (also "try again": like curl,
 * a lookup failure is not retried; it fails at once and says why).
 */
function lookupFailure(err: NodeJS.ErrnoException, host: string): NoSuchHostError | undefined {
  if (err.syscall !== 'getaddrinfo') return undefined;
  return new NoSuchHostError(
    `cannot resolve ${host} (${err.code}); check the receiver's name, nothing was sent`,
  );
}

/** The peer took the connection and sent no hello in time: retried, unless it never did (sender.ts). */
export class NoHelloError extends TransientError {}

export class Connection {
  readonly #socket: Socket;
  readonly #parser = new FrameParser();
  /** The hello, and with a shared secret the receiver's CHALLENGE and PROOF (§2.1). */
  readonly #handshake = new AsyncQueue<Incoming>();
  #proof: SecretProof | undefined;
  #opened = false;
  readonly #tls: boolean;
  #helloSeen = false;
  readonly #slots = new Map<number, AsyncQueue<Frame>>();
  readonly #freeSlots: number[] = [];
  readonly #slotWaiters: Array<() => void> = [];
  readonly #signal: AbortSignal;
  readonly #onAbort = () => this.#fail(this.#signal.reason as Error);
  #dataLock: Promise<void> = Promise.resolve();
  #error: Error | undefined;
  #version = 1;
  /** --limit-rate, shared by every connection of the run. */
  #limiter: RateLimiter | undefined;

  private constructor(
    socket: Socket,
    timeoutMs: number,
    address: Address,
    signal: AbortSignal,
    tls: boolean,
  ) {
    const peer = formatAddress(address);
    this.#tls = tls;
    this.#socket = socket;
    this.#signal = signal;
    // An abort (Ctrl-C) ends the connection at once; the receiver keeps the partials for a resume.
    signal.addEventListener('abort', this.#onAbort, { once: true });
    if (signal.aborted) this.#onAbort();
    socket.setNoDelay(true);
    socket.setTimeout(timeoutMs, () => {
      this.#fail(new TransientError(`${peer} was silent for ${timeoutMs / 1000} s`));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const message of this.#parser.push(chunk)) this.#route(message);
      } catch (err) {
        this.#fail(err as Error);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      this.#fail(
        err instanceof AuthError
          ? err
          : (lookupFailure(err, address.host) ??
              tlsFailure(err) ??
              new TransientError(`connection to ${peer} failed: ${err.message}`)),
      ),
    );
    socket.on('close', () =>
      this.#fail(new TransientError(`${peer} closed the connection${this.#closeHint()}`)),
    );
  }

  /**
   * Connects and completes the §2 handshake; from version 2 it tells the receiver which run the
   * connection belongs to. `signal` (whose reason is the error to raise) aborts at any time.
   */
  static async open(
    address: Address,
    timeouts: { idleMs: number; connectMs: number },
    signal: AbortSignal,
    session: Buffer,
    trust: PeerTrust = {},
    limiter?: RateLimiter,
  ): Promise<Connection> {
    const { secret, tls } = trust;
    const peer = formatAddress(address);
    const socket = connectTo(address, tls);
    const connection = new Connection(socket, timeouts.idleMs, address, signal, tls !== undefined);
    connection.#limiter = limiter;
    // An ackship receiver sends its hello as soon as it accepts (§2), even when too busy to
    // serve: a peer that took the connection and stays silent is something else, or a receiver
    // whose kernel queued the connection while the program could not accept it (overload).
    const connectS = timeouts.connectMs / 1000;
    const helloDue = setTimeout(() => {
      connection.#fail(
        socket.connecting
          ? new TransientError(`could not connect to ${peer} within ${connectS} s (--connect-timeout)`)
          : new NoHelloError(
              `${peer} accepted the connection but sent no ackship hello within ${connectS} s`,
            ),
      );
    }, timeouts.connectMs);
    try {
      const hello = ourHello(Role.Sender, secret !== undefined);
      connection.#socket.write(encodeHello(hello));
      const first = await connection.#handshake.next();
      clearTimeout(helloDue);
      if (first.kind !== 'hello') throw new HandshakeError('receiver sent a frame before its hello');
      connection.#helloSeen = true;
      connection.#version = negotiate(hello, first.hello);
      if (secret !== undefined) await connection.#prove(secret);
      connection.#opened = true;
      for (let slot = 0; slot < connection.window; slot++) connection.#freeSlots.push(slot);
      if (connection.#version >= 2) await connection.send({ kind: Kind.Session, id: session });
      return connection;
    } catch (err) {
      clearTimeout(helloDue);
      connection.close();
      throw err;
    }
  }

  /**
   * §2.1: both ends prove the shared secret before anything else is sent; we offer nothing to a
   * receiver that has not proved it.
   */
  async #prove(secret: Buffer): Promise<void> {
    const proof = new SecretProof(secret, Role.Sender, this.#version);
    this.#proof = proof;
    await this.send(proof.challenge());
    const challenge = await this.#handshake.next();
    if (challenge.kind !== Kind.Challenge) throw this.#handshakeFrame(challenge, 'CHALLENGE');
    await this.send(proof.answer(challenge));
    const answer = await this.#handshake.next();
    if (answer.kind !== Kind.Proof) throw this.#handshakeFrame(answer, 'PROOF');
    proof.check(answer);
  }

  #handshakeFrame(frame: Incoming, expected: string): Error {
    return new AuthError(`the receiver sent frame kind ${frame.kind} where its ${expected} was due`);
  }

  /** A receiver that hangs up before its hello may speak TLS where we do not, or the reverse. */
  #closeHint(): string {
    if (this.#helloSeen) return '';
    return this.#tls
      ? ' before its hello (is it serving TLS, with --tls-cert?)'
      : ' before its hello (if it serves TLS, give --tls-ca or --tls-fingerprint)';
  }

  get version(): number {
    return this.#version;
  }

  /** Items this connection may carry at once (§6). */
  get window(): number {
    return maxOpenItems(this.#version);
  }

  /** False once the connection failed: its items fail, and new ones need a new connection. */
  get usable(): boolean {
    return this.#error === undefined;
  }

  /** Runs `work` with a slot of its own, waiting while the window is full. */
  async withSlot<T>(work: (link: SlotLink) => Promise<T>): Promise<T> {
    while (this.#freeSlots.length === 0) {
      if (this.#error !== undefined) throw this.#error;
      await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
    }
    if (this.#error !== undefined) throw this.#error;
    const slot = this.#freeSlots.shift() as number;
    const queue = new AsyncQueue<Frame>();
    this.#slots.set(slot, queue);
    try {
      return await work({ slot, next: () => queue.next(), poll: () => queue.poll() });
    } finally {
      this.#slots.delete(slot);
      this.#freeSlots.push(slot);
      this.#slotWaiters.shift()?.();
    }
  }

  /** Runs `work` alone among the items of this connection: one item's DATA at a time. */
  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    const previous = this.#dataLock;
    let release: () => void = () => {};
    this.#dataLock = new Promise((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      return await work();
    } finally {
      release();
    }
  }

  /**
   * Writes a frame. Resolves at once while the socket's buffer has room; when it is full, or with
   * `reuse` (the caller will overwrite the payload's memory next), once the kernel has the bytes.
   */
  async send(frame: Frame, reuse = false): Promise<void> {
    if (this.#limiter !== undefined && (frame.kind === Kind.Data || frame.kind === Kind.Chunk))
      await this.#limiter.take(frame.payload.length, this.#signal);
    return this.#write([frame], reuse);
  }

  /** Writes frames that go together (a message's, §6.2) in one corked batch: one system call, not one per frame. */
  async sendAll(frames: Frame[]): Promise<void> {
    if (this.#limiter !== undefined) {
      for (const frame of frames)
        if (frame.kind === Kind.Data) await this.#limiter.take(frame.payload.length, this.#signal);
    }
    return this.#write(frames, false);
  }

  async #write(frames: Frame[], reuse: boolean): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    const parts = frames.flatMap((frame) => encodeFrame(frame));
    let room = true;
    const written = new Promise<void>((resolve, reject) => {
      this.#socket.cork();
      parts.forEach((part, i) => {
        const last = i === parts.length - 1;
        room = this.#socket.write(part, last ? (err) => (err ? reject(err) : resolve()) : undefined);
      });
      this.#socket.uncork();
    }).catch(() => {
      throw this.#error ?? new TransientError('the connection failed while writing');
    });
    if (room && !reuse) {
      written.catch(() => {}); // a failure reaches the item through its next read instead
      return;
    }
    await written;
  }

  /**
   * Drops the connection because one item cannot go on (its file changed mid-send): the
   * receiver still holds that item open, so its slot is unusable. The other items retry.
   */
  abort(reason: Error): void {
    this.#fail(new TransientError(`connection dropped after an item failed: ${reason.message}`));
  }

  /** Ends the connection cleanly: the receiver sees the session end after our last frame. */
  close(): void {
    this.#signal.removeEventListener('abort', this.#onAbort);
    this.#fail(new TransientError('connection closed'), false);
    this.#socket.end();
    // Waiting for the receiver's FIN would only delay our exit; the kernel sends ours regardless.
    this.#socket.unref();
  }

  #route(message: Incoming): void {
    if (message.kind === 'hello' || message.kind === Kind.Challenge || message.kind === Kind.Proof) {
      if (this.#opened) {
        this.#fail(
          new ProtocolError(`receiver sent a handshake message after the handshake`, ErrorCode.Unexpected),
        );
      } else this.#handshake.push(message);
      return;
    }
    if (message.kind === Kind.Error) {
      this.#fail(new PeerError(`receiver ended the session: ${message.message}`, message.code));
      return;
    }
    if (message.kind === Kind.Confirm || message.kind === Kind.Result) {
      // §2.1: with a shared secret a confirmation counts only with its tag; without, it has none.
      if (this.#proof !== undefined) this.#proof.verify(message);
      else if (message.tag !== undefined)
        throw new ProtocolError('a confirmation carries a tag in a session without a secret');
    }
    const queue = 'slot' in message ? this.#slots.get(message.slot) : undefined;
    if (queue === undefined) {
      this.#fail(
        new ProtocolError(`receiver sent frame kind ${message.kind} for no open item`, ErrorCode.Unexpected),
      );
      return;
    }
    queue.push(message);
  }

  #fail(err: Error, destroy = true): void {
    if (this.#error !== undefined) return;
    this.#error = err;
    this.#signal.removeEventListener('abort', this.#onAbort);
    if (destroy) this.#socket.destroy();
    this.#handshake.fail(err);
    for (const queue of this.#slots.values()) queue.fail(err);
    for (const wake of this.#slotWaiters.splice(0)) wake();
  }
}
