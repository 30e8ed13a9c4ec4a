// The receiving ends of the message benchmark, each a child process printing its port:
//   message-peer.js handler [STATE_DIR]   serve({ handler }) with an in-memory handler (durable dedup with STATE_DIR)
//   message-peer.js raw [fsync]           a raw Node server: u32 length + payload in, 1 byte ack out per message;
//                                         with fsync, one fdatasync of a log per batch of acks
// Each prints "connections N rss KIB" (connections accepted, its peak RSS) on stdout when it gets
// SIGTERM, then exits.
import { closeSync, fdatasyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '../src/index.js';

const [mode, arg] = process.argv.slice(2);
let connections = 0;
const stop = (close: () => Promise<void> | void) =>
  process.on('SIGTERM', async () => {
    await close();
    console.log(`connections ${connections} rss ${process.resourceUsage().maxRSS}`);
    process.exit(0);
  });

if (mode === 'handler') {
  const receiver = await serve({
    listen: '127.0.0.1:0',
    ...(arg !== undefined && { stateDir: arg }),
    handler: async (item) => {
      await item.bytes();
    },
  });
  receiver.on('connection', () => connections++);
  stop(() => receiver.close());
  console.log(receiver.address.port);
} else {
  const logPath = join(tmpdir(), `ackship-bench-raw-${process.pid}`);
  const log = arg === 'fsync' ? openSync(logPath, 'w') : undefined;
  const server = createServer((socket) => {
    connections++;
    // Parsed as it streams: a 4-byte length, then that many bytes, no copies of the payload.
    const header = Buffer.alloc(4);
    let headerHave = 0;
    let bodyLeft = 0;
    socket.on('data', (chunk: Buffer) => {
      let acks = 0;
      for (let at = 0; at < chunk.length; ) {
        if (headerHave < 4) {
          const take = Math.min(4 - headerHave, chunk.length - at);
          chunk.copy(header, headerHave, at, at + take);
          headerHave += take;
          at += take;
          if (headerHave < 4) break;
          bodyLeft = header.readUInt32BE(0);
        }
        const take = Math.min(bodyLeft, chunk.length - at);
        if (log !== undefined && take > 0) writeSync(log, chunk, at, take);
        at += take;
        bodyLeft -= take;
        if (bodyLeft === 0) {
          acks++;
          headerHave = 0;
        }
      }
      if (acks === 0) return;
      if (log !== undefined) fdatasyncSync(log);
      socket.write(Buffer.alloc(acks, 1));
    });
  });
  server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
  stop(() => {
    if (log !== undefined) {
      closeSync(log);
      unlinkSync(logPath);
    }
    server.close();
  });
}
