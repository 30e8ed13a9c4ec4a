// A TCP proxy between a sender and a receiver that can slow the stream down, follow the
// receiver to a new port after a restart, and cut a reply short: real faults on real sockets.
import { EventEmitter, once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';

/** What to do to one direction of a connection. */
export interface DirectionFaults {
  /** Forward only this many bytes; the first byte beyond them resets both sides instead. */
  cutAfter?: number;
  /** Forward this many bytes, then drop the rest silently: the connection stays open. */
  swallowAfter?: number;
  /** Flip the bits of the byte at this position. */
  corruptAt?: number;
}

/** What to do to one connection. */
export interface ConnectionFaults {
  /** Faults in the sender→receiver direction. */
  request?: DirectionFaults;
  /** Faults in the receiver→sender direction. */
  reply?: DirectionFaults;
  /** After this many sender→receiver bytes, stop forwarding both ways, keeping both sockets open. */
  stallAfter?: number;
}

/** The faults in the options themselves apply to the first connection, unless `faultsFor` says otherwise. */
export interface ProxyOptions extends ConnectionFaults {
  /** The receiver's port on 127.0.0.1. */
  target: number;
  /** Sender→receiver bytes per second; unthrottled when undefined. */
  rate?: number;
  /** Hand the receiver one byte per write, each after the previous one was flushed. */
  dribble?: boolean;
  /** The faults of connection `n` (counting from 0). */
  faultsFor?: (n: number) => ConnectionFaults;
  /** Lower the highest protocol version both hellos announce to this, on every connection: an older peer. */
  capVersion?: number;
}

export class FaultProxy extends EventEmitter {
  readonly #server: Server;
  readonly #options: ProxyOptions;
  readonly #sockets = new Set<Socket>();
  #target: number;
  #connections = 0;
  /** Sender→receiver bytes forwarded, over all connections. */
  forwarded = 0;
  /** Receiver→sender bytes forwarded, over all connections; each chunk is also emitted as 'returned'. */
  returned = 0;

  private constructor(options: ProxyOptions) {
    super();
    this.#options = options;
    this.#target = options.target;
    this.#server = createServer((client) => this.#pair(client));
  }

  /** Listens on 127.0.0.1; closed when the test `t` ends (without one, the caller closes it). */
  static async start(t: Pick<TestContext, 'after'> | undefined, options: ProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options);
    proxy.#server.listen(0, '127.0.0.1');
    await once(proxy.#server, 'listening');
    t?.after(() => proxy.close());
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Where new connections go (the receiver came back on another port). */
  retarget(port: number): void {
    this.#target = port;
  }

  /** Resolves once at least `bytes` have been forwarded to the receiver. */
  async waitForwarded(bytes: number): Promise<void> {
    while (this.forwarded < bytes) await once(this, 'forwarded');
  }

  /** Resets every connection open now, both sides; new ones are forwarded as before. */
  resetAll(): void {
    for (const socket of this.#sockets) socket.resetAndDestroy();
  }

  /** Stops for good: resets every connection and refuses new ones. */
  close(): void {
    this.resetAll();
    this.#server.close();
  }

  #pair(client: Socket): void {
    const n = this.#connections++;
    const faults = this.#options.faultsFor?.(n) ?? (n === 0 ? this.#options : {});
    const upstream = connect({ host: '127.0.0.1', port: this.#target });
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    const { rate, dribble } = this.#options;
    const { stallAfter } = faults;
    let stalled = false;
    const reset = () => {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    };
    const request = faults.request ?? {};
    const reply = faults.reply ?? {};
    this.#forward(
      client,
      upstream,
      request,
      reset,
      () => stalled,
      async (chunk, at) => {
        this.forwarded += chunk.length;
        this.emit('forwarded');
        if (stallAfter !== undefined && at + chunk.length >= stallAfter) stalled = true;
        if (dribble) {
          for (let i = 0; i < chunk.length; i++) {
            if (!upstream.write(chunk.subarray(i, i + 1))) await once(upstream, 'drain');
            await new Promise((resolve) => setImmediate(resolve));
          }
        } else upstream.write(chunk);
        if (rate !== undefined)
          await new Promise((resolve) => setTimeout(resolve, (chunk.length * 1000) / rate));
      },
    );
    this.#forward(
      upstream,
      client,
      reply,
      reset,
      () => stalled,
      async (chunk) => {
        this.returned += chunk.length;
        this.emit('returned', chunk);
        client.write(chunk);
      },
    );
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  }

  /** Pumps `from` into `send`, one chunk at a time, applying `faults` on the way. */
  #forward(
    from: Socket,
    to: Socket,
    faults: DirectionFaults,
    reset: () => void,
    stalled: () => boolean,
    send: (chunk: Buffer, at: number) => Promise<void>,
  ): void {
    let seen = 0;
    from.on('data', (data: Buffer) => {
      const at = seen;
      seen += data.length;
      let chunk = data;
      const { capVersion } = this.#options;
      const maxVersion = 5 - at; // the hello's max_version byte
      if (capVersion !== undefined && maxVersion >= 0 && maxVersion < chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[maxVersion] = Math.min(chunk[maxVersion] as number, capVersion);
      }
      const flip = faults.corruptAt === undefined ? -1 : faults.corruptAt - at;
      if (flip >= 0 && flip < chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[flip] = (chunk[flip] as number) ^ 0xff;
      }
      const limit = Math.min(faults.cutAfter ?? Infinity, faults.swallowAfter ?? Infinity);
      chunk = chunk.subarray(0, Math.max(0, limit - at));
      if (stalled() || to.destroyed) return;
      from.pause();
      void send(chunk, at).finally(() => {
        if (faults.cutAfter !== undefined && seen > faults.cutAfter) reset();
        else from.resume();
      });
    });
  }
}
