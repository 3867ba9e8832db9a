/* virtio-blk driven as a guest driver would, through a fake transport that counts interrupts,
 * over a temporary image in /tmp. Completions come back through the VM's event loop, which the
 * test runs itself (epoll_wait on vm.loop and the ready handlers), so every step is
 * deterministic. Every I/O test runs twice: io_uring, then the thread pool
 * (MICA_BLK_NO_URING=1). No KVM. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <stddef.h>
#include <linux/magic.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "tests/unit/test_env.h"
#include "tests/unit/test.h"
#include "tests/unit/vring_driver.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define RAM      (16 * 1024 * 1024ULL)
#define QSIZE    256
#define IMG_SIZE (1024 * 1024)
#define CAP      (IMG_SIZE / 512)
#define HDRS     0xA00000ULL  /* request headers, 32 bytes apart */
#define STATUSES 0xA20000ULL  /* status bytes, 1 apart */
#define DATA     0xB00000ULL  /* data buffers, up to the end of RAM */

#define S_ACK   VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV   VIRTIO_CONFIG_S_DRIVER
#define S_FOK   VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK   VIRTIO_CONFIG_S_DRIVER_OK
#define S_RESET VIRTIO_CONFIG_S_NEEDS_RESET

#define F(bit) (1ULL << (bit))
#define F_ALL (F(VIRTIO_F_VERSION_1) | F(VIRTIO_BLK_F_SIZE_MAX) | F(VIRTIO_BLK_F_SEG_MAX) | \
	       F(VIRTIO_BLK_F_BLK_SIZE) | F(VIRTIO_BLK_F_FLUSH) | F(VIRTIO_BLK_F_CONFIG_WCE) | \
	       F(VIRTIO_BLK_F_MQ) | F(VIRTIO_BLK_F_DISCARD) | F(VIRTIO_BLK_F_WRITE_ZEROES))

static struct drv q[VIRTIO_MAX_QUEUES];
static int ncpus_now;             /* the VM's vCPUs: one request queue each */
static uint16_t next_desc[VIRTIO_MAX_QUEUES];
static char img[64];
static bool threads_backend;

static const char *img_dir = "/tmp";

static void make_image(off_t size)
{
	int fd;

	snprintf(img, sizeof(img), "%s/mica-blk-XXXXXX", img_dir);
	fd = mkstemp(img);
	if (fd < 0 || ftruncate(fd, size) < 0)
		abort();
	close(fd);
}

static void setup_vm(int ncpus)
{
	log_set_level(LOG_ERROR); /* the guest errors provoked here are expected */
	test_vm_init(RAM);
	ncpus_now = ncpus;
	memset(irqs, 0, sizeof(irqs));
	memset(next_desc, 0, sizeof(next_desc));
	if (threads_backend)
		setenv("MICA_BLK_NO_URING", "1", 1);
	else
		unsetenv("MICA_BLK_NO_URING");
}

/* A device on the image o names, plugged into the test VM; NULL (and e) if it fails. */
static struct virtio_dev *blk_new(struct blk_opts *o, struct err *e)
{
	struct virtio_dev *dev;

	o->num_queues = ncpus_now;
	return virtio_blk_create(&vm.env, o, &dev, e) ? NULL : test_vm_plug(dev);
}

static struct virtio_dev *create(const char *opts)
{
	char spec[256];
	struct err e = { "" };
	struct blk_opts o;
	struct virtio_dev *dev;

	snprintf(spec, sizeof(spec), "%s%s", img, opts);
	CHECK_EQ(blk_parse_opts(spec, &o, &e), 0);
	dev = blk_new(&o, &e);
	if (!dev) {
		printf("#   virtio_blk_create: %s\n", e.msg);
		abort();
	}
	CHECK(!strcmp(virtio_blk_backend(dev), threads_backend ? "threads" : "io_uring"));
	return dev;
}

/* A VM, an image of IMG_SIZE and a device with opts (",ro", ...). */
static struct virtio_dev *setup(int ncpus, const char *opts)
{
	setup_vm(ncpus);
	make_image(IMG_SIZE);
	return create(opts);
}

static void teardown(void)
{
	test_vm_destroy();
	unlink(img);
	unsetenv("MICA_BLK_NO_URING");
}

static void setup_queue(struct virtio_dev *dev, int n)
{
	drv_attach_queue(dev, &q[n], &vm.mem, n, QSIZE);
}

static void bring_up(struct virtio_dev *dev, uint64_t features)
{
	CHECK(drv_negotiate(dev, features));
	for (int n = 0; n < dev->ops->num_queues; n++) {
		setup_queue(dev, n);
		next_desc[n] = 0;
		CHECK(dev->vqs[n].ready);
	}
	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK);
	CHECK_EQ(drv_get_status(dev), S_ACK | S_DRV | S_FOK | S_DOK);
}

/* ---- the driver side ---- */

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool w;
};

static uint16_t post_chain(int qn, const struct seg *s, int n)
{
	uint16_t head = next_desc[qn];

	for (int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % QSIZE), nxt = (uint16_t)((head + i + 1) % QSIZE);

		drv_desc(&q[qn], idx, s[i].gpa, s[i].len,
			 (s[i].w ? VRING_DESC_F_WRITE : 0) | (i + 1 < n ? VRING_DESC_F_NEXT : 0), nxt);
	}
	next_desc[qn] = (uint16_t)((head + n) % QSIZE);
	drv_post(&q[qn], head);
	return head;
}

static uint64_t hdr_gpa(int i) { return HDRS + 32ULL * i; }
static uint64_t status_gpa(int i) { return STATUSES + (uint64_t)i; }
static uint8_t *status_of(int i) { return g2h(&vm.mem, status_gpa(i), 1); }

static void write_hdr(int i, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { .type = type, .ioprio = 0, .sector = sector };

	memcpy(g2h(&vm.mem, hdr_gpa(i), sizeof(h)), &h, sizeof(h));
	*status_of(i) = 0xff;
}

/* The usual layout: header, one data buffer (len 0: none), status. i picks header and status. */
static uint16_t post_req(int qn, int i, uint32_t type, uint64_t sector, uint64_t data,
			 uint32_t len, bool data_w)
{
	struct seg s[3];
	int n = 0;

	write_hdr(i, type, sector);
	s[n++] = (struct seg){ hdr_gpa(i), 16, false };
	if (len)
		s[n++] = (struct seg){ data, len, data_w };
	s[n++] = (struct seg){ status_gpa(i), 1, true };
	return post_chain(qn, s, n);
}

static uint16_t used_idx(int qn)
{
	return __atomic_load_n(&q[qn].used->idx, __ATOMIC_ACQUIRE);
}

/* Runs the event loop until queue qn's used index (or, with taken, the entries the device took
 * from the avail ring) reaches target (5 s at most). */
static bool run_until_n(int qn, uint16_t target, bool taken)
{
	uint64_t deadline = now_ns() + 5000000000ULL;

	while ((int16_t)((taken ? drv_vq(vm.devs[0], qn).last_avail : used_idx(qn)) - target) < 0) {
		struct epoll_event evs[8];
		int n;

		if (now_ns() > deadline) {
			printf("#   timeout: %s %u, want %u\n", taken ? "taken" : "used idx",
			       taken ? drv_vq(vm.devs[0], qn).last_avail : used_idx(qn), target);
			return false;
		}
		n = epoll_wait(vm.loop.epfd, evs, 8, 100);
		for (int k = 0; k < n; k++) {
			struct ev_handler *h = evs[k].data.ptr;

			h->fn(h, evs[k].events);
		}
	}
	return true;
}

