/* seccomp-bpf filters per thread kind: compiled from confine/seccomp_lists.c, installed by each
 * thread, reported by a SIGSYS handler. See seccomp.h for the contract. */
#include "confine/seccomp.h"

#include <errno.h>
#include <link.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <time.h>
#include <unistd.h>

#include "confine/seccomp_rules.h"
#include "confine/syscall_names.h"

#define MAX_RULES 128
#define MAX_INSNS 1024  /* BPF_MAXINSNS is 4096; the loop's program, the longest, has < 200 */

/* Set by seccomp_setup() on the main thread before any confined thread exists; read-only
 * afterwards. The programs live as long as the process. */
static struct {
	bool ready;                  /* seccomp_setup() ran */
	bool on;
	enum seccomp_kind probe;
	struct sock_filter *prog[SECCOMP_NKINDS];
	unsigned short len[SECCOMP_NKINDS];
} sc = { .probe = SECCOMP_NONE };

/* The calling thread's name in the report ("vcpu0", "loop", "io"), set by seccomp_enter(). */
static _Thread_local char thread_label[16] = "unconfined";
static _Thread_local enum seccomp_kind thread_kind = SECCOMP_NONE;

static const char *const kind_names[SECCOMP_NKINDS] = {
	[SECCOMP_LOOP] = "loop", [SECCOMP_VCPU] = "vcpu", [SECCOMP_IO] = "io", [SECCOMP_FS] = "fs",
};

const char *seccomp_kind_name(enum seccomp_kind kind)
{
	return kind >= 0 && kind < SECCOMP_NKINDS ? kind_names[kind] : "none";
}

int seccomp_kind_parse(const char *s, enum seccomp_kind *kind)
{
	for (int k = 0; k < SECCOMP_NKINDS; k++) {
		if (!strcmp(s, kind_names[k])) {
			*kind = k;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- the report ---- */

static atomic_int reported; /* a SIGSYS handler is writing its line */

/* Appends s at *p, within end; async-signal-safe. */
static void put_str(char **p, char *end, const char *s)
{
	while (*s && *p < end)
		*(*p)++ = *s++;
}

static void put_uint(char **p, char *end, unsigned long v, unsigned base)
{
	char digits[24];
	int n = 0;

	if (base == 16)
		put_str(p, end, "0x");
	do
		digits[n++] = "0123456789abcdef"[v % base];
	while ((v /= base) && n < (int)sizeof(digits));
	while (n > 0 && *p < end)
		*(*p)++ = digits[--n];
}

/* SIGSYS from SECCOMP_RET_TRAP: one line, then exit 125. Only write(2) and exit_group(2), both
 * in every filter, made with syscall(2) so that no wrapper (a sanitizer's _exit interceptor
 * finalizing its runtime) runs first; the rest is arithmetic on this thread's stack and
 * constant tables. The call's
 * first three arguments (from the trapped registers) tell an ioctl's request or a socket's
 * family. */
static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
	static const int arg_regs[3] = { REG_RDI, REG_RSI, REG_RDX };
	const greg_t *regs = ((ucontext_t *)uctx)->uc_mcontext.gregs;
	char line[224], *p = line, *end = line + sizeof(line) - 1;
	const char *name = syscall_name((unsigned long)si->si_syscall);

	(void)sig;
	/* One line for the process: a second thread that trips meanwhile waits (futex, in every
	 * filter) for the first one's exit, which ends it too. */
	if (atomic_exchange(&reported, 1))
		for (;;)
			syscall(SYS_futex, &reported, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
	put_str(&p, end, "mica: seccomp: forbidden system call ");
	put_str(&p, end, name ? name : "unknown");
	put_str(&p, end, " (");
	put_uint(&p, end, (unsigned long)si->si_syscall, 10);
	put_str(&p, end, "; arguments");
	for (int i = 0; i < 3; i++) {
		put_str(&p, end, i ? ", " : " ");
		put_uint(&p, end, (unsigned long)regs[arg_regs[i]], 16);
	}
	put_str(&p, end, ") on thread ");
	put_str(&p, end, thread_label);
	put_str(&p, end, " (");
	put_str(&p, end, seccomp_kind_name(thread_kind));
	put_str(&p, end, "): stopping\n");
	syscall(SYS_write, STDERR_FILENO, line, (size_t)(p - line));
	for (;;)
		syscall(SYS_exit_group, SECCOMP_EXIT_STATUS);
}

/* ---- BPF ---- */

struct prog {
	struct sock_filter *insns;
	int n;
	int max;
};

static void emit(struct prog *p, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	if (p->n < p->max)
		p->insns[p->n] = (struct sock_filter){ code, jt, jf, k };
	p->n++; /* counted even past max: compile() then fails */
}

#define LD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
/* An argument's low 32 bits (x86-64 is little-endian): every argument the rules check is an
 * int or unsigned int in the kernel, which ignores the high half as well. */
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))

/* One rule:
 *     jeq  #nr, 0, skip         (not this call: next rule, A still the number)
 *     ld   arg                  (SC_IN / SC_CLEAR)
 *     jeq  #v1, allow, 0  ...   (SC_IN)    or   jset #bits, 0, allow   (SC_CLEAR)
 *     ld   nr                   (no value matched: the next rule sees the number again)
 *     ja   1
 *   allow:
 *     ret  ALLOW
 * or, for SC_ANY, jeq #nr, 0, 1; ret ALLOW. Conditional jumps reach at most 255 ahead, which
 * a rule of at most SC_MAX_VALUES values never needs. */
static void emit_rule(struct prog *p, const struct sc_rule *r)
{
	if (r->check == SC_ANY) {
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 1, (uint32_t)r->nr);
		emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
		return;
	}
	if (r->check == SC_IN) {
		int n = r->nvalues;

		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, (uint8_t)(n + 4), (uint32_t)r->nr);
		emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)ARG_LO(r->arg));
		for (int i = 0; i < n; i++)
			emit(p, BPF_JMP | BPF_JEQ | BPF_K, (uint8_t)(n - i + 1), 0, r->values[i]);
	} else {
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 5, (uint32_t)r->nr);
		emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)ARG_LO(r->arg));
		emit(p, BPF_JMP | BPF_JSET | BPF_K, 0, 2, r->values[0]);
	}
	emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, nr));
	emit(p, BPF_JMP | BPF_JA, 0, 0, 1);
	emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* Sanitizer builds (make SAN=1, SAN=thread) only: the sanitizer runtimes make system calls of
 * their own, from their own code (sanitizer_common's internal_syscall: the allocator's mmap,
 * reports, LeakSanitizer's check at exit, which clones a tracer process that ptraces every
 * thread). Calls whose instruction pointer lies in a runtime's executable segment are allowed;
 * mica's calls, which go through libc (the interceptors call the real libc functions), are
 * filtered as in the default build. */
