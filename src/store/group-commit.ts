// Group commit: callers that ask for the same fsync while one is under way share the next
// one, so 64 items committing at once cost a few fsyncs of the journal and of a directory,
// not 64 in a row, and none of them is told "durable" by a sync that started before its write.

export class GroupCommit {
  readonly #task: () => Promise<void>;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;

  constructor(task: () => Promise<void>) {
    this.#task = task;
  }

  /** Resolves after a run of the task that started after this call. */
  run(): Promise<void> {
    if (this.#next !== undefined) return this.#next;
    if (this.#running === undefined) return this.#start();
    const next = this.#running
      .catch(() => {})
      .then(() => {
        this.#next = undefined;
        return this.#start();
      });
    this.#next = next;
    return next;
  }

  /** True when no run is under way or waiting. */
  get idle(): boolean {
    return this.#running === undefined && this.#next === undefined;
  }

  #start(): Promise<void> {
    const run = this.#task();
    this.#running = run;
    const clear = () => {
      if (this.#running === run) this.#running = undefined;
    };
    run.then(clear, clear);
    return run;
  }
}
