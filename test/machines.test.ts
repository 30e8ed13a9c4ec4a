// The session rules of PROTOCOL.md §6, on the state machines alone (no sockets).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Frame } from '../src/protocol/codec.js';
import { ErrorCode, Kind, MAX_VERSION, RejectCode, Role } from '../src/protocol/constants.js';
import {
  type ReceiverAction,
  type ReceiverLimits,
  ReceiverMachine,
} from '../src/protocol/receiver-machine.js';
import { SenderItem } from '../src/protocol/sender-machine.js';

const id = Buffer.alloc(16, 7);
const hello = { kind: 'hello', hello: { minVersion: 1, maxVersion: 1, role: Role.Sender } } as const;
const offer = (size: number, name = 'f'): Frame => ({
  kind: Kind.Offer,
  slot: 1,
  id,
  size,
  name: Buffer.from(name),
});
const data = (offset: number, payload: string): Frame => ({
  kind: Kind.Data,
  slot: 1,
  offset,
  payload: Buffer.from(payload),
});

const limits = (maxSize: number, more: Partial<ReceiverLimits> = {}): ReceiverLimits => ({
  maxSize,
  maxNameLength: 4096,
  maxItemsPerConnection: 1000,
  ...more,
});

function receiver(maxSize = 100) {
  const machine = new ReceiverMachine(limits(maxSize));
  assert.deepEqual(machine.receive(hello), []);
  return machine;
}

/** A receiver with an item of `size` bytes accepted at `offset`. */
function accepted(size: number, offset = 0) {
  const machine = receiver();
  const [open] = machine.receive(offer(size));
  assert.equal(open?.type, 'open');
  const [send] = machine.decided(1, { type: 'accept', offset, prefixHash: 0n });
  assert.equal(send?.type === 'send' && send.frame.kind, Kind.Accept);
  return machine;
}

function failure(actions: ReceiverAction[]): { code: string; wireCode: number | undefined } {
  const fail = actions.find((a) => a.type === 'fail');
  assert.ok(fail?.type === 'fail', `expected a failure, got ${JSON.stringify(actions.map((a) => a.type))}`);
  return { code: fail.error.code, wireCode: (fail.error as { wireCode?: number }).wireCode };
}

