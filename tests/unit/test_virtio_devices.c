/* The virtio core (status machine, features, pop/push/notify, DEVICE_NEEDS_RESET, reset) and
 * the device models (virtio-rng, virtio-console) driven as a guest driver would, through a fake
 * transport that counts interrupts. No KVM and no mmio: the test plays both the transport
 * (queue addresses, ready, notify) and the driver (rings in guest_mem). */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "tests/unit/test_env.h"
#include "tests/unit/test.h"
#include "tests/unit/vring_driver.h"
#include "vmm/log.h"
#include "vmm/outq.h"
#include "vmm/util.h"

#define RAM   (16 * 1024 * 1024ULL)
#define QSIZE 16
#define BUF   0x800000ULL

#define S_ACK   VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV   VIRTIO_CONFIG_S_DRIVER
#define S_FOK   VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK   VIRTIO_CONFIG_S_DRIVER_OK
#define S_RESET VIRTIO_CONFIG_S_NEEDS_RESET

#define F_V1       (1ULL << VIRTIO_F_VERSION_1)
#define F_INDIRECT (1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define F_EVENT    (1ULL << VIRTIO_RING_F_EVENT_IDX)

static struct drv q[VIRTIO_MAX_QUEUES];

static void setup_vm(void)
{
	log_set_level(LOG_ERROR); /* the guest errors provoked here are expected */
	test_vm_init(RAM);
	memset(irqs, 0, sizeof(irqs));
}

static void teardown(void)
{
	test_vm_destroy();
}

/* Rings of queue n at 1 MiB * (n + 1), as a transport would have been told. */
static void setup_queue(struct virtio_dev *dev, int n)
{
	drv_attach_queue(dev, &q[n], &vm.mem, n, QSIZE);
}

static void set_features(struct virtio_dev *dev, uint64_t f)
{
	drv_set_features_word(dev, 0, (uint32_t)f);
	drv_set_features_word(dev, 1, (uint32_t)(f >> 32));
}

/* The driver's initialization sequence up to DRIVER_OK. */
static void bring_up(struct virtio_dev *dev, uint64_t features)
{
	CHECK(drv_negotiate(dev, features));
	for (int n = 0; n < dev->ops->num_queues; n++) {
		setup_queue(dev, n);
		CHECK(dev->vqs[n].ready);
	}
	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK);
	CHECK_EQ(drv_get_status(dev), S_ACK | S_DRV | S_FOK | S_DOK);
}

static uint64_t buf_gpa(int i)
{
	return BUF + 0x10000ULL * i;
}

/* ---- virtio-rng and the core ---- */

static struct virtio_dev *rng_setup(void)
{
	struct virtio_dev *dev;

	setup_vm();
	CHECK_EQ(virtio_rng_create(&vm.env, &dev), 0);
	CHECK(dev != NULL);
	if (!dev)
		abort();
	test_vm_plug(dev);
	return dev;
}

static void feature_negotiation(void)
{
	struct virtio_dev *dev = rng_setup();

	CHECK_EQ(virtio_offered_features(dev), F_V1 | F_INDIRECT | F_EVENT);
	drv_set_status(dev, S_ACK | S_DRV);

	/* A feature not offered (bit 0 is device-specific; rng has none). */
	set_features(dev, F_V1 | 1);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	CHECK(!(drv_get_status(dev) & S_FOK));
	set_features(dev, F_V1 | (1ULL << 40));
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	CHECK(!(drv_get_status(dev) & S_FOK));
	/* A modern driver without VERSION_1. */
	set_features(dev, F_EVENT);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	CHECK(!(drv_get_status(dev) & S_FOK));
	set_features(dev, 0);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	CHECK(!(drv_get_status(dev) & S_FOK));
	/* DRIVER_OK without FEATURES_OK does not take. */
	drv_set_status(dev, S_ACK | S_DRV | S_DOK);
	CHECK(!(drv_get_status(dev) & S_DOK));

	/* A legal subset, after the failed attempts (no reset needed). */
	set_features(dev, F_V1 | F_EVENT);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	CHECK_EQ(drv_get_status(dev), S_ACK | S_DRV | S_FOK);
	CHECK(virtio_has_feature(dev, VIRTIO_RING_F_EVENT_IDX));
	CHECK(!virtio_has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC));
	/* Features are fixed once accepted. */
	set_features(dev, F_V1 | F_INDIRECT);
	CHECK_EQ(dev->driver_features, F_V1 | F_EVENT);
	setup_queue(dev, 0);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK);
	CHECK(drv_get_status(dev) & S_DOK);
	CHECK(dev->vqs[0].event_idx);
	CHECK(!dev->vqs[0].indirect);
	CHECK_EQ(irqs[0], 0);

	/* The driver cannot set NEEDS_RESET itself. */
	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK | S_RESET);
	CHECK(!(drv_get_status(dev) & S_RESET));

	/* Every offered feature at once. */
	drv_set_status(dev, 0);
	drv_set_status(dev, S_ACK | S_DRV);
	set_features(dev, F_V1 | F_EVENT | F_INDIRECT);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	CHECK(drv_get_status(dev) & S_FOK);
	teardown();
}

