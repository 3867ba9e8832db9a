#include "vmm/vcpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "confine/seccomp.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define CPUID_HYPERVISOR_BIT (1u << 31) /* leaf 1 ECX: "running under a hypervisor" */
#define CPUID_KVM_SIGNATURE_LEAF 0x40000000
#define CPUID_TIMING_LEAF 0x40000010
#define KVM_APIC_BUS_KHZ 1000000 /* KVM's LAPIC timer runs at 1 GHz */
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_EXTINT 0x7
#define APIC_MODE_NMI 0x4
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MISC_ENABLE_FAST_STRING 1ULL

/* KVM's supported CPUID, made this vCPU's: its APIC ID, and the hypervisor bit so guests look
 * for KVM's paravirtual leaves (0x40000000...) and use kvmclock instead of calibrating the TSC. */
static int vcpu_set_cpuid(struct vcpu *vcpu)
{
	const struct kvm_cpuid2 *src = vcpu->vm->cpuid;
	size_t size = sizeof(*src) + src->nent * sizeof(src->entries[0]);
	struct kvm_cpuid2 *c = malloc(size + sizeof(src->entries[0]));
	int tsc_khz = ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);
	int err = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, src, size);
	/* The timing leaf (as QEMU and VMware give it): TSC and APIC-bus frequencies in kHz, so a
	 * guest can turn cycles into time without calibrating. */
	if (tsc_khz > 0) {
		c->entries[c->nent++] = (struct kvm_cpuid_entry2){
			.function = CPUID_TIMING_LEAF, .eax = (uint32_t)tsc_khz,
			.ebx = KVM_APIC_BUS_KHZ };
	}
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ecx |= CPUID_HYPERVISOR_BIT;
			e->ebx = (e->ebx & 0x0000ffff) | ((uint32_t)vcpu->vm->ncpus << 16) |
				 ((uint32_t)vcpu->index << 24);
			if (vcpu->vm->ncpus > 1)
				e->edx |= 1u << 28; /* HTT: the logical-count field above is valid */
			break;
		case CPUID_KVM_SIGNATURE_LEAF:
			if (tsc_khz > 0 && e->eax < CPUID_TIMING_LEAF)
				e->eax = CPUID_TIMING_LEAF;
			break;
		case 0xb:
		case 0x1f:
			e->edx = vcpu->index; /* x2APIC ID */
			break;
		default:
			break;
		}
	}
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, c) < 0)
		err = -errno;
	free(c);
	return err;
}

/* LINT0 as ExtINT (the 8259 PIC's output) and LINT1 as NMI, as PC firmware leaves them, so a
 * guest using the PIC rather than the IOAPIC still gets its interrupts. */
static int vcpu_set_lapic_lints(struct vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	uint32_t *lint0 = (uint32_t *)&lapic.regs[APIC_LVT_LINT0];
	uint32_t *lint1 = (uint32_t *)&lapic.regs[APIC_LVT_LINT1];

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	*lint0 = (*lint0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
	*lint1 = (*lint1 & ~0x700u) | (APIC_MODE_NMI << 8);
	return ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0 ? -errno : 0;
}

static int vcpu_set_fpu_and_msrs(struct vcpu *vcpu)
{
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} msrs = { .hdr.nmsrs = 1, .e[0] = { .index = MSR_IA32_MISC_ENABLE,
					       .data = MISC_ENABLE_FAST_STRING } };

	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;
	if (ioctl(vcpu->fd, KVM_SET_MSRS, &msrs) != 1)
		return -EIO;
	return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *vcpu, int index)
{
	int err;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->index = index;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (vcpu->fd < 0)
		return -errno;
	vcpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		return -errno;
	}
	/* Without binary statistics (Linux < 5.14) --stats-json says null: no error. */
	if (vm->cfg.kvm_stats && kvm_stats_open(&vcpu->kvm_stats, vm->vm_fd, vcpu->fd))
		pr_debug("vCPU %d: no KVM binary statistics", index);
	err = vcpu_set_cpuid(vcpu);
	if (!err)
		err = vcpu_set_lapic_lints(vcpu);
	if (!err)
		err = vcpu_set_fpu_and_msrs(vcpu);
	return err;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->vm->run_size);
	if (vcpu->fd > 0)
		close(vcpu->fd);
	kvm_stats_close(&vcpu->kvm_stats);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

/* Where a stopped vCPU was and what it waited for: one line. Only once its thread has left
 * KVM_RUN (KVM serializes the vCPU's ioctls). */