describe('receiver machine', () => {
  test('a whole item: open, write, commit, confirm', () => {
    const machine = accepted(5);
    assert.deepEqual(machine.receive(data(0, 'hel')), [
      { type: 'write', slot: 1, offset: 0, payload: Buffer.from('hel'), truncate: false },
    ]);
    assert.equal(machine.receive(data(3, 'lo'))[0]?.type, 'write');
    assert.deepEqual(machine.receive({ kind: Kind.End, slot: 1, hash: 9n }), [
      { type: 'commit', slot: 1, hash: 9n },
    ]);
    assert.deepEqual(machine.committed(1, { type: 'confirmed', hash: 9n }), [
      { type: 'send', frame: { kind: Kind.Confirm, slot: 1, id, size: 5, hash: 9n } },
    ]);
    assert.equal(machine.receive(offer(5))[0]?.type, 'open', 'the slot is free again');
  });

  test('a frame before the hello is unexpected', () => {
    const machine = new ReceiverMachine(limits(10));
    assert.equal(failure(machine.receive(offer(1))).wireCode, ErrorCode.Unexpected);
  });

  test('a hello of another version fails without an ERROR (the peer decides the same on its own)', () => {
    const machine = new ReceiverMachine(limits(10));
    const actions = machine.receive({
      kind: 'hello',
      hello: { minVersion: MAX_VERSION + 1, maxVersion: MAX_VERSION + 2, role: Role.Sender },
    });
    assert.deepEqual(
      actions.map((a) => a.type === 'fail' && [a.error.code, a.notify]),
      [['ACK_ERR_HANDSHAKE', false]],
    );
  });

  test('bad names and oversize offers are rejected before any data, and the session goes on', () => {
    const machine = receiver(10);
    const bad = machine.receive(offer(1, '../x'));
    assert.deepEqual(
      bad.map((a) => a.type),
      ['send', 'rejected'],
    );
    assert.equal(
      bad[0]?.type === 'send' && bad[0].frame.kind === Kind.Reject && bad[0].frame.code,
      RejectCode.BadName,
    );
    const big = machine.receive(offer(11));
    assert.equal(
      big[0]?.type === 'send' && big[0].frame.kind === Kind.Reject && big[0].frame.code,
      RejectCode.TooLarge,
    );
    assert.equal(machine.receive(offer(10))[0]?.type, 'open');
  });

  test('resume: the first DATA starts at the accepted offset, or at 0 to start over', () => {
    const resumed = accepted(10, 4);
    assert.deepEqual(resumed.receive(data(4, 'abc'))[0], {
      type: 'write',
      slot: 1,
      offset: 4,
      payload: Buffer.from('abc'),
      truncate: false,
    });
    const restarted = accepted(10, 4);
    const [write] = restarted.receive(data(0, 'x'));
    assert.equal(write?.type === 'write' && write.truncate, true, 'starting over truncates the partial');
  });

  for (const [why, frames] of [
    ['DATA before ACCEPT', [offer(5), data(0, 'a')]],
    ['DATA at a gap', ['accept', data(0, 'a'), data(2, 'b')]],
    ['DATA at an offset not accepted', ['accept', data(1, 'a')]],
    ['DATA past the declared size', ['accept', data(0, 'abcdef')]],
    ['END before all data', ['accept', data(0, 'ab'), { kind: Kind.End, slot: 1, hash: 0n }]],
    ['a second OFFER on a busy slot', ['accept', offer(5)]],
    ['a frame only a receiver sends', ['accept', { kind: Kind.Confirm, slot: 1, id, size: 5, hash: 0n }]],
  ] as Array<[string, Array<Frame | 'accept'>]>) {
    test(`violation: ${why} ends the session with an ERROR`, () => {
      let machine = receiver();
      let last: ReceiverAction[] = [];
      for (const frame of frames) {
        if (frame === 'accept') machine = accepted(5);
        else last = machine.receive(frame);
      }
      const fail = last.find((a) => a.type === 'fail');
      assert.ok(fail?.type === 'fail' && fail.notify);
      assert.deepEqual(machine.receive(data(0, 'a')), [], 'a failed machine stays silent');
    });
  }

  test('a failed write refuses the item and ends the session', () => {
    const machine = accepted(5);
    machine.receive(data(0, 'ab'));
    const actions = machine.writeFailed(1, RejectCode.NoSpace, 'disk full');
    assert.deepEqual(
      actions.map((a) => a.type),
      ['send', 'rejected', 'fail'],
    );
  });

  test('an item refused alone while its data comes: REJECT, its later DATA and END dropped, the slot offered anew', () => {
    const machine = accepted(5);
    machine.receive(data(0, 'ab'));
    const refused = machine.refuse(1, RejectCode.Exists, 'f exists with other bytes');
    assert.deepEqual(
      refused.map((a) => a.type),
      ['send', 'rejected'],
    );
    assert.ok(refused[0]?.type === 'send' && refused[0].frame.kind === Kind.Reject);
    // What the sender had in flight before it heard the REJECT.
    assert.deepEqual(machine.receive(data(2, 'cde')), []);
    assert.deepEqual(machine.receive({ kind: Kind.End, slot: 1, hash: 0n }), []);
    assert.equal(machine.openItems, 0);
    // The slot is free again, and after its END a stray DATA is the violation it always was.
    assert.equal(failure(machine.receive(data(0, 'x'))).code, 'ACK_ERR_PROTOCOL');
  });

  test('a slot refused alone is taken by its next OFFER, whose DATA is received', () => {
    const machine = accepted(5);
    machine.refuse(1, RejectCode.Exists, 'f exists with other bytes');
    const [open] = machine.receive({ ...offer(3, 'g'), id: Buffer.alloc(16, 8) } as Frame);
    assert.equal(open?.type, 'open');
    machine.decided(1, { type: 'accept', offset: 0, prefixHash: 0n });
    assert.deepEqual(
      machine.receive(data(0, 'abc')).map((a) => a.type),
      ['write'],
    );
  });
});

