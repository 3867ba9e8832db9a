/* The driver side of a split virtqueue, simulated in guest RAM for the unit tests: lays out
 * descriptors and rings as a guest driver would and reads back the used ring. Header-only, so
 * that each test binary (every tests/unit source) can include it. */
#ifndef MICA_TEST_VRING_DRIVER_H
#define MICA_TEST_VRING_DRIVER_H

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/memory.h"

struct drv {
	struct guest_mem *mem;
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx;     /* the driver's shadow of avail->idx */
};

/* Host pointer of guest RAM that the test itself lays out; aborts on a test bug. */
static inline void *g2h(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	void *p = gpa_range(mem, gpa, len);

	if (!p)
		abort();
	return p;
}

/* Whether every byte of guest RAM [gpa, gpa + len) is v. */
static inline bool guest_bytes_all(const struct guest_mem *mem, uint64_t gpa, uint64_t len,
				   uint8_t v)
{
	const uint8_t *p = g2h(mem, gpa, len);

	for (uint64_t i = 0; i < len; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* Guest RAM with an inaccessible page right after its end, so that a read or write past the
 * end faults instead of landing in whatever the host mapped there. */
static inline int test_guest_mem_init(struct guest_mem *mem, uint64_t size)
{
	int err = guest_mem_init(mem, size);

	if (err)
		return err;
#ifdef MAP_FIXED_NOREPLACE
	/* Best effort: if something else already lives there the guard is simply missing. */
	void *g = mmap(mem->map + size, 4096, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	(void)g;
#endif
	return 0;
}

static inline void drv_init(struct drv *d, struct guest_mem *mem, uint16_t size, uint64_t desc,
			    uint64_t avail, uint64_t used)
{
	memset(d, 0, sizeof(*d));
	d->mem = mem;
	d->size = size;
	d->desc_gpa = desc;
	d->avail_gpa = avail;
	d->used_gpa = used;
	d->desc = g2h(mem, desc, 16ULL * size);
	d->avail = g2h(mem, avail, 6 + 2ULL * size);
	d->used = g2h(mem, used, 6 + 8ULL * size);
	memset(d->desc, 0, 16ULL * size);
	memset(d->avail, 0, 6 + 2ULL * size);
	memset(d->used, 0, 6 + 8ULL * size);
}

static inline void drv_desc(struct drv *d, uint16_t i, uint64_t addr, uint32_t len,
			    uint16_t flags, uint16_t next)
{
	d->desc[i] = (struct vring_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

/* A descriptor of an indirect table at table_gpa. */
static inline void drv_table_desc(struct guest_mem *mem, uint64_t table_gpa, uint16_t i,
				  uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc *t = g2h(mem, table_gpa + 16ULL * i, 16);

	*t = (struct vring_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

/* Makes head available and publishes the new index. */
static inline void drv_post(struct drv *d, uint16_t head)
{
	d->avail->ring[d->avail_idx & (d->size - 1)] = head;
	d->avail_idx++;
	__atomic_store_n(&d->avail->idx, d->avail_idx, __ATOMIC_RELEASE);
}

static inline void drv_set_avail_idx(struct drv *d, uint16_t idx)
{
	d->avail_idx = idx;
	d->avail->idx = idx;
}

static inline uint16_t *drv_used_event(struct drv *d)
{
	return &d->avail->ring[d->size];
}

static inline uint16_t *drv_avail_event(struct drv *d)
{
	return (uint16_t *)&d->used->ring[d->size];
}

/* With the virtio core: queue n's rings at 1 MiB * (n + 1), told to the device as a transport
 * would, and enabled. */
#ifdef MICA_VIRTIO_H
static inline void drv_attach_queue(struct virtio_dev *dev, struct drv *d, struct guest_mem *mem,
				    int n, uint16_t size)
{
	uint64_t base = 0x100000ULL * (n + 1);

	drv_init(d, mem, size, base, base + 0x1000, base + 0x2000);
	pthread_mutex_lock(&dev->lock);
	virtio_queue_set_size(dev, n, size);
	virtio_queue_set_addr(dev, n, VIRTIO_RING_DESC, d->desc_gpa, ~0ULL);
	virtio_queue_set_addr(dev, n, VIRTIO_RING_AVAIL, d->avail_gpa, ~0ULL);
	virtio_queue_set_addr(dev, n, VIRTIO_RING_USED, d->used_gpa, ~0ULL);
	virtio_queue_set_ready(dev, n, true);
	pthread_mutex_unlock(&dev->lock);
}

/* The transport's register writes, as a driver makes them (each under the device lock, as the
 * transports do). */
static inline void drv_set_status(struct virtio_dev *dev, uint8_t status)
{
	pthread_mutex_lock(&dev->lock);
	virtio_write_status(dev, status);
	pthread_mutex_unlock(&dev->lock);
}

static inline uint8_t drv_get_status(struct virtio_dev *dev)
{
	uint8_t s;

	pthread_mutex_lock(&dev->lock);
	s = dev->status;
	pthread_mutex_unlock(&dev->lock);
	return s;
}

static inline void drv_set_features(struct virtio_dev *dev, uint64_t features)
{
	pthread_mutex_lock(&dev->lock);
	virtio_set_driver_features(dev, 0, (uint32_t)features);
	virtio_set_driver_features(dev, 1, (uint32_t)(features >> 32));
	pthread_mutex_unlock(&dev->lock);
}

static inline void drv_set_features_word(struct virtio_dev *dev, uint32_t word, uint32_t v)
{
	pthread_mutex_lock(&dev->lock);
	virtio_set_driver_features(dev, word, v);
	pthread_mutex_unlock(&dev->lock);
}

static inline void drv_config_read(struct virtio_dev *dev, uint32_t off, void *data, uint32_t len)
{
	pthread_mutex_lock(&dev->lock);
	virtio_config_read(dev, off, data, len);
	pthread_mutex_unlock(&dev->lock);
}

static inline void drv_config_write(struct virtio_dev *dev, uint32_t off, const void *data,
				    uint32_t len)
{
	pthread_mutex_lock(&dev->lock);
	virtio_config_write(dev, off, data, len);
	pthread_mutex_unlock(&dev->lock);
}

static inline void drv_queue_ready(struct virtio_dev *dev, int q, bool ready)
{
	pthread_mutex_lock(&dev->lock);
	virtio_queue_set_ready(dev, q, ready);
	pthread_mutex_unlock(&dev->lock);
}

/* A copy of queue q as the device has it now (taken under its lock). */
static inline struct virtq drv_vq(struct virtio_dev *dev, int q)
{
	struct virtq vq;

	pthread_mutex_lock(&dev->lock);
	vq = dev->vqs[q];
	pthread_mutex_unlock(&dev->lock);
	return vq;
}

static inline uint8_t drv_isr(struct virtio_dev *dev)
{
	uint8_t isr;

	pthread_mutex_lock(&dev->lock);
	isr = dev->isr;
	pthread_mutex_unlock(&dev->lock);
	return isr;
}

/* The driver's acknowledgement and feature negotiation: ACKNOWLEDGE, DRIVER, the features,
 * FEATURES_OK. Returns whether the device kept FEATURES_OK. */
static inline bool drv_negotiate(struct virtio_dev *dev, uint64_t features)
{
	const uint8_t ack_drv = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

	drv_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	drv_set_status(dev, ack_drv);
	drv_set_features(dev, features);
	drv_set_status(dev, ack_drv | VIRTIO_CONFIG_S_FEATURES_OK);
	return drv_get_status(dev) & VIRTIO_CONFIG_S_FEATURES_OK;
}
#endif

#endif
