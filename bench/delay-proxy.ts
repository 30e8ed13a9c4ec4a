// A long link for the benchmark, in userspace (this machine has no netem): every byte that
// crosses the proxy, either way, arrives DELAY_MS later, in order; bandwidth is not limited.
//   delay-proxy.js TARGET_PORT DELAY_MS      prints its own port, then serves until killed
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

const [targetPort, delay] = process.argv.slice(2).map(Number) as [number, number];

/** Copies `from` to `to`, each chunk `delay` ms after it arrived; the end follows the last chunk. */
function delayed(from: Socket, to: Socket): void {
  from.on('data', (chunk: Buffer) => {
    setTimeout(() => to.write(chunk), delay);
  });
  from.on('end', () => setTimeout(() => to.end(), delay));
  from.on('error', () => to.destroy());
  from.on('close', () => setTimeout(() => to.destroy(), delay * 2));
}

const server = createServer({ allowHalfOpen: true }, (client) => {
  client.setNoDelay(true);
  const upstream = connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
  upstream.setNoDelay(true);
  delayed(client, upstream);
  delayed(upstream, client);
});
server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
