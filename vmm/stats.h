/* What happened in a run, as JSON for CI systems and benchmarks (--stats-json PATH). */
#ifndef MICA_STATS_H
#define MICA_STATS_H

#include <stdint.h>

struct vm;

struct run_times {
	uint64_t start_ns;       /* mica started (CLOCK_MONOTONIC) */
	uint64_t first_run_ns;   /* the VM was ready to run */
	uint64_t end_ns;         /* the VM ended */
};

/* Writes the statistics file; returns 0 or -errno. */
int stats_write_json(const struct vm *vm, const struct run_times *t, const char *path);

#endif
