# shellcheck shell=bash
# bench: no-kvm
# Section "blkhost" (issue #5): virtio-blk's device model (devices/virtio/blk.c + blk_io.c) on
# the host, no KVM, driven through its virtqueue from simulated guest RAM by bench/blkhost.c,
# against the floor: the same requests on the same file done directly (pread/pwrite at QD1,
# io_uring kept as deep at QD32). Target: the device >= 90% of the raw throughput.
# Sourced by scripts/bench with bench/lib.sh loaded and $BENCH_TMP set.
#
# One file of BENCH_BLKHOST_FILE_MIB (256) MiB in BENCH_BLKHOST_DIR (/tmp), written with data
# (no holes) and fsynced. Two cache modes, for the device and the floor alike:
#   writeback  buffered I/O; the file is read once beforehand and fsynced after the write
#              workload, so every read is served from a warm page cache (CPU cost only);
#   none       O_DIRECT (the device's cache=none), the disk behind the file system.
# Workloads: sequential write and read of 1 MiB requests at QD1, random 4 KiB reads at QD1
# and QD32. Modes (BENCH_BLKHOST_MODES): raw, io_uring (the device, its default backend),
# threads (the device, its worker-thread backend). Each run lasts BENCH_BLKHOST_SECONDS (0.25)
# s; one discarded warm-up, then BENCH_RUNS runs, modes interleaved; medians. Then one run per
# workload and mode counts syscalls per request (perf tracepoints; those runs are not timed).

bh_mib=${BENCH_BLKHOST_FILE_MIB:-256}
bh_dir=${BENCH_BLKHOST_DIR:-/tmp}
bh_secs=${BENCH_BLKHOST_SECONDS:-0.25}
read -ra bh_modes <<<"${BENCH_BLKHOST_MODES:-raw io_uring threads}"
bh_tool=$BENCH_BIN/blkhost
bh_json=$BENCH_OUT/blkhost.json
# name op pattern bs qd label
bh_workloads=(
    "seqwrite-1m write seq 1048576 1 seq write 1 MiB QD1"
    "seqread-1m read seq 1048576 1 seq read 1 MiB QD1"
    "randread-4k-qd1 read rand 4096 1 rand read 4 KiB QD1"
    "randread-4k-qd32 read rand 4096 32 rand read 4 KiB QD32"
)
bh_caches=(writeback none)
bh_sys_keys=(sys_all sys_io_uring_enter sys_epoll_wait sys_read sys_write sys_pread64 sys_pwrite64 sys_futex)

make -s --no-print-directory BENCH_BIN_DIR="$BENCH_BIN" "$bh_tool" >&2 ||
    bench_die "blkhost: cannot build $bh_tool"
for m in "${bh_modes[@]}"; do
    case $m in raw | io_uring | threads) ;; *) bench_die "blkhost: unknown mode '$m' (raw, io_uring, threads)" ;; esac
done

bh_file=$(mktemp "$bh_dir/mica-blkhost.XXXXXX") || bench_die "blkhost: cannot create a file in $bh_dir"
trap 'rm -f "$bh_file"' EXIT
bh_fs=$(findmnt -no FSTYPE -T "$bh_file" 2>/dev/null || stat -f -c %T "$bh_file")
dd if=/dev/zero of="$bh_file" bs=1M count="$bh_mib" conv=fsync status=none ||
    bench_die "blkhost: cannot write $bh_mib MiB to $bh_file"

if ! dd if="$bh_file" of=/dev/null bs=4096 count=1 iflag=direct status=none 2>/dev/null; then
    bench_log "blkhost: $bh_dir ($bh_fs) does not take O_DIRECT: no cache=none workloads"
    bh_caches=(writeback)
fi

bh_count=1
if [[ ! -r /sys/kernel/tracing/events/raw_syscalls/sys_enter/id &&
    ! -r /sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id ]]; then
    mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null ||
        { bench_log "blkhost: no tracefs (root?): syscalls are not counted"; bh_count=0; }
fi

# bh_run CACHE WORKLOAD MODE RUN [EXTRA...]: one run; $BENCH_TMP/blkhost.CACHE.WORKLOAD.MODE.RUN.kv
bh_run() {
    local cache=$1 w=$2 mode=$3 run=$4 name op pattern bs qd args
    shift 4
    read -r name op pattern bs qd _ <<<"$w"
    args=(--file "$bh_file" --op "$op" --pattern "$pattern" --bs "$bs" --qd "$qd" --cache "$cache"
        --seconds "$bh_secs")
    case $mode in
    raw) args+=(--mode raw) ;;
    *) args+=(--mode device --backend "$mode") ;;
    esac
    "$bh_tool" "${args[@]}" "$@" >"$BENCH_TMP/blkhost.$cache.$name.$mode.$run.kv" 2>"$BENCH_TMP/blkhost.err" || {
        bench_log "blkhost: $cache $name $mode run $run failed: $(tail -n 3 "$BENCH_TMP/blkhost.err")"
        return 1
    }
}

