# shellcheck shell=bash
# bench/lib.sh: helpers for scripts/bench and its sections (bench/sections/*.sh); sourced.
# A section prints its table on stdout and writes $BENCH_OUT/<section>.json, whose "env" object
# comes from bench_env_json. Everything here is plain bash + awk: the inner VM of
# scripts/with-kvm has no more than the host's base system.

BENCH_OUT=${BENCH_OUT:-build/bench}
BENCH_BIN=$BENCH_OUT/bin
BENCH_RUNS=${BENCH_RUNS:-5}
MICA=${MICA:-build/mica}
GUEST=${GUEST:-build/guest/mica-testguest}

bench_log() { printf 'bench: %s\n' "$*" >&2; }
bench_die() {
    bench_log "$*"
    exit 1
}

# bench_build_tools: compiles the standalone bench/*.c into $BENCH_BIN when missing or older
# than their sources (bench/bench.mk does the same from make, on the host: faster than in the
# inner VM). bench/blkhost.c links the VMM's objects: its section has make build it.
bench_build_tools() {
    local cc=${CC:-cc} flags=(-std=c11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE)
    mkdir -p "$BENCH_BIN"
    _bench_cc() { # OUT SRC EXTRA...
        local out=$BENCH_BIN/$1 src=$2
        shift 2
        if [[ ! -x $out || $src -nt $out || bench/firstrun.h -nt $out ]]; then
            bench_log "building $out"
            "$cc" "${flags[@]}" -I. -o "$out" "$src" "$@" || bench_die "cannot build $out"
        fi
    }
    _bench_cc benchrun bench/benchrun.c
    _bench_cc firstrun.so bench/firstrun.c -shared -fPIC
    _bench_cc minilaunch bench/minilaunch.c -lfdt
    _bench_cc netsink bench/netsink.c
    _bench_cc vmwatch bench/vmwatch.c
}

# bench_json_str STRING: STRING as a JSON string literal.
bench_json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\t'/ }
    s=${s//$'\r'/}
    s=${s//$'\n'/\\n}
    printf '"%s"' "$s"
}

# bench_env_json: where the numbers come from, as a JSON object.
bench_env_json() {
    local cpu kernel nested thp version
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    kernel=$(uname -sr)
    nested=false
    [[ ${WITH_KVM_INNER:-0} == 1 ]] && nested=true
    thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)
    version=$("$MICA" --version 2>/dev/null | head -n 1)
    printf '{"cpu_model": %s, "cpus": %s, "kernel": %s, "nested": %s, "thp": %s, ' \
        "$(bench_json_str "$cpu")" "$(nproc)" "$(bench_json_str "$kernel")" "$nested" \
        "$(bench_json_str "${thp:-unknown}")"
    printf '"mica_version": %s, "date": %s}' "$(bench_json_str "$version")" \
        "$(bench_json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
}

# bench_kv FILE KEY: the value of KEY in a key=value file (the first one), empty if none.
bench_kv() { awk -F= -v k="$2" '$1 == k { print substr($0, length(k) + 2); exit }' "$1"; }

# bench_values KEY FILE...: KEY's value from each file, one per line (files without it skipped).
bench_values() {
    local key=$1 f
    shift
    for f in "$@"; do bench_kv "$f" "$key"; done | sed '/^$/d'
}

# bench_stats: reads numbers on stdin, prints "median min" (median of an even count: the mean
# of the middle two), or "- -" when there are none.
bench_stats() {
    sort -g | awk '{ v[NR] = $1 }
        END {
            if (NR == 0) { print "- -"; exit }
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%.10g %.10g\n", m, v[1]
        }'
}

# bench_json_metric KEY FILE...: {"median": M, "min": N, "runs": [...]} for KEY over FILEs.
bench_json_metric() {
    local key=$1 vals stats
    shift
    vals=$(bench_values "$key" "$@")
    stats=$(bench_stats <<<"$vals")
    [[ -n $vals ]] || {
        printf 'null'
        return
    }
    printf '{"median": %s, "min": %s, "runs": [%s]}' "${stats% *}" "${stats#* }" \
        "$(paste -sd, <<<"$vals" | sed 's/,/, /g')"
}

# bench_cell KEY SCALE FILE...: "median (min)" of KEY over FILEs, divided by SCALE, for tables.
bench_cell() {
    local key=$1 scale=$2 stats
    shift 2
    stats=$(bench_values "$key" "$@" | bench_stats)
    [[ $stats != "- -" ]] || {
        echo "-"
        return
    }
    awk -v s="$scale" -v m="${stats% *}" -v n="${stats#* }" 'BEGIN {
        f = s == 1 ? "%.0f (%.0f)" : "%.1f (%.1f)"; printf f "\n", m / s, n / s }'
}