describe('sender item', () => {
  const header = { id, size: 5, name: 'f' };

  function sent() {
    const item = new SenderItem(1, header);
    item.offer();
    assert.deepEqual(item.receive({ kind: Kind.Accept, slot: 1, offset: 0, prefixHash: 0n }), {
      type: 'accepted',
      offset: 0,
      prefixHash: 0n,
    });
    item.end(42n);
    return item;
  }

  test('counts an item only on a CONFIRM that echoes id, size and the hash sent', () => {
    assert.deepEqual(sent().receive({ kind: Kind.Confirm, slot: 1, id, size: 5, hash: 42n }), {
      type: 'confirmed',
      hash: 42n,
    });
    assert.throws(
      () => sent().receive({ kind: Kind.Confirm, slot: 1, id, size: 5, hash: 43n }),
      /another hash/,
    );
    assert.throws(
      () => sent().receive({ kind: Kind.Confirm, slot: 1, id, size: 4, hash: 42n }),
      /does not match/,
    );
    assert.throws(
      () => sent().receive({ kind: Kind.Confirm, slot: 1, id: Buffer.alloc(16), size: 5, hash: 42n }),
      /does not match/,
    );
    assert.throws(() => sent().receive({ kind: Kind.Confirm, slot: 2, id, size: 5, hash: 42n }), /slot 2/);
  });

  test('a CONFIRM straight after OFFER is "confirmed earlier", for the driver to check', () => {
    const item = new SenderItem(1, header);
    assert.deepEqual(item.receive({ kind: Kind.Confirm, slot: 1, id, size: 5, hash: 7n }), {
      type: 'confirmed-earlier',
      hash: 7n,
    });
  });

  test('an ACCEPT beyond the item, or an ERROR, is an error', () => {
    assert.throws(
      () => new SenderItem(1, header).receive({ kind: Kind.Accept, slot: 1, offset: 6, prefixHash: 0n }),
      /holds 6 bytes/,
    );
    assert.throws(
      () =>
        new SenderItem(1, header).receive({ kind: Kind.Error, code: ErrorCode.ShuttingDown, message: 'bye' }),
      (err: unknown) => (err as { retryable?: boolean }).retryable === true,
    );
  });
});