bench_log "blkhost: ${bh_modes[*]}, $BENCH_RUNS runs of ${bh_secs} s per workload, ${bh_mib} MiB file in $bh_dir ($bh_fs)"
bh_fail=0
for cache in "${bh_caches[@]}"; do
    [[ $cache == writeback ]] && cat "$bh_file" >/dev/null # warm the page cache
    for w in "${bh_workloads[@]}"; do
        for ((i = 0; i <= BENCH_RUNS; i++)); do # run 0: warm-up, discarded
            for m in "${bh_modes[@]}"; do bh_run "$cache" "$w" "$m" "$i" || bh_fail=1; done
        done
        if ((bh_count)); then
            for m in "${bh_modes[@]}"; do bh_run "$cache" "$w" "$m" sys --count-syscalls || bh_fail=1; done
        fi
        sync "$bh_file" # written pages: on disk before the next workload
    done
done

bh_files() { # CACHE NAME MODE: sets bh_f=(the measured runs' files)
    local i
    bh_f=()
    for ((i = 1; i <= BENCH_RUNS; i++)); do bh_f+=("$BENCH_TMP/blkhost.$1.$2.$3.$i.kv"); done
}
bh_median() { # KEY FILE...: the median, or "-"
    local s
    s=$(bench_values "$@" | bench_stats)
    echo "${s% *}"
}
bh_fmt() { # VALUE FORMAT [DIVISOR]: "-" stays "-"
    if [[ -n $1 && $1 != - ]]; then awk -v v="$1" -v f="$2" -v d="${3:-1}" 'BEGIN { printf f, v / d }'; else printf '%s' -; fi
}
bh_mode_label() { case $1 in raw) echo "raw (floor)" ;; *) echo "device, $1" ;; esac; }

echo
echo "== blkhost: virtio-blk device model on the host (no KVM) vs raw file I/O; ${bh_mib} MiB file in $bh_dir ($bh_fs), $(nproc) CPU(s); $BENCH_RUNS x ${bh_secs} s runs, medians"
for cache in "${bh_caches[@]}"; do
    case $cache in
    writeback) echo "cache=writeback: buffered, the page cache warm (reads never reach the disk)" ;;
    none) echo "cache=none: O_DIRECT for the floor and the device" ;;
    esac
    printf '  %-24s %-18s %9s %9s %7s %9s %9s %8s %8s\n' workload mode MiB/s IOPS vs.raw "CPU us/rq" "syscl/rq" kicks/rq irqs/rq
    for w in "${bh_workloads[@]}"; do
        read -r name _ _ _ _ label <<<"$w"
        bh_files "$cache" "$name" raw
        raw_mib=$(bh_median mib_s "${bh_f[@]}")
        first=1
        for m in "${bh_modes[@]}"; do
            bh_files "$cache" "$name" "$m"
            f=("${bh_f[@]}")
            mib=$(bh_median mib_s "${f[@]}")
            ratio=-
            [[ $m != raw && $mib != - && $raw_mib != - ]] &&
                ratio=$(awk -v a="$mib" -v b="$raw_mib" 'BEGIN { printf "%.2f", a / b }')
            sysf=$BENCH_TMP/blkhost.$cache.$name.$m.sys.kv
            sys=-
            [[ -f $sysf ]] && sys=$(bench_kv "$sysf" sys_all_per_op)
            printf '  %-24s %-18s %9s %9s %7s %9s %9s %8s %8s\n' "$( ((first)) && echo "$label")" \
                "$(bh_mode_label "$m")" "$(bh_fmt "$mib" %.0f)" \
                "$(bh_fmt "$(bh_median iops "${f[@]}")" %.0f)" "$ratio" \
                "$(bh_fmt "$(bh_median cpu_ns_per_op "${f[@]}")" %.1f 1000)" \
                "$(bh_fmt "$sys" %.2f)" "$(bh_fmt "$(bh_median kicks_per_op "${f[@]}")" %.2f)" \
                "$(bh_fmt "$(bh_median interrupts_per_op "${f[@]}")" %.2f)"
            first=0
        done
    done
