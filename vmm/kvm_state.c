/* KVM's own state of a VM in snapshot sections (the format and the rules: vmm/kvm_state.h). */
#include <cpuid.h>
#include <errno.h>
#include <linux/kvm.h>
#include <linux/kvm_para.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "vmm/kvm_state.h"

/* Architectural MSR indices (not in the UAPI headers; kvmclock's come from <asm/kvm_para.h>). */
#define MSR_IA32_TSC          0x10
#define MSR_IA32_TSC_ADJUST   0x3b
#define MSR_IA32_TSC_DEADLINE 0x6e0

/* KVM_GET/SET_MSRS take fewer than 256 entries per call (KVM's MAX_IO_MSRS). */
#define MSR_CHUNK 64
/* Far above any CPU's XSAVE area (AMX makes it ~11 KiB): a larger length is damage. */
#define XSAVE_MAX (1u << 20)

/* Saved whatever KVM's index list says: the kvmclock and TSC MSRs a guest's time depends on. */
static const uint32_t msrs_always[] = {
	MSR_IA32_TSC, MSR_IA32_TSC_ADJUST, MSR_IA32_TSC_DEADLINE,
	MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_WALL_CLOCK_NEW,
};

struct msr_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[MSR_CHUNK];
};

static const char *tag_name(uint32_t tag)
{
	switch (tag) {
	case KVM_STATE_MP_STATE: return "MP state";
	case KVM_STATE_REGS: return "registers";
	case KVM_STATE_SREGS: return "segment registers";
	case KVM_STATE_XSAVE: return "XSAVE area";
	case KVM_STATE_XCRS: return "XCRs";
	case KVM_STATE_DEBUGREGS: return "debug registers";
	case KVM_STATE_LAPIC: return "LAPIC";
	case KVM_STATE_MSRS: return "MSRs";
	case KVM_STATE_VCPU_EVENTS: return "pending events";
	case KVM_STATE_PIC_MASTER: return "master PIC";
	case KVM_STATE_PIC_SLAVE: return "slave PIC";
	case KVM_STATE_IOAPIC: return "IOAPIC";
	case KVM_STATE_PIT: return "PIT";
	case KVM_STATE_CLOCK: return "kvmclock";
	default: return "?";
	}
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- saving ---- */

static void put_item(struct snap_writer *w, uint32_t tag, const void *data, uint32_t len)
{
	snap_put_u32(w, tag);
	snap_put_u32(w, len);
	snap_put(w, data, len);
}

/* Reads one KVM struct with a GET ioctl and writes it as an item. */
static int save_one(int fd, unsigned long req, uint32_t tag, void *buf, uint32_t len,
		    struct snap_writer *w, struct err *e)
{
	if (ioctl(fd, req, buf) < 0)
		return err_set(e, -errno, "snapshot: cannot read the %s from KVM: %s", tag_name(tag),
			       strerror(errno));
	put_item(w, tag, buf, len);
	return 0;
}

/* The XSAVE area's size on this host: KVM_CAP_XSAVE2's (at least struct kvm_xsave's), or 0
 * when KVM has no KVM_GET_XSAVE2 (then struct kvm_xsave through KVM_GET_XSAVE). */
static int xsave2_size(int kvm_fd)
{
	int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	if (n <= 0)
		return 0;
	return n < (int)sizeof(struct kvm_xsave) ? (int)sizeof(struct kvm_xsave) : n;
}

static uint32_t xsave_size(int kvm_fd)
{
	int n = xsave2_size(kvm_fd);

	return n ? (uint32_t)n : (uint32_t)sizeof(struct kvm_xsave);
}

/* KVM's MSR index list plus msrs_always (those not in it), in *out (malloc'd); 0 or -errno. */
static int msr_list(int kvm_fd, uint32_t **out, uint32_t *n)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	struct kvm_msr_list *l;
	uint32_t cnt, *idx;

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return -errno;
	if (probe.nmsrs > KVM_STATE_MAX_MSRS - sizeof(msrs_always) / sizeof(msrs_always[0]))
		return -E2BIG;
	l = malloc(sizeof(*l) + (probe.nmsrs + sizeof(msrs_always) / sizeof(msrs_always[0])) *
		   sizeof(uint32_t));
	if (!l)
		return -ENOMEM;
	l->nmsrs = probe.nmsrs;
	if (probe.nmsrs && ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		int err = -errno;

		free(l);
		return err;
	}
	cnt = l->nmsrs;
	for (size_t i = 0; i < sizeof(msrs_always) / sizeof(msrs_always[0]); i++) {
		bool have = false;

		for (uint32_t j = 0; j < cnt && !have; j++)
			have = l->indices[j] == msrs_always[i];
		if (!have)
			l->indices[cnt++] = msrs_always[i];
	}
	idx = malloc(cnt * sizeof(uint32_t) + 1);
	if (!idx) {
		free(l);
		return -ENOMEM;
	}
	memcpy(idx, l->indices, cnt * sizeof(uint32_t));
	free(l);
	*out = idx;
	*n = cnt;
	return 0;
}

