/* The VM's GSI routing table: the in-kernel PIC and IOAPIC pins, plus MSI routes that MSI-X
 * vectors get. KVM_SET_GSI_ROUTING replaces the whole table, so mica keeps all of it here. */
#ifndef MICA_IRQ_H
#define MICA_IRQ_H

#include <pthread.h>
#include <stdint.h>

struct vm;
struct kvm_irq_routing;

#define IRQ_IOAPIC_PINS 24
#define IRQ_MAX_ROUTES  1024

struct irq_routing {
	pthread_mutex_t lock;
	struct kvm_irq_routing *table;
	uint32_t next_gsi;    /* next GSI for an MSI route */
};

int irq_routing_init(struct vm *vm);
void irq_routing_destroy(struct vm *vm);
/* A fresh GSI for an MSI route (initially pointing nowhere). Returns the GSI or -ENOSPC. */
int irq_alloc_msi_gsi(struct vm *vm);
/* Points an MSI GSI at (address, data) and commits the table to KVM. */
int irq_set_msi_route(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data);

#endif
