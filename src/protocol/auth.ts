// Proof of a shared secret (PROTOCOL.md §2.1): each end sends a random nonce, and proves it
// knows the secret with an HMAC over both nonces, its role and the version. The secret never
// crosses the wire. Confirmations then carry an HMAC under a key derived from the same nonces,
// so that nobody between the two ends can forge one.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthError, TransientError } from '../errors.js';
import {
  type ChallengeFrame,
  type ConfirmFrame,
  encodeFrame,
  type ProofFrame,
  type ResultFrame,
} from './codec.js';
import { FRAME_HEADER_LEN, Kind, NONCE_LEN, Role } from './constants.js';

function hmac(key: Buffer, label: string, ...parts: Buffer[]): Buffer {
  const mac = createHmac('sha256', key).update(label);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/** Whether two MACs are equal, in time that does not depend on where they differ. */
function sameMac(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** A frame that carries a tag in a session with a shared secret. */
type Sealable = ConfirmFrame | ResultFrame;

/** What a tag covers: the frame's body without the tag (a CONFIRM's 36 bytes, a RESULT's all but 32). */
function untaggedBody(frame: Sealable): Buffer {
  // Not `{ ...frame, tag }`, here and in seal: on Node 20's V8 that gets a shape of its own each time.
  return Buffer.concat(encodeFrame(Object.assign({}, frame, { tag: undefined }))).subarray(FRAME_HEADER_LEN);
}

const TAG_LABEL = { [Kind.Confirm]: 'ackship-confirm', [Kind.Result]: 'ackship-result' } as const;

/** One end's side of the proof, for one connection. */
export class SecretProof {
  readonly #secret: Buffer;
  readonly #role: Role;
  readonly #version: Buffer;
  readonly #nonce: Buffer;
  #peerNonce: Buffer | undefined;
  #key: Buffer | undefined;

  /** `nonce` is random unless a test vector fixes it. */
  constructor(secret: Buffer, role: Role, version: number, nonce: Buffer = randomBytes(NONCE_LEN)) {
    this.#secret = secret;
    this.#role = role;
    this.#version = Buffer.from([version]);
    this.#nonce = nonce;
  }

  /** The peer proved the secret: confirmations can be sealed and checked. */
  get proven(): boolean {
    return this.#key !== undefined;
  }

  challenge(): ChallengeFrame {
    return { kind: Kind.Challenge, nonce: this.#nonce };
  }

  /** The peer's nonce: our proof over it. A second CHALLENGE is a violation. */
  answer(challenge: ChallengeFrame): ProofFrame {
    if (this.#peerNonce !== undefined) throw new AuthError('peer sent a second CHALLENGE');
    this.#peerNonce = challenge.nonce;
    return { kind: Kind.Proof, proof: this.#proof(this.#role, challenge.nonce, this.#nonce) };
  }

  /** Checks the peer's PROOF; throws AuthError when it does not show our secret. */
  check(proof: ProofFrame): void {
    const peerNonce = this.#peerNonce;
    if (peerNonce === undefined) throw new AuthError('peer sent PROOF before its CHALLENGE');
    if (this.#key !== undefined) throw new AuthError('peer sent a second PROOF');
    const peerRole = this.#role === Role.Sender ? Role.Receiver : Role.Sender;
    if (!sameMac(proof.proof, this.#proof(peerRole, this.#nonce, peerNonce))) {
      throw new AuthError('the peer does not know our shared secret (wrong secret)');
    }
    const [senderNonce, receiverNonce] =
      this.#role === Role.Sender ? [this.#nonce, peerNonce] : [peerNonce, this.#nonce];
    this.#key = hmac(this.#secret, 'ackship-key', this.#version, senderNonce, receiverNonce);
  }

  /** A CONFIRM or RESULT to send, with its tag. */
  seal<F extends Sealable>(frame: F): F {
    return Object.assign({}, frame, { tag: this.#tag(frame) });
  }

  /** Throws (a retryable error) unless the frame carries the tag only the holder of the secret could make. */
  verify(frame: Sealable): void {
    const expected = this.#tag(frame);
    if (frame.tag === undefined || !sameMac(frame.tag, expected)) {
      // Not counted; the retry asks again, and a real receiver confirms again (exactly once).
      throw new TransientError(
        'a confirmation failed authentication (forged or damaged): not counted as delivered',
      );
    }
  }

  #tag(frame: Sealable): Buffer {
    return hmac(this.#provenKey(), TAG_LABEL[frame.kind], untaggedBody(frame));
  }

  /** The proof an end of `role` makes: over the nonce it answers, then its own. */
  #proof(role: Role, answered: Buffer, own: Buffer): Buffer {
    return hmac(this.#secret, 'ackship-proof', this.#version, Buffer.from([role]), answered, own);
  }

  #provenKey(): Buffer {
    if (this.#key === undefined) throw new AuthError('the peer has not proved the shared secret yet');
    return this.#key;
  }
}
