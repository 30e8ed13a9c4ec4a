// Every line of every command's --json output (issue 14), in several scenarios, is one JSON
// object whose `event` is documented in README with exactly these fields: a script can rely on
// each, and nothing reaches stdout that is not one of them.
import assert from 'node:assert/strict';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ackship, type Finished, run, startReceiver, tempDir } from './support/cli.js';
import { writeRandom } from './support/files.js';
import { deadPort } from './support/net.js';
import { FaultProxy } from './support/proxy.js';

type Kind = 'string' | 'number' | 'boolean' | 'object' | 'number|null';
/** Each event's fields; a `?` marks one that only some records carry. */
const EVENTS: Record<string, Record<string, Kind>> = {
  item: {
    name: 'string',
    path: 'string',
    seconds: 'number',
    'bytes?': 'number',
    status: 'string',
    'hash?': 'string',
    'attempts?': 'number',
    'bytesSent?': 'number',
    'resumedFrom?': 'number',
    'code?': 'string',
    'exitCode?': 'number',
    'message?': 'string',
  },
  retry: { name: 'string', attempt: 'number', delaySeconds: 'number', message: 'string' },
  skip: { path: 'string', reason: 'string' },
  progress: {
    items: 'number',
    bytesTotal: 'number|null',
    bytesSent: 'number',
    confirmed: 'number',
    bytesPerSecond: 'number',
  },
  summary: {
    items: 'number',
    confirmed: 'number',
    failed: 'number',
    notStarted: 'number',
    bytes: 'number',
    seconds: 'number',
    connections: 'number',
    retries: 'number',
    mbPerSecond: 'number',
  },
  error: { code: 'string', exitCode: 'number', message: 'string', 'name?': 'string', 'peer?': 'string' },
  listening: { host: 'string', port: 'number' },
  confirmed: { name: 'string', bytes: 'number', hash: 'string', peer: 'string', again: 'boolean' },
  session: {
    'session?': 'string',
    peer: 'string',
    offered: 'number',
    confirmed: 'number',
    rejected: 'number',
    bytes: 'number',
    run: 'object',
    'ended?': 'string',
  },
};

const STATUSES = ['confirmed', 'already-there', 'failed', 'not-started'];

function typeOf(value: unknown): string {
  return value === null ? 'null' : typeof value;
}

/** Checks every line of `stdout`; returns the events seen. */
function checkLines(what: string, stdout: string): string[] {
  const lines = stdout.split('\n').filter((l) => l !== '');
  assert.ok(lines.length > 0, `${what}: some output`);
  return lines.map((line) => {
    const record = JSON.parse(line) as Record<string, unknown>;
    const schema = EVENTS[record.event as string];
    assert.ok(schema, `${what}: an undocumented event: ${line}`);
    const allowed = new Set(['event', ...Object.keys(schema).map((k) => k.replace('?', ''))]);
    for (const key of Object.keys(record))
      assert.ok(allowed.has(key), `${what}: undocumented field ${key}: ${line}`);
    for (const [key, kind] of Object.entries(schema)) {
      const name = key.replace('?', '');
      if (key.endsWith('?') && !(name in record)) continue;
      assert.ok(kind.split('|').includes(typeOf(record[name])), `${what}: ${name} is ${kind}: ${line}`);
    }
    if (record.event === 'item') assert.ok(STATUSES.includes(record.status as string), line);
    return record.event as string;
  });
}

describe('--json output', () => {
  test('every line of send and recv, over a tree with a symlink, a re-run, a rejection, retries and an interrupted run', async (t) => {
    const dir = await tempDir(t);
    const tree = join(dir, 'tree');
    await mkdir(tree);
    for (let i = 0; i < 30; i++) await writeRandom(join(tree, `f${i}`), 200_000);
    await symlink('/etc/hostname', join(tree, 'link'));
    const out = join(dir, 'out');
    const env = { env: { ACKSHIP_STATE_DIR: join(dir, 'state') } };
    const receiver = await startReceiver(t, ['--out', out, '--json']);
    const target = `127.0.0.1:${receiver.port}`;
    const seen = new Set<string>();
    const check = (what: string, done: Finished) => {
      for (const event of checkLines(what, done.stdout)) seen.add(event);
    };
    // Slow enough for progress records.
    const proxy = await FaultProxy.start(t, { target: receiver.port, rate: 4 * 1024 * 1024 });
    check('a tree', await run(t, ['send', `127.0.0.1:${proxy.port}`, '-r', tree, '--json'], env));
    check('the same tree again', await run(t, ['send', target, '-r', tree, '--json'], env));
    await writeFile(join(dir, 'f0'), 'other bytes');
    check(
      'other bytes under a name',
      await run(t, ['send', target, join(dir, 'f0'), '--name', 'tree/f0', '--json'], env),
    );
    check(
      'nothing listens (retries)',
      await run(
        t,
        [
          'send',
          `127.0.0.1:${await deadPort()}`,
          join(dir, 'f0'),
          '--json',
          '--retries',
          '2',
          '--retry-delay',
          '0.05',
        ],
        env,
      ),
    );
    const interrupted = ackship(
      t,
      ['send', `127.0.0.1:${proxy.port}`, '-r', tree, '--name', 'again', '--json'],
      env,
    );
    await interrupted.waitUntil(
      () => interrupted.stdout.includes('"status":"confirmed"'),
      'one confirmed item',
    );
    interrupted.signal('SIGINT');
    check('an interrupted tree', await interrupted.exited);
    receiver.signal('SIGTERM');
    check('the receiver', await receiver.exited);
    for (const event of [
      'item',
      'retry',
      'skip',
      'progress',
      'summary',
      'error',
      'listening',
      'confirmed',
      'session',
    ])
      assert.ok(seen.has(event), `the scenarios produced a ${event} record`);
  });

  test('README documents each event and its fields', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### JSON output'));
    for (const [event, fields] of Object.entries(EVENTS)) {
      const row = section.split('\n').find((l) => l.startsWith(`| \`${event}\``));
      assert.ok(row, `README has a row for ${event}`);
      for (const field of Object.keys(fields))
        assert.ok(row.includes(`\`${field.replace('?', '')}\``), `${event}: ${field}`);
    }
  });
});