void vcpu_describe(struct vcpu *vcpu)
{
	struct kvm_regs r;
	struct kvm_mp_state mp;
	struct kvm_lapic_state *l = malloc(sizeof(*l));
	char isr[64] = "", irr[64] = "";
	size_t n = 0, m = 0;

	if (!l || ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_LAPIC, l) < 0) {
		pr_err("vCPU %d: cannot read its state: %s", vcpu->index, strerror(errno));
		free(l);
		return;
	}
	/* The vectors in service (ISR, 8 registers of 32 bits, 16 bytes apart, from 0x100) and
	 * those requested, not yet delivered (IRR, from 0x200). */
	for (int i = 0; i < 8; i++) {
		uint32_t s, q;

		memcpy(&s, l->regs + 0x100 + 16 * i, 4);
		memcpy(&q, l->regs + 0x200 + 16 * i, 4);
		for (int b = 0; b < 32; b++) {
			if ((s & (1u << b)) && n < sizeof(isr) - 5)
				n += snprintf(isr + n, sizeof(isr) - n, " %d", 32 * i + b);
			if ((q & (1u << b)) && m < sizeof(irr) - 5)
				m += snprintf(irr + m, sizeof(irr) - m, " %d", 32 * i + b);
		}
	}
	pr_err("vCPU %d: %s, rip %llx, interrupts %s, LAPIC timer LVT %08x initial %u current %u, "
	       "in service:%s, requested:%s", vcpu->index,
	       mp.mp_state == KVM_MP_STATE_HALTED ? "halted" : mp.mp_state == KVM_MP_STATE_RUNNABLE
	       ? "running" : "waiting for INIT/SIPI", r.rip, r.rflags & 0x200 ? "on" : "off",
	       *(uint32_t *)(l->regs + 0x320), *(uint32_t *)(l->regs + 0x380),
	       *(uint32_t *)(l->regs + 0x390), n ? isr : " none", m ? irr : " none");
	free(l);
}

void vcpu_dump_regs(struct vcpu *vcpu)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		pr_err("vCPU %d: cannot read registers: %s", vcpu->index, strerror(errno));
		return;
	}
	pr_err("vCPU %d registers:", vcpu->index);
	pr_err(" rip %016llx rsp %016llx rflags %08llx", r.rip, r.rsp, r.rflags);
	pr_err(" rax %016llx rbx %016llx rcx %016llx rdx %016llx", r.rax, r.rbx, r.rcx, r.rdx);
	pr_err(" rsi %016llx rdi %016llx rbp %016llx", r.rsi, r.rdi, r.rbp);
	pr_err(" r8  %016llx r9  %016llx r10 %016llx r11 %016llx", r.r8, r.r9, r.r10, r.r11);
	pr_err(" r12 %016llx r13 %016llx r14 %016llx r15 %016llx", r.r12, r.r13, r.r14, r.r15);
	pr_err(" cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx", s.cr0, s.cr2, s.cr3,
	       s.cr4, s.efer);
	pr_err(" cs %04x base %llx  ss %04x  ds %04x  tr %04x", s.cs.selector, s.cs.base,
	       s.ss.selector, s.ds.selector, s.tr.selector);
	pr_err(" gdt %llx/%x  idt %llx/%x", s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
}

static void vcpu_handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	vcpu->stats.pio++;
	/* String I/O (rep ins/outs) arrives as one exit with count > 1. */
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			bus_write(&vcpu->vm->pio, run->io.port, data, run->io.size);
		else
			bus_read(&vcpu->vm->pio, run->io.port, data, run->io.size);
	}
}

