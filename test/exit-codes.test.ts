// Every documented exit status, produced as a user would meet it, with and without --json:
// the status, one "ackship: ..." line on stderr, and under --json an error record on stdout.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { EXIT_CODE_HELP, ExitCode } from '../src/errors.js';
import { ackship, type Finished, records, run, startReceiver, tempDir } from './support/cli.js';
import { writeRandom } from './support/files.js';
import { deadPort, httpLikeServer, silentServer } from './support/net.js';
import { FaultProxy } from './support/proxy.js';

function assertFailure(result: Finished, code: number, json: boolean, reason: RegExp): void {
  assert.equal(result.code, code, `exit status; stderr: ${result.stderr}`);
  const lines = result.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('ackship: '));
  assert.ok(lines.length >= 1, `a reason on stderr: ${result.stderr}`);
  assert.match(lines.at(-1) as string, reason);
  if (json) {
    const errors = records(result.stdout).filter((r) => r.exitCode !== undefined);
    assert.ok(errors.length >= 1, `a record with the exit status on stdout: ${result.stdout}`);
    assert.equal(errors.at(-1)?.exitCode, code);
  }
}

interface Scenario {
  name: string;
  code: number;
  reason: RegExp;
  run(t: TestContext, dir: string, json: string[]): Promise<Finished>;
}

const env = (dir: string) => ({ env: { ACKSHIP_STATE_DIR: join(dir, 'state') } });

