# shellcheck shell=bash
# shellcheck disable=SC2054,SC2016 # commas in QEMU options; guest scripts in single quotes
# Section "sandbox" (issue #12 §4): `mica sandbox -- CMD` against QEMU 7.2 (-accel kvm,
# -M microvm and -M q35) with QEMU's virtiofsd doing the same job: the same kernel (Debian's
# cloud kernel, build/linux/vmlinuz), the same init with the same job (the initramfs mica builds,
# written to a file for QEMU by tests/unit/test_sandbox_initramfs --write), the same share (the
# host's /, read-only, tag mica-root), the same ports (virtio-console mica.job/stdin/stdout/stderr),
# the same kernel command line, 512 MiB (mica sandbox's default), 1 vCPU; CMD's status out
# through port 0x501 (mica's debug-exit; QEMU's isa-debug-exit exits with (N<<1)|1).
# Sourced by scripts/bench with bench/lib.sh loaded and $BENCH_TMP set.
#
# VMMs: mica (`mica sandbox --cold`: boots every time), mica-warm (`mica sandbox --cache
# $BENCH_TMP/warm-cache`, issue #14: its discarded warm-up run makes the cache entry, or finds
# the one an earlier workload made; every measured run must restore it -- --json's warm.used --
# or it is a failed run), microvm and q35 (QEMU, cold: QEMU has no warm start of this kind).
#
# Workloads (BENCH_SANDBOX_WORKLOADS, default all six):
#   true   CMD is `true`; every VMM of BENCH_SANDBOX_VMMS (mica mica-warm microvm q35). The
#          figures cover the whole run: wall time from the exec of the VMM to its reaping, VM
#          exits over the VM's whole life, peak RSS, the guest RAM mica found resident at exit
#          (--json's memory_kib.guest_ram_rss: the pages the guest touched; for a warm run the
#          snapshot's pages it touched, mapped private); ratios warm / cold and QEMU / warm;
#   uname  CMD is `uname -r` (its output checked against the kernel's release), like `true`;
#   find   `find DIR | wc -l` (BENCH_SANDBOX_FIND_DIR, /usr): metadata, entries/s;
#   find_small  the same over BENCH_SANDBOX_FIND_SMALL_DIR (/usr/include), a tree within the
#          16384 descriptors a share holds (hostfs; with READDIRPLUS every entry listed is an
#          inode the guest holds until memory pressure makes it forget): /usr is bigger, and
#          mica finds most of its inodes again by name (hostfs/fdcache.c), find_small never;
#   git    `git status` in a clone of this repository (in $BENCH_TMP, without build/);
#   read   `dd bs=1M` of a BENCH_SANDBOX_READ_MIB (256) MiB file in $BENCH_TMP (tmpfs in the
#          scripts/with-kvm VM) to /dev/null: MB/s of a cold guest cache (every run is a boot);
#          these four on BENCH_SANDBOX_WORK_VMMS (mica q35; mica-warm may be added). CMD is a bash script that prints
#          "mica-bench: ready" and waits for a line on its stdin; the bench then reads KVM's
#          counters and answers; CMD times the work with $EPOCHREALTIME (the guest's clock),
#          prints "mica-bench: done", waits again while the counters are read a second time, and
#          ends. So the command's own time and its VM exits (the difference of the two readings)
#          are measured apart from the boot, besides the whole-run figures.
# Each (workload, VMM): one discarded warm-up run, then BENCH_RUNS runs, VMMs interleaved;
# tables show the median (and min).
#
# How it is measured: every VMM (and virtiofsd) runs under bench/vmwatch, which takes a
# duplicate of the VMM's KVM VM descriptor (pidfd_getfd) so that the VM's debugfs counters
# (/sys/kernel/debug/kvm/PID-FD, VM-wide sums of the vCPU counters) can be read after the VMM
# exited: exits from start to exit, by reason. Peak RSS is wait4's ru_maxrss (guest RAM the
# guest touched included; for QEMU the memfd guest RAM counts in QEMU's RSS, and the part of it
# virtiofsd touched in virtiofsd's too). QEMU's wall time is QEMU's alone and, in a second row,
# from virtiofsd's start (it must be listening before QEMU starts) to QEMU's exit. mica's own
# --json adds the init's milestones, its RSS at exit without guest RAM, and the virtio-fs
# device's counters (requests, lookups, reads...).
#
# Env: BENCH_SANDBOX_VMMS, BENCH_SANDBOX_WORK_VMMS, BENCH_SANDBOX_WORKLOADS,
#      BENCH_SANDBOX_FIND_DIR, BENCH_SANDBOX_FIND_SMALL_DIR, BENCH_SANDBOX_READ_MIB, BENCH_SANDBOX_TIMEOUT (seconds per run,
#      default 900), BENCH_SANDBOX_Q35_BIOS (q35's firmware; default QEMU's SeaBIOS, but
#      qboot.rom inside scripts/with-kvm: there, after SeaBIOS, a guest process's outb to a port
#      ioperm() granted faults (#GP, SIGSEGV) -- the nested TCG VM's doing, not q35's: microvm,
#      mica, and q35 with qboot are fine -- and the init dies at its first milestone),
#      QEMU, VIRTIOFSD (/usr/lib/qemu/virtiofsd), SANDBOX_HELPER, LINUX_KERNEL.
# Without QEMU, virtiofsd or the initramfs helper, mica runs alone and the QEMU columns say why.

