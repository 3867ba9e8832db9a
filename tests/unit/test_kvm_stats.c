/* KVM's binary statistics (vmm/kvm_stats.c) and their JSON (stats_write_kvm): the layout is
 * read from a file laid out as a vCPU's stats fd (<linux/kvm.h>'s structs, in a memfd), so
 * everything but the ioctl runs without KVM; one test reads a real vCPU's, where /dev/kvm is. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/unit/test.h"
#include "vmm/kvm_stats.h"
#include "vmm/stats.h"

#define NAME_SIZE 48
#define COUNTER (KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_NONE | KVM_STATS_BASE_POW10)

struct fake_desc {
	const char *name;
	uint32_t flags;
	int16_t exponent;
	uint16_t size;
	uint64_t value; /* the first of size values */
};

static void put(int fd, const void *buf, size_t len, off_t at)
{
	CHECK_EQ(pwrite(fd, buf, len, at), len);
}

/* A stats "fd": header, an id string, the descriptors, then the data, each value at the
 * offset its descriptor gives (in the order given, as KVM lays them out). */
static int fake_stats(const struct fake_desc *d, int n, uint32_t name_size)
{
	size_t stride = sizeof(struct kvm_stats_desc) + name_size;
	struct kvm_stats_header h = { .name_size = name_size, .num_desc = (uint32_t)n,
				      .id_offset = sizeof(h) };
	uint32_t off = 0;
	char *descs = calloc(n, stride);
	int fd = memfd_create("fake-kvm-stats", MFD_CLOEXEC);

	h.desc_offset = h.id_offset + name_size;
	h.data_offset = h.desc_offset + n * stride;
	put(fd, &h, sizeof(h), 0);
	put(fd, "kvm-1234/vcpu-0", 16, h.id_offset);
	for (int i = 0; i < n; i++) {
		struct kvm_stats_desc *k = (void *)(descs + i * stride);

		k->flags = d[i].flags;
		k->exponent = d[i].exponent;
		k->size = d[i].size;
		k->offset = off;
		memcpy(k->name, d[i].name, strnlen(d[i].name, name_size));
		put(fd, &d[i].value, sizeof(uint64_t), h.data_offset + off);
		off += d[i].size * sizeof(uint64_t);
	}
	put(fd, descs, n * stride, h.desc_offset);
	free(descs);
	return fd;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static uint64_t total_of(const struct kvm_stats_total *t, const char *name)
{
	for (int i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].name, name))
			return t->v[i].value;
	return UINT64_MAX;
}

/* Only plain event counters are kept: not times, instant values, peaks or histograms, not a
 * name that is no identifier; vCPUs are summed by name whatever their order. */
static void test_counters_summed_by_name(void)
{
	const struct fake_desc vcpu0[] = {
		{ "halt_successful_poll", COUNTER, 0, 1, 5 },
		{ "halt_poll_success_ns", KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_SECONDS, -9, 1, 777 },
		{ "halt_wait_hist", KVM_STATS_TYPE_LOG_HIST | KVM_STATS_UNIT_SECONDS, -9, 32, 9 },
		{ "blocking", KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BOOLEAN, 0, 1, 1 },
		{ "max_mmu_page_hash", KVM_STATS_TYPE_PEAK, 0, 1, 3 },
		{ "exits", COUNTER, 0, 1, 1000 },
		{ "odd\"name", COUNTER, 0, 1, 4 },
		{ "kilo_things", COUNTER, 3, 1, 2 },
		{ "io_exits", COUNTER, 0, 1, 300 },
	};
	const struct fake_desc vcpu1[] = {
		{ "io_exits", COUNTER, 0, 1, 20 },
		{ "exits", COUNTER, 0, 1, 100 },
		{ "halt_successful_poll", COUNTER, 0, 1, 1 },
	};
	struct kvm_stats s0, s1;
	struct kvm_stats_total t = { 0 };
	int fd0 = fake_stats(vcpu0, 9, NAME_SIZE), fd1 = fake_stats(vcpu1, 3, NAME_SIZE);

	CHECK_EQ(kvm_stats_parse(&s0, fd0), 0);
	CHECK_EQ(kvm_stats_parse(&s1, fd1), 0);
	CHECK_EQ(s0.ncounters, 3);
	CHECK_EQ(s1.ncounters, 3);
	CHECK_EQ(kvm_stats_add(&s0, &t), 0);
	CHECK_EQ(kvm_stats_add(&s1, &t), 0);
	CHECK_EQ(t.n, 3);
	if (t.n == 3) {
		CHECK(!strcmp(t.v[0].name, "halt_successful_poll"));
		CHECK(!strcmp(t.v[1].name, "exits"));
		CHECK(!strcmp(t.v[2].name, "io_exits"));
	}
	CHECK_EQ(total_of(&t, "exits"), 1100);
	CHECK_EQ(total_of(&t, "io_exits"), 320);
	CHECK_EQ(total_of(&t, "halt_successful_poll"), 6);
	/* Read again at the end: the values are the fd's now, not the ones seen before. */
	{
		uint64_t v = 2000;
		struct kvm_stats_total t2 = { 0 };

		/* "exits" follows 4 single values and the 32 of the histogram. */
		put(fd0, &v, sizeof(v), s0.data_offset + (4 + 32) * 8);
		CHECK_EQ(kvm_stats_add(&s0, &t2), 0);
		CHECK_EQ(total_of(&t2, "exits"), 2000);
	}
	kvm_stats_close(&s0);
	kvm_stats_close(&s1);
	CHECK(!fd_open(fd0));
	CHECK(!fd_open(fd1));
	CHECK(!s0.ok);
	CHECK_EQ(kvm_stats_add(&s0, &t), -ENOENT);
}

