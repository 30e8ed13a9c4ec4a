// Wire constants of the ackship protocol. Section numbers (§) refer to PROTOCOL.md.

/** §2: every connection opens with this magic, ASCII "ACKS". */
export const MAGIC = Buffer.from('ACKS', 'latin1');
export const HELLO_LEN = 8;
/** §2.1: bits of the hello's last byte. Older versions send 0 there and ignore it. */
export const HelloFlag = {
  /** This end has a shared secret and requires the peer to prove it knows it. */
  Secret: 0x01,
} as const;
/** The protocol versions this implementation speaks (§2). */
export const MIN_VERSION = 1;
export const MAX_VERSION = 7;

/**
 * §6: items one connection may have open at once: offered and not yet confirmed or rejected.
 * v5 widened it from 64: with 64, one client's 1 KiB messages left both ends idle a third of the
 * time, each waiting for the other's batch (12.3k msg/s; 16.4k with 256). v7 widened it to
 * 1024: a durable small file waits three fsyncs in a row (its own, the journal's, its
 * directory's), and with 256 in flight both ends were idle 40-60% of a 5,000-file run, the
 * receiver's thread waiting for a batch's fsyncs while the sender waited for their answers
 * (5,000 x 1 KiB into ext4, 6 pairs: median 1,226 -> 1,426 files/s; 4,096 gained no more).
 */
export function maxOpenItems(version: number): number {
  return version >= 7 ? 1024 : version >= 5 ? 256 : version >= 2 ? 64 : 1;
}