static void rng_fills_buffers(void)
{
	struct virtio_dev *dev = rng_setup();
	static const uint32_t lens[] = { 1, 16, 100, 4096 };
	struct drv *d = &q[0];

	bring_up(dev, F_V1);
	for (int i = 0; i < 4; i++) {
		drv_desc(d, i, buf_gpa(i), lens[i], VRING_DESC_F_WRITE, 0);
		drv_post(d, i);
	}
	/* A chain of two writable buffers. */
	drv_desc(d, 4, buf_gpa(4), 32, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 5);
	drv_desc(d, 5, buf_gpa(5), 48, VRING_DESC_F_WRITE, 0);
	drv_post(d, 4);
	virtio_queue_notified(dev, 0);
	CHECK_EQ(d->used->idx, 5);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(d->used->ring[i].id, i);
		CHECK_EQ(d->used->ring[i].len, lens[i]);
	}
	CHECK_EQ(d->used->ring[4].id, 4);
	CHECK_EQ(d->used->ring[4].len, 80);
	CHECK(!guest_bytes_all(&vm.mem, buf_gpa(2), 100, 0));
	CHECK(!guest_bytes_all(&vm.mem, buf_gpa(3), 4096, 0));
	CHECK(!guest_bytes_all(&vm.mem, buf_gpa(4), 32, 0));
	CHECK(!guest_bytes_all(&vm.mem, buf_gpa(5), 48, 0));
	CHECK(memcmp(g2h(&vm.mem, buf_gpa(2), 16), g2h(&vm.mem, buf_gpa(1), 16), 16));
	CHECK(guest_bytes_all(&vm.mem, buf_gpa(0) + 1, 64, 0)); /* nothing beyond the 1-byte buffer */
	CHECK_EQ(irqs[1], 1);            /* one interrupt for the batch */
	CHECK_EQ(irqs[0], 0);
	CHECK(drv_isr(dev) & VIRTIO_ISR_QUEUE);
	CHECK_EQ(atomic_load(&dev->stats.notifies), 1);

	/* A notification with nothing new: no interrupt. */
	virtio_queue_notified(dev, 0);
	CHECK_EQ(irqs[1], 1);

	/* More than RNG_MAX_PER_REQUEST (64 KiB) gets that much; used len says so. */
	drv_desc(d, 6, buf_gpa(6), 0x30000, VRING_DESC_F_WRITE, 0);
	drv_post(d, 6);
	virtio_queue_notified(dev, 0);
	CHECK_EQ(d->used->idx, 6);
	CHECK_EQ(d->used->ring[5].len, 0x10000);
	CHECK(guest_bytes_all(&vm.mem, buf_gpa(6) + 0x10000, 0x20000, 0));
	CHECK_EQ(irqs[1], 2);

	/* Pool refills: over 64 KiB of requests in one batch. */
	for (int i = 0; i < 3; i++) {
		drv_desc(d, 7 + i, buf_gpa(7 + i), 0x9000, VRING_DESC_F_WRITE, 0);
		drv_post(d, 7 + i);
	}
	virtio_queue_notified(dev, 0);
	CHECK_EQ(d->used->idx, 9);
	CHECK(!guest_bytes_all(&vm.mem, buf_gpa(9) + 0x8000, 0x1000, 0));
	CHECK_EQ(irqs[1], 3);
	CHECK_EQ(irqs[0], 0);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

