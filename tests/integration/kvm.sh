#!/usr/bin/env bash
# Integration tests that need KVM: mica boots the test guest and Linux, and every check is on
# what the guest printed and how mica ended. tests/run-all runs this once, through
# scripts/with-kvm, so the whole file shares one inner VM where the host has no /dev/kvm.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

# The guest's device tests (registry order), run by the boots without and with devices.
virtio_tests="virtio_rng virtio_rng_indirect virtio_console_out virtio_negotiation virtio_reset
	virtio_event_idx virtio_hostile_notify_early virtio_hostile_loop virtio_hostile_beyond_ram
	virtio_hostile_wrap virtio_hostile_nested_indirect virtio_hostile_readonly
	virtio_hostile_avail_jump"
pci_tests="pci_enum pci_bars pci_caps virtio_msix virtio_intx pci_hostile_beyond_bar
	pci_hostile_readonly_common pci_hostile_queue_size_after_enable pci_hostile_queue_select_oob
	pci_hostile_msix_vector_oob pci_hostile_mask_pending"
blk_tests="virtio_blk virtio_blk_errors virtio_blk_mq"
net_tests="virtio_net virtio_net_udp virtio_net_tcp virtio_net_tcp_server virtio_net_norx"

# The test guest runs its self-tests; their TAP lines reach stdout; all passing means status 0.
# Without devices each device test SKIPs, the interactive ones too (no device: they do not wait).
run_mica guest-all run --kernel "$GUEST" --mem 64M \
	--cmdline "tests=all,virtio_balloon,virtio_net_tcp_server net_udp=9 net_tcp=9 net_listen=9"
expect guest-boots-and-passes "status 0, TAP lines on stdout, no failures" \
	test "$rc" = 0 -a -n "$(grep '^ok [0-9]* - serial' "$OUT/guest-all.txt")" \
	-a -z "$(grep '^not ok' "$OUT/guest-all.txt")"
for t in serial rtc cpus bus; do
	expect "guest-test-$t" "the guest's $t test passed" has guest-all "^ok [0-9]* - $t"
done
tap_read "$OUT/guest-all.txt"
want=0 skipped=0 others=""
for t in $virtio_tests $pci_tests $blk_tests $net_tests virtio_balloon; do
	[ $t = pci_enum ] && continue # the host bridge is always there
	want=$((want + 1))
	if [[ ${tap[$t]} == "skip no virtio-"* ]]; then skipped=$((skipped + 1)); else others="$others $t"; fi
done
expect guest-no-devices "each device test SKIPs without its device ($skipped of $want; not:$others)" \
	test $skipped = $want
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

# virtio over each transport, with every device at once (rng, virtio console, blk, net,
# balloon): every device test passes in the guest (the hostile ones included: mica reports them
# on stderr and survives), console output reaches stdout, and every device was notified, none
# through mica's userspace, and interrupted (mica's own counters, --stats-json). Checked from
# the host side too:
#  - blk: the pattern the guest wrote is in the image once mica exits;
#  - balloon (the first test to run): the guest touches 32 MiB and waits; the host asks for
#    16 MiB, the guest inflates 4096 pages (mica's RSS drops by about 16 MiB) and sends
#    statistics, which balloon-stats returns; the guest deflates half;
#  - net (libslirp): a DHCP lease, ARP and ICMP, UDP to an echo server here, TCP to a server
#    here and from here through hostfwd to the guest's server, frames held while no receive
#    buffer is posted; what the servers here received.
# The host's side of balloon, UDP and TCP is one python process for all runs (guest_peers.py):
# in a nested VM, starting python takes seconds. Images and sockets are outside the tree: under
# scripts/with-kvm the tree is 9p, which has no sockets and cannot punch holes; /tmp there is
# tmpfs.
DIR=$(mktemp -d /tmp/mica-kvm.XXXXXX)
peers=
trap 'kill $peers 2>/dev/null; rm -rf "$DIR"' EXIT
SERIAL=mica-serial-1
SECTORS=8192 # 4 MiB
GUEST_PORT=8080
MAC=52:54:00:12:34:56
variants=(mmio mmio-legacy pci pci-transitional pci-transitional:legacy)
names=() outs=()
for v in "${variants[@]}"; do
	names+=("virtio-${v/:/-}")
	outs+=("$OUT/virtio-${v/:/-}.out")