describe('stream items (v3)', async () => {
  const { loadHasher, xxh64 } = await import('../src/hash.js');
  await loadHasher();
  const v3 = { kind: 'hello', hello: { minVersion: 1, maxVersion: 3, role: Role.Sender } } as const;
  const streamOffer: Frame = { kind: Kind.Offer, slot: 1, id, size: 0, stream: true, name: Buffer.from('s') };
  const chunk = (offset: number, text: string, hash = xxh64(Buffer.from(text))): Frame => ({
    kind: Kind.Chunk,
    slot: 1,
    offset,
    hash,
    payload: Buffer.from(text),
  });

  /** A v3 receiver with a stream accepted at `offset`, under a size limit. */
  function streaming(offset = 0, maxSize = 100) {
    const machine = new ReceiverMachine(limits(maxSize));
    machine.receive(v3);
    assert.equal(machine.receive(streamOffer)[0]?.type, 'open');
    machine.decided(1, { type: 'accept', offset, prefixHash: 0n });
    return machine;
  }

  test('chunks are written in order, acknowledged as durable, and the TRAILER commits with its length', () => {
    const machine = streaming();
    assert.deepEqual(machine.receive(chunk(0, 'hello')), [
      { type: 'write', slot: 1, offset: 0, payload: Buffer.from('hello'), truncate: false },
    ]);
    assert.deepEqual(machine.durable(1, 5), [
      { type: 'send', frame: { kind: Kind.Ack, slot: 1, offset: 5 } },
    ]);
    assert.equal(machine.durable(1, 5).length, 1, 'the same offset again is a keepalive');
    assert.deepEqual(machine.durable(1, 4), [], 'an ACK never goes back');
    assert.equal(machine.receive(chunk(5, ' world'))[0]?.type, 'write');
    assert.deepEqual(machine.receive({ kind: Kind.Trailer, slot: 1, size: 11, hash: 7n }), [
      { type: 'commit', slot: 1, hash: 7n },
    ]);
    assert.deepEqual(machine.committed(1, { type: 'confirmed', hash: 7n }), [
      { type: 'send', frame: { kind: Kind.Confirm, slot: 1, id, size: 11, hash: 7n } },
    ]);
  });

  test('a chunk that fails its own checksum is refused (retryable) before any write, and the session ends', () => {
    const actions = streaming().receive(chunk(0, 'hello', 1n));
    assert.deepEqual(
      actions.map((a) => a.type),
      ['send', 'rejected', 'fail'],
    );
    const [reject, rejected] = actions;
    assert.ok(reject?.type === 'send' && reject.frame.kind === Kind.Reject);
    assert.equal(reject.frame.code, RejectCode.Checksum);
    assert.ok(rejected?.type === 'rejected' && !rejected.final);
  });

  test('a stream that grows past the size limit is refused for good', () => {
    const machine = streaming(0, 8);
    machine.receive(chunk(0, 'hello'));
    const actions = machine.receive(chunk(5, ' world'));
    const rejected = actions.find((a) => a.type === 'rejected');
    assert.ok(rejected?.type === 'rejected' && rejected.final);
    assert.equal(failure(actions).code, 'ACK_ERR_REJECTED');
  });

  test('a stream never starts over, and files and streams do not mix their frames', () => {
    assert.equal(failure(streaming(5).receive(chunk(0, 'hello'))).wireCode, ErrorCode.Malformed);
    // §6: a frame of the other kind of item is well formed but out of place: "unexpected".
    assert.equal(failure(streaming().receive(data(0, 'x'))).wireCode, ErrorCode.Unexpected);
    assert.equal(
      failure(streaming().receive({ kind: Kind.End, slot: 1, hash: 0n })).wireCode,
      ErrorCode.Unexpected,
    );
    assert.equal(failure(streaming().receive(chunk(0, ''))).wireCode, ErrorCode.Malformed);
    const file = accepted(5);
    assert.equal(failure(file.receive(chunk(0, 'hello'))).wireCode, ErrorCode.Unexpected);
  });

  test('a TRAILER that declares another length than was received breaks the session', () => {
    const machine = streaming();
    machine.receive(chunk(0, 'hello'));
    assert.equal(
      failure(machine.receive({ kind: Kind.Trailer, slot: 1, size: 6, hash: 0n })).wireCode,
      ErrorCode.Malformed,
    );
  });

  test('one transfer id offered twice on one connection is unexpected while open, and free once settled', () => {
    const machine = receiver();
    assert.equal(machine.receive(offer(5))[0]?.type, 'open');
    const again = { ...(offer(5, 'other') as Extract<Frame, { kind: 1 }>), slot: 2 };
    assert.equal(failure(machine.receive(again)).wireCode, ErrorCode.Unexpected);
    // Accepted, and then its data whole and committing: still open under its id.
    const receiving = accepted(5);
    assert.equal(failure(receiving.receive(again)).wireCode, ErrorCode.Unexpected);
    const committing = accepted(5);
    committing.receive(data(0, 'hello'));
    committing.receive({ kind: Kind.End, slot: 1, hash: 9n });
    assert.equal(failure(committing.receive(again)).wireCode, ErrorCode.Unexpected);
    // Confirmed: the id may come again (a re-run on the same connection) in another slot.
    const settled = accepted(5);
    settled.receive(data(0, 'hello'));
    settled.receive({ kind: Kind.End, slot: 1, hash: 9n });
    settled.committed(1, { type: 'confirmed', hash: 9n });
    assert.equal(settled.receive(again)[0]?.type, 'open');
  });

  test('an mtime no filesystem call can set, or a name component over 255 bytes, is refused at OFFER for good', () => {
    for (const frame of [
      { ...(offer(5) as Extract<Frame, { kind: 1 }>), mtimeMs: 8.64e15 + 1 },
      { ...(offer(5) as Extract<Frame, { kind: 1 }>), mtimeMs: -(2 ** 62) },
      offer(5, `d/${'x'.repeat(256)}`),
    ]) {
      const [send, rejected] = receiver().receive(frame);
      assert.ok(
        send?.type === 'send' && send.frame.kind === Kind.Reject && send.frame.code === RejectCode.BadName,
      );
      assert.ok(rejected?.type === 'rejected' && rejected.final);
    }
  });

  test('a v2 session may not offer a stream', () => {
    const machine = receiver();
    assert.equal(failure(machine.receive(streamOffer)).wireCode, ErrorCode.Unexpected);
  });

  test('the sender takes ACKs that move forward only, and counts a stream by its TRAILER', () => {
    const item = new SenderItem(1, { id, size: undefined, name: 's', stream: true });
    assert.equal(item.offer().stream, true);
    item.receive({ kind: Kind.Accept, slot: 1, offset: 0, prefixHash: 0n });
    assert.deepEqual(item.receive({ kind: Kind.Ack, slot: 1, offset: 4 }), { type: 'acked', offset: 4 });
    assert.throws(
      () => item.receive({ kind: Kind.Ack, slot: 1, offset: 3 }),
      /acknowledged offset 3 after 4/,
    );
    const fresh = new SenderItem(1, { id, size: undefined, name: 's', stream: true });
    fresh.receive({ kind: Kind.Accept, slot: 1, offset: 0, prefixHash: 0n });
    fresh.trailer(11, 7n);
    assert.throws(
      () => fresh.receive({ kind: Kind.Confirm, slot: 1, id, size: 10, hash: 7n }),
      /does not match the item offered/,
    );
  });
});

