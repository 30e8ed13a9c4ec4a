// The progress bar of `send`: on stderr, and only for a person watching a terminal.
import cliProgress from 'cli-progress';
import { formatBytes } from './units.js';

export interface Progress {
  start(name: string, size: number): void;
  update(done: number): void;
  stop(): void;
}

const silent: Progress = { start() {}, update() {}, stop() {} };

/** A bar on stderr when it is a TTY and the user did not ask for --quiet or --json; else nothing. */
export function createProgress(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!enabled || !stream.isTTY) return silent;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: '{name} [{bar}] {percentage}% {done}/{size} ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  let size = 0;
  return {
    start(name, total) {
      size = total;
      bar.start(Math.max(total, 1), 0, { name, done: formatBytes(0), size: formatBytes(total) });
    },
    update(done) {
      bar.update(Math.min(done, Math.max(size, 1)), { done: formatBytes(done) });
    },
    stop() {
      bar.stop();
    },
  };
}
