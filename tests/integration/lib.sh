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

# Checks in pure bash (in a nested VM every process costs much):
# matches FILE ERE: a line of FILE matches ERE.
matches() {
	local l
	[ -r "$1" ] || return 1
	while IFS= read -r l; do
		[[ $l =~ $2 ]] && return 0
	done <"$1"
	return 1
}
# matches_all FILE ERE...: each ERE matches a line of FILE.
matches_all() {
	local f=$1 re
	shift
	for re; do
		matches "$f" "$re" || return 1
	done
}

# nap SECONDS: sleeps without starting a process (a read that times out on a FIFO nobody
# writes to); in a nested VM every process costs much, and a poll loop runs many.
nap_fifo=$(mktemp -u /tmp/mica-nap.XXXXXX)
if mkfifo "$nap_fifo" && exec {nap_fd}<>"$nap_fifo"; then
	nap() { read -r -t "$1" -u $nap_fd; }
else
	nap() { sleep "$1"; }
fi
rm -f "$nap_fifo"

# wait_for FILE ERE SECONDS [PID]: whether a line of FILE matches ERE within SECONDS (polled
# every 0.1 s, in bash alone); with PID, no longer than that process lives.
wait_for() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		matches "$1" "$2" && return 0
		[ -z "${4:-}" ] || kill -0 "$4" 2>/dev/null || return 1
		nap 0.1
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

# free_port: a port of 127.0.0.1 nobody listens on.
free_port() {
	local p i
	for ((i = 0; i < 50; i++)); do
		p=$((30000 + RANDOM % 20000))
		(exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; return; }
	done
}
# tcp_line PORT: connects to 127.0.0.1:PORT and prints the first line received within 40 s.
tcp_line() {
	local fd line
	exec {fd}<>/dev/tcp/127.0.0.1/$1 || return 1
	IFS= read -r -t 40 -u $fd line && printf '%s\n' "$line"
	exec {fd}>&-
}

# tap_read FILE: the guest's TAP results in FILE, into the associative array tap: tap[TEST] is
# "ok", "skip REASON" or "not ok REASON" (read once: checks on many tests stay cheap).
declare -A tap
tap_read() {
	local l re='^(not )?ok [0-9]+ - ([a-z0-9_]+)( # (SKIP )?(.*))?$'
	tap=()
	[ -r "$1" ] || return
	while IFS= read -r l; do
		[[ $l =~ $re ]] || continue
		if [ -n "${BASH_REMATCH[1]}" ]; then
			tap[${BASH_REMATCH[2]}]="not ok ${BASH_REMATCH[5]}"
		elif [ -n "${BASH_REMATCH[4]}" ]; then
			tap[${BASH_REMATCH[2]}]="skip ${BASH_REMATCH[5]}"
		else
			tap[${BASH_REMATCH[2]}]=ok
		fi
	done <"$1"
}

# ---- bad invocations: a table, one case a line, checked by bad_case ----
# bad_table < TABLE: each line is NAME STATUS ERE [@MARK...] ARGS... in shell words (quote what
# has spaces; "$F", "$T" and the like expand; blank lines and # comments are skipped). T is the
# case's own empty directory, mica's working directory too. Marks:
#   @nobody   run as nobody where we are root (permission cases: root reads anything)
#   @no-net-admin  run without CAP_NET_ADMIN (tap cases where we are root)
#   @as=KIB   run under ulimit -v KIB (the address-space limit; skipped for sanitizer builds)
#   @needs=FILE  skip the case unless FILE exists (a Linux kernel, a fixture)
BAD_DIR=$(realpath -m "${BAD_DIR:-$OUT/bad}")
bad_table() {
	local line name
	while IFS= read -r line; do
		[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
		name=${line%%[[:space:]]*}
		T=$BAD_DIR/$name
		rm -rf "$T" && mkdir -p "$T"
		eval "bad_case $line"
	done
}

# bad_case NAME STATUS ERE [@MARK...] ARGS...: mica ARGS must exit STATUS with exactly one line
# on stderr, matching ERE, nothing on stdout, and leave nothing behind in T.
bad_case() {
	local name=$1 status=$2 re=$3 wrap=() as= left lines=0 l why=
	shift 3
	while [[ ${1:-} == @* ]]; do
		case $1 in
		@nobody) [ "$(id -u)" = 0 ] && wrap=(setpriv --reuid=nobody --regid=nogroup --clear-groups) ;;
		@no-net-admin) [ "$(id -u)" = 0 ] && wrap=(setpriv --bounding-set=-net_admin --inh-caps=-net_admin) ;;
		@as=*) as=${1#@as=}
			# A sanitizer's shadow memory cannot live under an address-space limit.
			[[ $MICA != *-san && $MICA != *-tsan ]] || { skip "bad-$name" "ulimit -v and a sanitizer build"; return; } ;;
		@needs=*) [ -e "${1#@needs=}" ] || { skip "bad-$name" "no ${1#@needs=}"; return; } ;;
		esac
		shift
	done
	[ -n "${MICA_ABS:-}" ] || MICA_ABS=$(realpath "$MICA")
	(
		cd "$T" || exit 99
		[ -z "$as" ] || ulimit -v "$as"
		exec timeout -k 2 "${LIMIT:-20}" "${wrap[@]}" "$MICA_ABS" "$@"
	) >"$OUT/bad-$name.out" 2>"$OUT/bad-$name.err" </dev/null
	rc=$?
	while IFS= read -r l; do lines=$((lines + 1)); done <"$OUT/bad-$name.err"
	left=$(shopt -s nullglob dotglob; l=("$T"/*); echo "${l[@]##*/}")
	[ "$rc" = "$status" ] || why="status $rc, want $status;"
	[ "$lines" = 1 ] || why="$why $lines lines on stderr, want 1;"
	matches "$OUT/bad-$name.err" "$re" || why="$why stderr does not match '$re';"
	[ ! -s "$OUT/bad-$name.out" ] || why="$why output on stdout;"
	[ -z "$left" ] || why="$why left behind: $left;"
	if [ -z "$why" ]; then
		ok "bad-$name"
	else
		fail "bad-$name" "$why stderr: $(head -c 300 "$OUT/bad-$name.err" | tr '\n' ' ')"
	fi
}
