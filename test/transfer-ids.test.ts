// The sender's state files are read with checks: a damaged one loses resume points, never
// puts an id of the wrong length into an OFFER.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
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
  const ids = await TransferIds.assign(dir, ['short', 'odd', 'number', 'good', 'half']);
  for (const key of ['short', 'odd', 'number', 'half']) assert.equal(ids.idFor(key).length, 16, key);
  assert.equal(ids.idFor('good').toString('hex'), good);
});
