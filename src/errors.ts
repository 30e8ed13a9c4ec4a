import { ErrorCode, type RejectCode } from './protocol/constants.js';

/**
 * The one table of exit statuses. Commands never pick a number inline: they throw one of the
 * errors below, and the shared catch maps its `code` here. Based on sysexits.h.
 */
export const ExitCode = {
  Ok: 0,
  Internal: 1,
  Usage: 64,
  Partial: 3,
  Rejected: 65,
  StressLoss: 70,
  NoInput: 66,
  NoHost: 68,
  LocalIo: 74,
  Unconfirmed: 75,
  Protocol: 76,
  Auth: 77,
  Interrupted: 130,
  Terminated: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** What each exit status means, for README and `--help`. */
export const EXIT_CODE_HELP: ReadonlyArray<readonly [ExitCode, string]> = [
  [ExitCode.Ok, 'every item was confirmed: checked, durable, under its final name'],
  [ExitCode.Internal, 'internal error (a bug: please report it)'],
  [ExitCode.Partial, 'some items were confirmed and others were not'],
  [ExitCode.Usage, 'usage error: bad flags or arguments (nothing was sent)'],
  [ExitCode.Rejected, 'the receiver rejected an item (bad name, exists, too large, no space)'],
  [ExitCode.NoInput, 'a local input is missing or unreadable (nothing was sent)'],
  [ExitCode.NoHost, "no such host: the receiver's name does not resolve (nothing was sent; not retried)"],
  [ExitCode.StressLoss, 'stress: ackship lost or duplicated a message (a bug: please report it)'],
  [ExitCode.LocalIo, 'local I/O error (cannot write the output directory, spool, or stdout)'],
  [
    ExitCode.Unconfirmed,
    'not confirmed after all retries (unreachable, timed out); run the same send again to resume',
  ],
  [ExitCode.Protocol, 'the peer does not speak ackship, speaks another version, or broke the protocol'],
  [ExitCode.Auth, 'the shared secret did not match, or one side has none (nothing was sent)'],
  [ExitCode.Interrupted, 'interrupted by SIGINT (Ctrl-C)'],
  [ExitCode.Terminated, 'terminated by SIGTERM'],
];

/** Base of every error ackship reports on purpose; `code` is stable, messages are not. */
export class AckshipError extends Error {
  readonly code: string = 'ACK_ERR';
  readonly exitCode: ExitCode = ExitCode.Internal;
  override name = 'AckshipError';
}

/** Flags or arguments that cannot work together. */
export class UsageError extends AckshipError {
  override readonly code = 'ACK_ERR_USAGE';
  override readonly exitCode = ExitCode.Usage;
  override name = 'UsageError';
}

/** A local file to send is missing or unreadable. */
export class InputError extends AckshipError {
  override readonly code = 'ACK_ERR_INPUT';
  override readonly exitCode = ExitCode.NoInput;
  override name = 'InputError';
}

/** A local write failed: the output directory, the spool, stdout. */
export class LocalIoError extends AckshipError {
  override readonly code = 'ACK_ERR_IO';
  override readonly exitCode = ExitCode.LocalIo;
  override name = 'LocalIoError';
}

/** The receiver refused an item for good (PROTOCOL.md §4.3). */
export class RejectedError extends AckshipError {
  override readonly code = 'ACK_ERR_REJECTED';
  override readonly exitCode = ExitCode.Rejected;
  override name = 'RejectedError';
  constructor(
    message: string,
    readonly rejectCode: RejectCode | number,
  ) {
    super(message);
  }
}

/** The receiver's host name does not resolve: no retry can help, and nothing was sent. */
export class NoSuchHostError extends AckshipError {
  override readonly code = 'ACK_ERR_NO_HOST';
  override readonly exitCode = ExitCode.NoHost;
  override name = 'NoSuchHostError';
}

/** An item was not confirmed after every retry; its partial stays on the receiver for resume. */
export class UnconfirmedError extends AckshipError {
  override readonly code = 'ACK_ERR_UNCONFIRMED';
  override readonly exitCode = ExitCode.Unconfirmed;
  override name = 'UnconfirmedError';
}

/** The peer broke the wire format or the session rules; `wireCode` is what goes in ERROR (§4.7). */
export class ProtocolError extends AckshipError {
  override readonly code: string = 'ACK_ERR_PROTOCOL';
  override readonly exitCode: ExitCode = ExitCode.Protocol;
  override name = 'ProtocolError';
  constructor(
    message: string,
    readonly wireCode: ErrorCode = ErrorCode.Malformed,
  ) {
    super(message);
  }
}

/** This receiver is shutting down (a signal): what its sessions tell their peers (§4.7). */
export class ShuttingDownError extends ProtocolError {
  override readonly code = 'ACK_ERR_SHUTDOWN';
  override name = 'ShuttingDownError';
  constructor() {
    super('receiver is shutting down', ErrorCode.ShuttingDown);
  }
}

/** The peer is not ackship at all, or speaks no version we speak (§2). */
export class HandshakeError extends ProtocolError {
  override readonly code = 'ACK_ERR_HANDSHAKE';
  override name = 'HandshakeError';
  constructor(message: string) {
    super(message, ErrorCode.Version);
  }
}

/** §2.1: the peer did not prove the shared secret, or one side has none. */
export class AuthError extends ProtocolError {
  override readonly code = 'ACK_ERR_AUTH';
  override readonly exitCode: ExitCode = ExitCode.Auth;
  override name = 'AuthError';
  constructor(message: string) {
    super(message, ErrorCode.Auth);
  }
}

/** The peer ended the session with an ERROR frame (§4.7). */
export class PeerError extends AckshipError {
  override readonly code = 'ACK_ERR_PEER';
  override name = 'PeerError';
  /** A receiver that is shutting down or timed us out may serve a retry; one that saw a violation won't. */
  readonly retryable: boolean;
  override readonly exitCode: ExitCode;
  constructor(
    message: string,
    readonly wireCode: number,
  ) {
    super(message);
    this.retryable =
      wireCode === ErrorCode.ShuttingDown || wireCode === ErrorCode.Timeout || wireCode === ErrorCode.Busy;
    if (wireCode === ErrorCode.Auth) this.exitCode = ExitCode.Auth;
    else this.exitCode = this.retryable ? ExitCode.Unconfirmed : ExitCode.Protocol;
  }
}

/** The connection broke or went silent; the attempt may be retried. */
export class TransientError extends AckshipError {
  override readonly code = 'ACK_ERR_TRANSIENT';
  override readonly exitCode = ExitCode.Unconfirmed;
  override name = 'TransientError';
}

/** The user or the system asked us to stop. */
export class InterruptedError extends AckshipError {
  override readonly code = 'ACK_ERR_INTERRUPTED';
  override name = 'InterruptedError';
  override readonly exitCode: ExitCode;
  constructor(readonly signal: 'SIGINT' | 'SIGTERM') {
    super(`interrupted by ${signal}`);
    this.exitCode = signal === 'SIGINT' ? ExitCode.Interrupted : ExitCode.Terminated;
  }
}

/** The stress demo saw ackship lose or duplicate a message: the promise was broken. */
export class StressLossError extends AckshipError {
  override readonly code = 'ACK_ERR_STRESS_LOSS';
  override readonly exitCode = ExitCode.StressLoss;
  override name = 'StressLossError';
}

/** A library caller aborted the transfer; partials stay on the receiver for a resume. */
export class AbortedError extends AckshipError {
  override readonly code = 'ACK_ERR_ABORTED';
  override readonly exitCode = ExitCode.Interrupted;
  override name = 'AbortedError';
}

/** Some items of a run were confirmed and others were not. */
export class PartialError extends AckshipError {
  override readonly code = 'ACK_ERR_PARTIAL';
  override readonly exitCode = ExitCode.Partial;
  override name = 'PartialError';
}
