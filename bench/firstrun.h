/* The record firstrun.so (an LD_PRELOAD shim) fills for benchrun, in a memfd benchrun creates
 * and passes down by number in FIRSTRUN_FD. Both sides are built from this header. */
#ifndef MICA_BENCH_FIRSTRUN_H
#define MICA_BENCH_FIRSTRUN_H

#include <stdint.h>

#define FIRSTRUN_MAGIC 0x6e75727473726966ULL /* "firstrun" */
#define FIRSTRUN_MAX_SLOTS 8

struct firstrun_rec {
	uint64_t magic;         /* set by the shim with the first KVM_RUN */
	int64_t run_mono_ns;    /* CLOCK_MONOTONIC when the first KVM_RUN was issued */
	int64_t run_cpu_ns;     /* CLOCK_PROCESS_CPUTIME_ID (all threads) at that moment */
	uint64_t ioctls_before; /* ioctl() calls before the first KVM_RUN (all kinds) */
	uint32_t nslots;        /* KVM_SET_USER_MEMORY_REGION calls with a non-zero size */
	uint32_t pad;
	struct {
		uint64_t hva, size;
	} slots[FIRSTRUN_MAX_SLOTS]; /* guest RAM as the VMM mapped it: what RSS must exclude */
};

#endif
