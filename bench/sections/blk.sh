# shellcheck shell=bash
# shellcheck disable=SC2054 # commas in QEMU options
# Section "blk" (issue #5): the test guest's own virtio-blk driver (guest/blk.c) running the
# workloads of guest/bench_blk.c (tests=bench_blk: 1 MiB sequential reads and writes, 4 KiB
# random reads at queue depth 1 and 32) against mica's virtio-blk over virtio-pci and over
# virtio-mmio, and against QEMU's virtio-blk-pci (-M q35 -accel kvm, the guest booted through
# its PVH entry), all in this machine (the inner VM of scripts/with-kvm), one after another.
# Sourced by scripts/bench with bench/lib.sh loaded and $BENCH_TMP set.
#
# The disk: one raw image of BENCH_BLK_IMG_MIB (64) MiB in $BENCH_TMP, written full of zeroes
# beforehand (no holes: every read hits page-cache pages), shared by the runs. Both VMMs use
# the page cache with guest-controlled flushes and io_uring: mica's default `--disk IMG`
# (cache=writeback, io_uring) and QEMU's `-drive ...,format=raw,cache=writeback,aio=io_uring`.
# 1 vCPU (hence one request queue on both), BENCH_BLK_MEM_MIB (128) MiB.
#
# Each run (after one discarded warm-up per VMM; runs interleaved): the VMM's serial output is
# read line by line from a FIFO, its serial input is a second FIFO. The guest brackets an empty
# window 0 and every workload with "# bench_blk: mark start|end W" and waits, after each mark,
# for a byte from the host; the host first reads KVM's counters for the VM from debugfs
# (/sys/kernel/debug/kvm/PID-FD/, sums over the vCPUs; shell builtins only, no fork), then
# sends the byte. A workload's exits are its window's delta minus the empty window's (the
# handshake's own exits: the guest's UART interrupt, the marker line's port writes), divided by
# its requests; the guest counts interrupts taken, kicks and hlts itself, and times the work
# with the TSC (its rate from CPUID under mica, and for QEMU, which does not tell the guest,
# passed as tsc_khz= with the value mica's guest saw, or the kernel's from dmesg: KVM gives every VM
# the host's rate).
# Env: BENCH_BLK_VMMS (default "mica-pci mica-mmio qemu-pci"), BENCH_BLK_IMG_MIB,
#      BENCH_BLK_MEM_MIB, BENCH_BLK_CMDLINE (more guest keys: blk_seq_qd=, blk_seq_mib=,
#      blk_rand1_n=, blk_rand32_n=, blk_event_idx=0), BENCH_BLK_TIMEOUT (seconds per boot,
#      default 120), QEMU.

bb_img_mib=${BENCH_BLK_IMG_MIB:-64}
bb_mem=${BENCH_BLK_MEM_MIB:-128}
bb_timeout=${BENCH_BLK_TIMEOUT:-120}
bb_qemu=${QEMU:-qemu-system-x86_64}
read -ra bb_vmms <<<"${BENCH_BLK_VMMS:-mica-pci mica-mmio qemu-pci}"
bb_cmdline="tests=bench_blk blk_sync=1${BENCH_BLK_CMDLINE:+ $BENCH_BLK_CMDLINE}"
bb_img=$BENCH_TMP/blk.img
bb_json=$BENCH_OUT/blk.json
# KVM statistics sampled at every mark (debugfs file names; missing ones are skipped).
bb_stats=(exits io_exits mmio_exits halt_exits irq_exits irq_window_exits nmi_window_exits
    signal_exits request_irq_exits insn_emulation irq_injections halt_wakeup)
bb_workloads=(seqread seqwrite randread_qd1 randread_qd32) # windows 1..4 of the guest
bb_khz='' # the guest TSC rate, once a mica run has reported it