/* Every MSR of the list KVM_GET_MSRS can read, in chunks: KVM stops a chunk at the first MSR it
 * cannot read (one this CPU or the guest's CPUID lacks) and returns how many it read; that one
 * is skipped (as QEMU and Firecracker leave out what the host does not have). */
static int save_msrs(int kvm_fd, int vcpu_fd, struct snap_writer *w, struct err *e)
{
	struct msr_buf b;
	struct kvm_msr_entry *saved;
	uint32_t *idx, n, nsaved = 0;
	int err = msr_list(kvm_fd, &idx, &n);

	if (err)
		return err_set(e, err, "snapshot: cannot read KVM's MSR list: %s", strerror(-err));
	saved = malloc(n * sizeof(*saved) + 1);
	if (!saved) {
		free(idx);
		return err_set(e, -ENOMEM, "snapshot: out of memory");
	}
	for (uint32_t i = 0; i < n;) {
		uint32_t chunk = n - i < MSR_CHUNK ? n - i : MSR_CHUNK;
		int got;

		memset(&b, 0, sizeof(b));
		b.hdr.nmsrs = chunk;
		for (uint32_t j = 0; j < chunk; j++)
			b.e[j].index = idx[i + j];
		got = ioctl(vcpu_fd, KVM_GET_MSRS, &b);
		if (got < 0 || (uint32_t)got > chunk) {
			int errnum = got < 0 ? errno : EIO;

			err = err_set(e, -errnum, "snapshot: cannot read the vCPU's MSRs from KVM: %s",
				      strerror(errnum));
			goto out;
		}
		memcpy(&saved[nsaved], b.e, got * sizeof(b.e[0]));
		nsaved += got;
		i += got;
		if ((uint32_t)got < chunk)
			i++; /* idx[i] is unreadable here */
	}
	put_item(w, KVM_STATE_MSRS, saved, nsaved * sizeof(*saved));
out:
	free(saved);
	free(idx);
	return err;
}

int kvm_vcpu_save(int kvm_fd, int vcpu_fd, struct snap_writer *w, struct err *e)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	int x2 = xsave2_size(kvm_fd);
	uint32_t xlen = xsave_size(kvm_fd);
	struct kvm_xsave *xsave = calloc(1, xlen);
	int err;

	if (!xsave)
		return err_set(e, -ENOMEM, "snapshot: out of memory");
	/* The order of the items (kvm_state.h): MP state first, events last. */
	err = save_one(vcpu_fd, KVM_GET_MP_STATE, KVM_STATE_MP_STATE, &mp, sizeof(mp), w, e);
	if (!err)
		err = save_one(vcpu_fd, KVM_GET_REGS, KVM_STATE_REGS, &regs, sizeof(regs), w, e);
	if (!err)
		err = save_one(vcpu_fd, KVM_GET_SREGS, KVM_STATE_SREGS, &sregs, sizeof(sregs), w, e);
	if (!err)
		err = save_one(vcpu_fd, x2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, KVM_STATE_XSAVE, xsave,
			       xlen, w, e);
	if (!err)
		err = save_one(vcpu_fd, KVM_GET_XCRS, KVM_STATE_XCRS, &xcrs, sizeof(xcrs), w, e);
	if (!err)
		err = save_one(vcpu_fd, KVM_GET_DEBUGREGS, KVM_STATE_DEBUGREGS, &dregs, sizeof(dregs),
			       w, e);
	if (!err)
		err = save_one(vcpu_fd, KVM_GET_LAPIC, KVM_STATE_LAPIC, &lapic, sizeof(lapic), w, e);
	if (!err)
		err = save_msrs(kvm_fd, vcpu_fd, w, e);
	if (!err)
		err = save_one(vcpu_fd, KVM_GET_VCPU_EVENTS, KVM_STATE_VCPU_EVENTS, &events,
			       sizeof(events), w, e);
	free(xsave);
	return err;
}