#define MAX_RUNTIME_RANGES 8

static struct { uint64_t start, last; } runtime[MAX_RUNTIME_RANGES];
static int nruntime;

static int find_runtime(struct dl_phdr_info *info, size_t size, void *data)
{
	static const char *const libs[] = { "/libasan.so", "/libtsan.so", "/libubsan.so", "/liblsan.so" };

	(void)size;
	(void)data;
	for (size_t l = 0; l < sizeof(libs) / sizeof(libs[0]); l++) {
		if (!info->dlpi_name || !strstr(info->dlpi_name, libs[l]))
			continue;
		for (int i = 0; i < info->dlpi_phnum; i++) {
			const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
			uint64_t start = info->dlpi_addr + ph->p_vaddr, last = start + ph->p_memsz - 1;

			if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || !ph->p_memsz)
				continue;
			/* One range per 4 GiB window: BPF compares 32 bits at a time. */
			while (nruntime < MAX_RUNTIME_RANGES) {
				uint64_t window_last = start | 0xffffffffULL;

				runtime[nruntime].start = start;
				runtime[nruntime++].last = last < window_last ? last : window_last;
				if (last <= window_last)
					break;
				start = window_last + 1;
			}
		}
	}
	return 0;
}

/* Allows the call when the instruction pointer lies in a runtime's range. */
static void emit_runtime_ranges(struct prog *p)
{
	const uint32_t ip = offsetof(struct seccomp_data, instruction_pointer);

	for (int i = 0; i < nruntime; i++) {
		emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, ip + 4);
		emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 4, (uint32_t)(runtime[i].start >> 32));
		emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, ip);
		emit(p, BPF_JMP | BPF_JGE | BPF_K, 0, 2, (uint32_t)runtime[i].start);
		emit(p, BPF_JMP | BPF_JGT | BPF_K, 1, 0, (uint32_t)runtime[i].last);
		emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW);
	}
}
#else
static void emit_runtime_ranges(struct prog *p)
{
	(void)p;
}
#endif

