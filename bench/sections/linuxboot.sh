# shellcheck shell=bash
# shellcheck disable=SC2054,SC2178 # commas in QEMU options; namerefs to arrays
# Section "linuxboot" (issue #6): the same Linux guest -- Debian's cloud kernel (bzImage,
# build/linux/vmlinuz) with the busybox initramfs of scripts/get-linux-guest, `quiet` -- booted
# side by side under mica, QEMU -M microvm and QEMU -M q35: 256 MiB, 1 vCPU, serial console.
# Sourced by scripts/bench with bench/lib.sh loaded and $BENCH_TMP set.
#
# Each run (after one discarded warm-up per VMM; runs interleaved mica, microvm, q35):
#   - the VMM is started from this shell with its serial output on a FIFO that is read here line
#     by line; times are host-side $EPOCHREALTIME readings: just before the fork, when the line
#     "mica-linux: /init reached" has been read, and when the VMM has exited (EOF + wait);
#   - bench/firstrun.so (LD_PRELOAD, writing its record into a file on fd 7) notes the first
#     KVM_RUN (CLOCK_MONOTONIC, mapped to the realtime clock through /proc/timer_list's "now")
#     and the guest-RAM ranges given to KVM_SET_USER_MEMORY_REGION;
#   - right after the /init line is read, while the guest still runs (its /init parses the
#     command line and sleeps 0.5 s before it reports), KVM's statistics for the VM are read
#     from debugfs (/sys/kernel/debug/kvm/PID-FD/: VM-wide sums of the vCPU counters) and the
#     VMM's /proc/PID/status and smaps are copied -- all with shell builtins, no fork, so the
#     sample lands within milliseconds of the line; smaps is summed afterwards: VMAs overlapping
#     a registered guest-RAM range are guest RAM, the rest is the VMM's own (as in startup.sh).
# The guest ends itself: port 0x501 (mica's debug-exit; QEMU's isa-debug-exit, which exits
# (0<<1)|1 = 1), or, where the port write does not end the VM, /init's fallback poweroff -f.
# Env: BENCH_LINUXBOOT_VMMS (default "mica microvm q35"), BENCH_LINUXBOOT_MEM_MIB (256),
#      BENCH_LINUXBOOT_CMDLINE, BENCH_LINUXBOOT_TIMEOUT (seconds per boot, default 180), QEMU.

lb_kernel=${LINUX_KERNEL:-build/linux/vmlinuz}
lb_initrd=${LINUX_INITRD:-build/linux/initramfs.cpio.gz}
lb_mem=${BENCH_LINUXBOOT_MEM_MIB:-256}
lb_cmdline=${BENCH_LINUXBOOT_CMDLINE:-console=ttyS0 quiet mica.status=0}
lb_timeout=${BENCH_LINUXBOOT_TIMEOUT:-180}
lb_qemu=${QEMU:-qemu-system-x86_64}
read -ra lb_vmms <<<"${BENCH_LINUXBOOT_VMMS:-mica microvm q35}"
lb_marker='mica-linux: /init reached'
lb_json=$BENCH_OUT/linuxboot.json
lb_shim=$PWD/$BENCH_BIN/firstrun.so
# KVM statistics read at /init (bench/lib.sh: distinct exit reasons first, then other events).
lb_stats=("${BENCH_KVM_EXIT_STATS[@]}")
lb_firstrun_magic=7959393760925870438 # FIRSTRUN_MAGIC as od -tu8 prints it

lb_cmd() { # VMM: sets cmd=(the command line that boots the Linux guest under VMM)
    local qemu=("$lb_qemu" -accel kvm -cpu host -m "${lb_mem}M" -nographic -no-reboot -nodefaults
        -serial stdio -device isa-debug-exit,iobase=0x501,iosize=1
        -kernel "$lb_kernel" -initrd "$lb_initrd" -append "$lb_cmdline")
    case $1 in
    mica) cmd=("$MICA" run --kernel "$lb_kernel" --initrd "$lb_initrd" --mem "${lb_mem}M"
        --cmdline "$lb_cmdline") ;;
    microvm) cmd=("${qemu[0]}" -M microvm "${qemu[@]:1}") ;;
    q35) cmd=("${qemu[0]}" -M q35 "${qemu[@]:1}") ;;
    *) bench_die "linuxboot: unknown VMM '$1' (mica, microvm, q35)" ;;
    esac
}