done

# check_images IMG SEED ...: every sector k of each image holds the guest's pattern
# (guest/tests_blk.c); one "IMG ok" or "IMG differs: WHY" line per image.
check_images() {
	python3 - "$@" <<'EOF'
import sys
args = sys.argv[1:]
for path, seed in zip(args[0::2], args[1::2]):
    data, seed, bad = open(path, "rb").read(), int(seed or -1), None
    # Byte i >= 24 of sector k is (k * 13 + i * 7 + seed) & 0xff: 256 possible tails.
    tails = [bytes((b + i * 7) & 0xff for i in range(24, 512)) for b in range(256)]
    for k in range(len(data) // 512):
        s = data[k * 512:(k + 1) * 512]
        want = b"mica-blk sector %08d" % k + tails[(k * 13 + seed) & 0xff]
        if s != want:
            at = next(i for i in range(512) if s[i] != want[i])
            bad = "sector %d differs at byte %d: %r" % (k, at, s[:32])
            break
    print("%s %s" % (path, "differs: " + bad if bad else "ok"))
EOF
}
# devices_ok JSON: every device of --stats-json was notified (notifies > 0), never through
# mica's userspace, and raised interrupts; the five devices are there. Sets devices to a
# summary (DEVICE:NOTIFIES/USERSPACE/INTERRUPTS ...).
devices_ok() {
	local l n=0 bad=0 re='"device": "([a-z-]+)", "notifies": ([0-9]+), .*"notifies_userspace": ([0-9]+), .*"interrupts": ([0-9]+),'
	devices=
	[ -r "$1" ] || return 1
	while IFS= read -r l; do
		[[ $l =~ $re ]] || continue
		n=$((n + 1))
		devices="$devices ${BASH_REMATCH[1]}:${BASH_REMATCH[2]}/${BASH_REMATCH[3]}/${BASH_REMATCH[4]}"
		[ "${BASH_REMATCH[2]}" -gt 0 -a "${BASH_REMATCH[3]}" = 0 -a "${BASH_REMATCH[4]}" -gt 0 ] || bad=1
	done <"$1"
	[ $n = 5 -a $bad = 0 ]
}
# balloon_read N: what guest_peers.py saw of run N's balloon: rss0, rss1, reply, stats.
balloon_read() {
	local k v
	rss0= rss1= reply= stats=
	[ -r "$DIR/balloon-$1" ] || return
	while read -r k v; do
		case $k in rss0 | rss1 | reply | stats) printf -v "$k" '%s' "$v" ;; esac
	done <"$DIR/balloon-$1"
}

