/* What each kind of thread may call once the VM runs: the README's lists, as code. Measured
 * (strace -f of every integration test) and read off the code paths that run on each thread;
 * a call a path needs only rarely (a reset, a crash, the exit) is listed with the path.
 *
 * Groups, each in its kinds' order of frequency (the filter tests rules in list order):
 *   vcpu  KVM_RUN and what a device's register handler does on the vCPU's thread: raise an
 *         interrupt (KVM_IRQ_LINE, or write an irqfd), (un)wire ioeventfds, irqfds and MSI
 *         routes when the driver enables queues or vectors, write console output (the UART),
 *         wake the loop (eventfds) and arm its fds (epoll_ctl), serve a queue when a kick came
 *         through the exit rather than an ioeventfd (getrandom, io_uring_enter, madvise),
 *         wait for a disk's requests on a reset;
 *   loop  epoll, the devices' backends (eventfds, io_uring, libslirp's sockets, the control
 *         socket, stdin and stdout), vCPU kicks, and the teardown after the vCPUs ended;
 *   io    the pool worker's file operations;
 *   fs    a virtio-fs device thread: its own event loop (kicks, interrupts) and hostfs's
 *         calls on the share (every name resolved beneath a descriptor it holds; Landlock
 *         keeps it to the shared tree whatever the call);
 *   all   every thread: locks, memory (malloc; never executable), the end of a thread
 *         (glibc blocks signals and frees the stack's pages), the crash path (vmm/term.c's
 *         SIGSEGV/SIGBUS/SIGABRT handler restores the terminal and re-raises), and the SIGSYS
 *         report itself (write, exit_group). */
#include "confine/seccomp_rules.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#define COUNT(...) ((int)(sizeof((uint32_t[]){ __VA_ARGS__ }) / sizeof(uint32_t)))
#define ANY(name) { .nr = __NR_##name, .check = SC_ANY }
#define IN(name, a, ...) { .nr = __NR_##name, .check = SC_IN, .arg = (a), \
			   .nvalues = COUNT(__VA_ARGS__), .values = { __VA_ARGS__ } }
#define CLEAR(name, a, bits) { .nr = __NR_##name, .check = SC_CLEAR, .arg = (a), \
			       .nvalues = 1, .values = { (bits) } }

/* The VM's interrupt wiring, from a device on any thread (vmm/vm.c, vmm/irq.c). */
#define KVM_WIRING KVM_IRQ_LINE, KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING

static const struct sc_rule vcpu_rules[] = {
	/* The register dump of a vCPU that failed (vcpu_dump_regs); TCGETS, TCSETSF: the
	 * terminal restored on the crash path. */
	IN(ioctl, 1, KVM_RUN, KVM_WIRING, KVM_GET_REGS, KVM_GET_SREGS, TCGETS, TCSETSF),
	ANY(write),             /* eventfds, the UART's output, log lines */
	ANY(futex),
	ANY(writev),            /* the UART's output (vmm/outq.c) */
	ANY(sendmsg),           /* ... when stdout is a socket */
	ANY(epoll_ctl),         /* outq arms the loop's EPOLLOUT */
	ANY(getrandom),         /* virtio-rng served on a kick that came through the exit */
	ANY(io_uring_enter),    /* virtio-blk: submission on such a kick; the drain of a reset */
	ANY(fdatasync),         /* virtio-blk: the driver turns the write cache off (a config
				 * write): the image is synced before the write returns */
};

static const struct sc_rule vcpu_tap_rules[] = {
	/* The driver's features decide the tap's header size and offloads (devices/net/tap.c). */
	IN(ioctl, 1, TUNSETVNETHDRSZ, TUNSETOFFLOAD),
};

static const struct sc_rule loop_rules[] = {
	ANY(epoll_wait),
	ANY(read),
	ANY(write),
	ANY(io_uring_enter),
	ANY(recvfrom),          /* libslirp's sockets */
	ANY(sendto),
	ANY(epoll_ctl),
	ANY(futex),
	IN(ioctl, 1, KVM_WIRING,
	   FIONREAD,            /* libslirp */
	   TIOCGWINSZ,          /* the terminal's size, on SIGWINCH */
	   TCGETS, TCSETSF,     /* the terminal restored at the end (tcsetattr) */
	   /* On --timeout, each vCPU's state (vcpu_describe); --stats-json's TSC frequency. */
	   KVM_GET_REGS, KVM_GET_MP_STATE, KVM_GET_LAPIC, KVM_GET_TSC_KHZ),
	ANY(writev),            /* stdout */
	ANY(recvmsg),           /* libslirp: ICMP errors (IP_RECVERR) */
	ANY(sendmsg),           /* stdout as a socket; libslirp */
	ANY(getrandom),         /* virtio-rng */
	ANY(close),
	/* libslirp's connections on the guest's behalf: IPv4 and IPv6 only (no netlink, packet
	 * or UNIX sockets). */
	IN(socket, 0, AF_INET, AF_INET6),
	ANY(connect),
	ANY(accept),            /* hostfwd (libslirp) */
	ANY(accept4),           /* --control's clients */
	ANY(getsockopt),
	ANY(setsockopt),
	ANY(getsockname),
	ANY(getpeername),
	ANY(shutdown),
	IN(fcntl, 1, F_GETFL, F_SETFL, F_GETFD, F_SETFD),
	IN(tgkill, 2, SIGUSR1), /* kicks a vCPU out of KVM_RUN */
	ANY(poll),              /* the last output waits for a slow reader (outq_flush) */
};

