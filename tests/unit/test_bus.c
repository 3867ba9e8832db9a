/* The address-space bus: registration, overlap refusal, dispatch by range, unclaimed accesses. */
#include <errno.h>

#include "tests/unit/test.h"
#include "vmm/bus.h"

struct dev {
	uint64_t last_off;
	uint32_t last_len;
	uint64_t last_val;
	int reads, writes;
};

static void dev_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct dev *d = opaque;

	d->reads++;
	d->last_off = off;
	d->last_len = len;
	memset(data, 0x5a, len);
}

static void dev_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct dev *d = opaque;

	d->writes++;
	d->last_off = off;
	d->last_len = len;
	d->last_val = 0;
	memcpy(&d->last_val, data, len);
}

static const struct bus_ops ops = { .read = dev_read, .write = dev_write };

static void dispatch_by_range(void)
{
	struct bus b;
	struct dev a = { 0 }, c = { 0 };
	uint32_t v = 0;

	bus_init(&b, "test");
	CHECK_EQ(bus_register(&b, 0x3f8, 8, &ops, &a, "a"), 0);
	CHECK_EQ(bus_register(&b, 0x70, 2, &ops, &c, "c"), 0);
	CHECK(bus_read(&b, 0x3fd, &v, 1));
	CHECK_EQ(a.reads, 1);
	CHECK_EQ(a.last_off, 5);
	CHECK_EQ(v & 0xff, 0x5a);
	v = 0x1234;
	CHECK(bus_write(&b, 0x70, &v, 2));
	CHECK_EQ(c.writes, 1);
	CHECK_EQ(c.last_off, 0);
	CHECK_EQ(c.last_val, 0x1234);
	CHECK(!bus_write(&b, 0x71, &v, 2)); /* straddles the range's end */
	CHECK_EQ(c.writes, 1);
	bus_destroy(&b);
}

static void overlap_refused(void)
{
	struct bus b;
	struct dev a = { 0 };

	bus_init(&b, "test");
	CHECK_EQ(bus_register(&b, 0x1000, 0x100, &ops, &a, "a"), 0);
	CHECK_EQ(bus_register(&b, 0x10ff, 1, &ops, &a, "b"), -EEXIST);
	CHECK_EQ(bus_register(&b, 0xf00, 0x101, &ops, &a, "b"), -EEXIST);
	CHECK_EQ(bus_register(&b, 0x1080, 0x10, &ops, &a, "b"), -EEXIST);
	CHECK_EQ(bus_register(&b, 0xf00, 0x100, &ops, &a, "b"), 0);   /* adjacent below */
	CHECK_EQ(bus_register(&b, 0x1100, 0x100, &ops, &a, "b"), 0);  /* adjacent above */
	CHECK_EQ(bus_register(&b, 0, 0, &ops, &a, "empty"), -EINVAL);
	CHECK_EQ(bus_register(&b, UINT64_MAX, 2, &ops, &a, "wraps"), -EINVAL);
	bus_destroy(&b);
}

static void unclaimed_reads_all_ones(void)
{
	struct bus b;
	struct dev a = { 0 };
	uint64_t v = 0;

	bus_init(&b, "test");
	CHECK_EQ(bus_register(&b, 0x100, 4, &ops, &a, "a"), 0);
	CHECK(!bus_read(&b, 0x200, &v, 8));
	CHECK_EQ(v, UINT64_MAX);
	/* An access straddling the end of a range is not the device's. */
	v = 0;
	CHECK(!bus_read(&b, 0x102, &v, 4));
	CHECK_EQ(v & 0xffffffff, 0xffffffff);
	CHECK_EQ(a.reads, 0);
	CHECK(!bus_write(&b, 0x104, &v, 1));
	CHECK_EQ(a.writes, 0);
	CHECK_EQ(b.unclaimed_reads, 2);
	CHECK_EQ(b.unclaimed_writes, 1);
	bus_destroy(&b);
}

static void many_ranges_sorted(void)
{
	struct bus b;
	struct dev d[100] = { 0 };
	uint8_t v;

	bus_init(&b, "test");
	/* Registered out of order; every one must still be found. */
	for (int i = 0; i < 100; i++) {
		int k = (i * 37) % 100;

		CHECK_EQ(bus_register(&b, 0x10000 + k * 0x10, 0x10, &ops, &d[k], "d"), 0);
	}
	for (int k = 0; k < 100; k++) {
		CHECK(bus_read(&b, 0x10000 + k * 0x10 + 7, &v, 1));
		CHECK_EQ(d[k].reads, 1);
		CHECK_EQ(d[k].last_off, 7);
	}
	CHECK_EQ(bus_unregister(&b, 0x10000 + 50 * 0x10, &d[50]), 0);
	CHECK(!bus_read(&b, 0x10000 + 50 * 0x10, &v, 1));
	CHECK(bus_read(&b, 0x10000 + 51 * 0x10, &v, 1));
	bus_destroy(&b);
}

TEST_MAIN("bus", T(dispatch_by_range), T(overlap_refused), T(unclaimed_reads_all_ones),
	  T(many_ranges_sorted))
