// Ctrl-C and SIGTERM mid-run (issue 14): the exit status is the signal's (130, 143) whatever the
// number of items, every item is reported once with its status, and the summary adds up.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MAX_VERSION, maxOpenItems } from '../src/protocol/constants.js';
import { ackship, records, startReceiver, tempDir } from './support/cli.js';
import { writeRandom } from './support/files.js';
import { FaultProxy } from './support/proxy.js';
import { offerFrame, rawSender } from './support/raw-sender.js';

// More than one connection's window: some items are still waiting when the signal comes.
const FILES = maxOpenItems(MAX_VERSION) + 100;

describe('signals', () => {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    test(`${signal} in the middle of a tree: exit ${code}, every item reported, the summary adds up`, async (t) => {
      const dir = await tempDir(t);
      const tree = join(dir, 'tree');
      await mkdir(tree);
      for (let i = 0; i < FILES; i++) await writeRandom(join(tree, `f${i}`), 32 * 1024);
      const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
      // Slow enough that the signal falls mid-run.
      const proxy = await FaultProxy.start(t, { target: receiver.port, rate: 256 * 1024 });
      const sender = ackship(t, ['send', `127.0.0.1:${proxy.port}`, '-r', tree, '--json'], {
        env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
      });
      await sender.waitUntil(
        () => records(sender.stdout).filter((r) => r.status === 'confirmed').length >= 3,
        '3 confirmed items',
      );
      sender.signal(signal);
      const done = await sender.exited;
      assert.equal(done.code, code, done.stderr.slice(-2000));
      const lines = records(done.stdout);
      const items = lines.filter((r) => r.event === 'item');
      const names = items.map((r) => r.name);
      assert.equal(new Set(names).size, names.length, 'each item reported once');
      assert.equal(items.length, FILES, 'every item reported');
      const count = (status: string) => items.filter((r) => r.status === status).length;
      const summary = lines.find((r) => r.event === 'summary');
      assert.ok(summary, 'a summary');
      assert.equal(summary.items, FILES);
      assert.equal(summary.confirmed, count('confirmed') + count('already-there'));
      assert.equal(summary.failed, count('failed'));
      assert.equal(summary.notStarted, count('not-started'));
      assert.equal(
        (summary.confirmed as number) + (summary.failed as number) + (summary.notStarted as number),
        FILES,
      );
      assert.ok(count('not-started') > 0, 'the signal fell mid-run');
      for (const item of items.filter((r) => r.status === 'failed')) assert.equal(item.exitCode, code);
    });
  }
});

describe('receiver shutdown', () => {
  test('a session cut short by the receiver’s own shutdown is reported as that, not as a protocol error', async (t) => {
    const receiver = await startReceiver(t, ['--out', join(await tempDir(t), 'out'), '--json']);
    const peer = await rawSender(t, receiver.port);
    peer.send(offerFrame(0, 'open.bin', 1000));
    await peer.frames(1); // ACCEPTed; the item stays open
    receiver.signal('SIGTERM');
    const done = await receiver.exited;
    assert.equal(done.code, 143, done.stderr);
    const lines = records(done.stdout);
    const session = lines.find((r) => r.event === 'session');
    assert.equal(session?.ended, 'shutdown');
    assert.deepEqual(
      lines.filter((r) => r.exitCode !== undefined).map((r) => [r.code, r.exitCode]),
      [['ACK_ERR_INTERRUPTED', 143]],
      'the only failure is the signal',
    );
  });
});
