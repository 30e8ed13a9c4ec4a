// Programs to programs: a client that keeps one connection open and multiplexes messages over
// it, and a receiving application whose handler decides when each is confirmed. The ack comes
// only after the handler resolved; its return value is the reply; a retry of the same id is
// answered from the dedup record without running the handler again.
import { connect, Refusal, serve } from 'ackship';

const receiver = await serve({
  listen: '127.0.0.1:0',
  handler: async (item) => {
    const body = JSON.parse((await item.bytes()).toString());
    if (item.meta.tenant !== 'acme') throw new Refusal(`unknown tenant ${item.meta.tenant}`);
    return JSON.stringify({ sum: body.a + body.b });
  },
});
const client = await connect(`127.0.0.1:${receiver.address.port}`);
const request = { id: 'task-42', data: Buffer.from('{"a":40,"b":2}'), meta: { tenant: 'acme' } };
const first = await client.send(request);
console.log(`reply: ${first.reply} (duplicate: ${first.duplicate})`);
const again = await client.send(request);
console.log(`again: ${again.reply} (duplicate: ${again.duplicate})`);
await client.send({ data: Buffer.from('{}'), meta: { tenant: 'other' } }).catch((err) => {
  console.log(`refused: ${err.message}`);
});
console.log(`connections opened: ${client.stats.connectionsOpened}`);
await client.close();
await receiver.close();