sb_kernel=${LINUX_KERNEL:-build/linux/vmlinuz}
sb_mem=512
sb_timeout=${BENCH_SANDBOX_TIMEOUT:-900}
sb_qemu=${QEMU:-qemu-system-x86_64}
sb_virtiofsd=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
sb_helper=${SANDBOX_HELPER:-build/obj/tests/test_sandbox_initramfs}
sb_find_dir=${BENCH_SANDBOX_FIND_DIR:-/usr}
sb_find_small_dir=${BENCH_SANDBOX_FIND_SMALL_DIR:-/usr/include}
sb_read_mib=${BENCH_SANDBOX_READ_MIB:-256}
if [[ ${WITH_KVM_INNER:-0} == 1 ]]; then
    sb_q35_bios=${BENCH_SANDBOX_Q35_BIOS-qboot.rom}
else
    sb_q35_bios=${BENCH_SANDBOX_Q35_BIOS-}
fi
read -ra sb_vmms <<<"${BENCH_SANDBOX_VMMS:-mica mica-warm microvm q35}"
read -ra sb_work_vmms <<<"${BENCH_SANDBOX_WORK_VMMS:-mica q35}"
read -ra sb_works <<<"${BENCH_SANDBOX_WORKLOADS:-true uname find find_small git read}"
sb_cache=$BENCH_TMP/warm-cache # mica-warm's --cache
sb_json=$BENCH_OUT/sandbox.json
# The kernel command line and tag mica gives its sandbox (sandbox/initramfs.h, sandbox/job.h).
sb_cmdline=$(sed -n 's/^#define SANDBOX_KERNEL_CMDLINE "\(.*\)"$/\1/p' sandbox/initramfs.h)$(
    sed -n 's/^#define SANDBOX_KERNEL_QUIET "\(.*\)"$/\1/p' sandbox/initramfs.h)
sb_tag=$(sed -n 's/^#define SANDBOX_ROOT_TAG *"\([^"]*\)".*/\1/p' sandbox/job.h)
# The one environment CMD gets under every VMM (the helper and mica pass theirs on to the job).
sb_env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C TERM=dumb
    HOME="$BENCH_TMP/home")
sb_vmwatch=$PWD/$BENCH_BIN/vmwatch

for w in "${sb_works[@]}"; do
    case $w in true | uname | find | find_small | git | read) ;;
    *) bench_die "sandbox: unknown workload '$w' (true, uname, find, find_small, git, read)" ;;
    esac
done
for v in "${sb_vmms[@]}" "${sb_work_vmms[@]}"; do
    case $v in mica | mica-warm | microvm | q35) ;;
    *) bench_die "sandbox: unknown VMM '$v' (mica, mica-warm, microvm, q35)" ;;
    esac
done
[[ -r $sb_kernel ]] || bench_die "sandbox: $sb_kernel is missing (run scripts/get-linux-guest)"
[[ -x $sb_vmwatch ]] || bench_die "sandbox: $sb_vmwatch is missing"
[[ -n $sb_cmdline && -n $sb_tag ]] || bench_die "sandbox: cannot read the sandbox's command line and tag"
bench_need_kvm_stats sandbox
sb_kernel=$(realpath "$sb_kernel")
sb_mica=$(realpath "$MICA")
mkdir -p "$BENCH_TMP/home"

# QEMU's side: what it needs, or why its columns stay empty.
sb_qemu_why=''
if ! command -v "$sb_qemu" >/dev/null; then
    sb_qemu_why="$sb_qemu not found (apt-get install qemu-system-x86)"
elif [[ ! -x $sb_virtiofsd ]]; then
    sb_qemu_why="$sb_virtiofsd not found (apt-get install qemu-system-common)"
else
    if [[ ! -x $sb_helper ]]; then
        bench_log "sandbox: building $sb_helper"
        make -s --no-print-directory "$sb_helper" >&2 || true
    fi
    [[ -x $sb_helper ]] || sb_qemu_why="$sb_helper is missing (make $sb_helper)"
fi
if [[ -n $sb_qemu_why ]]; then
    bench_log "sandbox: QEMU not compared: $sb_qemu_why"
else
    sb_helper=$(realpath "$sb_helper")
fi
sb_qemu_version=$("$sb_qemu" --version 2>/dev/null | head -n 1)
# A soft RLIMIT_NOFILE is raised to the hard one by mica (hostfs) and virtiofsd alike; give the
# hard limit a usual host's (systemd's 524288) where it is lower (the VM of scripts/with-kvm has
# the kernel's 4096), so that mica's share gets its default bounds (16384 descriptors).
if (($(ulimit -Hn) < 524288)); then ulimit -Hn 524288 2>/dev/null || true; fi
sb_nofile=$(ulimit -Hn)

# ---------------------------------------------------------------------------------------------
# Workloads: sb_work_setup WORK sets sb_cwd (where CMD runs) and sb_argv (CMD).

sb_whole() { [[ $1 == true || $1 == uname ]]; } # WORK: measured as a whole run only
sb_vmms_of() { # WORK: sets sb_list=(the VMMs it runs on)
    if sb_whole "$1"; then sb_list=("${sb_vmms[@]}"); else sb_list=("${sb_work_vmms[@]}"); fi
}

sb_script() { # WORK POST: the bash script that times WORK (see the header), then runs POST
    printf '%s\n' 'echo "mica-bench: ready"; read -r _' 't0=$EPOCHREALTIME' "out=\$($1)" \
        't1=$EPOCHREALTIME' 'echo "mica-bench: done"; read -r _' \
        'echo "mica-bench: t0=$t0"; echo "mica-bench: t1=$t1"; echo "mica-bench: result=$out"' "$2"
}

