// The sending end of a connection as a state machine (PROTOCOL.md §2, §6): handshake, proof,
// routing and both deadlines, with time as an input. The peer is the real receiver machine, and
// every frame between them goes through the codec and the parser, as on a socket.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuthError, HandshakeError, PeerError, ProtocolError, TransientError } from '../src/errors.js';
import { encodeFrame, encodeHello, type Frame } from '../src/protocol/codec.js';
import { ErrorCode, Kind, MAX_VERSION, maxOpenItems, Role } from '../src/protocol/constants.js';
import { FrameParser, type Incoming } from '../src/protocol/frame-parser.js';
import { ourHello } from '../src/protocol/handshake.js';
import { type ReceiverAction, ReceiverMachine } from '../src/protocol/receiver-machine.js';
import {
  NoHelloError,
  SenderConnection,
  type SenderConnectionAction,
  type SenderConnectionOptions,
} from '../src/protocol/sender-connection.js';

const session = Buffer.alloc(16, 3);
const id = Buffer.alloc(16, 9);
const options = (more: Partial<SenderConnectionOptions> = {}): SenderConnectionOptions => ({
  peer: 'r.example:9000',
  session,
  tls: false,
  connectTimeoutMs: 2_000,
  idleTimeoutMs: 30_000,
  ...more,
});
const limits = { maxSize: 1 << 20, maxNameLength: 4096, maxItemsPerConnection: 1000 };

/** What the other end's parser makes of bytes one end wrote. */
function across(bytes: Buffer[]): Incoming[] {
  return new FrameParser().push(Buffer.concat(bytes));
}
/** A frame as the parser hands it over on a connection whose hello came first. */
const frameAcross = (frame: Frame): Incoming => {
  const parser = new FrameParser();
  parser.push(encodeHello(ourHello(Role.Receiver)));
  const [message] = parser.push(Buffer.concat(encodeFrame(frame)));
  return message as Incoming;
};

function sent(actions: Array<SenderConnectionAction | ReceiverAction>): Frame[] {
  return actions.flatMap((a) => (a.type === 'send' ? [a.frame] : []));
}

function failure(actions: SenderConnectionAction[]): Error {
  assert.equal(actions.length, 1, `expected one failure, got ${actions.map((a) => a.type)}`);
  const [action] = actions;
  assert.ok(action?.type === 'fail');
  return action.error;
}

/**
 * Runs the handshake between the two machines at time `now`, relaying each side's frames to the
 * other until neither has more, and returns both with everything the sender did.
 */
function handshake(sender: SenderConnection, receiver: ReceiverMachine, now = 0) {
  const senderActions: SenderConnectionAction[] = [];
  let toReceiver: Incoming[] = across([encodeHello(sender.hello())]);
  let toSender: Incoming[] = across([encodeHello(receiver.hello())]);
  while (toReceiver.length > 0 || toSender.length > 0) {
    const receiverOut = toReceiver.flatMap((m) => receiver.receive(m));
    const senderOut = toSender.flatMap((m) => sender.receive(m, now));
    senderActions.push(...senderOut);
    toSender = sent(receiverOut).map(frameAcross);
    toReceiver = sent(senderOut).map(frameAcross);
  }
  return senderActions;
}

function opened(more: Partial<SenderConnectionOptions> = {}, receiverSecret?: Buffer) {
  const sender = new SenderConnection(options(more), 0);
  const receiver = new ReceiverMachine(limits, receiverSecret);
  const actions = handshake(sender, receiver);
  assert.deepEqual(actions.at(-1), { type: 'open', version: MAX_VERSION, window: maxOpenItems(MAX_VERSION) });
  return { sender, receiver, actions };
}

/** The receiver's CONFIRM for an item it holds already, offered in `slot`. */
function confirmFrom(receiver: ReceiverMachine, slot: number): Incoming {
  const offer: Frame = { kind: Kind.Offer, slot, id, size: 5, name: Buffer.from('f') };
  const [open] = receiver.receive(frameAcross(offer));
  assert.equal(open?.type, 'open');
  const [frame] = sent(receiver.decided(slot, { type: 'confirmed', size: 5, hash: 7n }));
  return frameAcross(frame as Frame);
}

