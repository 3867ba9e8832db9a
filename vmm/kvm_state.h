/* KVM's own state of a VM, saved into and restored from snapshot sections: each vCPU's
 * registers, FPU/XSAVE, LAPIC, pending events and MSRs, and the VM-wide in-kernel devices (the
 * two 8259 PICs, the IOAPIC, the PIT) and kvmclock.
 *
 * A section's content is a sequence of items, each a u32 tag, a u32 byte length, then that many
 * bytes: a <linux/kvm.h> struct as KVM_GET_* filled it (the XSAVE area: as long as this host's
 * KVM_CAP_XSAVE2 size; the MSRs: an array of struct kvm_msr_entry). Items come in a fixed order
 * (the KVM_STATE_* tags below, in the order they are listed). A restore reads and checks the
 * whole section before its first KVM_SET_*: a missing, misplaced, short or wrong-sized item, or
 * bytes left over, is -EBADMSG ("snapshot: vCPU state is damaged (...)") with nothing changed.
 * What a restore cannot give the new vCPU (KVM refuses an MSR, the XSAVE area has another size
 * here) is -EOPNOTSUPP naming it: the snapshot was taken on another CPU or KVM.
 *
 * Both run with the vCPUs out of KVM_RUN (paused after an immediate_exit KVM_RUN, so a pending
 * PIO/MMIO exit is complete). A restore's target was created exactly as the saved VM's (same
 * irqchip, PIT, number of vCPUs, and each vCPU's KVM_SET_CPUID2 already done: the XSAVE, XCR0
 * and MSR checks depend on the guest's CPUID). Restore the VM (kvm_vm_restore) before its
 * vCPUs, as Firecracker does: KVM_SET_IRQCHIP re-delivers the IOAPIC's pending lines to the
 * LAPICs, whose restore then sets their saved IRR. */
#ifndef MICA_KVM_STATE_H
#define MICA_KVM_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot/snapshot.h"
#include "vmm/err.h"

/* The items' tags (values are part of the format: never renumber). A vCPU section holds them in
 * this order, which is also the order they are read from KVM (KVM_GET_MP_STATE first: it runs
 * kvm_apic_accept_events(), which may change the LAPIC and registers; KVM_GET_VCPU_EVENTS
 * last, after every GET that might still move an event). */
enum kvm_state_tag {
	KVM_STATE_MP_STATE = 1,   /* struct kvm_mp_state */
	KVM_STATE_REGS,           /* struct kvm_regs */
	KVM_STATE_SREGS,          /* struct kvm_sregs */
	KVM_STATE_XSAVE,          /* struct kvm_xsave, or the KVM_CAP_XSAVE2 size (>= 4096) */
	KVM_STATE_XCRS,           /* struct kvm_xcrs */
	KVM_STATE_DEBUGREGS,      /* struct kvm_debugregs */
	KVM_STATE_LAPIC,          /* struct kvm_lapic_state */
	KVM_STATE_MSRS,           /* n * struct kvm_msr_entry, n <= KVM_STATE_MAX_MSRS */
	KVM_STATE_VCPU_EVENTS,    /* struct kvm_vcpu_events */
	/* The VM's section: */
	KVM_STATE_PIC_MASTER = 0x100, /* struct kvm_irqchip, chip_id KVM_IRQCHIP_PIC_MASTER */
	KVM_STATE_PIC_SLAVE,      /* struct kvm_irqchip, chip_id KVM_IRQCHIP_PIC_SLAVE */
	KVM_STATE_IOAPIC,         /* struct kvm_irqchip, chip_id KVM_IRQCHIP_IOAPIC */
	KVM_STATE_PIT,            /* struct kvm_pit_state2 */
	KVM_STATE_CLOCK,          /* struct kvm_clock_data, realtime always set (kvm_vm_save) */
};

#define KVM_STATE_MAX_MSRS 4096

/* One vCPU's state as one section's content (the caller does snap_begin/snap_end). kvm_fd is
 * /dev/kvm's (the MSR index list, the XSAVE size). */
int kvm_vcpu_save(int kvm_fd, int vcpu_fd, struct snap_writer *w, struct err *e);
/* Reads back what kvm_vcpu_save wrote and gives it to the vCPU (see the top for the checks),
 * its TSC moved on by advance_ns (kvm_vm_restore's: the time the VM spent saved).
 * After -EBADMSG the vCPU is untouched; after another error it is half restored: drop the VM. */
int kvm_vcpu_restore(int kvm_fd, int vcpu_fd, uint64_t advance_ns, struct snap_cursor *c,
		     struct err *e);

/* The VM-wide in-kernel state: PIC master, PIC slave, IOAPIC (KVM_GET_IRQCHIP), PIT
 * (KVM_GET_PIT2), kvmclock (KVM_GET_CLOCK). The VM has an in-kernel irqchip and PIT. */
int kvm_vm_save(int vm_fd, struct snap_writer *w, struct err *e);
/* Restores them; kvmclock moves on by the host's realtime since the save, which goes to
 * *advance_ns for kvm_vcpu_restore (0 when it did not move). */
int kvm_vm_restore(int vm_fd, struct snap_cursor *c, uint64_t *advance_ns, struct err *e);

/* What a restore needs of this host, as one short line for the snapshot's identity: the CPU's
 * vendor, family, model and stepping (KVM_GET_SUPPORTED_CPUID leaves 0 and 1) and a hash of
 * KVM's supported CPUID feature leaves (1, 7, 0xd, 0x80000001) and of KVM's MSR index list, so
 * a snapshot from another CPU or KVM is refused up front. 0, or -errno (-ENOSPC: len is too
 * small). */
int kvm_state_identity(int kvm_fd, char *out, size_t len);

#endif
