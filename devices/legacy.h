/* The small fixed PC devices: CMOS/RTC, i8042 (for its reset line) and mica's debug-exit port. */
#ifndef MICA_LEGACY_H
#define MICA_LEGACY_H

#include <stdatomic.h>
#include <stdint.h>

struct machine;

/* When the guest reached each milestone it reported on MILESTONE_PORT (CLOCK_MONOTONIC ns, 0:
 * not reached; the first report of each counts): `mica sandbox`'s init says when it started and
 * when CMD started, for --json's times. Written by vCPU threads, read after the run. */
#define MILESTONES 8
struct milestones {
	atomic_uint_least64_t ns[MILESTONES];
	/* Optional (set before the VM runs): called on the vCPU's thread when milestone n is
	 * reached the first time. It must not wait for the VM (a vm_pause would wait for this
	 * very vCPU): it hands the work to the event loop. */
	void (*reached)(void *opaque, unsigned n);
	void *opaque;
};

/* Each plugs its device into m (which owns it): 0, or -errno. */
int rtc_create(struct machine *m);
int i8042_create(struct machine *m);
int debug_exit_create(struct machine *m);
int milestone_create(struct machine *m, struct milestones *ms);
/* The exit-cost lab's probes (--bench-devices). */
int bench_devices_create(struct machine *m);
int acpi_pm_create(struct machine *m);

#endif
