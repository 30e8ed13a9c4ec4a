// The setting ackship was made for: programs in a cluster shipping 4 MiB chunks and small
// request/reply calls to one receiving program that cannot keep up (a slow handler, 4 calls at
// a time, a listen backlog of 4). Each sender process keeps one connection open and multiplexes
// everything over it; a message counts only once the receiving program handled it, and none is
// handled twice. Prints what was lost (nothing), what was handled twice (nothing), and how
// many TCP connections were opened, and how many a second.
//
//   node examples/cluster.mjs [SENDERS=4] [CHUNKS=8] [CALLS=500]
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, serve } from 'ackship';

const [role, ...args] = process.argv.slice(2);

if (role === 'sender') {
  // One program of the cluster: its chunks and calls, all at once, over one client.
  const [port, who, chunks, calls] = args.map(Number);
  const client = await connect(`127.0.0.1:${port}`);
  const chunk = Buffer.alloc(4 * 1024 * 1024, who);
  const sends = [];
  for (let i = 0; i < chunks; i++)
    sends.push(client.send({ id: `${who}/chunk/${i}`, name: 'chunk', data: chunk }));
  for (let i = 0; i < calls; i++) {
    const call = client.send({
      id: `${who}/call/${i}`,
      name: 'call',
      data: Buffer.from(JSON.stringify({ n: i })),
    });
    sends.push(
      call.then((ack) => {
        if (JSON.parse(ack.reply.toString()).doubled !== 2 * i) throw new Error(`wrong reply to call ${i}`);
      }),
    );
  }
  await Promise.all(sends);
  await client.close();
} else {
  const [senders = 4, chunks = 8, calls = 500] = [role, ...args].filter(Boolean).map(Number);
  const handled = new Map();
  let connections = 0;
  const receiver = await serve({
    listen: '127.0.0.1:0',
    backlog: 4,
    maxInFlight: 4,
    handler: async (item) => {
      const bytes = await item.bytes();
      handled.set(item.id, (handled.get(item.id) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, 1)); // a slow application
      if (item.name === 'call') return JSON.stringify({ doubled: JSON.parse(bytes.toString()).n * 2 });
      return undefined;
    },
  });
  receiver.on('connection', () => connections++);
  const began = performance.now();
  const self = fileURLToPath(import.meta.url);
  await Promise.all(
    Array.from({ length: senders }, (_, who) => {
      const child = fork(self, ['sender', receiver.address.port, who, chunks, calls].map(String));
      return new Promise((resolve, reject) =>
        child.on('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`sender ${who} exited ${code}`)),
        ),
      );
    }),
  );
  const seconds = (performance.now() - began) / 1000;
  await receiver.close();
  const expected = senders * (chunks + calls);
  const lost = expected - handled.size;
  const twice = [...handled.values()].filter((n) => n > 1).length;
  console.log(
    `${expected} messages (${senders * chunks} x 4 MiB, ${senders * calls} calls) from ${senders} processes in ${seconds.toFixed(1)} s`,
  );
  console.log(`lost: ${lost}, handled twice: ${twice}`);
  console.log(`TCP connections opened: ${connections} (${(connections / seconds).toFixed(1)} a second)`);
  if (lost !== 0 || twice !== 0) process.exitCode = 1;
}
