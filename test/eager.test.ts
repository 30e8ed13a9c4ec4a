// Small files sent with their OFFER (v6, PROTOCOL.md §6.3), seen on the wire through a proxy:
// after the run's first file, which asks, no file gets an ACCEPT, only its CONFIRM; an older
// receiver gets every file asked for, as before.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadHasher, xxh64 } from '../src/hash.js';
import { encodeFrame, encodeHello, type OfferFrame } from '../src/protocol/codec.js';
import { Kind, MAX_EAGER_OPEN_BYTES, Role } from '../src/protocol/constants.js';
import { FrameParser } from '../src/protocol/frame-parser.js';
import { itemRecords, run, startReceiver, tempDir } from './support/cli.js';
import { FaultProxy } from './support/proxy.js';

await loadHasher();

/** The kinds of the frames the receiver sent, by kind, read from what the proxy returned. */
function replyKinds(proxy: FaultProxy): () => Map<number, number> {
  const parser = new FrameParser();
  const kinds = new Map<number, number>();
  proxy.on('returned', (chunk: Buffer) => {
    for (const message of parser.push(chunk))
      if (message.kind !== 'hello') kinds.set(message.kind, (kinds.get(message.kind) ?? 0) + 1);
  });
  return () => kinds;
}

for (const [receiverVersion, accepts] of [
  [6, 1],
  [5, 20],
] as const) {
  test(`20 small files to a v${receiverVersion} receiver: ${accepts} ACCEPT, 20 CONFIRMs, all stored`, async (t) => {
    const dir = await tempDir(t);
    const tree = join(dir, 'tree');
    await mkdir(tree);
    for (let i = 0; i < 20; i++) await writeFile(join(tree, `f${i}`), `file ${i}\n`.repeat(i));
    const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
    const proxy = await FaultProxy.start(t, { target: receiver.port, capVersion: receiverVersion });
    const kinds = replyKinds(proxy);
    const sent = await run(t, ['send', `127.0.0.1:${proxy.port}`, `${tree}/`, '-r', '--json'], {
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
    assert.equal(sent.code, 0, sent.stderr);
    const items = itemRecords(sent.stdout);
    assert.equal(items.filter((r) => r.status === 'confirmed' && r.bytesSent === r.bytes).length, 20);
    assert.deepEqual([kinds().get(Kind.Accept), kinds().get(Kind.Confirm)], [accepts, 20]);
  });
}

// §6.3: 16 MiB of eager items open at once, at most. A receiver that answers nothing after the
// run's first file sees what the sender would keep open: 400 more files of 64 KiB all fit v7's
// window of 1,024, but only 256 of them fit the bound; the rest ask.
test('to a receiver that answers nothing, 400 files of 64 KiB: 256 go eagerly (16 MiB), the rest ask', async (t) => {
  const dir = await tempDir(t);
  const tree = join(dir, 'tree');
  await mkdir(tree);
  for (let i = 0; i <= 400; i++)
    await writeFile(join(tree, `f${String(i).padStart(3, '0')}`), Buffer.alloc(64 * 1024, i));
  const offers: OfferFrame[] = [];
  const sockets: Socket[] = [];
  let allOffered: () => void = () => {};
  const offered = new Promise<void>((resolve) => {
    allOffered = resolve;
  });
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    socket.write(encodeHello({ minVersion: 1, maxVersion: 7, role: Role.Receiver }));
    const parser = new FrameParser();
    socket.on('data', (chunk: Buffer) => {
      for (const message of parser.push(chunk)) {
        if (message.kind !== Kind.Offer) continue;
        offers.push(message);
        // The run's first small file asks (the probe); told it is new, the rest may go eagerly.
        if (offers.length === 1) {
          const accept = {
            kind: Kind.Accept,
            slot: message.slot,
            offset: 0,
            prefixHash: xxh64(Buffer.alloc(0)),
          } as const;
          for (const part of encodeFrame(accept)) socket.write(part);
        }
        if (offers.length === 401) allOffered();
      }
    });
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.close();
    for (const socket of sockets) socket.destroy();
  });
  const port = (server.address() as AddressInfo).port;
  const sent = run(t, ['send', `127.0.0.1:${port}`, `${tree}/`, '-r', '--retries', '0'], {
    env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
  });
  // A sender that gave up first (it hears nothing more) fails the count below instead of a hang.
  await Promise.race([offered, sent]);
  assert.equal(offers.length, 401, 'the probe and 400 more offered');
  for (const socket of sockets) socket.destroy();
  const eager = offers.filter((o) => o.eager);
  assert.equal(eager.length, 256);
  assert.equal(
    eager.reduce((sum, o) => sum + o.size, 0),
    MAX_EAGER_OPEN_BYTES,
  );
  assert.equal(offers.length - 1 - eager.length, 144, 'the rest asked');
  assert.notEqual((await sent).code, 0);
});

test('a small file sent with its OFFER over other bytes under its name meets "exists"; the file stays as it was', async (t) => {
  const dir = await tempDir(t);
  const [tree, out] = [join(dir, 'tree'), join(dir, 'out')];
  await mkdir(tree);
  await mkdir(out);
  // a.txt asks first and is new, so b.txt goes with its OFFER.
  await writeFile(join(tree, 'a.txt'), 'new here');
  await writeFile(join(tree, 'b.txt'), 'the sender has this');
  await writeFile(join(out, 'b.txt'), 'the receiver has it');
  const receiver = await startReceiver(t, ['--out', out]);
  const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, `${tree}/`, '-r', '--json'], {
    env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
  });
  assert.equal(sent.code, 3, sent.stderr);
  assert.match(sent.stderr, /receiver rejected b\.txt: b\.txt exists with other bytes/);
  assert.deepEqual(
    itemRecords(sent.stdout)
      .map((r) => [r.name, r.status])
      .sort(),
    [
      ['a.txt', 'confirmed'],
      ['b.txt', 'failed'],
    ],
  );
  assert.equal(await readFile(join(out, 'b.txt'), 'utf8'), 'the receiver has it');
  assert.deepEqual(await readdir(join(out, '.ackship', 'parts')), [], 'no part left behind');
});