/* ---- reading back ---- */

/* Reads an item's header: it must be tag, with a length that fits in what is left. */
static int item_len(struct snap_cursor *c, uint32_t tag, uint32_t *len, const char **why)
{
	uint32_t t = snap_get_u32(c), l = snap_get_u32(c);

	if (c->err) {
		*why = "missing";
		return -EBADMSG;
	}
	if (t != tag) {
		*why = "another item in its place";
		return -EBADMSG;
	}
	if (l > c->size - c->off) {
		*why = "cut short";
		return -EBADMSG;
	}
	*len = l;
	return 0;
}

/* An item holding one struct of exactly len bytes. */
static int get_fixed(struct snap_cursor *c, uint32_t tag, void *dst, uint32_t len,
		     const char **why)
{
	uint32_t l;
	int err = item_len(c, tag, &l, why);

	if (err)
		return err;
	if (l != len) {
		*why = "of the wrong size";
		return -EBADMSG;
	}
	snap_get(c, dst, len);
	return c->err ? -EBADMSG : 0;
}

/* ---- vCPU restore ---- */

struct vcpu_state {
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave *xsave;    /* xsave_len bytes */
	uint32_t xsave_len;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs dregs;
	struct kvm_lapic_state lapic;
	struct kvm_msr_entry *msrs; /* nmsrs */
	uint32_t nmsrs;
	struct kvm_vcpu_events events;
};

/* Reads the whole section into s, checking every item's tag and size; nothing touches KVM. */
static int vcpu_parse(int kvm_fd, struct snap_cursor *c, struct vcpu_state *s, struct err *e)
{
	const struct { uint32_t tag; void *dst; uint32_t len; } fixed_head[] = {
		{ KVM_STATE_MP_STATE, &s->mp, sizeof(s->mp) },
		{ KVM_STATE_REGS, &s->regs, sizeof(s->regs) },
		{ KVM_STATE_SREGS, &s->sregs, sizeof(s->sregs) },
	}, fixed_mid[] = {
		{ KVM_STATE_XCRS, &s->xcrs, sizeof(s->xcrs) },
		{ KVM_STATE_DEBUGREGS, &s->dregs, sizeof(s->dregs) },
		{ KVM_STATE_LAPIC, &s->lapic, sizeof(s->lapic) },
	};
	const char *why = NULL;
	uint32_t tag = 0, len;
	int err = 0;

	for (size_t i = 0; i < 3 && !err; i++) {
		tag = fixed_head[i].tag;
		err = get_fixed(c, tag, fixed_head[i].dst, fixed_head[i].len, &why);
	}
	if (!err) {
		tag = KVM_STATE_XSAVE;
		err = item_len(c, tag, &len, &why);
	}
	if (!err && (len < sizeof(struct kvm_xsave) || len > XSAVE_MAX)) {
		why = "of the wrong size";
		err = -EBADMSG;
	}
	if (!err) {
		uint32_t here = xsave_size(kvm_fd);

		if (len != here)
			return err_set(e, -EOPNOTSUPP, "snapshot was taken on another CPU or KVM: "
				       "its XSAVE area is %u bytes, this host's %u", len, here);
		s->xsave = malloc(len);
		if (!s->xsave)
			return err_set(e, -ENOMEM, "snapshot: out of memory");
		s->xsave_len = len;
		snap_get(c, s->xsave, len);
		err = c->err ? -EBADMSG : 0;
	}
	for (size_t i = 0; i < 3 && !err; i++) {
		tag = fixed_mid[i].tag;
		err = get_fixed(c, tag, fixed_mid[i].dst, fixed_mid[i].len, &why);
	}
	if (!err) {
		tag = KVM_STATE_MSRS;
		err = item_len(c, tag, &len, &why);
	}
	if (!err && (len % sizeof(struct kvm_msr_entry) ||
		     len / sizeof(struct kvm_msr_entry) > KVM_STATE_MAX_MSRS)) {
		why = "of the wrong size";
		err = -EBADMSG;
	}
	if (!err) {
		s->nmsrs = len / sizeof(struct kvm_msr_entry);
		s->msrs = malloc(len + 1);
		if (!s->msrs)
			return err_set(e, -ENOMEM, "snapshot: out of memory");
		snap_get(c, s->msrs, len);
		err = c->err ? -EBADMSG : 0;
	}
	if (!err) {
		tag = KVM_STATE_VCPU_EVENTS;
		err = get_fixed(c, tag, &s->events, sizeof(s->events), &why);
	}
	if (!err && snap_cursor_end(c)) {
		return err_set(e, -EBADMSG, "snapshot: vCPU state is damaged (section %s: bytes "
			       "after its last item)", c->name);
	}
	if (err)
		return err_set(e, err, "snapshot: vCPU state is damaged (section %s: %s %s)",
			       c->name, tag_name(tag), why ? why : "cut short");
	return 0;
}

