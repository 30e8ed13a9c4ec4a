// The raw baselines the benchmark compares ackship with, as small child processes:
//   baseline.js pipe-recv FILE            accept one connection, write it to FILE, fsync; prints the port
//   baseline.js pipe-send PORT FILE       stream FILE into a TCP connection, wait for the receiver to close
//   baseline.js naive-recv DIR COUNT      accept connections, write each one's bytes to DIR/<n> (no fsync)
//   baseline.js naive-send PORT DIR       one connect/write/close per file in DIR, 64 at a time
//   baseline.js stream-recv               accept one connection, copy it to stdout; prints the port on stderr
//   baseline.js stream-send PORT          copy stdin into a TCP connection, wait for the receiver to close
//   baseline.js durable-floor SRC OUT     copy SRC's tree to OUT durably, in this one process
import {
  closeSync,
  createReadStream,
  fsync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer } from 'node:net';
import { join, relative } from 'node:path';

const [mode, a = '', b = ''] = process.argv.slice(2);

function listen(server: ReturnType<typeof createServer>): void {
  server.listen(0, '127.0.0.1', () => console.log((server.address() as AddressInfo).port));
}

if (mode === 'pipe-recv') {
  const fd = openSync(a, 'w');
  const server = createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      let at = 0;
      while (at < chunk.length) at += writeSync(fd, chunk, at);
    });
    socket.on('end', () => {
      fsyncSync(fd);
      closeSync(fd);
      socket.end();
      server.close();
    });
  });
  listen(server);
} else if (mode === 'pipe-send') {
  const socket = connect({ host: '127.0.0.1', port: Number(a) }, () => {
    createReadStream(b, { highWaterMark: 1024 * 1024 }).pipe(socket);
  });
  socket.resume();
} else if (mode === 'naive-recv') {
  const expected = Number(b);
  let received = 0;
  let n = 0;
  const server = createServer((socket) => {
    const chunks: Buffer[] = [];
    const name = join(a, String(n++));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('end', () => {
      void writeFile(name, Buffer.concat(chunks)).then(() => {
        if (++received === expected) server.close();
      });
    });
  });
  listen(server);
} else if (mode === 'naive-send') {
  const files = await readdir(b);
  let next = 0;
  const one = async (): Promise<void> => {
    while (next < files.length) {
      const payload = await readFile(join(b, files[next++] as string));
      await new Promise<void>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: Number(a) }, () => socket.end(payload));
        socket.on('close', () => resolve());
        socket.on('error', () => resolve());
      });
    }
  };
  await Promise.all(Array.from({ length: 64 }, one));
} else if (mode === 'stream-recv') {
  const server = createServer((socket) => {
    socket.pipe(process.stdout);
    socket.on('end', () => server.close());
  });
  server.listen(0, '127.0.0.1', () => console.error((server.address() as AddressInfo).port));
} else if (mode === 'stream-send') {
  const socket = connect({ host: '127.0.0.1', port: Number(a) }, () => process.stdin.pipe(socket));
  socket.resume();
} else if (mode === 'durable-floor') {
  await durableFloor(a, b);
} else {
  console.error(
    'usage: baseline.js pipe-recv|pipe-send|naive-recv|naive-send|stream-recv|stream-send|durable-floor ...',
  );
  process.exit(64);
}

/**
 * The least a receiver that confirms each small file durably does for it, with no network, no
 * protocol and no checksum: read it, write it to a new part file, fsync that (64 at a time, in
 * the thread pool, which the bench sizes as ackship's), link it under its name, unlink the
 * part; then fsync every directory once. Calls that touch only memory run on this thread, as
 * ackship's do (src/fd-file.ts). What this costs is the floor under any design that fsyncs
 * every file from Node on this machine.
 */
async function durableFloor(source: string, out: string): Promise<void> {
  const parts = join(out, '.parts');
  const dirs = [out, parts];
  mkdirSync(parts, { recursive: true });
  const files: string[] = [];
  for (const entry of readdirSync(source, { recursive: true, withFileTypes: true })) {
    const name = relative(source, join(entry.parentPath, entry.name));
    if (entry.isDirectory()) {
      mkdirSync(join(out, name));
      dirs.push(join(out, name));
    } else files.push(name);
  }
  let next = 0;
  const one = async (): Promise<void> => {
    while (next < files.length) {
      const n = next++;
      const name = files[n] as string;
      const part = join(parts, String(n));
      const fd = openSync(part, 'wx', 0o600);
      writeSync(fd, readFileSync(join(source, name)));
      await new Promise<void>((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
      closeSync(fd);
      linkSync(part, join(out, name));
      unlinkSync(part);
    }
  };
  await Promise.all(Array.from({ length: 64 }, one));
  for (const dir of dirs) {
    const fd = openSync(dir, 'r');
    fsyncSync(fd);
    closeSync(fd);
  }
}
