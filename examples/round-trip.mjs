// A receiver and a sender in one Node process: `send` resolves only once the receiver has
// checked the bytes, made them durable and put them under their name.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { send, serve } from 'ackship';

const dir = await mkdtemp(join(tmpdir(), 'ackship-example-'));
try {
  const receiver = await serve({ out: join(dir, 'inbox'), listen: '127.0.0.1:0' });
  receiver.on('confirmed', (item) => console.log(`receiver: stored ${item.name}`));
  const { items } = await send(
    `127.0.0.1:${receiver.address.port}`,
    [{ name: 'hello.txt', data: Buffer.from('hello, durable world\n') }],
    { stateDir: join(dir, 'state') },
  );
  console.log(`sender: ${items[0].name} confirmed, xxh64 ${items[0].hash}`);
  console.log(`on disk: ${await readFile(join(dir, 'inbox', 'hello.txt'), 'utf8')}`.trimEnd());
  await receiver.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
