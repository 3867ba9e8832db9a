#!/usr/bin/env bash
# Snapshot and restore of Linux (issue #14) with virtio-blk, virtio-net (slirp), virtio-rng and
# a console: the initramfs's mica.snap mode (scripts/get-linux-guest) takes a DHCP lease, writes
# 16 KiB of random bytes to /dev/vda, says "snapshot ready" and waits for a console line;
# `snapshot NAME stop` saves it; a new mica --restore's it (the disk a copy taken right after)
# and the line "go EPOCH PORT" is typed. The restored guest checks its wall clock against the
# host's EPOCH (within 5 s, and the restore comes at least 8 s after the snapshot, so a clock
# that stood still while the VM was saved fails), reads the bytes back from the device (direct
# I/O), keeps its address, talks TCP to a server here on PORT, renews its lease, writes and
# reads back another 16 KiB. The host finds both patterns in the image. A restore with another
# --cpus is refused. Two variants: 1 vCPU over virtio-mmio with the serial console and the
# clocksource Linux picks here (kvm-clock in a nested VM), 2 vCPUs over virtio-pci (MSI-X) with
# the line typed into virtio-console (hvc0) and the TSC as clocksource (Linux's choice where the
# TSC is invariant: the restore must move the TSC on, not only kvmclock).
# After a restore under scripts/with-kvm, the guest's user-space port write to the debug-exit
# port faults (QEMU TCG's I/O permission check wants the TSS type "available", KVM restores it
# "busy"), so its init powers off instead, always with status 0: "snapshot ok" is the verdict.
# Needs KVM (scripts/with-kvm); kvm.sh calls it.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

KERNEL=build/linux/vmlinuz INITRD=build/linux/initramfs.cpio.gz
if [ ! -f $KERNEL ] || [ ! -f $INITRD ]; then
	fail linux-snapshot "build/linux is missing: scripts/get-linux-guest did not run"
	exit 0
fi

# In /tmp: the FIFOs and the control socket need a local file system (not the 9p share of
# scripts/with-kvm's project tree).
DIR=$(mktemp -d /tmp/mica-linux-snapshot.XXXXXX)
pid= spid=
trap 'kill $pid $spid 2>/dev/null; rm -rf "$DIR"' EXIT
GAP=8 # seconds at least between the snapshot and the restore

# md5_at IMG: the md5 of the 16 KiB at 4 KiB block $2 of IMG (the guest's snap_md5).
md5_at() { dd if="$1" bs=4096 skip="$2" count=4 2>/dev/null | md5sum | cut -d' ' -f1; }

# start_mica OUTNAME ARGS...: mica with stdin a FIFO held open on fd 7, in the background ($pid).
start_mica() {
	local name=$1
	shift
	rm -f "$DIR/in" && mkfifo "$DIR/in"
	timeout -k 5 300 "$MICA" run "$@" <"$DIR/in" >"$OUT/$name.out" 2>"$OUT/$name.err" &
	pid=$!
	exec 7>"$DIR/in"
}
# finish_mica OUTNAME: waits for mica; $rc, $OUT/OUTNAME.txt.
finish_mica() {
	{ wait $pid; } 2>/dev/null
	rc=$?
	pid=
	exec 7>&-
	tr -d '\r' <"$OUT/$1.out" >"$OUT/$1.txt"
}

