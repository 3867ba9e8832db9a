/* Size parsing and the guest-physical range check every guest address goes through. */
#include <errno.h>

#include "tests/unit/test.h"
#include "vmm/layout.h"
#include "vmm/memory.h"
#include "vmm/util.h"

static void sizes(void)
{
	uint64_t v;

	CHECK_EQ(parse_size("16", &v), 0);
	CHECK_EQ(v, 16);
	CHECK_EQ(parse_size("64K", &v), 0);
	CHECK_EQ(v, 64 * KiB);
	CHECK_EQ(parse_size("256m", &v), 0);
	CHECK_EQ(v, 256 * MiB);
	CHECK_EQ(parse_size("2G", &v), 0);
	CHECK_EQ(v, 2 * GiB);
	CHECK_EQ(parse_size("1GiB", &v), 0);
	CHECK_EQ(v, GiB);
	CHECK_EQ(parse_size("12Q", &v), -EINVAL);
	CHECK_EQ(parse_size("", &v), -EINVAL);
	CHECK_EQ(parse_size("-1M", &v), -EINVAL);
	CHECK_EQ(parse_size("M", &v), -EINVAL);
	CHECK_EQ(parse_size("99999999999999999999", &v), -ERANGE);
	CHECK_EQ(parse_size("17179869184G", &v), -ERANGE);
}

static void gpa_range_bounds(void)
{
	struct guest_mem m;

	CHECK_EQ(guest_mem_init(&m, 64 * MiB), 0);
	CHECK_EQ(m.nregions, 1);
	CHECK_EQ((uintptr_t)m.map % (2 * MiB), 0);
	CHECK(gpa_range(&m, 0, 64 * MiB) == m.map);
	CHECK(gpa_range(&m, 64 * MiB - 1, 1) == m.map + 64 * MiB - 1);
	CHECK(gpa_range(&m, 64 * MiB - 1, 2) == NULL);
	CHECK(gpa_range(&m, 64 * MiB, 1) == NULL);
	CHECK(gpa_range(&m, 4096, UINT64_MAX) == NULL);          /* length wraps */
	CHECK(gpa_range(&m, UINT64_MAX, 2) == NULL);             /* address wraps */
	CHECK(gpa_range(&m, MMIO_HOLE_START, 4) == NULL);
	guest_mem_destroy(&m);
}

static void gpa_range_split_around_hole(void)
{
	struct guest_mem m;

	/* 4 GiB of RAM: 3 GiB below the hole, 1 GiB from 4 GiB. Nothing is touched. */
	CHECK_EQ(guest_mem_init(&m, 4 * GiB), 0);
	CHECK_EQ(m.nregions, 2);
	CHECK_EQ(guest_mem_low_end(&m), MMIO_HOLE_START);
	CHECK(gpa_range(&m, MMIO_HOLE_START - 8, 8) != NULL);
	CHECK(gpa_range(&m, MMIO_HOLE_START - 8, 16) == NULL);   /* runs into the hole */
	CHECK(gpa_range(&m, MMIO_HOLE_START, 1) == NULL);
	CHECK(gpa_range(&m, MMIO_HOLE_END - 1, 1) == NULL);
	CHECK(gpa_range(&m, MMIO_HOLE_END, 8) == m.map + MMIO_HOLE_START);
	CHECK(gpa_range(&m, MMIO_HOLE_END + GiB - 8, 8) != NULL);
	CHECK(gpa_range(&m, MMIO_HOLE_END + GiB - 8, 9) == NULL);
	guest_mem_destroy(&m);
}

TEST_MAIN("util", T(sizes), T(gpa_range_bounds), T(gpa_range_split_around_hole))
