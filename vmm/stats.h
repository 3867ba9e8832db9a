/* What happened in a run, as JSON for CI systems and benchmarks (--stats-json PATH). */
#ifndef MICA_STATS_H
#define MICA_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "vmm/kvm_stats.h"

struct vm;

/* One counter of a device: a number, or a string when str is set. */
struct stat_value {
	const char *name;
	const char *str;
	uint64_t num;
};

#define STATS_MAX_VALUES 40
#define STATS_MAX_DEVICES 32

/* Fills at most max values describing obj (the first one: "device", its name); returns how
 * many. Runs after the VM has stopped. */
typedef int (*stats_fn)(void *obj, struct stat_value *out, int max);

/* The devices whose counters --stats-json reports, in the order they were added. */
struct stats_devices {
	struct {
		stats_fn fn;
		void *obj;
	} dev[STATS_MAX_DEVICES];
	int n;
};

int stats_add_device(struct stats_devices *s, stats_fn fn, void *obj);

struct run_times {
	uint64_t start_ns;       /* mica started (CLOCK_MONOTONIC) */
	uint64_t first_run_ns;   /* the VM was ready to run */
	uint64_t end_ns;         /* the VM ended */
	/* Points the guest reported reaching (`mica sandbox`: its init started, CMD started),
	 * printed as seconds since start_ns; 0 ns: not reached (null). */
	struct { const char *name; uint64_t ns; } marks[4];
	int nmarks;
	int mica_status;         /* what mica exits with (may differ from the guest's status) */
};

/* The "kvm_exits" and "kvm_vcpu_stats" members (t summed over the vCPUs; NULL: the kernel has
 * no binary statistics, both null): "exits" becomes kvm_exits' "total", each "*_exits" counter
 * goes with it, every other counter into kvm_vcpu_stats. Part of stats_write_json(). */
void stats_write_kvm(const struct kvm_stats_total *t, FILE *f);

/* The JSON's schema version ("version"): raised when a member changes meaning or goes away;
 * new members may appear in any version. */
#define STATS_JSON_VERSION 1

/* Members a layer above adds to the object, right after "mica_status" (how the run was judged:
 * ci/verdict.c): write writes each as `  "name": value,\n`. */
struct stats_members {
	void (*write)(void *opaque, FILE *f);
	void *opaque;
};

/* Writes the statistics as JSON to f (the --stats-json file, opened before the run: see
 * vmm/outfile.h); returns 0 or -EIO. */
int stats_write_json(const struct vm *vm, const struct stats_devices *devs,
		     const struct run_times *t, const struct stats_members *more, FILE *f);

#endif
