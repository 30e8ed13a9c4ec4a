// Every fault the test proxy can make, on the first connection of a real send to a real
// receiver: the sender ends confirmed with an identical file (or, with no retries left, fails
// with exit 75 and a reason), the receiver places exactly one whole file and no partial stays,
// and it serves another sender meanwhile.
import assert from 'node:assert/strict';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { itemRecords, records, run, startReceiver, tempDir } from './support/cli.js';
import { sha256File, writeRandom } from './support/files.js';
import { FaultProxy, type ProxyOptions } from './support/proxy.js';

const KiB = 1024;
// What the sender writes for a 256 KiB file named f.bin: hello 8, SESSION 21, OFFER 51, then one
// DATA frame (17 bytes of header, then the payload) and END 17. The receiver writes its hello 8,
// ACCEPT 25, then CONFIRM 41.
const AFTER_OFFER = 8 + 21 + 51;
const DATA_PAYLOAD = AFTER_OFFER + 17;
const AFTER_ACCEPT = 8 + 25;

const faults: Array<{ name: string; proxy: Omit<ProxyOptions, 'target'>; size?: number; attempts: number }> =
  [
    {
      name: 'reset at a frame boundary (after the OFFER)',
      proxy: { request: { cutAfter: AFTER_OFFER } },
      attempts: 2,
    },
    {
      name: 'reset inside a DATA frame header',
      proxy: { request: { cutAfter: AFTER_OFFER + 5 } },
      attempts: 2,
    },
    {
      name: 'reset inside a DATA payload',
      proxy: { request: { cutAfter: DATA_PAYLOAD + 100 * KiB } },
      attempts: 2,
    },
    { name: 'reset of the reply after the receiver hello', proxy: { reply: { cutAfter: 8 } }, attempts: 2 },
    {
      name: 'reset of the reply inside the CONFIRM',
      proxy: { reply: { cutAfter: AFTER_ACCEPT + 20 } },
      attempts: 2,
    },
    {
      name: 'the CONFIRM swallowed on a connection that stays open',
      proxy: { reply: { swallowAfter: AFTER_ACCEPT } },
      attempts: 2,
    },
    {
      name: 'stalled for longer than the sender timeout',
      proxy: { stallAfter: DATA_PAYLOAD + 100 * KiB },
      attempts: 2,
    },
    { name: 'one payload byte flipped', proxy: { request: { corruptAt: DATA_PAYLOAD + 5000 } }, attempts: 2 },
    { name: 'every byte delivered on its own', proxy: { dribble: true }, size: 4 * KiB, attempts: 1 },
  ];

async function setUp(t: TestContext, proxyOptions: Omit<ProxyOptions, 'target'>, size: number) {
  const dir = await tempDir(t);
  const out = join(dir, 'out');
  const src = join(dir, 'f.bin');
  await writeRandom(src, size);
  const receiver = await startReceiver(t, ['--out', out]);
  const proxy = await FaultProxy.start(t, { target: receiver.port, ...proxyOptions });
  const send = (port: number, path: string, args: string[], state: string) =>
    run(
      t,
      ['send', `127.0.0.1:${port}`, path, '--json', '--timeout', '1', '--retry-delay', '0.05', ...args],
      {
        env: { ACKSHIP_STATE_DIR: join(dir, state) },
      },
    );
  return { dir, out, src, receiver, proxy, send };
}

describe('faults on the wire', () => {
  for (const fault of faults) {
    test(`${fault.name}: confirmed, identical, once; another sender is served meanwhile`, async (t) => {
      const { dir, out, src, receiver, proxy, send } = await setUp(t, fault.proxy, fault.size ?? 256 * KiB);
      const other = join(dir, 'other.bin');
      await writeRandom(other, 10 * KiB);
      const [faulty, direct] = await Promise.all([
        send(proxy.port, src, [], 'state-a'),
        send(receiver.port, other, [], 'state-b'),
      ]);
      assert.equal(direct.code, 0, direct.stderr);
      assert.equal(faulty.code, 0, faulty.stderr);
      const [item] = itemRecords(faulty.stdout);
      assert.equal(item?.status, 'confirmed');
      assert.ok((item?.attempts as number) >= fault.attempts, `attempts ${item?.attempts}`);
      assert.equal(await sha256File(join(out, 'f.bin')), await sha256File(src));
      assert.deepEqual((await readdir(out)).sort(), ['.ackship', 'f.bin', 'other.bin']);
      assert.deepEqual(await readdir(join(out, '.ackship', 'parts')), [], 'no partial is left');
    });
  }

  test('the CONFIRM of an empty directory swallowed: the retry is confirmed again, and the tree is whole', async (t) => {
    const { dir, out, proxy, send } = await setUp(t, { reply: { swallowAfter: AFTER_ACCEPT } }, 0);
    await mkdir(join(dir, 'tree', 'empty'), { recursive: true });
    const sent = await send(proxy.port, join(dir, 'tree'), ['-r'], 'state');
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(records(sent.stdout).find((r) => r.event === 'item')?.attempts, 2);
    assert.deepEqual(await readdir(join(out, 'tree')), ['empty']);
  });

  test('a stall with no retries left: exit 75 with the reason, and nothing placed', async (t) => {
    const { out, src, proxy, send } = await setUp(t, { stallAfter: DATA_PAYLOAD + 100 * KiB }, 256 * KiB);
    const sent = await send(proxy.port, src, ['--retries', '0'], 'state');
    assert.equal(sent.code, 75, sent.stderr);
    assert.match(
      sent.stderr,
      /not confirmed after 1 attempts \(failing for [\d.]+ s\): .* was silent for 1 s; run the same send again to resume/,
    );
    assert.deepEqual(await readdir(out), ['.ackship']);
  });
});
