/* `mica check`: one line per thing mica needs from this host, "ok", "warn" or "no", and for
 * every problem what follows from it and what to do; then a verdict. See cmd/check.h.
 *
 * "no" is kept for what stops mica from running VMs at all (the verdict names the first one);
 * "warn" for what makes it slower, less confined or in need of an option. The probes are mica's
 * own where it has them: vm_create() (which runs kvm_open()) builds the VM `mica run` builds,
 * blk_io_create() picks virtio-blk's backend, landlock_open() and seccomp_setup() are what
 * `mica run` calls, kvm_is_pvm() is boot/'s PVM test. */
#include "cmd/check.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <liburing.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "confine/landlock.h"
#include "confine/seccomp.h"
#include "devices/virtio/blk_io.h"
#include "vmm/evloop.h"
#include "vmm/json.h"
#include "vmm/kvm.h"
#include "vmm/layout.h"
#include "vmm/outfile.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

enum status { ST_OK, ST_WARN, ST_NO };
static const char *const status_word[] = { "ok", "warn", "no" };

#define MAX_ITEMS 40

struct item {
	const char *key;               /* stable name, unique in a report, for --json */
	enum status st;
	char what[256];                /* the fact, or the problem */
	char action[ERR_MSG_MAX + 128]; /* for a problem: what follows and what to do; may be "" */
};

/* The KVM capabilities mica uses when present (those it needs: kvm_required_caps). */
static const struct cap {
	int nr;
	const char *name;
	const char *use;      /* what mica uses it for */
	const char *without;  /* what is lost without it */
} optional_caps[] = {
	{ KVM_CAP_IOEVENTFD_NO_LENGTH, "KVM_CAP_IOEVENTFD_NO_LENGTH",
	  "zero-length MMIO ioeventfds: virtio-pci notifies take KVM's fast MMIO path",
	  "virtio-pci notifies use 2-byte ioeventfds, each decoded by KVM's instruction emulator "
	  "(slower notifies); a newer host kernel has it" },
	{ KVM_CAP_BINARY_STATS_FD, "KVM_CAP_BINARY_STATS_FD",
	  "KVM's own exit counters for --stats-json (kvm_exits)",
	  "--stats-json says null for kvm_exits (Linux 5.14 has it)" },
	{ KVM_CAP_GET_TSC_KHZ, "KVM_CAP_GET_TSC_KHZ",
	  "the TSC frequency for guests (CPUID leaf 0x40000010)",
	  "guests calibrate their TSC at boot (slower, less exact)" },
};
#define NOPT (sizeof(optional_caps) / sizeof(optional_caps[0]))
#define MAX_REQUIRED 16       /* room for kvm_required_caps */