static void rng_event_idx_suppression(void)
{
	struct virtio_dev *dev = rng_setup();
	struct drv *d = &q[0];

	bring_up(dev, F_V1 | F_EVENT | F_INDIRECT);
	CHECK(dev->vqs[0].event_idx && dev->vqs[0].indirect);
	*drv_used_event(d) = 10;
	drv_desc(d, 0, buf_gpa(0), 8, VRING_DESC_F_WRITE, 0);
	drv_post(d, 0);
	virtio_queue_notified(dev, 0);
	CHECK_EQ(irqs[1], 1);                    /* the first always */
	CHECK_EQ(*drv_avail_event(d), 1);        /* kick me at the next one */
	drv_post(d, 0);
	virtio_queue_notified(dev, 0);
	CHECK_EQ(d->used->idx, 2);
	CHECK_EQ(irqs[1], 1);                    /* used_event 10 not reached */
	CHECK_EQ(atomic_load(&dev->stats.interrupts_suppressed), 1);
	*drv_used_event(d) = 2;
	drv_post(d, 0);
	virtio_queue_notified(dev, 0);
	CHECK_EQ(irqs[1], 2);

	/* An indirect request, since INDIRECT_DESC was negotiated. */
	drv_table_desc(&vm.mem, 0x700000, 0, buf_gpa(1), 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	drv_table_desc(&vm.mem, 0x700000, 1, buf_gpa(2), 8, VRING_DESC_F_WRITE, 0);
	drv_desc(d, 1, 0x700000, 32, VRING_DESC_F_INDIRECT, 0);
	*drv_used_event(d) = 3;
	drv_post(d, 1);
	virtio_queue_notified(dev, 0);
	CHECK_EQ(d->used->idx, 4);
	CHECK_EQ(d->used->ring[3].id, 1);
	CHECK_EQ(d->used->ring[3].len, 16);
	CHECK_EQ(irqs[1], 3);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

static void check_broken(struct virtio_dev *dev, int used_before)
{
	CHECK(drv_get_status(dev) & S_RESET);
	CHECK(drv_isr(dev) & VIRTIO_ISR_CONFIG);
	CHECK_EQ(irqs[0], 1);
	CHECK_EQ(q[0].used->idx, used_before);
	CHECK_EQ(atomic_load(&dev->stats.violations), 1);
}

static void rng_malformed_chain_needs_reset(void)
{
	struct virtio_dev *dev = rng_setup();
	struct drv *d = &q[0];

	bring_up(dev, F_V1);
	drv_desc(d, 0, buf_gpa(0), 8, 0, 0); /* readable: rng must write */
	drv_post(d, 0);
	virtio_queue_notified(dev, 0);
	check_broken(dev, 0);
	CHECK_EQ(irqs[1], 0);
	CHECK(guest_bytes_all(&vm.mem, buf_gpa(0), 8, 0));

	/* Broken stays broken: valid buffers are not consumed, no more interrupts. */
	drv_desc(d, 1, buf_gpa(1), 8, VRING_DESC_F_WRITE, 0);
	drv_post(d, 1);
	virtio_queue_notified(dev, 0);
	check_broken(dev, 0);
	CHECK_EQ(irqs[1], 0);
	CHECK(guest_bytes_all(&vm.mem, buf_gpa(1), 8, 0));
	/* Neither the driver's status writes nor a second violation clear or repeat it. */
	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK);
	check_broken(dev, 0);
	pthread_mutex_lock(&dev->lock);
	virtio_dev_fail(dev, "again");
	pthread_mutex_unlock(&dev->lock);
	check_broken(dev, 0);
	teardown();

	/* A good request before a bad one in the same batch completes; the bad one does not. */
	dev = rng_setup();
	bring_up(dev, F_V1);
	drv_desc(d, 0, buf_gpa(0), 8, VRING_DESC_F_WRITE, 0);
	drv_post(d, 0);
	drv_desc(d, 1, RAM - 4, 8, VRING_DESC_F_WRITE, 0); /* straddles the end of RAM */
	drv_post(d, 1);
	virtio_queue_notified(dev, 0);
	CHECK(drv_get_status(dev) & S_RESET);
	CHECK_EQ(d->used->idx, 1);
	CHECK_EQ(d->used->ring[0].id, 0);
	teardown();

	/* Indirect without the feature. */
	dev = rng_setup();
	bring_up(dev, F_V1);
	drv_table_desc(&vm.mem, 0x700000, 0, buf_gpa(1), 8, VRING_DESC_F_WRITE, 0);
	drv_desc(d, 0, 0x700000, 16, VRING_DESC_F_INDIRECT, 0);
	drv_post(d, 0);
	virtio_queue_notified(dev, 0);
	check_broken(dev, 0);
	teardown();
}

/* A kick before DRIVER_OK (Linux's virtio_balloon sends one during probe) is held back and
 * served when DRIVER_OK arrives; one sent before a reset is forgotten. */
static void notify_before_driver_ok(void)
{
	struct virtio_dev *dev = rng_setup();
	struct drv *d = &q[0];

	/* Status 0: a stale notification from before a reset is ignored, not an error. */
	virtio_queue_notified(dev, 0);
	CHECK_EQ(drv_get_status(dev), 0);
	CHECK_EQ(irqs[0], 0);

	drv_set_status(dev, S_ACK | S_DRV);
	set_features(dev, F_V1);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	setup_queue(dev, 0);
	drv_desc(d, 0, buf_gpa(0), 8, VRING_DESC_F_WRITE, 0);
	drv_post(d, 0);
	virtio_queue_notified(dev, 0);
	CHECK(!(drv_get_status(dev) & S_RESET));
	CHECK_EQ(d->used->idx, 0);              /* nothing consumed yet */
	CHECK_EQ(dev->vqs[0].last_avail, 0);
	CHECK(guest_bytes_all(&vm.mem, buf_gpa(0), 8, 0));
	CHECK_EQ(irqs[0] + irqs[1], 0);
	CHECK_EQ(atomic_load(&dev->stats.notifies_ignored), 2);

	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK);
	CHECK_EQ(d->used->idx, 1);              /* served at DRIVER_OK */
	CHECK_EQ(d->used->ring[0].len, 8);
	CHECK(!guest_bytes_all(&vm.mem, buf_gpa(0), 8, 0));
	CHECK_EQ(irqs[1], 1);
	CHECK(virtio_dev_ok(dev));
	teardown();

	/* Kicked before a reset: the reset forgets it. */
	dev = rng_setup();
	drv_set_status(dev, S_ACK | S_DRV);
	set_features(dev, F_V1);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	setup_queue(dev, 0);
	virtio_queue_notified(dev, 0);
	drv_set_status(dev, 0);
	drv_set_status(dev, S_ACK | S_DRV);
	set_features(dev, F_V1);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	setup_queue(dev, 0);
	drv_desc(d, 0, buf_gpa(0), 8, VRING_DESC_F_WRITE, 0);
	drv_post(d, 0);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK);
	CHECK_EQ(d->used->idx, 0);
	CHECK_EQ(irqs[1], 0);
	virtio_queue_notified(dev, 0);          /* a kick now is served at once */
	CHECK_EQ(d->used->idx, 1);
	CHECK_EQ(irqs[1], 1);

	/* A kick of a queue that is not ready yet is not held. */
	drv_set_status(dev, 0);
	drv_set_status(dev, S_ACK | S_DRV);
	set_features(dev, F_V1);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	virtio_queue_notified(dev, 0);
	setup_queue(dev, 0);
	drv_desc(d, 0, buf_gpa(0), 8, VRING_DESC_F_WRITE, 0);
	drv_post(d, 0);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK);
	CHECK_EQ(d->used->idx, 0);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

