#!/usr/bin/env bash
# Snapshot and restore (vmm/vm_snapshot.c, snapshot/): the test guest's `snapshot` test waits
# mid-test for a line on its serial port; `snapshot NAME stop` on --control saves the VM and
# ends it; a new mica --restore's it, the line is typed, and the guest checks its RAM, TSC,
# LAPIC timer, RTC, and that virtio-rng and virtio-blk go on serving the queues it set up before
# (guest/tests_snapshot.c). Also: a snapshot that lets the VM go on, and every way a restore is
# refused (another --mem, devices or disk, a damaged, truncated or foreign file), each exit 2
# with one line and no guest run.
# Needs KVM (scripts/with-kvm); kvm.sh calls it.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

# In /tmp: the FIFO and the control socket need a local file system (not the 9p share of
# scripts/with-kvm's project tree).
DIR=$(mktemp -d /tmp/mica-snapshot.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
head -c $((1 << 20)) /dev/zero >"$DIR/disk.img"
DEVS=(--rng --disk "$DIR/disk.img" --mem 64M)

# take NAME [stop]: runs the guest until it is ready, sends `snapshot NAME [stop]`, and leaves
# the reply in $reply. stdin is a FIFO held open, so the guest's line comes only when written.
take() {
	local name=$1 how=${2:-}
	rm -f "$DIR/in" "$DIR/ctl"
	mkfifo "$DIR/in"
	"$MICA" run --kernel "$GUEST" --cmdline "tests=snapshot" "${DEVS[@]}" --control "$DIR/ctl" \
		--snapshot-dir "$DIR" --timeout 300 <"$DIR/in" >"$OUT/snapshot-$name.out" \
		2>"$OUT/snapshot-$name.err" &
	pid=$!
	exec 7>"$DIR/in"
	wait_for "$OUT/snapshot-$name.out" '^# snapshot: ready' 120 $pid
	reply=$(python3 tests/integration/control.py "$DIR/ctl" "snapshot $name $how" 2>&1)
}

# 1. Saved and stopped: mica exits 0; the file is there.
take s1 stop
{ wait $pid; } 2>/dev/null
rc=$?
exec 7>&-
cp "$OUT/snapshot-s1.err" "$OUT/snapshot-stop.err"
expect snapshot-stop "snapshot s1 stop: reply '$reply', mica exits 0, $DIR/s1 written" \
	test "${reply#ok snapshot}" != "$reply" -a $rc = 0 -a -s "$DIR/s1"
[ -s "$DIR/s1" ] && echo "# snapshot: $(($(stat -c %s "$DIR/s1") >> 10)) KiB file, $(($(stat -c %b "$DIR/s1") / 2)) KiB on disk; paused${reply##*, paused}"
# The disk as the snapshot left it: a restored guest writes to it, and a disk that changed
# since is refused (virtio-blk's identity stamp), so each restore starts from a copy.
cp "$DIR/disk.img" "$DIR/golden.img"

# 2. Restored: the guest goes on from where it waited, with its devices.
STDIN='go\n' LIMIT=300 run_mica snapshot-restore run --restore "$DIR/s1" "${DEVS[@]}" --timeout 240
passed() { [ $rc = 0 ] && matches_all "$OUT/$1.txt" '^ok 1 - snapshot' 'fine after the restore'; }
expect snapshot-restore "the restored guest passes its checks (exit 0, 'ok 1 - snapshot')" \
	passed snapshot-restore
[ $rc = 0 ] || grep -m 3 '^not ok\|^#' "$OUT/snapshot-restore.txt" | sed 's/^/# restore: /'
# The same snapshot again, on a fresh copy of the disk: a restore does not change the file
# (RAM is mapped private). On the disk the first restore wrote to, it is refused.
refused() { # NAME ERE ARGS...: mica exits 2 with ERE on stderr and the guest never printed.
	local name=$1 ere=$2
	shift 2
	run_mica "snapshot-$name" run "$@"
	expect "snapshot-$name" "exit 2 and /$ere/ on stderr, nothing from the guest" \
		test $rc = 2 -a ! -s "$OUT/snapshot-$name.out" -a "$(grep -cE -e "$ere" "$OUT/snapshot-$name.err")" != 0
}
refused disk-changed 'not the disk the snapshot was taken with' --restore "$DIR/s1" "${DEVS[@]}"
cp "$DIR/golden.img" "$DIR/disk.img"
STDIN='go\n' LIMIT=300 run_mica snapshot-restore-again run --restore "$DIR/s1" "${DEVS[@]}" --timeout 240
expect snapshot-restore-again "a second restore of the same file passes too" \
	passed snapshot-restore-again

# 2b. Two vCPUs (the test guest's APs wait in hlt), the devices on virtio-pci with MSI-X.
DEVS_PCI=(--rng --disk "$DIR/disk.img" --mem 64M --cpus 2 --transport pci)
cp "$DIR/golden.img" "$DIR/disk.img"
DEVS_SAVED=("${DEVS[@]}")
DEVS=("${DEVS_PCI[@]}")
take smp stop
{ wait $pid; } 2>/dev/null
exec 7>&-
STDIN='go\n' LIMIT=300 run_mica snapshot-smp-pci run --restore "$DIR/smp" "${DEVS_PCI[@]}" --timeout 240
expect snapshot-smp-pci "2 vCPUs on virtio-pci: reply '$reply'; the restored guest passes" passed snapshot-smp-pci
DEVS=("${DEVS_SAVED[@]}")
cp "$DIR/golden.img" "$DIR/disk.img"

# 3. Saved without stop: the VM goes on (and finishes once the line comes).
take s2
matches "$OUT/snapshot-s2.out" '^# snapshot: ready' && printf 'go\n' >&7
exec 7>&-
{ wait $pid; } 2>/dev/null
rc=$?
cp "$OUT/snapshot-s2.err" "$OUT/snapshot-go-on.err"
expect snapshot-go-on "snapshot s2 (no stop): reply '$reply'; the guest goes on and passes" \
	matches "$OUT/snapshot-s2.out" '^ok 1 - snapshot'

# 4. Refused, before any guest runs: exit 2, one line naming what to change.
cp "$DIR/golden.img" "$DIR/disk.img"
refused mem '--mem it was taken with' --restore "$DIR/s1" --rng --disk "$DIR/disk.img" --mem 128M
refused devices 'other devices|no device for' --restore "$DIR/s1" --disk "$DIR/disk.img" --mem 64M
head -c $((2 << 20)) /dev/zero >"$DIR/big.img"
refused disk-size 'virtio-blk' --restore "$DIR/s1" --rng --disk "$DIR/big.img" --mem 64M
refused kernel-too 'leave out --kernel' --restore "$DIR/s1" --kernel "$GUEST" "${DEVS[@]}"
# A byte of a state section changed (the first section starts at 4096).
cp "$DIR/s1" "$DIR/damaged"
printf '\xff' | dd of="$DIR/damaged" bs=1 seek=4100 conv=notrunc status=none
refused damaged 'damaged|checksum' --restore "$DIR/damaged" "${DEVS[@]}"
head -c 5000 "$DIR/s1" >"$DIR/short"
refused truncated 'truncated|too short' --restore "$DIR/short" "${DEVS[@]}"
refused foreign 'not a usable snapshot' --restore "$GUEST" "${DEVS[@]}"
refused missing 'No such file' --restore "$DIR/none" "${DEVS[@]}"

# 5. Without --snapshot-dir the command says how to turn snapshots on; a name with a '/' is
# refused (the command writes only inside the directory).
rm -f "$DIR/ctl"
"$MICA" run --kernel "$GUEST" --cmdline "tests=snapshot" "${DEVS[@]}" --control "$DIR/ctl" \
	--timeout 60 </dev/null >"$OUT/snapshot-off.out" 2>"$OUT/snapshot-off.err" &
pid=$!
off=$(python3 tests/integration/control.py "$DIR/ctl" "snapshot x" 2>&1)
kill $pid 2>/dev/null
{ wait $pid; } 2>/dev/null
rc=0
expect snapshot-off "without --snapshot-dir: '$off'" test "${off#*--snapshot-dir}" != "$off"
