#!/usr/bin/env bash
# Data safety under kill -9: what mica told a Linux guest was durable is in the image after mica
# is SIGKILLed at a random moment. The guest (scripts/lib/durable.c, run by the get-linux-guest
# initramfs for mica.durable=MODE,SEED) writes numbered 4 KiB blocks with O_DIRECT, two workers
# with a batch of writes in flight each, zeroes every fourth block (write-zeroes, write-zeroes
# that may unmap, discard; the image is prefilled with non-zero bytes), and prints "durable N" /
# "zeroed N" / "discarded N" only once the device's promise covers the block: after fdatasync (a
# virtio FLUSH) with the write cache on ("sync"), as soon as the request completed where a
# completed request is the promise ("write"). Once it has printed a few, the host sleeps
# 0-KILL_MS ms and kills mica; then every line that reached mica's stdout (what the guest was
# told, and said) is checked against the image by the same program's check mode. Per cache mode:
#   writeback     odd iterations sync; even ones turn the guest's write cache off first
#                 (/sys/block/vda/cache_type, through VIRTIO_BLK_F_CONFIG_WCE), then write;
#   writethrough  write (the device has no write cache: wce 0);
#   none          O_DIRECT: odd iterations sync, even ones write.
# Iterations 1-2 of every 4 use the io_uring backend, 3-4 the thread pool (MICA_BLK_NO_URING=1).
# A discarded block must read as zeros where the image's file system punches holes (mica punches
# for a discard); elsewhere mica answers UNSUPP, Linux ignores that, and the block keeps the
# prefill ("kept"). One line per mode: kills, blocks checked, lost (the only acceptable loss is 0).
# Env: DURABILITY_ITER (iterations per mode, default 6: each backend and guest mode twice or
#      more; make soak sets 67),
#      DURABILITY_KILL_MS (default 1000), DURABILITY_MB (the image: 8 MiB in scripts/with-kvm's
#      nested VM, 64 elsewhere, so that the guest is still writing when the kill lands; one that
#      reached the end first waits for it, and is counted),
#      DURABILITY_NONE_DIR (where the cache=none images live: the file system must take O_DIRECT;
#      tmpfs does not before Linux 6.6; default $OUT), DURABILITY_VERBOSE=1 (a line per kill).
# Needs KVM (scripts/with-kvm) and build/linux (scripts/get-linux-guest); kvm.sh calls it.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

ITER=${DURABILITY_ITER:-6}
KILL_MS=${DURABILITY_KILL_MS:-1000}
NONE_DIR=${DURABILITY_NONE_DIR:-$OUT}
CHECK=build/linux/durable
MB=${DURABILITY_MB:-64}
[ -z "${WITH_KVM_INNER:-}" ] || MB=${DURABILITY_MB:-8}
if [ ! -x "$CHECK" ] || [ ! -f build/linux/initramfs.cpio.gz ]; then
	fail durability "$CHECK or the initramfs is missing: run scripts/get-linux-guest"
	exit 1
fi

DIR=$(mktemp -d /tmp/mica-durability.XXXXXX)
trap 'rm -rf "$DIR" "$NONE_DIR"/durability-*.img' EXIT
# The prefill: the bytes a zeroed block must lose (PREFILL in durable.c).
head -c $((MB << 20)) /dev/zero | tr '\0' '\132' >"$DIR/prefill"

# count_done FILE: sets ndone to the number of "durable N" lines in FILE so far (in bash alone:
# in a nested VM every process costs much).
count_done() {
	local l
	ndone=0
	[ -r "$1" ] || return
	while IFS= read -r l; do
		[[ $l == "durable "[0-9]* ]] && ndone=$((ndone + 1))
	done <"$1"
}

# punches DIR: DIR's file system punches holes (fallocate(1) needs no other process than itself).
punches() {
	local f=$1/durability-probe.img r=1
	head -c 8192 "$DIR/prefill" >"$f" && fallocate -p -o 0 -l 4096 "$f" 2>/dev/null && r=0
	rm -f "$f"
	return $r
}

