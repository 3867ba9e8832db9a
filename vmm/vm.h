/* The VM object: everything a running machine owns, passed down to every part of mica. */
#ifndef MICA_VM_H
#define MICA_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/evloop.h"
#include "vmm/irq.h"
#include "vmm/kvm.h"
#include "vmm/memory.h"

struct vcpu;
struct kvm_cpuid2;
struct virtio_dev;
struct pci_bus;
struct control;

/* Exit statuses mica itself chooses (a guest's own status passes through unchanged). */
#define EXIT_USAGE     2   /* bad command line or input files */
#define EXIT_TIMEOUT   124 /* --timeout expired, as timeout(1) */
#define EXIT_CRASH     125 /* guest crashed (triple fault, KVM entry failure) or mica failed */

enum virtio_transport_kind {
	TRANSPORT_MMIO,        /* virtio-mmio version 2 (virtio 1.0) */
	TRANSPORT_MMIO_LEGACY, /* virtio-mmio version 1 (legacy) */
	TRANSPORT_PCI,         /* virtio-pci, modern */
	TRANSPORT_PCI_TRANSITIONAL, /* virtio-pci with a legacy I/O BAR as well */
};

enum console_kind {
	CONSOLE_SERIAL,  /* the terminal is on the 16550A UART */
	CONSOLE_VIRTIO,  /* the terminal is on virtio-console port 0 */
};

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;  /* NULL: the default for the kernel's kind */
	uint64_t mem_size;
	int ncpus;
	double timeout_s;     /* 0: none */
	enum virtio_transport_kind transport;
	enum console_kind console;
	int nrng;             /* --rng[=TRANSPORT], repeatable: virtio-rng devices */
	enum virtio_transport_kind rng_transport[4];
	bool rng_transport_set[4]; /* false: the VM's --transport */
	bool bench_devices;   /* --bench-devices: the exit-cost lab's probes */
	bool time_exits;      /* --time-exits: time the handling of each userspace exit */
	const char *stats_path; /* --stats-json: where to write what happened, as JSON */
	const char *control_path; /* --control: the control socket */
	bool balloon;         /* --balloon: a virtio-balloon device */
	const char *disks[8]; /* --disk SPEC, repeatable: virtio-blk devices */
	int ndisks;
	const char *nets[4];  /* --net SPEC, repeatable: virtio-net devices */
	int nnets;
	bool acpi;            /* ACPI tables for Linux (--acpi on, the default) */
};

/* A memory-mapped platform device the guest must be told about (FDT, later ACPI). */
struct vm_platform_dev {
	const char *compatible;
	uint64_t base;
	uint64_t size;
	uint32_t gsi;
};

#define VM_MAX_PLATFORM_DEVS 16

/* A device the VM owns and destroys at the end, in reverse order of creation. */
struct vm_device {
	void *dev;
	void (*destroy)(void *dev);
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

	struct vm_device devices[32];
	int ndevices;
	struct vm_platform_dev platform_devs[VM_MAX_PLATFORM_DEVS];
	int nplatform_devs;

	/* Set once by the first vm_request_exit(); read after the vCPUs have stopped. */
	atomic_bool exit_requested;
	int exit_status;
	const char *exit_reason;
	pthread_mutex_t exit_lock;

	struct pci_bus *pci;
	struct control *control;  /* --control: commands for the running VM */
	/* The floor VM of `mica bench exits`: bare notify addresses given to the guest. */
	uint64_t floor_mmio_notify, floor_pci_notify;
	struct virtio_dev *virtio_devs[VM_MAX_PLATFORM_DEVS]; /* for statistics */
	int nvirtio;
};

/* Creates the VM, its RAM, irqchip and PIT; no vCPUs yet. On failure returns -errno and sets
 * *why to a user-facing explanation. */
int vm_create(struct vm *vm, const struct vm_config *cfg, const char **why);
void vm_destroy(struct vm *vm);

/* Registers a device for destruction with the VM. */
int vm_add_device(struct vm *vm, void *dev, void (*destroy)(void *dev));

/* Ends the VM with this status; reason is a short fixed word for machine-readable results
 * ("guest-status", "timeout", "triple-fault", ...). The first request wins; later ones are
 * ignored. Safe from any thread. */
void vm_request_exit(struct vm *vm, int status, const char *reason);

/* Drives a legacy interrupt line (GSI) of the in-kernel PIC/IOAPIC to level 0 or 1. */
int vm_set_irq_line(struct vm *vm, uint32_t gsi, int level);

/* Runs the vCPUs and the event loop until the VM ends; returns the exit status. */
int vm_run(struct vm *vm);

#endif
