#include "vmm/machine.h"

#include <errno.h>

int machine_add_platform_dev(struct machine *m, const struct machine_platform_dev *d)
{
	if (m->nplatform_devs == MACHINE_MAX_PLATFORM_DEVS)
		return -ENOSPC;
	m->platform_devs[m->nplatform_devs++] = *d;
	return 0;
}
