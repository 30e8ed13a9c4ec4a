// What the user asked to send, resolved before anything connects: every path checked, stdin
// spooled to a private file so that its length is known and a retry can read it again.
import { accessSync, constants, createWriteStream, type Stats, statSync } from 'node:fs';
import { mkdtemp, readdir, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InputError, LocalIoError, UsageError } from '../errors.js';
import { StreamWindow } from './stream-window.js';
import type { TreeFilter } from './tree-filter.js';

/** A regular file (or, from a tree, an empty directory) ready to send, with what identifies it across runs. */
export interface Source {
  /** What the user typed (`-` for stdin), or the path found in a tree. */
  label: string;
  path: string;
  name: string;
  size: number;
  mode?: number;
  mtimeMs?: number;
  /** An empty directory: recreated on the receiver (protocol v2). */
  directory?: boolean;
  /**
   * Identifies this item across runs (§7): its transfer id is kept under this key until it is
   * settled. Undefined for spooled streams, which cannot resume across runs.
   */
  key?: string;
  /** v3: stdin (or another stream) sent as it is read, without spooling; `size` is 0 until it ends. */
  stream?: StreamWindow;
}

export interface ResolvedSources {
  sources: Source[];
  /** Removes spool files; safe to call more than once. */
  cleanup(): Promise<void>;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/**
 * A stream (stdin) or bytes, spooled to a private (0600) file at `path` so that its length is
 * known and a retry can read it again; the caller removes it.
 */
export async function spooledSource(
  input: Readable | Uint8Array,
  name: string,
  label: string,
  path: string,
  signal: AbortSignal,
): Promise<Source> {
  try {
    const out = createWriteStream(path, { flags: 'wx', mode: 0o600 });
    await (input instanceof Uint8Array
      ? new Promise<void>((resolve, reject) =>
          out.end(input, (err?: Error | null) => (err ? reject(err) : resolve())),
        )
      : pipeline(input, out, { signal }));
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw new LocalIoError(`cannot spool ${label} to ${path}: ${(err as Error).message}`);
  }
  const { size } = await stat(path);
  return { label, path, name, size };
}

/** What to send: a file path (a directory, with `recursive`), or bytes or a stream under a name. */
export type SendItem =
  | string
  | { path: string; name?: string }
  | { name: string; data: Uint8Array | Readable };

export interface SourceOptions {
  /** Walk directories. */
  recursive: boolean;
  /** Spool streams to a private file first (all or nothing, resumable in one run) instead of streaming them. */
  spool: boolean;
  /** Most bytes of a stream held in memory until the receiver acknowledges them. */
  window: number;
  /** Refuse symlinks and special files in a tree instead of skipping them with a warning. */
  noSkip: boolean;
  /** Told of each symlink or special file skipped in a tree, and what it is. */
  skipped: (path: string, what: string) => void;
  /** --exclude/--include: which entries of a tree to send. */
  filter?: TreeFilter | undefined;
  signal: AbortSignal;
}

/** Resolves items into sources, checking every path and spooling every stream, before anything connects. */
export async function resolveSources(items: SendItem[], options: SourceOptions): Promise<ResolvedSources> {
  if (items.length === 0) throw new UsageError('nothing to send: give a PATH, or - for stdin');
  let spoolDir: string | undefined;
  const cleanup = async () => {
    if (spoolDir !== undefined) await rm(spoolDir, { recursive: true, force: true });
  };
  try {
    const sources: Source[] = [];
    for (const [i, item] of items.entries()) {
      if (typeof item !== 'string' && 'data' in item) {
        if (!options.spool && !(item.data instanceof Uint8Array)) {
          const stream = new StreamWindow(item.data, item.name, options.window);
          sources.push({ label: item.name, path: '', name: item.name, size: 0, stream });
          continue;
        }
        spoolDir ??= await mkdtemp(join(tmpdir(), 'ackship-spool-'));
        sources.push(
          await spooledSource(item.data, item.name, item.name, join(spoolDir, String(i)), options.signal),
        );
        continue;
      }
      const [path, name] = typeof item === 'string' ? [item, undefined] : [item.path, item.name];
      sources.push(...(await pathSources(path, name, options)));
    }
    const names = new Set<string>();
    for (const source of sources) {
      if (names.has(source.name)) throw new UsageError(`two items would both be named ${source.name}`);
      names.add(source.name);
    }
    return { sources, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * Synchronous on purpose: sources are resolved before anything connects, so nothing waits
 * for the event loop meanwhile, and a trip through the thread pool costs about 40 µs of CPU
 * here against a few for the call itself: for 20,000 files, over a second.
 */
function statOrFail(label: string): Stats {
  try {
    const info = statSync(label);
    accessSync(label, constants.R_OK);
    return info;
  } catch (err) {
    const why = errno(err) === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new InputError(`cannot read ${label}: ${why}`);
  }
}

/**
 * The file's content (where it is, its inode, size and mtime) and its name. Earlier runs' state
 * files hold ids under this exact string, so its form is fixed: a change loses their resumes.
 */
function resumeKey(path: string, name: string, info: Stats): string {
  return JSON.stringify([JSON.stringify([path, info.dev, info.ino, info.size, info.mtimeMs]), name]);
}

function fileSource(label: string, path: string, name: string, info: Stats): Source {
  return {
    label,
    path,
    name,
    size: info.size,
    mode: info.mode & 0o777,
    mtimeMs: Math.trunc(info.mtimeMs),
    key: resumeKey(path, name, info),
  };
}

async function pathSources(
  label: string,
  name: string | undefined,
  options: SourceOptions,
): Promise<Source[]> {
  const info = statOrFail(label);
  const real = await realpath(label);
  if (info.isDirectory()) {
    if (!options.recursive)
      throw new UsageError(`${label} is a directory (use -r to send it and what it holds)`);
    // Like rsync: "dir/" or "." sends what the directory holds; "dir" sends the directory itself.
    const contentsOnly = label.endsWith('/') || basename(label) === '.';
    return walk(real, contentsOnly ? '' : (name ?? basename(real)), options);
  }
  if (!info.isFile())
    throw new InputError(`${label} is not a regular file (pipe it to stdin: ... | ackship send HOST -)`);
  return [fileSource(label, real, name ?? basename(real), info)];
}

/**
 * Every file and empty directory under `dir`, named below `prefix`, in a stable order; `rel` is
 * `dir` below the directory being sent, which the filter sees.
 */
async function walk(dir: string, prefix: string, options: SourceOptions, rel = ''): Promise<Source[]> {
  const listed = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
  const relOf = (entry: string) => (rel === '' ? entry : `${rel}/${entry}`);
  const { filter } = options;
  const entries =
    filter === undefined ? listed : listed.filter((e) => filter(relOf(e.name), e.isDirectory()));
  const below = (entry: string) => (prefix === '' ? entry : `${prefix}/${entry}`);
  if (entries.length === 0 && prefix !== '') {
    const info = await stat(dir);
    return [{ label: dir, path: dir, name: prefix, size: 0, mode: info.mode & 0o777, directory: true }];
  }
  const nested = await Promise.all(
    entries.map(async (entry): Promise<Source[]> => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return walk(path, below(entry.name), options, relOf(entry.name));
      if (entry.isFile()) return [fileSource(path, path, below(entry.name), statOrFail(path))];
      const what = entry.isSymbolicLink() ? 'a symlink' : 'a special file';
      if (options.noSkip) throw new InputError(`${path} is ${what} (refused because of --no-skip)`);
      options.skipped(path, what);
      return [];
    }),
  );
  return nested.flat();
}
