import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkName, printableName } from '../src/protocol/names.js';

const rejected: Array<[string, Buffer | string]> = [
  ['empty', ''],
  ['parent', '../x'],
  ['parent inside', 'a/../../x'],
  ['absolute', '/etc/x'],
  ['drive letter with backslash', 'C:\\x'],
  ['backslash parent', 'a\\..\\x'],
  ['dot', '.'],
  ['trailing slash', 'a/'],
  ['double slash', 'a//b'],
  ['NUL', 'a\0b'],
  ['escape sequence', 'a\x1b[31mred'],
  ['newline', 'a\nb'],
  ['DEL', 'a\x7fb'],
  ['C1 control', 'a\u009bb'],
  ['state dir', '.ackship/confirmed.jsonl'],
  ['invalid UTF-8', Buffer.from([0x61, 0xff, 0x62])],
  ['over 4096 bytes', 'x'.repeat(4097)],
];

for (const [why, name] of rejected) {
  test(`a name is rejected: ${why}`, () => {
    const check = checkName(Buffer.isBuffer(name) ? name : Buffer.from(name));
    assert.equal(check.ok, false);
    assert.ok(!check.ok && check.reason.length > 0);
  });
}

test('relative names, unicode and dotfiles are accepted and split into components', () => {
  for (const [name, parts] of [
    ['a', ['a']],
    ['dir/sub/file.tar.gz', ['dir', 'sub', 'file.tar.gz']],
    ['.hidden', ['.hidden']],
    ['..x', ['..x']],
    ['héllo wörld/日本', ['héllo wörld', '日本']],
    ['x'.repeat(255), ['x'.repeat(255)]],
    [Array(16).fill('y'.repeat(255)).join('/').slice(0, 4096), Array(16).fill('y'.repeat(255))],
  ] as const) {
    assert.deepEqual(checkName(Buffer.from(name)), { ok: true, name, parts });
  }
});

test('printableName never lets a control character through', () => {
  const shown = printableName('a\x1b[31m\n\u009b"b');
  assert.equal(shown, 'a\\u001b[31m\\n\\u009b\\"b');
  assert.ok(
    ![...shown].some((c) => c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f)),
  );
});
