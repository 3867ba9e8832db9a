#!/usr/bin/env bash
# Landlock: once setup is done, mica opens only what its options named.
#   landlock-refuses-neighbour  a guest action (the test guest's landlock_probe writes mica's
#                               probe port; --debug-landlock-probe PATH) makes mica open a file
#                               next to the disk image: refused (EACCES) for reading and for
#                               writing, while the guest's disk test on that image passes;
#   landlock-refuses-etc        the same for /etc/hostname, for reading;
#   landlock-allows-image       the same probe on the disk image itself opens it both ways;
#   landlock-off-opens          with --landlock off the probe opens the neighbour file;
#   landlock-all-devices        a boot with every device, --control and --stats-json passes
#                               with Landlock on and writes the JSON.
# Where the kernel has no Landlock, mica says so at -v and the refusals are skipped.
# Needs KVM (scripts/with-kvm).
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

# Images and sockets outside the tree (under scripts/with-kvm the tree is 9p; /tmp is tmpfs).
DIR=$(mktemp -d /tmp/mica-landlock.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
SERIAL=mica-landlock
SECTORS=2048
img=$DIR/disk.img
secret=$DIR/secret.txt
truncate -s $((SECTORS * 512)) "$img"
echo "not for the guest" >"$secret"
blk="--disk $img,serial=$SERIAL"
cmdline="tests=virtio_blk,landlock_probe blk_serial=$SERIAL blk_sectors=$SECTORS"

# probe NAME PATH [mica options...]: the guest's disk test, then the probe of PATH. The probe
# opens on a vCPU thread, whose seccomp filter allows no open at all: --seccomp off isolates
# Landlock here (landlock-probe-under-seccomp below shows the filter stopping it first).
probe() {
	local name=$1 path=$2; shift 2
	run_mica "$name" run --kernel "$GUEST" --mem 64M $blk --debug-landlock-probe "$path" \
		--cmdline "$cmdline" -v --seccomp off "$@"
}
# said NAME PATH HOW RESULT: mica printed the probe's line for PATH.
said() { has_err "$1" "landlock probe: open $2 for $3: $4\$"; }
passed() { test "$rc" = 0 && has "$1" '^ok [0-9]* - virtio_blk$' && has "$1" '^ok [0-9]* - landlock_probe$'; }

probe landlock-refuses-neighbour "$secret"
if ! has_err landlock-refuses-neighbour 'landlock: on (ABI [0-9]*)'; then
	why=$(grep -o 'landlock: not available.*' "$OUT/landlock-refuses-neighbour.err" | head -n 1)
	for t in refuses-neighbour refuses-etc allows-image; do
		skip "landlock-$t" "${why:-mica did not say Landlock is on}"
	done
else
	sed -n 's/.*\(landlock: on (ABI [0-9]*)\).*/# \1/p' "$OUT/landlock-refuses-neighbour.err"
	expect landlock-refuses-neighbour "the disk test passes and $secret is refused both ways" \
		eval 'passed landlock-refuses-neighbour &&
		said landlock-refuses-neighbour "$secret" reading "Permission denied" &&
		said landlock-refuses-neighbour "$secret" writing "Permission denied"'

	probe landlock-refuses-etc /etc/hostname
	expect landlock-refuses-etc "/etc/hostname is refused for reading" \
		eval 'passed landlock-refuses-etc &&
		said landlock-refuses-etc /etc/hostname reading "Permission denied"'

	probe landlock-allows-image "$img"
	expect landlock-allows-image "the disk image named by --disk opens both ways" \
		eval 'passed landlock-allows-image && said landlock-allows-image "$img" reading ok &&
		said landlock-allows-image "$img" writing ok'
fi

probe landlock-off-opens "$secret" --landlock off
expect landlock-off-opens "with --landlock off the probe opens $secret both ways" \
	eval 'passed landlock-off-opens && said landlock-off-opens "$secret" reading ok &&
	said landlock-off-opens "$secret" writing ok'
run_mica landlock-probe-under-seccomp run --kernel "$GUEST" --mem 64M $blk \
	--debug-landlock-probe "$secret" --cmdline "$cmdline"
expect landlock-probe-under-seccomp "with seccomp on, the vCPU's open ends mica first (125)" \
	test "$rc" = 125 -a -n "$(grep 'seccomp: forbidden system call open.* on thread vcpu' \
		"$OUT/landlock-probe-under-seccomp.err")"

name=landlock-all-devices
rm -f "$OUT/$name.json"
run_mica $name run --kernel "$GUEST" --mem 64M --rng --console virtio $blk --net user \
	--balloon --control "$DIR/ctl.sock" --stats-json "$OUT/$name.json" -v \
	--cmdline "tests=virtio_rng,virtio_console_out,virtio_blk,virtio_net blk_serial=$SERIAL blk_sectors=$SECTORS"
expect $name "status 0, every guest test passing, --stats-json written" \
	eval 'test "$rc" = 0 && has $name "^ok [0-9]* - virtio_net$" && ! has $name "^not ok" &&
	python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$OUT/$name.json"'
