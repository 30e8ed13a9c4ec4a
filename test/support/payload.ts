// A parsed message compared by its bytes: a DATA or CHUNK payload that spanned reads arrives as
// views of them (src/protocol/payload.ts), one buffer otherwise.
import { payloadParts } from '../../src/protocol/payload.js';

export function joinedPayload<T>(message: T): T {
  if (typeof message !== 'object' || message === null || !('payload' in message)) return message;
  const { payload } = message as { payload: Buffer | readonly Buffer[] };
  return Buffer.isBuffer(payload) ? message : { ...message, payload: Buffer.concat(payloadParts(payload)) };
}