static int refused(struct err *e, uint32_t tag, int errnum)
{
	return err_set(e, -errnum, "snapshot: KVM refuses the saved %s: %s", tag_name(tag),
		       strerror(errnum));
}

/* Writes the saved MSRs in chunks. One KVM refuses is an error naming it (this host lacks it),
 * unless the vCPU reads back exactly the saved value (nothing would be lost). */
static int restore_msrs(int vcpu_fd, const struct kvm_msr_entry *m, uint32_t n, struct err *e)
{
	struct msr_buf b;

	for (uint32_t i = 0; i < n;) {
		uint32_t chunk = n - i < MSR_CHUNK ? n - i : MSR_CHUNK;
		int set;

		memset(&b, 0, sizeof(b));
		b.hdr.nmsrs = chunk;
		for (uint32_t j = 0; j < chunk; j++) {
			b.e[j].index = m[i + j].index;
			b.e[j].data = m[i + j].data;
		}
		set = ioctl(vcpu_fd, KVM_SET_MSRS, &b);
		if (set < 0)
			return refused(e, KVM_STATE_MSRS, errno);
		if ((uint32_t)set > chunk)
			return err_set(e, -EIO, "snapshot: KVM_SET_MSRS set more MSRs than given");
		i += set;
		if ((uint32_t)set < chunk) {
			struct {
				struct kvm_msrs hdr;
				struct kvm_msr_entry e1;
			} one = { .hdr.nmsrs = 1, .e1.index = m[i].index };

			if (ioctl(vcpu_fd, KVM_GET_MSRS, &one) != 1 || one.e1.data != m[i].data)
				return err_set(e, -EOPNOTSUPP, "snapshot was taken on another CPU "
					       "or KVM: MSR 0x%x is refused", m[i].index);
			i++;
		}
	}
	return 0;
}

/* On AMD, the TR a guest loaded sits in the VMCB with its descriptor type "available" (9):
 * the CPU marks the descriptor busy in the GDT, not in the cached copy, and KVM's
 * KVM_GET_SREGS sets the busy bit (11) on the way out to look like Intel (svm_get_segment).
 * Given back as 11, the cached type differs from what the guest ran with: real AMD hardware
 * never looks at it in long mode, but an emulated AMD CPU (QEMU's, under scripts/with-kvm)
 * then refuses every user-space IN/OUT that the TSS's I/O bitmap allows (ioperm), as a guest's
 * init reporting its status does. So on AMD the busy bit goes back to what the VMCB held.
 * Intel's VM entry requires the busy type, which is what KVM reported. */