total_kills=0 total_checked=0 total_lost=0 total_secs=0
for spec in writeback:sync/wce writethrough:write none:sync/write; do
	cache=${spec%%:*} gmodes=${spec#*:}
	dir=$DIR
	[ $cache = none ] && dir=$NONE_DIR
	punch=false
	punches "$dir" && punch=true
	kills=0 checked=0 zeroed=0 discarded=0 lost=0 kept=0 early=0 bad=""
	declare -A per=()
	start=$(date +%s)
	for ((i = 1; i <= ITER; i++)); do
		name=durability-$cache-$i
		img=$dir/$name.img
		gmode=${gmodes%%/*}
		[ $((i % 2)) = 0 ] && gmode=${gmodes##*/}
		case $gmode:$cache in
		wce:*) want_cache='write back -> write through' ;;
		*:writethrough) want_cache='write through' ;;
		*) want_cache='write back' ;;
		esac
		backend=io_uring no_uring=0
		[ $(((i - 1) / 2 % 2)) = 1 ] && backend=threads no_uring=1
		seed=$(((RANDOM << 30) ^ (RANDOM << 15) ^ RANDOM))
		cp "$DIR/prefill" "$img"
		rm -f "$OUT/$name.out"
		MICA_BLK_NO_URING=$no_uring "$MICA" run --kernel build/linux/vmlinuz --initrd build/linux/initramfs.cpio.gz \
			--mem 128M --disk "$img,cache=$cache" --timeout 150 \
			--cmdline "console=ttyS0 quiet loglevel=1 mica.durable=$gmode+dz,$seed" \
			>"$OUT/$name.out" 2>"$OUT/$name.err" </dev/null &
		pid=$!
		# Up to ~3 min for the guest's first lines (a sanitizer build, nested, on a loaded
		# machine once took over a minute); a guest that hangs is ended by --timeout (150 s)
		# first, with each vCPU's state on stderr, which the failure then quotes. (Seen once
		# in CI: a guest that printed nothing for 3 minutes, killed before --timeout 240 could
		# say where it was; 40 boots of the same kind did not hang again.)
		for ((t = 0; t < 3600; t++)); do
			count_done "$OUT/$name.out"
			[ $ndone -ge 4 ] && break
			kill -0 $pid 2>/dev/null || break
			nap 0.05
		done
		ms=$((RANDOM % (KILL_MS + 1)))
		nap "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
		kill -KILL $pid 2>/dev/null
		{ wait $pid; } 2>/dev/null
		rc=$?
		if [ $rc = 2 ] && matches "$OUT/$name.err" 'does not support O_DIRECT'; then
			skip durability-$cache "$dir's file system takes no O_DIRECT: set DURABILITY_NONE_DIR"
			continue 2
		fi
		tr -d '\r' <"$OUT/$name.out" >"$OUT/$name.txt"
		res=$("$CHECK" check "$img" "$OUT/$name.out" $seed)
		[ -z "${DURABILITY_VERBOSE:-}" ] || echo "# $name ($gmode, $backend, rc $rc, kill after ${ms} ms): ${res##*$'\n'}"
		if [[ ${res##*$'\n'} =~ ^checked\ ([0-9]+)\ lost\ ([0-9]+)\ kept\ ([0-9]+)$ ]]; then
			checked=$((checked + BASH_REMATCH[1]))
			lost=$((lost + BASH_REMATCH[2]))
			kept=$((kept + BASH_REMATCH[3]))
			[ "${BASH_REMATCH[1]}" != 0 ] || bad="$bad $i:nothing-checked"
			[ "${BASH_REMATCH[1]}" = 0 ] || ctl_name=$name ctl_seed=$seed
			[ "${BASH_REMATCH[2]}" = 0 ] || sed "s/^/# $name: /" <<<"$res" | head -n 5
		else
			bad="$bad $i:checker-failed"
		fi
		while IFS= read -r l; do
			case $l in
			"zeroed "*) zeroed=$((zeroed + 1)) ;;
			"discarded "*) discarded=$((discarded + 1)) ;;
			esac
		done <"$OUT/$name.txt"
		matches "$OUT/$name.txt" "^durable: cache_type $want_cache\$" || bad="$bad $i:not-'$want_cache'"
		matches "$OUT/$name.txt" '^durable: discard_max_bytes [1-9][0-9]* write_zeroes_max_bytes [1-9]' ||
			bad="$bad $i:no-discard-or-write-zeroes-in-the-guest"
		! matches "$OUT/$name.txt" '^durable: error' ||
			bad="$bad $i:$(grep -m1 '^durable: error' "$OUT/$name.txt" | tr ' ' _)"
		if [ $rc = 137 ]; then
			kills=$((kills + 1))
			per[$gmode]=$((${per[$gmode]:-0} + 1))
		else
			bad="$bad $i:exit-$rc($(grep -m 3 'vCPU\|mica:' "$OUT/$name.err" | tr '\n' ' '))"
		fi
		matches "$OUT/$name.txt" '^durable: done' && early=$((early + 1))
		rm -f "$img"
	done
	secs=$(($(date +%s) - start))
	total_kills=$((total_kills + kills)) total_checked=$((total_checked + checked))
	total_lost=$((total_lost + lost)) total_secs=$((total_secs + secs))
	split=
	for g in ${gmodes//\// }; do split="$split, ${per[$g]:-0} $g"; done
	summary="cache=$cache: $kills kills (${split#, }), $checked blocks checked ($zeroed zeroed, $discarded discarded), $lost lost"
	note=
	[ $early = 0 ] || note="; $early ran to the end of the disk before the kill"
	echo "# $summary; $kept discarded blocks kept their data (hole punching: $punch); ${secs}s, $((secs / ITER)).$((secs * 10 / ITER % 10))s per kill$note"
	rc=0
	expect durability-$cache "$summary${bad:+; bad iterations:$bad}" \
		test $lost = 0 -a -z "$bad" -a $kills -gt 0
	# mica punches a hole for a discard where it can: a completed discard survives too.
	$punch && expect durability-$cache-discard "discarded blocks read as zeros ($kept of $discarded did not)" \
		test $kept = 0 -a $discarded -gt 0
	unset per
done

# The checker can fail: the untouched prefill holds none of the blocks of the last run that
# printed some (a discarded block with the prefill is "kept", not lost).
name=${ctl_name:-none} res=$("$CHECK" check "$DIR/prefill" "$OUT/$name.out" "${ctl_seed:-0}")
res=${res##*$'\n'} rc=0
control_ok=false
[[ $res =~ ^checked\ ([1-9][0-9]*)\ lost\ ([0-9]+)\ kept\ ([0-9]+)$ ]] &&
	[ $((BASH_REMATCH[2] + BASH_REMATCH[3])) = "${BASH_REMATCH[1]}" ] && [ "${BASH_REMATCH[2]}" != 0 ] &&
	control_ok=true
expect durability-checker-control "the checker finds the blocks of $name lost in an unwritten image ($res)" \
	$control_ok
echo "# durability: $total_kills kills, $total_checked blocks checked, $total_lost lost (${total_secs}s)"