static bool run_until(int qn, uint16_t target)
{
	return run_until_n(qn, target, false);
}

/* Runs the loop for ms milliseconds, whatever happens. */
static void run_for(int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;

	while (now_ns() < end) {
		struct epoll_event evs[8];
		int n = epoll_wait(vm.loop.epfd, evs, 8, 10);

		for (int k = 0; k < n; k++) {
			struct ev_handler *h = evs[k].data.ptr;

			h->fn(h, evs[k].events);
		}
	}
}

/* One request on queue 0, waited for; returns its status, *used its used length. */
static uint8_t sync_req(struct virtio_dev *dev, uint32_t type, uint64_t sector, uint64_t data,
			uint32_t len, bool data_w, uint32_t *used)
{
	uint16_t target = (uint16_t)(used_idx(0) + 1);
	uint16_t head = post_req(0, 0, type, sector, data, len, data_w);

	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, target));
	CHECK_EQ(q[0].used->ring[(target - 1) % QSIZE].id, head);
	if (used)
		*used = q[0].used->ring[(target - 1) % QSIZE].len;
	return *status_of(0);
}

static void fill(uint64_t gpa, uint32_t len, uint32_t seed)
{
	uint8_t *p = g2h(&vm.mem, gpa, len);

	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 9));
}

static bool file_equals(off_t off, uint64_t gpa, uint32_t len)
{
	uint8_t *buf = malloc(len);
	int fd = open(img, O_RDONLY);
	bool ok = fd >= 0 && pread(fd, buf, len, off) == (ssize_t)len &&
		  !memcmp(buf, g2h(&vm.mem, gpa, len), len);

	if (fd >= 0)
		close(fd);
	free(buf);
	return ok;
}

static bool file_zero(off_t off, uint32_t len)
{
	uint8_t *buf = malloc(len);
	int fd = open(img, O_RDONLY);
	bool ok = fd >= 0 && pread(fd, buf, len, off) == (ssize_t)len;

	for (uint32_t i = 0; ok && i < len; i++)
		ok = buf[i] == 0;
	if (fd >= 0)
		close(fd);
	free(buf);
	return ok;
}

static const struct virtio_blk_stats *stats(struct virtio_dev *dev)
{
	return virtio_blk_stats(dev);
}

/* ---- tests ---- */

static void options(void)
{
	struct blk_opts o;
	struct err e;

	CHECK_EQ(blk_parse_opts("disk.img", &o, &e), 0);
	CHECK(!strcmp(o.path, "disk.img") && !o.ro && o.cache == BLK_CACHE_WRITEBACK && !o.serial[0]);
	CHECK_EQ(blk_parse_opts("/a,,b.img,ro,cache=none,serial=ABC-123", &o, &e), 0);
	CHECK(!strcmp(o.path, "/a,b.img") && o.ro && o.cache == BLK_CACHE_NONE);
	CHECK(!strcmp(o.serial, "ABC-123"));
	CHECK_EQ(blk_parse_opts("x,cache=writethrough,serial=12345678901234567890", &o, &e), 0);
	CHECK(o.cache == BLK_CACHE_WRITETHROUGH && strlen(o.serial) == 20);

	CHECK_EQ(blk_parse_opts("", &o, &e), -EINVAL);
	CHECK(strstr(e.msg, "empty image path"));
	CHECK_EQ(blk_parse_opts(",ro", &o, &e), -EINVAL);
	CHECK(strstr(e.msg, "empty image path"));
	CHECK_EQ(blk_parse_opts("x,rw", &o, &e), -EINVAL);
	CHECK(strstr(e.msg, "unknown option 'rw'"));
	CHECK_EQ(blk_parse_opts("x,ro=1", &o, &e), -EINVAL);
	CHECK(strstr(e.msg, "unknown option 'ro=1'"));
	CHECK_EQ(blk_parse_opts("x,cache=fast", &o, &e), -EINVAL);
	CHECK(strstr(e.msg, "bad cache mode 'fast'"));
	CHECK_EQ(blk_parse_opts("x,serial=123456789012345678901", &o, &e), -EINVAL);
	CHECK(strstr(e.msg, "longer than 20 bytes"));
	CHECK_EQ(blk_parse_opts("x,,", &o, &e), 0); /* a path "x," */
	CHECK(!strcmp(o.path, "x,"));
	CHECK_EQ(blk_parse_opts("x,ro,", &o, &e), -EINVAL);
	CHECK(strstr(e.msg, "empty option"));
	CHECK(!strchr(e.msg, '\n'));
}

static void config_space(void)
{
	struct virtio_dev *dev;
	struct virtio_blk_config c;
	uint8_t v;

	setup_vm(3);
	make_image(IMG_SIZE + 100); /* the 100-byte tail is unreachable */
	dev = create("");
	CHECK_EQ(dev->ops->device_id, VIRTIO_ID_BLOCK);
	CHECK_EQ(dev->ops->num_queues, 3);
	CHECK_EQ(virtio_offered_features(dev) & ~(F(VIRTIO_RING_F_INDIRECT_DESC) |
						   F(VIRTIO_RING_F_EVENT_IDX)), F_ALL);
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK_EQ(c.capacity, CAP);
	CHECK_EQ(c.seg_max, 126);
	CHECK(c.size_max >= 4096);
	CHECK_EQ(c.blk_size, 512);
	CHECK_EQ(c.num_queues, 3);
	CHECK_EQ(c.wce, 1);
	CHECK(c.max_discard_sectors && c.max_discard_seg && c.discard_sector_alignment);
	CHECK(c.max_write_zeroes_sectors && c.max_write_zeroes_seg && c.write_zeroes_may_unmap);

	/* wce is writable with CONFIG_WCE; nothing else is. */
	bring_up(dev, F_ALL);
	v = 0;
	drv_config_write(dev, offsetof(struct virtio_blk_config, wce), &v, 1);
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK_EQ(c.wce, 0);
	v = 0x55;
	drv_config_write(dev, offsetof(struct virtio_blk_config, seg_max), &v, 1);
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK_EQ(c.seg_max, 126);
	CHECK_EQ(c.wce, 0);
	/* Reset restores the initial mode. */
	drv_set_status(dev, 0);
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK_EQ(c.wce, 1);
	/* Without CONFIG_WCE the write does not take; without FLUSH the disk is writethrough. */
	bring_up(dev, F(VIRTIO_F_VERSION_1) | F(VIRTIO_BLK_F_FLUSH));
	v = 0;
	drv_config_write(dev, offsetof(struct virtio_blk_config, wce), &v, 1);
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK_EQ(c.wce, 1);
	drv_set_status(dev, 0);
	bring_up(dev, F(VIRTIO_F_VERSION_1));
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK_EQ(c.wce, 0);
	teardown();

	/* writethrough starts at 0; a read-only disk offers RO and no discard. */
	dev = setup(1, ",cache=writethrough,ro");
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK_EQ(c.wce, 0);
	CHECK_EQ(c.num_queues, 1);
	CHECK(virtio_offered_features(dev) & F(VIRTIO_BLK_F_RO));
	CHECK(!(virtio_offered_features(dev) & F(VIRTIO_BLK_F_DISCARD)));
	teardown();
}