bb_cmd() { # VMM BASE: sets cmd=(the command line of one run)
    case $1 in
    mica-pci | mica-mmio)
        cmd=("$MICA" run --kernel "$GUEST" --mem "${bb_mem}M" --transport "${1#mica-}" --disk "$bb_img"
            --stats-json "$2.stats.json" --timeout "$bb_timeout" --cmdline "$bb_cmdline") ;;
    qemu-pci)
        cmd=("$bb_qemu" -M q35 -accel kvm -cpu host -m "${bb_mem}M" -nographic -monitor none
            -no-reboot -nic none -fw_cfg name=etc/sercon-port,string=0
            -device isa-debug-exit,iobase=0x501,iosize=1
            -drive "file=$bb_img,if=none,id=blk0,format=raw,cache=writeback,aio=io_uring"
            -device virtio-blk-pci,drive=blk0
            -kernel "$GUEST" -append "$bb_cmdline${bb_khz:+ tsc_khz=$bb_khz}") ;;
    *) bench_die "blk: unknown VMM '$1' (mica-pci, mica-mmio, qemu-pci)" ;;
    esac
}

# bb_sample PID WHAT W OUT: appends "WHAT W STAT VALUE" lines for KVM's counters (builtins).
bb_sample() {
    local kv
    bench_kvm_read "$1" "${bb_stats[@]}"
    # shellcheck disable=SC2154 # bench_kvm(_dir): set by bench_kvm_read (bench/lib.sh)
    for kv in "${bench_kvm[@]}"; do printf '%s %s %s %s\n' "$2" "$3" "${kv%%=*}" "${kv#*=}"; done >>"$4"
}

