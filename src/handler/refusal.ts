// What a handler throws to refuse an item with its own reason (PROTOCOL.md §4.3 codes 9, 10).

export class Refusal extends Error {
  override name = 'Refusal';
  /** The sender may try again later (code 10); otherwise the refusal is final (code 9). */
  readonly retryable: boolean;

  constructor(reason: string, options: { retryable?: boolean } = {}) {
    super(reason);
    this.retryable = options.retryable ?? false;
  }
}