# variant NAME CPUS TRANSPORT CONSOLE MODE OTHER_CPUS [KERNEL ARGS]
variant() {
	local name=$1 cpus=$2 transport=$3 console=$4 mode=$5 other=$6 kargs=${7:-} reply t0 sum1 sum2 line
	local img=$DIR/$name.img
	local devs=(--transport "$transport" --console "$console" --rng --disk "$img" --net user --mem 256M)
	truncate -s 8M "$img"

	# 1. Booted, ready, saved and stopped.
	start_mica $name-take --kernel $KERNEL --initrd $INITRD --cpus $cpus "${devs[@]}" --timeout 240 \
		--cmdline "console=ttyS0 quiet loglevel=1 mica.snap=$mode $kargs" \
		--control "$DIR/ctl" --snapshot-dir "$DIR"
	wait_for "$OUT/$name-take.out" 'mica-linux: snapshot (ready|not ok)' 240 $pid
	reply=$(python3 tests/integration/control.py "$DIR/ctl" "snapshot $name stop" 2>&1)
	t0=$SECONDS
	finish_mica $name-take
	expect $name-take "the guest got ready; 'snapshot $name stop' replied '$reply'; mica exits 0" \
		test "${reply#ok snapshot}" != "$reply" -a $rc = 0 -a -s "$DIR/$name" \
		-a -n "$(grep 'mica-linux: snapshot ready' "$OUT/$name-take.txt")"
	grep 'mica-linux: snapshot not ok' "$OUT/$name-take.txt" | sed 's/^/# /'
	sum1=$(sed -n 's/.*mica-linux: snapshot blk1 \([0-9a-f]*\) .*/\1/p' "$OUT/$name-take.txt")
	expect $name-image "the image holds the guest's 16 KiB at 1 MiB (md5 ${sum1:-none})" \
		test -n "$sum1" -a "$(md5_at "$img" 256)" = "$sum1"
	# virtio-blk's identity stamp: a restore needs the disk as it was at the snapshot.
	cp "$img" "$DIR/golden.img"

	# 2. Another vCPU count is refused before any guest runs.
	run_mica $name-other-cpus run --restore "$DIR/$name" --cpus $other "${devs[@]}"
	expect $name-other-cpus "--cpus $other: exit 2, one line naming --cpus, nothing from the guest" \
		test $rc = 2 -a ! -s "$OUT/$name-other-cpus.out" \
		-a "$(grep -c -e '--cpus it was taken with' "$OUT/$name-other-cpus.err")" = 1
	cp "$DIR/golden.img" "$img"

	# 3. Restored: the line typed, the guest's checks, the host's server and image.
	rm -f "$DIR/port" "$DIR/tcp"
	python3 tests/integration/tcpserve.py "$DIR/port" "$DIR/tcp" &
	spid=$!
	wait_for "$DIR/port" . 60
	while ((SECONDS - t0 < GAP)); do nap 0.5; done
	start_mica $name-restore --restore "$DIR/$name" --cpus $cpus "${devs[@]}" --timeout 120
	printf -v line 'go %(%s)T %s' -1 "$(cat "$DIR/port" 2>/dev/null)"
	printf '%s\n' "$line" >&7
	finish_mica $name-restore
	kill $spid 2>/dev/null
	wait $spid 2>/dev/null
	spid=
	expect $name-restore "typed '$line': the restored guest's checks pass (status 0, 'snapshot ok')" \
		test $rc = 0 -a -n "$(grep 'mica-linux: snapshot ok' "$OUT/$name-restore.txt")"
	grep -E 'mica-linux: snapshot (read|not ok)' "$OUT/$name-restore.txt" | sed 's/^/# /'
	expect $name-tcp "the server here heard the restored guest" \
		grep -q '^snapshot-from-guest$' "$DIR/tcp"
	sum2=$(sed -n 's/.*mica-linux: snapshot blk2 \([0-9a-f]*\) .*/\1/p' "$OUT/$name-restore.txt")
	expect $name-image-after "the image holds what the restored guest wrote at 2 MiB (md5 ${sum2:-none})" \
		test -n "$sum2" -a "$(md5_at "$img" 512)" = "$sum2"
	rm -f "$DIR/$name" "$img" "$DIR/golden.img"
}

variant linux-snapshot 1 mmio serial 1 2
variant linux-snapshot-pci-smp 2 pci virtio hvc0 1 "clocksource=tsc tsc=reliable"
