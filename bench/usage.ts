// Runs a Node script in this process and, at exit, writes what it cost to a file as JSON:
// { "rssKiB": peak RSS, "userSeconds": CPU in user mode, "systemSeconds": CPU in the kernel }.
//   usage.js OUT_FILE SCRIPT ARGS...
import { writeFileSync } from 'node:fs';

const [out = '', script = '', ...args] = process.argv.slice(2);
process.on('exit', () => {
  const usage = process.resourceUsage();
  writeFileSync(
    out,
    JSON.stringify({
      rssKiB: usage.maxRSS,
      userSeconds: usage.userCPUTime / 1e6,
      systemSeconds: usage.systemCPUTime / 1e6,
    }),
  );
});
process.argv = [process.argv[0] as string, script, ...args];
await import(script);