sb_work_setup() {
    case $1 in
    true)
        sb_cwd=$BENCH_TMP
        sb_argv=(true)
        ;;
    uname)
        sb_cwd=$BENCH_TMP
        sb_argv=(uname -r)
        ;;
    find | find_small)
        local dir=$sb_find_dir
        [[ $1 == find_small ]] && dir=$sb_find_small_dir
        sb_cwd=$BENCH_TMP
        sb_argv=(bash -c "$(sb_script "find $dir 2>/tmp/find.err | wc -l" \
            'echo "mica-bench: errors=$(wc -l </tmp/find.err)"; echo "mica-bench: first_error=$(head -n 1 /tmp/find.err)"')")
        ;;
    git)
        sb_cwd=$BENCH_TMP/tree
        if [[ ! -d $sb_cwd/.git ]]; then
            git clone -q "$PWD" "$sb_cwd" || bench_die "sandbox: cannot clone $PWD into $sb_cwd"
            # Past the clone's second, so no index entry is racily clean: `git status` then
            # only stats each file (as on a tree one works in) instead of reading it.
            sleep 1.1
            git -C "$sb_cwd" status --porcelain >/dev/null
        fi
        sb_argv=(bash -c "$(sb_script 'git status --porcelain >/tmp/git.out 2>&1; echo $?' \
            'echo "mica-bench: lines=$(wc -l </tmp/git.out)"; echo "mica-bench: files=$(git ls-files | wc -l)"')")
        ;;
    read)
        sb_cwd=$BENCH_TMP
        sb_file=$BENCH_TMP/read.bin
        if [[ ! -f $sb_file ]]; then
            dd if=/dev/zero of="$sb_file" bs=1M count="$sb_read_mib" status=none ||
                bench_die "sandbox: cannot write $sb_read_mib MiB to $sb_file"
        fi
        sb_argv=(bash -c "$(sb_script "dd if=$sb_file of=/dev/null bs=1M 2>&1 | tail -n 1" \
            'echo "mica-bench: bytes=${out%% *}"')")
        ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# One run.

# sb_job_server SOCKET FILE: FILE (the job the helper wrote beside the initramfs) to QEMU's
# mica.job port through SOCKET (tests/integration/job_server.py).
sb_job_server() {
    python3 tests/integration/job_server.py "$1" "$2"
}

# sb_qemu_cmd VMM BASE INITRD STDIN: sets cmd=(QEMU's command line). STDIN: the chardev of the
# mica.stdin port (null, or pipe,path=BASE.si). The mica.stdout port is QEMU's own stdout; the
# mica.job port connects to BASE.job.sock (sb_job_server).
sb_qemu_cmd() {
    local vmm=$1 base=$2 initrd=$3 stdin=$4 machine fsdev serdev
    case $vmm in
    microvm)
        # QEMU's virtio-mmio is legacy by default; vhost-user-fs wants a modern device.
        machine=(-M microvm,memory-backend=mem -global virtio-mmio.force-legacy=false)
        fsdev=vhost-user-fs-device serdev=virtio-serial-device
        ;;
    q35)
        machine=(-M q35,memory-backend=mem)
        [[ -n $sb_q35_bios ]] && machine+=(-bios "$sb_q35_bios")
        fsdev=vhost-user-fs-pci serdev=virtio-serial-pci
        ;;
    esac
    cmd=("$sb_qemu" "${machine[@]}" -accel kvm -cpu host -m "${sb_mem}M" -smp 1
        -object "memory-backend-memfd,id=mem,size=${sb_mem}M,share=on"
        -display none -nodefaults -no-reboot -monitor none
        -kernel "$sb_kernel" -initrd "$initrd" -append "$sb_cmdline"
        -chardev "socket,id=fs0,path=$BENCH_TMP/vfs.sock" -device "$fsdev,chardev=fs0,tag=$sb_tag"
        -device "$serdev,id=vs"
        -chardev "socket,id=job,path=$base.job.sock" -device virtserialport,bus=vs.0,chardev=job,name=mica.job
        -chardev "$stdin,id=si" -device virtserialport,bus=vs.0,chardev=si,name=mica.stdin
        -chardev file,id=so,path=/proc/self/fd/1 -device virtserialport,bus=vs.0,chardev=so,name=mica.stdout
        -chardev "file,id=se,path=$base.cmderr" -device virtserialport,bus=vs.0,chardev=se,name=mica.stderr
        -serial "file:$base.console" -device isa-debug-exit,iobase=0x501,iosize=1)
}