lb_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$((10#$t))"; } # realtime, microseconds

# lb_mono_offset: sets lb_off_us = realtime - CLOCK_MONOTONIC in microseconds ("" if unknown).
lb_mono_offset() {
    local a b line now=''
    lb_off_us=''
    a=${EPOCHREALTIME//[.,]/}
    while IFS= read -r line; do
        [[ $line =~ ^now\ at\ ([0-9]+)\ nsecs ]] && { now=${BASH_REMATCH[1]}; break; }
    done </proc/timer_list 2>/dev/null
    b=${EPOCHREALTIME//[.,]/}
    [[ -n $now ]] && lb_off_us=$(((10#$a + 10#$b) / 2 - now / 1000))
}

# lb_sample PID BASE: the at-/init sample (builtins only). Writes BASE.stats, .status, .smaps.
lb_sample() {
    local pid=$1 base=$2
    bench_kvm_read "$pid" "${lb_stats[@]}"
    mapfile -t lb_status_lines </proc/"$pid"/status 2>/dev/null || lb_status_lines=()
    mapfile -t lb_smaps_lines </proc/"$pid"/smaps 2>/dev/null || lb_smaps_lines=()
    # shellcheck disable=SC2154 # bench_kvm(_dir): set by bench_kvm_read (bench/lib.sh)
    [[ -n $bench_kvm_dir ]] && printf '%s\n' "kvm_dir=${bench_kvm_dir##*/}" "${bench_kvm[@]}" >"$base.stats"
    printf '%s\n' "${lb_status_lines[@]}" >"$base.status"
    printf '%s\n' "${lb_smaps_lines[@]}" >"$base.smaps"
}

# lb_memory BASE: key=value memory figures from BASE.status, BASE.smaps and the shim's slots.
lb_memory() {
    local base=$1 words slots=''
    read -ra words <<<"$(od -An -v -tu8 "$base.rec" 2>/dev/null | tr -s ' \n' '  ')"
    # struct firstrun_rec as u64 words: magic, run_mono_ns, run_cpu_ns, ioctls, nslots, slots...
    if [[ ${words[0]:-} == "$lb_firstrun_magic" || ${words[4]:-0} -gt 0 ]]; then
        local n=$((words[4] & 0xffffffff)) i
        for ((i = 0; i < n && i < 8; i++)); do slots+="${words[5 + 2 * i]} ${words[6 + 2 * i]} "; done
    fi
    awk '/^VmRSS:/ { print "vmrss_kb=" $2 } /^VmHWM:/ { print "vmhwm_kb=" $2 }
        /^Threads:/ { print "threads=" $2 }' "$base.status"
    awk -v slots="$slots" '
        function hex(s,   i, c, v) {
            v = 0; s = tolower(s)
            for (i = 1; i <= length(s); i++) { c = index("0123456789abcdef", substr(s, i, 1)) - 1; v = v * 16 + c }
            return v
        }
        BEGIN { ns = split(slots, w, " ") / 2; for (i = 1; i <= ns; i++) { a[i] = w[2 * i - 1]; b[i] = a[i] + w[2 * i] } }
        /^[0-9a-f]+-[0-9a-f]+ / {
            split($1, r, "-"); s = hex(r[1]); e = hex(r[2]); guest = 0
            for (i = 1; i <= ns; i++) if (s < b[i] && e > a[i]) guest = 1
            if (guest) gvma += (e - s) / 1024
            next
        }
        $1 == "Rss:" { tot += $2; if (guest) grss += $2 }
        END {
            if (NR == 0) exit
            printf "rss_total_kb=%.0f\n", tot
            if (ns > 0) printf "rss_guest_kb=%.0f\nrss_vmm_kb=%.0f\nguest_vma_kb=%.0f\n", grss, tot - grss, gvma
        }' "$base.smaps"
}

# lb_run VMM N: one boot; leaves $BENCH_TMP/linuxboot.VMM.N.{kv,out,err,...}
lb_run() {
    local vmm=$1 n=$2 base=$BENCH_TMP/linuxboot.$1.$2 cmd fifo pid rd line t0 t_init='' t_end
    local deadline left rc=0 timed_out=0 end='' ok=1 words
    lb_cmd "$vmm"
    fifo=$base.fifo
    rm -f "$fifo" "$base".{stats,status,smaps,out}
    mkfifo "$fifo"
    : >"$base.rec"
    lb_mono_offset
    t0=$(lb_us)
    LD_PRELOAD=$lb_shim FIRSTRUN_FD=7 "${cmd[@]}" 7<>"$base.rec" <"/dev/null" >"$fifo" 2>"$base.err" &
    pid=$!
    exec {rd}<"$fifo"
    deadline=$((t0 + lb_timeout * 1000000))
    while :; do
        left=$((deadline - $(lb_us)))
        if ((left <= 0)); then
            timed_out=1
            kill -KILL "$pid" 2>/dev/null
            break
        fi
        IFS= read -r -t "$((left / 1000000 + 1))" -u "$rd" line || {
            (($? > 128)) && continue # timed out: the deadline check decides
            [[ -n $line ]] && printf '%s\n' "$line" >>"$base.out"
            break # EOF: the VMM has exited
        }
        if [[ -z $t_init && $line == *"$lb_marker"* ]]; then
            t_init=${EPOCHREALTIME//[.,]/}
            lb_sample "$pid" "$base"
        fi
        printf '%s\n' "$line" >>"$base.out"
    done
    exec {rd}<&-
    wait "$pid" || rc=$?
    t_end=$(lb_us)
    rm -f "$fifo"
    {
        echo "exit=$rc"
        echo "exit_us=$((t_end - t0))"
        [[ -n $t_init ]] && echo "init_us=$((10#$t_init - t0))"
        read -ra words <<<"$(od -An -v -tu8 -N16 "$base.rec" 2>/dev/null | tr -s ' \n' '  ')"
        [[ ${words[0]:-} == "$lb_firstrun_magic" && -n $lb_off_us ]] &&
            echo "run_us=$((words[1] / 1000 + lb_off_us - t0))"
        if [[ -f $base.stats ]]; then
            cat "$base.stats"
            bench_kvm_other_exits <"$base.stats"
        fi
        [[ -s $base.smaps ]] && lb_memory "$base"
        ((timed_out)) && echo "timeout=1"
    } >"$base.kv"
    # How the guest ended: the debug-exit port (mica exits 0, QEMU (0<<1)|1 = 1) or poweroff.
    if grep -q 'port 0x501 did not end the VM' "$base.out"; then
        end=poweroff
        [[ $rc == 0 && $vmm != mica ]] || ok=0
    else
        end=debug-exit
        [[ ($vmm == mica && $rc == 0) || ($vmm != mica && $rc == 1) ]] || ok=0
    fi
    echo "end=$end" >>"$base.kv"
    grep -q 'mica-linux: reporting status 0' "$base.out" || ok=0
    [[ -n $t_init && -f $base.stats && -s $base.smaps ]] || ok=0
    ((timed_out)) && ok=0
    if ((!ok)); then
        bench_log "linuxboot: $vmm run $n failed: $(tr '\n' ' ' <"$base.kv")"
        tail -n 5 "$base.out" "$base.err" | sed 's/^/bench:   /' >&2
        return 1
    fi
}

for f in "$lb_kernel" "$lb_initrd"; do
    [[ -r $f ]] || bench_die "linuxboot: $f is missing (run scripts/get-linux-guest)"
done
[[ -r $lb_shim ]] || bench_die "linuxboot: $lb_shim is missing"
for v in "${lb_vmms[@]}"; do
    [[ $v == mica ]] || command -v "$lb_qemu" >/dev/null ||
        bench_die "linuxboot: $lb_qemu not found (apt-get install qemu-system-x86)"
done
bench_need_kvm_stats linuxboot
lb_kver=$(bench_kernel_version "$lb_kernel")
lb_krel=${lb_kver%% *}

bench_log "linuxboot: $BENCH_RUNS runs each of ${lb_vmms[*]}, Linux ${lb_krel:-?}, ${lb_mem} MiB, '$lb_cmdline'"
lb_fail=0
bench_runs lb_run "${lb_vmms[@]}" || lb_fail=1

# Files of the measured runs, per VMM: lb_files_VMM=(...). (No process substitution: the inner
# VM of scripts/with-kvm has no /dev/fd.)
for v in "${lb_vmms[@]}"; do
    declare -a "lb_files_$v=()"
    declare -n lbf=lb_files_$v
    for ((i = 1; i <= BENCH_RUNS; i++)); do lbf+=("$BENCH_TMP/linuxboot.$v.$i.kv"); done
    unset -n lbf
done

lb_row() { # LABEL KEY SCALE
    local v out
    out=$(printf '%-38s' "$1")
    for v in "${lb_vmms[@]}"; do
        local -n lbf=lb_files_$v
        out+=$(printf ' %19s' "$(bench_cell "$2" "$3" "${lbf[@]}")")
        unset -n lbf
    done
    printf '%s\n' "$out"
}
lb_median() { # VMM KEY: the median of KEY over VMM's runs ("-" if none)
    local -n lbf=lb_files_$1
    local s
    s=$(bench_values "$2" "${lbf[@]}" | bench_stats)
    echo "${s% *}"
}

lb_names() { local v; for v in "${lb_vmms[@]}"; do case $v in mica) printf ' %19s' mica ;; *) printf ' %19s' "qemu $v" ;; esac; done; }
echo
echo "== linuxboot: Linux ${lb_krel:-?} (bzImage) + busybox initramfs, '$lb_cmdline', ${lb_mem} MiB, 1 vCPU; $BENCH_RUNS runs: median (min)"
printf '%-38s%s\n' "VM EXITS, exec -> /init (KVM stats)" "$(lb_names)"
bench_exit_rows lb_row
if [[ ${lb_vmms[0]} == mica ]]; then
    m=$(lb_median mica exits)
    out=$(printf '%-38s' "  all exits / mica's")
    for v in "${lb_vmms[@]}"; do
        out+=$(printf ' %19s' "$(awk -v a="$(lb_median "$v" exits)" -v b="$m" 'BEGIN {
            if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx\n", a / b }')")
    done
    printf '%s\n' "$out"
fi
printf '%-38s%s\n' "TIME (host wall clock, ms)" ""
lb_row "  exec -> first KVM_RUN" run_us 1000
lb_row "  exec -> \"/init reached\" read" init_us 1000
lb_row "  exec -> exited" exit_us 1000
printf '%-38s%s\n' "MEMORY at /init (KiB)" ""
lb_row "  VmRSS" vmrss_kb 1
lb_row "  RSS excl. guest RAM" rss_vmm_kb 1
lb_row "  guest RAM resident" rss_guest_kb 1
lb_row "  threads" threads 1
for v in "${lb_vmms[@]}"; do
    declare -n lbf=lb_files_$v
    ends=$(bench_values end "${lbf[@]}" | sort | uniq -c | awk '{ printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1 }')
    echo "  $v ended by: ${ends:-?}"
    unset -n lbf
done
echo "exits are the figure that carries over to real hardware (each costs far more here, nested)"

# JSON
lb_vmm_json() { # VMM
    local -n lbf=lb_files_$1
    local k sep='' ends cmd
    printf '{'
    for k in exits io_exits mmio_exits halt_exits irq_exits irq_window_exits nmi_window_exits \
        other_exits signal_exits request_irq_exits insn_emulation hypercalls halt_wakeup pf_taken \
        run_us init_us exit_us vmrss_kb vmhwm_kb rss_total_kb rss_vmm_kb rss_guest_kb guest_vma_kb \
        threads; do
        printf '%s"%s": %s' "$sep" "$k" "$(bench_json_metric "$k" "${lbf[@]}")"
        sep=', '
    done
    ends=$(bench_values end "${lbf[@]}" | while IFS= read -r k; do bench_json_str "$k"; echo; done | paste -sd, | sed 's/,/, /g')
    lb_cmd "$1"
    printf ', "ended_by": [%s], "command": %s}' "$ends" "$(bench_json_str "${cmd[*]}")"
}
mkdir -p "$BENCH_OUT"
{
    printf '{"benchmark": "linuxboot", "env": %s,\n' "$(bench_env_json)"
    printf ' "config": {"runs": %s, "mem_mib": %s, "vcpus": 1, "cmdline": %s, "kernel": %s, ' \
        "$BENCH_RUNS" "$lb_mem" "$(bench_json_str "$lb_cmdline")" "$(bench_json_str "$lb_kernel")"
    printf '"kernel_version": %s, "initrd": %s, "qemu_version": %s, "marker": %s},\n' \
        "$(bench_json_str "$lb_kver")" "$(bench_json_str "$lb_initrd")" \
        "$(bench_json_str "$("$lb_qemu" --version 2>/dev/null | head -n 1)")" "$(bench_json_str "$lb_marker")"
    printf ' "method": %s' "$(bench_json_str "host wall clock (bash EPOCHREALTIME) from just before the fork of the VMM to the moment the marker line is read from its serial output (a FIFO), and to its exit (EOF + wait); first KVM_RUN from the LD_PRELOAD shim bench/firstrun.so (CLOCK_MONOTONIC, converted via /proc/timer_list). Right after the marker line: KVM statistics from debugfs /sys/kernel/debug/kvm/PID-FD/ (VM-wide sums of the vCPU counters since VM creation; io_exits counts every I/O-instruction exit, mmio_exits only MMIO exits to userspace; other_exits = exits - io - mmio - halt - irq - irq_window - nmi_window), /proc/PID/status (VmRSS) and smaps (VMAs overlapping the ranges given to KVM_SET_USER_MEMORY_REGION before the first KVM_RUN are guest RAM). Times in microseconds, memory in KiB; median and min over the runs, after one discarded warm-up boot per VMM.")"
    for v in "${lb_vmms[@]}"; do printf ',\n "%s": %s' "$v" "$(lb_vmm_json "$v")"; done
    printf '}\n'
} >"$lb_json.tmp" && mv "$lb_json.tmp" "$lb_json"
echo "JSON: $lb_json"
((!lb_fail)) || bench_die "linuxboot: some runs failed (see above)"
