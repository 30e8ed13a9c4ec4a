// One sender connection (PROTOCOL.md §2, §6): the socket, timer and queues around the
// connection's state machine (src/protocol/sender-connection.ts), which holds the rules of the
// handshake, the deadlines and the routing of frames to their item by slot. Every way the
// connection can die becomes one typed error for all of its items.
import type { Socket } from 'node:net';
import { AuthError, NoSuchHostError, TransientError } from '../errors.js';
import { type Address, formatAddress } from '../net-address.js';
import { encodeFrame, encodeHello, type Frame } from '../protocol/codec.js';
import { Kind } from '../protocol/constants.js';
import { FrameParser } from '../protocol/frame-parser.js';
import { payloadLength } from '../protocol/payload.js';
import { SenderConnection, type SenderConnectionAction } from '../protocol/sender-connection.js';
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

/** Milliseconds on a monotonic clock: the machine's `now`. */
const now = () => performance.now();

export class Connection {
  readonly #socket: Socket;
  readonly #parser = new FrameParser();
  readonly #machine: SenderConnection;
  /** Settles when the handshake is over, or failed. */
  readonly #opened: Promise<void>;
  #resolveOpened: () => void = () => {};
  #rejectOpened: (err: Error) => void = () => {};
  #timer: NodeJS.Timeout | undefined;
  /** The deadline the timer is set for: activity moves deadlines later, a phase may move them sooner. */
  #armedFor = Number.POSITIVE_INFINITY;
  readonly #slots = new Map<number, AsyncQueue<Frame>>();
  readonly #slotWaiters: Array<() => void> = [];
  readonly #signal: AbortSignal;
  readonly #onAbort = () => this.#apply(this.#machine.fail(this.#signal.reason as Error));
  #dataLock: Promise<void> = Promise.resolve();
  /** Items holding or waiting for the data lock. */
  #exclusive = 0;
  #error: Error | undefined;
  /** --limit-rate, shared by every connection of the run. */
  readonly #limiter: RateLimiter | undefined;

