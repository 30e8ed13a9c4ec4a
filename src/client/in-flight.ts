// Backpressure for the client: at most `maxCount` messages and `maxBytes` of their payload sent
// and not yet confirmed. Past either, `acquire` waits its turn (first come, first served); one
// message larger than `maxBytes` goes alone, so that nothing waits for ever.
import { AbortedError } from '../errors.js';

interface Waiter {
  bytes: number;
  resolve: () => void;
}

export class InFlight {
  readonly #maxCount: number;
  readonly #maxBytes: number;
  #count = 0;
  #bytes = 0;
  readonly #queue: Waiter[] = [];

  constructor(maxCount: number, maxBytes: number) {
    this.#maxCount = maxCount;
    this.#maxBytes = maxBytes;
  }

  get count(): number {
    return this.#count;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Calls waiting for room. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Resolves once a message of `bytes` may go; `signal` gives up the wait (and the place in line). */
  async acquire(bytes: number, signal: AbortSignal): Promise<void> {
    if (this.#queue.length === 0 && this.#fits(bytes)) return this.#take(bytes);
    if (signal.aborted) throw signal.reason;
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { bytes, resolve };
      const onAbort = () => {
        this.#queue.splice(this.#queue.indexOf(waiter), 1);
        this.#admit();
        reject(signal.reason ?? new AbortedError('the send was aborted'));
      };
      waiter.resolve = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  release(bytes: number): void {
    this.#count--;
    this.#bytes -= bytes;
    this.#admit();
  }

  #fits(bytes: number): boolean {
    return this.#count < this.#maxCount && (this.#count === 0 || this.#bytes + bytes <= this.#maxBytes);
  }

  #take(bytes: number): void {
    this.#count++;
    this.#bytes += bytes;
  }

  #admit(): void {
    for (let next = this.#queue[0]; next !== undefined && this.#fits(next.bytes); next = this.#queue[0]) {
      this.#queue.shift();
      this.#take(next.bytes);
      next.resolve();
    }
  }
}
