#!/usr/bin/env bash
# mica's stdout never holds the VM up, and a reader that goes away never kills mica:
#   stdout-head      `mica run ... | head -1`: head gets the first line, mica ends with the
#                    guest's status (not SIGPIPE's 141) and says once, at -v, that it drops output;
#   control-hangup   --control clients that send commands and hang up without reading the
#                    replies: mica keeps serving (a later client gets its answer) and the guest
#                    ends normally;
#   stdout-stalled   stdout a FIFO whose reader never reads: the guest floods the UART and
#                    virtio-console (output_flood), then its disk workload still completes and
#                    mica exits with the guest's status; --stats-json shows the UART's dropped
#                    bytes, virtio-console's waits and the disk's requests;
#   stdout-paused    stdout a FIFO whose reader pauses during the flood: every virtio-console
#                    line arrives, whole and in order (backpressure, nothing dropped).
# Needs KVM (scripts/with-kvm).
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

# FIFOs and sockets outside the tree: under scripts/with-kvm the tree is 9p, which has neither.
DIR=$(mktemp -d /tmp/mica-guest-output.XXXXXX)
reader=
cleanup() {
	[ -n "$reader" ] && kill "$reader" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT

# stats NAME EXPR: evaluates a Python expression over --stats-json's devices (dev["uart"] ...).
stats() {
	python3 - "$OUT/$1.json" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
dev = {}
for x in d["devices"]:
    dev.setdefault(x["device"], x)
ok = eval("(" + sys.argv[2] + ")", {"dev": dev})
print("# %s: %s" % (sys.argv[2], "yes" if ok else "no: " + json.dumps(dev)))
sys.exit(0 if ok else 1)
EOF
}

# ---- stdout-head ----
name=stdout-head
timeout -k 5 "${LIMIT:-120}" "$MICA" run --kernel "$GUEST" --mem 64M --cmdline "tests=all" -v \
	--stats-json "$OUT/$name.json" </dev/null 2>"$OUT/$name.err" | head -n 1 >"$OUT/$name.out"
st=("${PIPESTATUS[@]}")
rc=${st[0]}
first=$(tr -d '\r' <"$OUT/$name.out")
expect $name "mica ends with the guest's status 0, not a signal (pipeline status ${st[*]}); head printed '$first'" \
	test "$rc" = 0 -a "$first" = "TAP version 13"
expect $name-said-once "-v says once that stdout's reader is gone" \
	test "$(grep -c 'stdout: its reader is gone' "$OUT/$name.err")" = 1
expect $name-stats "--stats-json's stdout entry shows the reader gone and the output dropped" \
	stats $name 'dev["stdout"]["reader_gone"] == 1 and dev["stdout"]["bytes_discarded"] > 0'

# ---- control-hangup ----
# One client process, started first (an interpreter starts slowly under emulation, and the
# guest listens for 20 s): once the guest waits for input, 20 clients send commands and hang up
# at once, then one more asks and must be answered, then the guest gets its line on stdin.
name=control-hangup
sock=$DIR/control.sock
fifo=$DIR/stdin.fifo
mkfifo "$fifo"
exec 8<>"$fifo" # so that no open of the FIFO waits, whatever happens to the client process
python3 - "$sock" "$OUT/$name.out" "$fifo" >"$OUT/$name.clients" 2>&1 <<'EOF' &
import socket, sys, time
sys.path.insert(0, "tests/integration")
from control import command
path, out, fifo = sys.argv[1:4]
stdin = open(fifo, "w")  # mica's stdin
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    try:
        if b"serial_input: waiting" in open(out, "rb").read():
            break
    except FileNotFoundError:
        pass
    time.sleep(0.05)
for i in range(20):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b"help\nballoon 1\nhelp\n")
    s.close()  # at once: the replies meet a closed socket
print("# 20 clients sent commands and hung up")
reply = command(path, "help")[1]
print("# then: %r" % reply[:40])
stdin.write("after-the-hangups\n")
stdin.flush()
sys.exit(0 if reply.startswith("ok") else 1)
EOF
clients=$!
timeout -k 5 "${LIMIT:-120}" "$MICA" run --kernel "$GUEST" --mem 64M --control "$sock" \
	--cmdline "tests=serial_input" <"$fifo" >"$OUT/$name.out" 2>"$OUT/$name.err"
