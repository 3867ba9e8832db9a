#!/usr/bin/env bash
# Linux without ACPI (--acpi off). The MP table gives the kernel its CPUs and the PCI interrupt
# routing (pci=nomsi: virtio-pci on INTx through the IOAPIC), mica passes acpi=off (no "RSDP was
# not found" complaint), and virtio-mmio devices are refused for Linux (a kernel finds them only
# in ACPI tables) but not for the test guest, which reads the layout from its boot-info FDT.
#
# Debian's cloud kernel has no MP-table parser (X86_MPPARSE=n); its generic kernel (the one
# scripts/with-kvm fetched) has. Its initramfs is build/linux's with this kernel's virtio modules
# laid over the cloud kernel's: a second cpio archive appended to the first (later files win).
# For contrast, first the same INTx path with ACPI (the _PRT) on the cloud kernel.
# Run from kvm.sh, or alone: scripts/with-kvm tests/integration/linux_noacpi.sh
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

# The test guest keeps virtio-mmio without ACPI: its devices are in the boot-info FDT.
run_mica guest-noacpi-mmio run --kernel "$GUEST" --mem 64M --acpi off --rng \
	--cmdline "tests=virtio_rng"
expect guest-noacpi-mmio "the test guest's virtio_rng passes over mmio with --acpi off" \
	test "$rc" = 0 -a -n "$(grep '^ok [0-9]* - virtio_rng$' "$OUT/guest-noacpi-mmio.txt")"

if [ ! -f build/linux/vmlinuz ] || [ ! -f build/linux/initramfs.cpio.gz ]; then
	fail linux-noacpi "build/linux is missing: scripts/get-linux-guest did not run"
	exit 1
fi

# With ACPI: blk and rng over virtio-pci INTx (pci=nomsi) as the _PRT routes it.
img=$(mktemp /tmp/mica-disk.XXXXXX) && truncate -s 16M "$img"
LIMIT=300 run_mica linux-acpi-intx run --kernel build/linux/vmlinuz \
	--initrd build/linux/initramfs.cpio.gz --mem 256M --transport pci --disk "$img" --rng \
	--timeout 240 \
	--cmdline "console=ttyS0 quiet loglevel=1 pci=nomsi mica.test=blk,rng"
rm -f "$img"
expect linux-acpi-intx "blk and rng passed over virtio-pci INTx routed by the _PRT (status 0)" \
	test "$rc" = 0 -a -n "$(grep 'mica-linux: 0 check(s) failed' "$OUT/linux-acpi-intx.txt")" \
	-a -n "$(grep 'mica-linux: ok blk' "$OUT/linux-acpi-intx.txt")" \
	-a -n "$(grep 'mica-linux: ok rng' "$OUT/linux-acpi-intx.txt")"
grep 'mica-linux: not ok' "$OUT/linux-acpi-intx.txt" | sed 's/^/# /'

generic=$(ls build/with-kvm/pkg/linux-image-*/boot/vmlinuz-* 2>/dev/null | head -n 1)
if [ -z "$generic" ]; then
	skip linux-noacpi "no generic Debian kernel in build/with-kvm/pkg (scripts/with-kvm gets it)"
	exit 0
fi
kroot=${generic%/boot/*} kver=${generic##*/vmlinuz-}
initrd=$OUT/linux-generic-initramfs.cpio.gz
if ! [ "$initrd" -nt build/linux/initramfs.cpio.gz ] || ! [ "$initrd" -nt "$generic" ]; then
	stage=$(mktemp -d /tmp/mica-initrd.XXXXXX)
	mkdir -p "$stage/lib/modules"
	modprobe -d "$kroot" -S "$kver" --show-depends -a virtio_pci virtio_blk virtio_rng |
		awk '$1 == "insmod" && !seen[$2]++ {print $2}' >"$stage/list"
	while read -r ko; do
		cp "$ko" "$stage/lib/modules/" && echo "${ko##*/}" >>"$stage/lib/modules/order"
	done <"$stage/list"
	{ cat build/linux/initramfs.cpio.gz
	  (cd "$stage" && find lib | cpio -o -H newc -R 0:0 --quiet | gzip -1); } >"$initrd.tmp" &&
		mv "$initrd.tmp" "$initrd"
	rm -rf "$stage"
fi

# Virtio-mmio devices with a Linux kernel and no ACPI: refused, in one line, before the boot.
refusal="--acpi off: Linux finds virtio-mmio devices only through ACPI tables; use --transport pci"
refusal="$refusal or leave ACPI on"
LIMIT=120 run_mica linux-noacpi-mmio run --kernel "$generic" --initrd "$initrd" --mem 256M \
	--acpi off --rng --timeout 100 --cmdline "console=ttyS0 quiet"
expect linux-noacpi-mmio-refused "status 2 and one line naming --acpi off and the fix" \
	test "$rc" = 2 -a "$(wc -l <"$OUT/linux-noacpi-mmio.err")" = 1 \
	-a -n "$(grep -F -e "$refusal" "$OUT/linux-noacpi-mmio.err")"

# One boot: 2 CPUs from the MP table; blk and rng over virtio-pci on INTx (pci=nomsi), which
# needs the MP table's PCI interrupt entries; no ACPI error (without loglevel=1: it would show).
img=$(mktemp /tmp/mica-disk.XXXXXX) && truncate -s 16M "$img"
LIMIT=300 run_mica linux-noacpi-pci run --kernel "$generic" --initrd "$initrd" --mem 256M --cpus 2 \
	--acpi off --transport pci --disk "$img" --rng --timeout 240 \
	--cmdline "console=ttyS0 quiet pci=nomsi mica.test=cpus,blk,rng mica.cpus=2"
rm -f "$img"
expect linux-noacpi-pci "all checks passed in the guest (status 0)" \
	test "$rc" = 0 -a -n "$(grep 'mica-linux: 0 check(s) failed' "$OUT/linux-noacpi-pci.txt")"
grep 'mica-linux: not ok' "$OUT/linux-noacpi-pci.txt" | sed 's/^/# /'
for t in cpus blk rng; do
	expect "linux-noacpi-pci-$t" "the guest's $t check" has linux-noacpi-pci "mica-linux: ok $t"
done
expect linux-noacpi-no-rsdp "Linux reached /init and printed no ACPI RSDP error" \
	test -n "$(grep 'mica-linux: /init reached' "$OUT/linux-noacpi-pci.txt")" \
	-a -z "$(grep -i 'RSDP' "$OUT/linux-noacpi-pci.txt")"

