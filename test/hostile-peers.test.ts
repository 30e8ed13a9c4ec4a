// Defects found by trying a real receiver as a hostile peer, each kept as a test that fails on
// the receiver that had it: one transfer id offered on two connections at once, a peer hogging
// the open-part permits, idle connections filling the connection cap, names and metadata the
// filesystem cannot hold.
import assert from 'node:assert/strict';
import { readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { loadHasher, xxh64 } from '../src/hash.js';
import type { Frame } from '../src/protocol/codec.js';
import { ErrorCode, Kind, RejectCode } from '../src/protocol/constants.js';
import { run, startReceiver, tempDir } from './support/cli.js';
import { offerFrame, type RawSender, rawSender, sendItem, show } from './support/raw-sender.js';

await loadHasher();

/** Journal records of `out`, by transfer id. */
async function journal(out: string): Promise<Array<{ id: string; name: string; hash: string }>> {
  const text = await readFile(join(out, '.ackship', 'confirmed.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
}

async function sendFile(t: TestContext, dir: string, port: number, name: string, flags: string[] = []) {
  const path = join(dir, name);
  await writeFile(path, `the legitimate sender's ${name}`);
  return run(t, ['send', `127.0.0.1:${port}`, path, '--json', ...flags], {
    env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
  });
}

describe('hostile peers', () => {
  for (const names of [
    ['same.txt', 'same.txt'],
    ['first.txt', 'second.txt'],
  ] as const) {
    test(`one transfer id offered on two connections at once (${names[0] === names[1] ? 'one name' : 'two names'}): every CONFIRM matches what is stored`, async (t) => {
      const dir = await tempDir(t);
      const out = join(dir, 'out');
      const receiver = await startReceiver(t, ['--out', out]);
      for (let round = 0; round < 8; round++) {
        const id = Buffer.alloc(16, round + 1);
        const payloads = [Buffer.alloc(4096, 0x41 + round), Buffer.alloc(4096, 0x61 + round)];
        const peers = await Promise.all(names.map(() => rawSender(t, receiver.port)));
        const answers = await Promise.all(
          peers.map((peer, i) => sendItem(peer, `${round}-${names[i]}`, payloads[i] as Buffer, id)),
        );
        for (const peer of peers) peer.end();
        await Promise.all(peers.map((p) => p.closed));
        for (const [i, answer] of answers.entries()) {
          if (answer?.kind !== Kind.Confirm) continue;
          const stored = await readFile(join(out, `${round}-${names[i]}`)).catch(() => undefined);
          assert.ok(stored !== undefined, `round ${round}: confirmed ${names[i]} exists: ${show(answers)}`);
          assert.equal(answer.hash, xxh64(stored), `round ${round}: the CONFIRM's hash is what is stored`);
        }
        const records = (await journal(out)).filter((r) => r.id === id.toString('hex'));
        assert.ok(records.length <= 1, `round ${round}: one journal record per id: ${show(records)}`);
      }
      const parts = await readdir(join(out, '.ackship', 'parts'));
      assert.ok(parts.every((p) => !p.endsWith('.tmp')));
    });
  }

  // The second half of defect 1: a retry of a confirmed id was confirmed again when `link` said
  // ENOENT, without looking at what the final name holds.
  for (const [what, spoil] of [
    ['removed', (path: string) => unlink(path)],
    ['replaced by other bytes of its size', (path: string) => writeFile(path, Buffer.alloc(64, 0x5a))],
  ] as const) {
    test(`a retry of a confirmed id whose file was ${what} is received anew, not confirmed again`, async (t) => {
      const out = join(await tempDir(t), 'out');
      const receiver = await startReceiver(t, ['--out', out, '--overwrite']);
      const id = Buffer.alloc(16, 9);
      const payload = Buffer.alloc(64, 0x41);
      const first = await rawSender(t, receiver.port);
      assert.equal((await sendItem(first, 'kept.bin', payload, id))?.kind, Kind.Confirm);
      await spoil(join(out, 'kept.bin'));
      const retry = await rawSender(t, receiver.port);
      retry.send(offerFrame(0, 'kept.bin', payload.length, id));
      const [answer] = await retry.frames(1);
      assert.equal(answer?.kind, Kind.Accept, show(answer));
      // Received anew: from 0, or (§7.3, a file of its size is there) at its end with the hash
      // of what is there, which is not ours, so a sender starts over.
      if (answer.offset !== 0) {
        assert.equal(answer.offset, payload.length);
        assert.notEqual(answer.prefixHash, xxh64(payload));
      }
      retry.send(
        { kind: Kind.Data, slot: 0, offset: 0, payload },
        { kind: Kind.End, slot: 0, hash: xxh64(payload) },
      );
      assert.equal((await retry.frames(2))[1]?.kind, Kind.Confirm);
      assert.deepEqual(await readFile(join(out, 'kept.bin')), payload);
    });
  }

  // Found by the model test: an OFFER that arrived while another connection's OFFER of the id
  // was being decided then waited for that item to settle, not for its decision, so a stale
  // connection held the retry until its idle timeout (here an hour).
  test('two connections offering one id back to back: one takes the other over, at once', {
    timeout: 30_000,
  }, async (t) => {
    const receiver = await startReceiver(t, [
      '--out',
      join(await tempDir(t), 'out'),
      '--idle-timeout',
      '3600',
    ]);
    for (let round = 0; round < 5; round++) {
      const id = Buffer.alloc(16, round + 1);
      const peers = [await rawSender(t, receiver.port), await rawSender(t, receiver.port)];
      // Back to back: the second OFFER is read while the first is being decided.
      for (const peer of peers) peer.send(offerFrame(0, `item-${round}`, 10, id));
      const taken = await Promise.race(peers.map((peer, i) => peer.closed.then(() => i)));
      const survivor = peers[1 - taken] as RawSender;
      const [answer] = await survivor.frames(1);
      assert.equal(answer?.kind, Kind.Accept, `round ${round}: ${show(answer)}`);
      const payload = Buffer.alloc(10, round);
      survivor.send(
        { kind: Kind.Data, slot: 0, offset: 0, payload },
        { kind: Kind.End, slot: 0, hash: xxh64(payload) },
      );
      assert.equal((await survivor.frames(2))[1]?.kind, Kind.Confirm, `round ${round}`);
      survivor.end();
    }
  });

  test('a peer holding hundreds of accepted items after one byte each does not keep a legitimate sender out', async (t) => {
    const dir = await tempDir(t);
    // Idle connections are not cut off within the test: the hog stays for good.
    const receiver = await startReceiver(t, ['--out', join(dir, 'out'), '--idle-timeout', '1h']);
    // 6 connections x 64 items: more than all open-part permits, each item stalled after 1 byte.
    const hogs = await Promise.all(Array.from({ length: 6 }, () => rawSender(t, receiver.port)));
    for (const [c, hog] of hogs.entries()) {
      hog.send(
        ...Array.from({ length: 64 }, (_, slot) =>
          offerFrame(
            slot,
            `hog-${c}-${slot}`,
            1000,
            Buffer.from(`${c}`.padStart(4, '0') + `${slot}`.padStart(12, '0')),
          ),
        ),
      );
    }
    // Wait until the first connections hold their items accepted (the rest queue behind them).
    await Promise.all(hogs.slice(0, 3).map((hog) => hog.frames(64)));
    for (const hog of hogs.slice(0, 3)) {
      hog.send(
        ...Array.from(
          { length: 64 },
          (_, slot) => ({ kind: Kind.Data, slot, offset: 0, payload: Buffer.from('x') }) as Frame,
        ),
      );
    }
    // A sender that hears nothing for 5 s gives up: queued behind the hog, it would.
    const sent = await sendFile(t, dir, receiver.port, 'legit.txt', ['--timeout', '5', '--retries', '1']);
    assert.equal(sent.code, 0, sent.stderr);
  });

  test('300 idle connections do not lock a legitimate sender out of a receiver that serves 256', async (t) => {
    const dir = await tempDir(t);
    const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
    const idle: RawSender[] = [];
    for (let i = 0; i < 300; i++) idle.push(await rawSender(t, receiver.port));
    const sent = await sendFile(t, dir, receiver.port, 'legit.txt');
    assert.equal(sent.code, 0, sent.stderr);
    const closedWithBusy = idle.filter((peer) =>
      peer.received.some((f) => f.kind === Kind.Error && f.code === ErrorCode.Busy),
    );
    assert.ok(
      closedWithBusy.length >= 44,
      `the connections over the cap were told busy (${closedWithBusy.length})`,
    );
  });

  test('a name component or an mtime the filesystem cannot hold is refused at OFFER, for good, and never journalled', async (t) => {
    const dir = await tempDir(t);
    const out = join(dir, 'out');
    const receiver = await startReceiver(t, ['--out', out]);
    const peer = await rawSender(t, receiver.port);
    const long = `${'n'.repeat(300)}.txt`;
    // Within the protocol's 4096 bytes, but past PATH_MAX once under DIR.
    const deep = Array.from({ length: 33 }, () => 'd'.repeat(123)).join('/');
    const offers: Frame[] = [
      offerFrame(0, long, 5),
      offerFrame(1, `dir/${long}/x`, 5),
      offerFrame(2, deep, 5),
      { ...(offerFrame(3, 'future.txt', 5) as Extract<Frame, { kind: 1 }>), mtimeMs: 2 ** 62 },
      { ...(offerFrame(4, 'past.txt', 5) as Extract<Frame, { kind: 1 }>), mtimeMs: -(2 ** 62) },
    ];
    peer.send(...offers);
    const answers = await peer.frames(offers.length);
    for (const answer of answers) {
      assert.ok(answer.kind === Kind.Reject && answer.code === RejectCode.BadName, show(answer));
    }
    peer.end();
    await peer.closed;
    assert.deepEqual(await journal(out), []);
    assert.deepEqual(await readdir(join(out, '.ackship', 'parts')), [], 'no part was created');
  });
});