/* Console ports with input (mica sandbox's stdin): the fd read straight into the guest's
 * buffers (devices/virtio/console_input.c). */
static const struct sc_rule loop_port_input_rules[] = {
	ANY(readv),
};

/* --snapshot-dir: `snapshot NAME` on the loop thread reads the VM's and each paused vCPU's KVM
 * state (vmm/kvm_state.c) and writes DIR/NAME.tmp.PID, synced, renamed to DIR/NAME (removed on
 * a failure; snapshot/file.c). */
static const struct sc_rule loop_snapshot_rules[] = {
	IN(ioctl, 1, KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_MSRS, KVM_GET_MSR_INDEX_LIST,
	   KVM_CHECK_EXTENSION, KVM_GET_XSAVE, KVM_GET_XSAVE2, KVM_GET_XCRS, KVM_GET_LAPIC,
	   KVM_GET_VCPU_EVENTS, KVM_GET_MP_STATE, KVM_GET_DEBUGREGS, KVM_GET_IRQCHIP, KVM_GET_PIT2,
	   KVM_GET_CLOCK, KVM_GET_SUPPORTED_CPUID),
	IN(openat, 2, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC),
	ANY(pwrite64),
	ANY(pread64),           /* virtio-blk's identity stamp of each image (blk_snap.c) */
	ANY(ftruncate),
	ANY(fdatasync),
	ANY(rename),
	ANY(renameat),
	ANY(unlink),
	ANY(unlinkat),
	ANY(newfstatat),
	ANY(getpid),
};

static const struct sc_rule loop_tap_rules[] = {
	IN(ioctl, 1, TUNSETVNETHDRSZ, TUNSETOFFLOAD),
};

/* --stats-json: written at exit through the fd opened before the run (vmm/outfile.h), emptied
 * first; its memory figures come from /proc/self/smaps, the one file opened then (Landlock
 * decides which files); KVM's counters are read from each vCPU's stats fd, opened at setup
 * (vmm/kvm_stats.c). */
static const struct sc_rule loop_exit_file_rules[] = {
	IN(openat, 2, O_RDONLY | O_CLOEXEC),
	ANY(ftruncate),
	ANY(newfstatat),
	ANY(lseek),
	ANY(getrusage),
	ANY(pread64),
};

/* --net user: libslirp reads /etc/resolv.conf when the guest first asks its DNS proxy
 * (10.0.2.3), and stats it on later queries to see whether it changed; fopen's "r" only. */
static const struct sc_rule loop_slirp_rules[] = {
	IN(openat, 2, O_RDONLY),
	ANY(newfstatat),
	ANY(lseek),
};

static const struct sc_rule io_rules[] = {
	ANY(preadv),
	IN(pwritev2, 5, 0, RWF_DSYNC),
	ANY(fdatasync),
	/* Discard and write-zeroes (devices/virtio/blk.c, blk_wz.c). */
	IN(fallocate, 1, 0, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	   FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE),
	ANY(write),             /* the completion eventfd */
	ANY(futex),
	IN(ioctl, 1, TCGETS, TCSETSF), /* the crash path */
	/* The worker's Landlock step at its first job (vmm/confine.h): it can only narrow what
	 * the thread may open. no_new_privs is set already, by seccomp_enter(). */
	ANY(landlock_restrict_self),
};

static const struct sc_rule fs_rules[] = {
	/* The device's event loop: kicks (edge-triggered, never read), its stop eventfd, the
	 * used-buffer interrupts (an irqfd write; KVM_IRQ_LINE for PCI INTx; MSI-X updates its
	 * routes as it fires), a kick re-signalled at the work budget. TCGETS, TCSETSF: the
	 * crash path. */
	ANY(epoll_wait),
	ANY(read),
	ANY(write),
	ANY(futex),
	IN(ioctl, 1, KVM_WIRING, TCGETS, TCSETSF),
	/* READ and WRITE, straight between the file and guest memory (pread64, pwrite64: the
	 * rest of a short transfer). */
	ANY(preadv),
	ANY(pwritev),
	ANY(pread64),
	ANY(pwrite64),
	/* hostfs (hostfs/): names resolved beneath the O_PATH descriptors it holds (openat2),
	 * files reopened through /proc/self/fd (openat), attributes, directories, the changes a
	 * writable share allows; /proc/self/mountinfo read again when a new mount turns up. */
	ANY(openat2),
	ANY(openat),
	ANY(close),
	ANY(statx),
	ANY(newfstatat),
	ANY(fstatfs),
	ANY(getdents64),
	ANY(lseek),
	ANY(readlinkat),
	ANY(faccessat2),
	ANY(faccessat),
	ANY(fgetxattr),
	ANY(flistxattr),
	ANY(mkdirat),
	ANY(mknodat),
	ANY(symlinkat),
	ANY(linkat),
	ANY(unlinkat),
	ANY(renameat2),
	ANY(renameat),           /* glibc's renameat2() without flags */
	ANY(fchmodat),
	ANY(fchownat),
	ANY(geteuid),            /* a chown only to mica's own ids */
	ANY(getegid),
	ANY(utimensat),
	ANY(ftruncate),
	ANY(fallocate),
	ANY(fsync),
	ANY(fdatasync),
	/* The thread's Landlock step before its first requests (vmm/confine.h). */
	ANY(landlock_restrict_self),
};

