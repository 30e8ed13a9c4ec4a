#!/usr/bin/env bash
# A real local demo: a receiver on a temp dir, a file and a stdin stream sent to it, the
# confirmations shown, and the received files compared with the originals.
set -euo pipefail
cd "$(dirname "$0")/.."
# As an installed ackship runs: through bin/run.cjs, as its first line says.
ackship() { ./bin/run.cjs "$@"; }

work=$(mktemp -d)
receiver=''
cleanup() {
  # The receiver ends by our SIGTERM (status 143), which is no failure of the demo: under
  # set -e a failing last command of an && list would end the script with it.
  if [ -n "$receiver" ] && kill "$receiver" 2>/dev/null; then wait "$receiver" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting a receiver on $work/inbox"
# Not through the function: in the background it would run in a subshell, whose pid $! is, and
# stopping that subshell would leave the receiver running.
./bin/run.cjs recv --listen 127.0.0.1:0 --out "$work/inbox" >"$work/recv.out" 2>"$work/recv.err" &
receiver=$!
for _ in $(seq 50); do grep -q 'listening on' "$work/recv.err" && break; sleep 0.1; done
address=$(sed -n 's/^listening on //p' "$work/recv.err")
[ -n "$address" ] || { cat "$work/recv.err"; exit 1; }
echo "   listening on $address"

echo "== sending a 64 MiB file"
head -c 64M /dev/urandom >"$work/random.bin"
ackship send "$address" "$work/random.bin"

echo "== sending a stdin stream"
seq 1 500000 | ackship send "$address" - --name numbers.txt --json

echo "== what the receiver confirmed"
sed 's/^/   /' "$work/recv.out"

echo "== comparing"
cmp "$work/random.bin" "$work/inbox/random.bin" && echo "   random.bin: identical"
seq 1 500000 | cmp - "$work/inbox/numbers.txt" && echo "   numbers.txt: identical"

echo "== a pipe to a pipe: tar c | ackship send -   into   ackship recv --out - | tar x"
mkdir "$work/unpacked"
(ackship recv --listen 127.0.0.1:0 --out - 2>"$work/pipe.err" | tar x -C "$work/unpacked") &
piped=$!
for _ in $(seq 50); do grep -q 'listening on' "$work/pipe.err" && break; sleep 0.1; done
pipe_address=$(sed -n 's/^listening on //p' "$work/pipe.err")
tar c -C "$work" random.bin | ackship send "$pipe_address" - --name random.tar
wait "$piped"
cmp "$work/random.bin" "$work/unpacked/random.bin" && echo "   unpacked random.bin: identical"
echo "== done: exit status 0 from send means the receiver had every byte, checked, on disk"
