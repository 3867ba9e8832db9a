#!/usr/bin/env bash
# mica check (issue #13): where /dev/kvm is not usable it exits 1, its first "no" line names
# /dev/kvm and scripts/with-kvm, and --json says so; where it is (scripts/with-kvm's VM: nested
# KVM) it exits 0, says which KVM this is and lists ioeventfd and irqfd as ok. A usage error
# exits 2 with one line. tests/run-all runs this on the host (next to host.sh) and kvm.sh in the
# KVM VM: one `mica check` there, its JSON read in bash (python starts slowly, nested).
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

run_mica check-usage check --no-such-option
expect check-usage "status 2, one line on stderr naming the option and --help, no stdout" \
	test "$rc" = 2 -a "$(wc -l <"$OUT/check-usage.err")" = 1 -a ! -s "$OUT/check-usage.out" \
	-a -n "$(grep -- '--no-such-option.*mica check --help' "$OUT/check-usage.err")"

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	name=check-nokvm
	run_mica $name check --json "$OUT/$name.json"
	expect $name-status "status 1 where /dev/kvm is not usable" test "$rc" = 1
	expect $name-names-kvm "a no line names /dev/kvm and scripts/with-kvm" \
		matches "$OUT/$name.txt" '^no +/dev/kvm .*scripts/with-kvm'
	expect $name-verdict "the last line says mica cannot run VMs, and why" \
		test -n "$(tail -n 1 "$OUT/$name.txt" | grep '^mica cannot run VMs here: /dev/kvm ')"
	python3 - "$OUT/$name.json" >"$OUT/$name-json.txt" 2>&1 <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["version"] == 1, j["version"]
assert j["can_run"] is False and j["kvm"]["usable"] is False, (j["can_run"], j["kvm"])
assert "/dev/kvm" in j["blocker"], j["blocker"]
assert j["items"] and all(i["status"] in ("ok", "warn", "no") for i in j["items"])
print("ok")
PY
	py=$(tail -n 1 "$OUT/$name-json.txt")
	expect $name-json "--json parses: version 1, KVM unusable, the blocker ($py)" \
		test "$(cat "$OUT/$name-json.txt")" = ok
else
	# What the host is, found apart from mica's CPUID probe: PVM's module, or the hypervisor
	# flag in /proc/cpuinfo.
	if [ -d /sys/module/kvm_pvm ]; then kind=PVM
	elif grep -q '^flags.* hypervisor' /proc/cpuinfo; then kind=nested
	else kind=hardware
	fi
	name=check-kvm
	run_mica $name check --json "$OUT/$name.json"
	expect $name-status "status 0 where /dev/kvm works" test "$rc" = 0
	expect $name-kind "says KVM: $kind" matches "$OUT/$name.txt" "^(ok|warn) +KVM: $kind"
	expect $name-ioeventfd-irqfd "ioeventfd and irqfd listed as ok, and set up on a VM" \
		matches_all "$OUT/$name.txt" \
		'^ok +KVM has every capability mica needs: .*IOEVENTFD.* IRQFD' \
		'^ok +a VM as mica builds it: .*ioeventfd.*irqfd'
	expect $name-exit-cost "a VM exit was timed" \
		matches "$OUT/$name.txt" '^ok +a VM exit costs [0-9.]+ us'
	expect $name-verdict "the last line says mica can run VMs" \
		matches "$OUT/$name.txt" '^mica can run VMs here'
	expect $name-json "--json: version 1, can run, KVM usable, kind $kind" \
		matches_all "$OUT/$name.json" '"version": 1,' '"can_run": true,' '"usable": true,' \
		"\"kind\": \"${kind,,}\","
	grep -E '^(warn|no) ' "$OUT/$name.txt" | sed 's/^/# /'
	tail -n 1 "$OUT/$name.txt" | sed 's/^/# /'
fi