rm -f "${outs[@]}"
python3 tests/integration/guest_peers.py "$DIR" "${outs[@]}" &
peers=$!
wait_for "$DIR/ports" . 120
read -r udp_port tcp_port <"$DIR/ports"
images=()
for i in "${!variants[@]}"; do
	variant=${variants[$i]} name=${names[$i]} out=${outs[$i]}
	transport=${variant%%:*}
	extra="" tr_name=$transport mac_opt="" mac_key=""
	case $variant in
	pci-transitional) tr_name=pci ;;
	pci-transitional:legacy) extra=" virtio_pci=legacy" tr_name=pci-legacy ;;
	mmio) mac_opt=",mac=$MAC" mac_key=" net_mac=$MAC" ;;
	esac
	fwd_port=$(free_port)
	img=$DIR/disk-$i.img
	truncate -s $((SECTORS * 512)) "$img"
	: >"$DIR/udp.log" # the logs of this run only
	: >"$DIR/tcp.log"
	cmdline="tests=all,virtio_balloon,virtio_net_tcp_server blk_serial=$SERIAL blk_sectors=$SECTORS"
	"$MICA" run --kernel "$GUEST" --mem 128M --cpus 2 --timeout 240 --transport $transport \
		--rng --console virtio --disk "$img,serial=$SERIAL" --balloon --control "$DIR/ctl-$i.sock" \
		--net "user,hostfwd=tcp:127.0.0.1:$fwd_port-:$GUEST_PORT$mac_opt" --stats-json "$OUT/$name.json" \
		--cmdline "$cmdline net_udp=$udp_port net_tcp=$tcp_port net_listen=$GUEST_PORT$mac_key$extra" \
		</dev/null >"$out" 2>"$OUT/$name.err" &
	pid=$!
	: >"$OUT/$name.fwd"
	wait_for "$out" 'virtio_net_tcp_server: listening' 180 && tcp_line "$fwd_port" >"$OUT/$name.fwd" 2>&1
	wait $pid
	rc=$?
	: >"$DIR/done-$i"
	wait_for "$DIR/balloon-$i" . 10
	balloon_read $i
	tr -d '\r' <"$out" >"$OUT/$name.txt"
	tap_read "$OUT/$name.txt"

	expect $name "status 0 with every guest test passing" \
		test "$rc" = 0 -a -z "$(grep '^not ok' "$OUT/$name.txt")"
	tests="$virtio_tests $blk_tests $net_tests virtio_balloon"
	case $transport in pci*) tests="$tests $pci_tests" ;; esac
	for t in $tests; do
		expect "$name-$t" "guest test $t passed (${tap[$t]:-no TAP line})" test "${tap[$t]}" = ok
	done
	expect "$name-console-output" "the guest's virtio-console line reached stdout" \
		matches "$OUT/$name.txt" "^virtio-console: hello from the guest"
	expect "$name-hostile-reported" "mica reported the guest's rule breaks and kept running" \
		matches "$OUT/$name.err" 'guest error: .*device needs reset'
	devices_ok "$OUT/$name.json"
	expect "$name-devices" "each of the 5 devices notified, never through userspace, and interrupting:$devices" \
		test $? = 0

	seed=$(sed -n 's/^# virtio_blk: wrote [0-9]* sectors, pattern seed \([0-9]*\)$/\1/p' "$OUT/$name.txt")
	images+=("$img" "$seed")
	[ $i = 0 ] && seed_mmio=$seed

	pages=$(sed -n 's/^# virtio_balloon: inflated \([0-9]*\) pages$/\1/p' "$OUT/$name.txt")
	expect $name-balloon-target "the host's 16 MiB target became 4096 inflated pages (control: $reply)" \
		test "${pages:-0}" = 4096 -a "${reply:0:3}" = "ok "
	drop=$((${rss0:-0} - ${rss1:-0}))
	expect $name-balloon-rss "mica's VmRSS fell by at least 3/4 of $((${pages:-0} * 4)) kB ($rss0 -> $rss1 kB)" \
		test -n "$rss1" -a "${pages:-0}" -gt 0 -a "$drop" -ge $((${pages:-0} * 3)) \
		-a "$drop" -le $((${pages:-0} * 4 + 8192))
	sent=$(sed -n 's/^# virtio_balloon: stats sent: free-memory \([0-9]*\) total-memory \([0-9]*\) .*/free-memory \1 total-memory \2/p' \
		"$OUT/$name.txt")
	expect $name-balloon-stats "balloon-stats returns what the guest sent ($sent): $stats" \
		test -n "$sent" -a "${stats:0:3}" = "ok " -a "${stats/"$sent"/}" != "$stats"
	expect $name-balloon-deflate "the guest deflated half" matches "$OUT/$name.txt" '^# virtio_balloon: deflated 2048 pages'

	expect $name-dhcp "the guest took slirp's lease 10.0.2.15 (router 10.0.2.2, dns 10.0.2.3)" \
		matches "$OUT/$name.txt" '^# virtio_net: lease 10\.0\.2\.15 mask 255\.255\.255\.0 router 10\.0\.2\.2 dns 10\.0\.2\.3 '
	# The legacy interface without MRG_RXBUF uses the 10-byte header; VERSION_1 or MRG_RXBUF 12.
	case $tr_name in *legacy) hdr=10 ;; *) hdr=12 ;; esac
	expect $name-net-header "header $hdr bytes without MRG_RXBUF, 12 with it" matches_all "$OUT/$name.txt" \
		"^# virtio_net: $tr_name, .*header $hdr bytes, MRG_RXBUF off" \
		"^# virtio_net_tcp: $tr_name, .*header 12 bytes, MRG_RXBUF on"
	missing=""
	for k in 0 1 2 3 4 5 6 7; do
		matches "$DIR/udp.log" "^mica-udp $tr_name $k len=$((40 + k * 180))\$" || missing="$missing $k"
	done
	expect $name-udp-host "the echo server here received the 8 datagrams (missing:${missing:- none})" test -z "$missing"
	expect $name-tcp-host "the server here received \"mica-tcp $tr_name\"" \
		matches "$DIR/tcp.log" "^mica-tcp $tr_name\$"
	expect $name-hostfwd "a connection to 127.0.0.1:$fwd_port reached the guest's server ($OUT/$name.fwd)" \
		matches "$OUT/$name.fwd" "^mica-tcp-server $tr_name $GUEST_PORT\$"
	expect $name-net-norx "replies held without rx buffers arrived after the kick; a frame merged from several buffers" \
		matches_all "$OUT/$name.txt" \
		'^# virtio_net_norx: 2 ARP replies held .* delivered in order after the kick' \
		'^# virtio_net_norx: .*1472-byte echo reply in [2-9] buffer'
	echo "# $name: VmRSS $rss0 -> $rss1 kB (balloon of ${pages:-?} pages);$devices"
	grep -E '^# (virtio_blk|virtio_blk_mq|virtio_net_norx): ' "$OUT/$name.txt"
