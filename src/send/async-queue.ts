// A queue read by one consumer that awaits its next item; once failed, it still hands out what
// was queued before the failure, then the failure. (A REJECT that arrived just before the
// connection closed is the reason, not the close.)

export class AsyncQueue<T> {
  readonly #items: T[] = [];
  #waiter: { resolve: (item: T) => void; reject: (err: Error) => void } | undefined;
  #error: Error | undefined;

  push(item: T): void {
    if (this.#error !== undefined) return;
    this.#items.push(item);
    this.#wake();
  }

  /** No more items: after the queued ones, `next()` rejects with `err`. The first failure wins. */
  fail(err: Error): void {
    this.#error ??= err;
    this.#wake();
  }

  next(): Promise<T> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** An item that has already arrived, if any. */
  poll(): T | undefined {
    return this.#items.shift();
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter === undefined) return;
    const item = this.#items.shift();
    if (item !== undefined) {
      this.#waiter = undefined;
      waiter.resolve(item);
    } else if (this.#error !== undefined) {
      this.#waiter = undefined;
      waiter.reject(this.#error);
    }
  }
}
