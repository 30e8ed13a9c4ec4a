// A receiving application in a process of its own, for tests that kill and restart it:
// `node handler-receiver.js STATE_DIR CALLS_LOG`. Its handler reads each item whole, appends
// {id, size, redelivered} to CALLS_LOG (so calls are counted across restarts) and replies
// "ok ID". It prints "listening on 127.0.0.1:PORT" on stderr and "connection" on stdout per
// connection, so a test counts the connections the receiver itself saw.
import { appendFile } from 'node:fs/promises';
import { serve } from '../../src/index.js';

const [stateDir, callsLog] = process.argv.slice(2) as [string, string];
const receiver = await serve({
  listen: '127.0.0.1:0',
  stateDir,
  handler: async (item) => {
    const bytes = await item.bytes();
    await appendFile(
      callsLog,
      `${JSON.stringify({ id: item.id, size: bytes.length, redelivered: item.redelivered })}\n`,
    );
    return `ok ${item.id}`;
  },
});
receiver.on('connection', () => process.stdout.write('connection\n'));
process.on('SIGTERM', () => void receiver.close().then(() => process.exit(0)));
process.stderr.write(`listening on 127.0.0.1:${receiver.address.port}\n`);