describe('queries and messages (v4)', () => {
  const hello = (maxVersion: number) =>
    ({ kind: 'hello', hello: { minVersion: 1, maxVersion, role: Role.Sender } }) as const;
  const query: Frame = { kind: Kind.Offer, slot: 2, id, size: 5, query: true, name: Buffer.from('q.txt') };

  test("a query's answer settles its slot at once, and a refusal of it is not reported as an item", () => {
    const machine = new ReceiverMachine(limits(3));
    machine.receive(hello(4));
    assert.deepEqual(
      machine.receive(query).map((a) => a.type),
      ['send'],
      'over the size limit: a REJECT, and no "rejected" item',
    );
    const small: Frame = { ...query, size: 2 };
    assert.equal(machine.receive(small)[0]?.type, 'open');
    assert.deepEqual(machine.decided(2, { type: 'accept', offset: 0, prefixHash: 0n }), [
      { type: 'send', frame: { kind: Kind.Accept, slot: 2, offset: 0, prefixHash: 0n } },
    ]);
    assert.equal(machine.openItems, 0, 'nothing stays open');
    assert.equal(
      machine.receive({ kind: Kind.Data, slot: 2, offset: 0, payload: Buffer.from('hi') })[0]?.type,
      'fail',
    );
  });

  test('a query or a MESSAGE from a peer below version 4 is unexpected', () => {
    for (const frame of [
      query,
      { kind: Kind.Message, slot: 0, size: 0, key: 'k', name: '', meta: [] } as Frame,
    ]) {
      const machine = new ReceiverMachine(limits(100));
      machine.receive(hello(3));
      const [action] = machine.receive(frame);
      assert.equal(action?.type, 'fail');
      assert.equal(
        (action as unknown as { error: { wireCode: number } }).error.wireCode,
        ErrorCode.Unexpected,
      );
    }
  });
});