static void write_flush_read(void)
{
	struct virtio_dev *dev = setup(1, "");
	struct seg s[5];
	uint32_t used;
	uint16_t head;

	bring_up(dev, F_ALL);
	/* OUT: 64 KiB at sector 8 from two buffers. */
	fill(DATA, 0x8000, 1);
	fill(DATA + 0x10000, 0x8000, 2);
	write_hdr(0, VIRTIO_BLK_T_OUT, 8);
	s[0] = (struct seg){ hdr_gpa(0), 16, false };
	s[1] = (struct seg){ DATA, 0x8000, false };
	s[2] = (struct seg){ DATA + 0x10000, 0x8000, false };
	s[3] = (struct seg){ status_gpa(0), 1, true };
	head = post_chain(0, s, 4);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, 1));
	CHECK_EQ(q[0].used->ring[0].id, head);
	CHECK_EQ(q[0].used->ring[0].len, 1);
	CHECK_EQ(*status_of(0), VIRTIO_BLK_S_OK);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 1);
	CHECK(file_equals(8 * 512, DATA, 0x8000));
	CHECK(file_equals(8 * 512 + 0x8000, DATA + 0x10000, 0x8000));

	/* IN: back into fresh buffers, split differently. */
	memset(g2h(&vm.mem, DATA + 0x40000, 0x10000), 0, 0x10000);
	write_hdr(1, VIRTIO_BLK_T_IN, 8);
	s[0] = (struct seg){ hdr_gpa(1), 16, false };
	s[1] = (struct seg){ DATA + 0x40000, 0x200, true };
	s[2] = (struct seg){ DATA + 0x40200, 0x7e00, true };
	s[3] = (struct seg){ DATA + 0x48000, 0x8000, true };
	s[4] = (struct seg){ status_gpa(1), 1, true };
	head = post_chain(0, s, 5);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, 3));
	CHECK_EQ(q[0].used->ring[2].id, head);
	CHECK_EQ(q[0].used->ring[2].len, 0x10000 + 1);
	CHECK_EQ(*status_of(1), VIRTIO_BLK_S_OK);
	CHECK(!memcmp(g2h(&vm.mem, DATA + 0x40000, 0x8000), g2h(&vm.mem, DATA, 0x8000), 0x8000));
	CHECK(!memcmp(g2h(&vm.mem, DATA + 0x48000, 0x8000), g2h(&vm.mem, DATA + 0x10000, 0x8000),
		      0x8000));
	CHECK(irqs[1] >= 3 && irqs[0] == 0);
	CHECK_EQ(atomic_load(&stats(dev)->bytes_written), 0x10000);
	CHECK_EQ(atomic_load(&stats(dev)->bytes_read), 0x10000);
	CHECK_EQ(atomic_load(&stats(dev)->flushes), 1);

	/* The last sector, exactly. */
	fill(DATA, 512, 9);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, CAP - 1, DATA, 512, false, NULL), VIRTIO_BLK_S_OK);
	CHECK(file_equals(IMG_SIZE - 512, DATA, 512));
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

/* The header may share a descriptor with data, and data with the status byte. */
static void shared_segments(void)
{
	struct virtio_dev *dev = setup(1, "");
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_OUT, .sector = 100 };
	uint8_t *buf = g2h(&vm.mem, DATA, 16 + 1024);
	struct seg s[2];

	bring_up(dev, F_ALL);
	memcpy(buf, &h, 16);
	fill(DATA + 16, 1024, 5);
	*status_of(0) = 0xff;
	s[0] = (struct seg){ DATA, 16 + 1024, false };
	s[1] = (struct seg){ status_gpa(0), 1, true };
	post_chain(0, s, 2);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, 1));
	CHECK_EQ(*status_of(0), VIRTIO_BLK_S_OK);
	CHECK(file_equals(100 * 512, DATA + 16, 1024));

	/* IN whose data and status are one writable buffer. */
	write_hdr(1, VIRTIO_BLK_T_IN, 100);
	memset(g2h(&vm.mem, DATA + 0x10000, 1025), 0xff, 1025);
	s[0] = (struct seg){ hdr_gpa(1), 16, false };
	s[1] = (struct seg){ DATA + 0x10000, 1025, true };
	post_chain(0, s, 2);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, 2));
	CHECK_EQ(*(uint8_t *)g2h(&vm.mem, DATA + 0x10000 + 1024, 1), VIRTIO_BLK_S_OK);
	CHECK(!memcmp(g2h(&vm.mem, DATA + 0x10000, 1024), buf + 16, 1024));
	CHECK_EQ(q[0].used->ring[1].len, 1025);
	teardown();
}

static void bad_requests(void)
{
	struct virtio_dev *dev = setup(1, "");
	const struct virtio_blk_stats *st = stats(dev);
	uint32_t used;
	struct seg s[3];

	bring_up(dev, F_ALL);
	fill(DATA, 4096, 3);
	/* Past the end, and a sector so large that sector + length wraps. */
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_IN, CAP - 1, DATA, 1024, true, &used), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(used, 1);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, CAP, DATA, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, UINT64_MAX, DATA, 512, false, NULL),
		 VIRTIO_BLK_S_IOERR);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_IN, UINT64_MAX / 512, DATA, 512, true, NULL),
		 VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->err_range), 4);
	/* Not whole sectors. */
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_IN, 0, DATA, 1000, true, NULL), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, 0, DATA, 513, false, NULL), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->err_length), 2);
	/* Data in the wrong direction. */
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_IN, 0, DATA, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, 0, DATA, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->err_direction), 2);
	/* Unknown types, SCSI included. */
	CHECK_EQ(sync_req(dev, 99, 0, 0, 0, false, &used), VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(used, 1);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_SCSI_CMD, 0, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(atomic_load(&st->unsupported), 2);
	/* A short header. */
	*status_of(0) = 0xff;
	s[0] = (struct seg){ hdr_gpa(0), 8, false };
	s[1] = (struct seg){ status_gpa(0), 1, true };
	post_chain(0, s, 2);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, 11));
	CHECK_EQ(*status_of(0), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->err_header), 1);
	/* More data segments than seg_max (126). */
	{
		struct seg many[129];

		write_hdr(0, VIRTIO_BLK_T_IN, 0);
		many[0] = (struct seg){ hdr_gpa(0), 16, false };
		for (int i = 0; i < 127; i++)
			many[1 + i] = (struct seg){ DATA + 512ULL * i, 512, true };
		many[128] = (struct seg){ status_gpa(0), 1, true };
		post_chain(0, many, 129);
		virtio_queue_notified(dev, 0);
		CHECK(run_until(0, 12));
		CHECK_EQ(*status_of(0), VIRTIO_BLK_S_IOERR);
		CHECK_EQ(atomic_load(&st->err_segments), 1);
		/* 126 is fine. */
		write_hdr(0, VIRTIO_BLK_T_IN, 0);
		many[127] = (struct seg){ status_gpa(0), 1, true };
		post_chain(0, many, 128);
		virtio_queue_notified(dev, 0);
		CHECK(run_until(0, 13));
		CHECK_EQ(*status_of(0), VIRTIO_BLK_S_OK);
	}
	CHECK(file_zero(0, 4096)); /* nothing was written by any of these */
	CHECK(!(drv_get_status(dev) & S_RESET));
	CHECK_EQ(irqs[0], 0);

	/* No status byte at all: a protocol violation, the device needs a reset. */
	write_hdr(0, VIRTIO_BLK_T_IN, 0);
	s[0] = (struct seg){ hdr_gpa(0), 16, false };
	s[1] = (struct seg){ DATA, 512, false };
	post_chain(0, s, 2);
	virtio_queue_notified(dev, 0);
	CHECK(drv_get_status(dev) & S_RESET);
	CHECK_EQ(irqs[0], 1);
	CHECK_EQ(used_idx(0), 13);
	CHECK_EQ(atomic_load(&st->no_status), 1);
	CHECK_EQ(atomic_load(&dev->stats.violations), 1);
	teardown();
}

