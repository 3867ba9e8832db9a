# shellcheck shell=bash
# Section "startup" (issue #2): mica's own resident memory and its start-up cost, side by side
# with the floor, bench/minilaunch.c (only what the test guest needs: KVM VM, irqchip, RAM, one
# vCPU, ELF + page tables + GDT + FDT, COM1 output and the debug-exit port).
# Sourced by scripts/bench with bench/lib.sh loaded and $BENCH_TMP set.
#
# Timing runs (BENCH_RUNS each, mica and floor interleaved, after one discarded warm-up each):
# the test guest boots and runs tests=cpus (BENCH_STARTUP_CMDLINE), which needs no device
# beyond COM1 output, then reports through port 0x501. bench/benchrun reads the clocks in the
# forked child right before execve(); bench/firstrun.so (LD_PRELOAD, for both VMMs) reads them
# when the first KVM_RUN is issued; wait4() gives the CPU at exit.
# Memory runs: the guest runs tests=serial_input, which waits (hlt) for a line on the UART;
# once it says so, benchrun reads /proc/PID/smaps, subtracts the mapping(s) registered with
# KVM_SET_USER_MEMORY_REGION (guest RAM), then sends the line (mica) or SIGTERM (the floor has
# no UART input).

startup_mem=${BENCH_STARTUP_MEM_MIB:-64}
startup_cmdline=${BENCH_STARTUP_CMDLINE:-tests=cpus}
startup_mem_cmdline=tests=serial_input
startup_marker='serial_input: waiting'
startup_json=$BENCH_OUT/startup.json
shim=$PWD/$BENCH_BIN/firstrun.so

startup_cmd() { # VMM CMDLINE: sets cmd=(the command that runs the test guest under VMM)
    case $1 in
    mica) cmd=("$MICA" run --kernel "$GUEST" --mem "${startup_mem}M" --cmdline "$2") ;;
    floor) cmd=("$BENCH_BIN/minilaunch" "$GUEST" "$startup_mem" "$2") ;;
    esac
}

# startup_run VMM KIND N: one run; KIND time|mem; leaves $BENCH_TMP/startup.VMM.KIND.N.{kv,out,err}
startup_run() {
    local vmm=$1 kind=$2 n=$3 base=$BENCH_TMP/startup.$1.$2.$3 cmd extra=() ok=1
    if [[ $kind == time ]]; then
        startup_cmd "$vmm" "$startup_cmdline"
    else
        startup_cmd "$vmm" "$startup_mem_cmdline"
        extra=(--sample-at "$startup_marker")
        [[ $vmm == mica ]] && extra+=(--then-send bench-line)
    fi
    "$BENCH_BIN/benchrun" --preload "$shim" --out "$base.out" --err "$base.err" "${extra[@]}" \
        -- "${cmd[@]}" >"$base.kv" || ok=0
    # The guest must have done its part: passing tests (or, for the floor's memory run, being
    # stopped by our SIGTERM while it waited).
    if [[ $kind == time || $vmm == mica ]]; then
        [[ $(bench_kv "$base.kv" exit) == 0 ]] && grep -q '^ok 1 - ' "$base.out" || ok=0
    else
        [[ $(bench_kv "$base.kv" signal) == 15 ]] || ok=0
    fi
    [[ $kind == mem && $(bench_kv "$base.kv" guest_exact) != 1 ]] && ok=0
    if ((!ok)); then
        bench_log "startup: $vmm $kind run $n failed: $(tr '\n' ' ' <"$base.kv")"
        tail -n 5 "$base.out" "$base.err" | sed 's/^/bench:   /' >&2
        return 1
    fi
}

[[ -r $GUEST ]] || bench_die "startup: $GUEST is missing (run make)"
bench_log "startup: $BENCH_RUNS runs each of mica and the floor, guest '$startup_cmdline', ${startup_mem} MiB"
startup_run mica time 0 && startup_run floor time 0 # warm-up: page cache, dynamic loader
for ((i = 1; i <= BENCH_RUNS; i++)); do
    startup_run mica time "$i"
    startup_run floor time "$i"
done
for ((i = 1; i <= BENCH_RUNS; i++)); do
    startup_run mica mem "$i"
    startup_run floor mem "$i"
done

# The key=value files of the measured runs. (No process substitution: the inner VM of
# scripts/with-kvm has no /dev/fd.)
mica_t=() floor_t=() mica_m=() floor_m=()
for ((i = 1; i <= BENCH_RUNS; i++)); do
    mica_t+=("$BENCH_TMP/startup.mica.time.$i.kv")
    floor_t+=("$BENCH_TMP/startup.floor.time.$i.kv")
    mica_m+=("$BENCH_TMP/startup.mica.mem.$i.kv")
    floor_m+=("$BENCH_TMP/startup.floor.mem.$i.kv")
done

