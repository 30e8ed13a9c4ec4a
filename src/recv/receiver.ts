// The listening side: accepts senders, runs one Session per connection against one store, and
// stops gracefully (no new connections; commits under way finish; the rest stays resumable).
import { once } from 'node:events';
import type { AddressInfo, Server, Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { Address } from '../net-address.js';
import { encodeFrame, encodeHello } from '../protocol/codec.js';
import { ErrorCode, Kind, Role } from '../protocol/constants.js';
import { ourHello } from '../protocol/handshake.js';
import type { ReceiverLimits } from '../protocol/receiver-machine.js';
import type { ItemSink } from '../store/item-writer.js';
import { createListener, type ServerTls } from '../transport.js';
import { Session, type SessionEvents, type SessionReport, type SessionTimeouts } from './session.js';

export interface ReceiverOptions {
  listen: Address;
  store: ItemSink;
  limits: ReceiverLimits;
  timeouts: SessionTimeouts;
  /** Connections served at once; one more is told "busy" (ERROR 8) and closed. */
  maxConnections: number;
  /** Senders must prove they know it (§2.1). */
  secret?: Buffer;
  /** Serve over TLS with this certificate. */
  tls?: ServerTls;
  /** How long a shutdown waits for sessions to end before it drops them. */
  graceMs: number;
  /** Connections the kernel may queue before the program accepts them (listen(2)'s backlog). */
  backlog?: number;
}

/** What one sender run (all its connections so far) delivered to this receiver. */
export interface RunTotals {
  connections: number;
  items: number;
  bytes: number;
}

export interface ReceiverEvents extends SessionEvents {
  /** A sender connected from `peer`. */
  sessionStarted(peer: string): void;
  /** A connection ended; `totals` add it to the earlier connections of the same sender run. */
  sessionEnded(report: SessionReport, totals: RunTotals): void;
}

/** Runs remembered for their totals; the oldest are forgotten first. */
const MAX_RUNS = 10_000;

export class Receiver {
  readonly #options: ReceiverOptions;
  readonly #events: ReceiverEvents;
  readonly #server: Server;
  readonly #sessions = new Set<Session>();
  readonly #runs = new Map<string, RunTotals>();

  constructor(options: ReceiverOptions, events: ReceiverEvents) {
    this.#options = options;
    this.#events = events;
    // allowHalfOpen: a sender's FIN must not close our side before its last CONFIRM is written.
    this.#server = createListener(options.tls, (socket) => {
      const { store, limits, timeouts, maxConnections, secret } = this.#options;
      if (this.#sessions.size >= maxConnections && !this.#reclaimIdlest())
        return turnAway(socket, maxConnections, secret !== undefined);
      const session = new Session(socket, store, limits, timeouts, this.#events, secret);
      this.#sessions.add(session);
      this.#events.sessionStarted(session.peer);
      void session.ended.then((report) => {
        this.#sessions.delete(session);
        this.#events.sessionEnded(report, this.#addToRun(report));
      });
    });
  }

  /**
   * At the cap, the connection whose sender has had nothing under way for longest makes room
   * (told "busy", which it may retry): otherwise peers that connect and say nothing would keep
   * every legitimate sender out for a whole idle timeout. A connection with items in flight is
   * never reclaimed. Per-address caps would not help: behind NAT, or on loopback, everyone
   * shares one address.
   */
  #reclaimIdlest(): boolean {
    let idlest: Session | undefined;
    let since = Number.POSITIVE_INFINITY;
    for (const session of this.#sessions) {
      const idle = session.idleSince;
      if (idle !== undefined && idle < since) {
        idlest = session;
        since = idle;
      }
    }
    if (idlest === undefined) return false;
    // Forgotten now, so that the next connection reclaims another; it ends by itself.
    this.#sessions.delete(idlest);
    idlest.reclaim();
    return true;
  }

  #addToRun(report: SessionReport): RunTotals {
    const totals = (report.session && this.#runs.get(report.session)) || {
      connections: 0,
      items: 0,
      bytes: 0,
    };
    totals.connections++;
    totals.items += report.confirmed;
    totals.bytes += report.bytes;
    if (report.session !== undefined) {
      this.#runs.delete(report.session);
      this.#runs.set(report.session, totals);
      if (this.#runs.size > MAX_RUNS) this.#runs.delete(this.#runs.keys().next().value as string);
    }
    return { ...totals };
  }

  /** Starts listening; resolves with the address actually bound (the real port for port 0). */
  async listen(): Promise<Address> {
    const { listen, backlog } = this.#options;
    this.#server.listen(listen.port, listen.host, backlog);
    await Promise.race([
      once(this.#server, 'listening'),
      once(this.#server, 'error').then(([err]) => {
        throw err;
      }),
    ]);
    const bound = this.#server.address() as AddressInfo;
    return { host: bound.address, port: bound.port };
  }

  /** Stops accepting, lets every session wind down within the grace period, then closes the store. */
  async close(): Promise<void> {
    const closed = new Promise((resolve) => this.#server.close(resolve));
    const sessions = [...this.#sessions];
    const ended = Promise.all(sessions.map((s) => s.shutdown()));
    const grace = new AbortController();
    await Promise.race([
      ended,
      delay(this.#options.graceMs, undefined, { signal: grace.signal }).catch(() => {}),
    ]);
    grace.abort();
    this.#options.store.interrupt?.();
    for (const session of sessions) session.destroy();
    await ended;
    await closed;
    await this.#options.store.close();
  }
}

/** One connection too many: the peer learns why (and that it may retry) instead of hanging. */
function turnAway(socket: Socket, limit: number, secret: boolean): void {
  socket.on('error', () => {});
  const message = `the receiver serves ${limit} connections at once; retry later`;
  socket.end(
    Buffer.concat([
      encodeHello(ourHello(Role.Receiver, secret)),
      ...encodeFrame({ kind: Kind.Error, code: ErrorCode.Busy, message }),
    ]),
  );
  socket.setTimeout(5000, () => socket.destroy());
}