const scenarios: Scenario[] = [
  {
    name: 'usage: no target',
    code: ExitCode.Usage,
    reason: /missing required arg|target/i,
    run: (t, dir, json) => run(t, ['send', ...json], env(dir)),
  },
  {
    name: 'usage: unknown flag',
    code: ExitCode.Usage,
    reason: /nonexistent flag|unknown flag/i,
    run: (t, dir, json) => run(t, ['recv', '--bogus', ...json], env(dir)),
  },
  // Every bad value is a usage error that names where it came from: the flag, or the env var.
  ...(
    [
      ['send', ['--window', '10QB'], {}, /^ackship: --window 10QB: "10QB" is not a size/],
      ['send', ['--timeout', '0'], {}, /^ackship: --timeout 0: "0" is not a positive duration/],
      ['send', ['--retries=-1'], {}, /^ackship: --retries -1: .*greater than or equal to 0/],
      [
        'send',
        [],
        { ACKSHIP_TIMEOUT: '5x' },
        /^ackship: ACKSHIP_TIMEOUT=5x: "5x" is not a positive duration/,
      ],
      [
        'send',
        [],
        { ACKSHIP_CONNECTIONS: '99' },
        /^ackship: ACKSHIP_CONNECTIONS=99: .*less than or equal to 16/,
      ],
      ['recv', ['--idle-timeout', '0'], {}, /^ackship: --idle-timeout 0: "0" is not a positive duration/],
      ['send', ['--limit-rate', '0'], {}, /^ackship: --limit-rate 0: "0" is not a positive rate/],
    ] as const
  ).map(
    ([command, flags, environment, reason]): Scenario => ({
      name: `usage: ${flags.join(' ') || Object.entries(environment).map(([k, v]) => `${k}=${v}`)} (${command})`,
      code: ExitCode.Usage,
      reason,
      run: (t, dir, json) =>
        run(
          t,
          [command, ...(command === 'send' ? ['127.0.0.1:1', dir] : ['--out', dir]), ...flags, ...json],
          {
            env: { ACKSHIP_STATE_DIR: join(dir, 'state'), ...environment },
          },
        ),
    }),
  ),
  {
    name: 'usage: bad port',
    code: ExitCode.Usage,
    reason: /port 99999/,
    run: (t, dir, json) => run(t, ['send', '127.0.0.1:99999', '-', ...json], env(dir)),
  },
  {
    name: 'usage: a directory',
    code: ExitCode.Usage,
    reason: /is a directory/,
    run: (t, dir, json) => run(t, ['send', '127.0.0.1:1', dir, ...json], env(dir)),
  },
  {
    name: 'no input: a missing file',
    code: ExitCode.NoInput,
    reason: /cannot read .*missing: no such file/,
    run: (t, dir, json) => run(t, ['send', '127.0.0.1:1', join(dir, 'missing'), ...json], env(dir)),
  },
  {
    name: 'rejected: the name exists on the receiver',
    code: ExitCode.Rejected,
    reason: /rejected taken\.txt: taken\.txt exists/,
    async run(t, dir, json) {
      await mkdir(join(dir, 'out'));
      await writeFile(join(dir, 'out', 'taken.txt'), 'first');
      await writeFile(join(dir, 'taken.txt'), 'second');
      const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
      return run(t, ['send', `127.0.0.1:${receiver.port}`, join(dir, 'taken.txt'), ...json], env(dir));
    },
  },
  {
    name: 'unconfirmed: nothing listens',
    code: ExitCode.Unconfirmed,
    reason:
      /not confirmed after 2 attempts \(failing for [\d.]+ s\): .*ECONNREFUSED.*run the same send again/,
    async run(t, dir, json) {
      await writeFile(join(dir, 'f'), 'x');
      const port = await deadPort();
      return run(
        t,
        ['send', `127.0.0.1:${port}`, join(dir, 'f'), '--retries', '1', '--retry-delay', '0.05', ...json],
        env(dir),
      );
    },
  },
  {
    name: 'protocol: the peer is not ackship',
    code: ExitCode.Protocol,
    reason: /peer does not speak ackship \(it sent "HTTP"\)/,
    async run(t, dir, json) {
      await writeFile(join(dir, 'f'), 'x');
      const port = await httpLikeServer(t);
      return run(t, ['send', `127.0.0.1:${port}`, join(dir, 'f'), ...json], env(dir));
    },
  },
  {
    name: 'protocol: a server that accepts and never sends a hello (--connect-timeout 1)',
    code: ExitCode.Protocol,
    reason: /accepted the connection but sent no ackship hello within 1 s/,
    async run(t, dir, json) {
      await writeFile(join(dir, 'f'), 'x');
      const port = await silentServer(t);
      return run(
        t,
        ['send', `127.0.0.1:${port}`, join(dir, 'f'), '--connect-timeout', '1', ...json],
        env(dir),
      );
    },
  },
  {
    // In a network namespace of its own, with only a loopback that is down: the name cannot be
    // looked up, and no query leaves the machine.
    name: 'no such host: the name does not resolve, and it is not retried',
    code: ExitCode.NoHost,
    reason: /cannot resolve receiver\.invalid \(EAI_AGAIN|cannot resolve receiver\.invalid \(ENOTFOUND/,
    async run(t, dir, json) {
      await writeFile(join(dir, 'f'), 'x');
      const sent = await run(t, ['send', 'receiver.invalid:7420', join(dir, 'f'), ...json], {
        ...env(dir),
        wrap: ['unshare', '--net'],
      });
      assert.doesNotMatch(sent.stderr, /retry/i, 'a name that does not resolve is not retried');
      return sent;
    },
  },
  {
    name: 'partial: one item confirmed, one rejected',
    code: ExitCode.Partial,
    reason: /1 of 2 items confirmed/,
    async run(t, dir, json) {
      await mkdir(join(dir, 'out'));
      await writeFile(join(dir, 'out', 'b'), 'there already');
      await writeFile(join(dir, 'a'), 'new');
      await writeFile(join(dir, 'b'), 'clash');
      const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
      return run(
        t,
        ['send', `127.0.0.1:${receiver.port}`, join(dir, 'a'), join(dir, 'b'), ...json],
        env(dir),
      );
    },
  },
  {
    name: 'interrupted: SIGINT in the middle of a transfer',
    code: ExitCode.Interrupted,
    reason: /interrupted by SIGINT/,
    async run(t, dir, json) {
      await writeRandom(join(dir, 'big'), 8 * 1024 * 1024);
      const receiver = await startReceiver(t, ['--out', join(dir, 'out')]);
      const proxy = await FaultProxy.start(t, { target: receiver.port, rate: 2 * 1024 * 1024 });
      const sender = ackship(t, ['send', `127.0.0.1:${proxy.port}`, join(dir, 'big'), ...json], env(dir));
      await proxy.waitForwarded(1024 * 1024);
      sender.child.kill('SIGINT');
      return sender.exited;
    },
  },
];

describe('exit statuses', () => {
  for (const scenario of scenarios) {
    for (const json of [false, true]) {
      test(`${scenario.name} → ${scenario.code}${json ? ' (--json)' : ''}`, async (t) => {
        const dir = await tempDir(t);
        const result = await scenario.run(t, dir, json ? ['--json'] : []);
        assertFailure(result, scenario.code, json, scenario.reason);
      });
    }
  }

  test("recv --once exits 65 when its sender's only item was rejected", async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'f'), 'x');
    const receiver = await startReceiver(t, ['--out', join(dir, 'out'), '--once', '--max-size', '0']);
    const sent = await run(t, ['send', `127.0.0.1:${receiver.port}`, join(dir, 'f')], env(dir));
    assert.equal(sent.code, ExitCode.Rejected);
    assert.match(sent.stderr, /exceeds the receiver's limit of 0 bytes/);
    assertFailure(await receiver.exited, ExitCode.Rejected, false, /0 of 1 items confirmed, 1 rejected/);
  });

  test('recv exits 130 on SIGINT and 143 on SIGTERM', async (t) => {
    const dir = await tempDir(t);
    for (const [signal, code] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const receiver = await startReceiver(t, ['--out', dir, '--json']);
      receiver.child.kill(signal);
      assertFailure(await receiver.exited, code, true, new RegExp(`interrupted by ${signal}`));
    }
  });

  test('README documents exactly the exit statuses of the table in src/errors.ts', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('### Exit status'));
    const documented = [...section.matchAll(/^\|\s+(\d+) \|/gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      documented,
      EXIT_CODE_HELP.map(([code]) => code),
    );
  });

  // The issue's case: a web server's port, with every default. The bound is two connect
  // timeouts (10 s each) and one retry delay; this test's own timeout is the liveness bound.
  test('a silent server with the default timeouts is "not ackship" (76) after two connect timeouts', {
    timeout: 45_000,
  }, async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'f'), 'x');
    const port = await silentServer(t);
    const sent = await run(t, ['send', `127.0.0.1:${port}`, join(dir, 'f')], env(dir));
    assertFailure(
      sent,
      ExitCode.Protocol,
      false,
      /sent no ackship hello within 10 s, on 2 attempts: it is not an ackship receiver/,
    );
  });

  test('README lists every environment variable a flag reads', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const manifest = JSON.parse(
      await readFile(new URL('../../oclif.manifest.json', import.meta.url), 'utf8'),
    ) as {
      commands: Record<string, { flags: Record<string, { env?: string }> }>;
    };
    const envs = Object.values(manifest.commands).flatMap((c) => Object.values(c.flags).map((f) => f.env));
    const missing = envs.filter((env): env is string => env !== undefined && !readme.includes(`\`${env}\``));
    assert.ok(envs.length > 20);
    assert.deepEqual(missing, []);
  });

  test('--help lists the exit statuses', async (t) => {
    const help = await run(t, ['send', '--help']);
    assert.equal(help.code, 0);
    for (const code of Object.values(ExitCode))
      assert.match(help.stdout, new RegExp(`^\\s+${code}\\s+\\S`, 'm'));
  });
});