static void notify_bad_queue_is_ignored(void)
{
	struct virtio_dev *dev = rng_setup();

	bring_up(dev, F_V1);
	virtio_queue_notified(dev, 1);
	virtio_queue_notified(dev, -1);
	virtio_queue_notified(dev, VIRTIO_MAX_QUEUES);
	virtio_queue_notified(dev, 0x7fffffff);
	CHECK_EQ(atomic_load(&dev->stats.notifies_ignored), 4);
	CHECK(!(drv_get_status(dev) & S_RESET));
	drv_queue_ready(dev, 1, true);   /* no such queue: ignored */
	drv_queue_ready(dev, -1, true);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

static void bad_ring_address_needs_reset(void)
{
	struct virtio_dev *dev = rng_setup();

	drv_set_status(dev, S_ACK | S_DRV);
	set_features(dev, F_V1);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK);
	dev->vqs[0].desc_gpa = RAM - 8;
	dev->vqs[0].avail_gpa = 0x1000;
	dev->vqs[0].used_gpa = 0x2000;
	drv_queue_ready(dev, 0, true);
	CHECK(!dev->vqs[0].ready);
	CHECK(drv_get_status(dev) & S_RESET);
	CHECK_EQ(irqs[0], 1);
	teardown();

	/* A queue size the transport let through but the core refuses. */
	dev = rng_setup();
	drv_set_status(dev, S_ACK | S_DRV);
	dev->queue_size[0] = 12;
	dev->vqs[0].desc_gpa = 0x1000;
	dev->vqs[0].avail_gpa = 0x2000;
	dev->vqs[0].used_gpa = 0x3000;
	drv_queue_ready(dev, 0, true);
	CHECK(!dev->vqs[0].ready);
	CHECK(drv_get_status(dev) & S_RESET);
	teardown();
}