static void read_only(void)
{
	struct virtio_dev *dev = setup(1, ",ro");
	int fd = open(img, O_WRONLY);

	CHECK(pwrite(fd, "hello", 5, 0) == 5);
	close(fd);
	bring_up(dev, F(VIRTIO_F_VERSION_1) | F(VIRTIO_BLK_F_RO) | F(VIRTIO_BLK_F_FLUSH));
	fill(DATA, 512, 1);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, 0, DATA, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&stats(dev)->err_read_only), 1);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_IN, 0, DATA + 4096, 512, true, NULL), VIRTIO_BLK_S_OK);
	CHECK(!memcmp(g2h(&vm.mem, DATA + 4096, 5), "hello", 5));
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	/* Discard was not offered: UNSUPP. */
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_DISCARD, 0, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	teardown();
}

static void get_id(void)
{
	struct virtio_dev *dev = setup(1, ",serial=mica-disk-0");
	uint32_t used;

	bring_up(dev, F_ALL);
	memset(g2h(&vm.mem, DATA, 32), 0xee, 32);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_GET_ID, 0, DATA, VIRTIO_BLK_ID_BYTES, true, &used),
		 VIRTIO_BLK_S_OK);
	CHECK_EQ(used, VIRTIO_BLK_ID_BYTES + 1);
	CHECK(!memcmp(g2h(&vm.mem, DATA, 11), "mica-disk-0", 11));
	CHECK(guest_bytes_all(&vm.mem, DATA + 11, 9, 0));      /* zero-padded */
	CHECK(guest_bytes_all(&vm.mem, DATA + 20, 12, 0xee));  /* and no further */
	teardown();
}

/* Posts a chain on queue 0, kicks, waits for it; returns its status byte (at status slot i)
 * and *used its used length. */
static uint8_t chain_req(struct virtio_dev *dev, const struct seg *s, int n, int i, uint32_t *used)
{
	uint16_t target = (uint16_t)(used_idx(0) + 1);

	*status_of(i) = 0xff;
	post_chain(0, s, n);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, target));
	*used = q[0].used->ring[(target - 1) % QSIZE].len;
	return *status_of(i);
}

/* Requests laid out in less usual ways: parsed by byte offsets wherever the descriptors cut. */
static void request_layouts(void)
{
	struct virtio_dev *dev = setup(1, ",serial=0123456789abcdefghij");
	const struct virtio_blk_stats *st = stats(dev);
	struct virtio_blk_outhdr h = { .type = VIRTIO_BLK_T_OUT, .sector = 40 };
	struct virtio_blk_discard_write_zeroes r[2] = {
		{ .sector = 64, .num_sectors = 8 }, { .sector = 96, .num_sectors = 8 },
	};
	uint8_t *p = g2h(&vm.mem, DATA, 0x10000);
	struct seg s[4];
	uint32_t used;

	bring_up(dev, F_ALL);
	/* A header cut in two (4 + 12 bytes), then data. */
	memcpy(p, &h, 16);
	fill(DATA + 0x100, 512, 7);
	s[0] = (struct seg){ DATA, 4, false };
	s[1] = (struct seg){ DATA + 4, 12, false };
	s[2] = (struct seg){ DATA + 0x100, 512, false };
	s[3] = (struct seg){ status_gpa(0), 1, true };
	CHECK_EQ(chain_req(dev, s, 4, 0, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 1);
	CHECK(file_equals(40 * 512, DATA + 0x100, 512));

	/* A read of nothing: header and status only. */
	write_hdr(0, VIRTIO_BLK_T_IN, 40);
	s[0] = (struct seg){ hdr_gpa(0), 16, false };
	s[1] = (struct seg){ status_gpa(0), 1, true };
	CHECK_EQ(chain_req(dev, s, 2, 0, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 1);

	/* A flush with data, either way: the wrong direction. */
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_FLUSH, 0, DATA, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_FLUSH, 0, DATA, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->err_direction), 2);

	/* GET_ID into 8 bytes: the first 8 of the serial, nothing after them. */
	memset(p, 0xee, 32);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_GET_ID, 0, DATA, 8, true, &used), VIRTIO_BLK_S_OK);
	CHECK_EQ(used, 9);
	CHECK(!memcmp(p, "01234567", 8));
	CHECK(guest_bytes_all(&vm.mem, DATA + 8, 24, 0xee));
	/* ... and with device-readable data after the header: the wrong direction. */
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, false, NULL), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->err_direction), 3);

	/* DISCARD whose header and two ranges are cut at odd places (20 + 28 bytes). */
	fill(DATA + 0x1000, 0x10000 - 0x1000, 3);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, 64, DATA + 0x1000, 0x8000, false, NULL),
		 VIRTIO_BLK_S_OK);
	h = (struct virtio_blk_outhdr){ .type = VIRTIO_BLK_T_DISCARD };
	memcpy(p, &h, 16);
	memcpy(p + 16, r, sizeof(r));
	s[0] = (struct seg){ DATA, 20, false };
	s[1] = (struct seg){ DATA + 20, 28, false };
	s[2] = (struct seg){ status_gpa(0), 1, true };
	CHECK_EQ(chain_req(dev, s, 3, 0, &used), VIRTIO_BLK_S_OK);
	CHECK(file_zero(64 * 512, 8 * 512));
	CHECK(file_zero(96 * 512, 8 * 512));
	CHECK(!file_zero(72 * 512, 512));
	CHECK(!file_zero(104 * 512, 512));
	/* ... and with more than the status byte device-writable: the wrong direction. */
	s[2] = (struct seg){ DATA + 0x800, 512, true };
	s[3] = (struct seg){ status_gpa(0), 1, true };
	CHECK_EQ(chain_req(dev, s, 4, 0, &used), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->err_direction), 4);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

/* Posts a DISCARD or WRITE_ZEROES with n ranges (at hdr slot i); returns the status. */
static uint8_t dwz(struct virtio_dev *dev, uint32_t type,
		   const struct virtio_blk_discard_write_zeroes *r, int n)
{
	uint16_t target = (uint16_t)(used_idx(0) + 1);

	memcpy(g2h(&vm.mem, DATA + 0x80000, 16ULL * n), r, 16ULL * n);
	post_req(0, 0, type, 0, DATA + 0x80000, 16 * (uint32_t)n, false);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, target));
	return *status_of(0);
}

