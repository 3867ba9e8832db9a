/* The small fixed PC devices: CMOS/RTC, i8042 (for its reset line) and mica's debug-exit port. */
#ifndef MICA_LEGACY_H
#define MICA_LEGACY_H

struct machine;

/* Each plugs its device into m (which owns it): 0, or -errno. */
int rtc_create(struct machine *m);
int i8042_create(struct machine *m);
int debug_exit_create(struct machine *m);
/* The exit-cost lab's probes (--bench-devices). */
int bench_devices_create(struct machine *m);
int acpi_pm_create(struct machine *m);

#endif
