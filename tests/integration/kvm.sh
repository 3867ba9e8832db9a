#!/usr/bin/env bash
# Integration tests that need KVM: mica boots the test guest and Linux, and every check is on
# what the guest printed and how mica ended. tests/run-all runs this once, through
# scripts/with-kvm, so the whole file shares one inner VM where the host has no /dev/kvm.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

# The test guest runs its self-tests; their TAP lines reach stdout; all passing means status 0.
run_mica guest-all run --kernel "$GUEST" --mem 64M --cmdline "tests=all"
expect guest-boots-and-passes "status 0, TAP lines on stdout, no failures" \
	test "$rc" = 0 -a -n "$(grep '^ok [0-9]* - serial' "$OUT/guest-all.txt")" \
	-a -z "$(grep '^not ok' "$OUT/guest-all.txt")"
for t in serial rtc cpus bus; do
	expect "guest-test-$t" "the guest's $t test passed" has guest-all "^ok [0-9]* - $t"
done
sed -n 's/^/# guest: /p' "$OUT/guest-all.txt" | grep -v '^# guest: ok' | head -n 20

# A reported status becomes mica's exit status.
run_mica guest-status3 run --kernel "$GUEST" --mem 64M --cmdline "tests=serial status=3"
expect guest-status-3 "the guest reported 3, mica must exit 3" \
	test "$rc" = 3 -a -n "$(grep '^ok [0-9]* - serial' "$OUT/guest-status3.txt")"

# A triple fault ends the VM with status 125 and a register dump.
run_mica guest-triplefault run --kernel "$GUEST" --mem 64M --cmdline "tests=triplefault"
expect guest-triple-fault "status 125, a triple-fault message and registers" \
	test "$rc" = 125 -a -n "$(grep 'triple-faulted' "$OUT/guest-triplefault.err")" \
	-a -n "$(grep ' rip [0-9a-f]\{16\}' "$OUT/guest-triplefault.err")"

# --timeout ends a spinning guest with 124, promptly (generous bound: emulation is slow).
run_mica guest-timeout run --kernel "$GUEST" --mem 64M --cmdline "tests=spin" --timeout 2
expect guest-timeout "status 124 within 30 s (took ${secs}s)" \
	test "$rc" = 124 -a "$(echo "$secs < 30" | bc)" = 1

# Two vCPUs both run: the guest lists each vCPU's APIC ID.
run_mica guest-smp run --kernel "$GUEST" --mem 64M --cpus 2 --cmdline "tests=cpus"
expect guest-two-cpus "status 0 and APIC IDs 0 and 1 reported" \
	test "$rc" = 0 -a -n "$(grep '^# cpu 0 apic-id 0' "$OUT/guest-smp.txt")" \
	-a -n "$(grep '^# cpu 1 apic-id 1' "$OUT/guest-smp.txt")"

# Input on stdin reaches the guest's UART receiver. The line is sent once the guest says it
# listens: input that arrives earlier is flushed by the guest's own FIFO reset, as on hardware.
name=guest-serial-input
type_when "$name" 'serial_input: waiting' 'mica-input-42' \
	run --kernel "$GUEST" --mem 64M --cmdline "tests=serial_input"
expect $name "the guest echoes the line mica read from stdin" \
	test "$rc" = 0 -a -n "$(grep '^# received: mica-input-42' "$OUT/$name.txt")"

# The test guest without its MICA note is just an ELF with a PVH note: mica then starts it
# through the PVH entry (32-bit, hvm_start_info), as QEMU does; it finds its devices over PCI.
pvhguest=$(mktemp /tmp/mica-guest.XXXXXX)
python3 -c "import sys; d=bytearray(open(sys.argv[1],'rb').read()); i=d.find(b'MICA\\0'); d[i:i+4]=b'MICB'; open(sys.argv[2],'wb').write(d)" "$GUEST" "$pvhguest"
run_mica guest-pvh run --kernel "$pvhguest" --mem 64M --rng --transport pci --cmdline "tests=serial,rtc,virtio_rng"
expect guest-pvh "booted through PVH: start_info found, tests pass" \
	test "$rc" = 0 -a -n "$(grep '^# boot: PVH, start_info' "$OUT/guest-pvh.txt")" \
	-a -n "$(grep '^ok [0-9]* - virtio_rng' "$OUT/guest-pvh.txt")"
rm -f "$pvhguest"

