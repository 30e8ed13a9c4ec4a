// The two ways to send a message without a protocol, as most code does.
import { connect } from 'node:net';

export type PlainMode = 'naive' | 'halfclose';

/**
 * naive: connect, write, close; success means no error was reported.
 * halfclose: write, shut down our side, and wait until the receiver closes its side: proof
 * that the program read to the end, not that it kept the data.
 * Resolves true when the sender believes the message delivered.
 */
export function sendPlain(
  mode: PlainMode,
  host: string,
  port: number,
  message: Buffer,
  timeoutMs: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    let failed = false;
    let peerClosed = false;
    const socket = connect({ host, port, allowHalfOpen: true }, () =>
      // naive code is done once its bytes are handed to the kernel; it does not wait for the peer.
      socket.end(message, () => {
        if (mode === 'naive') socket.destroy();
      }),
    );
    socket.setTimeout(timeoutMs, () => {
      failed = true;
      socket.destroy();
    });
    socket.on('error', () => {
      failed = true;
    });
    socket.on('data', () => {});
    socket.on('end', () => {
      peerClosed = true;
      socket.destroy();
    });
    socket.on('close', () => resolve(!failed && (mode === 'naive' || peerClosed)));
  });
}