static void discard_write_zeroes(void)
{
	struct virtio_dev *dev = setup(1, "");
	const struct virtio_blk_stats *st = stats(dev);
	struct virtio_blk_discard_write_zeroes r[9];
	uint8_t s;

	bring_up(dev, F_ALL);
	/* Data everywhere in the first 256 KiB. */
	for (int i = 0; i < 4; i++) {
		fill(DATA, 0x10000, (uint32_t)i);
		CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, 128ULL * i, DATA, 0x10000, false, NULL),
			 VIRTIO_BLK_S_OK);
	}
	r[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 8, .num_sectors = 16 };
	r[1] = (struct virtio_blk_discard_write_zeroes){ .sector = 64, .num_sectors = 8 };
	s = dwz(dev, VIRTIO_BLK_T_DISCARD, r, 2);
	if (s == VIRTIO_BLK_S_UNSUPP) {
		printf("# SKIP discard: fallocate(PUNCH_HOLE) not supported on /tmp\n");
	} else {
		CHECK_EQ(s, VIRTIO_BLK_S_OK);
		memset(g2h(&vm.mem, DATA, 0x10000), 0xff, 0x10000);
		CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_IN, 0, DATA, 0x10000, true, NULL), VIRTIO_BLK_S_OK);
		CHECK(!guest_bytes_all(&vm.mem, DATA, 8 * 512, 0));
		CHECK(guest_bytes_all(&vm.mem, DATA + 8 * 512, 16 * 512, 0));
		CHECK(!guest_bytes_all(&vm.mem, DATA + 24 * 512, 40 * 512, 0));
		CHECK(guest_bytes_all(&vm.mem, DATA + 64 * 512, 8 * 512, 0));
		CHECK(!guest_bytes_all(&vm.mem, DATA + 72 * 512, 512, 0));
		CHECK(file_zero(8 * 512, 16 * 512));
	}
	/* WRITE_ZEROES, plain (ZERO_RANGE) and with UNMAP (punch). */
	r[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 130, .num_sectors = 3 };
	r[1] = (struct virtio_blk_discard_write_zeroes){
		.sector = 300, .num_sectors = 20, .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_WRITE_ZEROES, r, 2), VIRTIO_BLK_S_OK);
	CHECK(file_zero(130 * 512, 3 * 512));
	CHECK(file_zero(300 * 512, 20 * 512));
	CHECK(!file_zero(129 * 512, 512));
	CHECK(!file_zero(133 * 512, 512));
	CHECK(!file_zero(299 * 512, 512));
	CHECK(!file_zero(320 * 512, 512));
	CHECK_EQ(atomic_load(&st->discards), 1);
	CHECK_EQ(atomic_load(&st->write_zeroes), 1);

	/* Flags: unknown ones, or UNMAP on a discard: UNSUPP. */
	r[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = 1, .flags = 2 };
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_WRITE_ZEROES, r, 1), VIRTIO_BLK_S_UNSUPP);
	r[0].flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_DISCARD, r, 1), VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(atomic_load(&st->err_flags), 2);
	/* Beyond the disk, wrapping, beyond the limits. */
	r[0] = (struct virtio_blk_discard_write_zeroes){ .sector = CAP - 1, .num_sectors = 2 };
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_DISCARD, r, 1), VIRTIO_BLK_S_IOERR);
	r[0] = (struct virtio_blk_discard_write_zeroes){ .sector = UINT64_MAX, .num_sectors = 2 };
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_WRITE_ZEROES, r, 1), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->err_range), 2);
	r[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = UINT32_MAX };
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_DISCARD, r, 1), VIRTIO_BLK_S_IOERR);
	for (int i = 0; i < 9; i++)
		r[i] = (struct virtio_blk_discard_write_zeroes){ .sector = i, .num_sectors = 1 };
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_DISCARD, r, 9), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->err_limits), 2);
	/* A payload that is not whole ranges. */
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_DISCARD, 0, DATA, 20, false, NULL), VIRTIO_BLK_S_IOERR);
	CHECK_EQ(atomic_load(&st->err_length), 1);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();

	/* Not negotiated: UNSUPP. */
	dev = setup(1, "");
	bring_up(dev, F(VIRTIO_F_VERSION_1));
	r[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 0, .num_sectors = 1 };
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_DISCARD, r, 1), VIRTIO_BLK_S_UNSUPP);
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_WRITE_ZEROES, r, 1), VIRTIO_BLK_S_UNSUPP);
	teardown();
}

/* Many requests in one notification: one submission (the adjacent writes merged into one
 * operation), all complete, few interrupts. */
static void batching(void)
{
	struct virtio_dev *dev = setup(1, "");
	const struct virtio_blk_stats *st = stats(dev);

	bring_up(dev, F_ALL);
	for (int i = 0; i < 32; i++) {
		fill(DATA + 0x1000ULL * i, 0x1000, (uint32_t)i);
		post_req(0, i, VIRTIO_BLK_T_OUT, 8ULL * i, DATA + 0x1000ULL * i, 0x1000, false);
	}
	virtio_queue_notified(dev, 0);
	CHECK_EQ(atomic_load(&st->batches), 1);
	CHECK_EQ(atomic_load(&st->merged), 31);
	CHECK(run_until(0, 32));
	for (int i = 0; i < 32; i++)
		CHECK_EQ(*status_of(i), VIRTIO_BLK_S_OK);
	CHECK(irqs[1] >= 1 && irqs[1] <= 32);
	CHECK(file_equals(0, DATA, 32 * 0x1000));
	/* Reads of what was just written come from the page cache: through io_uring they complete
	 * within the notification itself (reaped inline, no trip through the event loop), and the
	 * queue is signalled once for all of them. */
	if (!threads_backend) {
		uint16_t done = used_idx(0);
		int irqs0 = irqs[1];

		for (int i = 0; i < 32; i++)
			post_req(0, i, VIRTIO_BLK_T_IN, 8ULL * i, DATA + 0x100000 + 0x1000ULL * i, 0x1000,
				 true);
		virtio_queue_notified(dev, 0);
		CHECK_EQ(used_idx(0), (uint16_t)(done + 32));
		CHECK_EQ(irqs[1], irqs0 + 1);
		CHECK(!memcmp(g2h(&vm.mem, DATA + 0x100000, 32 * 0x1000), g2h(&vm.mem, DATA, 32 * 0x1000),
			      32 * 0x1000));
	}
	/* Writethrough (the driver cleared wce): writes still land. */
	{
		uint8_t v = 0;

		drv_config_write(dev, offsetof(struct virtio_blk_config, wce), &v, 1);
	}
	fill(DATA, 0x1000, 77);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, 0, DATA, 0x1000, false, NULL), VIRTIO_BLK_S_OK);
	CHECK(file_equals(0, DATA, 0x1000));
	/* Writethrough write-zeroes: the fallocates and a linked fdatasync. */
	{
		struct virtio_blk_discard_write_zeroes r[2] = {
			{ .sector = 0, .num_sectors = 2 }, { .sector = 4, .num_sectors = 1 } };
		uint8_t s = dwz(dev, VIRTIO_BLK_T_WRITE_ZEROES, r, 2);

		CHECK(s == VIRTIO_BLK_S_OK || s == VIRTIO_BLK_S_UNSUPP);
		if (s == VIRTIO_BLK_S_OK) {
			CHECK(file_zero(0, 1024));
			CHECK(!file_zero(1024, 1024));
			CHECK(file_zero(2048, 512));
		}
	}
	teardown();
}