# Table: median (min) over the runs; "mica - floor" is the difference of the medians.
row() { # LABEL KEY SCALE KIND(t|m)
    local -n mf=mica_$4 ff=floor_$4
    local a b d
    a=$(bench_cell "$2" "$3" "${mf[@]}")
    b=$(bench_cell "$2" "$3" "${ff[@]}")
    d=$(awk -v a="$(bench_values "$2" "${mf[@]}" | bench_stats)" \
        -v b="$(bench_values "$2" "${ff[@]}" | bench_stats)" -v s="$3" 'BEGIN {
            split(a, x, " "); split(b, y, " ")
            if (x[1] == "-" || y[1] == "-") print "-"
            else printf(s == 1 ? "%+.0f\n" : "%+.1f\n", (x[1] - y[1]) / s) }')
    printf '%-36s %18s %18s %12s\n' "$1" "$a" "$b" "$d"
}
echo
echo "== startup: mica vs the floor (bench/minilaunch), ${startup_mem} MiB guest, $BENCH_RUNS runs: median (min)"
printf '%-36s %18s %18s %12s\n' "" mica floor "mica-floor"
row "RSS excl. guest RAM (KiB)" rss_vmm_kb 1 m
row "  Pss excl. guest RAM (KiB)" pss_vmm_kb 1 m
row "  private excl. guest RAM (KiB)" private_vmm_kb 1 m
row "  private dirty excl. guest (KiB)" private_dirty_vmm_kb 1 m
row "  anonymous excl. guest (KiB)" anon_vmm_kb 1 m
row "  file-backed (KiB)" file_vmm_kb 1 m
row "guest RAM resident (KiB)" rss_guest_kb 1 m
row "threads" threads 1 m
row "wall, exec -> first KVM_RUN (ms)" wall_run_us 1000 t
row "CPU, exec -> first KVM_RUN (ms)" cpu_run_us 1000 t
row "wall, exec -> exit (ms)" wall_exit_us 1000 t
row "CPU, exec -> exit (ms)" cpu_exit_us 1000 t
row "ioctls before first KVM_RUN" ioctls_before_run 1 t
echo "largest mappings of mica outside guest RAM (last memory run):"
grep '^top_vma=' "${mica_m[-1]}" | cut -d= -f2- | tr -s ' ' | sed 's/^/  /'
echo "targets: RSS excl. guest RAM <= 3072 KiB (Firecracker: 5 MiB)"

# JSON
vmm_json() { # TIME_FILES... -- MEM_FILES...
    local t=() m=() k sep=''
    while [[ $1 != -- ]]; do t+=("$1"); shift; done
    shift
    m=("$@")
    printf '{'
    for k in rss_vmm_kb pss_vmm_kb private_vmm_kb private_dirty_vmm_kb anon_vmm_kb file_vmm_kb \
        rss_guest_kb rss_total_kb threads; do
        printf '%s"%s": %s' "$sep" "$k" "$(bench_json_metric "$k" "${m[@]}")"
        sep=', '
    done
    for k in wall_run_us cpu_run_us wall_exit_us cpu_exit_us utime_us stime_us ioctls_before_run; do
        printf ', "%s": %s' "$k" "$(bench_json_metric "$k" "${t[@]}")"
    done
    printf ', "top_vmas": ['
    sep=''
    while IFS= read -r k; do
        [[ -n $k ]] || continue
        printf '%s%s' "$sep" "$(bench_json_str "$(tr -s ' ' <<<"$k")")"
        sep=', '
    done <<<"$(grep '^top_vma=' "${m[-1]}" | cut -d= -f2-)"
    printf ']}'
}
mkdir -p "$BENCH_OUT"
{
    printf '{"benchmark": "startup", "env": %s,\n' "$(bench_env_json)"
    printf ' "config": {"runs": %s, "mem_mib": %s, "cmdline": %s, "memory_cmdline": %s, ' \
        "$BENCH_RUNS" "$startup_mem" "$(bench_json_str "$startup_cmdline")" \
        "$(bench_json_str "$startup_mem_cmdline")"
    startup_cmd mica "$startup_cmdline"
    printf '"mica": %s, ' "$(bench_json_str "${cmd[*]}")"
    startup_cmd floor "$startup_cmdline"
    printf '"floor": %s},\n' "$(bench_json_str "${cmd[*]}")"
    printf ' "method": %s,\n' "$(bench_json_str "wall/CPU from just before execve (read in the forked child) to the first KVM_RUN (LD_PRELOAD shim bench/firstrun.so, before the ioctl enters) and to exit (wait4; CPU = user+sys of all threads); memory from /proc/PID/smaps while the guest waits in tests=serial_input, minus the VMAs registered with KVM_SET_USER_MEMORY_REGION; times in microseconds, memory in KiB; median and min over the runs")"
    printf ' "mica": %s,\n' "$(vmm_json "${mica_t[@]}" -- "${mica_m[@]}")"
    printf ' "floor": %s}\n' "$(vmm_json "${floor_t[@]}" -- "${floor_m[@]}")"
} >"$startup_json.tmp" && mv "$startup_json.tmp" "$startup_json"
echo "JSON: $startup_json"
