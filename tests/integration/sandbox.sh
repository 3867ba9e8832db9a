#!/usr/bin/env bash
# `mica sandbox`: a command runs in a fresh Linux VM over the host's own files and hands back its
# output and exit status. Run from kvm.sh (one inner VM); each check is what the command printed
# or did to the host's files, and how mica ended.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm
if [ ! -f build/linux/vmlinuz ]; then
	fail sandbox "build/linux/vmlinuz is missing: scripts/get-linux-guest did not run"
	exit 0
fi

SB=$(realpath -m "$OUT/sandbox")
rm -rf "$SB" && mkdir -p "$SB"
# Boots are slow nested: every check gets minutes, none is timed.
sb() { local name=$1; shift; LIMIT=300 run_mica "$name" sandbox --timeout "${SB_TIMEOUT:-240}" "$@"; }

# Exit statuses: CMD's own, and 128+N for a signal.
for st in 0 1 42; do
	sb sandbox-exit-$st -- sh -c "exit $st"
	expect sandbox-exit-$st "mica exits $st as CMD did" test "$rc" = $st
done
sb sandbox-signal -- sh -c 'kill -TERM $$'
expect sandbox-signal "CMD killed by SIGTERM: mica exits 143" test "$rc" = 143
sb sandbox-notfound -- /nonexistent/command
expect sandbox-notfound "a missing CMD: 127 and a message" \
	test "$rc" = 127 -a -n "$(grep -i 'no such file' "$OUT/sandbox-notfound.err")"

# stdout and stderr apart, byte-exact, 10 MB each, through pipes.
head -c 10485760 /dev/urandom >"$SB/out.bin"
head -c 10485761 /dev/urandom >"$SB/err.bin"
LIMIT=300 timeout -k 5 300 "$MICA" sandbox --timeout 240 -- \
	sh -c "cat '$SB/out.bin'; cat '$SB/err.bin' >&2; exit 7" 2>"$SB/got.err" </dev/null |
	cat >"$SB/got.out"
rc=${PIPESTATUS[0]}
expect sandbox-streams "stdout and stderr byte-exact and apart, status 7" \
	test "$rc" = 7 -a "$(cmp "$SB/out.bin" "$SB/got.out" && echo same)" = same \
	-a "$(cmp "$SB/err.bin" "$SB/got.err" && echo same)" = same

# stdin piped in, to its end.
head -c 3000000 /dev/urandom >"$SB/in.bin"
LIMIT=300 timeout -k 5 300 "$MICA" sandbox --timeout 240 -- sha256sum <"$SB/in.bin" \
	>"$SB/in.out" 2>"$SB/in.err"
rc=$?
expect sandbox-stdin "CMD read stdin to its end (checksums agree)" \
	test "$rc" = 0 -a "$(cut -d' ' -f1 "$SB/in.out")" = "$(sha256sum <"$SB/in.bin" | cut -d' ' -f1)"
printf 'line one\nline two\n' | LIMIT=300 timeout -k 5 300 "$MICA" sandbox --timeout 240 -- wc -l \
	>"$SB/pipe.out" 2>"$SB/pipe.err"
expect sandbox-stdin-pipe "a pipe's two lines counted" test "$(tr -d ' ' <"$SB/pipe.out")" = 2

# The caller's cwd, environment, ids and umask.
mkdir -p "$SB/cwd dir"
mica_abs=$(realpath "$MICA")
(cd "$SB/cwd dir" && umask 027 && MICA_SB_PROBE='a b=c' timeout -k 5 300 \
	"$mica_abs" sandbox --timeout 240 -- \
	sh -c 'pwd; echo "$MICA_SB_PROBE"; id -u; id -g; umask' >"$SB/ctx.out" 2>"$SB/ctx.err" </dev/null)
expect sandbox-context "cwd, env, uid, gid, umask carried" \
	test "$(cat "$SB/ctx.out")" = "$(printf '%s\n' "$(realpath "$SB/cwd dir")" 'a b=c' "$(id -u)" "$(id -g)" 0027)"

# Writes: under --rw they land on the host; elsewhere they succeed and vanish.
mkdir -p "$SB/rw"
probe=/etc/mica-sandbox-probe-$$
sb sandbox-rw --rw "$SB/rw" -- sh -c "echo kept >'$SB/rw/new.txt' && mkdir '$SB/rw/d' &&
	echo gone >$probe && cat $probe && echo gone >'$SB/outside.txt'"
