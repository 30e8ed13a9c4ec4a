// HOST[:PORT] as users type it, for both commands: IPv6 in brackets, the port optional.
import { UsageError } from './errors.js';

export const DEFAULT_PORT = 7420;

export interface Address {
  host: string;
  port: number;
}

/** Parses `host`, `host:port`, `[v6]` or `[v6]:port`; `allowZero` for a listener's port 0. */
export function parseAddress(text: string, allowZero = false): Address {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text.trim());
  const host = match?.[1] ?? match?.[2];
  if (match === null || host === undefined) {
    throw new UsageError(`"${text}" is not HOST[:PORT] (write IPv6 as [::1]:${DEFAULT_PORT})`);
  }
  const port = match[3] === undefined ? DEFAULT_PORT : Number(match[3]);
  if (port > 65535 || (port === 0 && !allowZero)) throw new UsageError(`port ${port} is out of range`);
  return { host, port };
}

/** The inverse of parseAddress, bracketing IPv6 hosts. */
export function formatAddress({ host, port }: Address): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Whether `host` names this machine's loopback only: 127.0.0.0/8, ::1 or localhost. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
