/* KVM's own state through a snapshot (vmm/kvm_state.c): a tiny real-mode guest counts on an I/O
 * port in one VM, is saved, restored into a second VM and must continue its count there; its
 * kvmclock page must be live again and have moved on by the time spent saved. Damaged sections
 * are refused before anything changes. Every test SKIPs where /dev/kvm is not usable (run it
 * through scripts/with-kvm). */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "snapshot/snapshot.h"
#include "tests/unit/test.h"
#include "vmm/kvm_state.h"

#define MEM_SIZE   (2u << 20)
#define CODE_ADDR  0x1000
#define PVCLOCK_ADDR 0x2000
#define OUT_PORT   0x80
#define SAVED_AT   5          /* the guest's count when it is saved */
/* Time spent saved: 1.2 s. Over 1 s, because KVM takes a host's TSC write within 1 s of the
 * TSC it expects (its last write plus the time since) as a synchronization and keeps its own
 * value: a TSC moved on by less would not show here (the saved one is a few ms). */
#define PAUSE_NS   1200000000L

/* The guest (16-bit real mode at CODE_ADDR): turns on kvmclock at PVCLOCK_ADDR, then counts in
 * AX and writes each value to OUT_PORT forever. */
static const uint8_t guest_code[] = {
	0x66, 0xb9, 0x01, 0x4d, 0x56, 0x4b, /* mov ecx, MSR_KVM_SYSTEM_TIME_NEW */
	0x66, 0xb8, 0x01, 0x20, 0x00, 0x00, /* mov eax, PVCLOCK_ADDR | 1 (enable) */
	0x66, 0x31, 0xd2,                   /* xor edx, edx */
	0x0f, 0x30,                         /* wrmsr */
	0x31, 0xc0,                         /* xor ax, ax */
	0x40,                               /* 1: inc ax */
	0xe7, OUT_PORT,                     /* out OUT_PORT, ax */
	0xeb, 0xfb,                         /* jmp 1b */
};

/* The guest ABI's kvmclock page (KVM writes it into guest memory). */
struct pvclock {
	uint32_t version;
	uint32_t pad0;
	uint64_t tsc_timestamp;
	uint64_t system_time;
	uint32_t tsc_to_system_mul;
	int8_t tsc_shift;
	uint8_t flags;
	uint8_t pad[2];
};

struct tvm {
	int vm, vcpu;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;
};

static int kvm_fd = -1;
static char dir[64];

static bool kvm_usable(void)
{
	static int state; /* 0 unknown, 1 usable, -1 not */

	if (!state) {
		kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		state = kvm_fd >= 0 && ioctl(kvm_fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION ?
			1 : -1;
		if (state > 0) {
			int vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);

			if (vm < 0)
				state = -1;
			else
				close(vm);
		}
	}
	return state > 0;
}

static struct kvm_cpuid2 *supported_cpuid(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 256 * sizeof(c->entries[0]));

	c->nent = 256;
	CHECK_EQ(ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c), 0);
	return c;
}

/* A VM as mica builds one (irqchip, PIT, the vCPU's CPUID set), the guest loaded, vCPU at its
 * first instruction; RAM is left empty with copy_ram. */
static void tvm_create(struct tvm *t, bool load)
{
	struct kvm_pit_config pit = { .flags = 0 };
	uint64_t identity = 0xfffbc000;
	struct kvm_cpuid2 *cpuid = supported_cpuid();
	struct kvm_userspace_memory_region r = { .slot = 0, .memory_size = MEM_SIZE };
	struct kvm_sregs s;
	struct kvm_regs regs = { .rip = CODE_ADDR, .rflags = 2 };

	t->vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	CHECK(t->vm >= 0);
	CHECK_EQ(ioctl(t->vm, KVM_SET_TSS_ADDR, 0xfffbd000ul), 0);
	CHECK_EQ(ioctl(t->vm, KVM_SET_IDENTITY_MAP_ADDR, &identity), 0);
	CHECK_EQ(ioctl(t->vm, KVM_CREATE_IRQCHIP, 0), 0);
	CHECK_EQ(ioctl(t->vm, KVM_CREATE_PIT2, &pit), 0);
	t->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(t->mem != MAP_FAILED);
	r.userspace_addr = (uintptr_t)t->mem;
	CHECK_EQ(ioctl(t->vm, KVM_SET_USER_MEMORY_REGION, &r), 0);
	t->vcpu = ioctl(t->vm, KVM_CREATE_VCPU, 0);
	CHECK(t->vcpu >= 0);
	CHECK_EQ(ioctl(t->vcpu, KVM_SET_CPUID2, cpuid), 0);
	free(cpuid);
	t->run_size = (size_t)ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	t->run = mmap(NULL, t->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu, 0);
	CHECK(t->run != MAP_FAILED);
	if (!load)
		return;
	memcpy(t->mem + CODE_ADDR, guest_code, sizeof(guest_code));
	CHECK_EQ(ioctl(t->vcpu, KVM_GET_SREGS, &s), 0);
	s.cs.base = 0;
	s.cs.selector = 0;
	CHECK_EQ(ioctl(t->vcpu, KVM_SET_SREGS, &s), 0);
	CHECK_EQ(ioctl(t->vcpu, KVM_SET_REGS, &regs), 0);
}