# sb_sample WHEN: KVM's counters of the running VM, as WHEN_STAT=VALUE lines in $sb_base.kvm.
# The guest waits for our answer meanwhile.
sb_sample() {
    local pid
    pid=$(bench_kv "$sb_base.w" pid)
    bench_kvm_read "$pid" "${BENCH_KVM_EXIT_STATS[@]}"
    # shellcheck disable=SC2154 # bench_kvm: set by bench_kvm_read (bench/lib.sh)
    if ((${#bench_kvm[@]})); then printf '%s\n' "${bench_kvm[@]/#/$1_}" >>"$sb_base.kvm"; fi
}
sb_on_line() { # bench_follow's handler
    case $1 in
    "mica-bench: ready"*) sb_sample start; printf 'go\n' >&"$sb_feed" ;;
    "mica-bench: done"*) sb_sample end; printf 'go\n' >&"$sb_feed" ;;
    esac
}

# sb_mica_json FILE: key=value lines from mica's --json: the init's milestones (seconds since
# mica started), memory at exit, exits mica handled, the virtio-fs device's counters, how the
# VM started (mica_start_restore_seconds; mica_start_restored=1 for a restore) and the warm
# start's outcome (mica_warm_used, mica_warm_made: 1 or 0; mica_warm_save_seconds;
# mica_warm_why_cold=TEXT, not a number: the JSON leaves it out).
sb_mica_json() {
    awk '/"since_start"/ { p = "mica_since_" } /"memory_kib"/ { p = "mica_mem_" }
        /"userspace_exits"/ { p = "mica_uexits_" } /"device": "virtio-fs"/ { p = "mica_fs_" }
        /^ *"start": \{/ { p = "mica_start_"; print p "restored=" (/"kind": "restore"/ ? 1 : 0) }
        /^ *"warm": \{/ {
            p = "mica_warm_"
            print p "used=" (/"used": true/ ? 1 : 0)
            print p "made=" (/"made": true/ ? 1 : 0)
            if (match($0, /"why_cold": "([^"\\]|\\.)*"/))
                print p "why_cold=" substr($0, RSTART + 13, RLENGTH - 14)
        }
        p != "" {
            s = $0
            while (match(s, /"[a-z_0-9]+": [0-9.]+/)) {
                kv = substr(s, RSTART, RLENGTH); s = substr(s, RSTART + RLENGTH)
                split(kv, a, /": /); print p substr(a[1], 2) "=" a[2]
            }
            p = ""
        }' "$1" 2>/dev/null
}

# sb_run VMM N (workload $sb_work): one run; leaves $BENCH_TMP/sandbox.WORK.VMM.N.{kv,out,...}
sb_run() {
    local vmm=$1 n=$2 work=$sb_work base rd pid fifo t_v0='' t_q0 deadline ok=1 why='' vpid=''
    local measured=0 i words s v
    base=$BENCH_TMP/sandbox.$work.$vmm.$n
    sb_base=$base
    fifo=$base.fifo
    rm -f "$base".* "$BENCH_TMP/vfs.sock"
    mkfifo "$fifo"
    sb_whole "$work" || measured=1
    if ((measured)); then
        mkfifo "$base.si.in" # CMD's stdin: held open here (read-write: never blocks)
        : >"$base.si.out"
        exec {sb_feed}<>"$base.si.in"
    fi
    if [[ $vmm == mica* ]]; then
        if [[ $vmm == mica-warm ]]; then
            cmd=("$sb_mica" sandbox --cache "$sb_cache" --json "$base.json" -- "${sb_argv[@]}")
        else
            cmd=("$sb_mica" sandbox --cold --json "$base.json" -- "${sb_argv[@]}")
        fi
        local in=/dev/null
        ((measured)) && in=$base.si.in
        t_q0=$(bench_us)
        (cd "$sb_cwd" && exec env -i "${sb_env[@]}" "$sb_vmwatch" --out "$base.w" --kvm \
            --timeout "$sb_timeout" -- "${cmd[@]}") <"$in" >"$fifo" 2>"$base.err" &
        pid=$!
    else
        local stdin=null
        ((measured)) && stdin=pipe,path=$base.si
        sb_qemu_cmd "$vmm" "$base" "$BENCH_TMP/sandbox.$work.cpio" "$stdin"
        sb_job_server "$base.job.sock" "$BENCH_TMP/sandbox.$work.cpio.job"
        t_v0=$(bench_us)
        "$sb_vmwatch" --out "$base.vfs.w" --timeout "$sb_timeout" -- "$sb_virtiofsd" \
            --socket-path="$BENCH_TMP/vfs.sock" -o source=/ -o sandbox=chroot -o cache=auto \
            </dev/null >"$base.vfs.log" 2>&1 &
        vpid=$!
        for ((i = 0; i < 1000; i++)); do
            [[ -S $BENCH_TMP/vfs.sock ]] && break
            kill -0 "$vpid" 2>/dev/null || break
            sleep 0.01
        done
        t_q0=$(bench_us)
        (cd "$sb_cwd" && exec env -i "${sb_env[@]}" "$sb_vmwatch" --out "$base.w" --kvm \
            --timeout "$sb_timeout" -- "${cmd[@]}") </dev/null >"$fifo" 2>"$base.err" &
        pid=$!
    fi
    exec {rd}<"$fifo"
    deadline=$((t_q0 + (sb_timeout + 30) * 1000000))
    bench_follow "$pid" "$rd" "$deadline" "$base.out" sb_on_line || why="no end within $sb_timeout s"
    exec {rd}<&-
    wait "$pid" || true # its status is vmwatch's: the VMM's is in $base.w
    ((measured)) && exec {sb_feed}>&-
    if [[ -n $vpid ]]; then
        # virtiofsd ends when QEMU hangs up; a straggler is stopped.
        for ((i = 0; i < 500; i++)); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.01; done
        kill -TERM "$vpid" 2>/dev/null
        wait "$vpid" 2>/dev/null
    fi
    rm -f "$fifo" "$base.si.in"

    # The run's figures.
    {
        awk -F= 'BEGIN { split("exit signal timeout wall_us maxrss_kb utime_us stime_us kvm_stats_error", k, " ")
                for (i in k) want[k[i]] = 1 }
            ($1 in want) { print }' "$base.w" 2>/dev/null
        for s in "${BENCH_KVM_EXIT_STATS[@]}"; do
            v=$(bench_kv "$base.w" "$s")
            [[ -n $v ]] && echo "$s=$v"
        done
        bench_kvm_other_exits <"$base.w"
        local wall vfs
        wall=$(bench_kv "$base.w" wall_us)
        if [[ $vmm == mica* ]]; then
            [[ -n $wall ]] && echo "total_us=$wall"
            v=$(bench_kv "$base.w" maxrss_kb)
            [[ -n $v ]] && echo "sum_maxrss_kb=$v"
            sb_mica_json "$base.json" >"$base.mj"
            cat "$base.mj"
            v=$(bench_kv "$base.mj" mica_mem_guest_ram_rss) # KiB: 4 KiB pages touched
            [[ -n $v ]] && echo "guest_ram_pages=$((v / 4))"
        else
            [[ -n $wall ]] && echo "total_us=$((t_q0 - t_v0 + wall))"
            vfs=$(bench_kv "$base.vfs.w" maxrss_kb)
            v=$(bench_kv "$base.w" maxrss_kb)
            [[ -n $vfs ]] && echo "vfs_maxrss_kb=$vfs"
            [[ -n $vfs && -n $v ]] && echo "sum_maxrss_kb=$((v + vfs))"
        fi
        if ((measured)); then
            sed -n 's/^mica-bench: \([a-z_0-9]*=\)/\1/p' "$base.out"
            if [[ -f $base.kvm ]]; then
                awk -F= '{ v[$1] = $2 }
                    END {
                        for (k in v) if (k ~ /^start_/) {
                            s = substr(k, 7)
                            if (("end_" s) in v) printf "cmd_%s=%.0f\n", s, v["end_" s] - v[k]
                        }
                    }' "$base.kvm" | sort >"$base.cmdkvm"
                cat "$base.cmdkvm"
                bench_kvm_other_exits cmd_ <"$base.cmdkvm"
            fi
        fi
    } >"$base.kv"
    if ((measured)); then
        local t0 t1 res
        t0=$(bench_kv "$base.kv" t0) t1=$(bench_kv "$base.kv" t1) res=$(bench_kv "$base.kv" result)
        if [[ $t0 =~ ^[0-9]+\.[0-9]{6}$ && $t1 =~ ^[0-9]+\.[0-9]{6}$ ]]; then
            local us=$((10#${t1/./} - 10#${t0/./}))
            echo "cmd_us=$us" >>"$base.kv"
            case $work in
            find | find_small) [[ $res =~ ^[0-9]+$ ]] && awk -v n="$res" -v us="$us" 'BEGIN { if (us > 0) printf "rate=%.0f\n", n / us * 1e6 }' >>"$base.kv" ;;
            read)
                read -ra words <<<"$res"
                [[ ${words[0]:-} =~ ^[0-9]+$ ]] &&
                    awk -v b="${words[0]}" -v us="$us" 'BEGIN { if (us > 0) printf "rate=%.1f\n", b / us }' >>"$base.kv"
                ;;
            esac
        else
            why+=" no times from the guest;"
        fi
        [[ -f $base.cmdkvm ]] || why+=" no counters around the command;"
    fi

    # Did it work: CMD's status 0 (mica exits with it, QEMU with 0<<1|1 = 1), counters read.
    local want=0 st
    [[ $vmm != mica* ]] && want=1
    st=$(bench_kv "$base.kv" exit)
    [[ $st == "$want" ]] || why+=" exit status '${st:-signal $(bench_kv "$base.kv" signal)}' (want $want);"
    if [[ $work == uname ]]; then
        st=$(head -n 1 "$base.out")
        [[ $st == "$sb_krel" ]] || why+=" printed '$st' (want the kernel's release, $sb_krel);"
    fi
    # mica-warm's measured runs must restore the entry its warm-up run made (or found); the
    # cold column must boot.
    st=$(bench_kv "$base.kv" mica_warm_used)
    if [[ $vmm == mica-warm ]] && ((n > 0)) && [[ $st != 1 ]]; then
        why+=" not warm (warm.used ${st:-missing}: $(bench_kv "$base.kv" mica_warm_why_cold));"
    fi
    [[ $vmm == mica && $st == 1 ]] && why+=" warm, but --cold;"
    [[ -n $(bench_kv "$base.kv" exits) ]] || why+=" no KVM counters ($(bench_kv "$base.kv" kvm_stats_error));"
    [[ $(bench_kv "$base.kv" timeout) == 1 ]] && why+=" timed out;"
    [[ -z $why ]] || ok=0
    if ((!ok)); then
        # Left out of the medians; the tables count it and the JSON says why.
        printf 'failed=1\nfailed_why=%s\n' "${why# }" >>"$base.kv"
        bench_log "sandbox: $work under $vmm, run $n failed:$why"
        tail -n 5 "$base.err" "$base.console" "$base.cmderr" "$base.vfs.log" 2>/dev/null | sed 's/^/bench:   /' >&2
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------
# All runs, then the tables.

sb_kver=$(bench_kernel_version "$sb_kernel")
sb_krel=${sb_kver%% *}
sb_fail=0
declare -A sb_ran=() # WORK.VMM -> 1 when run
for sb_work in "${sb_works[@]}"; do
    sb_work_setup "$sb_work"
    sb_vmms_of "$sb_work"
    sb_run_list=()
    for v in "${sb_list[@]}"; do
        [[ $v != mica* && -n $sb_qemu_why ]] && continue
        sb_run_list+=("$v")
    done
    if [[ " ${sb_run_list[*]} " == *" microvm "* || " ${sb_run_list[*]} " == *" q35 "* ]]; then
        if ! (cd "$sb_cwd" && env -i "${sb_env[@]}" "$sb_helper" --write "$BENCH_TMP/sandbox.$sb_work.cpio" \
            "$sb_kernel" --port -- "${sb_argv[@]}") >"$BENCH_TMP/sandbox.$sb_work.cpio.log" 2>&1; then
            bench_log "sandbox: $sb_helper failed: $(tail -n 1 "$BENCH_TMP/sandbox.$sb_work.cpio.log")"
            sb_qemu_why="the initramfs helper failed"
            read -ra sb_run_list <<<"$(printf '%s\n' "${sb_run_list[@]}" | grep '^mica' | paste -sd ' ')"
        fi
    fi
    bench_log "sandbox: $sb_work: $BENCH_RUNS runs each (+1 warm-up) of ${sb_run_list[*]}"
    bench_runs sb_run "${sb_run_list[@]}" || sb_fail=1
    for v in "${sb_run_list[@]}"; do sb_ran[$sb_work.$v]=1; done
done

sb_files() { # WORK VMM: sets sb_f=(the kv files of the measured runs that did not fail)
    local i f
    sb_f=()
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        f=$BENCH_TMP/sandbox.$1.$2.$i.kv
        [[ -f $f && -z $(bench_kv "$f" failed) ]] && sb_f+=("$f")
    done
    ((${#sb_f[@]})) || sb_f=(/dev/null)
}
sb_name() { case $1 in mica) echo "mica --cold" ;; mica-warm) echo "mica warm" ;; *) echo "qemu $1" ;; esac; }
# sb_count_row LABEL KEY: per VMM, "K/N": the measured runs (failed ones too) whose KEY is 1.
sb_count_row() {
    local v out i k
    out=$(printf '%-40s' "$1")
    for v in "${sb_cols[@]}"; do
        if [[ -n ${sb_ran[$sb_work.$v]:-} && ($2 != mica_* || $v == mica*) ]]; then
            k=0
            for ((i = 1; i <= BENCH_RUNS; i++)); do
                [[ $(bench_kv "$BENCH_TMP/sandbox.$sb_work.$v.$i.kv" "$2" 2>/dev/null) == 1 ]] && k=$((k + 1))
            done
            out+=$(printf ' %19s' "$k/$BENCH_RUNS")
        else
            out+=$(printf ' %19s' n/a)
        fi
    done
    printf '%s\n' "$out"
}
# sb_row LABEL KEY SCALE: one table row over sb_cols (the current workload's VMMs).
sb_row() {
    local v out cell
    out=$(printf '%-40s' "$1")
    for v in "${sb_cols[@]}"; do
        if [[ -n ${sb_ran[$sb_work.$v]:-} ]]; then
            sb_files "$sb_work" "$v"
            cell=$(bench_cell "$2" "$3" "${sb_f[@]}")
        else
            cell=n/a
        fi
        out+=$(printf ' %19s' "$cell")
    done
    printf '%s\n' "$out"
}
sb_median() { # WORK VMM KEY: the median ("-" if none)
    local s
    [[ -n ${sb_ran[$1.$2]:-} ]] || { echo -; return; }
    sb_files "$1" "$2"
    s=$(bench_values "$3" "${sb_f[@]}" | bench_stats)
    echo "${s% *}"
}
# sb_ratio_row LABEL KEY [BASE]: each VMM's median of KEY over BASE's (default mica, cold);
# nothing when BASE did not run.
sb_ratio_row() {
    local v out m base=${3:-mica}
    [[ -n ${sb_ran[$sb_work.$base]:-} ]] || return 0
    m=$(sb_median "$sb_work" "$base" "$2")
    out=$(printf '%-40s' "$1")
    for v in "${sb_cols[@]}"; do
        out+=$(printf ' %19s' "$(awk -v a="$(sb_median "$sb_work" "$v" "$2")" -v b="$m" 'BEGIN {
            if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx\n", a / b }')")
    done
    printf '%s\n' "$out"
}
sb_header() { # TITLE
    local v out
    out=$(printf '%-40s' "$1")
    for v in "${sb_cols[@]}"; do out+=$(printf ' %19s' "$(sb_name "$v")"); done
    printf '%s\n' "$out"
}

# sb_target_line: issue #14's target, a warm run at most 1/10 of a cold one's wall time and
# exits, for the current workload (when both mica columns ran).
sb_target_line() {
    local k r out='' all=met
    [[ -n ${sb_ran[$sb_work.mica]:-} && -n ${sb_ran[$sb_work.mica-warm]:-} ]] || return 0
    for k in wall_us exits; do
        r=$(awk -v a="$(sb_median "$sb_work" mica-warm $k)" -v b="$(sb_median "$sb_work" mica $k)" 'BEGIN {
            if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.3f\n", a / b }')
        awk -v r="$r" 'BEGIN { exit !(r != "-" && r <= 0.1) }' || all="NOT met"
        out+=" ${k%_us} ${r}x,"
    done
    printf 'target warm <= 0.10x cold (wall, exits):%s %s\n' "${out%,}" "$all"
}

echo
echo "== sandbox: mica sandbox vs QEMU (-accel kvm) + virtiofsd; Linux ${sb_krel:-?}, ${sb_mem} MiB, 1 vCPU, host / read-only; $BENCH_RUNS runs: median (min)"
[[ -n $sb_qemu_why ]] && echo "QEMU columns: not run: $sb_qemu_why"
[[ -n $sb_qemu_why ]] || echo "QEMU: ${sb_qemu_version:-?}; q35 firmware: ${sb_q35_bios:-SeaBIOS (default)}; virtiofsd: -o sandbox=chroot -o cache=auto"
for sb_work in "${sb_works[@]}"; do
    sb_vmms_of "$sb_work"
    sb_cols=("${sb_list[@]}")
    echo
    case $sb_work in
    true | uname)
        if [[ $sb_work == uname ]]; then sb_header "-- uname -r: exec -> exit"; else sb_header "-- true: exec -> exit"; fi
        sb_count_row "  runs failed (left out)" failed
        sb_count_row "  runs that restored a snapshot" mica_warm_used
        printf '%s\n' "VM EXITS, VM's whole life (KVM stats)"
        bench_exit_rows sb_row
        sb_ratio_row "  all exits / mica --cold's" exits
        sb_ratio_row "  all exits / mica warm's" exits mica-warm
        printf '%s\n' "TIME (host wall clock, ms)"
        sb_row "  VMM exec -> exit" wall_us 1000
        sb_row "  incl. starting virtiofsd" total_us 1000
        sb_ratio_row "  (incl. virtiofsd) / mica --cold's" total_us
        sb_ratio_row "  (incl. virtiofsd) / mica warm's" total_us mica-warm
        sb_row "  mica: restoring the snapshot" mica_start_restore_seconds 0.001
        sb_row "  mica: exec -> init runs" mica_since_init 0.001
        sb_row "  mica: exec -> CMD starts" mica_since_cmd_start 0.001
        printf '%s\n' "GUEST RAM TOUCHED (mica: resident at exit; QEMU: see pf_taken)"
        sb_row "  4 KiB pages" guest_ram_pages 1
        sb_row "  MiB" mica_mem_guest_ram_rss 1024
        sb_ratio_row "  pages / mica --cold's" guest_ram_pages
        sb_target_line
        ;;
    find | find_small | git | read)
        case $sb_work in
        find) sb_header "-- find $sb_find_dir | wc -l" ;;
        find_small) sb_header "-- find $sb_find_small_dir | wc -l" ;;
        git) sb_header "-- git status (clone of this tree)" ;;
        read) sb_header "-- dd bs=1M ${sb_read_mib} MiB file (tmpfs)" ;;
        esac
        printf '%s\n' "THE COMMAND (timed in the guest)"
        sb_row "  time (ms)" cmd_us 1000
        case $sb_work in
        find | find_small)
            sb_row "  entries listed" result 1
            sb_row "  entries/s" rate 1
            sb_ratio_row "  entries/s / mica's" rate
            sb_row "  errors (lines on find's stderr)" errors 1
            ;;
        git)
            sb_row "  git status's exit status" result 1
            sb_row "  files tracked" files 1
            ;;
        read)
            sb_row "  bytes read" bytes 1
            sb_row "  MB/s" rate 1
            sb_ratio_row "  MB/s / mica's" rate
            ;;
        esac
        sb_ratio_row "  time / mica's" cmd_us
        printf '%s\n' "VM EXITS during the command (KVM stats)"
        bench_exit_rows sb_row cmd_
        sb_ratio_row "  all exits / mica's" cmd_exits
        printf '%s\n' "WHOLE RUN"
        sb_row "  all exits" exits 1
        sb_row "  wall, VMM exec -> exit (ms)" wall_us 1000
        sb_row "  wall incl. starting virtiofsd (ms)" total_us 1000
        ;;
    esac
    printf '%s\n' "MEMORY (KiB)"
    sb_row "  peak RSS, VMM (ru_maxrss)" maxrss_kb 1
    sb_row "  peak RSS, virtiofsd" vfs_maxrss_kb 1
    sb_row "  peak RSS, VMM + virtiofsd" sum_maxrss_kb 1
    sb_row "  mica at exit: RSS without guest RAM" mica_mem_vmm_rss 1
    sb_row "  mica at exit: guest RAM resident" mica_mem_guest_ram_rss 1
    if [[ -n ${sb_ran[$sb_work.mica]:-} || -n ${sb_ran[$sb_work.mica-warm]:-} ]]; then
        printf '%s\n' "MICA'S VIRTIO-FS (--json, whole run)"
        for k in requests lookups getattrs opens reads bytes_read readdirs forgets errors inodes \
            notifies interrupts; do
            sb_row "  $k" "mica_fs_$k" 1
        done
        sb_row "  exits mica handled: pio" mica_uexits_pio 1
        sb_row "  exits mica handled: mmio" mica_uexits_mmio 1
    fi