static const struct sc_rule all_rules[] = {
	CLEAR(mmap, 2, PROT_EXEC),      /* malloc's arenas; never executable memory */
	CLEAR(mprotect, 2, PROT_EXEC),
	ANY(munmap),
	ANY(brk),
	IN(madvise, 2, MADV_DONTNEED),  /* the balloon; glibc at a thread's end */
	ANY(rt_sigreturn),
	ANY(rt_sigprocmask),
	ANY(restart_syscall),
	ANY(clock_gettime),             /* where the vDSO cannot read the clock source */
	ANY(exit),
	ANY(exit_group),
	/* The crash path: sigaction(SIG_DFL) and raise() of the fatal signal. */
	IN(rt_sigaction, 0, SIGSEGV, SIGBUS, SIGABRT),
	ANY(getpid),
	ANY(gettid),
	IN(tgkill, 2, SIGSEGV, SIGBUS, SIGABRT),
};

/* Sanitizer builds (make SAN=1, SAN=thread) only: what the runtimes do through libc on
 * mica's threads (their thread hooks: an alternate signal stack per thread, madvise on their
 * shadow memory, yielding in their spin locks). Their own code's direct calls are allowed by
 * instruction pointer (seccomp.c). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
static const struct sc_rule sanitizer_rules[] = {
	ANY(fstat),     /* ThreadSanitizer's fstat interceptor calls glibc's __fxstat64 */
	/* A report is symbolized (libbacktrace, through libc) before suppressions are matched,
	 * so a suppressed race on guest memory (vmm/sanitizers.c) still reads mica's binary and
	 * libraries on the thread that found it; Landlock keeps those reads to them. */
	IN(openat, 2, O_RDONLY | O_CLOEXEC),
	IN(fcntl, 1, F_SETFD),
	ANY(close),
	ANY(read),
	ANY(pread64),
	ANY(lseek),
	ANY(readlink),  /* /proc/self/exe */
	ANY(newfstatat), /* stat() of a module's file */
	ANY(madvise),
	ANY(sigaltstack),
	ANY(sched_yield),
};
#else
#define SANITIZED 0
#endif

struct group {
	const struct sc_rule *rules;
	int n;
};

#define GROUP(a) ((struct group){ (a), (int)(sizeof(a) / sizeof((a)[0])) })

int sc_rules(enum seccomp_kind kind, const struct seccomp_opts *o, struct sc_rule *out, int max)
{
	struct group g[12];
	int ng = 0, n = 0;

	switch (kind) {
	case SECCOMP_VCPU:
		g[ng++] = GROUP(vcpu_rules);
		if (o->tap)
			g[ng++] = GROUP(vcpu_tap_rules);
		break;
	case SECCOMP_LOOP:
		g[ng++] = GROUP(loop_rules);
		if (o->tap)
			g[ng++] = GROUP(loop_tap_rules);
		if (o->slirp)
			g[ng++] = GROUP(loop_slirp_rules);
		if (o->exit_writes_file)
			g[ng++] = GROUP(loop_exit_file_rules);
		if (o->port_input)
			g[ng++] = GROUP(loop_port_input_rules);
		if (o->snapshots)
			g[ng++] = GROUP(loop_snapshot_rules);
		if (o->control_socket) {
			static const struct sc_rule unlink_rule[] = { ANY(unlink) };

			g[ng++] = GROUP(unlink_rule); /* --control's socket file, removed at exit */
		}
		break;
	case SECCOMP_IO:
		g[ng++] = GROUP(io_rules);
		break;
	case SECCOMP_FS:
		g[ng++] = GROUP(fs_rules);
		break;
	default:
		return -EINVAL;
	}
	g[ng++] = GROUP(all_rules);
#if SANITIZED
	g[ng++] = GROUP(sanitizer_rules);
#endif
	for (int i = 0; i < ng; i++) {
		for (int k = 0; k < g[i].n; k++) {
			if (n == max)
				return -ENOSPC;
			out[n++] = g[i].rules[k];
		}
	}
	return n;
}
