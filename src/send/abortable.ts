// Waiting on work that a signal may make moot, without leaking: Promise.race against a
// long-lived promise keeps every raced value alive until that promise settles.

/** What `untilAborted` resolves with when the signal fired first. */
export const ABORTED: unique symbol = Symbol('aborted');

/** `work`'s result, or ABORTED as soon as `signal` aborts (work then goes on unobserved). */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T | typeof ABORTED> {
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(ABORTED);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
