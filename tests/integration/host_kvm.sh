#!/usr/bin/env bash
# Bad invocations that mica can only refuse once KVM is open (a network backend, a lock held
# by another running mica), in host.sh's table format: status, one line on stderr, nothing on
# stdout, no file left behind (a --stats-json or --control path named is gone again). Runs
# under scripts/with-kvm (kvm.sh calls it; alone: scripts/with-kvm tests/integration/host_kvm.sh).
cd "$(dirname "$0")/../.."
# The cases' directories in /tmp too: 9p (the shared tree) has no UNIX sockets.
BAD_DIR=$(mktemp -d /tmp/mica-bad-cases.XXXXXX)
. tests/integration/lib.sh

require_kvm

# Fixtures in /tmp: image locks need a local file system (9p's flock is not shared).
F=$(mktemp -d /tmp/mica-bad.XXXXXX)
G=$(realpath "$GUEST")
LINUX=$(realpath -m build/linux/vmlinuz)
truncate -s 1M "$F/disk-held" "$F/disk-ro"
chmod 444 "$F/disk-ro"
mkfifo "$F/fifo"
# Corrupt copies of Debian's cloud kernel (see host.sh): before mica checked, the third made the
# guest triple-fault (125) and the zeroed one hang until --timeout.
if [ -f "$LINUX" ]; then
	size=$(stat -c %s "$LINUX")
	head -c $((size / 3)) "$LINUX" >"$F/cloud-third"
	cp "$LINUX" "$F/cloud-zeroed"
	dd if=/dev/zero of="$F/cloud-zeroed" bs=64K seek=$((size / 2 / 65536)) count=1 conv=notrunc status=none
fi
# A running mica holds a disk image: its lock is taken before KVM is opened, so it is held once
# the guest prints anything. (Not probed with flock(1): a probe's shared lock, however short,
# makes the holder's exclusive one fail.)
timeout -k 5 300 "$MICA" run --kernel "$G" --mem 64M --disk "$F/disk-held" --cmdline tests=spin \
	--timeout 280 >"$OUT/bad-holder.out" 2>"$OUT/bad-holder.err" </dev/null &
holder=$!
wait_for "$OUT/bad-holder.out" . 120 ||
	echo "# the holding mica printed nothing in 120 s: $(head -c 300 "$OUT/bad-holder.err")"
# A host port somebody else listens on.
port=$(free_port)
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(60)' $port &
listener=$!
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; nap 0.1; done

bad_table <<'TABLE'
# name                 status  stderr ERE                                          [marks] args
disk-held-by-mica       2  "image .*disk-held is in use by another process"     run --kernel "$G" --mem 64M --disk "$F/disk-held"
hostfwd-port-in-use     2  "net user: cannot forward tcp 127.0.0.1:$port .*Address already in use" run --kernel "$G" --mem 64M --net "user,hostfwd=tcp:127.0.0.1:$port-:80" --stats-json "$T/stats.json" --control "$T/sock"
tap-no-permission       2  "cannot open tap micabad0"             @no-net-admin run --kernel "$G" --mem 64M --net tap,ifname=micabad0 --stats-json /dev/null
mem-more-than-host      2  "--mem 200G: this host has .* of RAM and swap"       run --kernel "$G" --mem 200G
linux-needs-more-mem    2  "the kernel needs more guest RAM than --mem gives it" @needs=$LINUX run --kernel "$LINUX" --mem 8M --stats-json "$T/stats.json"
# Refused before KVM now; here, where KVM would have run the guest, they show what happened
# before: the VM ran (and exited 0, or hung, or triple-faulted) instead.
kernel-fifo             2  "cannot use kernel .*not a regular file"             run --kernel "$F/fifo"
kernel-twice            2  "^mica: --kernel given twice"                        run --kernel "$G" --kernel "$G" --mem 64M --cmdline tests=serial
control-empty           2  "^mica: --control: empty value"                      run --kernel "$G" --mem 64M --cmdline tests=serial --control ""
stats-json-unwritable   2  "--stats-json .*: cannot write there"                run --kernel "$G" --mem 64M --cmdline tests=serial --stats-json "$T/no/such/stats.json"
disk-read-only-no-ro    2  "disk-ro for writing: Permission denied \(add ,ro for a read-only disk\)" @nobody run --kernel "$G" --mem 64M --disk "$F/disk-ro"
bzimage-truncated       2  "truncated or corrupt kernel image"                  @needs=$F/cloud-third run --kernel "$F/cloud-third" --mem 256M --timeout 60
bzimage-zeroed          2  "truncated or corrupt kernel image: its CRC-32"      @needs=$F/cloud-zeroed run --kernel "$F/cloud-zeroed" --mem 256M --timeout 60
bench-missing-kernel    2  "^mica: bench exits: cannot use kernel"              bench exits --kernel "$F/nope" --json "$T/exits.json"
bench-linux-kernel      2  "a Linux kernel, not mica's test guest"              @needs=$LINUX bench exits --kernel "$LINUX" --json "$T/exits.json"
TABLE

kill $listener 2>/dev/null
kill $holder 2>/dev/null
wait 2>/dev/null
rm -rf "$F" "$BAD_DIR"