expect sandbox-rw "a file under --rw on the host; /etc and the rest unchanged" \
	test "$rc" = 0 -a "$(cat "$SB/rw/new.txt" 2>/dev/null)" = kept -a -d "$SB/rw/d" \
	-a ! -e $probe -a ! -e "$SB/outside.txt" -a "$(cat "$OUT/sandbox-rw.out")" = gone
expect sandbox-rw-owner "the new file is the caller's" \
	test "$(stat -c %u:%g "$SB/rw/new.txt")" = "$(id -u):$(id -g)"

# As an unprivileged user: the guest runs as that user, and files it writes are that user's.
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
	chmod o+rw /dev/kvm
	mkdir -p "$SB/rw-nobody" && chown nobody: "$SB/rw-nobody" && chmod o+x "$SB" "$OUT"
	WRAP="setpriv --reuid=nobody --regid=nogroup --clear-groups" \
		sb sandbox-nobody --landlock on --rw "$SB/rw-nobody" -- sh -c "id -u; echo x >'$SB/rw-nobody/f'; touch /root/x"
	expect sandbox-nobody "CMD runs as nobody, its file is nobody's, /root refuses it" \
		test "$rc" = 1 -a "$(head -n 1 "$OUT/sandbox-nobody.out")" = "$(id -u nobody)" \
		-a "$(stat -c %U "$SB/rw-nobody/f" 2>/dev/null)" = nobody
fi

# The project tree looks the same inside: find and git status.
find . -path ./build -prune -o -print 2>/dev/null | LC_ALL=C sort >"$SB/find.host"
sb sandbox-find -- sh -c 'find . -path ./build -prune -o -print 2>/dev/null | LC_ALL=C sort'
expect sandbox-find "find lists the same tree" cmp -s "$SB/find.host" "$OUT/sandbox-find.out"
if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
	git status --porcelain --untracked-files=no >"$SB/git.host" 2>&1
	sb sandbox-git -- git status --porcelain --untracked-files=no
	expect sandbox-git "git status agrees" cmp -s "$SB/git.host" "$OUT/sandbox-git.out"
fi

# A tree bigger than the descriptors a share holds (16384, fewer where RLIMIT_NOFILE is lower):
# find stats all of it (a node for every entry: a plain listing would not need one), and files
# whose descriptors were closed for room long ago read back right (found again by name).
mkdir -p "$SB/big"
for d in $(seq -w 0 19); do
	mkdir "$SB/big/$d" && (cd "$SB/big/$d" && seq -f 'f%g' 0 899 | xargs touch)
done
for i in 0 1 2 3 4 5 6 7 8 9; do echo "file $i of 00" >"$SB/big/00/f$i"; done
big_count=$(find "$SB/big" | wc -l)
sb sandbox-big --json "$SB/big.json" -- sh -c "find '$SB/big' -printf '%s %p\\n' | wc -l; cat '$SB/big/00/f'[0-9]"
big_reopened=$(python3 -c "
import json, sys
print(sum(d.get('reopened', 0) for d in json.load(open(sys.argv[1]))['devices']))" "$SB/big.json" 2>/dev/null)
expect sandbox-big "find counts all $big_count entries and the first files read back; mica found nodes again by name (reopened: '$big_reopened')" \
	test "$rc" = 0 -a "$(head -n 1 "$OUT/sandbox-big.out")" = "$big_count" \
	-a "$(tail -n +2 "$OUT/sandbox-big.out")" = "$(cat "$SB/big/00/f"[0-9])" -a "${big_reopened:-0}" -gt 0
rm -rf "$SB/big"

# Hostile: the host's pseudo file systems are empty through the share, even when CMD (root in
# the guest) mounts the root share again; the share's device nodes are the guest's own.
sb sandbox-pseudo -- sh -c 'mkdir /tmp/m && mount -t virtiofs mica-root /tmp/m &&
	echo "proc:$(ls -A /tmp/m/proc | wc -l) sys:$(ls -A /tmp/m/sys | wc -l) dev:$(ls -A /tmp/m/dev | wc -l)";
	cat /tmp/m/proc/self/mem 2>/dev/null && echo leaked; cat /tmp/m/proc/version 2>/dev/null && echo leaked; exit 0'
expect sandbox-pseudo "the host's /proc, /sys and /dev are empty directories through the share" \
	test "$rc" = 0 -a "$(head -n 1 "$OUT/sandbox-pseudo.out")" = "proc:0 sys:0 dev:0" \
	-a -z "$(grep leaked "$OUT/sandbox-pseudo.out")"

# Many open files: mica bounds its descriptors, the guest gets an error, mica stays up.
sb sandbox-nofile -- python3 -c '
import os, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (200000, 200000))
fds = []
try:
    for i in range(100000):
        fds.append(os.open("/etc/hostname", os.O_RDONLY))
    print("opened", len(fds))
