// The sending ends of the message benchmark, each a child process of its own so that its peak
// RSS is its own:
//   message-sender.js ackship PORT COUNT SIZE   one client (connect()), 256 calls in flight
//   message-sender.js raw PORT COUNT SIZE       one raw socket: u32 length + payload, 1-byte ack each, 64 in flight
// Prints one JSON line: { "perSecond": messages a second, "rssKiB": its peak RSS }.
import { once } from 'node:events';
import { connect as tcpConnect } from 'node:net';
import { connect } from '../src/index.js';

const DEPTH = 64;
/** The client's calls in flight: above its window of 64, so that the window is always full. */
const CALLS = 256;

/** Messages a second through ackship's client, with maxInFlight and maxInFlightBytes at their defaults. */
async function ackshipRate(port: number, count: number, size: number): Promise<number> {
  const client = await connect(`127.0.0.1:${port}`);
  const data = Buffer.alloc(size, 7);
  const began = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CALLS }, async () => {
      while (next < count) await client.send({ id: `m${next++}`, data });
    }),
  );
  const seconds = (performance.now() - began) / 1000;
  await client.close();
  return count / seconds;
}

/** Messages a second over one raw socket: u32 length + payload, 1-byte ack each, DEPTH in flight. */
async function rawRate(port: number, count: number, size: number): Promise<number> {
  const socket = tcpConnect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  socket.setNoDelay(true);
  const frame = Buffer.alloc(4 + size, 7);
  frame.writeUInt32BE(size, 0);
  const began = performance.now();
  let sent = 0;
  let acked = 0;
  await new Promise<void>((resolve) => {
    const fill = () => {
      while (sent < count && sent - acked < DEPTH) {
        socket.write(frame);
        sent++;
      }
    };
    socket.on('data', (acks: Buffer) => {
      acked += acks.length;
      if (acked >= count) resolve();
      else fill();
    });
    fill();
  });
  const seconds = (performance.now() - began) / 1000;
  socket.destroy();
  return count / seconds;
}

const [mode, port, count, size] = process.argv.slice(2);
const rate = mode === 'ackship' ? ackshipRate : rawRate;
const perSecond = await rate(Number(port), Number(count), Number(size));
console.log(JSON.stringify({ perSecond, rssKiB: process.resourceUsage().maxRSS }));