describe('WORKING (v5)', () => {
  const helloOf = (maxVersion: number) =>
    ({ kind: 'hello', hello: { minVersion: 1, maxVersion, role: Role.Sender } }) as const;
  const message = (slot: number): Frame => ({
    kind: Kind.Message,
    slot,
    size: 1,
    key: `k${slot}`,
    name: '',
    meta: [],
  });

  test('names every item whose data is whole and is still being committed, to v5 senders only', () => {
    const machine = new ReceiverMachine(limits(100));
    machine.receive(helloOf(5));
    for (const slot of [1, 2, 3]) machine.receive(message(slot));
    assert.deepEqual(machine.working(), [], 'nothing is whole yet');
    for (const slot of [1, 2]) {
      machine.receive({ kind: Kind.Data, slot, offset: 0, payload: Buffer.from('x') });
      machine.receive({ kind: Kind.End, slot, hash: 0n });
    }
    const slots = (actions: ReceiverAction[]) =>
      actions.map((a) => (a.type === 'send' && a.frame.kind === Kind.Working ? a.frame.slot : -1));
    assert.deepEqual(slots(machine.working()), [1, 2]);
    machine.committed(1, { type: 'confirmed', hash: 0n });
    assert.deepEqual(slots(machine.working()), [2], 'a settled item is not named again');

    const older = new ReceiverMachine(limits(100));
    older.receive(helloOf(4));
    older.receive(message(1));
    older.receive({ kind: Kind.Data, slot: 1, offset: 0, payload: Buffer.from('x') });
    older.receive({ kind: Kind.End, slot: 1, hash: 0n });
    assert.deepEqual(older.working(), [], 'a v4 sender does not know the frame');
  });
});

describe('open items per connection (§6)', () => {
  for (const [version, window] of [
    [2, 64],
    [4, 64],
    [5, 256],
    [6, 256],
    [7, 1024],
  ] as const) {
    test(`version ${version}: ${window} items open at once, and one more is unexpected`, () => {
      const machine = new ReceiverMachine(limits(100, { maxItemsPerConnection: 2 * window }));
      machine.receive({ kind: 'hello', hello: { minVersion: 1, maxVersion: version, role: Role.Sender } });
      for (let slot = 0; slot < window; slot++) {
        const [open] = machine.receive({
          ...offer(1),
          slot,
          id: Buffer.alloc(16, 0)
            .fill(slot % 256, 0, 1)
            .fill(slot >> 8, 1, 2),
        } as Frame);
        assert.equal(open?.type, 'open', `item ${slot}`);
      }
      const over = { ...offer(1), slot: window, id: Buffer.alloc(16, 0xff) } as Frame;
      assert.deepEqual(failure(machine.receive(over)), {
        code: 'ACK_ERR_PROTOCOL',
        wireCode: ErrorCode.Unexpected,
      });
    });
  }
});