static void tvm_destroy(struct tvm *t)
{
	munmap(t->run, t->run_size);
	munmap(t->mem, MEM_SIZE);
	close(t->vcpu);
	close(t->vm);
}

/* Runs the guest to its next write to OUT_PORT; returns the value, or -1. */
static int next_out(struct tvm *t)
{
	for (int i = 0; i < 100; i++) {
		if (ioctl(t->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			printf("#   KVM_RUN: %s\n", strerror(errno));
			return -1;
		}
		if (t->run->exit_reason == KVM_EXIT_IO && t->run->io.port == OUT_PORT &&
		    t->run->io.direction == KVM_EXIT_IO_OUT && t->run->io.size == 2) {
			uint16_t v;

			memcpy(&v, (uint8_t *)t->run + t->run->io.data_offset, 2);
			return v;
		}
		printf("#   unexpected exit %u\n", t->run->exit_reason);
		return -1;
	}
	return -1;
}

/* As mica pauses a vCPU: a KVM_RUN with immediate_exit completes the pending PIO and returns. */
static void pause_vcpu(struct tvm *t)
{
	t->run->immediate_exit = 1;
	CHECK_EQ(ioctl(t->vcpu, KVM_RUN, 0), -1);
	CHECK_EQ(errno, EINTR);
	t->run->immediate_exit = 0;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* Writes one snapshot with a vCPU section and a VM section of the given bytes. */
static int write_snapshot(const char *name, const void *vcpu, size_t vcpu_len, const void *vm,
			  size_t vm_len)
{
	char path[128];
	struct snap_writer *w;
	struct err e = { "" };
	int err;

	path_of(path, sizeof(path), name);
	err = snap_writer_create(path, "test", &w, &e);
	if (err)
		return err;
	snap_begin(w, "kvm-vcpu.0", 1);
	snap_put(w, vcpu, vcpu_len);
	CHECK_EQ(snap_end(w), 0);
	snap_begin(w, "kvm-vm.0", 1);
	snap_put(w, vm, vm_len);
	CHECK_EQ(snap_end(w), 0);
	return snap_writer_finish(w, &e);
}

/* The saved sections, as bytes (malloc'd copies), from the snapshot the first test wrote. */
static uint8_t *saved_vcpu, *saved_vm;
static size_t saved_vcpu_len, saved_vm_len;

static int restore(struct tvm *t, const char *name, struct err *e)
{
	char path[128];
	struct snap_file *f;
	struct snap_cursor c;
	int err;

	path_of(path, sizeof(path), name);
	err = snap_open(path, &f, e);
	if (err)
		return err;
	uint64_t advance_ns = 0;

	err = snap_section(f, "kvm-vm.0", &c);
	if (!err)
		err = kvm_vm_restore(t->vm, &c, &advance_ns, e);
	if (!err)
		err = snap_section(f, "kvm-vcpu.0", &c);
	if (!err)
		err = kvm_vcpu_restore(kvm_fd, t->vcpu, advance_ns, &c, e);
	snap_close(f);
	return err;
}

/* The vCPU's TSC (MSR 0x10). */
static uint64_t guest_tsc(int vcpu)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m = { .hdr.nmsrs = 1, .e.index = 0x10 };

	CHECK_EQ(ioctl(vcpu, KVM_GET_MSRS, &m), 1);
	return m.e.data;
}

/* Saved after SAVED_AT writes, restored into a fresh VM (RAM copied as a RAM section would
 * be), the guest's count goes on from SAVED_AT + 1; the kvmclock page is rewritten by KVM in the
 * new VM (its MSR came back) and shows the time spent saved as passed, and so does the TSC (a
 * guest whose clocksource is the TSC keeps the right time). */
static void test_guest_continues(void)
{
	struct tvm a, b;
	struct kvm_clock_data before = { 0 };
	struct snap_writer *w;
	struct snap_file *f;
	struct snap_cursor c;
	struct pvclock pv;
	struct err e = { "" };
	char path[128];
	uint64_t rt_saved, rt_restore, tsc_saved, tsc_restored;
	int khz;
	const struct timespec pause = { PAUSE_NS / 1000000000, PAUSE_NS % 1000000000 };

	if (!kvm_usable())
		TEST_SKIP("no /dev/kvm");
	tvm_create(&a, true);
	for (int i = 1; i <= SAVED_AT; i++)
		CHECK_EQ(next_out(&a), i);
	pause_vcpu(&a);
	memcpy(&pv, a.mem + PVCLOCK_ADDR, sizeof(pv));
	CHECK(pv.version != 0); /* the guest's wrmsr turned kvmclock on */

	CHECK_EQ(ioctl(a.vm, KVM_GET_CLOCK, &before), 0);
	tsc_saved = guest_tsc(a.vcpu);
	printf("#   KVM_GET_CLOCK flags 0x%x (realtime %s)\n", before.flags,
	       before.flags & KVM_CLOCK_REALTIME ? "from KVM" : "added by mica");
	path_of(path, sizeof(path), "good.snap");
	CHECK_EQ(snap_writer_create(path, "test", &w, &e), 0);
	snap_begin(w, "kvm-vcpu.0", 1);
	CHECK_EQ(kvm_vcpu_save(kvm_fd, a.vcpu, w, &e), 0);
	CHECK_EQ(snap_end(w), 0);
	snap_begin(w, "kvm-vm.0", 1);
	CHECK_EQ(kvm_vm_save(a.vm, w, &e), 0);
	CHECK_EQ(snap_end(w), 0);
	CHECK_EQ(snap_writer_finish(w, &e), 0);
	rt_saved = realtime_ns();
	if (e.msg[0])
		printf("#   %s\n", e.msg);

	/* Keep the sections' bytes for the damage tests. */
	CHECK_EQ(snap_open(path, &f, &e), 0);
	CHECK_EQ(snap_section(f, "kvm-vcpu.0", &c), 0);
	saved_vcpu_len = c.size;
	saved_vcpu = malloc(c.size);
	snap_get(&c, saved_vcpu, c.size);
	CHECK_EQ(snap_section(f, "kvm-vm.0", &c), 0);
	saved_vm_len = c.size;
	saved_vm = malloc(c.size);
	snap_get(&c, saved_vm, c.size);
	snap_close(f);

	nanosleep(&pause, NULL);
	tvm_create(&b, false);
	memcpy(b.mem, a.mem, MEM_SIZE);
	memset(b.mem + PVCLOCK_ADDR, 0, sizeof(pv));
	rt_restore = realtime_ns();
	CHECK_EQ(restore(&b, "good.snap", &e), 0);
	if (e.msg[0])
		printf("#   %s\n", e.msg);
	/* Before b runs: its TSC is the saved one moved on by at least the pause (at the TSC's
	 * rate); restored as saved it would be short of it by nearly all of the pause. */
	tsc_restored = guest_tsc(b.vcpu);
	khz = ioctl(b.vcpu, KVM_GET_TSC_KHZ);
	printf("#   TSC %lu -> %lu (%d kHz)\n", (unsigned long)tsc_saved, (unsigned long)tsc_restored,
	       khz);
	CHECK(khz > 0);
	CHECK(tsc_restored >= tsc_saved + (uint64_t)khz * (PAUSE_NS / 1000000));
	for (int i = SAVED_AT + 1; i <= SAVED_AT + 3; i++)
		CHECK_EQ(next_out(&b), i);
	/* The saved VM goes on in step. */
	CHECK_EQ(next_out(&a), SAVED_AT + 1);

	memcpy(&pv, b.mem + PVCLOCK_ADDR, sizeof(pv));
	CHECK(pv.version != 0);
	/* The clock at restore is at least the saved one plus the realtime between the save and
	 * the restore (which includes the pause); without the advance it would be short of it. */
	CHECK(pv.system_time >= before.clock + (rt_restore - rt_saved));
	CHECK(pv.system_time >= before.clock + PAUSE_NS);
	tvm_destroy(&a);
	tvm_destroy(&b);
}

/* Walks a vCPU section's items to the one with tag; returns its offset (of the tag), or -1. */
static long find_item(const uint8_t *p, size_t len, uint32_t tag)
{
	for (size_t off = 0; off + 8 <= len;) {
		uint32_t t, l;

		memcpy(&t, p + off, 4);
		memcpy(&l, p + off + 4, 4);
		if (t == tag)
			return (long)off;
		off += 8 + (size_t)l;
	}
	return -1;
}

/* The fresh vCPU's registers, to see that a refused restore left them alone. */
static uint64_t vcpu_rip(struct tvm *t)
{
	struct kvm_regs r;

	CHECK_EQ(ioctl(t->vcpu, KVM_GET_REGS, &r), 0);
	return r.rip;
}

/* The snapshot of these sections is refused with want and msg; when untouched, the vCPU is
 * as created (its section was refused before any KVM_SET_*). */
static void expect_refused(const char *name, const void *vcpu, size_t vcpu_len, const void *vm,
			   size_t vm_len, int want, const char *msg, bool untouched)
{
	struct tvm t;
	struct err e = { "" };
	int err;

	CHECK_EQ(write_snapshot(name, vcpu, vcpu_len, vm, vm_len), 0);
	tvm_create(&t, false);
	err = restore(&t, name, &e);
	CHECK_EQ(err, want);
	if (!strstr(e.msg, msg)) {
		printf("#   %s: \"%s\" lacks \"%s\"\n", name, e.msg, msg);
		CHECK(false);
	}
	if (untouched)
		CHECK_EQ(vcpu_rip(&t), 0xfff0); /* the reset value */
	tvm_destroy(&t);
}

static void test_damage_refused(void)
{
	uint8_t *p;
	long regs;

	if (!kvm_usable())
		TEST_SKIP("no /dev/kvm");
	if (!saved_vcpu)
		TEST_SKIP("no saved state (the first test failed)");
	p = malloc(saved_vcpu_len + 1);
	/* Cut: the last byte, or half. */
	expect_refused("cut1.snap", saved_vcpu, saved_vcpu_len - 1, saved_vm, saved_vm_len,
		       -EBADMSG, "snapshot: vCPU state is damaged (section kvm-vcpu.0: pending events",
		       true);
	expect_refused("cut2.snap", saved_vcpu, saved_vcpu_len / 2, saved_vm, saved_vm_len,
		       -EBADMSG, "snapshot: vCPU state is damaged", true);
	/* A byte too many. */
	memcpy(p, saved_vcpu, saved_vcpu_len);
	p[saved_vcpu_len] = 0;
	expect_refused("long.snap", p, saved_vcpu_len + 1, saved_vm, saved_vm_len, -EBADMSG,
		       "bytes after its last item", true);
	/* The registers' length field 8 bytes short (their bytes are all there). */
	regs = find_item(p, saved_vcpu_len, KVM_STATE_REGS);
	CHECK(regs >= 0);
	if (regs >= 0) {
		uint32_t l;

		memcpy(&l, p + regs + 4, 4);
		l -= 8;
		memcpy(p + regs + 4, &l, 4);
		expect_refused("size.snap", p, saved_vcpu_len, saved_vm, saved_vm_len, -EBADMSG,
			       "registers of the wrong size", true);
	}
	/* The VM's section cut (the vCPU's is good: it comes second, so nothing is restored). */
	expect_refused("vmcut.snap", saved_vcpu, saved_vcpu_len, saved_vm, saved_vm_len - 4,
		       -EBADMSG, "snapshot: the VM's KVM state is damaged (section kvm-vm.0: kvmclock",
		       true);
	free(p);
}

/* An MSR this KVM does not have is an error naming it, not dropped. */
static void test_unknown_msr_refused(void)
{
	uint8_t *p;
	long msrs;

	if (!kvm_usable())
		TEST_SKIP("no /dev/kvm");
	if (!saved_vcpu)
		TEST_SKIP("no saved state (the first test failed)");
	p = malloc(saved_vcpu_len);
	memcpy(p, saved_vcpu, saved_vcpu_len);
	msrs = find_item(p, saved_vcpu_len, KVM_STATE_MSRS);
	CHECK(msrs >= 0);
	if (msrs >= 0) {
		uint32_t l, bogus = 0x0badc0de;

		memcpy(&l, p + msrs + 4, 4);
		printf("#   %zu MSRs saved\n", l / sizeof(struct kvm_msr_entry));
		CHECK(l >= sizeof(struct kvm_msr_entry) * 5); /* TSC, kvmclock... */
		/* The third entry: the first two go through, in the same chunk. */
		memcpy(p + msrs + 8 + 2 * sizeof(struct kvm_msr_entry), &bogus, 4);
		expect_refused("msr.snap", p, saved_vcpu_len, saved_vm, saved_vm_len, -EOPNOTSUPP,
			       "snapshot was taken on another CPU or KVM: MSR 0xbadc0de is refused",
			       false);
	}
	free(p);
}

/* An XSAVE area of another size than this host's (another CPU's, or one with AMX allowed) is
 * refused as such; nothing is restored (the section is read whole first). */
static void test_other_xsave_size_refused(void)
{
	const size_t more = 64;
	uint8_t *p;
	long x;

	if (!kvm_usable())
		TEST_SKIP("no /dev/kvm");
	if (!saved_vcpu)
		TEST_SKIP("no saved state (the first test failed)");
	x = find_item(saved_vcpu, saved_vcpu_len, KVM_STATE_XSAVE);
	CHECK(x >= 0);
	if (x < 0)
		return;
	p = calloc(1, saved_vcpu_len + more);
	{
		uint32_t l;
		size_t head = (size_t)x + 8;

		memcpy(&l, saved_vcpu + x + 4, 4);
		memcpy(p, saved_vcpu, head + l);
		memcpy(p + head + l + more, saved_vcpu + head + l, saved_vcpu_len - head - l);
		l += more;
		memcpy(p + x + 4, &l, 4);
	}
	expect_refused("xsave.snap", p, saved_vcpu_len + more, saved_vm, saved_vm_len, -EOPNOTSUPP,
		       "snapshot was taken on another CPU or KVM: its XSAVE area is", true);
	free(p);
}

static void test_identity(void)
{
	char a[SNAP_IDENTITY_MAX], b[SNAP_IDENTITY_MAX], tiny[8];

	if (!kvm_usable())
		TEST_SKIP("no /dev/kvm");
	CHECK_EQ(kvm_state_identity(kvm_fd, a, sizeof(a)), 0);
	CHECK_EQ(kvm_state_identity(kvm_fd, b, sizeof(b)), 0);
	CHECK(!strcmp(a, b));
	CHECK(strstr(a, " cpuid:") && strstr(a, " msrs:"));
	CHECK(strlen(a) < 80);
	printf("#   identity: %s\n", a);
	CHECK_EQ(kvm_state_identity(kvm_fd, tiny, sizeof(tiny)), -ENOSPC);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "%s/test_kvm_state.XXXXXX", getenv("TMPDIR") ?: "/tmp");
	if (!mkdtemp(dir))
		snprintf(dir, sizeof(dir), ".");
}

static void test_cleanup(void)
{
	static const char *names[] = { "good.snap", "cut1.snap", "cut2.snap", "long.snap",
				       "size.snap", "vmcut.snap", "msr.snap", "xsave.snap" };
	char path[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		path_of(path, sizeof(path), names[i]);
		unlink(path);
	}
	rmdir(dir);
	free(saved_vcpu);
	free(saved_vm);
}

static void test_setup(void)
{
	setup();
}

TEST_MAIN("kvm_state", T(test_setup), T(test_guest_continues), T(test_damage_refused),
	  T(test_unknown_msr_refused), T(test_other_xsave_size_refused), T(test_identity),
	  T(test_cleanup))
