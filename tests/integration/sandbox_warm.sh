#!/usr/bin/env bash
# The warm `mica sandbox` (cmd/sandbox_warm.c): the first run boots and saves the VM once its
# init has loaded the modules; later runs with the same kernel, modules and options restore it
# and hand the init their own job. Checked: the first run makes the entry and the second uses
# it (--json's "warm" and "start"), a file written on the host after the snapshot is seen, each
# run's own command, environment, cwd and --rw share, --cold, a changed kernel file is another
# entry, a damaged entry is replaced (never used), and two
# runs restore one entry at once. Run from kvm.sh (one inner VM).
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm
if [ ! -f build/linux/vmlinuz ]; then
	fail sandbox-warm "build/linux/vmlinuz is missing: scripts/get-linux-guest did not run"
	exit 0
fi

SB=$(realpath -m "$OUT/sandbox-warm")
rm -rf "$SB" && mkdir -p "$SB"
CACHE=$(mktemp -d /tmp/mica-warm.XXXXXX)
trap 'rm -rf "$CACHE"' EXIT
sbw() { local name=$1; shift; LIMIT=300 run_mica "$name" sandbox --cache "$CACHE" --timeout 240 \
	--json "$OUT/$name.json" "$@"; }
# warm NAME: "used made kind" from the run's --json.
warm() {
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); w=j["warm"]
print(str(w["used"]).lower(), str(w["made"]).lower(), j["start"]["kind"])' "$OUT/$1.json" 2>/dev/null
}
entries() { local n=0 f; for f in "$CACHE"/sandbox-*.snap; do [ -e "$f" ] && n=$((n + 1)); done; echo $n; }

# 1. The first run boots and makes the entry; CMD's output and status as ever.
sbw warm-first -- sh -c 'echo first; exit 3'
expect warm-first "status 3, 'first', a cold run that made one entry ($(warm warm-first), $(entries) entries)" \
	test "$rc" = 3 -a "$(cat "$OUT/warm-first.txt")" = first -a "$(warm warm-first)" = "false true boot" \
	-a "$(entries)" = 1

# 2. The second starts from it, and sees the host's files as they are now.
echo "written after the snapshot" >"$SB/after.txt"
sbw warm-second -- cat "$SB/after.txt"
expect warm-second "a restored run reads a file written after the snapshot ($(warm warm-second))" \
	test "$rc" = 0 -a "$(cat "$OUT/warm-second.txt")" = "written after the snapshot" \
	-a "$(warm warm-second)" = "true false restore"

# 3. Each run's own job: environment, cwd, stdin, a --rw share (one share more is another
# device set: the first such run makes its entry, the second restores it with another job).
mkdir -p "$SB/cwd1" "$SB/cwd2" "$SB/rw"
mica_abs=$(realpath "$MICA") out_abs=$(realpath "$OUT")
job() { # N: a run in $SB/cwdN with MICA_WARM_PROBE=probe-N and stdin "in-N"
	(cd "$SB/cwd$1" && printf 'in-%s\n' "$1" | MICA_WARM_PROBE=probe-$1 timeout -k 5 300 "$mica_abs" \
		sandbox --cache "$CACHE" --timeout 240 --json "$out_abs/warm-job$1.json" --rw "$SB/rw" -- \
		sh -c 'echo "$MICA_WARM_PROBE $(pwd) $(cat)"; echo "$MICA_WARM_PROBE" >'"'$SB/rw/w'" \
		>"$out_abs/warm-job$1.out" 2>"$out_abs/warm-job$1.err")
}
job 1
job 2
rc=$?
cp "$OUT/warm-job2.err" "$OUT/warm-job.err"
expect warm-job "env, cwd, stdin and a --rw write of a restored run ($(warm warm-job1) / $(warm warm-job2))" \
	test "$rc" = 0 -a "$(warm warm-job1) $(warm warm-job2)" = "false true boot true false restore" \
	-a "$(cat "$OUT/warm-job2.out")" = "probe-2 $SB/cwd2 in-2" -a "$(cat "$SB/rw/w" 2>/dev/null)" = probe-2

# 4. --cold neither uses nor makes one.
sbw warm-cold --cold -- true
expect warm-cold "--cold boots and makes nothing ($(warm warm-cold))" \
	test "$rc" = 0 -a "$(warm warm-cold)" = "false false boot"

# 5. A changed kernel file is another entry (as is any other option in the key).
cp build/linux/vmlinuz "$CACHE/kernel"
mods=$(ls -d "$PWD"/build/linux/pkg/*/lib/modules/* | head -n 1)
sbw warm-kernel --kernel "$CACHE/kernel" --modules "$mods" -- true
sbw warm-kernel-again --kernel "$CACHE/kernel" --modules "$mods" -- true
touch -d '1 hour ago' "$CACHE/kernel"
sbw warm-kernel-changed --kernel "$CACHE/kernel" --modules "$mods" -- true
expect warm-kernel "a kernel file changed since is not restored from ($(warm warm-kernel) / $(warm warm-kernel-again) / $(warm warm-kernel-changed))" \
	test "$(warm warm-kernel) $(warm warm-kernel-again) $(warm warm-kernel-changed)" = \
	"false true boot true false restore false true boot"

# 6. A damaged entry is never used: the run says so, boots, and replaces it.
for f in "$CACHE"/sandbox-*.snap; do printf '\xff' | dd of="$f" bs=1 seek=4100 conv=notrunc status=none; done
sbw warm-damaged -- sh -c 'echo still; exit 5'
expect warm-damaged "a damaged entry: status 5, 'still', said on stderr, booted and replaced ($(warm warm-damaged))" \
	test "$rc" = 5 -a "$(cat "$OUT/warm-damaged.txt")" = still -a "$(warm warm-damaged)" = "false true boot" \
	-a "$(grep -c 'cannot be used' "$OUT/warm-damaged.err")" = 1
sbw warm-repaired -- true
expect warm-repaired "the replaced entry restores ($(warm warm-repaired))" test "$(warm warm-repaired)" = "true false restore"

# 7. Two runs restore one entry at once.
for i in 1 2; do
	timeout -k 5 300 "$MICA" sandbox --cache "$CACHE" --timeout 240 --json "$OUT/warm-both-$i.json" -- \
		sh -c "echo run-$i; exit $((10 + i))" >"$OUT/warm-both-$i.out" 2>"$OUT/warm-both-$i.err" </dev/null &
	pids[$i]=$!
done
wait "${pids[1]}"; rc1=$?
wait "${pids[2]}"; rc2=$?
rc=$rc1
expect warm-concurrent "two restores of one entry at once: statuses $rc1 $rc2, both warm" \
	test "$rc1 $rc2" = "11 12" -a "$(cat "$OUT/warm-both-1.out") $(cat "$OUT/warm-both-2.out")" = "run-1 run-2" \
	-a "$(warm warm-both-1) $(warm warm-both-2)" = "true false restore true false restore"
for name in warm-first warm-second; do
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))
print("# %s: wall %.2f s (setup %.3f s, run %.3f s), restore %s s, save %s s" % (sys.argv[2],
  j["seconds"]["setup"] + j["seconds"]["run"], j["seconds"]["setup"], j["seconds"]["run"],
  j["start"]["restore_seconds"], j["warm"]["save_seconds"]))' "$OUT/$name.json" "$name" 2>/dev/null
done