# At a terminal: typed keys reach the guest in raw mode, Ctrl-A x quits with status 0, and the
# terminal's settings are restored either way (ptyrun exits 99 if not).
pty() { python3 tests/integration/ptyrun.py "$@"; }
pty "$OUT/pty-typing.out" 90 'wait=serial_input: waiting' 'send=typed-at-a-tty\r' -- \
	"$MICA" run --kernel "$GUEST" --mem 64M --cmdline "tests=serial_input"
rc=$?
tr -d '\r' <"$OUT/pty-typing.out" >"$OUT/pty-typing.txt"
expect pty-typing "keys typed at a terminal reach the guest; terminal restored" \
	test "$rc" = 0 -a -n "$(grep '^# received: typed-at-a-tty' "$OUT/pty-typing.txt")"
pty "$OUT/pty-ctrl-a-x.out" 90 'wait=serial_input: waiting' 'send=\x01x' -- \
	"$MICA" run --kernel "$GUEST" --mem 64M --cmdline "tests=serial_input"
rc=$?
tr -d '\r' <"$OUT/pty-ctrl-a-x.out" >"$OUT/pty-ctrl-a-x.txt"
expect pty-ctrl-a-x "Ctrl-A x ends mica with status 0; terminal restored" \
	test "$rc" = 0 -a -n "$(grep 'terminated by Ctrl-A x' "$OUT/pty-ctrl-a-x.txt")"

# virtio over each transport: every device test passes in the guest (including the hostile
# ones, which mica reports on stderr and survives), console output reaches stdout, and no queue
# notification went through mica's userspace (mica's own counters, --stats-json).
virtio_tests="virtio_rng virtio_rng_indirect virtio_console_out virtio_negotiation virtio_reset
	virtio_event_idx virtio_hostile_notify_early virtio_hostile_loop virtio_hostile_beyond_ram
	virtio_hostile_wrap virtio_hostile_nested_indirect virtio_hostile_readonly
	virtio_hostile_avail_jump"
pci_tests="pci_enum pci_bars pci_caps virtio_msix virtio_intx pci_hostile_beyond_bar
	pci_hostile_readonly_common pci_hostile_queue_size_after_enable pci_hostile_queue_select_oob
	pci_hostile_msix_vector_oob pci_hostile_mask_pending"
for variant in mmio mmio-legacy pci pci-transitional pci-transitional:legacy; do
	transport=${variant%%:*}
	extra=""
	[ "$variant" = pci-transitional:legacy ] && extra=" virtio_pci=legacy"
	name=virtio-${variant/:/-}
	run_mica $name run --kernel "$GUEST" --mem 64M --rng --console virtio --transport $transport \
		--stats-json "$OUT/$name.json" --cmdline "tests=all$extra"
	expect $name "status 0 with every guest test passing" \
		test "$rc" = 0 -a -z "$(grep '^not ok' "$OUT/$name.txt")"
	tests=$virtio_tests
	case $transport in pci*) tests="$tests $pci_tests" ;; esac
	for t in $tests; do
		expect "$name-$t" "guest test $t passed" has $name "^ok [0-9]* - $t\$"
	done
	expect "$name-console-output" "the guest's virtio-console line reached stdout" \
		has $name "^virtio-console: hello from the guest"
	expect "$name-hostile-reported" "mica reported the guest's rule breaks and kept running" \
		test -n "$(grep -c 'guest error: .*device needs reset' "$OUT/$name.err" | grep -v '^0$')"
	expect "$name-no-userspace-notify" "notifications handled (>0), none through userspace" \
		test "$(grep -o '"notifies_userspace": [0-9]*' "$OUT/$name.json" | grep -vc ': 0$')" = 0 \
		-a -n "$(grep -o '"notifies": [1-9][0-9]*' "$OUT/$name.json")"
done

# virtio-console input: a line on mica's stdin reaches the guest through the receiveq.
name=virtio-console-in
type_when "$name" 'virtio_console_in: waiting' 'through-the-receiveq' \
	run --kernel "$GUEST" --mem 64M --console virtio --cmdline "tests=virtio_console_in"
expect $name "the guest received the line through virtio-console" \
	test "$rc" = 0 -a -n "$(grep '^# received: through-the-receiveq' "$OUT/$name.txt")"

