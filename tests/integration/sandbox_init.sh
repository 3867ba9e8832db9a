#!/usr/bin/env bash
# The guest init of `mica sandbox` (sandbox/init/), booted without `mica sandbox`: the unit
# test's helper writes the initramfs the command would build (test_sandbox_initramfs --write),
# and `mica run` boots it on Debian's cloud kernel with a virtio console (its hvc0 is the
# job's terminal) but no virtio-fs device. The init must load its modules from the initramfs,
# open hvc0, then fail at mounting the root share with one line, and report 125 through the
# debug-exit port. Quiet: that line is the init's only output; with the job's verbose flag it
# says each step (each module, in load order).
# Run from kvm.sh, or alone: scripts/with-kvm tests/integration/sandbox_init.sh
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

helper=${SANDBOX_HELPER:-build/obj/tests/test_sandbox_initramfs}
if [ ! -x "$helper" ] || [ ! -f build/linux/vmlinuz ]; then
	fail sandbox-init "$helper or build/linux/vmlinuz is missing (make unit; scripts/get-linux-guest)"
	exit 1
fi

line='mica sandbox: init: mounting mica-root (virtiofs) on /mnt/lower: Invalid argument'
boot() { # NAME [helper options]
	local name=$1
	shift
	if ! "$helper" --write "$OUT/$name.cpio" build/linux/vmlinuz "$@" -- /bin/true \
		>"$OUT/$name.build" 2>&1; then
		rc=x
		return
	fi
	LIMIT=200 run_mica "$name" run --kernel build/linux/vmlinuz --initrd "$OUT/$name.cpio" \
		--cmdline 'console=ttyS0 quiet loglevel=1 panic=-1 rdinit=/init' --mem 256M \
		--console virtio --timeout 150
	rm -f "$OUT/$name.cpio"
}

boot sandbox-init-quiet
n=$(grep -c '^mica sandbox:' "$OUT/sandbox-init-quiet.txt")
expect sandbox-init-no-root-share "status 125 and one line: '$line' (got $n lines)" \
	test "$rc" = 125 -a "$n" = 1 -a -n "$(grep -Fx "$line" "$OUT/sandbox-init-quiet.txt")"

boot sandbox-init-verbose -v
order=$(sed -n 's/^mica sandbox: init: loading kernel module \(.*\)\.ko$/\1/p' \
	"$OUT/sandbox-init-verbose.txt" | tr '\n' ' ')
want='virtio_pci_legacy_dev virtio_pci_modern_dev virtio_ring virtio virtio_pci virtio_mmio virtio_console fuse virtiofs overlay '
expect sandbox-init-modules "each module loaded in dependency order, the streams on hvc0, then the mount failed (loaded: $order)" \
	test "$rc" = 125 -a "$order" = "$want" \
	-a -n "$(grep -Fx 'mica sandbox: init: standard streams: tty, tty, tty' "$OUT/sandbox-init-verbose.txt")" \
	-a -n "$(grep -Fx "$line" "$OUT/sandbox-init-verbose.txt")" \
	-a -n "$(grep -Fx 'mica sandbox: init: reporting status 125' "$OUT/sandbox-init-verbose.txt")"