/* The kind's program: the architecture, then the rules in order, then the trap. */
static int compile(enum seccomp_kind kind, const struct seccomp_opts *o, struct prog *p)
{
	struct sc_rule rules[MAX_RULES];
	int n = sc_rules(kind, o, rules, MAX_RULES);

	if (n < 0)
		return n;
	emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, arch));
	emit(p, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, AUDIT_ARCH_X86_64);
	emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_KILL_PROCESS);
	emit_runtime_ranges(p);
	emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, nr));
	/* The x32 ABI shares the architecture value, its numbers have bit 30 set. */
	emit(p, BPF_JMP | BPF_JGE | BPF_K, 0, 1, 0x40000000u);
	emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_KILL_PROCESS);
	for (int i = 0; i < n; i++) {
		if (rules[i].check != SC_ANY &&
		    (rules[i].nvalues < 1 || rules[i].nvalues > SC_MAX_VALUES || rules[i].arg < 0 ||
		     rules[i].arg > 5))
			return -EINVAL;
		emit_rule(p, &rules[i]);
	}
	emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_TRAP);
	return p->n <= p->max ? 0 : -E2BIG;
}

int seccomp_allowed(enum seccomp_kind kind, const struct seccomp_opts *o, int *nrs, int max)
{
	struct sc_rule rules[MAX_RULES];
	int n = sc_rules(kind, o, rules, MAX_RULES), count = 0;

	if (n < 0)
		return n;
	/* Ascending and distinct: repeated selection of the next larger number. */
	for (int last = -1;;) {
		int next = -1;

		for (int i = 0; i < n; i++)
			if (rules[i].nr > last && (next < 0 || rules[i].nr < next))
				next = rules[i].nr;
		if (next < 0)
			break;
		if (count < max)
			nrs[count] = next;
		count++;
		last = next;
	}
	return count;
}

/* ---- setup and entry ---- */

int seccomp_setup(const struct seccomp_opts *o)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };

	sc.probe = o->probe;
	sc.ready = true;
	sc.on = o->on;
	if (!o->on)
		return 0;
	/* PR_GET_SECCOMP fails with EINVAL on a kernel without seccomp at all;
	 * SECCOMP_GET_ACTION_AVAIL tells whether filters (and the TRAP action) are there. */
	{
		uint32_t action = SECCOMP_RET_TRAP;

		if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 ||
		    syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) < 0) {
			sc.on = false;
			return -EINVAL;
		}
	}
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	dl_iterate_phdr(find_runtime, NULL);
#endif
	for (int k = 0; k < SECCOMP_NKINDS; k++) {
		struct prog p = { .insns = calloc(MAX_INSNS, sizeof(struct sock_filter)),
				  .max = MAX_INSNS };
		int err;

		if (!p.insns)
			return -ENOMEM;
		err = compile(k, o, &p);
		if (err) {
			free(p.insns);
			return err;
		}
		sc.prog[k] = p.insns;
		sc.len[k] = (unsigned short)p.n;
	}
	/* What glibc does lazily on first use and would then open a file for, done now, on the
	 * main thread: the time zone (/etc/localtime, at the RTC's first localtime_r on a vCPU)
	 * and the limit on malloc arenas (/sys/devices/system/cpu/online, the first time a
	 * thread needs an arena of its own; a fixed limit spares the read). */
	tzset();
	mallopt(M_ARENA_MAX, 8);
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return -errno;
	return 0;
}

/* The probe: personality(0xffffffff) only asks for the current persona; no thread of mica's
 * ever calls it. */
static void probe(void)
{
	syscall(SYS_personality, 0xffffffffUL);
}

void seccomp_enter(enum seccomp_kind kind, int index)
{
	char *p = thread_label, *end = thread_label + sizeof(thread_label) - 1;
	sigset_t sys;

	if (!sc.ready || kind < 0 || kind >= SECCOMP_NKINDS)
		return;
	put_str(&p, end, kind_names[kind]);
	if (index >= 0)
		put_uint(&p, end, (unsigned long)index, 10);
	*p = '\0';
	thread_kind = kind;
	if (sc.on) {
		struct sock_fprog prog = { .len = sc.len[kind], .filter = sc.prog[kind] };

		/* A blocked SIGSYS would make the kernel kill the process with no word said (it
		 * resets the handler): the pool's workers block every signal. */
		sigemptyset(&sys);
		sigaddset(&sys, SIGSYS);
		pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) {
			char line[128], *q = line, *qend = line + sizeof(line) - 1;

			put_str(&q, qend, "mica: seccomp: cannot install the filter of thread ");
			put_str(&q, qend, thread_label);
			put_str(&q, qend, ": ");
			put_str(&q, qend, strerror(errno));
			put_str(&q, qend, "\n");
			if (write(STDERR_FILENO, line, (size_t)(q - line)) < 0) {
				/* nothing more can be said */
			}
			_exit(SECCOMP_EXIT_STATUS);
		}
	}
	if (sc.probe == kind)
		probe();
}