done
if ((bh_count)); then
    echo "syscalls per request by kind (one counting run each; the device's exclude the driver's kick writes):"
    printf '  %-20s %-18s %6s %6s %6s %6s %6s %6s %6s %6s\n' cache/workload mode all uring epoll read write pread pwrite futex
    for cache in "${bh_caches[@]}"; do
        for w in "${bh_workloads[@]}"; do
            read -r name _ <<<"$w"
            for m in "${bh_modes[@]}"; do
                sysf=$BENCH_TMP/blkhost.$cache.$name.$m.sys.kv
                [[ -f $sysf ]] || continue
                out=$(printf '  %-20s %-18s' "${cache:0:2}/$name" "$(bh_mode_label "$m")")
                for k in "${bh_sys_keys[@]}"; do
                    out+=$(printf ' %6s' "$(bh_fmt "$(bench_kv "$sysf" "${k}_per_op")" %.2f)")
                done
                printf '%s\n' "$out"
            done
        done
    done
fi
echo "target: device >= 0.90 x raw. Syscall counts and CPU per request carry over to other hosts; on this"
echo "machine (itself a VM) every syscall costs microseconds, which magnifies the gap at 4 KiB."

# JSON
bh_result_json() { # CACHE WORKLOAD MODE
    local cache=$1 w=$2 m=$3 name op pattern bs qd f k sep sysf
    read -r name op pattern bs qd _ <<<"$w"
    bh_files "$cache" "$name" "$m"
    f=("${bh_f[@]}")
    printf '{"cache": "%s", "workload": "%s", "op": "%s", "pattern": "%s", "bs": %s, "qd": %s, "mode": "%s"' \
        "$cache" "$name" "$op" "$pattern" "$bs" "$qd" "$m"
    printf ', "backend": %s' "$(bench_json_str "$(bench_kv "${f[0]}" backend 2>/dev/null)")"
    for k in mib_s iops cpu_ns_per_op ops wall_ns kicks_per_op interrupts_per_op batches_per_op; do
        printf ', "%s": %s' "$k" "$(bench_json_metric "$k" "${f[@]}")"
    done
    sysf=$BENCH_TMP/blkhost.$cache.$name.$m.sys.kv
    printf ', "syscalls_per_op": {'
    sep=''
    if [[ -f $sysf ]]; then
        for k in "${bh_sys_keys[@]}"; do
            printf '%s"%s": %s' "$sep" "${k#sys_}" "$(bench_kv "$sysf" "${k}_per_op")"
            sep=', '
        done
    fi
    printf '}}'
}
mkdir -p "$BENCH_OUT"
{
    printf '{"benchmark": "blkhost", "env": %s,\n' "$(bench_env_json)"
    printf ' "config": {"runs": %s, "seconds_per_run": %s, "file_mib": %s, "dir": %s, "fs": %s, "modes": [%s]},\n' \
        "$BENCH_RUNS" "$bh_secs" "$bh_mib" "$(bench_json_str "$bh_dir")" "$(bench_json_str "$bh_fs")" \
        "$(for m in "${bh_modes[@]}"; do bench_json_str "$m"; echo; done | paste -sd, | sed 's/,/, /g')"
    printf ' "method": %s,\n' "$(bench_json_str "bench/blkhost: the device model (devices/virtio/blk.c, blk_io.c) with simulated guest RAM; this one thread is the guest driver (3 descriptors per request, EVENT_IDX, kicks through the queue's kick eventfd when avail_event asks, an interrupt wanted for every completion, completed requests replaced at once) and mica's event loop (epoll_wait + handlers); interrupts cost an eventfd write (as an irqfd). The floor: pread/pwrite at QD1, io_uring (submit_and_wait, refill) at QD32, on the same file with the same offsets (xorshift64 for random) and buffers in the same pre-faulted RAM. cache=writeback: buffered, file warm in the page cache; cache=none: O_DIRECT for both. Each run issues requests for seconds_per_run, then completes those in flight; medians over the runs after a discarded warm-up; syscalls from one separate run with perf tracepoint counters (raw_syscalls/sys_enter, syscalls/sys_enter_*), the driver's kick writes excluded.")"
    printf ' "results": ['
    sep=''
    for cache in "${bh_caches[@]}"; do
        for w in "${bh_workloads[@]}"; do
            for m in "${bh_modes[@]}"; do
                printf '%s\n  %s' "$sep" "$(bh_result_json "$cache" "$w" "$m")"
                sep=','
            done
        done
    done
    printf ']}\n'
} >"$bh_json.tmp" && mv "$bh_json.tmp" "$bh_json"
echo "JSON: $bh_json"
((!bh_fail)) || bench_die "blkhost: some runs failed (see above)"