static void tr_as_amd_holds_it(struct kvm_sregs *sregs)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(0, &a, &b, &c, &d))
		return;
	/* "AuthenticAMD" / "HygonGenuine": ebx "Auth" / "Hygo". */
	if ((b == 0x68747541 || b == 0x6f677948) && sregs->tr.type == 11)
		sregs->tr.type = 9;
}

/* The order of the KVM_SET_* calls matters (cf. QEMU's kvm_arch_put_registers and
 * Firecracker's vstate/vcpu):
 *  - REGS before VCPU_EVENTS: KVM_SET_REGS drops a pending exception, which the events restore.
 *  - SREGS before LAPIC and MSRs: it sets CR0/CR4/EFER and the APIC base MSR, which decides the
 *    LAPIC's mode (xAPIC/x2APIC, enabled) that KVM_SET_LAPIC's registers are read in; and
 *    before MP_STATE: KVM_SET_SREGS makes a BSP at the reset vector runnable.
 *  - XSAVE, then XCRS (XCR0 is checked against the guest's CPUID, set at creation).
 *  - LAPIC before MSRs: KVM ignores a TSC-deadline MSR write unless the LAPIC timer is in
 *    TSC-deadline mode.
 *  - MP_STATE after the LAPIC (INIT/SIPI states live in its pending events) and before
 *    VCPU_EVENTS, whose SMM part (latched INIT, pending SMI) KVM_SET_MP_STATE checks against.
 *  - VCPU_EVENTS last: pending exception, interrupt, NMI, SIPI vector and interrupt shadow,
 *    which any earlier SET may reset. */
static int vcpu_apply(int vcpu_fd, struct vcpu_state *s, struct err *e)
{
	int err;

	if (ioctl(vcpu_fd, KVM_SET_REGS, &s->regs) < 0)
		return refused(e, KVM_STATE_REGS, errno);
	tr_as_amd_holds_it(&s->sregs);
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s->sregs) < 0)
		return refused(e, KVM_STATE_SREGS, errno);
	if (ioctl(vcpu_fd, KVM_SET_XSAVE, s->xsave) < 0)
		return refused(e, KVM_STATE_XSAVE, errno);
	if (ioctl(vcpu_fd, KVM_SET_XCRS, &s->xcrs) < 0)
		return refused(e, KVM_STATE_XCRS, errno);
	if (ioctl(vcpu_fd, KVM_SET_DEBUGREGS, &s->dregs) < 0)
		return refused(e, KVM_STATE_DEBUGREGS, errno);
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &s->lapic) < 0)
		return refused(e, KVM_STATE_LAPIC, errno);
	err = restore_msrs(vcpu_fd, s->msrs, s->nmsrs, e);
	if (err)
		return err;
	if (ioctl(vcpu_fd, KVM_SET_MP_STATE, &s->mp) < 0)
		return refused(e, KVM_STATE_MP_STATE, errno);
	/* KVM_GET_VCPU_EVENTS always fills nmi.pending and sipi_vector but does not flag them
	 * valid: without these flags KVM_SET_VCPU_EVENTS would leave them out. */
	s->events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;
	if (ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &s->events) < 0)
		return refused(e, KVM_STATE_VCPU_EVENTS, errno);
	return 0;
}

/* The guest's TSC moves on by the advance_ns kvmclock was moved on by (restore_clock): a guest
 * whose clocksource is the TSC (Linux's choice with an invariant TSC, which KVM's CPUID offers)
 * keeps its wall clock right too, and kvmclock stays consistent with the TSC. Every vCPU gets
 * the same advance; KVM takes a TSC written within 1 s of the one it expects (its last write
 * plus the time since) as a synchronization, so vCPUs saved in step stay in step. */
static void advance_tsc(int vcpu_fd, struct vcpu_state *s, uint64_t advance_ns)
{
	int khz = advance_ns ? ioctl(vcpu_fd, KVM_GET_TSC_KHZ) : 0;

	if (khz <= 0)
		return;
	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msrs[i].index == MSR_IA32_TSC)
			s->msrs[i].data += advance_ns / 1000000 * (uint64_t)khz +
					   advance_ns % 1000000 * (uint64_t)khz / 1000000;
}