done
kill $peers 2>/dev/null
wait $peers 2>/dev/null
peers=

# KVM's own exit counters (--stats-json's kvm_exits, from KVM's binary statistics): each exit
# that reached mica and each notify served through an ioeventfd (never reaching mica: checked
# above) was a VM exit KVM counted; the legacy interface's notifies are port I/O exits KVM
# counts in io_exits. Skipped on a kernel without binary statistics.
jsons=() args=()
for n in "${names[@]}"; do
	jsons+=("$OUT/$n.json")
	case $n in *pci*-legacy) args+=("$OUT/$n.json=pio") ;; *) args+=("$OUT/$n.json") ;; esac
done
python3 tests/integration/kvm_exits.py "${args[@]}" >"$OUT/virtio-kvm-exits.txt" 2>&1
for i in "${!names[@]}"; do
	line=$(grep -F "${jsons[$i]} " "$OUT/virtio-kvm-exits.txt")
	line=${line#"${jsons[$i]} "}
	case $line in
	ok\ *)
		ok "${names[$i]}-kvm-exits"
		echo "# ${names[$i]}: kvm_exits: ${line#ok }"
		;;
	skip:*) skip "${names[$i]}-kvm-exits" "${line#skip: }" ;;
	*) fail "${names[$i]}-kvm-exits" "KVM's exits cover the userspace exits and the kernel's notifies (${line:-not checked})" ;;
	esac
done

# The images hold the guest's pattern.
check_images "${images[@]}" >"$OUT/virtio-images.txt" 2>&1
for i in "${!variants[@]}"; do
	line=
	while read -r img res; do
		[ "$img" = "$DIR/disk-$i.img" ] && line=$res
	done <"$OUT/virtio-images.txt"
	expect ${names[$i]}-image "the image holds the guest's pattern (${line:-not checked})" test "$line" = ok
done

# A read-only disk (the image the mmio run wrote): RO offered, writes refused, the pattern reads
# back, and the file is unchanged.
name=blk-ro
img=$DIR/disk-0.img
if [ -n "$seed_mmio" ]; then
	sum0=$(md5sum <"$img")
	run_mica $name run --kernel "$GUEST" --mem 96M --disk "$img,ro" \
		--cmdline "tests=virtio_blk_ro,virtio_blk_errors blk_seed=$seed_mmio"
	expect $name "virtio_blk_ro and virtio_blk_errors pass on a ,ro disk, the pattern reads back" \
		test "$rc" = 0 -a -n "$(grep "^# virtio_blk_ro: read $SECTORS sectors, $SECTORS carry the pattern" \
		"$OUT/$name.txt")" -a -z "$(grep '^not ok' "$OUT/$name.txt")"
	expect $name-unchanged "the read-only image is byte for byte the same" test "$sum0" = "$(md5sum <"$img")"
	grep -E '^# virtio_blk_ro:' "$OUT/$name.txt"
else
	skip $name "no pattern seed from the mmio run"
