#include "devices/virtio/virtio.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define TRANSPORT_FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | \
			    (1ULL << VIRTIO_RING_F_EVENT_IDX))

void virtio_dev_init(struct virtio_dev *dev, struct vm *vm, const struct virtio_dev_ops *ops,
		     void *config)
{
	memset(dev, 0, sizeof(*dev));
	dev->ops = ops;
	dev->vm = vm;
	dev->config = config;
	pthread_mutex_init(&dev->lock, NULL);
	for (int q = 0; q < ops->num_queues; q++) {
		dev->queue_size[q] = ops->queue_max_size;
		virtq_reset(&dev->vqs[q], ops->queue_max_size);
	}
}

void virtio_dev_destroy(struct virtio_dev *dev)
{
	pthread_mutex_destroy(&dev->lock);
}

uint64_t virtio_offered_features(const struct virtio_dev *dev)
{
	uint64_t f = dev->ops->features | TRANSPORT_FEATURES;

	/* A legacy transport has 32 feature bits and no VERSION_1. */
	return dev->legacy ? (f & 0xffffffffULL) : f;
}

bool virtio_has_feature(const struct virtio_dev *dev, unsigned bit)
{
	return dev->driver_features & (1ULL << bit);
}

bool virtio_dev_ok(const struct virtio_dev *dev)
{
	return (dev->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

uint8_t virtio_get_status(struct virtio_dev *dev)
{
	uint8_t s;

	pthread_mutex_lock(&dev->lock);
	s = dev->status;
	pthread_mutex_unlock(&dev->lock);
	return s;
}

#define VIOLATIONS_LOGGED 10 /* a guest that breaks the rules in a loop must not flood stderr */

void virtio_dev_fail_locked(struct virtio_dev *dev, const char *why)
{
	unsigned long n;

	if (dev->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	dev->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	n = atomic_fetch_add(&dev->stats.violations, 1);
	if (n < VIOLATIONS_LOGGED)
		pr_warn("%s: guest error: %s: device needs reset", dev->ops->name, why);
	else if (n == VIOLATIONS_LOGGED)
		pr_warn("%s: more guest errors: no longer reported", dev->ops->name);
	atomic_fetch_or(&dev->isr, VIRTIO_ISR_CONFIG);
	dev->transport->interrupt(dev, -1);
}

static void reset_locked(struct virtio_dev *dev)
{
	dev->status = 0;
	dev->driver_features = 0;
	dev->early_kicks = 0;
	atomic_store(&dev->isr, 0);
	for (int q = 0; q < dev->ops->num_queues; q++) {
		dev->queue_size[q] = dev->ops->queue_max_size;
		virtq_reset(&dev->vqs[q], dev->ops->queue_max_size);
	}
	if (dev->ops->reset)
		dev->ops->reset(dev);
}

void virtio_reset(struct virtio_dev *dev)
{
	pthread_mutex_lock(&dev->lock);
	reset_locked(dev);
	pthread_mutex_unlock(&dev->lock);
}

/* FEATURES_OK stays clear when the driver acked something not offered, a modern driver left
 * out VERSION_1, or the model refuses the combination. */
static bool features_acceptable(struct virtio_dev *dev)
{
	uint64_t acked = dev->driver_features;

	if (acked & ~virtio_offered_features(dev))
		return false;
	if (!dev->legacy && !(acked & (1ULL << VIRTIO_F_VERSION_1)))
		return false;
	return !dev->ops->features_ok || dev->ops->features_ok(dev, acked);
}

static void activate_locked(struct virtio_dev *dev)
{
	for (int q = 0; q < dev->ops->num_queues; q++) {
		dev->vqs[q].event_idx = virtio_has_feature(dev, VIRTIO_RING_F_EVENT_IDX);
		dev->vqs[q].indirect = virtio_has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC);
	}
	if (dev->ops->activate)
		dev->ops->activate(dev);
}

/* Serves the kicks a driver sent before DRIVER_OK; with the lock held, status DRIVER_OK. */
static void serve_early_kicks(struct virtio_dev *dev)
{
	uint32_t pending = dev->early_kicks;

	dev->early_kicks = 0;
	for (int q = 0; q < dev->ops->num_queues; q++)
		if ((pending & (1u << q)) && dev->vqs[q].ready && virtio_dev_ok(dev))
			dev->ops->queue_notify(dev, q);
}

void virtio_set_status(struct virtio_dev *dev, uint8_t status)
{
	if (status == 0) {
		virtio_reset(dev);
		return;
	}
	pthread_mutex_lock(&dev->lock);
	/* The device owns NEEDS_RESET; the driver cannot set or clear it. */
	status = (status & ~VIRTIO_CONFIG_S_NEEDS_RESET) | (dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && !(dev->status & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !features_acceptable(dev))
		status &= ~VIRTIO_CONFIG_S_FEATURES_OK;
	if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !(dev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		/* A modern driver must have had its features accepted first. */
		if (!dev->legacy && !(status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			status &= ~VIRTIO_CONFIG_S_DRIVER_OK;
		} else {
			dev->status = status;
			activate_locked(dev);
			serve_early_kicks(dev);
			/* Serving them may have found a violation: keep its NEEDS_RESET. */
			status |= dev->status & VIRTIO_CONFIG_S_NEEDS_RESET;
		}
	}
	dev->status = status;
	pthread_mutex_unlock(&dev->lock);
}

void virtio_set_driver_features(struct virtio_dev *dev, unsigned word, uint32_t value)
{
	pthread_mutex_lock(&dev->lock);
	/* Features are fixed once accepted. */
	if (word < 2 && !(dev->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		uint64_t mask = 0xffffffffULL << (32 * word);

		dev->driver_features = (dev->driver_features & ~mask) | ((uint64_t)value << (32 * word));
	}
	pthread_mutex_unlock(&dev->lock);
}

void virtio_config_read(struct virtio_dev *dev, uint32_t off, void *data, uint32_t len)
{
	pthread_mutex_lock(&dev->lock);
	if (off < dev->ops->config_size && len <= dev->ops->config_size - off)
		memcpy(data, dev->config + off, len);
	else
		memset(data, 0, len);
	pthread_mutex_unlock(&dev->lock);
}

void virtio_config_write(struct virtio_dev *dev, uint32_t off, const void *data, uint32_t len)
{
	pthread_mutex_lock(&dev->lock);
	/* Only models that take config writes get them; the rest of the space is read-only. */
	if (dev->ops->config_written && off < dev->ops->config_size &&
	    len <= dev->ops->config_size - off) {
		memcpy(dev->config + off, data, len);
		dev->ops->config_written(dev, off, len);
	}
	pthread_mutex_unlock(&dev->lock);
}

void virtio_queue_set_ready(struct virtio_dev *dev, int q, bool ready)
{
	const char *why;

	if (q < 0 || q >= dev->ops->num_queues)
		return;
	pthread_mutex_lock(&dev->lock);
	if (!ready) {
		struct virtq *vq = &dev->vqs[q];
		uint64_t d = vq->desc_gpa, a = vq->avail_gpa, u = vq->used_gpa;

		/* In-flight requests of this queue must finish before its ring is forgotten. */
		if (vq->ready && dev->ops->queue_disable)
			dev->ops->queue_disable(dev, q);
		virtq_reset(vq, dev->queue_size[q]);
		vq->desc_gpa = d, vq->avail_gpa = a, vq->used_gpa = u;
	} else if (!dev->vqs[q].ready) {
		dev->vqs[q].size = dev->queue_size[q];
		/* A queue enabled again after DRIVER_OK keeps the negotiated ring features. */
		dev->vqs[q].event_idx = virtio_has_feature(dev, VIRTIO_RING_F_EVENT_IDX);
		dev->vqs[q].indirect = virtio_has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC);
		if (virtq_enable(&dev->vqs[q], &dev->vm->mem, &why) < 0)
			virtio_dev_fail_locked(dev, why);
	}
	pthread_mutex_unlock(&dev->lock);
}

static void on_kick(struct ev_handler *h, uint32_t events)
{
	struct virtio_kick *k = container_of(h, struct virtio_kick, h);

	(void)events;
	virtio_queue_notified(k->dev, k->queue);
}

int virtio_kick_init(struct virtio_kick *k, struct virtio_dev *dev, int q)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	k->dev = dev;
	k->queue = q;
	k->h.fn = on_kick;
	/* Edge-triggered: every kick (an eventfd signal from KVM's ioeventfd) is one event, so
	 * the counter is never read back: one syscall fewer per notification. A kick arriving
	 * while its handler runs is one more event, and at worst one idle pass. */
	err = evloop_add(&dev->vm->loop, fd, EPOLLIN | EPOLLET, &k->h);
	if (err) {
		close(fd);
		k->h.fn = NULL;
	}
	return err;
}

void virtio_kick_close(struct virtio_kick *k)
{
	if (k->h.fn)
		close(k->h.fd);
	k->h.fn = NULL;
}

void virtio_queue_notified(struct virtio_dev *dev, int q)
{
	pthread_mutex_lock(&dev->lock);
	if (q < 0 || q >= dev->ops->num_queues || !virtio_dev_ok(dev) || !dev->vqs[q].ready) {
		atomic_fetch_add(&dev->stats.notifies_ignored, 1);
		/* The spec says a driver must not notify before DRIVER_OK, but Linux's
		 * virtio_balloon kicks its stats queue during probe: such a kick is held back and
		 * served when DRIVER_OK arrives. (A kick sent just before a reset may arrive here too:
		 * it is then served as one more, spurious, notification, which a device tolerates.) */
		if (dev->status && !(dev->status & VIRTIO_CONFIG_S_DRIVER_OK) && q >= 0 &&
		    q < dev->ops->num_queues && dev->vqs[q].ready)
			dev->early_kicks |= 1u << q;
		pthread_mutex_unlock(&dev->lock);
		return;
	}
	atomic_fetch_add(&dev->stats.notifies, 1);
	dev->ops->queue_notify(dev, q);
	pthread_mutex_unlock(&dev->lock);
}

int virtio_pop(struct virtio_dev *dev, int q, struct virtq_req *req, enum virtq_dir dir)
{
	struct virtq *vq = &dev->vqs[q];
	const char *why;
	int err;

	if (!virtio_dev_ok(dev))
		return -EPROTO;
	for (;;) {
		err = virtq_pop(vq, req, dir, &why);
		if (err != -ENOENT)
			break;
		/* Empty: ask for a kick, then look once more in case a buffer slipped in. */
		if (!virtq_enable_kicks(vq))
			return -ENOENT;
	}
	if (err == -EPROTO)
		virtio_dev_fail_locked(dev, why);
	return err;
}

void virtio_push(struct virtio_dev *dev, int q, uint16_t head, uint32_t written)
{
	virtq_push(&dev->vqs[q], head, written);
}

void virtio_notify_used(struct virtio_dev *dev, int q)
{
	if (!virtq_should_interrupt(&dev->vqs[q])) {
		atomic_fetch_add(&dev->stats.interrupts_suppressed, 1);
		return;
	}
	atomic_fetch_add(&dev->stats.interrupts, 1);
	atomic_fetch_or(&dev->isr, VIRTIO_ISR_QUEUE);
	dev->transport->interrupt(dev, q);
}

void virtio_config_changed(struct virtio_dev *dev)
{
	dev->config_generation++;
	atomic_fetch_or(&dev->isr, VIRTIO_ISR_CONFIG);
	if (dev->status & VIRTIO_CONFIG_S_DRIVER_OK)
		dev->transport->interrupt(dev, -1);
}

void virtio_dev_fail(struct virtio_dev *dev, const char *why)
{
	pthread_mutex_lock(&dev->lock);
	virtio_dev_fail_locked(dev, why);
	pthread_mutex_unlock(&dev->lock);
}