rc=$?
exec 8<&-
wait "$clients"
answered=$?
tr -d '\r' <"$OUT/$name.out" >"$OUT/$name.txt"
expect $name "clients that hang up cost nothing: a later one is answered ($(tail -n 1 "$OUT/$name.clients")), the guest gets its input and mica exits 0" \
	test "$rc" = 0 -a "$answered" = 0 -a -n "$(grep '^# received: after-the-hangups' "$OUT/$name.txt")"

# ---- stdout-stalled ----
name=stdout-stalled
img=$DIR/disk.img
truncate -s 4M "$img"
fifo=$DIR/stdout-stalled.fifo
mkfifo "$fifo"
sleep 600 <"$fifo" &   # opens the FIFO for reading, then never reads
reader=$!
timeout -k 5 "${LIMIT:-180}" "$MICA" run --kernel "$GUEST" --mem 64M --console virtio \
	--disk "$img" --stats-json "$OUT/$name.json" \
	--cmdline "tests=output_flood" </dev/null >"$fifo" 2>"$OUT/$name.err"
rc=$?
kill "$reader" 2>/dev/null
wait "$reader" 2>/dev/null
reader=
expect $name "the guest's disk workload completed behind a stalled stdout: status 0" test "$rc" = 0
stats $name 'dev["uart"]["output_dropped"] > 0 and dev["virtio-console"]["output_waits"] > 0 and
	dev["virtio-blk"]["writes"] > 0 and dev["virtio-blk"]["reads"] > 0 and
	dev["stdout"]["bytes_discarded"] > 0' >"$OUT/$name.stats"
counted=$?
expect $name-counters "--stats-json: UART bytes dropped, virtio-console waited, blk requests served ($(tail -n 1 "$OUT/$name.stats"))" \
	test "$counted" = 0

# ---- stdout-paused ----
name=stdout-paused
truncate -s 0 "$img"
truncate -s 4M "$img"
fifo=$DIR/stdout-paused.fifo
mkfifo "$fifo"
# The reader stops once the console flood has begun, for 3 s, then reads everything.
python3 - "$fifo" "$OUT/$name.out" <<'EOF' &
import sys, time
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "wb") as o:
    seen = b""
    while b"# flood-console 0000 " not in seen:
        chunk = f.read1(4096)
        if not chunk:
            break
        seen += chunk
    o.write(seen)
    time.sleep(3)
    while chunk := f.read1(65536):
        o.write(chunk)
EOF
reader=$!
timeout -k 5 "${LIMIT:-180}" "$MICA" run --kernel "$GUEST" --mem 64M --console virtio \
	--disk "$img" --stats-json "$OUT/$name.json" \
	--cmdline "tests=output_flood flood_serial=0 flood_wait=120" </dev/null >"$fifo" 2>"$OUT/$name.err"
rc=$?
wait "$reader"
reader=
tr -d '\r' <"$OUT/$name.out" >"$OUT/$name.txt"
python3 - "$OUT/$name.txt" >"$OUT/$name.lines" <<'EOF'
import re, sys
data = open(sys.argv[1], "rb").read()
m = re.search(rb"console returned (\d+) of (\d+) buffers", data)
if not m or m.group(1) != m.group(2):
    print("# the guest did not report all console buffers back: %r" % (m and m.group(0)))
    sys.exit(1)
n = int(m.group(2))
lines = [l for l in data.split(b"\n") if l.startswith(b"# flood-console ")]
for i in range(n):
    head = b"# flood-console %04d " % i
    want = head + bytes(ord("a") + (i + k) % 26 for k in range(len(head), 4095))
    if i >= len(lines) or lines[i] != want:
        print("# console line %d of %d differs or is missing: %r" % (i, n, lines[i][:40] if i < len(lines) else None))
        sys.exit(1)
if len(lines) != n:
    print("# %d console lines, %d expected" % (len(lines), n))
    sys.exit(1)
print("# %d console lines of 4096 bytes, whole and in order" % n)
EOF
lines_ok=$?
expect $name "status 0, output_flood passed, every virtio-console line whole and in order ($(tail -n 1 "$OUT/$name.lines"))" \
	test "$rc" = 0 -a "$lines_ok" = 0 -a -n "$(grep '^ok 1 - output_flood' "$OUT/$name.txt")"
stats $name 'dev["virtio-console"]["output_waits"] > 0 and dev["stdout"]["bytes_discarded"] == 0' >"$OUT/$name.stats"
counted=$?
expect $name-backpressure "the console waited for the reader and nothing was dropped ($(tail -n 1 "$OUT/$name.stats"))" \
	test "$counted" = 0