describe('sender connection machine', () => {
  test('greets, negotiates the highest version, announces the run, then opens its window', () => {
    const { sender, actions } = opened();
    assert.deepEqual(sent(actions), [{ kind: Kind.Session, id: session }]);
    assert.equal(sender.version, MAX_VERSION);
    const slots = Array.from({ length: sender.window }, () => sender.openSlot());
    assert.deepEqual(slots, [...Array(maxOpenItems(MAX_VERSION)).keys()]);
    assert.equal(sender.openSlot(), undefined, 'the window is full');
    sender.releaseSlot(5);
    assert.equal(sender.openSlot(), 5);
  });

  test('eager items (§6.3): 16 MiB of declared sizes open at once, counted until their slots are released', () => {
    const { sender } = opened();
    const slots = Array.from({ length: 257 }, () => sender.openSlot() as number);
    for (const slot of slots.slice(0, 256)) assert.equal(sender.reserveEager(slot, 64 * 1024), true);
    const last = slots[256] as number;
    assert.equal(sender.reserveEager(last, 1), false, 'one byte past the bound');
    assert.equal(sender.reserveEager(last, 0), true, 'an empty file holds nothing');
    assert.equal(sender.reserveEager(last, 0), false, 'a slot is reserved once');
    sender.releaseSlot(slots[0] as number);
    const next = sender.openSlot() as number;
    assert.equal(sender.reserveEager(next, 64 * 1024), true, 'the released item made room');
    assert.equal(sender.reserveEager(maxOpenItems(MAX_VERSION) + 1, 0), false, 'no such slot open');
  });

  test('no slot is handed out before the handshake is over', () => {
    const sender = new SenderConnection(options(), 0);
    assert.equal(sender.openSlot(), undefined);
  });

  test('with a shared secret: both proofs, then confirmations count only with their tag', () => {
    const secret = Buffer.from('s3cret');
    const { sender, receiver, actions } = opened({ secret }, secret);
    assert.deepEqual(
      sent(actions).map((f) => f.kind),
      [Kind.Challenge, Kind.Proof, Kind.Session],
    );
    const slot = sender.openSlot() as number;
    const confirm = confirmFrom(receiver, slot);
    assert.deepEqual(sender.receive(confirm, 1), [{ type: 'deliver', slot, frame: confirm }]);

    const again = opened({ secret }, secret);
    const other = again.sender.openSlot() as number;
    const untagged = { ...(confirmFrom(again.receiver, other) as Frame), tag: undefined } as Incoming;
    // Not counted, and retried: a real receiver confirms the same item again (exactly once).
    const error = failure(again.sender.receive(untagged, 1));
    assert.ok(error instanceof TransientError);
    assert.match(error.message, /failed authentication .* not counted as delivered/);
  });

  test('a receiver with another secret fails the proof', () => {
    const sender = new SenderConnection(options({ secret: Buffer.from('ours') }), 0);
    const actions = handshake(sender, new ReceiverMachine(limits, Buffer.from('theirs')));
    const error = failure(actions.filter((a) => a.type === 'fail'));
    assert.ok(error instanceof AuthError, String(error));
    assert.ok(sender.failed);
  });

  test('a tag in a session without a secret is not a confirmation', () => {
    const { sender, receiver } = opened();
    const slot = sender.openSlot() as number;
    const tagged = { ...(confirmFrom(receiver, slot) as Frame), tag: Buffer.alloc(32) } as Incoming;
    assert.match(failure(sender.receive(tagged, 1)).message, /carries a tag/);
  });

  test('frames are delivered to open slots only', () => {
    const { sender, receiver } = opened();
    const confirm = confirmFrom(receiver, 4);
    const error = failure(sender.receive(confirm, 1));
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.message, `receiver sent frame kind ${Kind.Confirm} for no open item`);
  });

  test('a released slot is closed to the receiver', () => {
    const { sender, receiver } = opened();
    const slot = sender.openSlot() as number;
    sender.releaseSlot(slot);
    assert.ok(failure(sender.receive(confirmFrom(receiver, slot), 1)) instanceof ProtocolError);
  });

  test('WORKING (v5) for an open item is traffic, not a frame for the item; before v5 it breaks the session', () => {
    const { sender } = opened();
    const slot = sender.openSlot() as number;
    sender.activity(0);
    assert.deepEqual(sender.receive(frameAcross({ kind: Kind.Working, slot }), 25_000), []);
    assert.equal(sender.nextDeadline(), 55_000, 'the silence deadline moved');
    assert.ok(
      failure(sender.receive(frameAcross({ kind: Kind.Working, slot: slot + 1 }), 1)) instanceof
        ProtocolError,
    );

    const older = new SenderConnection(options(), 0);
    const [hello] = across([encodeHello({ minVersion: 1, maxVersion: 4, role: Role.Receiver })]);
    older.receive(hello as Incoming, 0);
    assert.equal(older.version, 4);
    const open = older.openSlot() as number;
    assert.match(
      failure(older.receive(frameAcross({ kind: Kind.Working, slot: open }), 1)).message,
      /before version 5/,
    );
  });

  test('a handshake message after the handshake breaks the session', () => {
    const { sender, receiver } = opened();
    const [hello] = across([encodeHello(receiver.hello())]);
    const error = failure(sender.receive(hello as Incoming, 1));
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.wireCode, ErrorCode.Unexpected);
  });

  test('a frame before the hello is a handshake failure; an ERROR at any time is the peer ending it', () => {
    const sender = new SenderConnection(options(), 0);
    const early = frameAcross({ kind: Kind.Accept, slot: 0, offset: 0, prefixHash: 0n });
    assert.ok(failure(sender.receive(early, 1)) instanceof HandshakeError);

    const { sender: open } = opened();
    const error = failure(open.receive(frameAcross({ kind: Kind.Error, code: 8, message: 'busy' }), 1));
    assert.ok(error instanceof PeerError);
    assert.equal(error.wireCode, 8);
    assert.match(error.message, /receiver ended the session: busy/);
  });

  test('once failed it does nothing more and has no deadline', () => {
    const sender = new SenderConnection(options(), 0);
    sender.closed();
    assert.equal(sender.nextDeadline(), undefined);
    assert.deepEqual(
      sender.receive(across([encodeHello(new ReceiverMachine(limits).hello())])[0] as Incoming, 1),
      [],
    );
    assert.deepEqual(sender.timeout(1e9), []);
    assert.deepEqual(sender.fail(new Error('again')), []);
  });

  test('a hang-up before the hello hints at a TLS mismatch, either way; after it, no hint', () => {
    const plain = failure(new SenderConnection(options(), 0).closed());
    assert.match(plain.message, /closed the connection before its hello \(if it serves TLS, give --tls-ca/);
    const tls = failure(new SenderConnection(options({ tls: true }), 0).closed());
    assert.match(tls.message, /is it serving TLS, with --tls-cert/);
    assert.equal(failure(opened().sender.closed()).message, 'r.example:9000 closed the connection');
  });
});

