// The byte stream under the protocol: plain TCP, or TLS (node:tls) when the receiver has a
// certificate. With TLS the sender trusts a CA (or the system's), or pins the receiver's
// certificate by its SHA-256 fingerprint, as one does with a self-signed receiver.
import { isIP, connect as netConnect, createServer as netServer, type Server, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect, createServer as tlsServer } from 'node:tls';
import { AuthError, HandshakeError, UsageError } from './errors.js';
import type { Address } from './net-address.js';

/** The receiver's certificate and key, PEM. */
export interface ServerTls {
  cert: string | Buffer;
  key: string | Buffer;
}

/** How a sender trusts the receiver: a CA bundle (PEM), a pinned fingerprint, or the system's CAs. */
export interface ClientTls {
  ca?: string | Buffer;
  /** SHA-256 of the receiver's certificate, hex, with or without colons. */
  fingerprint?: string;
}

/** Certificate errors that no retry can fix: the receiver is not who we trust. */
const TRUST_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * A TLS error no retry can fix: a receiver we do not trust (exit 77), or one that answered in
 * plain ackship (exit 76). Undefined for anything that looks like a broken connection.
 */
export function tlsFailure(err: NodeJS.ErrnoException): AuthError | HandshakeError | undefined {
  if (err.code !== undefined && TRUST_ERRORS.has(err.code)) {
    return new AuthError(`the receiver's TLS certificate is not trusted: ${err.message}`);
  }
  if (err.code === 'EPROTO' && /wrong version number/.test(err.message)) {
    return new HandshakeError(
      'the receiver answered without TLS: start it with --tls-cert and --tls-key, or send without --tls, --tls-ca and --tls-fingerprint',
    );
  }
  return undefined;
}

/** "ab:CD…" or "abcd…" as Node prints fingerprint256: upper case, colon-separated. */
function normalizeFingerprint(text: string): string {
  const hex = text.replace(/[:\s]/g, '').toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) {
    throw new UsageError(
      'a TLS fingerprint is the SHA-256 of the certificate: 64 hex digits, colons allowed',
    );
  }
  return hex.match(/../g)?.join(':') ?? hex;
}

/** A server whose `onSocket` gets plain or (after the handshake) TLS sockets; half-open, so a FIN never cuts a CONFIRM. */
export function createListener(tls: ServerTls | undefined, onSocket: (socket: Socket) => void): Server {
  if (tls === undefined) return netServer({ allowHalfOpen: true }, onSocket);
  return tlsServer({ cert: tls.cert, key: tls.key, allowHalfOpen: true }, onSocket);
}

/**
 * Connects to `address`, over TLS when `tls` is given. A pinned fingerprint replaces CA and name
 * checks; a certificate that does not match it destroys the socket with an AuthError.
 */
export function connectTo(address: Address, tls: ClientTls | undefined): Socket {
  const { host, port } = address;
  if (tls === undefined) return netConnect({ host, port });
  const pinned = tls.fingerprint === undefined ? undefined : normalizeFingerprint(tls.fingerprint);
  const socket: TLSSocket = tlsConnect({
    host,
    port,
    ...(isIP(host) === 0 && { servername: host }),
    ...(tls.ca !== undefined && { ca: tls.ca }),
    rejectUnauthorized: pinned === undefined,
  });
  if (pinned !== undefined) {
    socket.once('secureConnect', () => {
      const seen = socket.getPeerCertificate().fingerprint256;
      if (seen !== pinned) {
        socket.destroy(
          new AuthError(`the receiver's TLS certificate has fingerprint ${seen}, not the pinned ${pinned}`),
        );
      }
    });
  }
  return socket;
}
