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