describe('sender connection deadlines', () => {
  test('no connection within --connect-timeout: a transient failure naming the flag', () => {
    const sender = new SenderConnection(options(), 1_000);
    assert.equal(sender.nextDeadline(), 3_000);
    assert.deepEqual(sender.timeout(2_999), [], 'a timer that fires early changes nothing');
    const error = failure(sender.timeout(3_000));
    assert.ok(error instanceof TransientError && !(error instanceof NoHelloError));
    assert.equal(error.message, 'could not connect to r.example:9000 within 2 s (--connect-timeout)');
  });

  test('connected and no hello within --connect-timeout: not an ackship receiver (NoHelloError)', () => {
    const sender = new SenderConnection(options(), 0);
    sender.connected(1_500);
    sender.activity(1_900);
    assert.equal(sender.nextDeadline(), 2_000, 'bytes that are not a hello do not extend it');
    const error = failure(sender.timeout(2_400));
    assert.ok(error instanceof NoHelloError);
    assert.match(error.message, /accepted the connection but sent no ackship hello within 2 s/);
  });

  test('before the hello too, silence for a --timeout shorter than --connect-timeout fails it (retried)', () => {
    const sender = new SenderConnection(options({ connectTimeoutMs: 60_000, idleTimeoutMs: 3_000 }), 0);
    sender.connected(500);
    assert.equal(sender.nextDeadline(), 3_500);
    const error = failure(sender.timeout(3_500));
    assert.ok(error instanceof TransientError && !(error instanceof NoHelloError));
    assert.equal(error.message, 'r.example:9000 was silent for 3 s');
  });

  test('once greeted, silence either way for --timeout fails it; any activity moves the deadline', () => {
    const sender = new SenderConnection(options(), 0);
    const [hello] = across([encodeHello(new ReceiverMachine(limits).hello())]);
    sender.connected(10);
    sender.receive(hello as Incoming, 100);
    assert.equal(sender.nextDeadline(), 30_100);
    sender.activity(20_000); // our own write reached the kernel
    assert.deepEqual(sender.timeout(30_100), [], 'the timer set for the old deadline re-arms');
    assert.equal(sender.nextDeadline(), 50_000);
    const error = failure(sender.timeout(50_000));
    assert.ok(error instanceof TransientError);
    assert.equal(error.message, 'r.example:9000 was silent for 30 s');
  });
});
