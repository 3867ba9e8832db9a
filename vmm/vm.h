/* The VM: KVM's VM with its RAM, irqchip and vCPUs, the buses and the event loop, and everything
 * plugged into it (owned here, destroyed at the end). Devices never see this: they get
 * vm->machine (vmm/machine.h). */
#ifndef MICA_VM_H
#define MICA_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/err.h"
#include "vmm/evloop.h"
#include "vmm/irq.h"
#include "vmm/kvm.h"
#include "vmm/machine.h"
#include "vmm/memory.h"

struct vcpu;
struct kvm_cpuid2;

/* Exit statuses mica itself chooses (a guest's own status passes through unchanged). */
#define EXIT_USAGE     2   /* bad command line or input files */
#define EXIT_TIMEOUT   124 /* --timeout expired, as timeout(1) */
#define EXIT_CRASH     125 /* guest crashed (triple fault, KVM entry failure) or mica failed */

struct vm_config {
	uint64_t mem_size;
	int ncpus;
	double timeout_s;     /* 0: none */
	bool time_exits;      /* --time-exits: time the handling of each userspace exit */
	bool kvm_stats;       /* --stats-json: open each vCPU's KVM statistics (vmm/kvm_stats.h) */
};

/* Something the VM owns and destroys at the end, in reverse order of creation. */
struct vm_device {
	void *dev;
	void (*destroy)(void *dev);
};

#define VM_MAX_DEVICES 48

/* An owner of guest-visible state a snapshot saves (machine_add_state). */
struct vm_state_owner {
	void *obj;
	const struct snap_ops *ops;
};

struct vm {
	struct vm_config cfg;
	int kvm_fd;
	int vm_fd;
	struct kvm_caps caps;
	struct guest_mem mem;
	struct bus pio;
	struct bus mmio;
	struct evloop loop;
	struct irq_routing irq;
	struct kvm_cpuid2 *cpuid; /* what KVM supports, adjusted per vCPU at setup */
	size_t run_size;          /* mmap size of struct kvm_run */

	int ncpus;
	struct vcpu *vcpus;

	struct machine machine;   /* what the devices see of this VM; vm.c's KVM ops behind it */
	struct vm_device devices[VM_MAX_DEVICES];
	int ndevices;
	struct vm_state_owner states[VM_MAX_DEVICES]; /* in registration order (set-up time) */
	int nstates;

	/* vm_pause()/vm_resume(): pause_lock guards pause_requested and parked; the vCPU
	 * threads wait on pause_cond while paused, vm_pause() waits there for them to park. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	atomic_bool pause_requested;
	int parked;

	/* Set once by the first vm_request_exit(); read after the vCPUs have stopped. */
	atomic_bool exit_requested;
	int exit_status;
	const char *exit_reason;
	pthread_mutex_t exit_lock;
};

/* Creates the VM, its RAM, irqchip, PIT and vCPUs, and fills in vm->machine. Returns 0, or
 * -errno with e saying why. */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct err *e);
void vm_destroy(struct vm *vm);

/* The VM takes dev and calls destroy(dev) at vm_destroy(), in reverse order of creation. */
int vm_own(struct vm *vm, void *dev, void (*destroy)(void *dev));

/* Ends the VM with this status; reason is a short fixed word for machine-readable results
 * ("guest-status", "timeout", "triple-fault", ...). The first request wins; later ones are
 * ignored. Safe from any thread. */
void vm_request_exit(struct vm *vm, int status, const char *reason);

/* Drives a legacy interrupt line (GSI) of the in-kernel PIC/IOAPIC to level 0 or 1. */
int vm_set_irq_line(struct vm *vm, uint32_t gsi, int level);

/* Stops every running vCPU at a clean point: each has left KVM_RUN through an immediate exit,
 * so the PIO/MMIO it was in the middle of is complete, and its state can be read or written.
 * Returns 0 once all are parked, or -ECANCELED if the VM is ending. Event-loop thread (or
 * before vm_run); undone by vm_resume(). */
int vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);

/* Runs the vCPUs and the event loop until the VM ends; returns the exit status. */
int vm_run(struct vm *vm);

#endif