struct report {
	struct item items[MAX_ITEMS];
	int n;
	/* Facts for --json; each stays at its initial value when the step before it failed. */
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

/* The few host bytes in the report (a hypervisor's signature, strerror text) are printed on a
 * terminal: anything outside printable ASCII becomes '?' (the JSON escapes them anyway). */
static void ascii_safe(char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			*s = '?';
}

static struct item *add(struct report *r, const char *key, enum status st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static struct item *add(struct report *r, const char *key, enum status st, const char *fmt, ...)
{
	struct item *it = &r->items[r->n < MAX_ITEMS ? r->n++ : MAX_ITEMS - 1];
	va_list ap;

	it->key = key;
	it->st = st;
	it->action[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(it->what, sizeof(it->what), fmt, ap);
	va_end(ap);
	ascii_safe(it->what);
	return it;
}

static void act(struct item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void act(struct item *it, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(it->action, sizeof(it->action), fmt, ap);
	va_end(ap);
	ascii_safe(it->action);
}

static bool blocked(const struct report *r)
{
	for (int i = 0; i < r->n; i++)
		if (r->items[i].st == ST_NO)
			return true;
	return false;
}

/* ---- the host: bare metal or a VM, which KVM module ---- */

static void host_facts(struct report *r)
{
	static const struct { const char *sig, *name; } hypervisors[] = {
		{ "KVMKVMKVM", "KVM" }, { "TCGTCGTCGTCG", "QEMU TCG (software emulation)" },
		{ "Microsoft Hv", "Hyper-V" }, { "VMwareVMware", "VMware" },
		{ "XenVMMXenVMM", "Xen" }, { "bhyve bhyve ", "bhyve" },
		{ "VBoxVBoxVBox", "VirtualBox" }, { " lrpepyh  vr", "Parallels" },
	};
	unsigned a, b, c, d;
	char sig[13] = "";

	if (__get_cpuid(1, &a, &b, &c, &d)) {
		r->host_is_vm = c & (1u << 31);
		if (c & (1u << 5))
			r->cpu_virt = "vmx";
	}
	if (__get_cpuid(0x80000001, &a, &b, &c, &d) && (c & (1u << 2)))
		r->cpu_virt = "svm";
	if (r->host_is_vm) {
		/* The hypervisor leaves exist wherever the hypervisor bit is set. */
		__cpuid(0x40000000, a, b, c, d);
		memcpy(sig, &b, 4);
		memcpy(sig + 4, &c, 4);
		memcpy(sig + 8, &d, 4);
		snprintf(r->hypervisor, sizeof(r->hypervisor), "%s", sig[0] ? sig : "unknown");
		for (size_t i = 0; i < sizeof(hypervisors) / sizeof(hypervisors[0]); i++)
			if (!strcmp(sig, hypervisors[i].sig))
				snprintf(r->hypervisor, sizeof(r->hypervisor), "%s", hypervisors[i].name);
		ascii_safe(r->hypervisor);
	}
	if (kvm_is_pvm())
		r->module = "kvm_pvm";
	else if (access("/sys/module/kvm_intel", F_OK) == 0)
		r->module = "kvm_intel";
	else if (access("/sys/module/kvm_amd", F_OK) == 0)
		r->module = "kvm_amd";
}

/* Which KVM /dev/kvm is (from the module loaded and whether this host is a VM), or, where
 * there is none, what this host offers. */
static void check_kind(struct report *r)
{
	bool present = r->kvm_device;
	struct item *it;

	if (r->module && !strcmp(r->module, "kvm_pvm")) {
		r->kind = "pvm";
		if (!present) {
			it = add(r, "kvm_kind", ST_NO, "KVM: PVM's module (kvm_pvm) is loaded, but there "
				 "is no /dev/kvm");
			act(it, "even with one, PVM boots only PVM-aware Linux kernels: use "
			    "scripts/with-kvm");
			return;
		}
		it = add(r, "kvm_kind", ST_WARN, "KVM: PVM (module kvm_pvm)%s%s",
			 r->host_is_vm ? ", inside a virtual machine under " : "",
			 r->host_is_vm ? r->hypervisor : "");
		act(it, "PVM runs guests without hardware virtualisation: mica's test guest and "
		    "PVM-aware Linux kernels run, an unmodified Linux kernel (mica run --kernel "
		    "bzImage, mica sandbox) hangs early; for those, use scripts/with-kvm");
		return;
	}
	if (present && r->host_is_vm) {
		r->kind = "nested";
		it = add(r, "kvm_kind", ST_WARN, "KVM: nested (%s, inside a virtual machine under %s)",
			 r->module ? r->module : "KVM", r->hypervisor);
		act(it, "every VM exit goes through the outer hypervisor and costs tens of "
		    "microseconds, against a few on bare metal: fine for tests, slow for "
		    "exit-heavy guests and meaningless for benchmarks");
		return;
	}
	if (present) {
		r->kind = "hardware";
		add(r, "kvm_kind", ST_OK, "KVM: hardware (%s, bare metal)",
		    r->module ? r->module : "KVM");
		return;
	}
	r->kind = "none";
	it = add(r, "kvm_kind", ST_NO, "KVM: none here (host: %s%s; CPU virtualisation: %s; "
		 "module: %s)", r->host_is_vm ? "a virtual machine under " : "bare metal",
		 r->host_is_vm ? r->hypervisor : "", r->cpu_virt ? r->cpu_virt : "not offered",
		 r->module ? r->module : "none loaded");
	if (!r->cpu_virt && r->host_is_vm)
		act(it, "this virtual machine is not given hardware virtualisation: enable nested "
		    "virtualisation on its host, or use scripts/with-kvm (software emulation)");
	else if (!r->cpu_virt)
		act(it, "enable virtualisation (VT-x or AMD-V) in the firmware settings");
	else if (!r->module)
		act(it, "load KVM: modprobe %s", !strcmp(r->cpu_virt, "vmx") ? "kvm_intel" : "kvm_amd");
}

/* ---- /dev/kvm, its API and capabilities ---- */

static void check_device(struct report *r)
{
	struct stat st;
	struct item *it;
	int fd;

	if (stat("/dev/kvm", &st) < 0 || !S_ISCHR(st.st_mode)) {
		it = add(r, "kvm_device", ST_NO, "/dev/kvm %s", errno == ENOENT ? "does not exist" :
			 "is not a character device");
		act(it, "this host cannot run VMs; run mica inside scripts/with-kvm, or on a host "
		    "with KVM (modprobe kvm_intel or kvm_amd; in a container, pass /dev/kvm in)");
		return;
	}
	r->kvm_device = true;
	add(r, "kvm_device", ST_OK, "/dev/kvm exists");
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		it = add(r, "kvm_open", ST_NO, "/dev/kvm cannot be opened for reading and writing (%s)",
			 strerror(errno));
		if (errno == EACCES || errno == EPERM)
			act(it, "add yourself to group kvm (usermod -aG kvm $USER, then log in again), "
			    "run mica as root, or inside scripts/with-kvm");
		return;
	}
	r->kvm_rw = true;
	add(r, "kvm_open", ST_OK, "/dev/kvm opens for reading and writing");
	r->api_version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (r->api_version != KVM_API_VERSION) {
		it = add(r, "kvm_api", ST_NO, "KVM API version %d, mica needs %d", r->api_version,
			 KVM_API_VERSION);
		act(it, "use a current host kernel");
		close(fd);
		return;
	}
	add(r, "kvm_api", ST_OK, "KVM API version %d", r->api_version);
	for (size_t i = 0; i < MAX_REQUIRED && kvm_required_caps[i].name; i++)
		r->req[i] = ioctl(fd, KVM_CHECK_EXTENSION, kvm_required_caps[i].cap) > 0;
	for (size_t i = 0; i < NOPT; i++)
		r->opt[i] = ioctl(fd, KVM_CHECK_EXTENSION, optional_caps[i].nr) > 0;
	close(fd);
}

/* One line for the required capabilities when all are there, one per missing one otherwise. */
static void check_required_caps(struct report *r)
{
	char list[512] = "";
	size_t len = 0;
	bool all = true;

	for (size_t i = 0; i < MAX_REQUIRED && kvm_required_caps[i].name; i++) {
		const char *name = kvm_required_caps[i].name;

		if (!r->req[i]) {
			struct item *it = add(r, name, ST_NO, "KVM lacks %s, which mica needs", name);

			act(it, "mica cannot run VMs with this KVM: use a newer host kernel");
			all = false;
		} else if (len < sizeof(list)) {
			len += snprintf(list + len, sizeof(list) - len, "%s%s", len ? " " : "",
					name + strlen("KVM_CAP_"));
		}
	}
	if (all)
		add(r, "kvm_caps", ST_OK, "KVM has every capability mica needs: %s", list);
}

static void check_optional_caps(struct report *r)
{
	for (size_t i = 0; i < NOPT; i++) {
		const struct cap *c = &optional_caps[i];
		struct item *it;

		if (r->opt[i]) {
			add(r, c->name, ST_OK, "%s: %s", c->name, c->use);
			continue;
		}
		it = add(r, c->name, ST_WARN, "%s missing", c->name);
		act(it, "%s", c->without);
	}
}

/* ---- what a VM exit costs here ----
 *
 * A real-mode loop at TIME_CODE_GPA, each pass one exit to mica (out to TIME_PORT_USER) and n
 * writes to TIME_PORT_KERNEL, a port ioeventfd that KVM completes in the kernel:
 *   1000: out 0x80, al;  mov cx, n;  1005: out 0x81, al;  dec cx;  jnz 1005;  jmp 1000
 * One KVM_RUN is one pass. Timing passes with n = 1 and n = TIME_N_KERNEL gives both costs. */
#define TIME_CODE_GPA 0x1000
#define TIME_PORT_USER 0x80
#define TIME_PORT_KERNEL 0x81
#define TIME_N_KERNEL 21
#define TIME_SAMPLES 300

static const uint8_t time_code[] = {
	0xe6, TIME_PORT_USER,     /* 1000: out 0x80, al */
	0xb9, 0x01, 0x00,         /* 1002: mov cx, n (patched) */
	0xe6, TIME_PORT_KERNEL,   /* 1005: out 0x81, al */
	0x49,                     /* 1007: dec cx */
	0x75, 0xfb,               /* 1008: jnz 1005 */
	0xeb, 0xf4,               /* 100a: jmp 1000 */
};

static unsigned exit_reason_seen;

static void on_alarm(int sig)
{
	(void)sig; /* only there to make KVM_RUN return EINTR */
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The median time of one pass with n kernel exits, in ns; or -errno (-EPROTO: an exit that is
 * not the loop's, in exit_reason_seen). */
static int64_t time_passes(struct vcpu *v, uint8_t *code, unsigned n)
{
	static int64_t ns[TIME_SAMPLES];

	code[3] = (uint8_t)n;
	code[4] = (uint8_t)(n >> 8);
	for (int i = -1; i < TIME_SAMPLES; i++) { /* pass -1 warms up */
		int64_t t0 = (int64_t)now_ns();

		if (ioctl(v->fd, KVM_RUN, 0) < 0)
			return -errno;
		if (v->run->exit_reason != KVM_EXIT_IO || v->run->io.port != TIME_PORT_USER) {
			exit_reason_seen = v->run->exit_reason;
			return -EPROTO;
		}
		if (i >= 0)
			ns[i] = (int64_t)now_ns() - t0;
	}
	qsort(ns, TIME_SAMPLES, sizeof(ns[0]), cmp_i64);
	return ns[TIME_SAMPLES / 2];
}

static int time_exits(struct report *r, struct vm *vm)
{
	struct vcpu *v = &vm->vcpus[0];
	uint8_t *code = gpa_range(&vm->mem, TIME_CODE_GPA, sizeof(time_code));
	struct machine_ioeventfd io = { .addr = TIME_PORT_KERNEL, .len = 1, .pio = true };
	struct kvm_regs regs = { .rip = TIME_CODE_GPA, .rflags = 2 };
	/* A hung KVM_RUN (a KVM that cannot run real mode) is interrupted every 2 s, from 5 s on. */
	struct itimerval guard = { .it_value = { 5, 0 }, .it_interval = { 2, 0 } }, off = { 0 };
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct kvm_sregs s;
	int64_t one, many;
	int err = 0;

	memcpy(code, time_code, sizeof(time_code));
	io.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (io.fd < 0)
		return -errno;
	err = machine_ioeventfd(&vm->machine, &io, true);
	if (!err && ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		err = -errno;
	if (!err) {
		s.cs.base = 0;
		s.cs.selector = 0;
		if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0 || ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
			err = -errno;
	}
	if (err)
		goto out;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &old);
	setitimer(ITIMER_REAL, &guard, NULL);
	one = time_passes(v, code, 1);
	many = one < 0 ? one : time_passes(v, code, TIME_N_KERNEL);
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	if (many < 0) {
		err = (int)many;
		goto out;
	}
	r->kernel_exit_us = MAX(0, many - one) / 1e3 / (TIME_N_KERNEL - 1);
	r->user_exit_us = MAX(0, one / 1e3 - r->kernel_exit_us);
out:
	close(io.fd);
	return err;
}

/* ---- a VM as `mica run` builds it ---- */

/* vm_create() (kvm_open(), RAM, irqchip, PIT, a vCPU), then what devices ask of it: a
 * zero-length MMIO ioeventfd (virtio-pci's notify; 2 bytes with datamatch where KVM has no
 * zero-length ones), an irqfd and an MSI route. */
static void check_vm(struct report *r)
{
	struct vm_config cfg = { .mem_size = 2 * MiB, .ncpus = 1 };
	struct err e = { "" };
	struct vm vm;
	struct machine_ioeventfd io = { .addr = PCI_MMIO32_START };
	int efd[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	const char *step;
	struct item *it;
	int err, gsi;

	err = vm_create(&vm, &cfg, &e);
	if (err) {
		it = add(r, "kvm_vm", ST_NO, "KVM cannot create mica's VM");
		act(it, "%s", e.msg);
		goto out;
	}
	r->max_vcpus = vm.caps.max_vcpus;
	if (!vm.caps.ioeventfd_no_length) {
		io.len = 2;
		io.datamatch = true;
	}
	io.fd = efd[0];
	step = "an eventfd";
	err = efd[0] < 0 || efd[1] < 0 ? -errno : 0;
	if (!err) {
		step = "an ioeventfd";
		err = machine_ioeventfd(&vm.machine, &io, true);
	}
	if (!err) {
		step = "an irqfd";
		err = machine_irqfd(&vm.machine, efd[1], 5, true);
	}
	if (!err) {
		step = "an MSI route";
		gsi = machine_msi_alloc(&vm.machine);
		err = gsi < 0 ? gsi : machine_msi_route(&vm.machine, gsi, 0xfee00000, 0x30);
	}
	if (err) {
		it = add(r, "kvm_vm", ST_NO, "KVM refuses %s for mica's VM (%s)", step,
			 strerror(-err));
		act(it, "mica's devices need it: use a current host kernel");
		goto out;
	}
	r->vm_ok = true;
	add(r, "kvm_vm", ST_OK, "a VM as mica builds it: irqchip, PIT, a vCPU (up to %d), an "
	    "ioeventfd (%s), an irqfd and an MSI route", r->max_vcpus,
	    vm.caps.ioeventfd_no_length ? "zero-length MMIO" : "2-byte MMIO");
	err = time_exits(r, &vm);
	if (!err) {
		add(r, "kvm_exit_cost", ST_OK, "a VM exit costs %.1f us to mica and back (a device "
		    "register), %.1f us handled in the kernel (an ioeventfd notify)",
		    r->user_exit_us, r->kernel_exit_us);
		goto out;
	}
	if (err == -EPROTO)
		it = add(r, "kvm_exit_cost", ST_WARN, "cannot time a VM exit (unexpected KVM exit "
			 "reason %u)", exit_reason_seen);
	else if (err == -EINTR)
		it = add(r, "kvm_exit_cost", ST_WARN, "cannot time a VM exit (the vCPU did not "
			 "return from KVM_RUN within 5 s)");
	else
		it = add(r, "kvm_exit_cost", ST_WARN, "cannot time a VM exit (%s)", strerror(-err));
	act(it, "KVM runs mica's VM set-up but not this real-mode loop; mica's guests may run all "
	    "the same");
out:
	vm_destroy(&vm);
	for (int i = 0; i < 2; i++)
		if (efd[i] >= 0)
			close(efd[i]);
}

static void check_kvm(struct report *r)
{
	check_device(r);
	/* Which KVM, right after whether there is one (a VM that then fails says so itself). */
	check_kind(r);
	if (blocked(r))
		return;
	check_required_caps(r);
	if (!blocked(r))
		check_vm(r);
	check_optional_caps(r);
}

/* ---- the rest of the host ---- */

static void noop_ready(void *opaque)
{
	(void)opaque;
}

static void noop_done(void *arg, struct blk_io_req *req)
{
	(void)arg, (void)req;
}

static long read_long(const char *path, long dflt)
{
	FILE *f = fopen(path, "re");
	long v = dflt;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

/* Why io_uring_queue_init fails where blk_io chose threads (blk_io.c logs it only at debug). */
static void uring_reason(char *buf, size_t len)
{
	const char *env = getenv("MICA_BLK_NO_URING");
	struct io_uring ring;
	long disabled = read_long("/proc/sys/kernel/io_uring_disabled", 0);
	int err;

	if (env && *env && strcmp(env, "0")) {
		snprintf(buf, len, "MICA_BLK_NO_URING is set");
		return;
	}
	err = io_uring_queue_init(4, &ring, 0);
	if (!err) {
		io_uring_queue_exit(&ring);
		snprintf(buf, len, "it works now");
	} else if (err == -EPERM && disabled == 2) {
		snprintf(buf, len, "disabled by sysctl kernel.io_uring_disabled=2");
	} else if (err == -EPERM && disabled == 1) {
		snprintf(buf, len, "sysctl kernel.io_uring_disabled=1: only group "
			 "kernel.io_uring_group may use it");
	} else if ((err == -EPERM || err == -ENOSYS) && prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2) {
		snprintf(buf, len, "%s, under a seccomp filter mica was started with (a "
			 "container's?)", strerror(-err));
	} else if (err == -ENOSYS) {
		snprintf(buf, len, "this kernel is built without io_uring");
	} else {
		snprintf(buf, len, "%s", strerror(-err));
	}
}

static void check_io_uring(struct report *r)
{
	struct evloop loop;
	struct blk_io *io = NULL;
	struct err e = { "" };
	struct item *it;
	char why[160];

	if (evloop_init(&loop) < 0) {
		add(r, "io_uring", ST_WARN, "cannot tell which I/O backend virtio-blk uses "
			 "(no epoll instance: %s)", strerror(errno));
		return;
	}
	if (blk_io_create(&io, &loop, 8, noop_ready, NULL, &e) == 0) {
		r->blk_backend = blk_io_backend(io);
		blk_io_destroy(io, noop_done, NULL);
	}
	evloop_destroy(&loop);
	if (!r->blk_backend) {
		it = add(r, "io_uring", ST_WARN, "virtio-blk's I/O backend cannot start");
		act(it, "%s: mica run --disk will fail", e.msg);
	} else if (!strcmp(r->blk_backend, "io_uring")) {
		add(r, "io_uring", ST_OK, "io_uring: virtio-blk's I/O goes through it");
	} else {
		uring_reason(why, sizeof(why));
		it = add(r, "io_uring", ST_WARN, "io_uring unavailable (%s)", why);
		act(it, "virtio-blk falls back to a pool of worker threads: a system call and a "
		    "thread wake-up per request, slower than io_uring's batches");
	}
}

static void check_landlock(struct report *r)
{
	struct landlock *ll;
	struct err e = { "" };
	struct item *it;

	if (landlock_open(&ll, 0, &e) == 0) {
		r->landlock_abi = landlock_abi(ll);
		landlock_close(ll);
		add(r, "landlock", ST_OK, "Landlock ABI %u: after setup mica opens only the files its "
		    "options named (--landlock on)", r->landlock_abi);
		return;
	}
	it = add(r, "landlock", ST_WARN, "no Landlock: %s", e.msg);
	act(it, "mica runs without it: --landlock on cannot confine which files mica opens%s",
	    strstr(e.msg, "lsm=") ? " (add landlock to the kernel's lsm= parameter)" : "");
}

/* Last of the probes: seccomp_setup() also installs mica's SIGSYS handler and prepares what
 * glibc would do lazily (nothing else here runs after it). */
static void check_seccomp(struct report *r)
{
	struct seccomp_opts o = { .on = true, .probe = SECCOMP_NONE };
	struct item *it;
	int err = seccomp_setup(&o);

	r->seccomp = err == 0;
	if (!err) {
		add(r, "seccomp", ST_OK, "seccomp filters: each mica thread runs under its own "
		    "(--seccomp on)");
		return;
	}
	if (err == -EINVAL)
		it = add(r, "seccomp", ST_WARN, "no seccomp filters in this kernel");
	else
		it = add(r, "seccomp", ST_WARN, "cannot prepare the seccomp filters (%s)",
			 strerror(-err));
	act(it, "mica run stops with status 2 unless given --seccomp off, and its threads then "
	    "run unconfined");
}

static void check_thp(struct report *r)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	char line[128] = "", *open, *close;
	struct item *it;

	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		fclose(f);
	}
	open = strchr(line, '[');
	close = open ? strchr(open, ']') : NULL;
	if (close && close - open - 1 < (long)sizeof(r->thp))
		snprintf(r->thp, sizeof(r->thp), "%.*s", (int)(close - open - 1), open + 1);
	ascii_safe(r->thp);
	if (!strcmp(r->thp, "always") || !strcmp(r->thp, "madvise")) {
		add(r, "thp", ST_OK, "transparent huge pages (%s): guest RAM can be backed by 2 MiB "
		    "pages", r->thp);
		return;
	}
	it = add(r, "thp", ST_WARN, "transparent huge pages: %s", r->thp[0] ? r->thp : "not in "
		 "this kernel");
	act(it, "guest RAM is mapped in 4 KiB pages: more page faults and TLB misses%s",
	    r->thp[0] ? " (echo madvise > /sys/kernel/mm/transparent_hugepage/enabled)" : "");
}

/* ---- output ---- */

static const char *first_blocker(const struct report *r)
{
	for (int i = 0; i < r->n; i++)
		if (r->items[i].st == ST_NO)
			return r->items[i].what;
	return NULL;
}

static void verdict(const struct report *r, char *buf, size_t len)
{
	const char *b = first_blocker(r);

	if (b)
		snprintf(buf, len, "mica cannot run VMs here: %s", b);
	else if (!strcmp(r->kind, "pvm"))
		snprintf(buf, len, "mica can run VMs here (PVM: only PVM-aware Linux kernels boot; for "
			 "others use scripts/with-kvm)");
	else if (r->user_exit_us >= 0)
		snprintf(buf, len, "mica can run VMs here (%s KVM: a VM exit to mica costs %.1f us%s)",
			 r->kind, r->user_exit_us, !strcmp(r->kind, "nested") ?
			 ", tens of times what it costs on bare metal" : "");
	else
		snprintf(buf, len, "mica can run VMs here (%s KVM)", r->kind);
}

static void print_text(FILE *f, const struct report *r)
{
	char v[512];

	for (int i = 0; i < r->n; i++) {
		const struct item *it = &r->items[i];

		fprintf(f, "%-4s %s%s%s\n", status_word[it->st], it->what, it->action[0] ? ": " : "",
			it->action);
	}
	verdict(r, v, sizeof(v));
	fprintf(f, "%s\n", v);
}

static void print_json(FILE *f, const struct report *r)
{
	char v[512];

	verdict(r, v, sizeof(v));
	fprintf(f, "{\n  \"version\": 1,\n  \"can_run\": %s,\n  \"verdict\": ",
		blocked(r) ? "false" : "true");
	json_cstring(f, v);
	fputs(",\n  \"blocker\": ", f);
	json_cstring(f, first_blocker(r));
	fprintf(f, ",\n  \"kvm\": {\n    \"device\": %s,\n    \"read_write\": %s,\n"
		"    \"api_version\": ", r->kvm_device ? "true" : "false",
		r->kvm_rw ? "true" : "false");
	if (r->api_version >= 0)
		fprintf(f, "%d", r->api_version);
	else
		fputs("null", f);
	fprintf(f, ",\n    \"usable\": %s,\n    \"kind\": ", r->vm_ok ? "true" : "false");
	json_cstring(f, r->kind);
	fputs(",\n    \"module\": ", f);
	json_cstring(f, r->module);
	fprintf(f, ",\n    \"host_is_vm\": %s,\n    \"hypervisor\": ", r->host_is_vm ? "true" : "false");
	json_cstring(f, r->host_is_vm ? r->hypervisor : NULL);
	fputs(",\n    \"cpu_virtualisation\": ", f);
	json_cstring(f, r->cpu_virt);
	fputs(",\n    \"max_vcpus\": ", f);
	if (r->max_vcpus > 0)
		fprintf(f, "%d", r->max_vcpus);
	else
		fputs("null", f);
	fputs(",\n    \"exit_us\": ", f);
	if (r->user_exit_us >= 0)
		fprintf(f, "{ \"userspace\": %.2f, \"kernel\": %.2f }", r->user_exit_us,
			r->kernel_exit_us);
	else
		fputs("null", f);
	fputs(",\n    \"caps\": {", f);
	for (size_t i = 0; i < MAX_REQUIRED && kvm_required_caps[i].name; i++)
		fprintf(f, "%s\n      \"%s\": %s", i ? "," : "", kvm_required_caps[i].name,
			r->req[i] < 0 ? "null" : r->req[i] ? "true" : "false");
	for (size_t i = 0; i < NOPT; i++)
		fprintf(f, ",\n      \"%s\": %s", optional_caps[i].name,
			r->opt[i] < 0 ? "null" : r->opt[i] ? "true" : "false");
	fputs("\n    }\n  },\n  \"blk_backend\": ", f);
	json_cstring(f, r->blk_backend);
	fprintf(f, ",\n  \"landlock_abi\": %u,\n  \"seccomp\": %s,\n  \"thp\": ", r->landlock_abi,
		r->seccomp ? "true" : "false");
	json_cstring(f, r->thp[0] ? r->thp : NULL);
	fputs(",\n  \"items\": [", f);
	for (int i = 0; i < r->n; i++) {
		const struct item *it = &r->items[i];

		fprintf(f, "%s\n    { \"key\": \"%s\", \"status\": \"%s\", \"what\": ", i ? "," : "",
			it->key, status_word[it->st]);
		json_cstring(f, it->what);
		fputs(", \"action\": ", f);
		json_cstring(f, it->action);
		fputs(" }", f);
	}
	fputs("\n  ]\n}\n", f);
}

/* ---- the command ---- */

static void usage(FILE *f)
{
	fputs("usage: mica check [--json PATH]\n"
	      "\n"
	      "Says whether this host can run mica's VMs and how fast, one line per thing mica\n"
	      "needs: /dev/kvm and which KVM it is (hardware, nested, PVM), the KVM capabilities\n"
	      "mica needs or uses, what a VM exit costs, io_uring, Landlock, seccomp and\n"
	      "transparent huge pages. Each line starts with ok, warn (mica runs, but slower or\n"
	      "less confined) or no (mica cannot run VMs), and says what to do; the last line\n"
	      "is the verdict.\n"
	      "\n"
	      "  --json PATH   also write the facts as JSON (\"version\": 1) to PATH; with -, the\n"
	      "                JSON goes to stdout and the lines to stderr\n"
	      "  -h, --help    this text\n"
	      "\n"
	      "Exit status: 0 when mica can run VMs here, 1 when it cannot, 2 for a usage error,\n"
	      "125 when the JSON cannot be written.\n", f);
}

int check_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct report r;
	struct out_file out = { 0 };
	const char *json = NULL;
	struct err e = { "" };
	bool json_stdout;
	FILE *j;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = optarg; break;
		case 'h': usage(stdout); return 0;
		case ':':
			fprintf(stderr, "mica: check: %s needs a value (see mica check --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		default:
			if (optopt)
				fprintf(stderr, "mica: check: unknown option -%c (see mica check --help)\n",
					optopt);
			else
				fprintf(stderr, "mica: check: unknown option %s (see mica check --help)\n",
					argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mica: check: unexpected argument '%s' (see mica check --help)\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	json_stdout = json && !strcmp(json, "-");
	if (json && !json_stdout && out_file_open(&out, json, "--json", &e)) {
		fprintf(stderr, "mica: check: %s\n", e.msg);
		return EXIT_USAGE;
	}

	memset(&r, 0, sizeof(r));
	r.api_version = -1;
	r.user_exit_us = r.kernel_exit_us = -1;
	memset(r.req, -1, sizeof(r.req));
	memset(r.opt, -1, sizeof(r.opt));
	host_facts(&r);
	check_kvm(&r);
	check_io_uring(&r);
	check_landlock(&r);
	check_thp(&r);
	check_seccomp(&r);

	print_text(json_stdout ? stderr : stdout, &r);
	if (json_stdout) {
		print_json(stdout, &r);
		if (fflush(stdout)) {
			fprintf(stderr, "mica: check: cannot write the JSON to stdout\n");
			return EXIT_CRASH;
		}
	} else if (json) {
		j = out_file_stream(&out);
		if (j)
			print_json(j, &r);
		if (!j || out_file_commit(&out, j)) {
			fprintf(stderr, "mica: check: cannot write --json %s\n", json);
			return EXIT_CRASH;
		}
	}
	return blocked(&r) ? 1 : 0;
}
