#!/usr/bin/env bash
# A guest flooding virtio-net's transmit queue does not stop virtio-blk or virtio-console: the
# test guest's net_flood (guest/tests_net_flood.c) under mica --net user --disk IMG --console
# virtio, over virtio-pci and virtio-mmio. Checked on both sides: the guest's TAP line (its blk
# rounds completed and read back under the flood, every frame came back used, a ping after);
# the image holds the pattern of the guest's last round; every console line reached mica's
# stdout, in order; mica's counters: the device transmitted every frame the driver sent and
# dropped none. Needs KVM (scripts/with-kvm); tests/integration/kvm.sh calls it.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

DIR=$(mktemp -d /tmp/mica-guest-net-flood.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
SECTORS=16384 # 8 MiB; the guest's rounds cover the first 4 MiB

# udp_port_free PORT: nothing here has PORT bound (local or remote column of /proc/net/udp*).
udp_port_free() { ! grep -qi ":$(printf '%04X' "$1") " /proc/net/udp /proc/net/udp6 2>/dev/null; }
port=9
for _ in $(seq 50); do
	p=$((30000 + RANDOM % 20000))
	udp_port_free $p && { port=$p; break; }
done

# check_image IMG SECTORS SEED: the first SECTORS sectors hold net_flood's pattern of SEED.
check_image() {
	python3 - "$@" <<'EOF'
import sys
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "rb") as f:
    data = f.read(n * 512)
for k in range(n):
    s = data[k * 512:(k + 1) * 512]
    want = b"net_flood sector %08d" % k + bytes((k * 11 + i * 5 + seed) & 0xff for i in range(25, 512))
    if s != want:
        print("# sector %d is not the pattern of round %d: %r" % (k, seed, s[:32]))
        sys.exit(1)
print("# %d sectors hold the pattern of round %d" % (n, seed))
EOF
}

# net_counters JSON: "tx_packets tx_dropped tx_waits renotifies" of the virtio-net device.
net_counters() {
	python3 - "$1" <<'EOF'
import json, sys
for d in json.load(open(sys.argv[1]))["devices"]:
    if d.get("device") == "virtio-net":
        print(d["tx_packets"], d["tx_dropped"], d["tx_waits"], d["renotifies"])
EOF
}

# console_in_order FILE COUNT: "net_flood: console line 0..COUNT-1" in FILE, in order (each
# written at once, but maybe into a line of the guest's serial output, which shares stdout).
console_in_order() {
	local want=0 l
	while IFS= read -r l; do
		[[ $l == *"net_flood: console line $want,"* ]] && want=$((want + 1))
	done <"$1"
	[ "$want" = "$2" ] && [ "$2" -ge 3 ]
}

for tr in pci mmio; do
	name=net-flood-$tr
	img=$DIR/disk-$tr.img
	truncate -s $((SECTORS * 512)) "$img"
	LIMIT=400 run_mica $name run --kernel "$GUEST" --mem 64M --transport $tr --net user \
		--disk "$img" --console virtio --stats-json "$OUT/$name.json" \
		--cmdline "tests=net_flood net_flood_port=$port"
	grep '^# net_flood' "$OUT/$name.txt" | grep -v -e 'frames sent, .* used; blk round' -e 'console line' | sed "s/^# /# $tr: /"
	expect $name "status 0, the guest's net_flood passed over $tr ($(grep -m1 -- '- net_flood' "$OUT/$name.txt"))" \
		test "$rc" = 0 -a -n "$(grep '^ok [0-9]* - net_flood$' "$OUT/$name.txt")"

	summary=$(sed -n 's/^# net_flood: \([0-9]*\) frames .* blk \([0-9]*\) rounds of \([0-9]*\) sectors .*; console \([0-9]*\) lines$/\1 \2 \3 \4/p' "$OUT/$name.txt")
	read -r frames rounds sectors lines <<<"$summary"
	if [ -n "$rounds" ] && check_image "$img" "$sectors" "$rounds" >"$OUT/$name.image"; then
		ok $name-image
	else
		fail $name-image "the image does not hold the pattern of the guest's last blk round: $(tail -n 1 "$OUT/$name.image" 2>/dev/null)"
	fi
	expect $name-console "the guest's ${lines:-0} virtio-console lines reached stdout, in order (at least 3)" \
		console_in_order "$OUT/$name.txt" "${lines:-0}"

	total=$(sed -n 's/^# net_flood: this driver sent \([0-9]*\) frames in all$/\1/p' "$OUT/$name.txt")
	read -r tx_packets tx_dropped tx_waits renotifies <<<"$(net_counters "$OUT/$name.json" 2>/dev/null)"
	echo "# $tr: ${frames:-?} frames flooded; mica: tx_packets ${tx_packets:-?}, tx_dropped ${tx_dropped:-?}, tx_waits ${tx_waits:-?} (waits for slirp's ring), renotifies ${renotifies:-?} (budget stops)"
	expect $name-counters "mica transmitted every frame the driver sent (${total:-?}) and dropped none (tx_packets ${tx_packets:-?}, tx_dropped ${tx_dropped:-?})" \
		test -n "$total" -a "${tx_packets:-x}" = "$total" -a "${tx_dropped:-x}" = 0
done