# A terminal resize reaches the guest as a virtio-console config change (new size, new
# generation, a config interrupt).
pty "$OUT/virtio-console-size.out" 90 'wait=virtio_console_size: waiting' 'resize=132x43' -- \
	"$MICA" run --kernel "$GUEST" --mem 64M --console virtio --cmdline "tests=virtio_console_size"
rc=$?
tr -d '\r' <"$OUT/virtio-console-size.out" >"$OUT/virtio-console-size.txt"
expect virtio-console-size "the guest saw 132x43 with a new config generation" \
	test "$rc" = 0 -a -n "$(grep '^# console size: .*132x43' "$OUT/virtio-console-size.txt")"

# Debian's cloud kernel boots to /init, prints the marker, and its status becomes mica's.
if [ -f build/linux/vmlinuz ] && [ -f build/linux/initramfs.cpio.gz ]; then
	LIMIT=300 run_mica linux-init run --kernel build/linux/vmlinuz \
		--initrd build/linux/initramfs.cpio.gz --mem 256M --timeout 240 \
		--cmdline "console=ttyS0 quiet loglevel=1 i8042.noaux i8042.nopnp mica.status=7"
	expect linux-reaches-init "marker printed and status 7" \
		test "$rc" = 7 -a -n "$(grep 'mica-linux: /init reached' "$OUT/linux-init.txt")"

	# Power-off and reboot from inside Linux end mica cleanly (ACPI sleep control register,
	# FADT reset register), with status 0 and the reason in --stats-json.
	# Reboot by Linux's default method (with hardware-reduced ACPI and no EFI: a real-mode
	# jump to the BIOS reset vector) and by the explicit ones.
	for how in poweroff:poweroff:default reboot:reset:default reboot:reset:acpi reboot:reset:kbd; do
		method=${how##*:} how=${how%:*}
		name=linux-${how%%:*}-$method
		extra=""
		[ "$method" = default ] || extra=" reboot=$method"
		LIMIT=300 run_mica $name run --kernel build/linux/vmlinuz --initrd build/linux/initramfs.cpio.gz \
			--mem 256M --timeout 240 --stats-json "$OUT/$name.json" \
			--cmdline "console=ttyS0 quiet loglevel=1 mica.halt=${how%%:*}$extra"
		expect $name "status 0, reason ${how#*:}" \
			test "$rc" = 0 -a -n "$(grep "\"reason\": \"${how#*:}\"" "$OUT/$name.json")"
	done

	# --acpi off: an MP table (and virtio_mmio.device= entries). Debian's cloud kernel has no
	# MP-table parser, its generic kernel (the one scripts/with-kvm fetched) has: two CPUs.
	generic=$(ls build/with-kvm/pkg/linux-image-*/boot/vmlinuz-* 2>/dev/null | head -n 1)
	if [ -n "$generic" ]; then
		LIMIT=300 run_mica linux-mptable run --kernel "$generic" --initrd build/linux/initramfs.cpio.gz \
			--mem 256M --cpus 2 --acpi off --timeout 240 \
			--cmdline "console=ttyS0 quiet loglevel=1 mica.test=cpus mica.cpus=2"
		expect linux-mptable "two CPUs online from the MP table" \
			test "$rc" = 0 -a -n "$(grep 'mica-linux: cpus online 2' "$OUT/linux-mptable.txt")"
	else
		skip linux-mptable "no generic Debian kernel under build/with-kvm/pkg (scripts/with-kvm fetches it where /dev/kvm is missing)"
	fi

	# The same kernel as an uncompressed vmlinux: through its PVH entry note, and (notes
	# stripped) through the 64-bit boot protocol with a built boot_params.
	if [ -f build/linux/vmlinux ]; then
		nopvh=$(mktemp /tmp/mica-vmlinux.XXXXXX)
		objcopy --remove-section .notes build/linux/vmlinux "$nopvh"
		for variant in pvh:build/linux/vmlinux 64bit:$nopvh; do
			name=linux-vmlinux-${variant%%:*}
			LIMIT=300 run_mica $name run --kernel "${variant#*:}" --initrd build/linux/initramfs.cpio.gz \
				--mem 256M --cpus 2 --timeout 240 --cmdline "console=ttyS0 quiet loglevel=1 mica.status=9"
			expect $name "a vmlinux ELF reaches /init and reports 9" \
				test "$rc" = 9 -a -n "$(grep 'mica-linux: /init reached' "$OUT/$name.txt")"
		done
		rm -f "$nopvh"
	else
		fail linux-vmlinux "build/linux/vmlinux is missing: scripts/get-linux-guest did not extract it"
	fi

	# Linux drives every device, over each transport, with 1 and 2 vCPUs: rng, console (hvc0
	# to stdout), blk (a pattern the host then finds in the image), balloon (the host inflates
	# it through the control socket; the guest sees its free memory drop).
	for variant in mmio:1 pci:2; do
		transport=${variant%%:*} cpus=${variant##*:}
		name=linux-devices-$transport
		img=$(mktemp /tmp/mica-disk.XXXXXX) && truncate -s 64M "$img"
		sock=$(mktemp -u /tmp/mica-ctl.XXXXXX)
		# net: the guest takes a DHCP lease from slirp, talks TCP to a server here (slirp's
		# 10.0.2.2 is this host's loopback) and answers on port 8080, forwarded from here.
		fwd_port=$((30000 + RANDOM % 10000))
		rm -f "$OUT/$name.port" "$OUT/$name.tcp"
		python3 tests/integration/tcpserve.py "$OUT/$name.port" "$OUT/$name.tcp" &
		spid=$!
		for _ in $(seq 300); do [ -s "$OUT/$name.port" ] && break; sleep 0.1; done
		tcp_port=$(cat "$OUT/$name.port" 2>/dev/null)
		timeout -k 5 300 "$MICA" run --kernel build/linux/vmlinuz --initrd build/linux/initramfs.cpio.gz \
			--mem 256M --cpus $cpus --transport $transport --rng --console virtio --balloon \
			--disk "$img" --net user,hostfwd=tcp:127.0.0.1:$fwd_port-:8080 --control "$sock" \
			--timeout 240 --cmdline "console=ttyS0 quiet loglevel=1 mica.test=cpus,rng,console,blk,net,balloon mica.cpus=$cpus mica.tcp=$tcp_port" \
			>"$OUT/$name.out" 2>"$OUT/$name.err" </dev/null &
		pid=$!
		for _ in $(seq 1200); do
			grep -q 'balloon waiting' "$OUT/$name.out" 2>/dev/null && break
			kill -0 $pid 2>/dev/null || break
			sleep 0.1
		done
		timeout 20 python3 tests/integration/tcpget.py $fwd_port >"$OUT/$name.fwd" 2>&1
		python3 tests/integration/control.py "$sock" balloon 32 >"$OUT/$name.ctl" 2>&1
		wait $pid; rc=$?
		kill $spid 2>/dev/null; wait $spid 2>/dev/null
		tr -d '\r' <"$OUT/$name.out" >"$OUT/$name.txt"
		expect $name "all device checks passed in the guest (status 0)" \
			test "$rc" = 0 -a -n "$(grep 'mica-linux: 0 check(s) failed' "$OUT/$name.txt")"
		grep 'mica-linux: not ok' "$OUT/$name.txt" | sed 's/^/# /'
		for t in cpus rng console blk net balloon; do
			expect "$name-$t" "the guest's $t check" has $name "mica-linux: ok $t"
		done
		expect "$name-dhcp" "a DHCP lease of 10.0.2.15 from slirp" has $name "mica-linux: lease 10.0.2.15/"
		expect "$name-tcp-out" "the host's server heard the guest" grep -q '^ping-from-guest$' "$OUT/$name.tcp"
		expect "$name-hostfwd" "a connection to the forwarded port reached the guest" \
			grep -q '^hello-from-guest-8080$' "$OUT/$name.fwd"
		expect "$name-hvc0" "hvc0 output reached mica's stdout" has $name "mica-linux: hello through hvc0"
		pat=$(sed -n 's/.*mica-linux: blk pattern //p' "$OUT/$name.txt" | head -n 1)
		expect "$name-image" "the guest's pattern is in the image on the host" \
			test -n "$pat" -a "$(dd if="$img" bs=512 skip=8 count=1 2>/dev/null | head -n 1 | tr -d '\0')" = "$pat"
		expect "$name-balloon-control" "the control socket accepted the target" \
			grep -q '^ok target 32 MiB' "$OUT/$name.ctl"
		rm -f "$img" "$sock"
	done
else
	fail linux-reaches-init "build/linux is missing: scripts/get-linux-guest did not run"
fi

# The test guest's own block and balloon drivers, over every transport.
tests/integration/guest_devices.sh
tests/integration/guest_net.sh
