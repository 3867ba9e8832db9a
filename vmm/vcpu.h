/* vCPUs: one thread each, running KVM_RUN and dispatching exits through the VM's buses. */
#ifndef MICA_VCPU_H
#define MICA_VCPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "vmm/kvm_stats.h"

struct vm;
struct kvm_run;

/* Per-vCPU exit counters, by what mica did with the exit. */
struct vcpu_stats {
	uint64_t pio;
	uint64_t mmio;
	uint64_t other;
	uint64_t handle_cycles; /* TSC cycles spent handling PIO/MMIO exits (--time-exits) */
};

struct vcpu {
	struct vm *vm;
	int index;       /* also its APIC ID */
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	int started;
	struct vcpu_stats stats;
	struct kvm_stats kvm_stats; /* KVM's own counters (vm->cfg.kvm_stats), none otherwise */
};

/* Creates the vCPU and gives it CPUID, FPU and LAPIC state. */
int vcpu_create(struct vm *vm, struct vcpu *vcpu, int index);
void vcpu_destroy(struct vcpu *vcpu);
int vcpu_start(struct vcpu *vcpu);
/* Makes a vCPU leave KVM_RUN (the VM is stopping). */
void vcpu_kick(struct vcpu *vcpu);
void vcpu_join(struct vcpu *vcpu);
/* One line on stderr: halted or not, rip, IF, the LAPIC timer and the vectors in service. For a
 * vCPU whose thread has stopped. */
void vcpu_describe(struct vcpu *vcpu);
/* Prints general and segment registers to stderr. */
void vcpu_dump_regs(struct vcpu *vcpu);

#endif
