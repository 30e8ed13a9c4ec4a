// The sending end of one v4 message on one connection (PROTOCOL.md §4.12): the frames that carry
// it, and the check of the receiver's answer against what was sent. Pure: no I/O, no clock.
import { PeerError, ProtocolError } from '../errors.js';
import type { DataFrame, EndFrame, Frame, MessageFrame } from './codec.js';
import { ErrorCode, Kind, MAX_CHUNK_LEN } from './constants.js';

export interface OutgoingMessage {
  key: string;
  /** §4.12: the id `key` stands for (`messageId`), computed once for every attempt. */
  id: Buffer;
  name: string;
  meta: Array<[string, string]>;
  data: Buffer;
  /** xxHash64 of `data`. */
  hash: bigint;
}

export type MessageAnswer =
  | { type: 'taken'; duplicate: boolean; reply: Buffer }
  | { type: 'rejected'; code: number; reason: string };

export class SenderMessage {
  readonly #slot: number;
  readonly #message: OutgoingMessage;
  #answered = false;

  constructor(slot: number, message: OutgoingMessage) {
    this.#slot = slot;
    this.#message = message;
  }

  /** MESSAGE, its DATA (views of the caller's bytes, never copied) and END, to be sent in order at once. */
  frames(): Frame[] {
    const { key, name, meta, data, hash } = this.#message;
    const slot = this.#slot;
    const head: MessageFrame = { kind: Kind.Message, slot, size: data.length, key, name, meta };
    const pieces: DataFrame[] = [];
    for (let at = 0; at < data.length; at += MAX_CHUNK_LEN)
      pieces.push({ kind: Kind.Data, slot, offset: at, payload: data.subarray(at, at + MAX_CHUNK_LEN) });
    const end: EndFrame = { kind: Kind.End, slot, hash };
    return [head, ...pieces, end];
  }

  /** The receiver's one answer: RESULT or REJECT; anything else, or a RESULT for other bytes, throws. */
  receive(frame: Frame): MessageAnswer {
    if (frame.kind === Kind.Error)
      throw new PeerError(`receiver ended the session: ${frame.message}`, frame.code);
    if (this.#answered || !('slot' in frame) || frame.slot !== this.#slot)
      throw new ProtocolError(`unexpected frame kind ${frame.kind} for a message`, ErrorCode.Unexpected);
    this.#answered = true;
    switch (frame.kind) {
      case Kind.Reject:
        return { type: 'rejected', code: frame.code, reason: frame.reason };
      case Kind.Result:
        if (!frame.id.equals(this.#message.id) || frame.size !== this.#message.data.length)
          throw new ProtocolError('the result does not match the message sent: not counted as delivered');
        if (frame.hash !== this.#message.hash)
          throw new ProtocolError(
            'the result carries another hash than the one sent: not counted as delivered',
          );
        return { type: 'taken', duplicate: frame.duplicate, reply: frame.reply };
      default:
        throw new ProtocolError(`unexpected frame kind ${frame.kind} for a message`, ErrorCode.Unexpected);
    }
  }
}
