// The progress bar of `send`: the whole job on one line of stderr, for a person watching a
// terminal. Lines that go to the same terminal meanwhile (item lines, retries, failures) are
// printed above it, never onto it. It moves the cursor only within its own line, and hides
// nothing and turns no terminal mode off, so no exit (SIGKILL included) leaves the terminal
// changed, and a scroll cannot strand it.
import { Writable } from 'node:stream';
import cliProgress from 'cli-progress';
import { formatBytes } from './units.js';

export interface Progress {
  /** `bytes` undefined: a stream is among the items, so the total is not known. */
  start(items: number, bytes: number | undefined): void;
  /** `bytes` more of item `name` are on their way. */
  sent(name: string, bytes: number): void;
  /** One more item confirmed. */
  confirmed(): void;
  /** `stream`, or what writes whole lines to it above the bar while the bar is shown. */
  above(stream: NodeJS.WriteStream): Writable;
  stop(): void;
}

export interface ProgressState {
  done: number;
  total: number | undefined;
  confirmed: number;
  items: number;
  bytesPerSecond: number;
  etaSeconds: number | undefined;
  name: string;
}

function formatEta(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  if (seconds < 3600)
    return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * The bar's line for a terminal `columns` wide: never longer than columns - 1, so it never
 * wraps. What does not fit goes, least useful first: the name, the bar, the ETA, the rate,
 * the item count, the byte counts.
 */
export function progressLine(state: ProgressState, columns: number): string {
  const width = Math.max(columns - 1, 1);
  const percent =
    state.total === undefined ? undefined : `${Math.floor((100 * state.done) / Math.max(state.total, 1))}%`;
  const amount =
    percent === undefined
      ? formatBytes(state.done)
      : `${percent} ${formatBytes(state.done)}/${formatBytes(state.total as number)}`;
  const rate = `${formatBytes(state.bytesPerSecond)}/s`;
  const eta = state.etaSeconds === undefined ? undefined : `ETA ${formatEta(state.etaSeconds)}`;
  const items = `${state.confirmed}/${state.items} items`;
  const choices = [[amount, rate, eta, items], [amount, rate, items], [amount, items], [amount]];
  for (const choice of choices) {
    const text = choice.filter((p): p is string => p !== undefined).join(' · ');
    if (text.length > width) continue;
    const room = width - text.length;
    const barWidth = state.total === undefined ? 0 : Math.min(30, room - 3);
    const withBar =
      barWidth >= 10
        ? `[${'█'.repeat(Math.round((barWidth * state.done) / Math.max(state.total ?? 1, 1))).padEnd(barWidth, '░')}] ${text}`
        : text;
    const nameRoom = width - withBar.length - 3;
    return nameRoom >= 8 && state.name !== '' ? `${withBar} · ${truncate(state.name, nameRoom)}` : withBar;
  }
  return (percent ?? formatBytes(state.done)).slice(0, width);
}

/** The end of a long name, which tells files apart better than its start. */
function truncate(text: string, room: number): string {
  return text.length <= room ? text : `…${text.slice(text.length - room + 1)}`;
}

const silent: Progress = {
  start() {},
  sent() {},
  confirmed() {},
  above: (stream) => stream,
  stop() {},
};

/** A bar on stderr when it is a terminal that can show one and the user wants it; else nothing. */
export function createProgress(
  enabled: boolean,
  stream: NodeJS.WriteStream = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): Progress {
  if (!enabled || !stream.isTTY || env.TERM === 'dumb') return silent;
  const state: ProgressState = {
    done: 0,
    total: 0,
    confirmed: 0,
    items: 0,
    bytesPerSecond: 0,
    etaSeconds: undefined,
    name: '',
  };
  let started = 0;
  let shown = false;
  const bars = new cliProgress.MultiBar({
    stream,
    // Within its own line only: no hidden cursor, no saved position, and line wrap left on
    // (true: only the bar's own line is cut to the width; null or false would turn wrap off,
    // and item lines written above it meanwhile would be cut at the terminal's edge).
    hideCursor: false,
    linewrap: true,
    gracefulExit: false,
    clearOnComplete: true,
    format: () => progressLine(state, stream.columns ?? 80),
  });
  let bar: cliProgress.SingleBar | undefined;
  const refresh = () => {
    const seconds = (performance.now() - started) / 1000;
    state.bytesPerSecond = seconds > 0.5 ? state.done / seconds : 0;
    state.etaSeconds =
      state.total === undefined || state.bytesPerSecond === 0
        ? undefined
        : Math.max(state.total - state.done, 0) / state.bytesPerSecond;
    bar?.update(state.done);
  };
  return {
    start(items, bytes) {
      state.items = items;
      state.total = bytes;
      started = performance.now();
      shown = true;
      bar = bars.create(Math.max(bytes ?? 1, 1), 0);
    },
    sent(name, bytes) {
      state.done += bytes;
      state.name = name;
      refresh();
    },
    confirmed() {
      state.confirmed++;
      refresh();
    },
    above(target) {
      // Another stream is above the bar only when it is the same terminal.
      if (target !== stream && !target.isTTY) return target;
      return new Writable({
        write(chunk: Buffer, _encoding, done) {
          if (shown) bars.log(chunk.toString());
          else target.write(chunk);
          done();
        },
      });
    },
    stop() {
      if (!shown) return;
      shown = false;
      bars.update(); // what was logged is written before the bar goes
      bars.stop();
    },
  };
}

/** How often a `progress` record is written, at most. */
const RECORD_EVERY_MS = 500;

/** `progress` records for scripts (--json), at most two a second: what the bar shows a person. */
export function progressRecords(write: (fields: Record<string, unknown>) => void): Progress {
  const state = { items: 0, bytesTotal: undefined as number | undefined, bytesSent: 0, confirmed: 0 };
  let started = 0;
  let last = 0;
  const maybeWrite = () => {
    const now = performance.now();
    if (now - last < RECORD_EVERY_MS) return;
    last = now;
    const bytesPerSecond = Math.round(state.bytesSent / Math.max((now - started) / 1000, 1e-3));
    write({ event: 'progress', ...state, bytesTotal: state.bytesTotal ?? null, bytesPerSecond });
  };
  return {
    start(items, bytesTotal) {
      Object.assign(state, { items, bytesTotal });
      started = last = performance.now();
    },
    sent(_name, bytes) {
      state.bytesSent += bytes;
      maybeWrite();
    },
    confirmed() {
      state.confirmed++;
      maybeWrite();
    },
    above: (stream) => stream,
    stop() {},
  };
}
