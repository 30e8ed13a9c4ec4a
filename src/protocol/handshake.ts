// Version negotiation (PROTOCOL.md §2): both sides send a hello at once and apply the same
// rule to the pair, so both reach the same verdict without another round trip. The same goes
// for whether the session needs proof of a shared secret (§2.1).
import { AuthError, HandshakeError } from '../errors.js';
import type { Hello } from './codec.js';
import { MAX_VERSION, MIN_VERSION, Role } from './constants.js';

/** Our hello for the given end of the connection; `secret`: we require proof of a shared secret (§2.1). */
export function ourHello(role: Role, secret = false): Hello {
  return { minVersion: MIN_VERSION, maxVersion: MAX_VERSION, role, ...(secret && { secret }) };
}

function roleName(role: number): string {
  if (role === Role.Sender) return 'a sender';
  if (role === Role.Receiver) return 'a receiver';
  return `an unknown role (0x${role.toString(16)})`;
}

/** The version the session speaks: the highest both ends speak. Throws when there is none. */
export function negotiate(ours: Hello, theirs: Hello): number {
  const expected = ours.role === Role.Sender ? Role.Receiver : Role.Sender;
  if (theirs.role !== expected) {
    throw new HandshakeError(`peer is ${roleName(theirs.role)}, expected ${roleName(expected)}`);
  }
  const version = Math.min(ours.maxVersion, theirs.maxVersion);
  if (version < Math.max(ours.minVersion, theirs.minVersion) || theirs.minVersion > theirs.maxVersion) {
    throw new HandshakeError(
      `peer speaks protocol versions ${theirs.minVersion}-${theirs.maxVersion}, we speak ${ours.minVersion}-${ours.maxVersion}`,
    );
  }
  // §2.1: a secret on one end only fails both ends, each knowing why from the two hellos.
  if (ours.secret && !theirs.secret) {
    throw new AuthError(`the ${roleName(theirs.role).slice(2)} has no shared secret, and we require one`);
  }
  if (!ours.secret && theirs.secret) {
    throw new AuthError(
      `the ${roleName(theirs.role).slice(2)} requires a shared secret, and we have none (give --secret-file or ACKSHIP_SECRET)`,
    );
  }
  return version;
}
