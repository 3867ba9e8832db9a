/* The debug-exit port (0x501): a guest writes its status and the VM ends with it, so test guests
 * and CI images can report a verdict. Writes wider than a byte use the low byte. Beside it, the
 * milestone port (0x504): a guest notes when it reached a point of its boot. */
/* No snapshot state: the debug-exit port holds nothing, and the milestones are host-side
 * timings of this run (CLOCK_MONOTONIC of this process), not guest-visible state. */
#include "devices/legacy.h"
#include "vmm/util.h"
#include "vmm/bus.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/machine.h"

static void debug_exit_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct machine *m = opaque;
	uint8_t status = *(const uint8_t *)data;

	(void)off, (void)len;
	pr_info("guest reported status %u through the debug-exit port", status);
	machine_request_exit(m, status, "guest-status");
}

static void debug_exit_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque, (void)off;
	for (uint32_t i = 0; i < len; i++)
		((uint8_t *)data)[i] = 0xff;
}

static const struct bus_ops debug_exit_ops = { .read = debug_exit_read, .write = debug_exit_write };

int debug_exit_create(struct machine *m)
{
	return bus_register(m->pio, DEBUG_EXIT_PORT, 1, &debug_exit_ops, m, "debug-exit");
}

static void milestone_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct milestones *ms = opaque;
	uint8_t n = *(const uint8_t *)data;
	uint_least64_t unset = 0;

	(void)off, (void)len;
	if (n < MILESTONES && atomic_compare_exchange_strong(&ms->ns[n], &unset, now_ns()) &&
	    ms->reached)
		ms->reached(ms->opaque, n);
}

static const struct bus_ops milestone_ops = { .read = debug_exit_read, .write = milestone_write };

int milestone_create(struct machine *m, struct milestones *ms)
{
	return bus_register(m->pio, MILESTONE_PORT, 1, &milestone_ops, ms, "milestone");
}
