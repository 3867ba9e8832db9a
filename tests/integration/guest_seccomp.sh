#!/usr/bin/env bash
# seccomp (sandbox/seccomp.h): every other integration test runs with the filters on (the
# default); here:
#   seccomp-probe-KIND   --debug-seccomp-probe makes one thread of that kind call personality(2)
#                        once its filter is on: mica ends with status 125 and one line naming the
#                        call and the thread kind;
#   seccomp-off-probe    with --seccomp off the same call is allowed: the guest finishes (0);
#   seccomp-threads      while the guest runs, every thread of mica (the loop, two vCPUs, the blk
#                        pool's workers) is in seccomp filter mode (Seccomp: 2 in
#                        /proc/PID/task/TID/status); the --timeout ending (each vCPU's state
#                        read from the loop thread) still works under the filter.
# Needs KVM (scripts/with-kvm).
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

DIR=$(mktemp -d /tmp/mica-seccomp.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
img=$DIR/disk.img
truncate -s 1M "$img"

# The io probe needs the blk pool's workers (io_uring's kernel threads make no calls of ours).
export MICA_BLK_NO_URING=1
for kind in loop vcpu io; do
	name=seccomp-probe-$kind
	run_mica $name run --kernel "$GUEST" --mem 64M --disk "$img" --cmdline "tests=serial" \
		--debug-seccomp-probe $kind
	expect $name "status 125 and one line naming personality and a $kind thread" \
		test "$rc" = 125 -a "$(wc -l <"$OUT/$name.err")" = 1 -a \
		-n "$(grep "^mica: seccomp: forbidden system call personality (135; arguments 0xffffffff, [^)]*) on thread $kind[0-9]* ($kind): stopping\$" "$OUT/$name.err")"
done

name=seccomp-off-probe
run_mica $name run --kernel "$GUEST" --mem 64M --disk "$img" --cmdline "tests=serial" \
	--seccomp off --debug-seccomp-probe vcpu
expect $name "with --seccomp off the probe's call is allowed: the guest's status 0" \
	test "$rc" = 0 -a -n "$(grep '^ok [0-9]* - serial' "$OUT/$name.txt")"

# The guest spins until --timeout; meanwhile each thread's status shows its filter.
name=seccomp-threads
"$MICA" run --kernel "$GUEST" --mem 64M --cpus 2 --disk "$img" --cmdline "tests=spin" \
	--timeout 4 </dev/null >"$OUT/$name.out" 2>"$OUT/$name.err" &
pid=$!
modes=
for _ in $(seq 40); do
	nap 0.1
	modes=
	for t in /proc/$pid/task/*; do
		read -r comm <"$t/comm" 2>/dev/null || continue
		while read -r k v; do
			[ "$k" = Seccomp: ] && modes="$modes $comm:$v"
		done <"$t/status" 2>/dev/null
	done
	# The loop (named mica), two vCPUs and four pool workers, all confined.
	n2=$(printf '%s\n' $modes | grep -c ':2$')
	[ "$n2" -ge 7 ] && [ -z "$(printf '%s\n' $modes | grep -v ':2$')" ] && break
done
wait $pid
rc=$?
echo "# $name: thread:mode$modes"
expect $name "every thread in filter mode (Seccomp: 2):$modes" \
	test "$(printf '%s\n' $modes | grep -c ':2$')" -ge 7 -a -z "$(printf '%s\n' $modes | grep -v ':2$')" \
	-a -n "$(printf '%s\n' $modes | grep '^mica-vcpu1:2$')"
expect $name-timeout "--timeout under the filters: status 124 and each vCPU's state" \
	test "$rc" = 124 -a -n "$(grep '^mica: vCPU 1' "$OUT/$name.err")" \
	-a -z "$(grep seccomp "$OUT/$name.err")"
