#!/usr/bin/env bash
# The test guest under QEMU (no KVM needed: TCG on the host), booted through its PVH entry by
# scripts/qemu-testguest: the same guest, a second VMM. A test that fails on both VMMs is a
# wrong test; one that fails only here because QEMU differs skips itself in the guest (it
# recognises QEMU by the PVH boot path) and is reported as SKIP with the guest's reason.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

QEMU=${QEMU:-qemu-system-x86_64}
if ! command -v "$QEMU" >/dev/null; then
	skip qemu-available "$QEMU not installed (apt-get install qemu-system-x86)"
	exit 0
fi

# run_qemu NAME [scripts/qemu-testguest args...] -- CMDLINE: like run_mica (stdout in
# $OUT/NAME.txt, stderr in $OUT/NAME.err, status in $rc, seconds in $secs).
run_qemu() {
	local name=$1; shift
	local start end
	start=$(date +%s.%N)
	GUEST="$GUEST" scripts/qemu-testguest --timeout "${LIMIT:-60}" "$@" \
		>"$OUT/$name.out" 2>"$OUT/$name.err" </dev/null
	rc=$?
	end=$(date +%s.%N)
	secs=$(echo "$end - $start" | bc 2>/dev/null || echo 0)
	tr -d '\r' <"$OUT/$name.out" >"$OUT/$name.txt"
}

# guest_test LINE-NAME RUN TEST: reports the guest's own TAP result for TEST in run RUN (a SKIP
# keeps the guest's reason, a failure its reason).
guest_test() {
	local name=$1 run=$2 t=$3 line
	line=$(grep -E "^(not )?ok [0-9]+ - $t( |\$)" "$OUT/$run.txt" | head -n 1)
	case $line in
	"") fail "$name" "no TAP line for $t (status $rc; stderr: $(tail -n 2 "$OUT/$run.err" | tr '\n' ' '))" ;;
	"not ok"*) fail "$name" "guest: ${line#*# }" ;;
	*"# SKIP"*) skip "$name" "guest: ${line#*# SKIP }" ;;
	*) ok "$name" ;;
	esac
}

# The basic tests: PVH entry, command line, memory map, one cpu, serial, rtc, bus.
run_qemu qemu-basic -- tests=serial,rtc,cpus,bus
expect qemu-pvh-boot "status 0, PVH start_info found, command line and TAP on the serial port" \
	test "$rc" = 0 -a -n "$(grep '^# boot: PVH, start_info' "$OUT/qemu-basic.txt")" \
	-a -n "$(grep '^# cmdline: tests=serial,rtc,cpus,bus$' "$OUT/qemu-basic.txt")" \
	-a -n "$(grep '^1\.\.4$' "$OUT/qemu-basic.txt")"
mib=$(sed -n 's/^# mica-testguest: 1 cpu(s), \([0-9]*\) MiB RAM.*/\1/p' "$OUT/qemu-basic.txt")
expect qemu-pvh-memmap "one cpu and ~64 MiB of RAM from the PVH memory map (got '${mib:-none}' MiB)" \
	test "${mib:-0}" -ge 56 -a "${mib:-0}" -le 64
for t in serial rtc cpus bus; do
	guest_test "qemu-guest-$t" qemu-basic $t
done

# The other machine type boots too.
run_qemu qemu-machine-pc --machine pc -- tests=serial,cpus
expect qemu-machine-pc "-M pc: status 0, serial and cpus passed" \
	test "$rc" = 0 -a -n "$(grep '^ok 1 - serial$' "$OUT/qemu-machine-pc.txt")" \
	-a -n "$(grep '^ok 2 - cpus$' "$OUT/qemu-machine-pc.txt")"

# Status: the guest's port 0x501 write comes back from isa-debug-exit through the script.
run_qemu qemu-status3 -- tests=serial status=3
expect qemu-status-3 "the guest reported 3: the script must exit 3" \
	test "$rc" = 3 -a -n "$(grep '^ok 1 - serial$' "$OUT/qemu-status3.txt")"
run_qemu qemu-exception -- tests=exception
expect qemu-exception "a #UD: Bail out! and status 1" \
	test "$rc" = 1 -a -n "$(grep '^Bail out! exception 6 #UD' "$OUT/qemu-exception.txt")"
run_qemu qemu-triplefault -- tests=triplefault
expect qemu-triplefault "no status written (QEMU -no-reboot ends the VM): 125" \
	test "$rc" = 125 -a -n "$(grep 'without a status' "$OUT/qemu-triplefault.err")"
LIMIT=3 run_qemu qemu-timeout -- tests=spin
expect qemu-timeout "a spinning guest: 124 after the 3 s timeout (took ${secs}s)" \
	test "$rc" = 124 -a "$(echo "$secs < 20" | bc)" = 1
run_qemu qemu-bench -- tests=bench
guest_test qemu-bench-skips qemu-bench bench

# virtio over PCI with QEMU's own devices: rng, and a virtio-serial console whose port 0 goes to
# a file. The guest's driver enumerates PCI (there is no device tree under PVH).
virtio_tests="virtio_rng virtio_rng_indirect virtio_console_out virtio_negotiation virtio_reset
	virtio_event_idx"
rm -f "$OUT/qemu-virtio-pci.console"
run_qemu qemu-virtio-pci -device virtio-rng-pci -device virtio-serial-pci \
	-chardev file,id=vcon,path="$OUT/qemu-virtio-pci.console" -device virtconsole,chardev=vcon \
	-- tests=$(echo $virtio_tests | tr ' ' ',')
expect qemu-virtio-pci "the guest ran (status 0 or 1, a plan line)" \
	test "$rc" -le 1 -a -n "$(grep '^1\.\.' "$OUT/qemu-virtio-pci.txt")"
for t in $virtio_tests; do
	guest_test "qemu-virtio-pci-$t" qemu-virtio-pci $t
done
if grep -q '^ok [0-9]* - virtio_console_out$' "$OUT/qemu-virtio-pci.txt"; then
	expect qemu-virtio-pci-console-output "the guest's virtio-console line reached QEMU's chardev" \
		grep -q '^virtio-console: hello from the guest' "$OUT/qemu-virtio-pci.console"
else
	skip qemu-virtio-pci-console-output "virtio_console_out did not pass in the guest"
fi