# bb_kv OUT SAMPLES: key=value results of one run: WORKLOAD.KEY for the guest's figures and,
# per request, the exits of its window minus window 0's.
bb_kv() {
    awk -v stats="${bb_stats[*]}" '
        FILENAME == ARGV[1] { v[$1, $2, $3] = $4; next }
        /^# bench_blk: result / {
            delete r
            for (i = 4; i <= NF; i++) { eq = index($i, "="); r[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
            w = r["window"]; name = r["workload"]; n = r["requests"]
            if (n == 0) next
            sec = r["tsc_khz"] > 0 ? r["cycles"] / (r["tsc_khz"] * 1000) : 0
            printf "%s.qd=%s\n%s.requests=%s\n%s.req_bytes=%s\n", name, r["qd"], name, n, name, r["req_bytes"]
            if (sec > 0)
                printf "%s.mib_s=%.2f\n%s.iops=%.0f\n%s.us=%.0f\n", name, r["bytes"] / 1048576 / sec,
                    name, n / sec, name, sec * 1e6
            printf "%s.irqs_per_req=%.4f\n%s.kicks_per_req=%.4f\n%s.halts_per_req=%.4f\n", name,
                r["irqs"] / n, name, r["kicks"] / n, name, r["halts"] / n
            ns = split(stats, st, " ")
            have = 1
            for (i = 1; i <= ns; i++) {
                s = st[i]
                if (!(("end", w, s) in v) || !(("end", 0, s) in v)) { if (s == "exits") have = 0; continue }
                d[s] = (v["end", w, s] - v["start", w, s]) - (v["end", 0, s] - v["start", 0, s])
                printf "%s.%s=%.0f\n%s.%s_per_req=%.4f\n", name, s, d[s], name, s, d[s] / n
            }
            if (have) {
                o = d["exits"] - d["io_exits"] - d["mmio_exits"] - d["halt_exits"] - d["irq_exits"]
                o -= d["irq_window_exits"] + d["nmi_window_exits"]
                printf "%s.other_exits_per_req=%.4f\n", name, o / n
            }
        }
        END {
            if (("end", 0, "exits") in v)
                printf "idle.exits=%.0f\n", v["end", 0, "exits"] - v["start", 0, "exits"]
        }' "$2" "$1"
}

# bb_device_kv STATS_JSON: mica's own counters for the whole run (warm-ups included).
bb_device_kv() {
    [[ -s $1 ]] || return 0
    awk '/"device": "virtio-blk"/ || /"backend":/ {
            gsub(/[{},"]/, "")
            for (i = 1; i < NF; i++) if ($i ~ /:$/) print "dev." substr($i, 1, length($i) - 1) "=" $(i + 1)
        }' "$1" | grep -v '^dev\.device='
}

# bb_on_line LINE (bench_follow's handler, in bb_run's scope): at each of the guest's window
# marks, samples KVM's counters, then lets the guest go on.
bb_on_line() {
    if [[ $1 =~ ^#\ bench_blk:\ mark\ (start|end)\ ([0-9]+)$ ]]; then
        bb_sample "$pid" "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "$base.samples"
        printf g >&"$wr"
    fi
}

# bb_run VMM N: one boot; leaves $BENCH_TMP/blk.VMM.N.{kv,out,err,samples}
bb_run() {
    local vmm=$1 n=$2 base=$BENCH_TMP/blk.$1.$2 cmd ofifo ififo pid rd wr t0 rc=0
    local timed_out=0 ok=1 w
    bb_cmd "$vmm" "$base"
    ofifo=$base.ofifo ififo=$base.ififo
    rm -f "$ofifo" "$ififo" "$base".{out,samples,stats.json}
    mkfifo "$ofifo" "$ififo"
    : >"$base.samples"
    exec {wr}<>"$ififo"
    t0=$(bench_us)
    "${cmd[@]}" <"$ififo" >"$ofifo" 2>"$base.err" &
    pid=$!
    exec {rd}<"$ofifo"
    bench_follow "$pid" "$rd" $((t0 + bb_timeout * 1000000)) "$base.out" bb_on_line || timed_out=1
    exec {rd}<&- {wr}>&-
    wait "$pid" || rc=$?
    rm -f "$ofifo" "$ififo"
    if [[ -z $bb_khz && $vmm == mica-* ]]; then
        bb_khz=$(sed -n 's/^# bench_blk: config .*tsc_khz=\([1-9][0-9]*\) tsc_source=cpuid.*/\1/p' "$base.out")
    fi
    {
        echo "exit=$rc"
        echo "wall_ms=$((($(bench_us) - t0) / 1000))"
        bb_kv "$base.out" "$base.samples"
        bb_device_kv "$base.stats.json"
        ((timed_out)) && echo "timeout=1"
    } >"$base.kv"
    # mica exits with the guest's status 0; QEMU's isa-debug-exit with (0 << 1) | 1.
    [[ ($vmm == mica-* && $rc == 0) || ($vmm == qemu-* && $rc == 1) ]] || ok=0
    grep -q '^ok 1 - bench_blk$' "$base.out" || ok=0
    for w in "${bb_workloads[@]}"; do
        grep -q "^$w.exits_per_req=" "$base.kv" || ok=0
    done
    ((timed_out)) && ok=0
    if ((!ok)); then
        bench_log "blk: $vmm run $n failed (status $rc$( ((timed_out)) && echo ', timed out'))"
        grep -E '^(not ok|Bail out|# bench_blk: [^m])' "$base.out" | tail -n 5 | sed 's/^/bench:   /' >&2
        tail -n 3 "$base.err" | sed 's/^/bench:   /' >&2
        return 1
    fi
}

for v in "${bb_vmms[@]}"; do
    [[ $v != qemu-* ]] || command -v "$bb_qemu" >/dev/null ||
        bench_die "blk: $bb_qemu not found (apt-get install qemu-system-x86)"
done
[[ -r $GUEST ]] || bench_die "blk: $GUEST is missing: run make first"
bench_need_kvm_stats blk
dd if=/dev/zero of="$bb_img" bs=1M count="$bb_img_mib" status=none ||
    bench_die "blk: cannot write the $bb_img_mib MiB image $bb_img"

# Without a mica run to report it, the guest TSC rate (KVM's default: the host's) from the kernel.
if [[ " ${bb_vmms[*]}" != *" mica-"* ]]; then
    bb_khz=$(dmesg 2>/dev/null | sed -n -e 's/.*tsc: Detected \([0-9]*\)\.\([0-9]\{3\}\) MHz processor.*/\1\2/p' \
        -e 's/.*tsc: Refined TSC clocksource calibration: \([0-9]*\)\.\([0-9]\{3\}\) MHz.*/\1\2/p' | tail -n 1)
fi
bench_log "blk: $BENCH_RUNS runs each of ${bb_vmms[*]}, ${bb_img_mib} MiB image, '$bb_cmdline'"
bb_fail=0
bench_runs bb_run "${bb_vmms[@]}" || bb_fail=1

# The measured runs' results, tagged by VMM (file names blk.VMM.N.kv).
bb_files=()
for v in "${bb_vmms[@]}"; do
    for ((i = 1; i <= BENCH_RUNS; i++)); do bb_files+=("$BENCH_TMP/blk.$v.$i.kv"); done
done

# bb_report MODE: one awk pass over every run's key=value file. MODE table: the table rows;
# MODE json: one line per VMM, its JSON object without the closing brace. Cells are "median
# (min)" over the runs; "vs" rows divide each VMM's median by the last VMM's.
bb_report() {
    awk -v mode="$1" -v vmms="${bb_vmms[*]}" -v workloads="${bb_workloads[*]}" '
        function stats(vm, k,   n, i, j, t, a) { # sets med, mn, list; returns the count
            n = cnt[vm, k]
            for (i = 1; i <= n; i++) a[i] = val[vm, k, i] + 0
            for (i = 2; i <= n; i++)
                for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            list = ""
            for (i = 1; i <= n; i++) list = list (i > 1 ? ", " : "") val[vm, k, i]
            if (n) { med = n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2; mn = a[1] }
            return n
        }
        function z(x) { return x < 0 && x > -0.005 ? 0 : x } # no "-0.00"
        function cell(vm, k, fmt) {
            if (!stats(vm, k)) return "-"
            return sprintf(fmt == "i" ? "%.0f (%.0f)" : "%.2f (%.2f)", z(med), z(mn))
        }
        function row(label, k, fmt,   i, out, r) {
            out = sprintf("%-34s", label)
            if (fmt == "vs") {
                r = stats(last, k) ? med : 0
                for (i = 1; i <= nv; i++)
                    out = out sprintf(" %17s", stats(vm_[i], k) && r ? sprintf("%.2fx", med / r) : "-")
            } else {
                for (i = 1; i <= nv; i++) out = out sprintf(" %17s", cell(vm_[i], k, fmt))
            }
            print out
        }
        function metric(vm, k) {
            return stats(vm, k) ? sprintf("{\"median\": %.10g, \"min\": %.10g, \"runs\": [%s]}", med, mn, list) : "null"
        }
        {
            f = FILENAME; sub(/.*\/blk\./, "", f); sub(/\.[0-9]+\.kv$/, "", f)
            eq = index($0, "="); k = substr($0, 1, eq - 1)
            val[f, k, ++cnt[f, k]] = substr($0, eq + 1)
            if (!((f, "first", k) in seen)) { seen[f, "first", k] = 1; firstv[f, k] = substr($0, eq + 1) }
        }
        END {
            nv = split(vmms, vm_, " "); nw = split(workloads, wl, " "); last = vm_[nv]
            if (mode == "table") {
                out = sprintf("%-34s", "")
                for (i = 1; i <= nv; i++) out = out sprintf(" %17s", vm_[i])
                print out
                for (j = 1; j <= nw; j++) {
                    w = wl[j]
                    printf "%s: %d KiB requests, queue depth %s, %s requests\n", w,
                        firstv[vm_[1], w ".req_bytes"] / 1024, firstv[vm_[1], w ".qd"], firstv[vm_[1], w ".requests"]
                    row("  MiB/s", w ".mib_s", "i"); row("  IOPS", w ".iops", "i")
                    row("  VM exits / request", w ".exits_per_req", "r")
                    row("    I/O port", w ".io_exits_per_req", "r")
                    row("    MMIO to userspace", w ".mmio_exits_per_req", "r")
                    row("    HLT", w ".halt_exits_per_req", "r")
                    row("    host interrupt", w ".irq_exits_per_req", "r")
                    row("    other (in-kernel MMIO, APIC...)", w ".other_exits_per_req", "r")
                    row("  interrupts taken / request", w ".irqs_per_req", "r")
                    row("  interrupts injected (KVM) / req", w ".irq_injections_per_req", "r")
                    row("  kicks / request", w ".kicks_per_req", "r")
                    row("  exits / request vs " last, w ".exits_per_req", "vs")
                    row("  throughput vs " last, w ".iops", "vs")
                }
                row("empty window: exits (subtracted)", "idle.exits", "i")
                row("wall time per boot, ms", "wall_ms", "i")
                exit
            }
            nk = split("qd requests req_bytes mib_s iops us exits_per_req io_exits_per_req mmio_exits_per_req " \
                "halt_exits_per_req irq_exits_per_req irq_window_exits_per_req other_exits_per_req " \
                "insn_emulation_per_req irq_injections_per_req irqs_per_req kicks_per_req halts_per_req", keys, " ")
            nd = split("notifies interrupts interrupts_suppressed reads writes flushes batches", dkeys, " ")
            for (i = 1; i <= nv; i++) {
                vm = vm_[i]; out = "{"
                for (j = 1; j <= nw; j++) {
                    out = out (j > 1 ? ", " : "") "\"" wl[j] "\": {"
                    for (m = 1; m <= nk; m++)
                        out = out (m > 1 ? ", " : "") "\"" keys[m] "\": " metric(vm, wl[j] "." keys[m])
                    out = out "}"
                }
                out = out ", \"empty_window_exits\": " metric(vm, "idle.exits") ", \"wall_ms\": " metric(vm, "wall_ms")
                if (cnt[vm, "dev.interrupts"]) {
                    out = out ", \"device_whole_run\": {"
                    for (m = 1; m <= nd; m++)
                        out = out (m > 1 ? ", " : "") "\"" dkeys[m] "\": " metric(vm, "dev." dkeys[m])
                    out = out "}"
                }
                print out
            }
        }' "${bb_files[@]}"
}

echo
echo "== blk: the test guest's virtio-blk driver, ${bb_img_mib} MiB raw image (page cache, io_uring), 1 vCPU;" \
    "$BENCH_RUNS runs: median (min)"
bb_report table
echo "guest clock: the TSC at ${bb_khz:-?} kHz. Exits and interrupts per request carry over to real hardware;" \
    "times do not (nested)"

mkdir -p "$BENCH_OUT"
bb_report json >"$BENCH_TMP/blk.json.parts"
mapfile -t bb_parts <"$BENCH_TMP/blk.json.parts"
{
    printf '{"benchmark": "blk", "env": %s,\n' "$(bench_env_json)"
    printf ' "config": {"runs": %s, "image_mib": %s, "mem_mib": %s, "vcpus": 1, "guest_cmdline": %s, ' \
        "$BENCH_RUNS" "$bb_img_mib" "$bb_mem" "$(bench_json_str "$bb_cmdline")"
    printf '"tsc_khz": %s, "qemu_version": %s, "cache": %s},\n' "${bb_khz:-null}" \
        "$(bench_json_str "$("$bb_qemu" --version 2>/dev/null | head -n 1)")" \
        "$(bench_json_str "page cache with guest flushes and io_uring on both: mica --disk IMG (cache=writeback, io_uring); QEMU -drive format=raw,cache=writeback,aio=io_uring")"
    printf ' "method": %s' "$(bench_json_str "guest/bench_blk.c (tests=bench_blk blk_sync=1) on the test guest's driver guest/blk.c. Per workload the guest times the work with the TSC (from the first request added to the last completion; MiB/s and IOPS derive from it) and counts used-buffer interrupts taken (interrupts are enabled during a workload), notifications written (kicks) and hlts. KVM's VM-wide counters come from debugfs /sys/kernel/debug/kvm/PID-FD/, read by the host at the guest's start and end marks (the guest waits for a byte on COM1 after each); a workload's figure is its window's delta minus that of an empty window (the handshake's own cost), per request. other_exits = exits - io - mmio (to userspace) - halt - irq - irq_window - nmi_window: exits handled in the kernel, such as ioeventfd notifications (nested page faults), APIC EOI and timer writes. Median and min over the runs after one discarded warm-up boot per VMM. device_whole_run (mica only): mica's own --stats-json counters for the whole run, warm-up requests included.")"
    for ((i = 0; i < ${#bb_vmms[@]}; i++)); do
        bb_cmd "${bb_vmms[i]}" "$BENCH_TMP/blk.${bb_vmms[i]}.N"
        printf ',\n "%s": %s, "command": %s}' "${bb_vmms[i]}" "${bb_parts[i]:-"{\"no_results\": true"}" \
            "$(bench_json_str "${cmd[*]}")"
    done
    printf '}\n'
} >"$bb_json.tmp" && mv "$bb_json.tmp" "$bb_json"
echo "JSON: $bb_json"
((!bb_fail)) || bench_die "blk: some runs failed (see above)"
