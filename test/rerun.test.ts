// Re-running a send is idempotent (issue 14): what the receiver already holds under its name,
// byte for byte, is confirmed "already there" without a byte sent, and the run exits 0; other
// bytes under the name still meet "exists" (65) unless the receiver overwrites. Small files,
// which a v6 sender sends with their OFFER (PROTOCOL.md §6.3), are no exception: the run's
// first one asks, and a re-run is found out by its answer.
import assert from 'node:assert/strict';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MAX_VERSION, maxOpenItems } from '../src/protocol/constants.js';
import { itemRecords, records, run, startReceiver, tempDir } from './support/cli.js';
import { sha256File, writeRandom } from './support/files.js';

describe('re-runs', () => {
  test('a send that succeeded, run again, exits 0 with the item already there and nothing sent', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'big.bin');
    await writeRandom(src, 3 * 1024 * 1024 + 5);
    const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
    const env = { ACKSHIP_STATE_DIR: join(dir, 'state') };
    const first = await run(t, ['send', `127.0.0.1:${receiver.port}`, src, '--json'], { env });
    assert.equal(first.code, 0, first.stderr);
    for (const args of [['--json'], []]) {
      const again = await run(t, ['send', `127.0.0.1:${receiver.port}`, src, ...args], { env });
      assert.equal(again.code, 0, again.stderr);
      if (args.length > 0) {
        const [item] = itemRecords(again.stdout);
        assert.equal(item?.status, 'already-there');
        assert.equal(item?.bytesSent, 0);
        assert.equal(item?.hash, itemRecords(first.stdout)[0]?.hash);
      } else
        assert.match(
          again.stdout,
          /^already there big\.bin \(3\.0 MiB, xxh64 [0-9a-f]{16}\): confirmed, nothing sent$/m,
        );
    }
  });

  test('a tree half there already (an interrupted run) is completed: only the missing files are sent', async (t) => {
    const dir = await tempDir(t);
    const tree = join(dir, 'tree');
    const names: string[] = [];
    for (let d = 0; d < 4; d++) {
      await mkdir(join(tree, `d${d}`), { recursive: true });
      for (let f = 0; f < 10; f++) {
        names.push(`d${d}/f${f}`);
        await writeRandom(join(tree, `d${d}`, `f${f}`), 1000 + f);
      }
    }
    // What an interrupted run left: the first two directories whole, nothing of the rest.
    const out = join(dir, 'out');
    for (const d of ['d0', 'd1']) await cp(join(tree, d), join(out, 'tree', d), { recursive: true });
    const receiver = await startReceiver(t, ['--out', out]);
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, '-r', tree, '--json'], {
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    const items = records(sent.stdout).filter(
      (r) => r.event === 'item' && typeof r.bytes === 'number' && r.bytes > 0,
    );
    const by = (status: string) => items.filter((r) => r.status === status).map((r) => r.name as string);
    assert.equal(by('already-there').length, 20, 'd0 and d1 were there');
    assert.ok(by('already-there').every((n) => /^tree\/d[01]\//.test(n)));
    assert.equal(by('confirmed').length, 20, 'd2 and d3 were sent');
    for (const name of names)
      assert.equal(await sha256File(join(out, 'tree', name)), await sha256File(join(tree, name)));
  });

  test('other bytes under the name still meet "exists" (65); with --overwrite they are replaced, and the same bytes are not sent again', async (t) => {
    const dir = await tempDir(t);
    const src = join(dir, 'note.txt');
    await writeFile(src, 'the sender has this');
    await mkdir(join(dir, 'out'));
    await writeFile(join(dir, 'out', 'note.txt'), 'the receiver has it'); // same size, other bytes
    const env = { ACKSHIP_STATE_DIR: join(dir, 'state') };
    const strict = await startReceiver(t, ['--out', join(dir, 'out')]);
    const refused = await run(t, ['send', `127.0.0.1:${strict.port}`, src, '--json'], { env });
    assert.equal(refused.code, 65, refused.stderr);
    assert.match(refused.stderr, /exists/);
    strict.signal('SIGTERM');
    await strict.exited;
    const overwriting = await startReceiver(t, ['--out', join(dir, 'out'), '--overwrite']);
    const replaced = await run(t, ['send', `127.0.0.1:${overwriting.port}`, src, '--json'], { env });
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.equal(itemRecords(replaced.stdout)[0]?.status, 'confirmed');
    assert.equal(await sha256File(join(dir, 'out', 'note.txt')), await sha256File(src));
    // With --overwrite too, the same bytes are not sent again.
    const again = await run(t, ['send', `127.0.0.1:${overwriting.port}`, src, '--json'], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(
      [itemRecords(again.stdout)[0]?.status, itemRecords(again.stdout)[0]?.bytesSent],
      ['already-there', 0],
    );
  });

  test('a re-run of 300 small files: all already there, none sent again', async (t) => {
    const dir = await tempDir(t);
    const tree = join(dir, 'tree');
    await mkdir(tree);
    for (let i = 0; i < 300; i++) await writeFile(join(tree, `f${i}`), `small file ${i}`);
    const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
    const env = { ACKSHIP_STATE_DIR: join(dir, 'state') };
    const send = () => run(t, ['send', `127.0.0.1:${receiver.port}`, '-r', tree, '--json'], { env });
    const first = await send();
    assert.equal(first.code, 0, first.stderr);
    assert.ok(itemRecords(first.stdout).every((r) => r.status === 'confirmed' && r.bytesSent === r.bytes));
    const again = await send();
    assert.equal(again.code, 0, again.stderr);
    const items = itemRecords(again.stdout);
    assert.equal(items.length, 300);
    assert.ok(items.every((r) => r.status === 'already-there' && r.bytesSent === 0));
  });

  test('a tree of files all there with other bytes: each refused as "exists", over the one connection', async (t) => {
    const dir = await tempDir(t);
    const [tree, out] = [join(dir, 'tree'), join(dir, 'out')];
    await mkdir(tree);
    await mkdir(join(out, 'tree'), { recursive: true });
    // Same names and sizes, other bytes: each OFFER is ACCEPTed at its end, and the sender
    // starts over with its data, which the receiver (no --overwrite) must refuse.
    for (let i = 0; i < 300; i++) {
      await writeFile(join(tree, `f${i}`), `new bytes ${String(i).padStart(4, '0')}`);
      await writeFile(join(out, 'tree', `f${i}`), `old bytes ${String(i).padStart(4, '0')}`);
    }
    const receiver = await startReceiver(t, ['--out', out]);
    const env = { ACKSHIP_STATE_DIR: join(dir, 'state') };
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, '-r', tree, '--json'], { env });
    assert.equal(sent.code, 65, sent.stderr);
    const refused = itemRecords(sent.stdout);
    assert.equal(refused.length, 300);
    for (const item of refused) {
      assert.equal(item.status, 'failed');
      assert.match(String(item.message), /exists with other bytes/);
    }
    // One refusal is no reason to end the session the others are on.
    const summary = records(sent.stdout).find((r) => r.event === 'summary');
    assert.equal(summary?.connections, 1);
  });

  test('a tree whose first file is new and the rest there: all confirmed, at most a window sent in vain', async (t) => {
    const dir = await tempDir(t);
    const [tree, out] = [join(dir, 'tree'), join(dir, 'out')];
    await mkdir(tree);
    await mkdir(join(out, 'tree'), { recursive: true });
    // More files than a window, so that some can only be offered after the first answer.
    const window = maxOpenItems(MAX_VERSION);
    const files = window + 300;
    for (let i = 0; i < files; i++) {
      const name = `f${String(i).padStart(4, '0')}`;
      await writeFile(join(tree, name), `small file ${i}`);
      if (i > 0) await writeFile(join(out, 'tree', name), `small file ${i}`);
    }
    const receiver = await startReceiver(t, ['--out', out]);
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, '-r', tree, '--json'], {
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    const items = itemRecords(sent.stdout);
    assert.deepEqual(
      items.filter((r) => r.status === 'confirmed').map((r) => r.name),
      ['tree/f0000'],
    );
    const there = items.filter((r) => r.status === 'already-there');
    assert.equal(there.length, files - 1);
    // f0000 was new, so the files after it went with their OFFERs, a window at once, until the
    // first of them was answered as held: those offered later asked first.
    const resent = there.filter((r) => r.bytesSent === r.bytes).length;
    assert.ok(resent > 0 && resent <= window, `${resent} sent in vain`);
    assert.equal(there.filter((r) => r.bytesSent === 0).length, files - 1 - resent);
  });
});
