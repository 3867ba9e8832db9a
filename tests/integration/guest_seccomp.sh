#!/usr/bin/env bash
# seccomp (confine/seccomp.h): every other integration test runs with the filters on (the
# default); here:
#   seccomp-probe-KIND   --debug-seccomp-probe makes one thread of that kind call personality(2)
#                        once its filter is on: mica ends with status 125 and one line naming the
#                        call and the thread kind;
#   seccomp-off-probe    with --seccomp off the same call is allowed: the guest finishes (0);
#   seccomp-threads      while the guest runs, every thread of mica (the loop, two vCPUs, the blk
#                        pool's workers) is in seccomp filter mode (Seccomp: 2 in
#                        /proc/PID/task/TID/status), and SIGTERM still ends it (143);
#   seccomp-timeout      the --timeout ending (each vCPU's state, read from the loop thread)
#                        works under the filter.
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

# The guest spins; meanwhile each thread's status shows its filter (polled for up to 60 s: a
# sanitizer build starts slowly); then SIGTERM ends mica through the loop's signalfd (143).
# The loop (named after the binary), two vCPUs and four pool workers are confined; only
# ThreadSanitizer's own background thread, started before main(), is not (mica-tsan).
name=seccomp-threads
unconfined_ok=0
[[ $MICA == *-tsan ]] && unconfined_ok=1
"$MICA" run --kernel "$GUEST" --mem 64M --cpus 2 --disk "$img" --cmdline "tests=spin" \
	--timeout 120 </dev/null >"$OUT/$name.out" 2>"$OUT/$name.err" &
pid=$!
modes= confined=no
for _ in $(seq 600); do
	nap 0.1
	kill -0 $pid 2>/dev/null || break
	now= n2=0 other=0 vcpu1=no
	for t in /proc/$pid/task/*; do
		[ -r "$t/comm" ] && read -r comm <"$t/comm" || continue
		while read -r k v; do
			[ "$k" = Seccomp: ] || continue
			now="$now $comm:$v"
			if [ "$v" = 2 ]; then n2=$((n2 + 1)); else other=$((other + 1)); fi
			[ "$comm:$v" = mica-vcpu1:2 ] && vcpu1=yes
		done <"$t/status"
	done 2>/dev/null
	modes=$now
	if [ $n2 -ge 7 ] && [ $other -le $unconfined_ok ] && [ $vcpu1 = yes ]; then
		confined=yes
		break
	fi
done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
echo "# $name: thread:mode$modes"
expect $name "every thread in filter mode (Seccomp: 2):$modes" test $confined = yes
expect $name-sigterm "SIGTERM under the filters: status 143, no seccomp report" \
	test "$rc" = 143 -a -z "$(grep seccomp "$OUT/$name.err")"

# --timeout under the filters: each vCPU's state is read from the loop thread.
name=seccomp-timeout
run_mica $name run --kernel "$GUEST" --mem 64M --cpus 2 --cmdline "tests=spin" --timeout 2
expect $name "status 124 and each vCPU's state, no seccomp report" \
	test "$rc" = 124 -a -n "$(grep '^mica: vCPU 1' "$OUT/$name.err")" \
	-a -z "$(grep seccomp "$OUT/$name.err")"
