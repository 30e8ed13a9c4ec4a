// One sender's connection on the receiver: socket bytes into the parser and the state machine,
// the machine's actions carried out against the store, strictly in order. The socket is paused
// while a chunk is being handled, so a disk slower than the network slows the sender down.
import type { Socket } from 'node:net';
import { type AckshipError, ProtocolError, ShuttingDownError, TransientError } from '../errors.js';
import { encodeFrame, encodeHello, type Frame } from '../protocol/codec.js';
import { ErrorCode, isRetryableReject, Kind, WORKING_INTERVAL_MS } from '../protocol/constants.js';
import { FrameParser } from '../protocol/frame-parser.js';
import {
  type ReceiverAction,
  type ReceiverLimits,
  ReceiverMachine,
  type ValidOffer,
} from '../protocol/receiver-machine.js';
import {
  type ItemSink,
  type ItemWriter,
  ioRejectCode,
  RefusingWriter,
  writeAndCommit,
} from '../store/item-writer.js';
import { PlacementRefused } from '../store/placement.js';

export interface ItemReport {
  peer: string;
  name: string;
  size: number;
  hash: bigint;
  /** Confirmed again: a retry of an item this receiver had already confirmed. */
  again: boolean;
}

export interface SessionReport {
  peer: string;
  /** The sender run this connection belongs to (v2 SESSION), as hex. */
  session?: string;
  offered: number;
  confirmed: number;
  /** Bytes of the items confirmed. */
  bytes: number;
  /** Items refused for good; a refusal the sender retries (a failed checksum) is not counted. */
  rejected: number;
  /** Why the session ended, when it did not end cleanly. */
  error?: AckshipError;
}

export interface SessionEvents {
  confirmed(item: ItemReport): void;
  rejected(item: { peer: string; name: string; reason: string }): void;
}

export interface SessionTimeouts {
  /** Longest silence of the sender, except while we verify and place its items. */
  idleMs: number;
  /** Longest a hello or a frame other than DATA/CHUNK may take to arrive whole: cuts off slowloris peers. */
  headerMs: number;
}

export class Session {
  readonly #socket: Socket;
  readonly #store: ItemSink;
  readonly #events: SessionEvents;
  readonly #peer: string;
  readonly #machine: ReceiverMachine;
  readonly #parser = new FrameParser();
  readonly #writers = new Map<number, ItemWriter>();
  readonly #report: SessionReport;
  /** Frames are handled strictly in order, one chunk at a time. */
  #chain: Promise<void> = Promise.resolve();
  /** Opens and commits run beside the chain, so that many items commit at once (group commit). */
  readonly #background = new Set<Promise<void>>();
  #busy = false;
  #over = false;
  readonly #timeouts: SessionTimeouts;
  /** Fires when the message being received took too long to arrive whole. */
  #deadline: NodeJS.Timeout | undefined;
  /** Commits under way, and the timer that says WORKING for them. */
  #commits = 0;
  #working: NodeJS.Timeout | undefined;
  #deadlineFor: FrameParser['partial'] = 'none';
  #lastHeard = performance.now();
  readonly ended: Promise<SessionReport>;

