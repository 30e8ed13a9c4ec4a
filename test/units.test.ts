import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createProgress, progressLine } from '../src/cli/progress.js';
import { closest, editDistance } from '../src/cli/suggest.js';
import {
  formatBytes,
  formatDuration,
  formatSize,
  parseRate,
  parseSeconds,
  parseSize,
} from '../src/cli/units.js';
import { AckshipError } from '../src/errors.js';
import { DEFAULT_PORT, formatAddress, parseAddress } from '../src/net-address.js';
import { retryDelay } from '../src/send/backoff.js';
import { TokenBucket } from '../src/send/rate-limit.js';

test('parseAddress takes host, host:port and bracketed IPv6, with the default port', () => {
  assert.deepEqual(parseAddress('example.org'), { host: 'example.org', port: DEFAULT_PORT });
  assert.deepEqual(parseAddress('127.0.0.1:9000'), { host: '127.0.0.1', port: 9000 });
  assert.deepEqual(parseAddress('[::1]:7421'), { host: '::1', port: 7421 });
  assert.deepEqual(parseAddress('[::1]'), { host: '::1', port: DEFAULT_PORT });
  assert.deepEqual(parseAddress('127.0.0.1:0', true), { host: '127.0.0.1', port: 0 });
  assert.equal(formatAddress({ host: '::1', port: 1 }), '[::1]:1');
});

test('parseAddress refuses what is not HOST[:PORT] with a usage error', () => {
  for (const bad of ['', '::1', 'host:', 'host:99999', 'host:0', '[::1', 'a:b:c', 'host:port']) {
    assert.throws(
      () => parseAddress(bad),
      (err: unknown) => err instanceof AckshipError && err.code === 'ACK_ERR_USAGE',
      bad,
    );
  }
});

test('parseSize reads plain bytes and binary and decimal units', () => {
  assert.equal(parseSize('0'), 0);
  assert.equal(parseSize('1048576'), 1048576);
  assert.equal(parseSize('512K'), 512 * 1024);
  assert.equal(parseSize('10MiB'), 10 * 1024 ** 2);
  assert.equal(parseSize('2GB'), 2e9);
  assert.equal(parseSize('1.5g'), 1.5 * 1024 ** 3);
  for (const bad of ['', '-1', '10Q', 'ten', '1e3']) assert.throws(() => parseSize(bad), /not a size/);
  assert.throws(() => parseSize('9999999T'), /too large/);
});

test('parseSeconds takes positive durations, in seconds or with a unit', () => {
  assert.equal(parseSeconds('0.5'), 0.5);
  assert.equal(parseSeconds('30'), 30);
  assert.equal(parseSeconds('90s'), 90);
  assert.equal(parseSeconds('10m'), 600);
  assert.equal(parseSeconds('1.5h'), 5400);
  assert.equal(parseSeconds('7d'), 604800);
  for (const bad of ['0', '-1', '', 'soon', 'Infinity', '5w', '0d', '1e3'])
    assert.throws(() => parseSeconds(bad));
});

