// A raw sender for hostile-peer tests: speaks frames the real CLI never would, and collects the
// receiver's answers until it closes.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { xxh64 } from '../../src/hash.js';
import { encodeFrame, encodeHello, type Frame } from '../../src/protocol/codec.js';
import { Kind, MAX_VERSION, Role } from '../../src/protocol/constants.js';
import { FrameParser, type Incoming } from '../../src/protocol/frame-parser.js';

export interface RawSender {
  socket: Socket;
  send(...frames: Frame[]): boolean;
  raw(bytes: Buffer): boolean;
  /** Waits until `count` frames (after the hello) have arrived; throws if it closes first. */
  frames(count: number): Promise<Frame[]>;
  /** WORKING frames received (v5): kept out of `frames` and `received`. */
  readonly working: number;
  /** Every frame so far. */
  readonly received: Frame[];
  closed: Promise<void>;
  end(): void;
}

export async function rawSender(t: TestContext, port: number, version = MAX_VERSION): Promise<RawSender> {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(encodeHello({ minVersion: 1, maxVersion: version, role: Role.Sender }));
  const parser = new FrameParser();
  const answers: Incoming[] = [];
  const waiters: Array<() => void> = [];
  socket.on('data', (chunk: Buffer) => {
    answers.push(...parser.push(chunk));
    for (const wake of waiters.splice(0)) wake();
  });
  let isClosed = false;
  // Not events.once: it would reject on the 'error' (a reset) that comes before 'close'.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve())).then(() => {
    isClosed = true;
    for (const wake of waiters.splice(0)) wake();
  });
  // WORKING (v5, §4.14) says a commit is under way; it answers nothing, so it is counted apart.
  const frames = () => answers.filter((a): a is Frame => a.kind !== 'hello' && a.kind !== Kind.Working);
  return {
    socket,
    send: (...list: Frame[]) => socket.write(Buffer.concat(list.flatMap((f) => encodeFrame(f)))),
    raw: (bytes: Buffer) => socket.write(bytes),
    async frames(count: number): Promise<Frame[]> {
      while (frames().length < count) {
        if (isClosed) throw new Error(`closed after ${show(answers)}, expected ${count} frames`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
      return frames();
    },
    get received() {
      return frames();
    },
    get working() {
      return answers.filter((a) => a.kind === Kind.Working).length;
    },
    closed,
    end: () => socket.end(),
  };
}

/** A frame for an assertion message (JSON cannot show a bigint). */
export const show = (value: unknown) =>
  JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v));

export const transferId = (n: number) => Buffer.alloc(16, n);

export const offerFrame = (
  slot: number,
  name: Buffer | string,
  size: number,
  id: Buffer = transferId(slot),
): Frame => ({
  kind: Kind.Offer,
  slot,
  id,
  size,
  name: Buffer.from(name),
});

/**
 * Offers one item in slot 0 and, once it is ACCEPTed, sends all of `payload` and its END.
 * Resolves the receiver's last answer: CONFIRM or REJECT, an ERROR, or undefined if it closed.
 * (The caller loads the hasher.)
 */
export async function sendItem(
  peer: RawSender,
  name: string,
  payload: Buffer,
  id?: Buffer,
): Promise<Frame | undefined> {
  const before = peer.received.length;
  peer.send(offerFrame(0, name, payload.length, id));
  const answer = (await peer.frames(before + 1).catch(() => peer.received))[before];
  if (answer?.kind !== Kind.Accept) return answer;
  peer.send(
    { kind: Kind.Data, slot: 0, offset: 0, payload },
    { kind: Kind.End, slot: 0, hash: xxh64(payload) },
  );
  return (await peer.frames(before + 2).catch(() => peer.received))[before + 1];
}
