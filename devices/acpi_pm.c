/* The ACPI hardware-reduced sleep registers named in the FADT (boot/acpi.c): writing SLP_TYP 5
 * with SLP_EN to the sleep control register powers the machine off, so `poweroff` in a Linux
 * guest ends the VM with status 0. (Reset goes through port 0xcf9, devices/pci.c.) */
/* No snapshot state: the registers read 0 and a write acts at once (nothing is held). */
#include "boot/acpi.h"
#include "devices/legacy.h"
#include "vmm/bus.h"
#include "vmm/log.h"
#include "vmm/machine.h"

static void pm_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque, (void)off, (void)len;
	*(uint8_t *)data = 0;
}

static void pm_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct machine *m = opaque;
	uint8_t v = *(const uint8_t *)data;

	(void)len;
	if (off == 0 && (v & ACPI_SLP_EN) && ((v >> 2) & 7) == ACPI_SLP_TYP_S5) {
		pr_info("guest powered off (ACPI S5)");
		machine_request_exit(m, 0, "poweroff");
	}
}

static const struct bus_ops pm_ops = { .read = pm_read, .write = pm_write };

int acpi_pm_create(struct machine *m)
{
	return bus_register(m->pio, ACPI_SLEEP_CONTROL_PORT, 2, &pm_ops, m, "acpi-pm");
}
