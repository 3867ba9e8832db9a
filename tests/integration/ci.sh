#!/usr/bin/env bash
# mica as a CI step (ci/): --serial-log, --timestamps, --expect, --fail-on (and its kernel
# preset), --end-on, --json's outcome and --junit, for mica run (the test guest, Linux) and mica
# sandbox. Run from kvm.sh (one inner VM); every check is on the files mica wrote, its stderr and
# its exit status.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh

require_kvm
CI=$(realpath -m "$OUT/ci")
rm -rf "$CI" && mkdir -p "$CI"
py() { python3 - "$@"; }
# junit_check CHECK FILE ARGS...: junit_check.py's verdict on FILE, its line where expect CHECK
# shows a failure's stderr.
junit_check() { local name=$1; shift; python3 tests/integration/junit_check.py "$@" >"$OUT/$name.err" 2>&1; }

# A passing run, logged with timestamps: the log holds every line the guest printed, in order,
# each behind "[+SECONDS.s] ", the times never going back; --json says it passed.
run_mica ci-log run --kernel "$GUEST" --mem 64M --cmdline "tests=serial,cpus" \
	--serial-log "$CI/log.txt" --timestamps --expect '^ok [0-9]+ - cpus' --json "$CI/log.json"
expect ci-serial-log "status 0; the log is stdout's lines with increasing [+S.s] stamps" \
	py "$OUT/ci-log.out" "$CI/log.txt" "$CI/log.json" <<'PY'
import json, re, sys
out = open(sys.argv[1], 'rb').read().decode().splitlines()
log = open(sys.argv[2], 'rb').read().decode().splitlines()
j = json.load(open(sys.argv[3]))
stamps = [re.match(r'\[\+(\d+\.\d{6})s\] (.*)$', l) for l in log]
assert all(stamps), log
times = [float(m.group(1)) for m in stamps]
assert times == sorted(times) and times[0] > 0, times
assert [m.group(2) for m in stamps] == out and len(out) >= 6, (out, log)
assert j['version'] == 1 and j['outcome'] == 'pass' and j['why'] is None and j['mica_status'] == 0
p = j['patterns'][0]
assert p['kind'] == 'expect' and p['matched'] and re.match(r'ok \d+ - cpus', p['line'])
assert j['serial_log'].endswith('log.txt')
PY

# kill -9 while the guest runs: the log already holds every line the guest completed (each
# batch of whole lines is written as it comes, never kept in mica's memory).
timeout -k 5 120 "$MICA" run --kernel "$GUEST" --mem 64M --cmdline "tests=spin" \
	--serial-log "$CI/killed.log" >"$CI/killed.out" 2>/dev/null </dev/null &
pid=$!
wait_for "$CI/killed.log" '^# spin: looping' 60
kill -9 $pid
wait $pid 2>/dev/null
expect ci-serial-log-kill9 "after kill -9, the log has the lines stdout got, the spin line the last" \
	py "$CI/killed.out" "$CI/killed.log" <<'PY'
import sys
out = open(sys.argv[1], 'rb').read().replace(b'\r', b'').decode().splitlines()
log = open(sys.argv[2], 'rb').read().replace(b'\r', b'').decode().splitlines()
assert log and log == out and log[-1].startswith('# spin: looping'), (out, log)
PY

# An --expect that never appears: 122, one line naming it, the JSON says which.
run_mica ci-expect run --kernel "$GUEST" --mem 64M --cmdline "tests=serial" \
	--expect '^ok 1 - serial' --expect 'never printed' --json "$CI/expect.json"
expect ci-expect-missing "status 122, the missing pattern named on stderr and in the JSON" \
	test "$rc" = 122 -a -n "$(grep -F "never printed' never appeared" "$OUT/ci-expect.err")" \
	-a "$(py "$CI/expect.json" <<<'import json,sys; j=json.load(open(sys.argv[1])); print([p["matched"] for p in j["patterns"]], j["outcome"])')" = "[True, False] fail"

# A guest that never ends: --end-on stops it at the pattern with 0 (long before --timeout);
# with a fail pattern matched on the way, 123.
run_mica ci-end-on run --kernel "$GUEST" --mem 64M --cmdline "tests=spin" --timeout 100 \
	--end-on '^1\.\.1$' --json "$CI/end.json"
expect ci-end-on "status 0, ended by the end pattern, not by --timeout" \
	test "$rc" = 0 -a "$(py "$CI/end.json" <<<'import json,sys; j=json.load(open(sys.argv[1])); print(j["reason"], j["outcome"])')" = "end-on pass"
run_mica ci-fail-on run --kernel "$GUEST" --mem 64M --cmdline "tests=spin" --timeout 100 \
	--fail-on 'cmdline: tests=spin' --end-on '^never$'
expect ci-fail-on "a spinning guest stopped by --fail-on: status 123, the line on stderr" \
	test "$rc" = 123 -a -n "$(grep -F "matched at" "$OUT/ci-fail-on.err" | grep -F '# cmdline: tests=spin')"

# JUnit from the test guest's TAP: one passing, one skipped (no device), one failing test;
# the counts are the guest's own summary line's.
run_mica ci-junit run --kernel "$GUEST" --mem 64M --cmdline "tests=serial,virtio_rng,no_such_test" \
	--junit "$CI/guest.xml" --json "$CI/guest.json"
