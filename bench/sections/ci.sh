# shellcheck shell=bash
# Section "ci" (issue #13): what watching the guest's output costs mica. The same Linux boot
# (Debian's cloud kernel and the busybox initramfs of scripts/get-linux-guest, every kernel
# message on the serial console: no `quiet`) under mica twice, interleaved:
#   plain  mica run ... --json
#   ci     the same with --serial-log --timestamps --fail-on kernel --expect '/init reached'
#          --junit: every line cut, stamped, written to the log, matched against the kernel
#          preset and the pattern, read as TAP.
# Figures: mica's CPU time (user + system, wait4) and wall time per boot (bench/benchrun; medians
# of BENCH_RUNS after a warm-up each), and, from one strace -f -c run of each, the write
# system calls (write, writev) and the lines of the console: the log costs one write per batch of
# whole lines, never one per byte. noxsave: the nested KVM of scripts/with-kvm makes this kernel
# warn at boot (README, Choices), which --fail-on kernel would rightly stop at.
# Sourced by scripts/bench with bench/lib.sh loaded and $BENCH_TMP set.
# Env: BENCH_CI_MEM_MIB (256), BENCH_CI_TIMEOUT (seconds per boot, 180).

ci_kernel=${LINUX_KERNEL:-build/linux/vmlinuz}
ci_initrd=${LINUX_INITRD:-build/linux/initramfs.cpio.gz}
ci_mem=${BENCH_CI_MEM_MIB:-256}
ci_timeout=${BENCH_CI_TIMEOUT:-180}
ci_json=$BENCH_OUT/ci.json

ci_cmd() { # KIND BASE: sets cmd=(one boot's command line)
    cmd=("$MICA" run --kernel "$ci_kernel" --initrd "$ci_initrd" --mem "${ci_mem}M"
        --timeout "$ci_timeout" --cmdline "console=ttyS0 noxsave mica.status=0" --json "$2.json")
    [[ $1 == ci ]] && cmd+=(--serial-log "$2.log" --timestamps --fail-on kernel
        --expect 'mica-linux: /init reached' --junit "$2.xml")
}

# ci_run KIND N: one boot under benchrun; leaves $BENCH_TMP/ci.KIND.N.{kv,out,err,json,...}
ci_run() {
    local base=$BENCH_TMP/ci.$1.$2 cmd
    ci_cmd "$1" "$base"
    if ! "$BENCH_BIN/benchrun" --out "$base.out" --err "$base.err" -- "${cmd[@]}" >"$base.kv" ||
        [[ $(bench_kv "$base.kv" exit) != 0 ]]; then
        bench_log "ci: $1 run $2 failed: $(tr '\n' ' ' <"$base.kv")"
        tail -n 5 "$base.out" "$base.err" | sed 's/^/bench:   /' >&2
        return 1
    fi
}

# ci_strace KIND: one boot under strace -f -c; prints "WRITES LINES" (write + writev calls, and
# lines of guest output).
ci_strace() {
    local base=$BENCH_TMP/ci.$1.strace cmd
    ci_cmd "$1" "$base"
    strace -f -c -e trace=write,writev -o "$base.strace" "${cmd[@]}" >"$base.out" 2>"$base.err" </dev/null
    awk '$NF == "write" || $NF == "writev" { n += $4 } END { printf "%d ", n }' "$base.strace"
    tr -d '\r' <"$base.out" | wc -l
}

[[ -r $ci_kernel && -r $ci_initrd ]] || bench_die "ci: $ci_kernel or $ci_initrd is missing (run scripts/get-linux-guest)"
bench_log "ci: $BENCH_RUNS boots each, plain and with the CI options, ${ci_mem} MiB"
ci_run plain 0 && ci_run ci 0 # warm-up
plain=() ci=()
for ((i = 1; i <= BENCH_RUNS; i++)); do
    ci_run plain "$i" && plain+=("$BENCH_TMP/ci.plain.$i.kv")
    ci_run ci "$i" && ci+=("$BENCH_TMP/ci.ci.$i.kv")
done
read -r plain_writes plain_lines <<<"$(ci_strace plain)"
read -r ci_writes ci_lines <<<"$(ci_strace ci)"
log_lines=$(wc -l <"$BENCH_TMP/ci.ci.strace.log" 2>/dev/null || echo 0)

echo
echo "== ci: a Linux boot (${plain_lines} console lines) under mica, plain and with the CI options; $BENCH_RUNS runs: median (min)"
printf '%-34s %16s %16s\n' "" plain "ci options"
printf '%-34s %16s %16s\n' "mica CPU, exec -> exit (ms)" "$(bench_cell cpu_exit_us 1000 "${plain[@]}")" \
    "$(bench_cell cpu_exit_us 1000 "${ci[@]}")"
printf '%-34s %16s %16s\n' "wall, exec -> exit (ms)" "$(bench_cell wall_exit_us 1000 "${plain[@]}")" \
    "$(bench_cell wall_exit_us 1000 "${ci[@]}")"
printf '%-34s %16s %16s\n' "write + writev calls (one run)" "$plain_writes" "$ci_writes"
printf '%-34s %16s %16s\n' "lines in --serial-log" "-" "$log_lines"
{
    printf '{"section": "ci", "env": %s, "runs": %s, "console_lines": %s, "log_lines": %s,\n' \
        "$(bench_env_json)" "$BENCH_RUNS" "${plain_lines:-null}" "${log_lines:-null}"
    printf ' "plain": {"cpu_exit_us": %s, "wall_exit_us": %s, "writes": %s},\n' \
        "$(bench_json_metric cpu_exit_us "${plain[@]}")" \
        "$(bench_json_metric wall_exit_us "${plain[@]}")" "${plain_writes:-null}"
    printf ' "ci": {"cpu_exit_us": %s, "wall_exit_us": %s, "writes": %s}}\n' \
        "$(bench_json_metric cpu_exit_us "${ci[@]}")" \
        "$(bench_json_metric wall_exit_us "${ci[@]}")" "${ci_writes:-null}"
} >"$ci_json"
