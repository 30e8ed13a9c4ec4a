// What the user asked to send, resolved before anything connects: every path checked, stdin
// spooled to a private file so that its length is known and a retry can read it again.
import { constants, createWriteStream } from 'node:fs';
import { access, mkdtemp, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InputError, LocalIoError, UsageError } from '../errors.js';

/** A regular file ready to send, with what identifies it across runs. */
export interface Source {
  /** What the user typed (`-` for stdin). */
  label: string;
  path: string;
  name: string;
  size: number;
  mode?: number;
  mtimeMs?: number;
  /** Identifies this content across runs (§7); undefined for spooled streams, which cannot resume across runs. */
  identity?: string;
}

export interface ResolvedSources {
  sources: Source[];
  /** Removes spool files; safe to call more than once. */
  cleanup(): Promise<void>;
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

async function spool(input: Readable, dir: string, signal: AbortSignal): Promise<string> {
  const path = join(dir, 'stdin');
  try {
    await pipeline(input, createWriteStream(path, { flags: 'wx', mode: 0o600 }), { signal });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw new LocalIoError(`cannot spool stdin to ${path}: ${(err as Error).message}`);
  }
  return path;
}

/**
 * Resolves paths (`-` is stdin) into sources; `name` overrides the name of a single item.
 * `stdin` is a getter so that the stream is only created when it is read.
 */
export async function resolveSources(
  paths: string[],
  name: string | undefined,
  stdin: () => Readable,
  signal: AbortSignal,
): Promise<ResolvedSources> {
  if (paths.length === 0) throw new UsageError('nothing to send: give a PATH, or - for stdin');
  if (name !== undefined && paths.length > 1) throw new UsageError('--name needs exactly one PATH');
  if (paths.filter((p) => p === '-').length > 1) throw new UsageError('stdin (-) can be sent only once');
  let spoolDir: string | undefined;
  const cleanup = async () => {
    if (spoolDir !== undefined) await rm(spoolDir, { recursive: true, force: true });
  };
  try {
    const sources: Source[] = [];
    for (const label of paths) {
      if (label === '-') {
        spoolDir = await mkdtemp(join(tmpdir(), 'ackship-spool-'));
        const path = await spool(stdin(), spoolDir, signal);
        const { size } = await stat(path);
        sources.push({ label, path, name: name ?? 'stdin', size });
        continue;
      }
      sources.push(await fileSource(label, name));
    }
    return { sources, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function fileSource(label: string, name: string | undefined): Promise<Source> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(label);
    await access(label, constants.R_OK);
  } catch (err) {
    const why = errno(err) === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new InputError(`cannot read ${label}: ${why}`);
  }
  if (info.isDirectory())
    throw new UsageError(`${label} is a directory (sending directories is not supported yet)`);
  if (!info.isFile())
    throw new InputError(`${label} is not a regular file (pipe it to stdin: ... | ackship send HOST -)`);
  const real = await realpath(label);
  return {
    label,
    path: real,
    name: name ?? basename(real),
    size: info.size,
    mode: info.mode & 0o777,
    mtimeMs: Math.trunc(info.mtimeMs),
    identity: JSON.stringify([real, info.dev, info.ino, info.size, info.mtimeMs]),
  };
}