/* The used entry of queue 0's n-th completion. */
static struct vring_used_elem used_elem(uint16_t n)
{
	return q[0].used->ring[n % QSIZE];
}

/* Adjacent reads and writes of one batch merge into one operation up to BLK_SEG_MAX iovecs and
 * 4 MiB; nothing merges across another operation, a gap, or a different request type; every
 * merged request completes on its own, with its own used length, in queue order; a failure
 * of the merged operation fails each of them. */
static void merging(void)
{
	const uint32_t mib = 1U << 20;
	const struct virtio_blk_stats *st;
	struct virtio_dev *dev;
	uint16_t heads[64];
	int fd;

	setup_vm(1);
	make_image(8 * mib);
	dev = create("");
	st = stats(dev);
	bring_up(dev, F_ALL);

	/* Five adjacent 1 MiB writes (of one buffer): 4 MiB merged, then the fifth alone. */
	fill(DATA, mib, 99);
	for (int i = 0; i < 5; i++)
		post_req(0, i, VIRTIO_BLK_T_OUT, 2048ULL * i, DATA, mib, false);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, 5));
	CHECK_EQ(atomic_load(&st->merged), 3);
	CHECK_EQ(atomic_load(&st->bytes_written), 5ULL * mib);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ(*status_of(i), VIRTIO_BLK_S_OK);
		CHECK(file_equals((off_t)i * mib, DATA, mib));
	}

	/* 64 adjacent reads of two one-sector buffers each (the whole descriptor table): 126
	 * iovecs at most, so 63 reads merge into one operation and the last is alone. Each read's
	 * used length is its own, and a merged operation's entries come in the order of its
	 * requests. */
	fill(DATA, 128 * 512, 5);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, 0, DATA, 128 * 512, false, NULL), VIRTIO_BLK_S_OK);
	memset(g2h(&vm.mem, DATA + mib, 128 * 512), 0, 128 * 512);
	atomic_store(&((struct virtio_blk_stats *)st)->merged, 0);
	for (int i = 0; i < 64; i++) {
		struct seg sg[4] = {
			{ hdr_gpa(i), 16, false },
			{ DATA + mib + 1024ULL * i, 512, true },
			{ DATA + mib + 1024ULL * i + 512, 512, true },
			{ status_gpa(i), 1, true },
		};

		write_hdr(i, VIRTIO_BLK_T_IN, 2ULL * i);
		heads[i] = post_chain(0, sg, 4);
	}
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, 6 + 64));
	CHECK_EQ(atomic_load(&st->merged), 62);
	for (int i = 0; i < 64; i++) {
		/* The two operations may complete in either order; within one, in queue order. */
		int k = used_elem(6).id == heads[63] ? (i + 63) % 64 : i;

		CHECK_EQ(*status_of(i), VIRTIO_BLK_S_OK);
		CHECK_EQ(used_elem((uint16_t)(6 + i)).id, heads[k]);
		CHECK_EQ(used_elem((uint16_t)(6 + i)).len, 1025);
	}
	CHECK(!memcmp(g2h(&vm.mem, DATA + mib, 128 * 512), g2h(&vm.mem, DATA, 128 * 512), 128 * 512));

	/* No merge across a flush, a gap, a change of direction, or a write-zeroes. */
	atomic_store(&((struct virtio_blk_stats *)st)->merged, 0);
	post_req(0, 0, VIRTIO_BLK_T_OUT, 0, DATA, 4096, false);
	post_req(0, 1, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false);
	post_req(0, 2, VIRTIO_BLK_T_OUT, 8, DATA, 4096, false);
	post_req(0, 3, VIRTIO_BLK_T_OUT, 24, DATA, 4096, false);    /* a gap */
	post_req(0, 4, VIRTIO_BLK_T_IN, 32, DATA + mib, 4096, true); /* a read */
	post_req(0, 5, VIRTIO_BLK_T_OUT, 40, DATA, 4096, false);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, 70 + 6));
	CHECK_EQ(atomic_load(&st->merged), 0);
	for (int i = 0; i < 6; i++)
		CHECK_EQ(*status_of(i), VIRTIO_BLK_S_OK);

	/* The image shrinks under the device: a merged read that runs past its new end fails,
	 * and so does every request merged into it (the first one too, whose own range is still
	 * there): each one's status says IOERR and its used length is the status byte alone. */
	fd = open(img, O_WRONLY);
	CHECK(fd >= 0 && ftruncate(fd, 6144) == 0);
	close(fd);
	memset(g2h(&vm.mem, DATA + mib, 16384), 0xab, 16384);
	for (int i = 0; i < 4; i++)
		heads[i] = post_req(0, i, VIRTIO_BLK_T_IN, 8ULL * i, DATA + mib + 4096ULL * i, 4096,
				    true);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, 76 + 4));
	CHECK_EQ(atomic_load(&st->merged), 3);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(*status_of(i), VIRTIO_BLK_S_IOERR);
		CHECK_EQ(used_elem((uint16_t)(76 + i)).id, heads[i]);
		CHECK_EQ(used_elem((uint16_t)(76 + i)).len, 1);
	}
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

/* Two queues, requests in flight on both at once. */
static void two_queues(void)
{
	struct virtio_dev *dev = setup(2, "");

	bring_up(dev, F_ALL);
	CHECK_EQ(dev->ops->num_queues, 2);
	for (int i = 0; i < 16; i++) {
		int qn = i & 1;

		fill(DATA + 0x1000ULL * i, 0x1000, (uint32_t)i + 40);
		post_req(qn, i, VIRTIO_BLK_T_OUT, 8ULL * i, DATA + 0x1000ULL * i, 0x1000, false);
	}
	virtio_queue_notified(dev, 0);
	virtio_queue_notified(dev, 1);
	CHECK(run_until(0, 8));
	CHECK(run_until(1, 8));
	CHECK(irqs[1] >= 1 && irqs[2] >= 1);
	for (int i = 0; i < 16; i++)
		CHECK_EQ(*status_of(i), VIRTIO_BLK_S_OK);
	CHECK(file_equals(0, DATA, 16 * 0x1000));
	/* Reads on both. */
	for (int i = 0; i < 16; i++)
		post_req(i & 1, i, VIRTIO_BLK_T_IN, 8ULL * i, DATA + 0x100000 + 0x1000ULL * i, 0x1000,
			 true);
	virtio_queue_notified(dev, 1);
	virtio_queue_notified(dev, 0);
	CHECK(run_until(0, 16));
	CHECK(run_until(1, 16));
	CHECK(!memcmp(g2h(&vm.mem, DATA + 0x100000, 0x10000), g2h(&vm.mem, DATA, 0x10000), 0x10000));
	teardown();
}

/* A driver re-posting one chain more often than there are slots: the queue stops popping and
 * resumes as completions come back. */
