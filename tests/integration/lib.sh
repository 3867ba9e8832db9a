# Helpers for integration tests: each check prints one TAP-style line that tests/run-all counts.
# Sourced by the test scripts; they run from the repository root.

MICA=${MICA:-build/mica}
GUEST=${GUEST:-build/guest/mica-testguest}
OUT=${OUT:-build/test-out}
mkdir -p "$OUT"

ok()   { echo "ok - $1"; }
fail() { echo "not ok - $1 # $2"; }
skip() { echo "ok - $1 # SKIP $2"; }

# run_mica NAME [mica args...]: WRAP, if set, is a command prefix (e.g. setpriv ...).
# run_mica NAME [mica args...]: runs mica with stdin from /dev/null unless STDIN is set;
# leaves stdout in $OUT/NAME.out, stderr in $OUT/NAME.err, status in $rc, seconds in $secs.
run_mica() {
	local name=$1; shift
	local start end
	start=$(date +%s.%N)
	if [ -n "${STDIN:-}" ]; then
		printf '%b' "$STDIN" | timeout -k 5 "${LIMIT:-120}" $WRAP "$MICA" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
	else
		timeout -k 5 "${LIMIT:-120}" $WRAP "$MICA" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" </dev/null
	fi
	rc=$?
	end=$(date +%s.%N)
	secs=$(echo "$end - $start" | bc 2>/dev/null || echo 0)
	tr -d '\r' <"$OUT/$name.out" >"$OUT/$name.txt"
}

# expect NAME CONDITION-DESCRIPTION COMMAND...: ok when COMMAND succeeds, else not ok with the
# description and the tail of mica's stderr.
expect() {
	local name=$1 what=$2; shift 2
	if "$@"; then
		ok "$name"
	else
		fail "$name" "$what (status $rc; stderr: $(tail -n 2 "$OUT/$name.err" 2>/dev/null | tr '\n\r' '  '))"
	fi
}

# require_kvm: a script that needs KVM ends here, with one not-ok line, where there is none.
require_kvm() {
	if [ ! -w /dev/kvm ]; then
		fail kvm-available "/dev/kvm is not usable here; run this through scripts/with-kvm"
		exit 1
	fi
}

# wait_for FILE REGEX SECONDS: whether a line of FILE matches REGEX within SECONDS.
wait_for() {
	local i
	for i in $(seq $(($3 * 10))); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

has()     { grep -q -- "$2" "$OUT/$1.txt"; }
has_err() { grep -q -- "$2" "$OUT/$1.err"; }

# type_when NAME PATTERN LINE [mica args...]: runs mica with stdin on a FIFO and writes LINE to
# it once PATTERN shows on mica's stdout (input sent earlier would be flushed by the guest's own
# device reset, as on hardware). Leaves output and $rc as run_mica does.
type_when() {
	local name=$1 pattern=$2 line=$3 fifo pid; shift 3
	fifo=$(mktemp -u /tmp/mica-test.XXXXXX) && mkfifo "$fifo" # not on 9p: it has no FIFOs
	timeout -k 5 "${LIMIT:-120}" "$MICA" "$@" <"$fifo" >"$OUT/$name.out" 2>"$OUT/$name.err" &
	pid=$!
	exec 9>"$fifo"
	for _ in $(seq 600); do
		grep -q -- "$pattern" "$OUT/$name.out" 2>/dev/null && break
		sleep 0.1
	done
	printf '%s\n' "$line" >&9
	wait $pid; rc=$?
	exec 9>&-
	rm -f "$fifo"
	tr -d '\r' <"$OUT/$name.out" >"$OUT/$name.txt"
}
