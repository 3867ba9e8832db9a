/* virtio-balloon driven as a guest driver would, through a fake transport that counts
 * interrupts, and its control commands through a real control socket: inflate lists (pages
 * really released with madvise, PFNs outside RAM ignored), deflate, the stats buffer held until
 * `balloon-stats` gives it back, the host's target. No KVM. */
#include <errno.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "tests/unit/test_env.h"
#include "tests/unit/test.h"
#include "tests/unit/vring_driver.h"
#include "vmm/control.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define RAM     (16 * 1024 * 1024ULL)
#define QSIZE   16
#define PAGES   0x800000ULL  /* the pages the tests give to the balloon */
#define LISTS   0xC00000ULL  /* PFN lists and stats buffers, 4 KiB apart */
#define PFN(gpa) ((uint32_t)((gpa) >> VIRTIO_BALLOON_PFN_SHIFT))

#define INFLATE 0
#define DEFLATE 1
#define STATS   2

#define S_ACK   VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV   VIRTIO_CONFIG_S_DRIVER
#define S_FOK   VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK   VIRTIO_CONFIG_S_DRIVER_OK
#define S_RESET VIRTIO_CONFIG_S_NEEDS_RESET

#define F_ALL ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_BALLOON_F_STATS_VQ) | \
	       (1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM))

static struct drv q[3];
static uint16_t next_desc[3];
static char sock_path[64];
static int ctl_fd = -1;
static struct control *control;

/* The driver's side of bring-up: every feature, the three queues, DRIVER_OK. */
static void driver_up(struct virtio_dev *dev)
{
	CHECK(drv_negotiate(dev, F_ALL));
	for (int n = 0; n < 3; n++)
		drv_attach_queue(dev, &q[n], &vm.mem, n, QSIZE);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK);
}

/* A VM with a balloon, its control socket connected, and the driver up to DRIVER_OK. */
static struct virtio_dev *setup(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct virtio_dev *dev;
	struct err e;

	log_set_level(LOG_ERROR); /* the guest errors provoked here are expected */
	test_vm_init(RAM);
	memset(irqs, 0, sizeof(irqs));
	memset(next_desc, 0, sizeof(next_desc));
	if (control_create(&vm.loop, &control) || virtio_balloon_create(&vm.env, control, &dev))
		abort();
	test_vm_plug(dev);
	snprintf(sock_path, sizeof(sock_path), "/tmp/mica-balloon-%d.sock", (int)getpid());
	if (control_listen(control, sock_path, &e) < 0) {
		printf("#   control_listen: %s\n", e.msg);
		abort();
	}
	strcpy(sa.sun_path, sock_path);
	ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl_fd < 0 || connect(ctl_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();

	driver_up(dev);
	CHECK_EQ(drv_get_status(dev), S_ACK | S_DRV | S_FOK | S_DOK);
	return dev;
}

static void teardown(void)
{
	close(ctl_fd);
	control_destroy(control);
	test_vm_destroy();
}

/* Sends one control command and runs the event loop until its one-line reply is in (5 s at
 * most). */
static void ctl(const char *cmd, char *reply, size_t len)
{
	size_t got = 0;

	if (write(ctl_fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd) || write(ctl_fd, "\n", 1) != 1)
		abort();
	for (int tries = 0; !got || reply[got - 1] != '\n'; tries++) {
		struct epoll_event evs[4];
		int n = epoll_wait(vm.loop.epfd, evs, 4, 10);
		ssize_t r;

		if (tries == 500) {
			printf("#   no reply to '%s'\n", cmd);
			abort();
		}

		for (int k = 0; k < n; k++) {
			struct ev_handler *h = evs[k].data.ptr;

			h->fn(h, evs[k].events);
		}
		r = recv(ctl_fd, reply + got, len - 1 - got, MSG_DONTWAIT);
		if (r > 0)
			got += (size_t)r;
		else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || got == len - 1)
			abort();
	}
	reply[got - 1] = 0;
}

/* One device-readable buffer of len bytes at gpa, posted on queue qn. */
static uint16_t post(int qn, uint64_t gpa, uint32_t len, uint16_t flags)
{
	uint16_t head = next_desc[qn]++;

	drv_desc(&q[qn], head, gpa, len, flags, 0);
	drv_post(&q[qn], head);
	return head;
}