static void more_requests_than_slots(void)
{
	struct virtio_dev *dev = setup(1, "");
	struct seg s[3];
	uint16_t head;

	bring_up(dev, F_ALL);
	write_hdr(0, VIRTIO_BLK_T_IN, 0);
	s[0] = (struct seg){ hdr_gpa(0), 16, false };
	s[1] = (struct seg){ DATA, 512, true };
	s[2] = (struct seg){ status_gpa(0), 1, true };
	head = post_chain(0, s, 3);
	for (int i = 1; i < QSIZE; i++)
		drv_post(&q[0], head);
	/* A budget's worth now, the rest as the loop comes back to the queue; the driver may post
	 * more only once the device took these (else the avail index runs more than a queue
	 * ahead: a violation). */
	virtio_queue_notified(dev, 0);
	CHECK(run_until_n(0, QSIZE, true));
	for (int i = 0; i < 100; i++)
		drv_post(&q[0], head);
	virtio_queue_notified(dev, 0);      /* slots may be all taken: throttled */
	CHECK(run_until(0, QSIZE + 100));
	CHECK_EQ(*status_of(0), VIRTIO_BLK_S_OK);
	CHECK_EQ(atomic_load(&stats(dev)->reads), QSIZE + 100);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

/* A reset with requests in flight waits for them and writes nothing back; the device works
 * afterwards with all its slots. The reads go to an image with data on disk and none in the
 * page cache, 256 KiB apart (beyond readahead), so that they wait for the disk: a read the
 * page cache serves completes within the notification (the device reaps it inline). */
static void reset_in_flight(void)
{
	const uint32_t size = 16U << 20;
	struct virtio_dev *dev;
	uint8_t before[64];
	uint16_t done;
	char *buf = malloc(size);
	int fd;

	setup_vm(1);
	make_image(size);
	memset(buf, 0x5a, size);
	fd = open(img, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, buf, size, 0) == (ssize_t)size && fsync(fd) == 0 &&
	      posix_fadvise(fd, 0, size, POSIX_FADV_DONTNEED) == 0);
	close(fd);
	free(buf);
	dev = create("");
	bring_up(dev, F_ALL);
	for (int i = 0; i < 64; i++)
		post_req(0, i, VIRTIO_BLK_T_IN, 512ULL * i, DATA + 0x1000ULL * i, 0x1000, true);
	virtio_queue_notified(dev, 0);
	done = used_idx(0);
	memcpy(before, status_of(0), sizeof(before));
	drv_set_status(dev, 0);
	run_for(100);
	/* What completed before the reset stays; nothing more is written back. */
	CHECK_EQ(used_idx(0), done);
	CHECK(!memcmp(status_of(0), before, sizeof(before)));
	for (int i = 0; i < 64; i++)
		CHECK(before[i] == 0xff || before[i] == VIRTIO_BLK_S_OK);

	/* Up again, on fresh rings: a full queue's worth of requests twice. */
	bring_up(dev, F_ALL);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 64; i++)
			post_req(0, i, VIRTIO_BLK_T_IN, 0, DATA + 0x1000ULL * i, 0x1000, true);
		virtio_queue_notified(dev, 0);
		CHECK(run_until(0, (uint16_t)(64 * (round + 1))));
	}
	for (int i = 0; i < 64; i++)
		CHECK_EQ(*status_of(i), VIRTIO_BLK_S_OK);
	teardown();
	if (done == 64)
		TEST_SKIP("every read completed within the notification: none was in flight at the "
			  "reset");
}

static void cache_none(void)
{
	struct virtio_dev *dev;
	struct blk_opts o;
	struct err e = { "" };
	char spec[128];
	int fd;

	setup_vm(1);
	make_image(IMG_SIZE);
	fd = open(img, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		printf("# SKIP cache=none: no O_DIRECT on /tmp\n");
		teardown();
		return;
	}
	close(fd);
	snprintf(spec, sizeof(spec), "%s,cache=none", img);
	CHECK_EQ(blk_parse_opts(spec, &o, &e), 0);
	dev = blk_new(&o, &e);
	CHECK(dev != NULL);
	if (!dev) {
		teardown();
		return;
	}
	bring_up(dev, F_ALL);
	/* Aligned (O_DIRECT) and unaligned (the buffered descriptor) buffers. */
	fill(DATA, 0x2000, 11);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, 0, DATA, 0x2000, false, NULL), VIRTIO_BLK_S_OK);
	fill(DATA + 0x10010, 0x400, 12);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, 17, DATA + 0x10010, 0x400, false, NULL),
		 VIRTIO_BLK_S_OK);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	CHECK(file_equals(0, DATA, 0x2000));
	CHECK(file_equals(17 * 512, DATA + 0x10010, 0x400));
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_IN, 0, DATA + 0x20000, 0x2000, true, NULL),
		 VIRTIO_BLK_S_OK);
	CHECK(!memcmp(g2h(&vm.mem, DATA + 0x20000, 0x2000), g2h(&vm.mem, DATA, 0x2000), 0x2000));
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_IN, 17, DATA + 0x30008, 0x400, true, NULL),
		 VIRTIO_BLK_S_OK);
	CHECK(!memcmp(g2h(&vm.mem, DATA + 0x30008, 0x400), g2h(&vm.mem, DATA + 0x10010, 0x400),
		      0x400));
	teardown();
}

static void image_lock(void)
{
	struct blk_opts o;
	struct virtio_dev *a, *b;
	struct err e = { "" };

	setup_vm(1);
	make_image(IMG_SIZE);
	CHECK_EQ(blk_parse_opts(img, &o, &e), 0);
	a = blk_new(&o, &e);
	CHECK(a != NULL);
	b = blk_new(&o, &e);
	CHECK(b == NULL);
	CHECK(b == NULL && strstr(e.msg, "is in use by another process (locked)") && strstr(e.msg, img));
	/* Read-only while another writes: no either. */
	o.ro = true;
	e.msg[0] = 0;
	CHECK(blk_new(&o, &e) == NULL);
	CHECK(strstr(e.msg, "locked"));
	teardown();

	/* Two read-only users share the image. */
	setup_vm(1);
	make_image(IMG_SIZE);
	CHECK_EQ(blk_parse_opts(img, &o, &e), 0);
	o.ro = true;
	CHECK(blk_new(&o, &e) != NULL);
	CHECK(blk_new(&o, &e) != NULL);
	o.ro = false;
	CHECK(blk_new(&o, &e) == NULL);
	teardown();

	/* Not an image, and missing. */
	setup_vm(1);
	CHECK_EQ(blk_parse_opts("/tmp", &o, &e), 0);
	o.ro = true;
	CHECK(blk_new(&o, &e) == NULL);
	CHECK(strstr(e.msg, "not a regular file or a block device"));
	CHECK_EQ(blk_parse_opts("/nonexistent/disk.img", &o, &e), 0);
	CHECK(blk_new(&o, &e) == NULL);
	CHECK(strstr(e.msg, "cannot open image /nonexistent/disk.img"));
	evloop_destroy(&vm.loop);
	guest_mem_destroy(&vm.mem);
}