/** §2: which end of the connection a hello comes from. */
export const Role = {
  Sender: 0x53, // 'S'
  Receiver: 0x52, // 'R'
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** §3: kind byte (1) + body length (u32). */
export const FRAME_HEADER_LEN = 5;

/** §4: the type byte of each frame. */
export const Kind = {
  Offer: 0x01, // S→R: an item: slot, id, size, mode, mtime, name
  Accept: 0x02, // R→S: go ahead; the durable offset and the hash of that prefix
  Reject: 0x03, // R→S: the item is refused, with a code and a reason
  Data: 0x04, // S→R: a chunk of payload at an offset
  End: 0x05, // S→R: all payload sent; the xxHash64 of all of it
  Confirm: 0x06, // R→S: verified, durable, placed; echoes id, size, hash
  Error: 0x07, // either way: the session is over, with a code and a message
  Session: 0x08, // S→R, v2: the sender's run this connection belongs to
  Chunk: 0x09, // S→R, v3: a piece of a stream at an offset, with its own xxHash64
  Ack: 0x0a, // R→S, v3: a stream's bytes before this offset are durable
  Trailer: 0x0b, // S→R, v3: a stream is over: its length and the xxHash64 of all of it
  Challenge: 0x0c, // both, with a shared secret: a random nonce to prove the secret against
  Proof: 0x0d, // both, with a shared secret: HMAC of the secret over both nonces and the version
  Message: 0x0e, // S→R, v4: a message for the receiving application: slot, size, key, name, meta
  Result: 0x0f, // R→S, v4: the application took the message: echoes it, with its reply
  Working: 0x10, // R→S, v5: the item's data is in, and the receiver is still working on it
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

export const TRANSFER_ID_LEN = 16;
/** §4.4: the most payload one DATA frame may carry. */
export const MAX_CHUNK_LEN = 1024 * 1024;
/** §4.1: the longest name, in UTF-8 bytes. */
export const MAX_NAME_LEN = 4096;
/** §5: the longest component of a name, in UTF-8 bytes (NAME_MAX of common filesystems). */
export const MAX_COMPONENT_LEN = 255;
/** §4.1: the furthest `mtime_ms` from the epoch a receiver can set: the range of a JavaScript Date. */
export const MAX_MTIME_MS = 8.64e15;
/** §3: the most text a REJECT reason or an ERROR message may carry. */
export const MAX_TEXT_LEN = 4096;

export const OFFER_FIXED_LEN = 4 + TRANSFER_ID_LEN + 8 + 1 + 4 + 8;
export const ACCEPT_LEN = 4 + 8 + 8;
export const REJECT_FIXED_LEN = 4 + 2;
export const DATA_FIXED_LEN = 4 + 8;
export const END_LEN = 4 + 8;
export const CONFIRM_LEN = 4 + TRANSFER_ID_LEN + 8 + 8;
export const ERROR_FIXED_LEN = 2;
export const SESSION_LEN = 16;
export const CHUNK_FIXED_LEN = 4 + 8 + 8;
export const ACK_LEN = 4 + 8;
export const TRAILER_LEN = 4 + 8 + 8;
/** §4.14: a WORKING frame's body: the slot. */
export const WORKING_LEN = 4;
/** §4.14: how often a v5 receiver says WORKING for an item it is still committing. */
export const WORKING_INTERVAL_MS = 1000;
/** §4.12: a MESSAGE's fixed part (slot, size, flags), and the most its key, name and meta may hold. */
export const MESSAGE_FIXED_LEN = 4 + 8 + 1;
export const MAX_KEY_LEN = 256;
export const MAX_META_LEN = 8192;
export const MAX_MESSAGE_BODY_LEN = MESSAGE_FIXED_LEN + 2 + MAX_KEY_LEN + 2 + MAX_NAME_LEN + 2 + MAX_META_LEN;
/** §4.13: a RESULT's fixed part (slot, id, size, hash, flags, reply length), and the longest reply. */
export const RESULT_FIXED_LEN = 4 + TRANSFER_ID_LEN + 8 + 8 + 1 + 4;
export const MAX_REPLY_LEN = 64 * 1024;
/** §2.1: a CHALLENGE's nonce, a PROOF, and the tag an authenticated CONFIRM carries (HMAC-SHA256). */
export const NONCE_LEN = 32;
export const MAC_LEN = 32;

/**
 * §3: the largest body each kind may declare. A parser refuses a larger declared length as
 * soon as it reads the header, before it buffers a byte of the body.
 */
export const MAX_BODY_LEN: Readonly<Record<Kind, number>> = {
  [Kind.Offer]: OFFER_FIXED_LEN + MAX_NAME_LEN,
  [Kind.Accept]: ACCEPT_LEN,
  [Kind.Reject]: REJECT_FIXED_LEN + MAX_TEXT_LEN,
  [Kind.Data]: DATA_FIXED_LEN + MAX_CHUNK_LEN,
  [Kind.End]: END_LEN,
  [Kind.Confirm]: CONFIRM_LEN + MAC_LEN,
  [Kind.Error]: ERROR_FIXED_LEN + MAX_TEXT_LEN,
  [Kind.Session]: SESSION_LEN,
  [Kind.Chunk]: CHUNK_FIXED_LEN + MAX_CHUNK_LEN,
  [Kind.Ack]: ACK_LEN,
  [Kind.Trailer]: TRAILER_LEN,
  [Kind.Challenge]: NONCE_LEN,
  [Kind.Proof]: MAC_LEN,
  [Kind.Message]: MAX_MESSAGE_BODY_LEN,
  [Kind.Result]: RESULT_FIXED_LEN + MAX_REPLY_LEN + MAC_LEN,
  [Kind.Working]: WORKING_LEN,
};

/** §4.13: RESULT flag bits. */
export const ResultFlag = {
  /** The application had already taken this key; the reply is the one it gave then. */
  Duplicate: 0x01,
} as const;

/** §4.1: OFFER flag bits. */
export const OfferFlag = {
  HasMode: 0x01,
  HasMtime: 0x02,
  /** v2: the item is an (empty) directory; its size is 0. */
  Directory: 0x04,
  /** v3: a stream of unknown length, sent as CHUNKs and ended by a TRAILER; its size is 0. */
  Stream: 0x08,
  /** v4: a question, not an item: "what would you answer?" (§4.1); nothing is opened or kept. */
  Query: 0x10,
  /** v6: the file's DATA and END follow at once, without waiting for an answer (§6.3). */
  Eager: 0x20,
} as const;

/** §6.3 (v6): the largest file an eager OFFER may declare. */
export const MAX_EAGER_SIZE = 64 * 1024;

/**
 * §6.3: the declared sizes of one connection's open eager items add up to at most this. A
 * receiver holds an eager item's data in memory until its decision is made, so this bounds that
 * memory, as v6's 256 open items of 64 KiB did; v7's 1,024 would have allowed 64 MiB.
 */
export const MAX_EAGER_OPEN_BYTES = 16 * 1024 * 1024;

/** §4.3: why a receiver refuses an item. `retryable` codes may succeed on a later attempt. */
export const RejectCode = {
  BadName: 1,
  Exists: 2,
  TooLarge: 3,
  NoSpace: 4,
  Checksum: 5,
  ReceiverIo: 6,
  /** v3: the receiver's output (its stdout) failed; nothing more can be written to it. */
  OutputFailed: 7,
  /** v3: a stream's whole length or xxHash64 differs from its TRAILER; its sender cannot resend it. */
  StreamMismatch: 8,
  /** v4: the receiving application refused the item for good, with its own reason. */
  Refused: 9,
  /** v4: the receiving application failed on the item (it threw, or ran past its deadline); retry. */
  HandlerFailed: 10,
} as const;
export type RejectCode = (typeof RejectCode)[keyof typeof RejectCode];

const RETRYABLE_REJECTS: ReadonlySet<number> = new Set([
  RejectCode.Checksum,
  RejectCode.ReceiverIo,
  RejectCode.HandlerFailed,
]);

/** §4.3: whether a sender should try the item again after this reject code. */
export function isRetryableReject(code: number): boolean {
  return RETRYABLE_REJECTS.has(code);
}

/** §4.7: why a session ends with an ERROR frame. */
export const ErrorCode = {
  Malformed: 1,
  Unexpected: 2,
  FrameTooLarge: 3,
  Version: 4,
  Timeout: 5,
  ShuttingDown: 6,
  Internal: 7,
  /** v3: the receiver is at a limit (connections, or items on one connection); retry on a new one. */
  Busy: 8,
  /** §2.1: one end has a shared secret and the other none, or a PROOF did not match. */
  Auth: 9,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
