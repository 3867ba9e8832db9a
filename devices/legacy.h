/* The small fixed PC devices: CMOS/RTC, i8042 (for its reset line) and mica's debug-exit port. */
#ifndef MICA_LEGACY_H
#define MICA_LEGACY_H

struct vm;

int rtc_create(struct vm *vm);
int i8042_create(struct vm *vm);
int debug_exit_create(struct vm *vm);
int bench_devices_create(struct vm *vm);
int acpi_pm_create(struct vm *vm);

#endif