test('formatBytes', () => {
  assert.equal(formatBytes(1), '1 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(1024 ** 3), '1.0 GiB');
});

test('retry delays grow exponentially, are capped, and jitter within the upper half', () => {
  const policy = { retries: 8, baseDelayMs: 500, maxDelayMs: 5000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((n) => retryDelay(policy, n, () => 1)),
    [500, 1000, 2000, 4000, 5000, 5000],
  );
  assert.equal(
    retryDelay(policy, 1, () => 0),
    250,
  );
});

test('help shows defaults as a user would type them, and they parse back to the same value', () => {
  assert.equal(formatSize(16 * 1024 * 1024), '16MiB');
  assert.equal(formatSize(1000), '1000');
  assert.equal(formatDuration(7 * 86400), '7d');
  assert.equal(formatDuration(60), '1m');
  assert.equal(formatDuration(0.5), '0.5s');
  for (const bytes of [0, 1, 1000, 1024, 16 * 1024 * 1024, 3 * 1024 ** 3, 1536])
    assert.equal(parseSize(formatSize(bytes)), bytes);
  for (const seconds of [0.5, 1, 10, 30, 60, 90, 3600, 86400 * 30])
    assert.equal(parseSeconds(formatDuration(seconds)), seconds);
});

test('a mistyped command or flag is matched to the one meant, and a far one to none', () => {
  assert.equal(closest('sned', ['send', 'recv', 'stress', 'help']), 'send');
  assert.equal(closest('retires', ['retries', 'retry-delay', 'timeout']), 'retries');
  assert.equal(closest('rcev', ['send', 'recv', 'stress']), 'recv');
  assert.equal(closest('frobnicate', ['send', 'recv', 'stress']), undefined);
  assert.equal(editDistance('ab', 'ba'), 1);
});

test('the progress line fits any width, dropping the least useful parts first', () => {
  const state = {
    done: 5 * 1024 * 1024,
    total: 20 * 1024 * 1024,
    confirmed: 3,
    items: 10,
    bytesPerSecond: 2 * 1024 * 1024,
    etaSeconds: 7.5,
    name: 'photos/2024/a-very-long-directory-name/IMG_0001.jpg',
  };
  const wide = progressLine(state, 120);
  assert.match(
    wide,
    /^\[█+░+\] 25% 5\.0 MiB\/20\.0 MiB · 2\.0 MiB\/s · ETA 8s · 3\/10 items · .*IMG_0001\.jpg$/,
  );
  for (const columns of [200, 120, 80, 60, 40, 30, 20, 10, 1]) {
    const line = progressLine(state, columns);
    assert.ok(line.length <= Math.max(columns - 1, 1), `${columns}: ${line}`);
  }
  assert.equal(progressLine(state, 60), '25% 5.0 MiB/20.0 MiB · 2.0 MiB/s · ETA 8s · 3/10 items');
  assert.equal(progressLine(state, 40), '25% 5.0 MiB/20.0 MiB · 3/10 items');
  assert.equal(progressLine(state, 30), '25% 5.0 MiB/20.0 MiB');
  assert.equal(progressLine(state, 20), '25%');
  // A stream's total is not known: no percentage and no ETA, only what went and how fast.
  const stream = progressLine({ ...state, total: undefined, etaSeconds: undefined }, 120);
  assert.match(stream, /^5\.0 MiB · 2\.0 MiB\/s · 3\/10 items/);
  assert.doesNotMatch(stream, /%|ETA|\/0 B/);
});

test('--limit-rate: the bucket holds the average to the rate; only a burst goes without waiting', () => {
  const rate = 1024 * 1024;
  const bucket = new TokenBucket(rate, rate / 10, 0);
  let now = 0;
  let sent = 0;
  for (let i = 0; i < 200; i++) {
    now += bucket.take(64 * 1024, now); // the limiter sleeps this long, then writes
    sent += 64 * 1024;
  }
  // 12.5 MiB at 1 MiB/s: about 12.4 s of waits (the first tenth of a second's worth is a burst).
  assert.ok(sent / (now / 1000) <= rate * 1.01, `${sent / (now / 1000)} B/s`);
  assert.ok(sent / (now / 1000) >= rate * 0.95, `${sent / (now / 1000)} B/s`);
  // After a pause a burst goes at once, and a write past it waits.
  now += 60_000;
  assert.equal(bucket.take(rate / 10, now), 0);
  assert.ok(bucket.take(1, now) > 0);
  // One write larger than the burst waits for its own bytes: 1 MiB at 1 MiB/s, 0.9 s.
  now += 60_000;
  assert.equal(Math.round(bucket.take(rate, now)), 900);
  assert.equal(parseRate('100K'), 100 * 1024);
  assert.equal(parseRate('2.5M/s'), 2.5 * 1024 * 1024);
  assert.throws(() => parseRate('0'), /not a positive rate/);
});

test('the bar changes no terminal mode (cursor, wrap, saved position), and TERM=dumb gets no bar', async () => {
  const written: string[] = [];
  const terminal = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        written.push(chunk.toString());
        done();
      },
    }),
    { isTTY: true, columns: 80 },
  ) as unknown as NodeJS.WriteStream;
  for (const [term, shown] of [
    ['xterm-256color', true],
    ['dumb', false],
  ] as const) {
    written.length = 0;
    const bar = createProgress(true, terminal, { TERM: term });
    bar.start(2, 1000);
    bar.sent('a', 500);
    bar.above(terminal).write('a line\n');
    bar.confirmed();
    bar.stop();
    const output = written.join('');
    assert.equal(output.includes('a line\n'), true, term);
    assert.equal(/\d+%/.test(output), shown, `${term}: ${JSON.stringify(output)}`);
    // Hide/show cursor, wrap off/on, save/restore position: none of them, ever.
    for (const mode of ['\x1b[?25l', '\x1b[?25h', '\x1b[?7l', '\x1b[?7h', '\x1b7', '\x1b8'])
      assert.ok(!output.includes(mode), `${term}: ${JSON.stringify(mode)}`);
  }
});
