#!/usr/bin/env bash
# The test guest's own virtio-net driver (guest/net.c, guest/tests_net.c) against mica's
# --net user (libslirp), over virtio-mmio, mmio-legacy, modern virtio-pci and the legacy
# interface of a transitional device: a DHCP lease, ARP and ICMP to the gateway, UDP to an echo
# server here, TCP to a server here and from here through hostfwd to a server in the guest,
# frames held while no receive buffer is posted. Checked on both sides: the guest's TAP lines,
# and what the servers here received. Without a net device the tests skip. Needs KVM
# (scripts/with-kvm). The checks use bash alone: in a nested VM every process costs much.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

DIR=$(mktemp -d /tmp/mica-guest-net.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$DIR"' EXIT
TESTS=virtio_net,virtio_net_udp,virtio_net_tcp,virtio_net_tcp_server,virtio_net_norx
GUEST_PORT=8080
MAC=52:54:00:12:34:56
UDP_LOG=$OUT/guest-net.udp
variants=(mmio mmio-legacy pci pci-transitional:legacy)

# matches FILE ERE: a line of FILE matches ERE.
matches() {
	local l
	[ -r "$1" ] || return 1
	while IFS= read -r l; do
		[[ $l =~ $2 ]] && return 0
	done <"$1"
	return 1
}
# matches_all FILE ERE...: each ERE matches a line of FILE.
matches_all() {
	local f=$1 re
	shift
	for re; do
		matches "$f" "$re" || return 1
	done
}
# guest_passed FILE: mica's status ($rc) is 0 and no guest test failed.
guest_passed() { [ "$rc" = 0 ] && ! matches "$1" '^not ok'; }
# A port of 127.0.0.1 nobody listens on.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((30000 + RANDOM % 20000))
		(exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return; }
	done
}
# tcp_line PORT: connects to 127.0.0.1:PORT and prints the first line received.
tcp_line() { timeout 40 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0 && IFS= read -r line <&3 && printf "%s\n" "$line"' "$1"; }
run_name() { local v=${variants[$1]}; echo "net-${v/:/-}"; }
start_tcpserve() {
	rm -f "$OUT/$(run_name $1).tcp"
	python3 tests/integration/tcpserve.py "$DIR/tcp-$1.port" "$OUT/$(run_name $1).tcp" &
	pids+=($!)
}

# The servers here start ahead of the runs that need them (python takes seconds to start in a
# nested VM): one UDP echo server for every run; one TCP server per run, two runs ahead (it
# takes one connection and waits 120 s for it).
rm -f "$UDP_LOG"
python3 tests/integration/udpecho.py "$DIR/udp.port" "$UDP_LOG" &
pids+=($!)
start_tcpserve 0
start_tcpserve 1

# No net device: every net test skips, none passes.
name=net-absent
run_mica $name run --kernel "$GUEST" --mem 64M --cmdline "tests=$TESTS net_udp=9 net_tcp=9 net_listen=9"
skips=0
for t in ${TESTS//,/ }; do
	matches "$OUT/$name.txt" "^ok [0-9]+ - $t # SKIP" && skips=$((skips + 1))
done
expect $name "status 0, each net test SKIPs ($skips of 5)" test "$rc" = 0 -a $skips = 5

wait_for "$DIR/udp.port" . 60
udp_port=$(<"$DIR/udp.port")
for i in "${!variants[@]}"; do
	variant=${variants[$i]}
	transport=${variant%%:*}
	extra="" tr_name=$transport mac_opt="" mac_key=""
	case $variant in
	pci-transitional:legacy) extra=" virtio_pci=legacy" tr_name=pci-legacy ;;
	mmio) mac_opt=",mac=$MAC" mac_key=" net_mac=$MAC" ;;
	esac
	name=$(run_name $i)
	[ $((i + 2)) -lt ${#variants[@]} ] && start_tcpserve $((i + 2))
	wait_for "$DIR/tcp-$i.port" . 60
	tcp_port=$(<"$DIR/tcp-$i.port")
	fwd_port=$(free_port)
	out=$OUT/$name.out
	timeout -k 5 180 "$MICA" run --kernel "$GUEST" --mem 64M --transport $transport \
		--net "user,hostfwd=tcp:127.0.0.1:$fwd_port-:$GUEST_PORT$mac_opt" --stats-json "$OUT/$name.json" \
		--cmdline "tests=$TESTS net_udp=$udp_port net_tcp=$tcp_port net_listen=$GUEST_PORT$mac_key$extra" \
		</dev/null >"$out" 2>"$OUT/$name.err" &
	pid=$!
	: >"$OUT/$name.fwd"
	wait_for "$out" 'virtio_net_tcp_server: listening' 120 && tcp_line "$fwd_port" >"$OUT/$name.fwd" 2>&1
	wait $pid
	rc=$?
	tr -d '\r' <"$out" >"$OUT/$name.txt"
	while IFS= read -r l; do # the guest's diagnostics, less the repeated lease and bring-up lines
		[[ $l == "# virtio_net"* && ! $l =~ ^'# virtio_net_'[a-z_]+': lease' &&
			! $l =~ ^'# virtio_net_'(udp|tcp_server)': '.*'features offered' ]] && echo "$l"
	done <"$OUT/$name.txt"

	expect $name "status 0, no guest test failed" guest_passed "$OUT/$name.txt"
	for t in ${TESTS//,/ }; do
		expect $name-$t "the guest's $t passed over $tr_name (see $OUT/$name.txt)" matches "$OUT/$name.txt" "^ok [0-9]+ - $t\$"
	done
	expect $name-dhcp "the guest took slirp's lease 10.0.2.15 (router 10.0.2.2, dns 10.0.2.3)" \
		matches "$OUT/$name.txt" '^# virtio_net: lease 10\.0\.2\.15 mask 255\.255\.255\.0 router 10\.0\.2\.2 dns 10\.0\.2\.3 '
	# The legacy interface without MRG_RXBUF uses the 10-byte header; VERSION_1 or MRG_RXBUF 12.
	case $tr_name in *legacy) hdr=10 ;; *) hdr=12 ;; esac
	expect $name-header "header $hdr bytes without MRG_RXBUF, 12 with it" matches_all "$OUT/$name.txt" \
		"^# virtio_net: $tr_name, .*header $hdr bytes, MRG_RXBUF off" \
		"^# virtio_net_tcp: $tr_name, .*header 12 bytes, MRG_RXBUF on"
	missing=""
	for k in 0 1 2 3 4 5 6 7; do
		matches "$UDP_LOG" "^mica-udp $tr_name $k len=$((40 + k * 180))\$" || missing="$missing $k"
	done
	expect $name-udp-host "the echo server here received the 8 datagrams (missing:${missing:- none})" test -z "$missing"
	expect $name-tcp-host "the server here received \"mica-tcp $tr_name\" ($OUT/$name.tcp)" \
		matches "$OUT/$name.tcp" "^mica-tcp $tr_name\$"
	expect $name-hostfwd "a connection to 127.0.0.1:$fwd_port reached the guest's server ($OUT/$name.fwd)" \
		matches "$OUT/$name.fwd" "^mica-tcp-server $tr_name $GUEST_PORT\$"
	expect $name-norx "replies held without rx buffers arrived after the kick; a frame merged from several buffers" \
		matches_all "$OUT/$name.txt" \
		'^# virtio_net_norx: 2 ARP replies held .* delivered in order after the kick' \
		'^# virtio_net_norx: .*1472-byte echo reply in [2-9] buffer'
	expect $name-interrupts "mica raised interrupts, no notification went through its userspace" \
		matches_all "$OUT/$name.json" '"interrupts": [1-9]' '"notifies_userspace": 0,'
done
