// The progress bar of `send`: the whole job (items and bytes), on stderr, and only for a person
// watching a terminal.
import cliProgress from 'cli-progress';
import { formatBytes } from './units.js';

export interface Progress {
  start(items: number, bytes: number): void;
  /** More payload bytes are on their way. */
  sent(bytes: number): void;
  /** One more item settled (confirmed or failed). */
  settled(): void;
  stop(): void;
}

const silent: Progress = { start() {}, sent() {}, settled() {}, stop() {} };

/** A bar on stderr when it is a TTY and the user did not ask for --quiet or --json; else nothing. */
export function createProgress(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!enabled || !stream.isTTY) return silent;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: '[{bar}] {percentage}% {done}/{size} | {settled}/{items} items | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  let total = 0;
  let done = 0;
  let settled = 0;
  const payload = () => ({ done: formatBytes(done), settled });
  return {
    start(items, bytes) {
      total = Math.max(bytes, 1);
      bar.start(total, 0, { ...payload(), size: formatBytes(bytes), items });
    },
    sent(bytes) {
      done += bytes;
      // A stream's length is unknown until it ends: the bar grows with it.
      if (done > total) {
        total = done;
        bar.setTotal(total);
      }
      bar.update(done, payload());
    },
    settled() {
      settled++;
      bar.update(Math.min(done, total), payload());
    },
    stop() {
      bar.stop();
    },
  };
}
