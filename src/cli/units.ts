// Sizes and durations as users type them on the command line.

const SIZE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** `1048576`, `512K`, `10MiB`, `1.5G`, `2GB`: a byte count; throws a message on anything else. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const factor = match && SIZE_UNITS[(match[2] ?? '').toLowerCase()];
  if (!match || !factor) throw new Error(`"${text}" is not a size (examples: 1048576, 512K, 10MiB, 2GB)`);
  const bytes = Math.floor(Number(match[1]) * factor);
  if (!Number.isSafeInteger(bytes)) throw new Error(`"${text}" is too large`);
  return bytes;
}

/** curl's --limit-rate: bytes a second, `500000`, `100K`, `1M`, `2.5M/s`; more than 0. */
export function parseRate(text: string): number {
  const bytes = parseSize(text.replace(/\/s\s*$/i, ''));
  if (bytes <= 0) throw new Error(`"${text}" is not a positive rate (examples: 100K, 1M, 2.5M/s)`);
  return bytes;
}

/** An exact size as a user would type it: `16MiB`, `1GiB`, `1000`. */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [
    ['TiB', 1024 ** 4],
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

/** Human-readable bytes for progress and summaries. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const SECONDS_PER: Readonly<Record<string, number>> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 };

/** A duration as a user would type it: `7d`, `1h`, `30s`, `0.5s` (exact: the largest unit that divides it). */
export function formatDuration(seconds: number): string {
  for (const [unit, factor] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
  ] as const) {
    if (seconds >= factor && seconds % factor === 0) return `${seconds / factor}${unit}`;
  }
  return `${seconds}s`;
}

/** A positive duration in seconds: `30`, `0.5`, or with a unit, `90s`, `10m`, `2h`, `7d`; throws a message on anything else. */
export function parseSeconds(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([smhd]?)\s*$/i.exec(text);
  const value = match
    ? Number(match[1]) * (SECONDS_PER[(match[2] ?? '').toLowerCase()] ?? Number.NaN)
    : Number.NaN;
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`"${text}" is not a positive duration (examples: 30, 0.5, 10m, 2h, 7d)`);
  }
  return value;
}