done
echo "RLIMIT_NOFILE (hard) for mica and virtiofsd: $sb_nofile"
echo "exit counts and ratios carry over to real hardware; times here include nested-virtualization costs"

# JSON: per workload and VMM, every numeric figure of the runs as {median, min, runs}.
# Per VMM, besides the metrics (over the measured runs that did not fail): "failed_runs", a
# list of {"run": N, "why": TEXT}; for mica and mica-warm "warm_used", each measured run's
# warm.used (failed runs too), and for mica-warm "warmup", what its warm-up run did.
sb_vmm_json() { # WORK VMM
    local k sep='' i f why used='' kv0
    sb_files "$1" "$2"
    printf '{'
    while read -r k; do
        [[ -z $k || $k == t0 || $k == t1 || $k == failed ]] && continue
        printf '%s"%s": %s' "$sep" "$k" "$(bench_json_metric "$k" "${sb_f[@]}")"
        sep=', '
    done <<<"$(awk -F= '$2 ~ /^-?[0-9]+(\.[0-9]+)?$/ { print $1 }' "${sb_f[@]}" 2>/dev/null | sort -u)"
    printf '%s"failed_runs": [' "$sep"
    sep=''
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        f=$BENCH_TMP/sandbox.$1.$2.$i.kv
        why=$(bench_kv "$f" failed_why 2>/dev/null)
        [[ -f $f ]] || why="no figures"
        [[ -n $why ]] || continue
        printf '%s{"run": %s, "why": %s}' "$sep" "$i" "$(bench_json_str "$why")"
        sep=', '
    done
    printf ']'
    if [[ $2 == mica* ]]; then
        for ((i = 1; i <= BENCH_RUNS; i++)); do
            case $(bench_kv "$BENCH_TMP/sandbox.$1.$2.$i.kv" mica_warm_used 2>/dev/null) in
            1) used+=', true' ;; 0) used+=', false' ;; *) used+=', null' ;;
            esac
        done
        printf ', "warm_used": [%s]' "${used#, }"
    fi
    if [[ $2 == mica-warm ]]; then
        kv0=$BENCH_TMP/sandbox.$1.$2.0.kv
        printf ', "warmup": {"warm_made": %s, "warm_used": %s, "save_seconds": %s}' \
            "$(sb_json_bool "$(bench_kv "$kv0" mica_warm_made 2>/dev/null)")" \
            "$(sb_json_bool "$(bench_kv "$kv0" mica_warm_used 2>/dev/null)")" \
            "$(bench_kv "$kv0" mica_warm_save_seconds 2>/dev/null | grep . || echo null)"
    fi
    printf '}'
}
sb_json_bool() { case $1 in 1) echo true ;; 0) echo false ;; *) echo null ;; esac; }
# sb_ratios_json WORK: {"warm_over_cold": {KEY: mica-warm's median / mica's}, "over_mica_warm":
# {VMM: {KEY: VMM's median / mica-warm's}}} for the whole-run workloads (null where a median is
# missing).
sb_ratios_json() {
    local w=$1 v k sep='' sep2
    _sb_r() { awk -v a="$(sb_median "$w" "$1" "$3")" -v b="$(sb_median "$w" "$2" "$3")" 'BEGIN {
        if (a == "-" || b == "-" || b == 0) print "null"; else printf "%.4f\n", a / b }'; }
    printf '{"warm_over_cold": {'
    for k in wall_us total_us exits pf_taken guest_ram_pages; do
        printf '%s"%s": %s' "$sep" "$k" "$(_sb_r mica-warm mica "$k")"
        sep=', '
    done
    printf '}, "over_mica_warm": {'
    sep=''
    for v in "${sb_vmms[@]}"; do
        [[ $v == mica-warm ]] && continue
        printf '%s"%s": {' "$sep" "$v"
        sep2=''
        for k in wall_us total_us exits; do
            printf '%s"%s": %s' "$sep2" "$k" "$(_sb_r "$v" mica-warm "$k")"
            sep2=', '
        done
        printf '}'
        sep=', '
    done
    printf '}}'
}
sb_work_json() { # WORK
    local v w=$1 sb_list
    sb_vmms_of "$w"
    sb_work_setup "$w" >/dev/null 2>&1
    printf '{"command": %s, "cwd": %s' "$(bench_json_str "${sb_argv[*]}")" "$(bench_json_str "$sb_cwd")"
    for v in "${sb_list[@]}"; do
        if [[ -n ${sb_ran[$w.$v]:-} ]]; then
            printf ', "%s": %s' "$v" "$(sb_vmm_json "$w" "$v")"
        else
            printf ', "%s": null' "$v"
        fi
    done
    sb_whole "$w" && printf ', "ratios": %s' "$(sb_ratios_json "$w")"
    printf '}'
}
mkdir -p "$BENCH_OUT"
{
    printf '{"benchmark": "sandbox", "env": %s,\n' "$(bench_env_json)"
    printf ' "config": {"runs": %s, "mem_mib": %s, "vcpus": 1, "cmdline": %s, "kernel": %s, ' \
        "$BENCH_RUNS" "$sb_mem" "$(bench_json_str "$sb_cmdline")" "$(bench_json_str "$sb_kernel")"
    printf '"kernel_version": %s, "qemu_version": %s, "qemu_not_run": %s, "q35_bios": %s, ' \
        "$(bench_json_str "$sb_kver")" "$(bench_json_str "$sb_qemu_version")" \
        "$(bench_json_str "$sb_qemu_why")" "$(bench_json_str "${sb_q35_bios:-default}")"
    printf '"virtiofsd": %s, "rlimit_nofile_hard": %s, "find_dir": %s, "find_small_dir": %s, ' \
        "$(bench_json_str "$sb_virtiofsd -o source=/ -o sandbox=chroot -o cache=auto")" "$sb_nofile" \
        "$(bench_json_str "$sb_find_dir")" "$(bench_json_str "$sb_find_small_dir")"
    printf '"read_mib": %s, "warm_cache": %s},\n' "$sb_read_mib" "$(bench_json_str "$sb_cache")"
    printf ' "method": %s' "$(bench_json_str "Each VMM runs under bench/vmwatch: wall_us from its exec to its reaping (CLOCK_MONOTONIC), maxrss_kb = wait4's ru_maxrss (peak, guest RAM touched included), KVM's debugfs counters of the VM (VM-wide sums of the vCPU counters) read after the VMM exited through a duplicate of its VM descriptor (pidfd_getfd): exits etc. over the VM's whole life; other_exits = exits - io - mmio - halt - irq - irq_window - nmi_window. QEMU: total_us also counts starting virtiofsd (until its socket exists); vfs_maxrss_kb is virtiofsd's, sum_maxrss_kb both. find/git/read: CMD waits on its stdin after printing a marker, while the counters are read from debugfs (start_*, end_*); cmd_* = end - start; cmd_us = the guest's \$EPOCHREALTIME around the command; rate = entries/s (find) or MB/s (read). mica_*: from mica sandbox --json (since_start in seconds, memory in KiB at exit, virtio-fs device counters, start: restored and restore_seconds, warm: used, made, save_seconds); guest_ram_pages = memory_kib.guest_ram_rss / 4. VMM mica is mica sandbox --cold (boots), mica-warm is mica sandbox --cache warm_cache: its warm-up run makes (or finds) the snapshot, and a measured run that did not restore it (warm.used false) is failed. Failed runs are listed in failed_runs and left out of the medians. ratios (true, uname): warm_over_cold = mica-warm's median / mica's, over_mica_warm = each other VMM's median / mica-warm's. Median and min over the runs after one discarded warm-up per VMM, VMMs interleaved.")"
    for w in "${sb_works[@]}"; do printf ',\n "%s": %s' "$w" "$(sb_work_json "$w")"; done
    printf '}\n'
} >"$sb_json.tmp" && mv "$sb_json.tmp" "$sb_json"
echo "JSON: $sb_json"
((!sb_fail)) || bench_die "sandbox: some runs failed (see above)"