fi
rm -rf "$DIR"

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

	# --acpi off: the MP table (CPUs, PCI INTx), acpi=off, virtio-mmio refused for Linux.
	tests/integration/linux_noacpi.sh

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
		share=$(mktemp -d /tmp/mica-share.XXXXXX) && echo "mica virtio-fs probe" >"$share/probe"
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
			--share "$share,tag=mica-test" \
			--timeout 240 --cmdline "console=ttyS0 quiet loglevel=1 mica.test=cpus,rng,console,blk,net,balloon,fs mica.cpus=$cpus mica.tcp=$tcp_port" \
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
		for t in cpus rng console blk net balloon fs; do
			expect "$name-$t" "the guest's $t check" has $name "mica-linux: ok $t"
		done
		fs_sum=$(sed -n 's/.*mica-linux: fs wrote \([^ ]*\), big-from-guest md5 \([0-9a-f]*\).*/\1 \2/p' "$OUT/$name.txt")
		expect "$name-fs-host" "what the guest wrote through virtio-fs is on the host" \
			test -n "$fs_sum" -a "$(cat "$share/from-guest" 2>/dev/null) $(md5sum <"$share/big-from-guest" 2>/dev/null | cut -d' ' -f1)" = "$fs_sum"
		rm -rf "$share"
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

# The unit tests that need KVM (they SKIP on the host without it): KVM's own vCPU and VM state
# through a save and a restore (snapshots), and KVM's binary statistics of a real vCPU.
for t in test_kvm_state test_kvm_stats; do
	if [ -x "build/obj/tests/$t" ]; then
		"build/obj/tests/$t" | grep -E '^(not )?ok [0-9]+ ' | sed -E 's/^(not ok|ok) [0-9]+ - /\1 - /'
	else
		fail "$t" "build/obj/tests/$t is missing (make unit)"
	fi
done

# Bad invocations only KVM reaches: one line, status 2, nothing left behind.
tests/integration/host_kvm.sh
# mica check where KVM works: status 0, which KVM, ioeventfd and irqfd ok.
tests/integration/check.sh
# mica's output path: a closed, stalled or paused stdout and a hung-up control client never
# stall or kill mica; a guest flooding net transmit does not stop blk or the console.
tests/integration/guest_output.sh
tests/integration/guest_net_flood.sh
# Many VMs at once (issue #13): hostfwd port 0 gives each its own reported port, images locked.
tests/integration/many_vms.sh
# virtio-fs from the test guest: FUSE requests, hostile ones too; nothing outside the share changes.
tests/integration/guest_fs.sh

# mica sandbox: its init alone (no root share: 125 and one line), then commands over the host's
# files: statuses, streams, cwd/env/ids, --rw, hostile commands, --json. Warm where they can:
# the first run of each kind saves a snapshot in this cache, the next ones restore it (emptied
# after each script: the inner VM's /tmp is its RAM).
export XDG_CACHE_HOME
XDG_CACHE_HOME=$(mktemp -d /tmp/mica-cache.XXXXXX)
tests/integration/sandbox_init.sh
rm -rf "${XDG_CACHE_HOME:?}"/*
tests/integration/sandbox.sh
rm -rf "${XDG_CACHE_HOME:?}"/*
# The warm mica sandbox: a snapshot made by the first run, restored by the next ones.
tests/integration/sandbox_warm.sh
# mica as a CI step: the serial log, --expect/--fail-on/--end-on and their exit statuses, a
# Linux panic caught by --fail-on kernel, JUnit from the test guest's and a command's TAP.
tests/integration/ci.sh
rm -rf "${XDG_CACHE_HOME:?}"/*
# Snapshot and restore: the test guest saved mid-test, restored, and going on with its devices;
# every refused restore.
tests/integration/snapshot.sh
# Linux saved with blk, net, rng and a console, restored: its disk, address, TCP and clock go on.
tests/integration/linux_snapshot.sh
# Landlock: a guest-driven open of a file no option named is refused.
tests/integration/guest_landlock.sh
# What a Linux guest was told is durable survives kill -9 of mica, in every cache mode.
tests/integration/guest_durability.sh
# seccomp: a forbidden call from each kind of thread ends mica with 125 and says so.
tests/integration/guest_seccomp.sh