int kvm_vcpu_restore(int kvm_fd, int vcpu_fd, uint64_t advance_ns, struct snap_cursor *c,
		     struct err *e)
{
	struct vcpu_state s = { 0 };
	int err = vcpu_parse(kvm_fd, c, &s, e);

	if (!err) {
		advance_tsc(vcpu_fd, &s, advance_ns);
		err = vcpu_apply(vcpu_fd, &s, e);
	}
	free(s.xsave);
	free(s.msrs);
	return err;
}

/* ---- the VM ---- */

static const struct { uint32_t tag; uint32_t chip_id; } chips[] = {
	{ KVM_STATE_PIC_MASTER, KVM_IRQCHIP_PIC_MASTER },
	{ KVM_STATE_PIC_SLAVE, KVM_IRQCHIP_PIC_SLAVE },
	{ KVM_STATE_IOAPIC, KVM_IRQCHIP_IOAPIC },
};

int kvm_vm_save(int vm_fd, struct snap_writer *w, struct err *e)
{
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	int err = 0;

	for (size_t i = 0; i < 3 && !err; i++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = chips[i].chip_id;
		err = save_one(vm_fd, KVM_GET_IRQCHIP, chips[i].tag, &chip, sizeof(chip), w, e);
	}
	if (!err)
		err = save_one(vm_fd, KVM_GET_PIT2, KVM_STATE_PIT, &pit, sizeof(pit), w, e);
	if (err)
		return err;
	if (ioctl(vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return err_set(e, -errno, "snapshot: cannot read the %s from KVM: %s",
			       tag_name(KVM_STATE_CLOCK), strerror(errno));
	/* clock.realtime is the host's CLOCK_REALTIME at the instant of clock.clock, what a
	 * restore advances from. KVM gives it (KVM_CLOCK_REALTIME) only from Linux 5.16 and only
	 * with its master clock (a stable TSC); otherwise it is read here, right after: off by
	 * the microseconds between the two reads. */
	if (!(clock.flags & KVM_CLOCK_REALTIME)) {
		clock.realtime = realtime_ns();
		clock.flags |= KVM_CLOCK_REALTIME;
	}
	put_item(w, KVM_STATE_CLOCK, &clock, sizeof(clock));
	return 0;
}

/* kvmclock after a restore: the time the VM spent saved passes for the guest, as for a laptop
 * that was suspended, so its wall clock is right when it runs again (its monotonic clock jumps
 * forward by that much; timers that expired meanwhile fire at once).
 *  - KVM_SET_CLOCK is given the saved realtime with KVM_CLOCK_REALTIME (Linux >= 5.16) and
 *    itself advances the clock by the host realtime elapsed since, at the instant it sets it
 *    (never backwards, if this host's clock is behind the saving one's).
 *  - A KVM that refuses the flag (< 5.16) gets the same advance computed here.
 *  - A section without a saved realtime (the flag clear: not written by kvm_vm_save, which
 *    always sets it) resumes at the saved value.
 * How far the clock moved on goes to *advance_ns: the vCPUs' TSCs move on as much
 * (kvm_vcpu_restore), and KVM recomputes each vCPU's pvclock page from the new clock and TSC. */
static int restore_clock(int vm_fd, const struct kvm_clock_data *saved, uint64_t *advance_ns,
			 struct err *e)
{
	struct kvm_clock_data c = { .clock = saved->clock }, now_clock = { 0 };
	uint64_t now;

	*advance_ns = 0;
	if (saved->flags & KVM_CLOCK_REALTIME) {
		c.flags = KVM_CLOCK_REALTIME;
		c.realtime = saved->realtime;
		if (ioctl(vm_fd, KVM_SET_CLOCK, &c) == 0) {
			if (ioctl(vm_fd, KVM_GET_CLOCK, &now_clock) == 0 &&
			    now_clock.clock > saved->clock)
				*advance_ns = now_clock.clock - saved->clock;
			return 0;
		}
		if (errno != EINVAL)
			return refused(e, KVM_STATE_CLOCK, errno);
		now = realtime_ns();
		c = (struct kvm_clock_data){ .clock = saved->clock };
		if (now > saved->realtime)
			c.clock += now - saved->realtime;
	}
	if (ioctl(vm_fd, KVM_SET_CLOCK, &c) < 0)
		return refused(e, KVM_STATE_CLOCK, errno);
	*advance_ns = c.clock - saved->clock;
	return 0;
}

int kvm_vm_restore(int vm_fd, struct snap_cursor *c, uint64_t *advance_ns, struct err *e)
{
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	const char *why = NULL;
	uint32_t tag = 0;
	int err = 0;

	for (size_t i = 0; i < 3 && !err; i++) {
		tag = chips[i].tag;
		err = get_fixed(c, tag, &chip[i], sizeof(chip[i]), &why);
		if (!err && chip[i].chip_id != chips[i].chip_id) {
			why = "for another chip";
			err = -EBADMSG;
		}
	}
	if (!err) {
		tag = KVM_STATE_PIT;
		err = get_fixed(c, tag, &pit, sizeof(pit), &why);
	}
	if (!err) {
		tag = KVM_STATE_CLOCK;
		err = get_fixed(c, tag, &clock, sizeof(clock), &why);
	}
	if (err)
		return err_set(e, err, "snapshot: the VM's KVM state is damaged (section %s: %s %s)",
			       c->name, tag_name(tag), why ? why : "cut short");
	if (snap_cursor_end(c))
		return err_set(e, -EBADMSG, "snapshot: the VM's KVM state is damaged (section %s: "
			       "bytes after its last item)", c->name);
	/* The interrupt controllers, then the PIT whose output drives their pin 0 (it restarts
	 * its count from now), then the clock. */
	for (size_t i = 0; i < 3; i++)
		if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip[i]) < 0)
			return refused(e, chips[i].tag, errno);
	if (ioctl(vm_fd, KVM_SET_PIT2, &pit) < 0)
		return refused(e, KVM_STATE_PIT, errno);
	return restore_clock(vm_fd, &clock, advance_ns, e);
}