  constructor(
    socket: Socket,
    store: ItemSink,
    limits: ReceiverLimits,
    timeouts: SessionTimeouts,
    events: SessionEvents,
    secret?: Buffer,
  ) {
    const idleTimeoutMs = timeouts.idleMs;
    this.#timeouts = timeouts;
    this.#socket = socket;
    this.#store = store;
    this.#events = events;
    this.#peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.#machine = new ReceiverMachine(limits, secret);
    this.#report = { peer: this.#peer, offered: 0, confirmed: 0, bytes: 0, rejected: 0 };
    this.ended = new Promise((resolve) => {
      socket.once('close', () => {
        this.#over = true;
        clearTimeout(this.#deadline);
        void this.#chain
          .then(() => this.#settled())
          .then(async () => {
            await this.#abandonWriters();
            resolve(this.#report);
          });
      });
    });
    socket.setNoDelay(true);
    // A listener, not setTimeout's callback: Node adds that with once(), so it would fire only
    // the first time, and a session busy then would never be timed out again.
    socket.setTimeout(idleTimeoutMs);
    socket.on('timeout', () => {
      // A peer that never closes its side after ours is dropped now.
      if (this.#over) return this.#drop();
      // Verifying and placing items may take a while; the sender is rightly silent then. The
      // timer restarts by itself after each timeout.
      if (this.#busy || this.#background.size > 0) return;
      this.#end(new ProtocolError(`no bytes for ${idleTimeoutMs / 1000} s`, ErrorCode.Timeout));
    });
    socket.on('data', (chunk: Buffer) => {
      this.#lastHeard = performance.now();
      socket.pause();
      this.#enqueue(() => this.#handle(chunk));
    });
    // The peer's FIN: finish what it sent (commits may still owe it CONFIRMs), then close.
    socket.on('end', () =>
      this.#enqueue(async () => {
        await this.#settled();
        this.#close();
      }),
    );
    socket.on('error', (err) => {
      this.#report.error ??= new TransientError(`connection from ${this.#peer} failed: ${err.message}`);
    });
    socket.write(encodeHello(this.#machine.hello()));
    this.#armDeadline();
  }

  /**
   * A message (the hello, a frame) must arrive whole within its deadline of the previous one's
   * end: a peer that trickles bytes to hold the connection is cut off. DATA and CHUNK bodies,
   * up to 1 MiB, get the idle timeout; time we spend handling data does not count.
   */
  #armDeadline(): void {
    clearTimeout(this.#deadline);
    const partial = this.#parser.partial;
    this.#deadlineFor = partial;
    if (partial === 'none' || this.#over) return;
    const ms = partial === 'payload' ? this.#timeouts.idleMs : this.#timeouts.headerMs;
    this.#deadline = setTimeout(() => {
      if (this.#busy) return this.#armDeadline();
      const what = partial === 'payload' ? 'a DATA or CHUNK frame' : 'a hello or frame header';
      this.#end(new ProtocolError(`${what} took over ${ms / 1000} s to arrive`, ErrorCode.Timeout));
    }, ms);
    this.#deadline.unref();
  }

  /** HOST:PORT of the sender. */
  get peer(): string {
    return this.#peer;
  }

  /**
   * When the sender was last heard (performance.now()), if it has nothing under way here: no
   * item open, nothing being handled. Undefined while it does, or once the session is ending.
   */
  get idleSince(): number | undefined {
    if (this.#over || this.#busy || this.#background.size > 0 || this.#machine.openItems > 0)
      return undefined;
    return this.#lastHeard;
  }

  /** Ends the session at once with `error`, told to the peer. */
  #end(error: ProtocolError): void {
    this.#enqueue(() => this.#run(this.#machine.abort(error)));
  }

  /** The receiver is at its connection cap and needs this idle connection's place (§6). */
  reclaim(): void {
    this.#end(
      new ProtocolError('the receiver needed this idle connection for another sender', ErrorCode.Busy),
    );
    this.#over = true;
  }

  /** Stops the session for a shutdown: commits under way finish, the rest stays resumable. */
  shutdown(): Promise<SessionReport> {
    this.#enqueue(async () => {
      await this.#settled();
      await this.#run(this.#machine.abort(new ShuttingDownError()));
    });
    this.#over = true;
    return this.ended;
  }

  /** Drops the connection at once (after a shutdown's grace period). */
  destroy(): void {
    this.#drop();
  }

  /** Another connection took over one of this session's transfer ids: it is a stale retry. */
  #takenOver(): void {
    this.#report.error ??= new TransientError('a newer connection took over the transfer');
    this.#over = true;
    this.#drop();
  }

  #enqueue(task: () => Promise<void> | undefined): void {
    this.#chain = this.#chain.then(async () => {
      if (this.#socket.destroyed) return;
      this.#busy = true;
      try {
        await task();
      } catch (err) {
        this.#internalError(err);
      } finally {
        this.#busy = false;
        if (!this.#over && !this.#socket.destroyed) this.#socket.resume();
      }
    });
  }

  /** Runs `task` beside the chain; the session does not end before it settles. */
  #inBackground(task: Promise<void>): void {
    const tracked = task
      .catch((err) => this.#internalError(err))
      .finally(() => this.#background.delete(tracked));
    this.#background.add(tracked);
  }

  /** Waits until no open or commit is under way. */
  async #settled(): Promise<void> {
    while (this.#background.size > 0) await Promise.all(this.#background);
  }

  /** A bug, not the peer's fault: end the session rather than the receiver. */
  #internalError(err: unknown): void {
    this.#report.error ??= new ProtocolError(`internal error: ${(err as Error).message}`, ErrorCode.Internal);
    this.#drop();
  }

  async #handle(chunk: Buffer): Promise<void> {
    if (this.#over) return;
    let messages: ReturnType<FrameParser['push']>;
    try {
      messages = this.#parser.push(chunk);
    } catch (err) {
      return this.#run(this.#machine.abort(err as ProtocolError));
    }
    // A new message began (or a frame's payload did): its own deadline starts now.
    if (messages.length > 0 || this.#parser.partial !== this.#deadlineFor) this.#armDeadline();
    for (const message of messages) {
      if (message.kind === Kind.Offer && !message.query) this.#report.offered++;
      const waiting = this.#run(this.#machine.receive(message));
      if (waiting !== undefined) await waiting;
      if (this.#over) return;
    }
  }

  /**
   * Carries out the machine's actions, in order. Only a write may have to wait (for room among
   * its item's writes), and then so does what follows it: the promise says when all is done.
   * Without one, all is done in this call and there is no promise: most frames of small files
   * make no write, and an async call per batch of actions was the receiver's largest source of
   * garbage (66.7 of 656 MiB over 20,000 x 1 KiB files, sampling heap profiler).
   */
  #run(actions: ReceiverAction[]): Promise<void> | undefined {
    for (let i = 0; i < actions.length; i++) {
      const action = actions[i] as ReceiverAction;
      if (action.type === 'write') return this.#writeThenRun(action, actions.slice(i + 1));
      this.#apply(action);
    }
    return undefined;
  }

  async #writeThenRun(
    write: Extract<ReceiverAction, { type: 'write' }>,
    rest: ReceiverAction[],
  ): Promise<void> {
    const writer = this.#writers.get(write.slot) as ItemWriter;
    try {
      await writer.write(write.offset, write.payload, write.truncate);
    } catch (err) {
      this.#writers.delete(write.slot);
      const code = ioRejectCode(err);
      // Refused for good (a full disk): the partial could never be resumed, so free its space.
      await writer.abandon(!isRetryableReject(code));
      // Its name refused (other bytes under it): that item alone; the session goes on.
      if (err instanceof PlacementRefused)
        await this.#run(this.#machine.refuse(write.slot, code, err.message));
      else {
        const reason = `receiver could not write the item: ${(err as Error).message}`;
        await this.#run(this.#machine.writeFailed(write.slot, code, reason));
      }
    }
    await this.#run(rest);
  }

