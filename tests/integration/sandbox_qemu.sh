#!/usr/bin/env bash
# The guest init of `mica sandbox` (sandbox/init/) end to end, under QEMU (TCG: no KVM needed),
# whose devices stand in for mica's: virtio-fs through vhost-user-fs and the virtiofsd QEMU
# ships (the host's / as tag mica-root, a directory as mica-rw0), virtio-serial ports named
# mica.stdin/mica.stdout/mica.stderr (or a virtconsole as /dev/hvc0 for the terminal mode), and
# isa-debug-exit on port 0x501 (QEMU exits with status*2+1). The initramfs is the one
# `mica sandbox` builds, written by the unit test's helper (test_sandbox_initramfs --write)
# with the job it would send, from the caller's cwd, ids, umask and environment, on a port
# mica.job (a socket chardev: a one-shot server sends the job's bytes and hangs up, the end of
# the port's input); the checks are on what the command printed
# through the ports, the status, and the host's files afterwards.
# Run alone (it needs root for virtiofsd): tests/integration/sandbox_qemu.sh
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

helper=${SANDBOX_HELPER:-build/obj/tests/test_sandbox_initramfs}
virtiofsd=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
kernel=build/linux/vmlinuz
if [ ! -x "$helper" ] || [ ! -f "$kernel" ]; then
	fail sandbox-qemu "$helper or $kernel is missing (make unit; scripts/get-linux-guest)"
	exit 1
fi
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -x "$virtiofsd" ] || [ "$(id -u)" != 0 ]; then
	skip sandbox-qemu "needs qemu-system-x86_64, $virtiofsd (apt-get install qemu-system-x86) and root"
	exit 0
fi