/* ---- identity ---- */

static uint32_t fnv1a(uint32_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

#define FNV_SEED 2166136261u

static struct kvm_cpuid2 *supported_cpuid(int kvm_fd)
{
	for (uint32_t n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG)
			return NULL;
	}
	return NULL;
}

int kvm_state_identity(int kvm_fd, char *out, size_t len)
{
	struct kvm_cpuid2 *c = supported_cpuid(kvm_fd);
	uint32_t *msrs, nmsrs, features = FNV_SEED, msr_hash, leaf1 = 0, n;
	char vendor[13] = "";
	unsigned family, model, stepping;
	int err;

	if (!c)
		return errno ? -errno : -ENOMEM;
	for (uint32_t i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *x = &c->entries[i];
		uint32_t v[6] = { x->function, x->index, x->eax, x->ebx, x->ecx, x->edx };

		switch (x->function) {
		case 0:
			memcpy(vendor, &x->ebx, 4);
			memcpy(vendor + 4, &x->edx, 4);
			memcpy(vendor + 8, &x->ecx, 4);
			break;
		case 1:
			leaf1 = x->eax;
			/* EBX: the APIC ID of the CPU this ran on and the host's topology. */
			v[3] = 0;
			/* fallthrough */
		case 7:
		case 0xd:
		case 0x80000001:
			features = fnv1a(features, v, sizeof(v));
			break;
		default:
			break;
		}
	}
	free(c);
	err = msr_list(kvm_fd, &msrs, &nmsrs);
	if (err)
		return err;
	msr_hash = fnv1a(FNV_SEED, msrs, nmsrs * sizeof(uint32_t));

	free(msrs);
	family = (leaf1 >> 8) & 0xf;
	model = (leaf1 >> 4) & 0xf;
	stepping = leaf1 & 0xf;
	if (family == 0xf)
		family += (leaf1 >> 20) & 0xff;
	if (family == 0x6 || family >= 0xf)
		model |= ((leaf1 >> 16) & 0xf) << 4;
	n = (uint32_t)snprintf(out, len, "%s %u/%u/%u cpuid:%08x msrs:%08x", vendor[0] ? vendor :
			       "unknown", family, model, stepping, features, msr_hash);
	return n >= len ? -ENOSPC : 0;
}
