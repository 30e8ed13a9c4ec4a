// Runs the ackship CLI in this process and, at exit, writes its peak RSS in KiB to a file:
//   max-rss.js OUT_FILE ARGS...
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const [out = '', ...args] = process.argv.slice(2);
const bin = fileURLToPath(new URL('../../bin/run.js', import.meta.url));
process.on('exit', () => writeFileSync(out, String(process.resourceUsage().maxRSS)));
process.argv = [process.argv[0] as string, bin, ...args];
await import(bin);