static void vcpu_handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	vcpu->stats.mmio++;
	if (run->mmio.is_write)
		bus_write(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
	else
		bus_read(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
}

/* Returns false when the VM must end. */
static bool vcpu_handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	struct vm *vm = vcpu->vm;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
	case KVM_EXIT_MMIO: {
		/* Dispatch plus device: the part of an exit's cost that is mica's own. */
		uint64_t t0 = vm->cfg.time_exits ? __builtin_ia32_rdtsc() : 0;

		if (run->exit_reason == KVM_EXIT_IO)
			vcpu_handle_io(vcpu);
		else
			vcpu_handle_mmio(vcpu);
		if (vm->cfg.time_exits)
			vcpu->stats.handle_cycles += __builtin_ia32_rdtsc() - t0;
		return true;
	}
	case KVM_EXIT_INTR:
		vcpu->stats.other++;
		return true;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; mica always has one. */
		vcpu->stats.other++;
		return true;
	case KVM_EXIT_SHUTDOWN:
		pr_err("vCPU %d: the guest triple-faulted (KVM_EXIT_SHUTDOWN)", vcpu->index);
		vcpu_dump_regs(vcpu);
		vm_request_exit(vm, EXIT_CRASH, "triple-fault");
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			pr_info("guest powered off");
			vm_request_exit(vm, 0, "poweroff");
			return false;
		case KVM_SYSTEM_EVENT_RESET:
			pr_info("guest reset");
			vm_request_exit(vm, 0, "reset");
			return false;
		default:
			pr_err("vCPU %d: system event %u: stopping", vcpu->index,
			       run->system_event.type);
			vm_request_exit(vm, EXIT_CRASH, "crash");
			return false;
		}
	case KVM_EXIT_FAIL_ENTRY:
		pr_err("vCPU %d: KVM could not enter the guest (hardware reason 0x%llx)", vcpu->index,
		       (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vcpu_dump_regs(vcpu);
		vm_request_exit(vm, EXIT_CRASH, "crash");
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		pr_err("vCPU %d: KVM internal error, suberror %u", vcpu->index,
		       run->internal.suberror);
		vcpu_dump_regs(vcpu);
		vm_request_exit(vm, EXIT_CRASH, "crash");
		return false;
	default:
		pr_err("vCPU %d: unexpected KVM exit reason %u", vcpu->index, run->exit_reason);
		vcpu_dump_regs(vcpu);
		vm_request_exit(vm, EXIT_CRASH, "crash");
		return false;
	}
}

/* vm_pause() asked every vCPU to stop. One more KVM_RUN with immediate_exit set completes the
 * PIO or MMIO the last exit was about (an MMIO read's value goes into the destination register)
 * and returns at once; then the vCPU's state is whole, and the thread waits until vm_resume()
 * or the VM's end. */
static void vcpu_park(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	vcpu->run->immediate_exit = 1;
	/* An access KVM splits (MMIO across a page) can exit again for its next fragment: that
	 * exit is served like any other before the vCPU counts as parked. */
	while (ioctl(vcpu->fd, KVM_RUN, 0) == 0 && vcpu_handle_exit(vcpu))
		;
	vcpu->run->immediate_exit = 0;
	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (vm->pause_requested && !atomic_load(&vm->exit_requested))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	char name[16];
	sigset_t kick;

	/* Named by the thread itself (prctl): naming it from outside writes
	 * /proc/self/task/TID/comm, which Landlock, applied before the vCPUs start, refuses. */
	snprintf(name, sizeof(name), "mica-vcpu%d", vcpu->index);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&kick);
	sigaddset(&kick, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	seccomp_enter(SECCOMP_VCPU, vcpu->index);
	while (!atomic_load(&vm->exit_requested)) {
		if (atomic_load(&vm->pause_requested)) {
			vcpu_park(vcpu);
			continue;
		}
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			pr_err("vCPU %d: KVM_RUN failed: %s", vcpu->index, strerror(errno));
			vcpu_dump_regs(vcpu);
			vm_request_exit(vm, EXIT_CRASH, "crash");
			break;
		}
		if (!vcpu_handle_exit(vcpu))
			break;
	}
	return NULL;
}

#define VCPU_STACK_SIZE (256 * 1024) /* exit handling is shallow; glibc's 8 MiB default would
					  * cost a transparent huge page per vCPU */

int vcpu_start(struct vcpu *vcpu)
{
	pthread_attr_t attr;
	int err;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, VCPU_STACK_SIZE);
	err = pthread_create(&vcpu->thread, &attr, vcpu_thread, vcpu);
	pthread_attr_destroy(&attr);
	if (err)
		return -err;
	vcpu->started = 1;
	return 0;
}

void vcpu_kick(struct vcpu *vcpu)
{
	/* immediate_exit first: a vCPU about to enter KVM_RUN returns at once; one inside it is
	 * interrupted by the signal. */
	vcpu->run->immediate_exit = 1;
	if (vcpu->started)
		pthread_kill(vcpu->thread, SIGUSR1);
}

void vcpu_join(struct vcpu *vcpu)
{
	if (vcpu->started)
		pthread_join(vcpu->thread, NULL);
	vcpu->started = 0;
}