except OSError as e:
    print("stopped", len(fds), e.errno)
for fd in fds: os.close(fd)
print(open("/etc/hostname").read() and "still works")'
expect sandbox-nofile "100k opens end in an error, then files open again; mica exits 0" \
	test "$rc" = 0 -a -n "$(grep '^stopped [0-9]* 23$' "$OUT/sandbox-nofile.out")" \
	-a -n "$(grep 'still works' "$OUT/sandbox-nofile.out")"

# On a terminal, CMD gets one (hvc0, the host terminal's size); without CMD, a shell to type to.
python3 tests/integration/ptyrun.py "$SB/tty.out" 280 -- "$MICA" sandbox --timeout 240 -- \
	sh -c 'tty; stty size; test -t 0 && test -t 1 && echo both-ttys; exit 4' 2>"$SB/tty.err"
rc=$?
tr -d '\r' <"$SB/tty.out" >"$SB/tty.txt"
expect sandbox-tty "CMD's stdin and stdout are /dev/hvc0, 25x80; status 4" \
	test "$rc" = 4 -a -n "$(grep -x /dev/hvc0 "$SB/tty.txt")" -a -n "$(grep -x '25 80' "$SB/tty.txt")" \
	-a -n "$(grep -x both-ttys "$SB/tty.txt")"
# ... whose size follows the host's terminal.
python3 tests/integration/ptyrun.py "$SB/resize.out" 280 'wait=25 80' resize=100x30 'send=\r' -- \
	"$MICA" sandbox --timeout 240 -- sh -c 'stty size; read x; sleep 1; stty size' 2>"$SB/resize.err"
rc=$?
tr -d '\r' <"$SB/resize.out" >"$SB/resize.txt"
expect sandbox-tty-resize "the terminal resized to 100x30: CMD's stty says 30 100" \
	test "$rc" = 0 -a -n "$(grep -x '30 100' "$SB/resize.txt")"
SHELL=/bin/sh python3 tests/integration/ptyrun.py "$SB/shell.out" 280 'wait=[#$] $' \
	'send=echo typed-$((6*7)); exit 5\r' -- "$MICA" sandbox --timeout 240 2>"$SB/shell.err"
rc=$?
tr -d '\r' <"$SB/shell.out" >"$SB/shell.txt"
expect sandbox-shell "an interactive shell ran what was typed; status 5" \
	test "$rc" = 5 -a -n "$(grep -x typed-42 "$SB/shell.txt")"

# --json: how it ended and when.
sb sandbox-json --json "$SB/run.json" -- sh -c 'exit 3'
expect sandbox-json "status 3, reason guest-status and the times, in valid JSON" \
	python3 -c "
import json, sys
j = json.load(open('$SB/run.json'))
assert j['status'] == 3 and j['mica_status'] == 3 and j['reason'] == 'guest-status', j
t = j['since_start']
# A warm run (restored from the cache) did not see the init start: that was before the snapshot.
init = t['init'] if j['start']['kind'] == 'boot' else 1e-9
assert 0 < init <= t['cmd_start'] <= t['end'], t
"

# A kernel that panics is 125 with a line; --timeout is 124.
SB_TIMEOUT=5 sb sandbox-timeout -- sleep 1000
expect sandbox-timeout "a CMD past --timeout: 124" test "$rc" = 124
sb sandbox-panic -- sh -c 'echo c >/proc/sysrq-trigger'
expect sandbox-panic "a panic: 125 and one line saying so" \
	test "$rc" = 125 -a -n "$(grep 'stopped before CMD ended' "$OUT/sandbox-panic.err")"