# bench_us: microseconds since the epoch (builtins only: cheap enough to call per line).
bench_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$((10#$t))"; }

# bench_follow PID FD DEADLINE_US OUT HANDLER: follows a VMM's output, line by line from FD,
# until EOF (returns 0) or the deadline (kills PID, returns 1). Each line, its CR stripped, is
# passed to HANDLER (which sees the caller's locals: bash scopes dynamically) and then
# appended to OUT.
bench_follow() {
    local pid=$1 fd=$2 deadline=$3 out=$4 handler=$5 line left
    while :; do
        left=$((deadline - $(bench_us)))
        if ((left <= 0)); then
            kill -KILL "$pid" 2>/dev/null
            return 1
        fi
        IFS= read -r -t "$((left / 1000000 + 1))" -u "$fd" line || {
            (($? > 128)) && continue # read's own timeout: look at the deadline again
            [[ -n $line ]] && printf '%s\n' "$line" >>"$out"
            return 0 # EOF: the VMM has exited
        }
        line=${line%$'\r'}
        "$handler" "$line"
        printf '%s\n' "$line" >>"$out"
    done
}

# KVM's per-VM statistics in debugfs: one directory PID-FD per VM.
BENCH_KVMDBG=/sys/kernel/debug/kvm

# bench_need_kvm_stats SECTION: mounts debugfs if need be; the section dies without KVM's
# statistics.
bench_need_kvm_stats() {
    if [[ ! -d $BENCH_KVMDBG ]]; then
        mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null ||
            bench_log "$1: cannot mount debugfs at /sys/kernel/debug (root?)"
    fi
    [[ -d $BENCH_KVMDBG ]] || bench_die "$1: no $BENCH_KVMDBG: KVM's exit statistics are needed"
}

# bench_kvm_read PID STAT...: sets bench_kvm_dir to the debugfs directory of PID's VM ("" when
# it has none) and bench_kvm=(STAT=VALUE...) for the STATs found there. Builtins only: it runs
# while a guest waits for the sample.
bench_kvm_read() {
    local pid=$1 dir s v
    shift
    bench_kvm_dir='' bench_kvm=()
    for dir in "$BENCH_KVMDBG/$pid"-*; do [[ -d $dir ]] && bench_kvm_dir=$dir && break; done
    [[ -n $bench_kvm_dir ]] || return 0
    for s in "$@"; do
        v=''
        [[ -r $bench_kvm_dir/$s ]] && read -r v <"$bench_kvm_dir/$s"
        [[ -n $v ]] && bench_kvm+=("$s=$v")
    done
}

# bench_kernel_version BZIMAGE: the kernel's version string (header: kernel_version at 0x20e,
# an offset from 0x200).
bench_kernel_version() {
    local o
    o=$(od -An -tu2 -j $((0x20e)) -N2 "$1" | tr -d ' ') &&
        dd if="$1" bs=1 skip=$((o + 0x200)) count=160 2>/dev/null | tr '\0' '\n' | head -n 1
}

# KVM statistics (debugfs file names) behind the exits-by-reason tables. The first six after
# "exits" are distinct exit reasons; signal_exits/request_irq_exits are returns to userspace,
# the rest further events (pf_taken: page faults KVM's MMU took, i.e. the nested-page-fault /
# EPT-violation exits on guest RAM, part of "other").
# shellcheck disable=SC2034 # used by the sections
BENCH_KVM_EXIT_STATS=(exits io_exits mmio_exits halt_exits irq_exits irq_window_exits
    nmi_window_exits signal_exits request_irq_exits insn_emulation hypercalls halt_wakeup pf_taken)

# bench_kvm_other_exits [PREFIX]: reads key=value lines, prints PREFIXother_exits=N: all exits
# (PREFIXexits) minus the distinct reasons (MSR, CPUID, NPF, APIC... are left); nothing when
# PREFIXexits is missing.
bench_kvm_other_exits() {
    awk -F= -v p="${1:-}" '{ v[$1] = $2 }
        END {
            if (!((p "exits") in v)) exit
            o = v[p "exits"] - v[p "io_exits"] - v[p "mmio_exits"] - v[p "halt_exits"]
            o = o - v[p "irq_exits"] - v[p "irq_window_exits"] - v[p "nmi_window_exits"]
            printf "%sother_exits=%.0f\n", p, o
        }'
}

# bench_exit_rows ROW [PREFIX]: the rows of an exits-by-reason table: calls ROW LABEL KEY 1 for
# each (KEY: PREFIX + a statistic of BENCH_KVM_EXIT_STATS, or PREFIXother_exits).
bench_exit_rows() {
    local row=$1 p=${2:-}
    "$row" "  all exits" "${p}exits" 1
    "$row" "    I/O port (io_exits)" "${p}io_exits" 1
    "$row" "    MMIO to userspace (mmio_exits)" "${p}mmio_exits" 1
    "$row" "    HLT (halt_exits)" "${p}halt_exits" 1
    "$row" "    host interrupt (irq_exits)" "${p}irq_exits" 1
    "$row" "    interrupt window" "${p}irq_window_exits" 1
    "$row" "    other (MSR, CPUID, NPF, APIC...)" "${p}other_exits" 1
    "$row" "      of which RAM faults (pf_taken)" "${p}pf_taken" 1
    "$row" "  instructions emulated" "${p}insn_emulation" 1
    "$row" "  returns to userspace for signals" "${p}signal_exits" 1
}

# bench_runs RUN VMM...: one discarded warm-up run (number 0) per VMM, then BENCH_RUNS measured
# ones, VMMs interleaved: RUN VMM N for each. Returns 1 when any run failed.
bench_runs() {
    local run=$1 v i fail=0
    shift
    for v in "$@"; do "$run" "$v" 0 || fail=1; done # warm-up: page cache, loaders
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        for v in "$@"; do "$run" "$v" "$i" || fail=1; done
    done
    return "$fail"
}
