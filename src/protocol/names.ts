// Which item names a receiver accepts (PROTOCOL.md §5). Pure: checks the bytes only; the
// store checks the filesystem (existing files, planted symlinks) on top of this.
import { MAX_COMPONENT_LEN, MAX_NAME_LEN } from './constants.js';

/** The directory inside DIR where a receiver keeps partials and its journal. */
export const STATE_DIR_NAME = '.ackship';

export type NameCheck = { ok: true; name: string; parts: string[] } | { ok: false; reason: string };

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** C0 controls, DEL and C1 controls: a name must never smuggle a terminal escape into a log. */
function isControl(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f);
}

export function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (isControl(text.charCodeAt(i))) return true;
  return false;
}

/** Checks a raw name from an OFFER; on success returns it decoded and split into components. */
export function checkName(raw: Buffer): NameCheck {
  if (raw.length === 0) return { ok: false, reason: 'empty name' };
  if (raw.length > MAX_NAME_LEN) return { ok: false, reason: `name longer than ${MAX_NAME_LEN} bytes` };
  let name: string;
  try {
    name = strictUtf8.decode(raw);
  } catch {
    return { ok: false, reason: 'name is not valid UTF-8' };
  }
  if (name.includes('\0')) return { ok: false, reason: 'name contains a NUL byte' };
  if (hasControl(name)) return { ok: false, reason: 'name contains a control character' };
  if (name.includes('\\')) return { ok: false, reason: 'name contains a backslash' };
  if (name.startsWith('/')) return { ok: false, reason: 'name is absolute' };
  const parts = name.split('/');
  for (const part of parts) {
    if (part === '') return { ok: false, reason: 'name has an empty component' };
    if (part === '.' || part === '..') return { ok: false, reason: `name has a "${part}" component` };
    const bytes = Buffer.byteLength(part);
    if (bytes > MAX_COMPONENT_LEN)
      return { ok: false, reason: `a name component is ${bytes} bytes, more than ${MAX_COMPONENT_LEN}` };
  }
  if (parts[0] === STATE_DIR_NAME)
    return { ok: false, reason: `names under ${STATE_DIR_NAME}/ are reserved` };
  return { ok: true, name, parts };
}

/** Text made safe for a terminal: controls (never raw escapes) shown as \\uXXXX. */
export function escapeControls(text: string): string {
  // Names rarely hold one, and the replace calls back per character: ~10 us for a short name,
  // paid per progress update of every file sent.
  if (!hasControl(text)) return text;
  return text.replace(/./gsu, (c) =>
    isControl(c.charCodeAt(0)) ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c,
  );
}

/** A name made safe to print on a terminal: quotes, backslashes and controls shown as escapes. */
export function printableName(raw: Buffer | string): string {
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  return escapeControls(JSON.stringify(text).slice(1, -1));
}
