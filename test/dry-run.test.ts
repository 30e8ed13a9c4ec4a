// `send --dry-run` (issue 14): the receiver says what it would do with each item, from the
// same checks a real OFFER meets (PROTOCOL.md §4.1 query), and nothing moves or is kept on
// either side.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { itemRecords, records, run, startReceiver, tempDir } from './support/cli.js';
import { FaultProxy } from './support/proxy.js';

async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

test('--dry-run reports would send, already there, differs and would be refused, and changes nothing', async (t) => {
  const dir = await tempDir(t);
  const [src, out, state] = [join(dir, 'tree'), join(dir, 'out'), join(dir, 'state')];
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'new.txt'), 'new');
  await writeFile(join(src, 'same.txt'), 'same bytes');
  await writeFile(join(src, 'other.txt'), 'mine');
  await writeFile(join(src, 'sub', 'big.bin'), Buffer.alloc(200));
  await mkdir(join(out, 'tree'), { recursive: true });
  await writeFile(join(out, 'tree', 'same.txt'), 'same bytes');
  await writeFile(join(out, 'tree', 'other.txt'), 'THEI');
  const receiver = await startReceiver(t, ['--out', out, '--max-size', '100']);
  const before = await listing(out);
  const env = { ACKSHIP_STATE_DIR: state };
  const dry = await run(t, ['send', `127.0.0.1:${receiver.port}`, '-r', src, '--dry-run', '--json'], { env });
  assert.equal(dry.code, 65, `one would be refused: ${dry.stderr}`);
  const status = Object.fromEntries(itemRecords(dry.stdout).map((r) => [r.name, r.status]));
  assert.deepEqual(status, {
    'tree/new.txt': 'would-send',
    'tree/same.txt': 'already-there',
    'tree/other.txt': 'differs',
    'tree/sub/big.bin': 'would-refuse',
  });
  const refused = itemRecords(dry.stdout).find((r) => r.status === 'would-refuse');
  assert.match(String(refused?.message), /exceeds the receiver's limit of 100 bytes/);
  const summary = records(dry.stdout).find((r) => r.event === 'summary');
  assert.deepEqual(summary?.dryRun, { wouldSend: 1, alreadyThere: 1, differs: 1, wouldRefuse: 1 });
  assert.deepEqual(await listing(out), before, 'no part, no journal line, no file on the receiver');
  assert.equal(await readFile(join(out, 'tree', 'other.txt'), 'utf8'), 'THEI');
  await assert.rejects(readdir(join(state, 'pending')), 'the state dir was only read');
  assert.doesNotMatch(receiver.stdout, /confirmed|rejected/, 'the receiver reports no item');
  assert.doesNotMatch(receiver.stderr, /rejected/);

  const text = await run(t, ['send', `127.0.0.1:${receiver.port}`, join(src, 'new.txt'), '--dry-run'], {
    env,
  });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^would send new\.txt \(3 B\)$/m);
  // The dry run said so, and the real run agrees.
  const real = await run(
    t,
    ['send', `127.0.0.1:${receiver.port}`, join(src, 'same.txt'), '--name', 'tree/same.txt', '--json'],
    { env },
  );
  assert.equal(itemRecords(real.stdout)[0]?.status, 'already-there');
});

test('--dry-run against a receiver older than queries (v3) exits 76 and says why', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'a.txt'), 'a');
  const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
  const proxy = await FaultProxy.start(t, { target: receiver.port, capVersion: 3 });
  const dry = await run(t, ['send', `127.0.0.1:${proxy.port}`, join(dir, 'a.txt'), '--dry-run'], {
    env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
  });
  assert.equal(dry.code, 76, dry.stderr);
  assert.match(dry.stderr, /protocol version 3, which cannot answer --dry-run/);
  assert.deepEqual(
    await listing(join(dir, 'out')),
    ['.ackship', '.ackship/confirmed.jsonl', '.ackship/lock', '.ackship/parts'].sort(),
  );
});
