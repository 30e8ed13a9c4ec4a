// The plain-TCP sink the naive modes send to: no protocol, so a message counts once its
// connection ended and its bytes check out. It answers "REPORT <run>\n" with the ids it holds
// for that run (one JSON line), which is how `ackship stress --target` learns, over a channel
// that either completes or fails visibly, what a remote receiving program actually got.
import { type AddressInfo, createServer, type Server } from 'node:net';
import type { Address } from '../net-address.js';
import { checkMessage, type MessageId } from './messages.js';

const REPORT = Buffer.from('REPORT ');
/** Runs remembered; the oldest are forgotten first. */
const MAX_RUNS = 100;

export class StressSink {
  readonly #server: Server;
  readonly #runs = new Map<number, Set<number>>();

  /** `got` hears of every verified message as it arrives. */
  constructor(got: (message: MessageId) => void = () => {}) {
    this.#server = createServer({ allowHalfOpen: true }, (socket) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', () => {});
      socket.on('end', () => {
        const bytes = Buffer.concat(chunks);
        if (bytes.subarray(0, REPORT.length).equals(REPORT)) {
          const run = Number(bytes.subarray(REPORT.length).toString().trim());
          socket.end(`${JSON.stringify({ run, ids: [...(this.#runs.get(run) ?? [])] })}\n`);
          return;
        }
        const message = checkMessage(bytes);
        if (message !== undefined) {
          this.#record(message);
          got(message);
        }
        socket.end();
      });
    });
  }

  async listen(address: Address): Promise<Address> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(address.port, address.host, () => resolve());
    });
    const bound = this.#server.address() as AddressInfo;
    return { host: bound.address, port: bound.port };
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #record({ run, id }: MessageId): void {
    let ids = this.#runs.get(run);
    if (ids === undefined) {
      ids = new Set();
      this.#runs.set(run, ids);
      if (this.#runs.size > MAX_RUNS) this.#runs.delete(this.#runs.keys().next().value as number);
    }
    ids.add(id);
  }
}
