// A TCP proxy between a sender and a receiver that can slow the stream down, follow the
// receiver to a new port after a restart, and cut a reply short: real faults on real sockets.
import { EventEmitter, once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';

export interface ProxyOptions {
  /** The receiver's port on 127.0.0.1. */
  target: number;
  /** Sender→receiver bytes per second; unthrottled when undefined. */
  rate?: number;
  /** On the first connection, forward only this many receiver→sender bytes, then reset both sides. */
  cutReplyAfter?: number;
  /** Flip the bits of the sender→receiver byte at this position (counted over all connections), once. */
  corruptAt?: number;
  /** On the first connection, flip the bits of the receiver→sender byte at this position. */
  corruptReplyAt?: number;
}

export class FaultProxy extends EventEmitter {
  readonly #server: Server;
  readonly #options: ProxyOptions;
  readonly #sockets = new Set<Socket>();
  #target: number;
  #connections = 0;
  /** Sender→receiver bytes forwarded, over all connections. */
  forwarded = 0;

  private constructor(options: ProxyOptions) {
    super();
    this.#options = options;
    this.#target = options.target;
    this.#server = createServer((client) => this.#pair(client));
  }

  static async start(t: TestContext, options: ProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options);
    proxy.#server.listen(0, '127.0.0.1');
    await once(proxy.#server, 'listening');
    t.after(() => proxy.close());
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
    const first = this.#connections++ === 0;
    const upstream = connect({ host: '127.0.0.1', port: this.#target });
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      const { corruptAt } = this.#options;
      const at = corruptAt === undefined ? -1 : corruptAt - this.forwarded;
      if (at >= 0 && at < chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[at] = (chunk[at] as number) ^ 0xff;
      }
      upstream.write(chunk);
      this.forwarded += chunk.length;
      this.emit('forwarded');
      const { rate } = this.#options;
      if (rate !== undefined) {
        client.pause();
        setTimeout(() => client.resume(), (chunk.length * 1000) / rate);
      }
    });
    let replied = 0;
    upstream.on('data', (chunk: Buffer) => {
      const at = replied;
      replied += chunk.length;
      const { corruptReplyAt, cutReplyAfter } = this.#options;
      const flip = first && corruptReplyAt !== undefined ? corruptReplyAt - at : -1;
      if (flip >= 0 && flip < chunk.length) {
        chunk = Buffer.from(chunk);
        chunk[flip] = (chunk[flip] as number) ^ 0xff;
      }
      const cut = first ? cutReplyAfter : undefined;
      if (cut === undefined) {
        client.write(chunk);
        return;
      }
      const room = cut - at;
      if (room > 0) client.write(chunk.subarray(0, room));
      if (room < chunk.length) {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  }
}
