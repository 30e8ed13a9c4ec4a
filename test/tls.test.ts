// TLS between real processes, with a self-signed certificate made in the test (openssl; skipped,
// saying why, without it): trusted by its CA file or pinned by fingerprint; an untrusted or
// mismatched certificate fails with exit 77, and a plain sender is told the peer is not ackship.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { hasCommand, run, startReceiver, tempDir } from './support/cli.js';

/** A self-signed certificate for 127.0.0.1 and localhost, valid for a day. */
async function selfSigned(dir: string): Promise<{ cert: string; key: string; fingerprint: string }> {
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
    ].concat([
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      key,
      '-out',
      cert,
    ]),
    { stdio: 'ignore' },
  );
  const fingerprint = new X509Certificate(await readFile(cert)).fingerprint256;
  return { cert, key, fingerprint };
}

async function setUp(t: TestContext) {
  const dir = await tempDir(t);
  const tls = await selfSigned(dir);
  const out = join(dir, 'out');
  const receiver = await startReceiver(t, ['--out', out, '--tls-cert', tls.cert, '--tls-key', tls.key]);
  const file = join(dir, 'sealed.txt');
  await writeFile(file, 'over TLS');
  const send = (args: string[]) =>
    run(t, ['send', `127.0.0.1:${receiver.port}`, file, '--retry-delay', '0.05', '--retries', '1', ...args], {
      env: { ACKSHIP_STATE_DIR: join(dir, 'state') },
    });
  return { dir, out, tls, receiver, send };
}

describe('TLS', {
  skip: hasCommand('openssl', 'version')
    ? false
    : 'openssl is not installed (needed to make a test certificate)',
}, () => {
  test('trusting the receiver by its CA file, and by its pinned fingerprint: delivered', async (t) => {
    const { out, tls, send } = await setUp(t);
    const byCa = await send(['--tls-ca', tls.cert]);
    assert.equal(byCa.code, 0, byCa.stderr);
    assert.equal(await readFile(join(out, 'sealed.txt'), 'utf8'), 'over TLS');
    const pinned = await send([
      '--tls-fingerprint',
      tls.fingerprint.replaceAll(':', '').toLowerCase(),
      '--name',
      'pinned.txt',
    ]);
    assert.equal(pinned.code, 0, pinned.stderr);
  });

  test('a certificate nobody vouched for, or another fingerprint: exit 77 and why', async (t) => {
    const { out, send } = await setUp(t);
    const system = await send(['--tls']);
    assert.equal(system.code, 77, system.stderr);
    assert.match(system.stderr, /the receiver's TLS certificate is not trusted: self[- ]signed certificate/);
    const wrong = await send(['--tls-fingerprint', 'ab'.repeat(32)]);
    assert.equal(wrong.code, 77, wrong.stderr);
    assert.match(wrong.stderr, /has fingerprint [0-9A-F:]{95}, not the pinned AB:AB/);
    assert.deepEqual(await readdir(out), ['.ackship']);
  });

  test('a plain sender to a TLS receiver, and a TLS sender to a plain one, are told what may be wrong', async (t) => {
    const { dir, send } = await setUp(t);
    const plain = await send([]);
    assert.equal(plain.code, 75, plain.stderr);
    assert.match(
      plain.stderr,
      /closed the connection before its hello \(if it serves TLS, give --tls-ca or --tls-fingerprint\)/,
    );
    const plainReceiver = await startReceiver(t, ['--out', join(dir, 'plain')]);
    const overTls = await run(
      t,
      ['send', `127.0.0.1:${plainReceiver.port}`, join(dir, 'sealed.txt'), '--tls', '--retries', '0'],
      {
        env: { ACKSHIP_STATE_DIR: join(dir, 'state3') },
      },
    );
    assert.equal(overTls.code, 76, overTls.stderr);
    assert.match(overTls.stderr, /the receiver answered without TLS: start it with --tls-cert/);
  });

  test('TLS and a shared secret together', async (t) => {
    const { dir, out, tls } = await setUp(t);
    const secret = join(dir, 'secret');
    await writeFile(secret, 'both\n', { mode: 0o600 });
    const receiver = await startReceiver(t, [
      '--out',
      join(out, 'both'),
      '--tls-cert',
      tls.cert,
      '--tls-key',
      tls.key,
      '--secret-file',
      secret,
    ]);
    const file = join(dir, 'both.txt');
    await writeFile(file, 'belt and braces');
    const sent = await run(
      t,
      ['send', `127.0.0.1:${receiver.port}`, file, '--tls-ca', tls.cert, '--secret-file', secret],
      {
        env: { ACKSHIP_STATE_DIR: join(dir, 'state2') },
      },
    );
    assert.equal(sent.code, 0, sent.stderr);
  });
});
