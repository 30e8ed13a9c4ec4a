// The sender's state files are read with checks: a damaged one loses resume points, never
// puts an id of the wrong length into an OFFER.
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { TransferIds } from '../src/send/transfer-ids.js';
import { tempDir } from './support/cli.js';

test('a state file with a short, non-hex or non-string id gets new ids for those keys, and keeps the good one', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'pending'));
  const good = '00112233445566778899aabbccddeeff';
  await writeFile(
    join(dir, 'pending', '1-damaged.json'),
    JSON.stringify({ short: 'abcd', odd: 'zz'.repeat(16), number: 7, good }),
  );
  await writeFile(join(dir, 'pending', '2-torn.json'), '{"half": "00');
  const keys = ['short', 'odd', 'number', 'good', 'half'];
  const ids = await TransferIds.assign(dir, keys);
  const idOf = (key: string) => ids.idAt(keys.indexOf(key));
  for (const key of ['short', 'odd', 'number', 'half']) {
    assert.equal(idOf(key).length, 16, key);
    assert.notEqual(idOf(key).toString('hex'), good, key);
  }
  assert.equal(idOf('good').toString('hex'), good);
});

test('a run keeps only its unsettled keyed items for the next, which resumes them under the same ids', async (t) => {
  const dir = await tempDir(t);
  const first = await TransferIds.assign(dir, ['a', undefined, 'b', 'c']);
  first.settle(0);
  first.settle(3);
  const pendingB = first.idAt(2).toString('hex');
  await first.close();
  const [file] = await readdir(join(dir, 'pending'));
  assert.deepEqual(JSON.parse(await readFile(join(dir, 'pending', file as string), 'utf8')), { b: pendingB });

  // The next run takes b over (its file goes once all its keys are this run's) and gives a a new id.
  const second = await TransferIds.assign(dir, ['b', 'a']);
  assert.equal(second.idAt(0).toString('hex'), pendingB);
  assert.notEqual(second.idAt(1).toString('hex'), first.idAt(0).toString('hex'));
  second.settle(0);
  second.settle(1);
  await second.close();
  assert.deepEqual(await readdir(join(dir, 'pending')), []);
});
