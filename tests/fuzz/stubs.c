/* Link stubs for the fuzz targets. The device models reference two symbols from files the
 * harnesses deliberately leave out (vmm/vm.c drags in KVM, vCPUs and the event loop;
 * vmm/term.c the host terminal):
 *   vm_add_device()    - same bookkeeping as vm.c: the harness destroys the devices itself;
 *   term_input_space() - never reached: the harness attaches no terminal to virtio-console.
 * Nothing else is stubbed: virtq.c, virtio.c, rng.c, console.c and log.c are the real ones. */
#include <errno.h>
#include <stdlib.h>

#include "console.h"
#include "vm.h"

int vm_add_device(struct vm *vm, void *dev, void (*destroy)(void *dev))
{
	if (vm->ndevices == (int)(sizeof(vm->devices) / sizeof(vm->devices[0])))
		return -ENOSPC;
	vm->devices[vm->ndevices++] = (struct vm_device){ dev, destroy };
	return 0;
}

void term_input_space(struct term *t)
{
	(void)t;
	abort();
}
