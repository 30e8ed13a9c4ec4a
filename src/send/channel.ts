// One sender connection: connect, exchange hellos, then write frames and await answers with a
// silence timeout. Every way a connection can die ends as one typed error for the attempt.
import { connect, type Socket } from 'node:net';
import { HandshakeError, TransientError } from '../errors.js';
import { type Address, formatAddress } from '../net-address.js';
import { encodeFrame, encodeHello, type Frame } from '../protocol/codec.js';
import { FrameParser, type Incoming } from '../protocol/frame-parser.js';
import { negotiate } from '../protocol/handshake.js';
import { senderHello } from '../protocol/sender-machine.js';

type Waiter = { resolve: (message: Incoming) => void; reject: (err: Error) => void };

export class Channel {
  readonly #socket: Socket;
  readonly #parser = new FrameParser();
  readonly #queue: Incoming[] = [];
  readonly #signal: AbortSignal;
  readonly #onAbort = () => this.#fail(this.#signal.reason as Error);
  #waiter: Waiter | undefined;
  #onFail: ((err: Error) => void) | undefined;
  #error: Error | undefined;

  private constructor(socket: Socket, timeoutMs: number, peer: string, signal: AbortSignal) {
    this.#socket = socket;
    this.#signal = signal;
    // An abort (Ctrl-C) ends the connection at once; the receiver keeps the partial for a resume.
    signal.addEventListener('abort', this.#onAbort, { once: true });
    if (signal.aborted) this.#onAbort();
    socket.setNoDelay(true);
    socket.setTimeout(timeoutMs, () => {
      this.#fail(new TransientError(`${peer} was silent for ${timeoutMs / 1000} s`));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#queue.push(...this.#parser.push(chunk));
      } catch (err) {
        this.#fail(err as Error);
        return;
      }
      this.#wake();
    });
    socket.on('error', (err) =>
      this.#fail(new TransientError(`connection to ${peer} failed: ${err.message}`)),
    );
    socket.on('close', () => this.#fail(new TransientError(`${peer} closed the connection`)));
  }

  /** Connects and completes the §2 handshake; `signal` (whose reason is the error to raise) aborts. */
  static async open(address: Address, timeoutMs: number, signal: AbortSignal): Promise<Channel> {
    const peer = formatAddress(address);
    const socket = connect({ host: address.host, port: address.port });
    const channel = new Channel(socket, timeoutMs, peer, signal);
    try {
      socket.write(encodeHello(senderHello()));
      const first = await channel.next();
      if (first.kind !== 'hello') throw new HandshakeError('receiver sent a frame before its hello');
      negotiate(senderHello(), first.hello);
      return channel;
    } catch (err) {
      channel.close();
      throw err;
    }
  }

  /** The next frame from the receiver; rejects once the connection failed and nothing is queued. */
  next(): Promise<Incoming> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** A frame that has already arrived, if any: lets a long write notice an early REJECT or ERROR. */
  poll(): Incoming | undefined {
    return this.#queue.shift();
  }

  /** Writes a frame; resolves at once, or after 'drain' when the socket's buffer is full. */
  async send(frame: Frame): Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    this.#socket.cork();
    let flushed = true;
    for (const part of encodeFrame(frame)) flushed = this.#socket.write(part);
    this.#socket.uncork();
    if (flushed) return;
    await new Promise<void>((resolve, reject) => {
      const settle = (err?: Error) => {
        this.#socket.off('drain', settle);
        this.#onFail = undefined;
        if (err) reject(err);
        else resolve();
      };
      this.#socket.once('drain', settle);
      this.#onFail = settle;
    });
  }

  /** Lets the connection die with `err` (used to cancel a transfer from outside). */
  abort(err: Error): void {
    this.#fail(err);
  }

  /** Ends the connection cleanly: the receiver sees the session end after our last frame. */
  close(): void {
    this.#signal.removeEventListener('abort', this.#onAbort);
    this.#socket.end();
    // Waiting for the receiver's FIN would only delay our exit; the kernel sends ours regardless.
    this.#socket.unref();
  }

  #fail(err: Error): void {
    if (this.#error !== undefined) return;
    this.#error = err;
    this.#signal.removeEventListener('abort', this.#onAbort);
    this.#socket.destroy();
    this.#onFail?.(err);
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter === undefined) return;
    const queued = this.#queue.shift();
    if (queued !== undefined) {
      this.#waiter = undefined;
      waiter.resolve(queued);
    } else if (this.#error !== undefined) {
      this.#waiter = undefined;
      waiter.reject(this.#error);
    }
  }
}
