# shellcheck shell=bash
# shellcheck disable=SC2054 # commas in QEMU options
# Section "net" (issue #5): TCP throughput from the guest to the host through libslirp, mica
# (--net user; virtio-mmio and virtio-pci) against QEMU -M q35 -netdev user with virtio-net-pci
# (the same libslirp), the same Linux guest (build/linux: Debian's cloud kernel and the
# busybox initramfs of scripts/get-linux-guest), 256 MiB, 1 vCPU, serial console.
# Sourced by scripts/bench with bench/lib.sh loaded and $BENCH_TMP set.
#
# Each run: bench/netsink listens on a free port of 127.0.0.1 (the guest's 10.0.2.2), then the
# VMM boots the guest with mica.bench=net: after DHCP its /init pipes BENCH_NET_BYTES (8 MiB)
# of zeros through busybox nc to 10.0.2.2:PORT, framed by the serial lines "bench net start"
# and "bench net done"; when this shell reads each of them (the VMM's stdout is a FIFO read
# line by line), it samples KVM's statistics for the VM from debugfs
# (/sys/kernel/debug/kvm/PID-FD/) and the VMM's CPU time from /proc/PID/stat and
# /proc/PID/task/*/stat: user+sys of all threads; guest_time, the vCPU's time in guest mode
# (part of user); vCPU threads (those with guest time) apart from the others (event loop /
# main loop: slirp and the device models). Figures are the differences between the two
# samples per MiB received by netsink; throughput is netsink's, from the first byte received
# to the last. A few serial-line exits (the "done" line) fall inside the window. For mica,
# virtio-net's notifies and interrupts come from --stats-json (whole run). BENCH_NET_RUNS (3)
# runs, VMMs interleaved, no warm-up (boot is outside the window); medians (min).
# In the nested VM of scripts/with-kvm the transfer is CPU-bound (about 0.5-0.8 MB/s): one run
# takes 15-40 s, the section about 3-6 minutes.
# Env: BENCH_NET_VMMS (default "mica-mmio mica-pci q35"), BENCH_NET_BYTES, BENCH_NET_RUNS,
#      BENCH_NET_TIMEOUT (seconds per run, default 300), QEMU.

nt_kernel=${LINUX_KERNEL:-build/linux/vmlinuz}
nt_initrd=${LINUX_INITRD:-build/linux/initramfs.cpio.gz}
nt_mem=256
nt_bytes=${BENCH_NET_BYTES:-8388608}
nt_runs=${BENCH_NET_RUNS:-3}
nt_timeout=${BENCH_NET_TIMEOUT:-300}
nt_qemu=${QEMU:-qemu-system-x86_64}
read -ra nt_vmms <<<"${BENCH_NET_VMMS:-mica-mmio mica-pci q35}"
nt_json=$BENCH_OUT/net.json
nt_stats=(exits io_exits mmio_exits halt_exits irq_exits irq_window_exits nmi_window_exits
    signal_exits insn_emulation halt_wakeup)
nt_tck=$(getconf CLK_TCK)
# mica --stats-json: virtio-net's notifies, interrupts and interrupts_suppressed as key=value.
nt_n='\([0-9]*\)'
nt_stats_sed="s/.*\"device\": \"virtio-net\", \"notifies\": $nt_n,.*\"interrupts\": $nt_n, \"interrupts_suppressed\": $nt_n.*/mica_notifies=\\1\\nmica_interrupts=\\2\\nmica_interrupts_suppressed=\\3/p"

nt_cmd() { # VMM PORT [STATS_JSON]: sets cmd=(the command line) and nt_cmdline
    nt_cmdline="console=ttyS0 quiet mica.bench=net mica.tcp=$2 mica.bytes=$nt_bytes"
    case $1 in
    mica-mmio | mica-pci)
        cmd=("$MICA" run --kernel "$nt_kernel" --initrd "$nt_initrd" --mem "${nt_mem}M"
            --net user --transport "${1#mica-}" --timeout "$nt_timeout" --cmdline "$nt_cmdline")
        [[ -z ${3:-} ]] || cmd+=(--stats-json "$3") ;;
    q35)
        cmd=("$nt_qemu" -M q35 -accel kvm -cpu host -m "${nt_mem}M" -nographic -no-reboot
            -nodefaults -serial stdio -device isa-debug-exit,iobase=0x501,iosize=1
            -netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile=
            -kernel "$nt_kernel" -initrd "$nt_initrd" -append "$nt_cmdline") ;;
    *) bench_die "net: unknown VMM '$1' (mica-mmio, mica-pci, q35)" ;;
    esac
}

