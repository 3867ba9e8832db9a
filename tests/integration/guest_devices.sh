#!/usr/bin/env bash
# The test guest's virtio-blk and virtio-balloon tests under mica, checked from the host side
# too: the pattern the guest wrote is in the image file after mica exits, a read-only disk keeps
# its content, and inflating the balloon lowers mica's resident memory while balloon-stats on
# the --control socket returns the statistics the guest sent. Needs KVM (scripts/with-kvm).
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

# Images and sockets outside the tree: under scripts/with-kvm the tree is 9p, which has no
# sockets and cannot punch holes; /tmp there is tmpfs.
DIR=$(mktemp -d /tmp/mica-guest-devices.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
SERIAL=mica-serial-1
SECTORS=8192 # 4 MiB

# check_image IMG SEED: every sector k holds the guest's pattern (guest/tests_blk.c).
check_image() {
	python3 - "$1" "$2" <<'EOF'
import sys
path, seed = sys.argv[1], int(sys.argv[2])
data = open(path, "rb").read()
for k in range(len(data) // 512):
    s = data[k * 512:(k + 1) * 512]
    want = b"mica-blk sector %08d" % k + bytes((k * 13 + i * 7 + seed) & 0xff for i in range(24, 512))
    if s != want:
        at = next(i for i in range(512) if s[i] != want[i])
        print("# sector %d differs at byte %d: %r" % (k, at, s[:32]))
        sys.exit(1)
print("# %s: %d sectors hold the pattern (seed %d)" % (path, len(data) // 512, seed))
EOF
}

# guest_ok NAME TEST: the guest's TEST passed (not skipped) in run NAME.
guest_ok() { grep -q "^ok [0-9]* - $2\$" "$OUT/$1.txt"; }

seed_mmio=
for tr in mmio pci; do
	name=blk-$tr
	img=$DIR/disk-$tr.img
	rm -f "$img"
	truncate -s $((SECTORS * 512)) "$img"
	run_mica $name run --kernel "$GUEST" --mem 96M --cpus 2 --transport $tr \
		--disk "$img,serial=$SERIAL" --cmdline "tests=all blk_serial=$SERIAL blk_sectors=$SECTORS"
	expect $name-all "tests=all with a disk: status 0, no failures" \
		test "$rc" = 0 -a -z "$(grep '^not ok' "$OUT/$name.txt")"
	for t in virtio_blk virtio_blk_errors virtio_blk_mq; do
		expect $name-$t "the guest's $t passed over $tr ($(grep -m1 -- "- $t" "$OUT/$name.txt"))" \
			guest_ok $name $t
	done
	seed=$(sed -n 's/^# virtio_blk: wrote [0-9]* sectors, pattern seed \([0-9]*\)$/\1/p' "$OUT/$name.txt")
	if [ -n "$seed" ] && check_image "$img" "$seed" >"$OUT/$name.image"; then
		ok $name-image
	else
		fail $name-image "the image does not hold the guest's pattern: $(tail -n 1 "$OUT/$name.image" 2>/dev/null)"
	fi
	[ $tr = mmio ] && seed_mmio=$seed
	grep -E '^# (virtio_blk|virtio_blk_errors|virtio_blk_mq):' "$OUT/$name.txt" | head -n 12
done

# A read-only disk (the image the mmio run wrote): RO offered, writes refused, the pattern reads
# back, and the file is unchanged.
name=blk-ro
img=$DIR/disk-mmio.img
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

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
ctl() { python3 tests/integration/control.py "$@"; }

# The balloon: the guest touches 32 MiB and waits; the host asks for 16 MiB; the guest inflates
# 4096 pages (mica's RSS drops by about 16 MiB), sends stats, which balloon-stats returns; then
# the guest deflates half and exits.
for tr in mmio pci; do
	name=balloon-$tr
	sock=$DIR/ctl-$tr.sock
	out=$OUT/$name.out
	"$MICA" run --kernel "$GUEST" --mem 96M --transport $tr --balloon --control "$sock" \
		--cmdline "tests=virtio_balloon" </dev/null >"$out" 2>"$OUT/$name.err" &
	pid=$!
	(sleep 180; kill "$pid" 2>/dev/null) &
	watchdog=$!
	rss0= rss1= reply= stats=
	if wait_for "$out" 'virtio_balloon: waiting for a target' 60; then
		rss0=$(rss_kb $pid)
		reply=$(ctl "$sock" balloon 16)
		if wait_for "$out" 'virtio_balloon: stats sent' 30; then
			rss1=$(rss_kb $pid)
			# The device reads the stats buffer on the guest's kick, asynchronously: ask until it has.
			for _ in $(seq 50); do
				stats=$(ctl "$sock" balloon-stats)
				case $stats in *free-memory*) break ;; esac
				sleep 0.2
			done
		fi
	fi
	wait $pid
	rc=$?
	kill $watchdog 2>/dev/null
	wait $watchdog 2>/dev/null
	tr -d '\r' <"$out" >"$OUT/$name.txt"
	echo "$reply" >"$OUT/$name.ctl"
	echo "$stats" >>"$OUT/$name.ctl"
	pages=$(sed -n 's/^# virtio_balloon: inflated \([0-9]*\) pages$/\1/p' "$OUT/$name.txt")
	expect $name "the guest's virtio_balloon passed over $tr (control: $reply)" \
		test "$rc" = 0 -a -n "$(grep '^ok [0-9]* - virtio_balloon$' "$OUT/$name.txt")" \
		-a "${pages:-0}" = 4096 -a -n "$(grep '^ok' <<<"$reply")"
	drop=$(( ${rss0:-0} - ${rss1:-0} ))
	expect $name-rss "mica's VmRSS fell by at least 3/4 of $((${pages:-0} * 4)) kB ($rss0 -> $rss1 kB)" \
		test -n "$rss1" -a "${pages:-0}" -gt 0 -a "$drop" -ge $((${pages:-0} * 3)) \
		-a "$drop" -le $((${pages:-0} * 4 + 8192))
	echo "# $name: VmRSS $rss0 -> $rss1 kB (drop $drop kB) for ${pages:-?} pages"
	sent=$(sed -n 's/^# virtio_balloon: stats sent: free-memory \([0-9]*\) total-memory \([0-9]*\) .*/free-memory \1 total-memory \2/p' \
		"$OUT/$name.txt")
	expect $name-stats "balloon-stats returns what the guest sent ($sent): $stats" \
		test -n "$sent" -a -n "$(grep -F -- "$sent" <<<"$stats")" -a -n "$(grep '^ok' <<<"$stats")"
	expect $name-deflate "the guest deflated half" grep -q '^# virtio_balloon: deflated 2048 pages' "$OUT/$name.txt"
done