/* A list of PFNs at LISTS + 4 KiB * slot, posted on queue qn and kicked. */
static void send_pfns(struct virtio_dev *dev, int qn, int slot, const uint32_t *pfns, uint32_t n)
{
	uint64_t gpa = LISTS + 0x1000ULL * slot;

	memcpy(g2h(&vm.mem, gpa, 4ULL * n), pfns, 4ULL * n);
	post(qn, gpa, 4 * n, 0);
	virtio_queue_notified(dev, qn);
}

/* ---- tests ---- */

/* Listed pages are given back to the host (they read as zero afterwards), contiguous or not;
 * pages not listed keep their content; the report counts what was released, net of
 * deflation. */
static void inflate_and_deflate(void)
{
	struct virtio_dev *dev = setup();
	static uint32_t pfns[1024];
	char reply[256];

	memset(g2h(&vm.mem, PAGES, 0x400000), 0xaa, 0x400000);
	for (uint32_t i = 0; i < 512; i++) /* 2 MiB: pages 0, 2, 4, ... of 4 MiB */
		pfns[i] = PFN(PAGES) + 2 * i;
	send_pfns(dev, INFLATE, 0, pfns, 512);
	CHECK_EQ(q[INFLATE].used->idx, 1);
	CHECK_EQ(q[INFLATE].used->ring[0].id, 0);
	CHECK_EQ(q[INFLATE].used->ring[0].len, 0);
	CHECK_EQ(irqs[1 + INFLATE], 1);
	CHECK(guest_bytes_all(&vm.mem, PAGES, 4096, 0));
	CHECK(guest_bytes_all(&vm.mem, PAGES + 4096, 4096, 0xaa));
	CHECK(guest_bytes_all(&vm.mem, PAGES + 0x3fe000, 4096, 0));
	CHECK(guest_bytes_all(&vm.mem, PAGES + 0x3ff000, 4096, 0xaa));
	ctl("balloon", reply, sizeof(reply));
	CHECK(strstr(reply, "ok ") == reply);
	CHECK(strstr(reply, "2 MiB released to the host"));

	/* One contiguous run of 1 MiB, listed in two buffers of one chain. */
	for (uint32_t i = 0; i < 256; i++)
		pfns[i] = PFN(PAGES + 0x400000) + i;
	memset(g2h(&vm.mem, PAGES + 0x400000, 0x100000), 0x55, 0x100000);
	memcpy(g2h(&vm.mem, LISTS + 0x1000, 1024), pfns, 1024);
	drv_desc(&q[INFLATE], 1, LISTS + 0x1000, 400, VRING_DESC_F_NEXT, 2);
	drv_desc(&q[INFLATE], 2, LISTS + 0x1000 + 400, 624, 0, 0);
	drv_post(&q[INFLATE], 1);
	next_desc[INFLATE] = 3;
	virtio_queue_notified(dev, INFLATE);
	CHECK_EQ(q[INFLATE].used->idx, 2);
	CHECK(guest_bytes_all(&vm.mem, PAGES + 0x400000, 0x100000, 0));
	ctl("balloon", reply, sizeof(reply));
	CHECK(strstr(reply, "3 MiB released to the host"));

	/* Deflate: the pages come back on use; the count drops. */
	send_pfns(dev, DEFLATE, 2, pfns, 256);
	CHECK_EQ(q[DEFLATE].used->idx, 1);
	CHECK_EQ(q[DEFLATE].used->ring[0].len, 0);
	ctl("balloon", reply, sizeof(reply));
	CHECK(strstr(reply, "2 MiB released to the host"));
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

/* PFNs beyond RAM (or so large that the address wraps 32 bits of PFN) are skipped, the rest of
 * the list still counts, and nothing breaks. */
static void pfns_outside_ram(void)
{
	struct virtio_dev *dev = setup();
	const uint32_t pfns[] = { PFN(RAM), PFN(RAM) + 255, 0xfffff, 0x100000, 0xffffffff,
				  PFN(PAGES) };
	char reply[256];

	memset(g2h(&vm.mem, PAGES, 2 * 4096), 0xaa, 2 * 4096);
	memset(g2h(&vm.mem, RAM - 4096, 4096), 0xaa, 4096);
	send_pfns(dev, INFLATE, 0, pfns, sizeof(pfns) / 4);
	CHECK_EQ(q[INFLATE].used->idx, 1);
	CHECK(guest_bytes_all(&vm.mem, PAGES, 4096, 0));
	CHECK(guest_bytes_all(&vm.mem, PAGES + 4096, 4096, 0xaa));
	CHECK(guest_bytes_all(&vm.mem, RAM - 4096, 4096, 0xaa));
	/* A trailing partial PFN (2 bytes) is ignored too. */
	post(INFLATE, LISTS, 6, 0);
	virtio_queue_notified(dev, INFLATE);
	CHECK_EQ(q[INFLATE].used->idx, 2);
	ctl("balloon", reply, sizeof(reply));
	CHECK(strstr(reply, "0 MiB released to the host"));
	CHECK(!(drv_get_status(dev) & S_RESET));
	CHECK_EQ(irqs[0], 0);

	/* A device-writable buffer on the inflate queue: a violation. */
	post(INFLATE, LISTS, 4, VRING_DESC_F_WRITE);
	virtio_queue_notified(dev, INFLATE);
	CHECK(drv_get_status(dev) & S_RESET);
	CHECK_EQ(q[INFLATE].used->idx, 2);
	CHECK_EQ(irqs[0], 1);
	teardown();
}

/* The driver's stats buffer is held until the host asks for new statistics; unknown tags are
 * ignored; a reset drops the held buffer. */
static void stats_buffer(void)
{
	struct virtio_dev *dev = setup();
	struct virtio_balloon_stat st[3] = {
		{ .tag = VIRTIO_BALLOON_S_MEMFREE, .val = 123456789 },
		{ .tag = 77, .val = 1 },
		{ .tag = VIRTIO_BALLOON_S_MEMTOT, .val = 987654321 },
	};
	char reply[512];

	memcpy(g2h(&vm.mem, LISTS, sizeof(st)), st, sizeof(st));
	post(STATS, LISTS, sizeof(st), 0);
	virtio_queue_notified(dev, STATS);
	CHECK_EQ(q[STATS].used->idx, 0); /* held */
	ctl("balloon-stats", reply, sizeof(reply));
	CHECK(!strcmp(reply, "ok updates 1 free-memory 123456789 total-memory 987654321"));
	CHECK_EQ(q[STATS].used->idx, 1); /* given back for the next update */
	CHECK_EQ(q[STATS].used->ring[0].id, 0);
	CHECK_EQ(q[STATS].used->ring[0].len, 0);
	CHECK_EQ(irqs[1 + STATS], 1);
	/* Nothing held: nothing to give back. */
	ctl("balloon-stats", reply, sizeof(reply));
	CHECK_EQ(q[STATS].used->idx, 1);

	/* Held again, then a reset: the buffer is forgotten, not pushed into the new rings. */
	post(STATS, LISTS, sizeof(st), 0);
	virtio_queue_notified(dev, STATS);
	CHECK_EQ(q[STATS].used->idx, 1);
	drv_set_status(dev, 0);
	driver_up(dev);
	ctl("balloon-stats", reply, sizeof(reply));
	CHECK(strstr(reply, "ok updates 2") == reply);
	CHECK_EQ(q[STATS].used->idx, 0);
	teardown();
}

/* The target is the host's: `balloon MIB` sets num_pages (and interrupts), a guest write to it
 * is undone; the guest writes `actual`. Targets beyond RAM, or not numbers, are refused. */
static void target(void)
{
	struct virtio_dev *dev = setup();
	struct virtio_balloon_config c;
	uint32_t v = 12345;
	char reply[256];

	ctl("balloon 4", reply, sizeof(reply));
	CHECK(strstr(reply, "ok target 4 MiB") == reply);
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK_EQ(c.num_pages, 1024);
	CHECK_EQ(irqs[0], 1);
	drv_config_write(dev, offsetof(struct virtio_balloon_config, num_pages), &v, 4);
	drv_config_write(dev, offsetof(struct virtio_balloon_config, actual), &v, 4);
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK_EQ(c.num_pages, 1024);
	CHECK_EQ(c.actual, 12345);
	ctl("balloon 17", reply, sizeof(reply));
	CHECK(strstr(reply, "error ") == reply);
	ctl("balloon 4x", reply, sizeof(reply));
	CHECK(strstr(reply, "error ") == reply);
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK_EQ(c.num_pages, 1024);
	CHECK_EQ(irqs[0], 1);
	teardown();
}

TEST_MAIN("virtio-balloon",
	  T(inflate_and_deflate),
	  T(pfns_outside_ram),
	  T(stats_buffer),
	  T(target))