# Absolute: the helper runs in the caller's cwd.
helper=$(realpath "$helper") kernel=$(realpath "$kernel") OUT=$(realpath "$OUT")
T=$(mktemp -d /tmp/mica-sandbox-qemu.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
chmod 755 "$T"
mkdir -m 1777 "$T/cpio"
mkdir "$T/work" "$T/rw"
chown 1000:1000 "$T/work" "$T/rw"

# job_server SOCKET FILE: FILE to QEMU's mica.job port through SOCKET (job_server.py).
job_server() {
	python3 tests/integration/job_server.py "$1" "$2"
}

# qboot NAME MODE STDIN [helper options] -- CMD...: builds the initramfs as the caller the
# environment of this call describes (AS=UID:GID:GROUPS, UMASK, CWD), runs BEFORE_BOOT (shell
# code) if set, boots it with MODE port (the three named ports) or tty (hvc0), feeds STDIN to
# mica.stdin; leaves what the command wrote in $OUT/NAME.out (stdout, or the terminal) and
# $OUT/NAME.err, the status in $rc.
qboot() {
	local name=$1 mode=$2 input=$3 qrc i feed
	shift 3
	local as=() opts=() dev=()
	[ -n "${AS:-}" ] && as=(setpriv --reuid="${AS%%:*}" --regid="$(cut -d: -f2 <<<"$AS")" \
		--groups="$(cut -d: -f3 <<<"$AS")" --)
	[ "$mode" = port ] && opts=(--port)
	rm -f "$T"/*.sock "$T"/stdin.* "$T"/std* "$T/tty" "$T/console"
	if ! (cd "${CWD:-$T/work}" && umask "${UMASK:-022}" &&
		"${as[@]}" "$helper" --write "$T/cpio/$name.cpio" "$kernel" "${opts[@]}" \
		--rw "mica-rw0=$T/rw" "$@") >"$OUT/$name.build" 2>&1; then
		rc="helper failed: $(tail -n 1 "$OUT/$name.build")"
		return
	fi
	[ -n "${BEFORE_BOOT:-}" ] && eval "$BEFORE_BOOT"
	"$virtiofsd" --socket-path="$T/root.sock" -o source=/ -o sandbox=chroot -o cache=auto \
		>"$OUT/$name.vfs-root" 2>&1 &
	pids=($!)
	"$virtiofsd" --socket-path="$T/rw.sock" -o source="$T/rw" -o sandbox=chroot -o cache=auto \
		>"$OUT/$name.vfs-rw" 2>&1 &
	pids+=($!)
	for i in $(seq 100); do [ -S "$T/root.sock" ] && [ -S "$T/rw.sock" ] && break; nap 0.1; done
	mkfifo "$T/stdin.in" "$T/stdin.out"
	if [ "$mode" = port ]; then
		dev=(-chardev pipe,id=si,path="$T/stdin" -device virtserialport,bus=vs.0,chardev=si,name=mica.stdin
		     -chardev file,id=so,path="$T/stdout" -device virtserialport,bus=vs.0,chardev=so,name=mica.stdout
		     -chardev file,id=se,path="$T/stderr" -device virtserialport,bus=vs.0,chardev=se,name=mica.stderr)
	else
		dev=(-chardev file,id=tty,path="$T/tty" -device virtconsole,bus=vs.0,chardev=tty)
	fi
	job_server "$T/job.sock" "$T/cpio/$name.cpio.job"
	# Opened read-write, which never waits for a reader, and held until QEMU is done: the
	# input waits in the pipe, and no writer is left blocked behind if QEMU never opens it.
	exec {feed}<>"$T/stdin.in"
	printf '%b' "$input" >&$feed
	timeout -k 5 "${LIMIT:-150}" qemu-system-x86_64 -accel tcg -m 512M -nographic -no-reboot \
		-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem \
		-kernel "$kernel" -initrd "$T/cpio/$name.cpio" \
		-append 'console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init' \
		-chardev socket,id=c0,path="$T/root.sock" -device vhost-user-fs-pci,chardev=c0,tag=mica-root \
		-chardev socket,id=c1,path="$T/rw.sock" -device vhost-user-fs-pci,chardev=c1,tag=mica-rw0 \
		-device virtio-serial-pci,id=vs \
		-chardev socket,id=job,path="$T/job.sock" -device virtserialport,bus=vs.0,chardev=job,name=mica.job "${dev[@]}" \
		-serial file:"$T/console" -monitor none -device isa-debug-exit,iobase=0x501,iosize=1 \
		>"$OUT/$name.qemu" 2>&1
	qrc=$?
	exec {feed}>&-
	kill "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
	pids=()
	if [ $((qrc % 2)) = 1 ]; then rc=$(((qrc - 1) / 2)); else rc="qemu exited $qrc"; fi
	if [ "$mode" = port ]; then
		cp "$T/stdout" "$OUT/$name.out" 2>/dev/null
		cp "$T/stderr" "$OUT/$name.err" 2>/dev/null
	else
		tr -d '\r' <"$T/tty" >"$OUT/$name.out" 2>/dev/null
		cp "$OUT/$name.out" "$OUT/$name.err"
	fi
	cp "$T/console" "$OUT/$name.console" 2>/dev/null
}

out_is() { [ "$(cat "$OUT/$1.out" 2>/dev/null)" = "$2" ]; }

# The caller's identity, cwd, environment and stdin; writes: the overlay's vanish, the share's
# reach the host; the guest's own /proc, /dev, /dev/pts, /run (with $XDG_RUNTIME_DIR), lo up;
# stderr apart; the exit code.
AS=1000:1000:24 UMASK=027 FOO='bar baz' XDG_RUNTIME_DIR=/run/user/1000 \
	qboot sandbox-qemu-caller port 'line from stdin\n' -- \
	/bin/sh -c 'echo "ids $(id -u) $(id -g) $(id -G)"; echo "umask $(umask)"; echo "cwd $(pwd)"
		echo "foo $FOO"; echo "host $(hostname)"; read l; echo "stdin $l"
		echo x >in-overlay && echo "cwd writable"; echo shared >'"$T"'/rw/from-guest
		test -e /proc/self/status && test -c /dev/null && echo "proc dev"
		grep -q "^devpts /dev/pts devpts" /proc/mounts && grep -q "^tmpfs /run tmpfs" /proc/mounts && echo "pts run"
		grep -q "^mica-rw0 '"$T"'/rw virtiofs rw" /proc/mounts && echo "share rw"
		grep -q "^overlay / overlay" /proc/mounts && echo "root overlay"
		echo "runtime dir $(stat -c "%u %a" "$XDG_RUNTIME_DIR")"; echo "lo $(cat /sys/class/net/lo/flags)"
		echo to-stderr >&2; exit 7'
want="ids 1000 1000 1000 24
umask 0027
cwd $T/work
foo bar baz
host mica-sandbox
stdin line from stdin
cwd writable
proc dev
pts run
share rw
root overlay
runtime dir 1000 700
lo 0x9"
expect sandbox-qemu-caller "status 7 and the caller's view (stdout: $(tr '\n' '|' <"$OUT/sandbox-qemu-caller.out" 2>/dev/null))" \
	test "$rc" = 7 -a "$(cat "$OUT/sandbox-qemu-caller.out" 2>/dev/null)" = "$want"
expect sandbox-qemu-stderr "the command's stderr, alone, on mica.stderr" \
	test "$(cat "$OUT/sandbox-qemu-caller.err" 2>/dev/null)" = to-stderr
expect sandbox-qemu-writes "the share's file on the host, the overlay's not" \
	test "$(cat "$T/rw/from-guest" 2>/dev/null)" = shared -a "$(stat -c %u "$T/rw/from-guest" 2>/dev/null)" = 1000 \
	-a ! -e "$T/work/in-overlay"

# Like a shell: 127 for no such command, 126 for one that cannot run; 128+N for signal N.
qboot sandbox-qemu-127 port '' -- /nonexistent/cmd
expect sandbox-qemu-127 "status 127 and one line" test "$rc" = 127 -a \
	"$(cat "$OUT/sandbox-qemu-127.err" 2>/dev/null)" = "mica sandbox: /nonexistent/cmd: No such file or directory"
printf '#!/bin/sh\necho ran\n' >"$T/noexec" && chmod 644 "$T/noexec"
qboot sandbox-qemu-126 port '' -- "$T/noexec"
expect sandbox-qemu-126 "status 126 and one line" test "$rc" = 126 -a \
	"$(cat "$OUT/sandbox-qemu-126.err" 2>/dev/null)" = "mica sandbox: $T/noexec: Permission denied"
# 143, seen as 15: QEMU's exit status is (status << 1 | 1) & 0xff (mica's is the byte itself).
qboot sandbox-qemu-signal port '' -- /bin/sh -c 'kill -TERM $$'
expect sandbox-qemu-signal "status 143 (SIGTERM; QEMU shows 15)" test "$rc" = 15

# What the command leaves running does not keep the VM up.
qboot sandbox-qemu-orphans port '' -- /bin/sh -c 'sleep 600 & echo started; exit 3'
expect sandbox-qemu-orphans "status 3 with a sleep 600 left behind" test "$rc" = 3 && out_is sandbox-qemu-orphans started

# A cwd the guest cannot enter: 125 and one line, the command not run elsewhere.
mkdir "$T/gone" && chown 1000:1000 "$T/gone"
AS=1000:1000:1000 CWD=$T/gone BEFORE_BOOT='rmdir "$T/gone"' qboot sandbox-qemu-cwd port '' -- /bin/echo ran
expect sandbox-qemu-cwd "status 125 and one line" test "$rc" = 125 -a \
	"$(cat "$OUT/sandbox-qemu-cwd.err" 2>/dev/null)" = "mica sandbox: cannot enter $T/gone: No such file or directory" \
	-a ! -s "$OUT/sandbox-qemu-cwd.out"

# The terminal mode: hvc0 as stdin/stdout/stderr and controlling terminal, 24x80, cooked.
qboot sandbox-qemu-tty tty '' -- /bin/sh -c 'tty; stty size; stty -a | grep -o " icanon" ; exec 3</dev/tty && echo ctty; exit 4'
expect sandbox-qemu-tty "status 4, hvc0 as the controlling terminal, 24x80 (got: $(tr '\n' '|' <"$OUT/sandbox-qemu-tty.out" 2>/dev/null))" \
	test "$rc" = 4 && out_is sandbox-qemu-tty "/dev/hvc0
24 80
 icanon
ctty"

# No command: the caller's $SHELL, interactive, reading the commands from stdin.
SHELL=/bin/sh qboot sandbox-qemu-shell port 'echo from-shell\nexit 5\n'
expect sandbox-qemu-shell "status 5 from \$SHELL -i" test "$rc" = 5 && out_is sandbox-qemu-shell from-shell