# nt_sample PID TAG: KVM statistics and CPU ticks as TAG_key=value lines (builtins only).
nt_sample() {
    local pid=$1 tag=$2 kv s v line f
    bench_kvm_read "$pid" "${nt_stats[@]}"
    # shellcheck disable=SC2154 # bench_kvm(_dir): set by bench_kvm_read (bench/lib.sh)
    for kv in "${bench_kvm[@]}"; do echo "${tag}_$kv"; done
    read -r line <"/proc/$pid/stat" || return 0
    read -ra f <<<"${line##*) }" # f[0] is field 3 (state)
    echo "${tag}_utime=${f[11]}"
    echo "${tag}_stime=${f[12]}"
    echo "${tag}_guest_time=${f[40]}"
    # vCPU threads: those that have run the guest.
    v=0
    for s in /proc/"$pid"/task/*/stat; do
        read -r line <"$s" || continue
        read -ra f <<<"${line##*) }"
        ((f[40] > 0)) && v=$((v + f[11] + f[12]))
    done
    echo "${tag}_vcpu_ticks=$v"
}

# nt_on_line LINE (bench_follow's handler, in nt_run's scope): samples the counters when the
# guest starts sending and when it is done.
nt_on_line() {
    if ((!started)) && [[ $1 == *"mica-linux: bench net start"* ]]; then
        nt_sample "$pid" start >>"$base.samples"
        started=1
    elif ((started && !finished)) && [[ $1 == *"mica-linux: bench net done"* ]]; then
        nt_sample "$pid" end >>"$base.samples"
        finished=1
    fi
}

# nt_run VMM N: one run; leaves $BENCH_TMP/net.VMM.N.{kv,out,err,sink}
nt_run() {
    local vmm=$1 n=$2 base=$BENCH_TMP/net.$1.$2 cmd fifo pid spid rd t0 port
    local rc=0 timed_out=0 ok=1 started=0 finished=0
    rm -f "$base".{port,sink,out,err,samples,json,mica}
    "$BENCH_BIN/netsink" "$base.port" "$nt_timeout" >"$base.sink" 2>"$base.sink.err" &
    spid=$!
    for _ in $(seq 100); do [[ -s $base.port ]] && break; sleep 0.05; done
    port=$(<"$base.port") || { bench_log "net: netsink did not start"; kill "$spid"; return 1; }
    nt_cmd "$vmm" "$port" "$base.json"
    fifo=$base.fifo
    rm -f "$fifo"
    mkfifo "$fifo"
    t0=$(bench_us)
    "${cmd[@]}" <"/dev/null" >"$fifo" 2>"$base.err" &
    pid=$!
    exec {rd}<"$fifo"
    bench_follow "$pid" "$rd" $((t0 + nt_timeout * 1000000)) "$base.out" nt_on_line || timed_out=1
    exec {rd}<&-
    wait "$pid" || rc=$?
    rm -f "$fifo"
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    # mica's own counters for virtio-net, over the whole run (boot and DHCP add a few dozen).
    : >"$base.mica"
    [[ -f $base.json ]] && sed -n "$nt_stats_sed" "$base.json" >"$base.mica"
    {
        echo "exit=$rc"
        echo "exit_us=$(($(bench_us) - t0))"
        cat "$base.sink" "$base.samples" "$base.mica" 2>/dev/null
        awk -F= -v tck="$nt_tck" -v stats="${nt_stats[*]}" '
            { v[$1] = $2 }
            END {
                if (!v["bytes"] || !("start_utime" in v) || !("end_utime" in v)) exit
                mib = v["bytes"] / 1048576
                printf "mb_s=%.3f\n", v["bytes"] / 1e6 / (v["first_to_last_ns"] / 1e9)
                n = split(stats, s, " ")
                for (i = 1; i <= n; i++)
                    if (("start_" s[i]) in v)
                        printf "%s_per_mib=%.1f\n", s[i], (v["end_" s[i]] - v["start_" s[i]]) / mib
                if ("start_exits" in v) {
                    o = v["end_exits"] - v["start_exits"]
                    split("io_exits mmio_exits halt_exits irq_exits irq_window_exits nmi_window_exits", r, " ")
                    for (i = 1; i <= 6; i++) o -= v["end_" r[i]] - v["start_" r[i]]
                    printf "other_exits_per_mib=%.1f\n", o / mib
                }
                cpu = (v["end_utime"] + v["end_stime"]) - (v["start_utime"] + v["start_stime"])
                g = v["end_guest_time"] - v["start_guest_time"]
                vc = v["end_vcpu_ticks"] - v["start_vcpu_ticks"]
                printf "cpu_ms_per_mib=%.2f\n", cpu * 1000 / tck / mib
                printf "cpu_noguest_ms_per_mib=%.2f\n", (cpu - g) * 1000 / tck / mib
                printf "guest_ms_per_mib=%.2f\n", g * 1000 / tck / mib
                printf "vcpu_noguest_ms_per_mib=%.2f\n", (vc - g) * 1000 / tck / mib
                printf "other_threads_ms_per_mib=%.2f\n", (cpu - vc) * 1000 / tck / mib
                printf "sink_cpu_ms_per_mib=%.2f\n", v["cpu_ns"] / 1e6 / mib
                if ("mica_notifies" in v)
                    printf "mica_notifies_per_mib=%.1f\nmica_interrupts_per_mib=%.1f\n",
                        v["mica_notifies"] / mib, v["mica_interrupts"] / mib
            }' "$base.sink" "$base.samples" "$base.mica" 2>/dev/null
        ((timed_out)) && echo "timeout=1"
    } >"$base.kv"
    # The guest ends through the debug-exit port (mica exits 0, QEMU (0<<1)|1 = 1) or, where
    # the port write does not end the VM, /init's poweroff (0).
    [[ $rc == 0 || ($vmm == q35 && $rc == 1) ]] || ok=0
    grep -q 'mica-linux: ok bench-net' "$base.out" || ok=0
    [[ $(bench_kv "$base.kv" bytes) == "$(((nt_bytes + 65535) / 65536 * 65536))" ]] || ok=0
    [[ -n $(bench_kv "$base.kv" exits_per_mib) ]] || ok=0
    ((timed_out)) && ok=0
    if ((!ok)); then
        bench_log "net: $vmm run $n failed: $(tr '\n' ' ' <"$base.kv")"
        tail -n 5 "$base.out" "$base.err" "$base.sink.err" | sed 's/^/bench:   /' >&2
        return 1
    fi
}

for f in "$nt_kernel" "$nt_initrd"; do
    [[ -r $f ]] || bench_die "net: $f is missing (run scripts/get-linux-guest)"
done
[[ $(gzip -dc "$nt_initrd" | grep -ac 'mica\.bench=') -gt 0 ]] ||
    bench_die "net: $nt_initrd has no mica.bench in its /init (run scripts/get-linux-guest)"
[[ -x $BENCH_BIN/netsink ]] || bench_die "net: $BENCH_BIN/netsink is missing"
for v in "${nt_vmms[@]}"; do
    [[ $v != q35 ]] || command -v "$nt_qemu" >/dev/null ||
        bench_die "net: $nt_qemu not found (apt-get install qemu-system-x86)"
done
bench_need_kvm_stats net

bench_log "net: $nt_runs runs each of ${nt_vmms[*]}, $nt_bytes bytes guest -> host per run"
nt_fail=0
for ((i = 1; i <= nt_runs; i++)); do
    for v in "${nt_vmms[@]}"; do nt_run "$v" "$i" || nt_fail=1; done
done

nt_files() { # VMM: sets nt_f=(the measured runs' files)
    local i
    nt_f=()
    for ((i = 1; i <= nt_runs; i++)); do nt_f+=("$BENCH_TMP/net.$1.$i.kv"); done
}
nt_row() { # LABEL KEY [DECIMALS]: "median (min)" per VMM
    local v out s
    out=$(printf '%-40s' "$1")
    for v in "${nt_vmms[@]}"; do
        nt_files "$v"
        s=$(bench_values "$2" "${nt_f[@]}" | bench_stats)
        out+=$(printf ' %16s' "$(awk -v m="${s% *}" -v n="${s#* }" -v d="${3:-0}" 'BEGIN {
            if (m == "-") print "-"; else printf "%.*f (%.*f)\n", d, m, d, n }')")
    done
    printf '%s\n' "$out"
}
nt_ref=${nt_vmms[-1]} # ratios are relative to the last VMM (QEMU, by default)
nt_ratio_row() { # LABEL KEY: median of KEY relative to nt_ref's
    local v out s base
    nt_files "$nt_ref"
    s=$(bench_values "$2" "${nt_f[@]}" | bench_stats)
    base=${s% *}
    out=$(printf '%-40s' "$1")
    for v in "${nt_vmms[@]}"; do
        nt_files "$v"
        s=$(bench_values "$2" "${nt_f[@]}" | bench_stats)
        out+=$(printf ' %16s' "$(awk -v a="${s% *}" -v b="$base" 'BEGIN {
            if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx\n", a / b }')")
    done
    printf '%s\n' "$out"
}

echo
echo "== net: TCP guest -> host through libslirp, $((nt_bytes / 1048576)) MiB per run (busybox dd | nc -> bench/netsink), Linux guest, ${nt_mem} MiB, 1 vCPU; $nt_runs runs: median (min)"
printf '%-40s' ""
for v in "${nt_vmms[@]}"; do
    case $v in mica-*) printf ' %16s' "mica ${v#mica-}" ;; *) printf ' %16s' "qemu $v" ;; esac
done
echo
nt_row "throughput, first to last byte (MB/s)" mb_s 2
nt_ratio_row "  / $nt_ref's" mb_s
printf '%-40s\n' "VM EXITS per MiB (KVM stats)"
nt_row "  all exits" exits_per_mib
nt_row "    I/O port" io_exits_per_mib
nt_row "    MMIO to userspace" mmio_exits_per_mib
nt_row "    HLT" halt_exits_per_mib
nt_row "    host interrupt" irq_exits_per_mib
nt_row "    interrupt window" irq_window_exits_per_mib
nt_row "    other (NPF, MSR, ...)" other_exits_per_mib
nt_row "  returns to userspace for signals" signal_exits_per_mib
nt_ratio_row "  all exits / $nt_ref's" exits_per_mib
printf '%-40s\n' "VMM CPU per MiB (ms, /proc/PID/stat)"
nt_row "  user+sys, all threads" cpu_ms_per_mib
nt_row "    vCPU thread in guest mode" guest_ms_per_mib
nt_row "    vCPU thread, exits (KVM + VMM)" vcpu_noguest_ms_per_mib
nt_row "    other threads (slirp, devices)" other_threads_ms_per_mib
nt_row "  all outside guest mode" cpu_noguest_ms_per_mib
nt_ratio_row "  outside guest mode / $nt_ref's" cpu_noguest_ms_per_mib
nt_row "receiver (netsink) CPU per MiB (ms)" sink_cpu_ms_per_mib
nt_row "mica's virtio-net: notifies per MiB" mica_notifies_per_mib
nt_row "  interrupts per MiB" mica_interrupts_per_mib
echo "exits per MiB and CPU per MiB carry over to real hardware; MB/s here is bound by the nested,"
echo "emulated CPU (CPU times tick-sampled at $nt_tck Hz)"

# JSON
nt_vmm_json() { # VMM
    local k sep=''
    nt_files "$1"
    printf '{'
    for k in mb_s bytes first_to_last_ns exits_per_mib io_exits_per_mib mmio_exits_per_mib \
        halt_exits_per_mib irq_exits_per_mib irq_window_exits_per_mib nmi_window_exits_per_mib \
        other_exits_per_mib signal_exits_per_mib insn_emulation_per_mib halt_wakeup_per_mib \
        cpu_ms_per_mib guest_ms_per_mib vcpu_noguest_ms_per_mib other_threads_ms_per_mib \
        cpu_noguest_ms_per_mib sink_cpu_ms_per_mib mica_notifies_per_mib mica_interrupts_per_mib exit_us; do
        printf '%s"%s": %s' "$sep" "$k" "$(bench_json_metric "$k" "${nt_f[@]}")"
        sep=', '
    done
    nt_cmd "$1" PORT
    printf ', "command": %s}' "$(bench_json_str "${cmd[*]}")"
}
mkdir -p "$BENCH_OUT"
{
    printf '{"benchmark": "net", "env": %s,\n' "$(bench_env_json)"
    printf ' "config": {"runs": %s, "bytes": %s, "mem_mib": %s, "vcpus": 1, "kernel": %s, "initrd": %s, "qemu_version": %s},\n' \
        "$nt_runs" "$nt_bytes" "$nt_mem" "$(bench_json_str "$nt_kernel")" "$(bench_json_str "$nt_initrd")" \
        "$(bench_json_str "$("$nt_qemu" --version 2>/dev/null | head -n 1)")"
    printf ' "method": %s' "$(bench_json_str "The guest's /init (mica.bench=net) streams the bytes with busybox dd bs=64k | nc to 10.0.2.2:PORT after DHCP; bench/netsink on 127.0.0.1:PORT counts them, mb_s = bytes / (last byte - first byte) in 10^6 B/s. KVM statistics (debugfs, VM-wide) and /proc/PID/stat (utime+stime of all threads; guest_time = vCPU time in guest mode, included in utime) are sampled when the guest's serial lines 'bench net start' and 'bench net done' are read from the VMM's stdout; *_per_mib = (done - start) / MiB received. Medians and mins over the runs after a discarded warm-up per VMM.")"
    for v in "${nt_vmms[@]}"; do printf ',\n "%s": %s' "$v" "$(nt_vmm_json "$v")"; done
    printf '}\n'
} >"$nt_json.tmp" && mv "$nt_json.tmp" "$nt_json"
echo "JSON: $nt_json"
((!nt_fail)) || bench_die "net: some runs failed (see above)"