summary=$(grep -o 'mica-testguest: [0-9]* passed, [0-9]* failed ([0-9]* skipped)' "$OUT/ci-junit.txt")
read -r passed failed skipped <<<"$(echo "$summary" | tr -dc '0-9 ' | tr -s ' ')"
expect ci-junit-guest "JUnit counts = the guest's summary ($summary)" \
	junit_check ci-junit-guest "$CI/guest.xml" --tests $((passed + failed + skipped)) --failures "$failed" \
	--skipped "$skipped" --errors 0
expect ci-junit-guest-status "status 1 (a test failed), and --json counts the same" \
	test "$rc" = 1 -a "$(py "$CI/guest.json" <<<'import json,sys; t=json.load(open(sys.argv[1]))["tests"]; print(t["total"], t["failures"], t["skipped"])')" = "3 1 1"

# No TAP: one testcase for the whole run, failed with the reason.
run_mica ci-junit-run run --kernel "$GUEST" --mem 64M --cmdline "tests=spin" --timeout 100 \
	--end-on '^1\.\.1$' --expect 'never printed' --junit "$CI/run.xml"
expect ci-junit-whole-run "no results: one failed testcase saying which --expect was missing" \
	junit_check ci-junit-whole-run "$CI/run.xml" --tests 1 --failures 1 --skipped 0 --errors 0 --message 'never printed'

# Linux that panics (no root file system): --fail-on kernel ends it with 123 although the
# kernel would hang (panic=0), and the log has the panic's whole report, its trace included
# (the run ends once the guest is quiet, not at the first line). noxsave: in scripts/with-kvm's
# nested KVM (under QEMU TCG) Debian's 6.1 kernel warns "XSAVE consistency problem" at boot,
# under QEMU -accel kvm as under mica, and the preset rightly stops the run there.
if [ -f build/linux/vmlinuz ]; then
	LIMIT=300 run_mica ci-panic run --kernel build/linux/vmlinuz --mem 128M --timeout 200 \
		--cmdline "console=ttyS0 panic=0 root=/dev/nonexistent noxsave" --fail-on kernel \
		--serial-log "$CI/panic.log" --json "$CI/panic.json"
	expect ci-fail-on-kernel "status 123 on a kernel panic, the panic line named" \
		test "$rc" = 123 -a -n "$(grep -F -- '--fail-on kernel matched' "$OUT/ci-panic.err" | grep 'Kernel panic')"
	expect ci-fail-on-kernel-log "the log holds the panic's end marker, after the matched line" \
		matches "$CI/panic.log" 'end Kernel panic'
else
	fail ci-fail-on-kernel "build/linux/vmlinuz is missing: scripts/get-linux-guest did not run"
fi

# mica sandbox: a command's TAP (a kselftest-style nested run) into JUnit; hostile bytes in its
# output reach the JSON and the XML escaped; a pattern sees CMD's stdout.
cat >"$CI/tap.sh" <<'SH'
printf 'TAP version 13\n1..2\n# selftests: demo: inner\n# TAP version 13\n# 1..2\n'
printf '# ok 1 first\n# bad bytes: \001\033[31m\377\376 "quotes" <tag> & ]]> \200\n# not ok 2 second\n'
printf 'not ok 1 selftests: demo: inner # exit=1\nok 2 selftests: demo: plain\n'
exit 1
SH
if [ -f build/linux/vmlinuz ]; then
	LIMIT=300 run_mica ci-sandbox sandbox --timeout 240 --junit "$CI/sb.xml" --json "$CI/sb.json" \
		--expect 'bad bytes' --serial-log "$CI/sb.log" -- sh "$CI/tap.sh"
	expect ci-sandbox-junit "JUnit: 3 testcases, 1 failure (the nested one)" \
		junit_check ci-sandbox-junit "$CI/sb.xml" --tests 3 --failures 1 --skipped 0 --errors 0
	expect ci-sandbox-status "CMD's status 1 is mica's" test "$rc" = 1
	expect ci-sandbox-escaping "the hostile line reaches --json as valid JSON, the log byte-exact" \
		py "$CI/sb.json" "$CI/sb.log" <<'PY'
import json, sys
j = json.load(open(sys.argv[1], encoding='utf-8'))
line = j['patterns'][0]['line']
assert '\x01\x1b[31m\ufffd\ufffd "quotes" <tag> & ]]> \ufffd' in line, repr(line)
assert b'\001\033[31m\377\376 "quotes"' in open(sys.argv[2], 'rb').read()
PY
	# A kernel crash while CMD runs: --fail-on kernel says so (the sandbox would otherwise
	# only see the guest reboot: 125).
	LIMIT=300 run_mica ci-sandbox-crash sandbox --timeout 240 --fail-on kernel --append noxsave -- \
		sh -c 'echo c >/proc/sysrq-trigger; sleep 100'
	expect ci-sandbox-fail-on-kernel "status 123 and the kernel's panic line" \
		test "$rc" = 123 -a -n "$(grep -F -- '--fail-on kernel matched' "$OUT/ci-sandbox-crash.err" | grep -E 'Kernel panic|sysrq')"
fi
