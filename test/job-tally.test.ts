// A run's verdict, tallied as its items finish: the exit code a script sees depends on it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError, InterruptedError, PartialError, RejectedError, TransientError } from '../src/errors.js';
import { JobTally } from '../src/send/job-tally.js';
import type { Delivery } from '../src/send/sender.js';
import type { Source } from '../src/send/sources.js';

const source = (name: string): Source => ({ label: name, path: name, name, size: 3 });
const delivery: Delivery = {
  size: 3,
  hash: 1n,
  attempts: 1,
  bytesSent: 3,
  resumedFrom: 0,
  alreadyThere: false,
};

test('every item confirmed: no error, and the bytes of all of them', () => {
  const tally = new JobTally();
  for (const name of ['a', 'b'])
    tally.add({ status: 'confirmed', source: source(name), delivery, seconds: 0 });
  assert.equal(tally.error(2), undefined);
  assert.deepEqual([tally.confirmed, tally.failed, tally.notStarted, tally.bytes], [2, 0, 0, 6]);
});

test('none confirmed: the first failure is the run error, as it came', () => {
  const tally = new JobTally();
  const first = new RejectedError('refused a', 0);
  tally.add({ status: 'failed', source: source('a'), error: first, seconds: 0 });
  tally.add({ status: 'failed', source: source('b'), error: new InputError('cannot read b'), seconds: 0 });
  tally.add({ status: 'not-started', source: source('c'), seconds: 0 });
  assert.equal(tally.error(3), first);
  assert.deepEqual([tally.failed, tally.notStarted], [2, 1]);
});

test('an interruption is the run error however many items got through', () => {
  const tally = new JobTally();
  const interrupted = new InterruptedError('SIGINT');
  tally.add({ status: 'confirmed', source: source('a'), delivery, seconds: 0 });
  tally.add({ status: 'failed', source: source('b'), error: new TransientError('reset'), seconds: 0 });
  tally.add({ status: 'failed', source: source('c'), error: interrupted, seconds: 0 });
  assert.equal(tally.error(3), interrupted);
});

test('some confirmed, some not: partial', () => {
  const tally = new JobTally();
  tally.add({ status: 'confirmed', source: source('a'), delivery, seconds: 0 });
  tally.add({ status: 'failed', source: source('b'), error: new RejectedError('exists', 0), seconds: 0 });
  const error = tally.error(2);
  assert.ok(error instanceof PartialError);
  assert.match(error.message, /1 of 2 items confirmed/);
});

test('a dry run with every answer fails only for items that would be refused', () => {
  const tally = new JobTally();
  tally.add({ status: 'checked', source: source('a'), verdict: { type: 'would-send' }, seconds: 0 });
  tally.add({ status: 'checked', source: source('b'), verdict: { type: 'already-there' }, seconds: 0 });
  assert.equal(tally.error(2), undefined);
  tally.add({
    status: 'checked',
    source: source('c'),
    verdict: { type: 'would-refuse', reason: 'x' },
    seconds: 0,
  });
  assert.ok(tally.error(3) instanceof RejectedError);
  assert.deepEqual(tally.verdicts, { wouldSend: 1, alreadyThere: 1, differs: 0, wouldRefuse: 1 });
});