/* A layout mica does not understand leaves "no statistics", with the fd closed. */
static void test_bad_layouts_refused(void)
{
	const struct fake_desc good[] = { { "exits", COUNTER, 0, 1, 7 } };
	const struct fake_desc none[] = {
		{ "blocking", KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BOOLEAN, 0, 1, 1 } };
	const struct fake_desc unterminated[] = {
		{ "a_name_of_exactly_forty_eight_characters_exits__", COUNTER, 0, 1, 7 } };
	struct kvm_stats s;
	struct kvm_stats_header h;
	int fd;

	fd = fake_stats(none, 1, NAME_SIZE);
	CHECK_EQ(kvm_stats_parse(&s, fd), -EPROTO);
	CHECK(!fd_open(fd));
	CHECK(!s.ok);
	fd = fake_stats(unterminated, 1, NAME_SIZE);
	CHECK_EQ(kvm_stats_parse(&s, fd), -EPROTO);
	CHECK(!fd_open(fd));
	fd = fake_stats(good, 1, 4096); /* an absurd name size */
	CHECK_EQ(kvm_stats_parse(&s, fd), -EPROTO);
	CHECK(!fd_open(fd));
	/* Descriptors said to lie beyond the end of the file. */
	fd = fake_stats(good, 1, NAME_SIZE);
	CHECK_EQ(pread(fd, &h, sizeof(h), 0), sizeof(h));
	h.desc_offset = 1u << 20;
	put(fd, &h, sizeof(h), 0);
	CHECK_EQ(kvm_stats_parse(&s, fd), -EPROTO);
	CHECK(!fd_open(fd));
	/* Too short for a header. */
	fd = memfd_create("short", MFD_CLOEXEC);
	put(fd, "x", 1, 0);
	CHECK_EQ(kvm_stats_parse(&s, fd), -EPROTO);
	CHECK(!fd_open(fd));
	/* A data block that shrank (cannot happen with KVM): the read fails, no values. */
	fd = fake_stats(good, 1, NAME_SIZE);
	CHECK_EQ(kvm_stats_parse(&s, fd), 0);
	if (s.ok) {
		struct kvm_stats_total t = { 0 };

		CHECK_EQ(ftruncate(fd, s.data_offset), 0);
		CHECK_EQ(kvm_stats_add(&s, &t), -EIO);
	}
	kvm_stats_close(&s);
}

static char *kvm_json(const struct kvm_stats_total *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	stats_write_kvm(t, f);
	fclose(f);
	return buf;
}

/* "exits" is kvm_exits' total, the "*_exits" counters go with it, everything else apart. */
static void test_json_split(void)
{
	struct kvm_stats_total t = { .n = 5, .v = {
		{ "halt_wakeup", 3 }, { "io_exits", 20 }, { "exits", 100 }, { "halt_exits", 9 },
		{ "insn_emulation", 4 } } };
	struct kvm_stats_total no_exits = { .n = 1, .v = { { "hypercalls", 2 } } };
	char *s = kvm_json(&t);

	CHECK(!strcmp(s, "  \"kvm_exits\": { \"total\": 100, \"io_exits\": 20, \"halt_exits\": 9 },\n"
			 "  \"kvm_vcpu_stats\": { \"halt_wakeup\": 3, \"insn_emulation\": 4 },\n"));
	free(s);
	s = kvm_json(&no_exits);
	CHECK(!strcmp(s, "  \"kvm_exits\": { },\n  \"kvm_vcpu_stats\": { \"hypercalls\": 2 },\n"));
	free(s);
	s = kvm_json(NULL);
	CHECK(!strcmp(s, "  \"kvm_exits\": null,\n  \"kvm_vcpu_stats\": null,\n"));
	free(s);
}

/* A real vCPU's statistics have "exits" among the counters (all 0: it never ran). */
static void test_real_vcpu(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm, vcpu;
	struct kvm_stats s;
	struct kvm_stats_total t = { 0 };

	if (kvm < 0)
		TEST_SKIP("no /dev/kvm");
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	vcpu = vm >= 0 ? ioctl(vm, KVM_CREATE_VCPU, 0) : -1;
	CHECK(vcpu >= 0);
	if (vcpu >= 0) {
		int err = kvm_stats_open(&s, vm, vcpu);

		if (err == -ENOTSUP) {
			test_skipped = "the kernel has no KVM_CAP_BINARY_STATS_FD";
		} else {
			CHECK_EQ(err, 0);
			CHECK_EQ(kvm_stats_add(&s, &t), 0);
			CHECK_EQ(total_of(&t, "exits"), 0);
			CHECK(total_of(&t, "io_exits") != UINT64_MAX);
			kvm_stats_close(&s);
		}
		close(vcpu);
	}
	if (vm >= 0)
		close(vm);
	close(kvm);
}

TEST_MAIN("kvm_stats", T(test_counters_summed_by_name), T(test_bad_layouts_refused),
	  T(test_json_split), T(test_real_vcpu))
