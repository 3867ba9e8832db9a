/* virtio-balloon in the device target. madvise() is wrapped (-Wl,--wrap=madvise) and not
 * passed on: guest RAM here is two heap allocations, which must stay intact.
 *
 * Operations: 0: the control command `balloon-stats` (the device gives the driver's stats
 * buffer back); 1: `balloon` with arg & 3 picking "" (report), "0" (target 0), "1" (more than
 * this RAM: refused) or "x" (not a number).
 *
 * Checks beyond the sanitizers: every madvise is MADV_DONTNEED on whole 4 KiB guest pages
 * inside the fake guest RAM, never anything else; the pages released in an operation are
 * exactly those the inflate chains popped in it list (each as often as listed), so a PFN
 * outside RAM is never released; replies of the control commands fit their buffer. */
#include <stdio.h>
#include <sys/mman.h>

#include "devices/virtio/devices.h"
#include "tests/fuzz/fuzz_dev.h"

#define PAGE       4096ULL
#define LOW_PAGES  (FUZZ_LOW_SIZE / PAGE)
#define RAM_PAGES  (LOW_PAGES + FUZZ_HIGH_SIZE / PAGE)
#define INFLATE_Q  0

static unsigned listed[RAM_PAGES], released[RAM_PAGES];

/* The index of guest page pfn in listed/released, or -1 outside RAM. */
static int page_index(uint64_t pfn)
{
	if (pfn < LOW_PAGES)
		return (int)pfn;
	if (pfn >= FUZZ_HIGH_GPA / PAGE && pfn < FUZZ_HIGH_GPA / PAGE + RAM_PAGES - LOW_PAGES)
		return (int)(LOW_PAGES + pfn - FUZZ_HIGH_GPA / PAGE);
	return -1;
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	const struct mem_region *r = NULL;
	uint64_t off;

	FUZZ_ASSERT(advice == MADV_DONTNEED);
	FUZZ_ASSERT(len && len % PAGE == 0 && fuzz_in_ram(addr, len));
	for (int i = 0; i < fuzz_mem.nregions; i++)
		if ((uint8_t *)addr >= fuzz_mem.regions[i].hva &&
		    (uint8_t *)addr < fuzz_mem.regions[i].hva + fuzz_mem.regions[i].size)
			r = &fuzz_mem.regions[i];
	off = (uint64_t)((uint8_t *)addr - r->hva);
	FUZZ_ASSERT(off % PAGE == 0); /* whole guest pages */
	for (uint64_t p = 0; p < len / PAGE; p++)
		released[page_index((r->gpa + off) / PAGE + p)]++;
	return 0;
}

static struct virtio_dev *balloon_create(const struct virtio_env *env, uint8_t opt,
					 uint64_t *features)
{
	struct virtio_dev *dev = NULL;

	(void)opt;
	/* No control object: the stub control_register() (stubs.c) keeps the commands. */
	FUZZ_ASSERT(virtio_balloon_create(env, NULL, &dev) == 0);
	memset(listed, 0, sizeof(listed));
	memset(released, 0, sizeof(released));
	FUZZ_ASSERT(dev);
	*features = virtio_offered_features(dev) & 0xffffff; /* the device-specific bits */
	return dev;
}

/* The PFNs of an inflate chain, read as the device is about to (32-bit each, whole ones
 * within each buffer). */
static void balloon_popped(const struct fuzz_chain *c)
{
	if (c->q != INFLATE_Q)
		return;
	for (uint32_t s = 0; s < c->nsegs; s++) {
		for (uint32_t i = 0; i + 4 <= c->segs[s].len; i += 4) {
			uint32_t pfn;
			int k;

			memcpy(&pfn, (uint8_t *)c->segs[s].hva + i, 4);
			k = page_index(pfn);
			if (k >= 0)
				listed[k]++;
		}
	}
}

static void balloon_op(struct virtio_dev *dev, int which, uint8_t arg)
{
	static const char *const targets[4] = { "", "0", "1", "x" };
	char out[512];

	(void)dev;
	memset(out, 0, sizeof(out));
	if (which == 0)
		fuzz_control_run("balloon-stats", "", out, sizeof(out) - 1);
	else
		fuzz_control_run("balloon", targets[arg & 3], out, sizeof(out) - 1);
	FUZZ_ASSERT(!out[sizeof(out) - 1]);
}

static void balloon_check(struct virtio_dev *dev, bool disrupted)
{
	(void)dev, (void)disrupted;
	FUZZ_ASSERT(!memcmp(listed, released, sizeof(listed)));
	memset(listed, 0, sizeof(listed));
	memset(released, 0, sizeof(released));
}

const struct fuzz_model fuzz_model_balloon = {
	.create = balloon_create,
	.op = balloon_op,
	.popped = balloon_popped,
	.check = balloon_check,
};