  #apply(action: Exclude<ReceiverAction, { type: 'write' }>): void {
    switch (action.type) {
      case 'send':
        this.#send(action.frame);
        break;
      case 'open':
        this.#inBackground(this.#open(action.offer));
        break;
      case 'message': {
        const { offer, refusal } = action;
        // Its data is on its way already: the writer must be there before the next frame.
        const writer =
          refusal === undefined
            ? this.#store.take(offer, this.#peer)
            : new RefusingWriter(offer, refusal.code, refusal.reason);
        this.#writers.set(offer.slot, writer);
        break;
      }
      case 'commit':
        this.#inBackground(this.#commit(action));
        break;
      case 'session':
        this.#report.session = action.id.toString('hex');
        break;
      case 'rejected':
        if (action.final) this.#report.rejected++;
        this.#events.rejected({ peer: this.#peer, name: action.name, reason: action.reason });
        break;
      case 'fail':
        this.#report.error ??= action.error;
        if (action.notify) {
          const wireCode = action.error instanceof ProtocolError ? action.error.wireCode : ErrorCode.Internal;
          this.#send({ kind: Kind.Error, code: wireCode, message: action.error.message });
        }
        this.#close();
        break;
    }
  }

  async #open(offer: ValidOffer): Promise<void> {
    const { decision, writer } = await this.#store.open(offer, this.#peer);
    if (writer !== undefined) {
      writer.onTakeover = () => this.#takenOver();
      writer.onDurable = (offset) => void this.#run(this.#machine.durable(offer.slot, offset));
      this.#writers.set(offer.slot, writer);
    }
    // A query's answer confirms nothing to anyone: it is not reported as an item.
    if (decision.type === 'confirmed' && !offer.query)
      this.#confirmed(offer.name, decision.size, decision.hash, true);
    await this.#run(this.#machine.decided(offer.slot, decision));
  }

  async #commit({ slot, hash, write }: Extract<ReceiverAction, { type: 'commit' }>): Promise<void> {
    const writer = this.#writers.get(slot) as ItemWriter;
    this.#writers.delete(slot);
    this.#startWorking();
    try {
      const outcome =
        write === undefined ? await writer.commit(hash) : await writeAndCommit(writer, write, hash);
      if (outcome.type === 'confirmed')
        this.#confirmed(writer.name, writer.size, outcome.hash, outcome.duplicate === true);
      await this.#run(this.#machine.committed(slot, outcome));
    } finally {
      this.#stopWorking();
    }
  }

  /**
   * §4.14: while commits are under way (a slow disk, a slow handler), a v5 sender hears every
   * second which items are still in hand, so that its silence rule does not give them up.
   */
  #startWorking(): void {
    if (this.#commits++ > 0) return;
    this.#working = setInterval(() => void this.#run(this.#machine.working()), WORKING_INTERVAL_MS);
    this.#working.unref();
  }

  #stopWorking(): void {
    if (--this.#commits === 0) clearInterval(this.#working);
  }

  #confirmed(name: string, size: number, hash: bigint, again: boolean): void {
    this.#report.confirmed++;
    this.#report.bytes += size;
    this.#events.confirmed({ peer: this.#peer, name, size, hash, again });
  }

  /**
   * Frames sent within one tick leave in one write: a tick that answers 64 messages makes one
   * system call, not 64. The cork comes off when the tick ends, or at end() or #drop().
   */
  #send(frame: Frame): void {
    const socket = this.#socket;
    if (!socket.writable) return;
    if (socket.writableCorked === 0) {
      socket.cork();
      process.nextTick(() => socket.uncork());
    }
    for (const part of encodeFrame(frame)) socket.write(part);
  }

  /** Drops the connection now; what the tick already sent goes first. */
  #drop(): void {
    if (this.#socket.writableCorked > 0) this.#socket.uncork();
    this.#socket.destroy();
  }

  /** Ends our side after what we queued has been written, and stops reading. */
  #close(): void {
    this.#over = true;
    this.#socket.end();
    this.#socket.pause();
  }

  async #abandonWriters(): Promise<void> {
    const writers = [...this.#writers.values()];
    this.#writers.clear();
    await Promise.all(writers.map((w) => w.abandon()));
  }
}
