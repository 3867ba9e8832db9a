/* Internal to `mica check` (cmd/check*.c), not for the rest of mica: the report the probes fill
 * and the probes themselves. The public interface is cmd/check.h.
 *
 *   cmd/check.c          the command: options, the probes in order, output, exit status
 *   cmd/check_report.c   the report: items, the verdict, text and JSON
 *   cmd/check_kvm.c      /dev/kvm, which KVM it is, its capabilities, a VM as mica builds it
 *   cmd/check_exits.c    what a VM exit costs, timed on that VM
 *   cmd/check_host.c     the rest of the host: io_uring, Landlock, seccomp, huge pages
 *
 * Every probe adds its lines with add() (and act() for what to do), in the order they are
 * printed, and fills the facts of struct report that --json shows. */
#ifndef MICA_CMD_CHECK_INTERNAL_H
#define MICA_CMD_CHECK_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "vmm/err.h"

struct vm;

/* "no": mica cannot run VMs at all (the verdict names the first one); "warn": slower, less
 * confined or in need of an option. */
enum status { ST_OK, ST_WARN, ST_NO };

#define MAX_ITEMS 40

struct item {
	const char *key;               /* stable name, unique in a report, for --json */
	enum status st;
	char what[256];                /* the fact, or the problem */
	char action[ERR_MSG_MAX + 128]; /* for a problem: what follows and what to do; may be "" */
};

/* The KVM capabilities mica uses when present (those it needs: kvm_required_caps), in
 * cmd/check_kvm.c; NOPT is their number (check_kvm.c asserts it) so struct report can hold
 * them. */
struct cap {
	int nr;
	const char *name;
	const char *use;      /* what mica uses it for */
	const char *without;  /* what is lost without it */
};
#define NOPT 3
extern const struct cap optional_caps[];
#define MAX_REQUIRED 16       /* room for kvm_required_caps */

struct report {
	struct item items[MAX_ITEMS];
	int n;
	/* Facts for --json; each stays at its initial value (report_init()) when the step before
	 * it failed. */
	bool kvm_device, kvm_rw, vm_ok;
	int api_version;              /* -1: not asked */
	signed char req[MAX_REQUIRED]; /* kvm_required_caps: 1 present, 0 missing, -1 not asked */
	signed char opt[NOPT];         /* optional_caps, the same */
	int max_vcpus;                /* 0: not known */
	const char *kind;             /* hardware, nested, pvm, none */
	const char *module;           /* kvm_intel, kvm_amd, kvm_pvm; NULL: none loaded */
	bool host_is_vm;              /* CPUID leaf 1 ECX bit 31, the hypervisor bit */
	char hypervisor[32];          /* from CPUID leaf 0x40000000, made ASCII-safe */
	const char *cpu_virt;         /* "vmx", "svm" or NULL: what the CPU offers */
	double user_exit_us, kernel_exit_us; /* < 0: not measured */
	const char *blk_backend;      /* "io_uring" or "threads"; NULL: not found out */
	unsigned landlock_abi;        /* 0: none */
	bool seccomp;
	char thp[16];                 /* always, madvise, never; "" where the kernel has no THP */
};

/* ---- the report (cmd/check_report.c) ---- */

void report_init(struct report *r);
/* Host bytes printed on a terminal: anything outside printable ASCII becomes '?'. */
void ascii_safe(char *s);
/* Adds a line (past MAX_ITEMS, the last one is overwritten). */
struct item *add(struct report *r, const char *key, enum status st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Says what follows from a problem and what to do. */
void act(struct item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether a line says "no". */
bool blocked(const struct report *r);
void print_text(FILE *f, const struct report *r);
void print_json(FILE *f, const struct report *r);

/* ---- the probes, in the order check_main() runs them ---- */

/* cmd/check_kvm.c: the host (bare metal or a VM, which module), /dev/kvm, which KVM, its
 * capabilities and a VM as mica builds it, on which check_exit_cost() runs. */
void check_kvm(struct report *r);
/* cmd/check_exits.c: times VM exits on vm (a fresh VM with one vCPU that has not run) and adds
 * the line that says what one costs. */
void check_exit_cost(struct report *r, struct vm *vm);
/* cmd/check_host.c */
void check_io_uring(struct report *r);
void check_landlock(struct report *r);
void check_thp(struct report *r);
/* Last: it installs mica's SIGSYS handler (see check_host.c). */
void check_seccomp(struct report *r);

#endif