  private constructor(
    socket: Socket,
    machine: SenderConnection,
    host: string,
    signal: AbortSignal,
    limiter: RateLimiter | undefined,
  ) {
    this.#socket = socket;
    this.#machine = machine;
    this.#signal = signal;
    this.#limiter = limiter;
    this.#opened = new Promise((resolve, reject) => {
      this.#resolveOpened = resolve;
      this.#rejectOpened = reject;
    });
    this.#opened.catch(() => {}); // open() awaits it; a later failure reaches the items instead
    // An abort (Ctrl-C) ends the connection at once; the receiver keeps the partials for a resume.
    signal.addEventListener('abort', this.#onAbort, { once: true });
    socket.setNoDelay(true);
    socket.once('connect', () => machine.connected(now()));
    socket.on('data', (chunk: Buffer) => {
      const at = now();
      machine.activity(at);
      try {
        for (const message of this.#parser.push(chunk)) this.#apply(machine.receive(message, at));
      } catch (err) {
        this.#apply(machine.fail(err as Error));
      }
      // The hello ends the connect deadline, and the silence deadline may come sooner.
      const due = machine.nextDeadline();
      if (due !== undefined && due < this.#armedFor) this.#arm();
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      this.#apply(
        machine.fail(
          err instanceof AuthError
            ? err
            : (lookupFailure(err, host) ??
                tlsFailure(err) ??
                new TransientError(`connection to ${machine.peer} failed: ${err.message}`)),
        ),
      ),
    );
    socket.on('close', () => this.#apply(machine.closed()));
    this.#arm();
    if (signal.aborted) this.#onAbort();
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
    const machine = new SenderConnection(
      {
        peer: formatAddress(address),
        session,
        ...(secret !== undefined && { secret }),
        tls: tls !== undefined,
        connectTimeoutMs: timeouts.connectMs,
        idleTimeoutMs: timeouts.idleMs,
      },
      now(),
    );
    const connection = new Connection(connectTo(address, tls), machine, address.host, signal, limiter);
    try {
      connection.#socket.write(encodeHello(machine.hello()));
      await connection.#opened;
      return connection;
    } catch (err) {
      connection.close();
      throw err;
    }
  }

  get version(): number {
    return this.#machine.version;
  }

  /** Items this connection may carry at once (§6). */
  get window(): number {
    return this.#machine.window;
  }

  /** False once the connection failed: its items fail, and new ones need a new connection. */
  get usable(): boolean {
    return this.#error === undefined;
  }

  /** Whether the item in `slot` may go eagerly: the open eager items leave room for it (§6.3). */
  reserveEager(slot: number, size: number): boolean {
    return this.#machine.reserveEager(slot, size);
  }

  /** Runs `work` with a slot of its own, waiting while the window is full. */
  async withSlot<T>(work: (link: SlotLink) => Promise<T>): Promise<T> {
    let slot = this.#machine.openSlot();
    while (slot === undefined) {
      if (this.#error !== undefined) throw this.#error;
      await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
      slot = this.#machine.openSlot();
    }
    if (this.#error !== undefined) {
      this.#machine.releaseSlot(slot);
      throw this.#error;
    }
    const queue = new AsyncQueue<Frame>();
    this.#slots.set(slot, queue);
    try {
      return await work({ slot, next: () => queue.next(), poll: () => queue.poll() });
    } finally {
      this.#slots.delete(slot);
      this.#machine.releaseSlot(slot);
      this.#slotWaiters.shift()?.();
    }
  }

  /** Runs `work` alone among the items of this connection: one item's DATA at a time. */
  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    this.#exclusive++;
    const previous = this.#dataLock;
    let release: () => void = () => {};
    this.#dataLock = new Promise((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      return await work();
    } finally {
      this.#exclusive--;
      release();
    }
  }

  /**
   * Writes a frame. Resolves at once while the socket's buffer has room; when it is full, or with
   * `reuse` (the caller will overwrite the payload's memory next), once the kernel has the bytes.
   */
  async send(frame: Frame, reuse = false): Promise<void> {
    if (this.#limiter !== undefined && (frame.kind === Kind.Data || frame.kind === Kind.Chunk))
      await this.#limiter.take(payloadLength(frame.payload), this.#signal);
    return this.#write([frame], reuse);
  }

  /**
   * Writes frames that go together (a message's, §6.2) at once, never between another item's
   * DATA frames, in the tick's one system call. With the lock free, no promise is made for it.
   */
  sendAll(frames: Frame[]): Promise<void> {
    if (this.#exclusive === 0 && this.#limiter === undefined) return this.#write(frames, false);
    return this.exclusive(async () => {
      if (this.#limiter !== undefined) {
        for (const frame of frames)
          if (frame.kind === Kind.Data) await this.#limiter.take(payloadLength(frame.payload), this.#signal);
      }
      return this.#write(frames, false);
    });
  }

  async #write(frames: Frame[], reuse: boolean): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    const parts = frames.flatMap((frame) => encodeFrame(frame));
    let room = true;
    const written = new Promise<void>((resolve, reject) => {
      this.#corkForTick();
      parts.forEach((part, i) => {
        const last = i === parts.length - 1;
        room = this.#socket.write(part, last ? (err) => this.#written(err, resolve, reject) : undefined);
      });
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
   * Frames written within one tick leave in one system call: 64 messages sent as their slots
   * free up make one writev, not 64. The cork comes off when the tick ends, or at end().
   */
  #corkForTick(): void {
    const socket = this.#socket;
    if (socket.writableCorked > 0) return;
    socket.cork();
    process.nextTick(() => socket.uncork());
  }

  /** A write reached the kernel: the connection is moving, whatever the receiver says. */
  #written(err: Error | null | undefined, resolve: () => void, reject: (err: Error) => void): void {
    if (err) {
      reject(err);
      return;
    }
    this.#machine.activity(now());
    resolve();
  }

  /**
   * Drops the connection because one item cannot go on (its file changed mid-send): the
   * receiver still holds that item open, so its slot is unusable. The other items retry.
   */
  abort(reason: Error): void {
    this.#apply(
      this.#machine.fail(new TransientError(`connection dropped after an item failed: ${reason.message}`)),
    );
  }

  /** Ends the connection cleanly: the receiver sees the session end after our last frame. */
  close(): void {
    this.#apply(this.#machine.fail(new TransientError('connection closed')), false);
    this.#socket.end();
    // Waiting for the receiver's FIN would only delay our exit; the kernel sends ours regardless.
    this.#socket.unref();
  }

  /** Wakes the machine at its next deadline; it says whether the deadline still stands. */
  #arm(): void {
    clearTimeout(this.#timer);
    const due = this.#machine.nextDeadline();
    this.#armedFor = due ?? Number.POSITIVE_INFINITY;
    if (due === undefined) return;
    this.#timer = setTimeout(
      () => {
        this.#apply(this.#machine.timeout(now()));
        this.#arm();
      },
      Math.max(0, due - now()),
    );
  }

  /** `destroy`: a failure drops the socket at once; a clean close lets our last frames go first. */
  #apply(actions: SenderConnectionAction[], destroy = true): void {
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          for (const part of encodeFrame(action.frame)) this.#socket.write(part);
          break;
        case 'open':
          this.#resolveOpened();
          break;
        case 'deliver':
          this.#slots.get(action.slot)?.push(action.frame);
          break;
        case 'fail':
          this.#fail(action.error, destroy);
      }
    }
  }

  #fail(err: Error, destroy: boolean): void {
    this.#error = err;
    clearTimeout(this.#timer);
    this.#signal.removeEventListener('abort', this.#onAbort);
    if (destroy) this.#socket.destroy();
    this.#rejectOpened(err);
    for (const queue of this.#slots.values()) queue.fail(err);
    for (const wake of this.#slotWaiters.splice(0)) wake();
  }
}