describe('eager files (v6)', () => {
  const helloOf = (maxVersion: number) =>
    ({ kind: 'hello', hello: { minVersion: 1, maxVersion, role: Role.Sender } }) as const;
  const eager = (size: number, name = 'e.txt'): Frame => ({
    kind: Kind.Offer,
    slot: 3,
    id,
    size,
    eager: true,
    name: Buffer.from(name),
  });
  const dataOf = (payload: string, offset = 0): Frame => ({
    kind: Kind.Data,
    slot: 3,
    offset,
    payload: Buffer.from(payload),
  });
  const end: Frame = { kind: Kind.End, slot: 3, hash: 9n };
  const v6 = () => {
    const machine = new ReceiverMachine(limits(100));
    machine.receive(helloOf(6));
    return machine;
  };
  const types = (actions: ReceiverAction[]) =>
    actions.map((a) => (a.type === 'send' ? `send ${a.frame.kind}` : a.type));

  test('16 MiB of eager items open at once (§6.3): past that an eager OFFER is unexpected, until one is answered', () => {
    const KiB64 = 64 * 1024;
    const at = (slot: number, size: number, eagerBit = true): Frame => ({
      kind: Kind.Offer,
      slot,
      id: Buffer.alloc(16, 0)
        .fill(slot >> 8, 0, 1)
        .fill(slot & 255, 1, 2),
      size,
      eager: eagerBit,
      name: Buffer.from(`e${slot}`),
    });
    const full = () => {
      const machine = new ReceiverMachine(limits(1 << 20));
      machine.receive(helloOf(7));
      for (let slot = 0; slot < 256; slot++)
        assert.deepEqual(types(machine.receive(at(slot, KiB64))), ['open'], `eager item ${slot}`);
      return machine;
    };
    const over = full();
    assert.deepEqual(failure(over.receive(at(256, 1))), {
      code: 'ACK_ERR_PROTOCOL',
      wireCode: ErrorCode.Unexpected,
    });
    assert.deepEqual(types(full().receive(at(256, 1, false))), ['open'], 'an OFFER that asks is not counted');

    const answered = full();
    answered.decided(0, { type: 'reject', code: RejectCode.Exists, reason: 'there' });
    answered.receive({ kind: Kind.Data, slot: 0, offset: 0, payload: Buffer.alloc(KiB64) });
    assert.deepEqual(types(answered.receive({ kind: Kind.End, slot: 0, hash: 9n })), [
      `send ${Kind.Reject}`,
      'rejected',
    ]);
    assert.deepEqual(types(answered.receive(at(256, KiB64))), ['open'], 'the answered item made room');
    assert.deepEqual(failure(answered.receive(at(257, 1))), {
      code: 'ACK_ERR_PROTOCOL',
      wireCode: ErrorCode.Unexpected,
    });
  });

  test('answered once both the decision and the END are in, whichever comes last, with no ACCEPT', () => {
    const early = v6();
    assert.deepEqual(types(early.receive(eager(2))), ['open']);
    assert.deepEqual(early.decided(3, { type: 'accept', offset: 0, prefixHash: 0n }), [], 'no ACCEPT');
    assert.deepEqual(early.receive(dataOf('hi')), []);
    assert.deepEqual(early.receive(end), [
      { type: 'commit', slot: 3, hash: 9n, write: { payload: Buffer.from('hi'), truncate: false } },
    ]);
    assert.deepEqual(early.committed(3, { type: 'confirmed', hash: 9n }), [
      { type: 'send', frame: { kind: Kind.Confirm, slot: 3, id, size: 2, hash: 9n } },
    ]);

    const late = v6();
    late.receive(eager(2));
    assert.deepEqual([...late.receive(dataOf('hi')), ...late.receive(end)], []);
    assert.deepEqual(late.decided(3, { type: 'accept', offset: 1, prefixHash: 5n }), [
      { type: 'commit', slot: 3, hash: 9n, write: { payload: Buffer.from('hi'), truncate: true } },
    ]);
  });

  test('every byte held already: nothing written, and an ACCEPT at the size ahead of the commit', () => {
    const machine = v6();
    machine.receive(eager(2));
    machine.receive(dataOf('hi'));
    machine.receive(end);
    assert.deepEqual(machine.decided(3, { type: 'accept', offset: 2, prefixHash: 9n }), [
      { type: 'send', frame: { kind: Kind.Accept, slot: 3, offset: 2, prefixHash: 9n } },
      { type: 'commit', slot: 3, hash: 9n },
    ]);
    const empty = v6();
    empty.receive(eager(0));
    empty.receive(end);
    assert.deepEqual(empty.decided(3, { type: 'accept', offset: 0, prefixHash: 9n }), [
      { type: 'commit', slot: 3, hash: 9n },
    ]);
  });

  test('a refusal, at the OFFER or by the store, and a confirmation of an earlier run wait for the END', () => {
    const tooLarge = new ReceiverMachine(limits(1));
    tooLarge.receive(helloOf(6));
    assert.deepEqual(tooLarge.receive(eager(2)), [], 'no open, no answer yet');
    assert.deepEqual(tooLarge.receive(dataOf('hi')), [], 'its DATA is dropped');
    assert.deepEqual(types(tooLarge.receive(end)), [`send ${Kind.Reject}`, 'rejected']);
    assert.equal(tooLarge.openItems, 0);

    const exists = v6();
    exists.receive(eager(2));
    exists.receive(dataOf('hi'));
    assert.deepEqual(exists.decided(3, { type: 'reject', code: RejectCode.Exists, reason: 'there' }), []);
    assert.deepEqual(types(exists.receive(end)), [`send ${Kind.Reject}`, 'rejected']);

    const earlier = v6();
    earlier.receive(eager(2));
    earlier.decided(3, { type: 'confirmed', size: 2, hash: 9n });
    earlier.receive(dataOf('hi'));
    assert.deepEqual(earlier.receive(end), [
      { type: 'send', frame: { kind: Kind.Confirm, slot: 3, id, size: 2, hash: 9n } },
    ]);
  });

  test('one DATA of the whole size at 0, then END: anything else breaks the session', () => {
    const cases: Array<[string, Frame[]]> = [
      ['a DATA at another offset', [dataOf('hi', 1)]],
      ['a short DATA', [dataOf('h')]],
      ['a second DATA', [dataOf('hi'), dataOf('hi')]],
      ['an END before the DATA', [end]],
      ['a DATA after the END', [dataOf('hi'), end, dataOf('hi')]],
    ];
    for (const [what, frames] of cases) {
      const machine = v6();
      machine.receive(eager(2));
      const actions = frames.flatMap((frame) => machine.receive(frame));
      assert.equal(failure(actions).wireCode, ErrorCode.Malformed, what);
    }
    // An empty file has no DATA at all, not an empty one.
    const empty = v6();
    empty.receive(eager(0));
    assert.equal(
      failure(empty.receive(dataOf(''))).wireCode,
      ErrorCode.Malformed,
      'a DATA for an empty file',
    );
  });

  test('an eager OFFER from a peer below version 6 is unexpected', () => {
    const machine = new ReceiverMachine(limits(100));
    machine.receive(helloOf(5));
    assert.equal(failure(machine.receive(eager(2))).wireCode, ErrorCode.Unexpected);
  });

  test('the sender: OFFER, DATA and END at once; then CONFIRM, or the ACCEPT of a held item and CONFIRM', () => {
    const header = { id, size: 2, name: 'e.txt' };
    const item = new SenderItem(3, header);
    const frames = item.eager(Buffer.from('hi'), 9n);
    assert.deepEqual(
      frames.map((f) => f.kind),
      [Kind.Offer, Kind.Data, Kind.End],
    );
    assert.equal((frames[0] as { eager?: boolean }).eager, true);
    assert.deepEqual(item.receive({ kind: Kind.Confirm, slot: 3, id, size: 2, hash: 9n }), {
      type: 'confirmed',
      hash: 9n,
    });

    const held = new SenderItem(3, header);
    held.eager(Buffer.from('hi'), 9n);
    assert.deepEqual(held.receive({ kind: Kind.Accept, slot: 3, offset: 2, prefixHash: 9n }), {
      type: 'held',
    });
    assert.throws(
      () => held.receive({ kind: Kind.Accept, slot: 3, offset: 2, prefixHash: 9n }),
      /unexpected/,
    );
    assert.equal(held.receive({ kind: Kind.Confirm, slot: 3, id, size: 2, hash: 9n }).type, 'confirmed');

    for (const accept of [
      { offset: 0, prefixHash: 0n },
      { offset: 2, prefixHash: 8n },
    ]) {
      const other = new SenderItem(3, header);
      other.eager(Buffer.from('hi'), 9n);
      assert.throws(() => other.receive({ kind: Kind.Accept, slot: 3, ...accept }), /unexpected/);
    }
    assert.throws(() => new SenderItem(3, { ...header, directory: true }).eager(Buffer.alloc(2), 0n));
    assert.throws(() => new SenderItem(3, header).eager(Buffer.from('h'), 0n), /all of its bytes/);
  });
});
