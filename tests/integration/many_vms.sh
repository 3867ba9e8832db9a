#!/usr/bin/env bash
# Many VMs at once on one host (issue #13, mica for CI systems): N mica runs of the test guest
# started together never collide. Each forwards a host port chosen by the kernel
# (--net user,hostfwd=tcp:127.0.0.1:0-:GUESTPORT), has its own --control socket, --stats-json
# file and writable disk image, and all share one read-only image. Checked: each run's exit
# status and guest test; the port on each stderr line ("mica: hostfwd tcp ADDR:PORT -> guest
# ADDR:PORT") is the one in its JSON, and the N ports are distinct; a connection to each port
# reaches that VM's guest (its server answers with its own guest port); while they run, a
# further mica opening one's image read-write, or the shared one read-write, fails with status 2
# and one line naming the lock. Needs KVM (scripts/with-kvm); tests/integration/kvm.sh calls it
# (alone: scripts/with-kvm tests/integration/many_vms.sh).
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm

N=${MANY_VMS:-4}
GUEST_PORT0=8000 # VM i's guest server listens on GUEST_PORT0 + i
# /tmp: image locks and UNIX sockets need a local file system (not 9p).
DIR=$(mktemp -d /tmp/mica-many-vms.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
truncate -s 1M "$DIR/shared.img"
for ((i = 0; i < N; i++)); do truncate -s 1M "$DIR/disk-$i.img"; done

# start_vm I: starts VM I in the background (its pid in pids[I]); its stdout, stderr, --json,
# --serial-log and --junit are $OUT/many-vm-I.{out,err,json,log,xml}, its control socket
# $DIR/ctl-I.sock. The one place a run's options are given.
pids=()
start_vm() {
	local i=$1 name=many-vm-$1 gport=$((GUEST_PORT0 + $1))
	timeout -k 5 "${LIMIT:-300}" "$MICA" run --kernel "$GUEST" --mem 32M --timeout 240 \
		--net "user,hostfwd=tcp:127.0.0.1:0-:$gport" --control "$DIR/ctl-$i.sock" \
		--json "$OUT/$name.json" --disk "$DIR/disk-$i.img" --disk "$DIR/shared.img,ro" \
		--serial-log "$OUT/$name.log" --junit "$OUT/$name.xml" \
		--expect "listening on 10\.0\.2\.15:$gport\$" --fail-on '^not ok' \
		--cmdline "tests=virtio_net_tcp_server net_listen=$gport" \
		</dev/null >"$OUT/$name.out" 2>"$OUT/$name.err" &
	pids[i]=$!
}

# reported_port I: the host port VM I's stderr line reports for its rule (waits up to 120 s).
reported_port() {
	local re="^mica: hostfwd tcp 127\.0\.0\.1:([0-9]+) -> guest 10\.0\.2\.15:$((GUEST_PORT0 + $1))$" l
	wait_for "$OUT/many-vm-$1.err" "$re" 120 || return 1
	while IFS= read -r l; do
		[[ $l =~ $re ]] && { echo "${BASH_REMATCH[1]}"; return 0; }
	done <"$OUT/many-vm-$1.err"
	return 1
}

for ((i = 0; i < N; i++)); do start_vm $i; done

ports=() reported=0
for ((i = 0; i < N; i++)); do
	ports[i]=$(reported_port $i) && reported=$((reported + 1))
done
expect many-vms-ports-reported "each run reports its forwarded port on stderr ($reported of $N: ${ports[*]})" \
	test "$reported" = "$N"
expect many-vms-ports-distinct "the $N reported ports are distinct (${ports[*]})" \
	test "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" = "$N"

# While they run (each waits for a connection): their locks hold, their sockets are theirs.
sockets=0
for ((i = 0; i < N; i++)); do [ -S "$DIR/ctl-$i.sock" ] && sockets=$((sockets + 1)); done
expect many-vms-control-sockets "each run has its own control socket ($sockets of $N)" \
	test "$sockets" = "$N"
lines() { local n=0 l; while IFS= read -r l; do n=$((n + 1)); done <"$1"; echo $n; }
run_mica many-vms-locked-rw run --kernel "$GUEST" --mem 32M --cmdline tests=serial --disk "$DIR/disk-0.img"
expect many-vms-locked-rw "a 5th mica opening run 0's image read-write: status 2, one line naming the lock" \
	test "$rc" = 2 -a "$(lines "$OUT/many-vms-locked-rw.err")" = 1 -a \
	-n "$(grep 'image .*disk-0.img is in use by another process (locked)' "$OUT/many-vms-locked-rw.err")"
run_mica many-vms-shared-rw run --kernel "$GUEST" --mem 32M --cmdline tests=serial --disk "$DIR/shared.img"
expect many-vms-shared-rw "a 5th mica opening the shared read-only image read-write: status 2, the lock" \
	test "$rc" = 2 -a "$(lines "$OUT/many-vms-shared-rw.err")" = 1 -a \
	-n "$(grep 'image .*shared.img is in use by another process (locked)' "$OUT/many-vms-shared-rw.err")"

# A connection to each reported port reaches that VM's guest: its server sends its own port.
for ((i = 0; i < N; i++)); do
	: >"$OUT/many-vm-$i.fwd"
	wait_for "$OUT/many-vm-$i.out" 'virtio_net_tcp_server: listening' 120 &&
		tcp_line "${ports[i]}" >"$OUT/many-vm-$i.fwd" 2>&1
done

statuses=()
for ((i = 0; i < N; i++)); do
	wait "${pids[i]}"
	statuses[i]=$?
	tr -d '\r' <"$OUT/many-vm-$i.out" >"$OUT/many-vm-$i.txt"
done

# Each JSON parses; its virtio-net entry's "hostfwd" (one python for all: a process is costly in
# a nested VM). Prints "I HOSTFWD" or "I error: WHY" per run.
args=()
for ((i = 0; i < N; i++)); do args+=("$OUT/many-vm-$i.json"); done
python3 - "${args[@]}" >"$OUT/many-vms-json.txt" 2>&1 <<'EOF'
import json, sys
for i, path in enumerate(sys.argv[1:]):
    try:
        j = json.load(open(path))
        fwd = [d.get("hostfwd") for d in j["devices"] if d.get("device") == "virtio-net"]
        if j["outcome"] != "pass" or j["tests"] != {"total": 1, "failures": 0, "errors": 0, "skipped": 0}:
            print(i, "error: outcome", j["outcome"], j["why"], j["tests"])
        else:
            print(i, fwd[0] if len(fwd) == 1 and fwd[0] else "error: no virtio-net hostfwd")
    except Exception as e:
        print(i, "error:", e)
EOF

for ((i = 0; i < N; i++)); do
	name=many-vm-$i gport=$((GUEST_PORT0 + i)) rc=${statuses[i]}
	json=$(grep "^$i " "$OUT/many-vms-json.txt")
	json=${json#"$i "}
	expect $name "status 0, the guest's server test passed" \
		test "$rc" = 0 -a -n "$(grep '^ok [0-9]* - virtio_net_tcp_server' "$OUT/$name.txt")"
	expect $name-hostfwd "a connection to 127.0.0.1:${ports[i]} reached this guest's server on $gport ($(head -c 100 "$OUT/$name.fwd"))" \
		matches "$OUT/$name.fwd" "^mica-tcp-server [a-z-]+ $gport$"
	expect $name-json "its JSON parses, passed with 1 test, and reports the port on its stderr (${json:-nothing})" \
		test "$json" = "tcp:127.0.0.1:${ports[i]}-10.0.2.15:$gport"
	expect $name-log "its own --serial-log holds its own guest's lines, and its JUnit 1 passed test" \
		matches_all "$OUT/$name.log" "listening on 10\.0\.2\.15:$gport" "^ok 1 - virtio_net_tcp_server" &&
		python3 tests/integration/junit_check.py "$OUT/$name.xml" --tests 1 --failures 0 \
			--skipped 0 --errors 0 >/dev/null
done
