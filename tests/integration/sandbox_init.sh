#!/usr/bin/env bash
# The guest init of `mica sandbox` (sandbox/init/) when the host's files are not there:
# `mica sandbox --debug-no-shares` boots Debian's cloud kernel with everything but the virtio-fs
# devices. The init must load its modules from the initramfs, report that it is ready for a job
# (the point a warm sandbox snapshots), read the job from the port mica.job, open the streams
# (the named ports: stdin and stdout are no terminal here), then fail at mounting the root
# share with one line on CMD's stderr, and report 125 through the debug-exit port. Quiet: that
# line is the only output; with -v (the job's verbose flag; the kernel's messages go to --log)
# it says each step, each module in load order.
# Run from kvm.sh, or alone: scripts/with-kvm tests/integration/sandbox_init.sh
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

if [ ! -f build/linux/vmlinuz ]; then
	fail sandbox-init "build/linux/vmlinuz is missing (scripts/get-linux-guest)"
	exit 1
fi

line='mica sandbox: init: mounting mica-root (virtiofs) on /mnt/lower: Invalid argument'
boot() { # NAME [mica sandbox options]
	local name=$1
	shift
	LIMIT=200 run_mica "$name" sandbox --kernel build/linux/vmlinuz --mem 256M --timeout 150 \
		--debug-no-shares "$@" -- /bin/true
}

boot sandbox-init-quiet
n=$(cat "$OUT/sandbox-init-quiet.txt" "$OUT/sandbox-init-quiet.err" | grep -c .)
expect sandbox-init-no-root-share "status 125 and one line: '$line' (got $n lines)" \
	test "$rc" = 125 -a "$n" = 1 -a -n "$(grep -Fx "$line" "$OUT/sandbox-init-quiet.err")"

boot sandbox-init-verbose -v --log "$OUT/sandbox-init-verbose.log"
order=$(sed -n 's/^mica sandbox: init: loaded kernel module \(.*\)\.ko$/\1/p' \
	"$OUT/sandbox-init-verbose.err" | tr '\n' ' ')
want='virtio_pci_legacy_dev virtio_pci_modern_dev virtio_ring virtio virtio_pci virtio_mmio virtio_console fuse virtiofs overlay '
expect sandbox-init-modules "each module loaded in dependency order, the job read (verbose), the streams on the ports, then the mount failed (loaded: $order)" \
	test "$rc" = 125 -a "$order" = "$want" \
	-a -n "$(grep -Fx 'mica sandbox: init: standard streams: port, port, port' "$OUT/sandbox-init-verbose.err")" \
	-a -n "$(grep -Fx "$line" "$OUT/sandbox-init-verbose.err")" \
	-a -n "$(grep -Fx 'mica sandbox: init: reporting status 125' "$OUT/sandbox-init-verbose.err")"