static void reset_recovers(void)
{
	struct virtio_dev *dev = rng_setup();
	struct drv *d = &q[0];

	bring_up(dev, F_V1 | F_EVENT);
	drv_desc(d, 0, buf_gpa(0), 8, 0, 0);
	drv_post(d, 0);
	virtio_queue_notified(dev, 0);
	CHECK(drv_get_status(dev) & S_RESET);

	drv_set_status(dev, 0);
	CHECK_EQ(drv_get_status(dev), 0);
	CHECK_EQ(dev->driver_features, 0);
	CHECK_EQ(drv_isr(dev), 0);
	CHECK(!dev->vqs[0].ready);
	CHECK(!dev->vqs[0].event_idx);
	CHECK_EQ(dev->vqs[0].last_avail, 0);
	CHECK_EQ(dev->vqs[0].desc_gpa, 0);
	CHECK_EQ(dev->queue_size[0], dev->ops->queue_max_size);

	memset(irqs, 0, sizeof(irqs));
	bring_up(dev, F_V1);
	drv_desc(d, 0, buf_gpa(0), 8, VRING_DESC_F_WRITE, 0);
	drv_post(d, 0);
	virtio_queue_notified(dev, 0);
	CHECK_EQ(d->used->idx, 1);
	CHECK_EQ(d->used->ring[0].len, 8);
	CHECK_EQ(irqs[1], 1);
	CHECK_EQ(irqs[0], 0);
	CHECK(!(drv_get_status(dev) & S_RESET));

	/* Disabling a queue keeps its addresses; enabling it again starts from index 0. */
	drv_queue_ready(dev, 0, false);
	CHECK(!dev->vqs[0].ready);
	CHECK_EQ(dev->vqs[0].desc_gpa, d->desc_gpa);
	virtio_queue_notified(dev, 0);           /* not ready: ignored */
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

static void config_space_bounds(void)
{
	struct virtio_dev *dev = rng_setup();
	uint32_t v = 0xffffffff;

	drv_config_read(dev, 0, &v, 4);   /* rng has no config */
	CHECK_EQ(v, 0);
	drv_config_write(dev, 0, &v, 4);  /* ignored */
	teardown();
}

/* ---- virtio-console ---- */

static int pipefd[2];
static struct outq *con_out;

/* A console whose output queue holds qsize bytes, on a pipe of pipe_size bytes (0: the
 * default) whose read end the test reads without blocking. */
static struct virtio_dev *console_setup_with(size_t qsize, int pipe_size)
{
	struct virtio_dev *dev;

	setup_vm();
	if (pipe(pipefd) < 0 || fcntl(pipefd[0], F_SETFL, O_NONBLOCK) < 0 ||
	    (pipe_size && fcntl(pipefd[1], F_SETPIPE_SZ, pipe_size) < pipe_size) ||
	    outq_create(&vm.loop, pipefd[1], qsize, &con_out))
		abort();
	CHECK_EQ(virtio_console_create(&vm.env, con_out, &dev), 0);
	CHECK(dev != NULL);
	if (!dev)
		abort();
	test_vm_plug(dev);
	return dev;
}

static struct virtio_dev *console_setup(void)
{
	return console_setup_with(OUTQ_SIZE, 0);
}

static void console_teardown(void)
{
	while (vm.ndevs)
		virtio_dev_free(vm.devs[--vm.ndevs]);
	outq_destroy(con_out); /* after the device that writes to it, before the loop */
	teardown();
	close(pipefd[0]);
	close(pipefd[1]);
}

static size_t drain(char *buf, size_t max)
{
	ssize_t n = read(pipefd[0], buf, max);

	return n < 0 ? 0 : (size_t)n;
}

static void put(uint64_t gpa, const char *s)
{
	memcpy(g2h(&vm.mem, gpa, strlen(s)), s, strlen(s));
}

static void console_transmit(void)
{
	struct virtio_dev *dev = console_setup();
	struct drv *tx = &q[1];
	char out[256];

	CHECK(virtio_offered_features(dev) & (1ULL << VIRTIO_CONSOLE_F_SIZE));
	bring_up(dev, F_V1 | (1ULL << VIRTIO_CONSOLE_F_SIZE));
	put(buf_gpa(0), "hello");
	put(buf_gpa(1), ", ");
	put(buf_gpa(2), "wor");
	put(buf_gpa(3), "ld\n");
	drv_desc(tx, 0, buf_gpa(0), 5, 0, 0);
	drv_desc(tx, 1, buf_gpa(1), 2, 0, 0);
	drv_desc(tx, 2, buf_gpa(2), 3, VRING_DESC_F_NEXT, 3);
	drv_desc(tx, 3, buf_gpa(3), 3, 0, 0);
	drv_post(tx, 0);
	drv_post(tx, 1);
	drv_post(tx, 2);
	virtio_queue_notified(dev, 1);
	memset(out, 0, sizeof(out));
	CHECK_EQ(drain(out, sizeof(out)), 13);
	CHECK(!strcmp(out, "hello, world\n"));
	CHECK_EQ(tx->used->idx, 3);
	CHECK_EQ(tx->used->ring[0].id, 0);
	CHECK_EQ(tx->used->ring[1].id, 1);
	CHECK_EQ(tx->used->ring[2].id, 2);
	CHECK_EQ(tx->used->ring[2].len, 0);
	CHECK_EQ(irqs[2], 1);
	CHECK_EQ(irqs[1], 0);
	CHECK_EQ(irqs[0], 0);
	CHECK(!(drv_get_status(dev) & S_RESET));
	console_teardown();
}

/* More requests than one writev batch, and more segments than one iovec array. */
static void console_transmit_many(void)
{
	struct virtio_dev *dev = console_setup();
	struct drv *tx = &q[1];
	static char out[8192], want[8192];
	size_t nwant = 0, got = 0, n;
	int posted = 0;

	bring_up(dev, F_V1 | F_INDIRECT);
	/* Three indirect requests of 100 one-byte segments each: 300 > VIRTQ_MAX_SEGS. */
	for (int r = 0; r < 3; r++) {
		uint64_t table = 0x700000 + 0x1000 * r;

		for (int i = 0; i < 100; i++) {
			uint64_t b = buf_gpa(r) + i;

			*(char *)g2h(&vm.mem, b, 1) = (char)('A' + r);
			drv_table_desc(&vm.mem, table, i, b, 1, i < 99 ? VRING_DESC_F_NEXT : 0, i + 1);
			want[nwant++] = (char)('A' + r);
		}
		drv_desc(tx, r, table, 100 * 16, VRING_DESC_F_INDIRECT, 0);
		drv_post(tx, r);
		posted++;
	}
	virtio_queue_notified(dev, 1);
	CHECK_EQ(tx->used->idx, 3);

	/* 150 small requests through a 16-entry queue, in rounds (TX_BATCH is 64). */
	for (int round = 0; round < 10; round++) {
		for (int i = 0; i < QSIZE; i++) {
			uint64_t b = buf_gpa(3) + 16 * (round * QSIZE + i);
			char s[16];

			snprintf(s, sizeof(s), "<%d.%d>", round, i);
			put(b, s);
			memcpy(want + nwant, s, strlen(s));
			nwant += strlen(s);
			drv_desc(tx, i, b, (uint32_t)strlen(s), 0, 0);
			drv_post(tx, i);
			posted++;
		}
		virtio_queue_notified(dev, 1);
	}
	while ((n = drain(out + got, sizeof(out) - got)) > 0)
		got += n;
	CHECK_EQ(got, nwant);
	CHECK(!memcmp(out, want, nwant));
	CHECK_EQ(tx->used->idx, posted);
	CHECK_EQ(irqs[2], 11);
	CHECK(!(drv_get_status(dev) & S_RESET));
	console_teardown();
}

static void console_transmit_writable_needs_reset(void)
{
	struct virtio_dev *dev = console_setup();
	struct drv *tx = &q[1];
	char out[16];

	bring_up(dev, F_V1);
	drv_desc(tx, 0, buf_gpa(0), 4, VRING_DESC_F_WRITE, 0);
	drv_post(tx, 0);
	virtio_queue_notified(dev, 1);
	CHECK(drv_get_status(dev) & S_RESET);
	CHECK_EQ(irqs[0], 1);
	CHECK_EQ(irqs[2], 0);
	CHECK_EQ(tx->used->idx, 0);
	CHECK_EQ(drain(out, sizeof(out)), 0);
	console_teardown();
}

static void console_receive(void)
{
	struct virtio_dev *dev = console_setup();
	struct console_sink sink = virtio_console_sink(dev);
	struct drv *rx = &q[0];

	/* Before DRIVER_OK, and with no buffers: nothing taken. */
	CHECK_EQ(sink.receive(sink.dev, (const uint8_t *)"x", 1), 0);
	bring_up(dev, F_V1);
	CHECK_EQ(sink.receive(sink.dev, (const uint8_t *)"x", 1), 0);
	CHECK_EQ(irqs[1], 0);

	drv_desc(rx, 0, buf_gpa(0), 4, VRING_DESC_F_WRITE, 0);
	drv_desc(rx, 1, buf_gpa(1), 2, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	drv_desc(rx, 2, buf_gpa(2), 2, VRING_DESC_F_WRITE, 0);
	drv_post(rx, 0);
	drv_post(rx, 1);
	virtio_queue_notified(dev, 0); /* no terminal attached: nothing to do */
	CHECK_EQ(sink.receive(sink.dev, (const uint8_t *)"abcdefghij", 10), 8);
	CHECK(!memcmp(g2h(&vm.mem, buf_gpa(0), 4), "abcd", 4));
	CHECK(!memcmp(g2h(&vm.mem, buf_gpa(1), 2), "ef", 2));
	CHECK(!memcmp(g2h(&vm.mem, buf_gpa(2), 2), "gh", 2));
	CHECK_EQ(rx->used->idx, 2);
	CHECK_EQ(rx->used->ring[0].len, 4);
	CHECK_EQ(rx->used->ring[1].id, 1);
	CHECK_EQ(rx->used->ring[1].len, 4);
	CHECK_EQ(irqs[1], 1);
	CHECK_EQ(sink.receive(sink.dev, (const uint8_t *)"ij", 2), 0);

	/* Less input than the buffer: used len is what was written. */
	drv_desc(rx, 3, buf_gpa(3), 64, VRING_DESC_F_WRITE, 0);
	drv_post(rx, 3);
	CHECK_EQ(sink.receive(sink.dev, (const uint8_t *)"ij", 2), 2);
	CHECK_EQ(rx->used->ring[2].id, 3);
	CHECK_EQ(rx->used->ring[2].len, 2);
	CHECK_EQ(irqs[1], 2);

	/* A readable receive buffer breaks the device; nothing more is taken. */
	drv_desc(rx, 4, buf_gpa(4), 64, 0, 0);
	drv_post(rx, 4);
	CHECK_EQ(sink.receive(sink.dev, (const uint8_t *)"k", 1), 0);
	CHECK(drv_get_status(dev) & S_RESET);
	CHECK_EQ(irqs[0], 1);
	drv_desc(rx, 5, buf_gpa(5), 64, VRING_DESC_F_WRITE, 0);
	drv_post(rx, 5);
	CHECK_EQ(sink.receive(sink.dev, (const uint8_t *)"k", 1), 0);
	CHECK_EQ(rx->used->idx, 3);
	console_teardown();
}

static uint16_t config16(struct virtio_dev *dev, uint32_t off)
{
	uint16_t v = 0;

	drv_config_read(dev, off, &v, 2);
	return v;
}

static void console_resize(void)
{
	struct virtio_dev *dev = console_setup();
	struct console_sink sink = virtio_console_sink(dev);
	uint32_t gen;

	CHECK(sink.resize != NULL);
	CHECK_EQ(config16(dev, offsetof(struct virtio_console_config, cols)), 80);
	CHECK_EQ(config16(dev, offsetof(struct virtio_console_config, rows)), 25);
	/* Before DRIVER_OK: config changes, no interrupt. */
	gen = dev->config_generation;
	sink.resize(sink.dev, 132, 43);
	CHECK_EQ(config16(dev, offsetof(struct virtio_console_config, cols)), 132);
	CHECK_EQ(dev->config_generation, gen + 1);
	CHECK_EQ(irqs[0], 0);

	bring_up(dev, F_V1 | (1ULL << VIRTIO_CONSOLE_F_SIZE));
	gen = dev->config_generation;
	sink.resize(sink.dev, 100, 40);
	CHECK_EQ(config16(dev, offsetof(struct virtio_console_config, cols)), 100);
	CHECK_EQ(config16(dev, offsetof(struct virtio_console_config, rows)), 40);
	CHECK_EQ(dev->config_generation, gen + 1);
	CHECK_EQ(irqs[0], 1);
	CHECK(drv_isr(dev) & VIRTIO_ISR_CONFIG);
	sink.resize(sink.dev, 100, 40); /* the same size: no change */
	CHECK_EQ(dev->config_generation, gen + 1);
	CHECK_EQ(irqs[0], 1);
	CHECK(!(drv_get_status(dev) & S_RESET));

	/* The config is read-only for the driver; out-of-range reads give zeroes. */
	{
		uint16_t w = 7;
		uint32_t v = 0xffffffff;

		drv_config_write(dev, 0, &w, 2);
		CHECK_EQ(config16(dev, 0), 100);
		drv_config_read(dev, sizeof(struct virtio_console_config) - 2, &v, 4);
		CHECK_EQ(v, 0);
		drv_config_read(dev, 0xfffffffe, &v, 4);
		CHECK_EQ(v, 0);
	}
	console_teardown();
}

/* ---- virtio-console transmit backpressure ---- */

#define BP_REQS QSIZE
#define BP_LEN  1000

static uint8_t bp_pat(size_t i)
{
	return (uint8_t)('!' + (i * 7 + i / 93) % 90);
}

static uint64_t dev_stat(struct virtio_dev *dev, const char *name)
{
	struct stat_value v[STATS_MAX_VALUES];
	int n = virtio_dev_stats(dev, v, STATS_MAX_VALUES);

	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return v[i].num;
	return ~0ULL;
}

/* Runs the ready handlers of the test's event loop once (the output queue's writer, the
 * console's kick eventfd). */
static int run_loop(int timeout_ms)
{
	struct epoll_event evs[8];
	int n = epoll_wait(vm.loop.epfd, evs, 8, timeout_ms);

	for (int i = 0; i < n; i++)
		((struct ev_handler *)evs[i].data.ptr)->fn(evs[i].data.ptr, evs[i].events);
	return n < 0 ? 0 : n;
}

static int pipe_ready(void)
{
	int n = 0;

	return ioctl(pipefd[0], FIONREAD, &n) < 0 ? -1 : n;
}

/* BP_REQS transmit requests of BP_LEN pattern bytes each, posted at once, and a kick. */
static void post_flood(struct virtio_dev *dev, struct drv *tx)
{
	for (int r = 0; r < BP_REQS; r++) {
		uint8_t *p = g2h(&vm.mem, buf_gpa(r), BP_LEN);

		for (int k = 0; k < BP_LEN; k++)
			p[k] = bp_pat((size_t)r * BP_LEN + k);
		drv_desc(tx, r, buf_gpa(r), BP_LEN, 0, 0);
		drv_post(tx, r);
	}
	virtio_queue_notified(dev, 1);
}

/* More output than the pipe and the output queue hold: the device takes what fits, returns
 * exactly the requests whose bytes were all taken, and stops; a further kick changes nothing.
 * As the reader reads, the queue calls back, the device resumes, and every byte arrives in
 * order, each request going back only once its bytes are out of the guest's buffers. */
static void console_backpressure(void)
{
	struct virtio_dev *dev = console_setup_with(4096, 4096);
	struct drv *tx = &q[1];
	static uint8_t out[BP_REQS * BP_LEN];
	size_t got = 0, taken;
	uint16_t used;
	bool in_order = true, early = false;

	bring_up(dev, F_V1);
	post_flood(dev, tx);
	taken = (size_t)pipe_ready() + outq_queued(con_out);
	CHECK_EQ(outq_queued(con_out), 4096);                /* the queue is full */
	CHECK(taken < BP_REQS * BP_LEN);
	CHECK_EQ(tx->used->idx, taken / BP_LEN);              /* whole requests only */
	CHECK_EQ(irqs[2], 1);
	CHECK_EQ(dev_stat(dev, "output_waits"), 1);
	used = tx->used->idx;
	virtio_queue_notified(dev, 1);                        /* the driver kicks again */
	CHECK_EQ(tx->used->idx, used);
	CHECK_EQ((size_t)pipe_ready() + outq_queued(con_out), taken);

	while (got < sizeof(out)) {
		ssize_t n = read(pipefd[0], out + got, sizeof(out) - got);

		if (n > 0)
			got += n;
		/* Nothing to read and nothing ready in the loop: the device is stuck. */
		if (!run_loop(n > 0 ? 0 : 100) && n <= 0)
			break;
		/* Returned requests' bytes are all read or queued: none is still in the buffer. */
		if ((size_t)tx->used->idx * BP_LEN > got + pipe_ready() + outq_queued(con_out))
			early = true;
	}
	CHECK(!early);
	CHECK_EQ(got, sizeof(out));
	for (size_t i = 0; i < got; i++)
		in_order &= out[i] == bp_pat(i);
	CHECK(in_order);
	CHECK_EQ(tx->used->idx, BP_REQS);
	for (int r = 0; r < BP_REQS; r++) {
		CHECK_EQ(tx->used->ring[r].id, r);
		CHECK_EQ(tx->used->ring[r].len, 0);
	}
	CHECK(dev_stat(dev, "output_waits") >= 1);
	CHECK_EQ(dev_stat(dev, "output_bytes"), sizeof(out));
	CHECK(!(drv_get_status(dev) & S_RESET));
	console_teardown();
}

/* A reset while requests wait for room: they belong to the old ring and never come back into
 * it; the device works again after the driver sets it up anew. */
static void console_reset_drops_held(void)
{
	struct virtio_dev *dev = console_setup_with(4096, 4096);
	struct drv *tx = &q[1];
	static uint8_t out[BP_REQS * BP_LEN];
	size_t got = 0, taken;
	uint16_t used;
	ssize_t n;

	bring_up(dev, F_V1);
	post_flood(dev, tx);
	taken = (size_t)pipe_ready() + outq_queued(con_out);
	used = tx->used->idx;
	CHECK(used < BP_REQS);
	drv_set_status(dev, 0);
	while (got < taken) {
		n = read(pipefd[0], out + got, sizeof(out) - got);
		if (n > 0)
			got += n;
		if (!run_loop(n > 0 ? 0 : 100) && n <= 0)
			break;
	}
	while (run_loop(0)) /* the queue's callback and the kick it sends */
		;
	CHECK_EQ(got, taken);                   /* what was taken still reaches the reader */
	CHECK_EQ(tx->used->idx, used);          /* and nothing went back into the old ring */

	bring_up(dev, F_V1);
	put(buf_gpa(0), "after reset\n");
	drv_desc(tx, 0, buf_gpa(0), 12, 0, 0);
	drv_post(tx, 0);
	virtio_queue_notified(dev, 1);
	n = read(pipefd[0], out, sizeof(out));
	CHECK_EQ(n, 12);
	CHECK(!memcmp(out, "after reset\n", 12));
	CHECK_EQ(tx->used->idx, 1);
	console_teardown();
}

/* A queue handler stops at the work budget and yields: the core re-signals the queue's kick, so
 * the event loop runs it again after the other ready handlers, and the rest is served then. */
static void rng_yields_at_budget(void)
{
	struct virtio_dev *dev;
	struct drv d;
	const int n = 3 * VIRTIO_BUDGET / 2;
	uint64_t kicks;

	setup_vm();
	CHECK_EQ(virtio_rng_create(&vm.env, &dev), 0);
	test_vm_plug(dev);
	CHECK(drv_negotiate(dev, F_V1));
	drv_attach_queue(dev, &d, &vm.mem, 0, 256);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK);
	for (int i = 0; i < n; i++) {
		drv_desc(&d, i, BUF + 16 * i, 16, VRING_DESC_F_WRITE, 0);
		drv_post(&d, i);
	}
	virtio_queue_notified(dev, 0);
	CHECK_EQ(d.used->idx, VIRTIO_BUDGET);
	CHECK_EQ(atomic_load(&dev->stats.renotifies), 1);
	/* The kick eventfd was signalled again: the loop's next pass serves the rest. */
	CHECK(read(virtio_kick_fd(dev, 0), &kicks, sizeof(kicks)) == sizeof(kicks) && kicks == 1);
	virtio_queue_notified(dev, 0);
	CHECK_EQ(d.used->idx, n);
	CHECK_EQ(atomic_load(&dev->stats.renotifies), 1);
	CHECK(read(virtio_kick_fd(dev, 0), &kicks, sizeof(kicks)) < 0 && errno == EAGAIN);
	CHECK(!guest_bytes_all(&vm.mem, BUF + 16 * (n - 1), 16, 0));
	teardown();
}

TEST_MAIN("virtio-devices",
	  T(feature_negotiation), T(rng_fills_buffers), T(rng_yields_at_budget), T(rng_event_idx_suppression),
	  T(rng_malformed_chain_needs_reset), T(notify_before_driver_ok),
	  T(notify_bad_queue_is_ignored), T(bad_ring_address_needs_reset), T(reset_recovers),
	  T(config_space_bounds), T(console_transmit), T(console_transmit_many),
	  T(console_transmit_writable_needs_reset), T(console_receive), T(console_resize),
	  T(console_backpressure), T(console_reset_drops_held))