/* WRITE_ZEROES on an image in dir: every range reads back zero, plain ranges stay allocated
 * (no hole), the data around them is untouched, and a second request, made with the method
 * the first one settled on, works too. A range of 9 MiB takes several writes where the file
 * system can only be written. */
static void write_zeroes_in(const char *dir)
{
	const off_t size = 12 << 20;
	const uint64_t big = 2048, nbig = 9 << 11; /* sectors: 1 MiB + 9 MiB */
	struct virtio_blk_discard_write_zeroes r[3] = {
		{ .sector = 1, .num_sectors = 3 },
		{ .sector = 10, .num_sectors = 20, .flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP },
		{ .sector = big, .num_sectors = (uint32_t)nbig },
	};
	static uint8_t ones[1 << 20];
	struct virtio_dev *dev;
	struct stat st;
	blkcnt_t blocks;
	int fd;

	img_dir = dir;
	setup_vm(1);
	make_image(size);
	memset(ones, 0x5a, sizeof(ones));
	fd = open(img, O_WRONLY);
	for (off_t at = 0; at < size; at += (off_t)sizeof(ones))
		CHECK(pwrite(fd, ones, sizeof(ones), at) == (ssize_t)sizeof(ones));
	close(fd);
	CHECK(stat(img, &st) == 0);
	blocks = st.st_blocks ? st.st_blocks : 20; /* ramfs counts none */
	dev = create("");
	img_dir = "/tmp";
	bring_up(dev, F_ALL);
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_WRITE_ZEROES, r, 3), VIRTIO_BLK_S_OK);
	CHECK(file_zero(512, 3 * 512) && file_zero(10 * 512, 20 * 512));
	for (uint64_t s = big; s < big + nbig; s += 2048)
		CHECK(file_zero((off_t)s * 512, 1 << 20));
	CHECK(!file_zero(0, 512) && !file_zero(4 * 512, 512) && !file_zero(9 * 512, 512));
	CHECK(!file_zero(30 * 512, 512) && !file_zero((off_t)(big - 1) * 512, 512));
	CHECK(!file_zero((off_t)(big + nbig) * 512, 512));
	/* Still allocated but for what UNMAP may have punched (st_blocks: 512-byte units). */
	CHECK(stat(img, &st) == 0 && st.st_blocks >= blocks - 20);
	r[0] = (struct virtio_blk_discard_write_zeroes){ .sector = 40, .num_sectors = 8 };
	CHECK_EQ(dwz(dev, VIRTIO_BLK_T_WRITE_ZEROES, r, 1), VIRTIO_BLK_S_OK);
	CHECK(file_zero(40 * 512, 8 * 512) && !file_zero(48 * 512, 512));
	CHECK_EQ(atomic_load(&stats(dev)->write_zeroes), 2);
	teardown();
}

/* ext4 (or whatever /tmp is) zeroes ranges in place. */
static void write_zeroes_tmp(void) { write_zeroes_in("/tmp"); }

/* tmpfs cannot FALLOC_FL_ZERO_RANGE: punch-hole then allocate. */
static void write_zeroes_tmpfs(void)
{
	struct statfs sf;

	if (statfs("/dev/shm", &sf) < 0 || sf.f_type != TMPFS_MAGIC)
		TEST_SKIP("/dev/shm is not a tmpfs");
	write_zeroes_in("/dev/shm");
}

/* ramfs has no fallocate at all: writes of zeroes. */
static void write_zeroes_ramfs(void)
{
	char dir[] = "/tmp/mica-ramfs-XXXXXX";

	if (!mkdtemp(dir))
		TEST_SKIP("no temporary directory");
	if (mount("mica-test", dir, "ramfs", 0, NULL) < 0) {
		rmdir(dir);
		TEST_SKIP("cannot mount a ramfs (needs root)");
	}
	write_zeroes_in(dir);
	umount(dir);
	rmdir(dir);
}

/* The driver turns the write cache off (CONFIG_WCE) with writes in flight: from then on it sends
 * no FLUSH and takes a completed write as durable, so the device completes them, and flushes
 * the image, before the config write returns. The writes (64 of 32 KiB) are 64 KiB apart:
 * none merges with the next. The test does not run the event loop here: a completion it sees
 * came from the config write. */
static void cache_off_in_flight(void)
{
	const uint32_t n = 64, len = 32 << 10;
	struct virtio_dev *dev;
	uint16_t before;
	uint8_t v = 0;
	int irqs0;

	setup_vm(1);
	make_image(2 * n * len);
	dev = create("");
	bring_up(dev, F_ALL);
	for (uint32_t i = 0; i < n; i++) {
		fill(DATA + (uint64_t)len * i, len, i + 100);
		post_req(0, (int)i, VIRTIO_BLK_T_OUT, 2ULL * len / 512 * i, DATA + (uint64_t)len * i,
			 len, false);
	}
	virtio_queue_notified(dev, 0);
	before = used_idx(0);
	irqs0 = irqs[1];
	drv_config_write(dev, offsetof(struct virtio_blk_config, wce), &v, 1);
	CHECK_EQ(used_idx(0), n);
	if (before < n)
		CHECK(irqs[1] > irqs0);
	for (uint32_t i = 0; i < n; i++) {
		CHECK_EQ(*status_of((int)i), VIRTIO_BLK_S_OK);
		CHECK(file_equals(2LL * len * i, DATA + (uint64_t)len * i, len));
	}
	/* Writethrough from here: a write completes as before. */
	fill(DATA, 0x1000, 9);
	CHECK_EQ(sync_req(dev, VIRTIO_BLK_T_OUT, 0, DATA, 0x1000, false, NULL), VIRTIO_BLK_S_OK);
	CHECK(file_equals(0, DATA, 0x1000));
	teardown();
	if (before == n)
		TEST_SKIP("every write completed within the notification: none was in flight");
}

#define BOTH(fn) \
	static void fn##_io_uring(void) { threads_backend = false; fn(); } \
	static void fn##_threads(void) { threads_backend = true; fn(); }

BOTH(config_space)
BOTH(write_flush_read)
BOTH(shared_segments)
BOTH(bad_requests)
BOTH(read_only)
BOTH(get_id)
BOTH(request_layouts)
BOTH(discard_write_zeroes)
BOTH(write_zeroes_tmp)
BOTH(write_zeroes_tmpfs)
BOTH(write_zeroes_ramfs)
BOTH(batching)
BOTH(merging)
BOTH(two_queues)
BOTH(more_requests_than_slots)
BOTH(reset_in_flight)
BOTH(cache_none)
BOTH(cache_off_in_flight)

#define T2(fn) T(fn##_io_uring), T(fn##_threads)

TEST_MAIN("virtio-blk",
	  T(options),
	  T(image_lock),
	  T2(config_space),
	  T2(write_flush_read),
	  T2(shared_segments),
	  T2(bad_requests),
	  T2(read_only),
	  T2(get_id),
	  T2(request_layouts),
	  T2(discard_write_zeroes),
	  T2(write_zeroes_tmp),
	  T2(write_zeroes_tmpfs),
	  T2(write_zeroes_ramfs),
	  T2(batching),
	  T2(merging),
	  T2(two_queues),
	  T2(more_requests_than_slots),
	  T2(reset_in_flight),
	  T2(cache_none),
	  T2(cache_off_in_flight))
