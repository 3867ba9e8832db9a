#include "vmm/irq.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "vmm/vm.h"

static int commit(struct vm *vm)
{
	return ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, vm->irq.table) < 0 ? -errno : 0;
}

/* Exactly what KVM_CREATE_IRQCHIP sets up by default, so committing MSI routes changes nothing
 * else: GSI 0-15 to the 8259s and the same IOAPIC pin, GSI 16-23 to the IOAPIC. */
int irq_routing_init(struct vm *vm)
{
	struct irq_routing *r = &vm->irq;
	struct kvm_irq_routing_entry *e;

	pthread_mutex_init(&r->lock, NULL);
	r->table = calloc(1, sizeof(*r->table) + IRQ_MAX_ROUTES * sizeof(r->table->entries[0]));
	if (!r->table)
		return -ENOMEM;
	e = r->table->entries;
	for (uint32_t gsi = 0; gsi < 16; gsi++) {
		*e++ = (struct kvm_irq_routing_entry){
			.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
				       .pin = gsi % 8 } };
	}
	for (uint32_t gsi = 0; gsi < IRQ_IOAPIC_PINS; gsi++)
		*e++ = (struct kvm_irq_routing_entry){
			.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi } };
	r->table->nr = e - r->table->entries;
	r->next_gsi = IRQ_IOAPIC_PINS;
	return 0;
}

void irq_routing_destroy(struct vm *vm)
{
	free(vm->irq.table);
	vm->irq.table = NULL;
	pthread_mutex_destroy(&vm->irq.lock);
}

int irq_alloc_msi_gsi(struct vm *vm)
{
	struct irq_routing *r = &vm->irq;
	int gsi = -ENOSPC;

	pthread_mutex_lock(&r->lock);
	if (r->table->nr < IRQ_MAX_ROUTES) {
		gsi = r->next_gsi++;
		/* An MSI route to address 0: nothing listens there until the guest programs it. */
		r->table->entries[r->table->nr++] = (struct kvm_irq_routing_entry){
			.gsi = gsi, .type = KVM_IRQ_ROUTING_MSI };
	}
	pthread_mutex_unlock(&r->lock);
	return gsi;
}

int irq_set_msi_route(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct irq_routing *r = &vm->irq;
	int err = -ENOENT;

	pthread_mutex_lock(&r->lock);
	for (uint32_t i = 0; i < r->table->nr; i++) {
		struct kvm_irq_routing_entry *e = &r->table->entries[i];

		if (e->gsi == gsi && e->type == KVM_IRQ_ROUTING_MSI) {
			e->u.msi.address_lo = (uint32_t)addr;
			e->u.msi.address_hi = (uint32_t)(addr >> 32);
			e->u.msi.data = data;
			err = commit(vm);
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return err;
}
