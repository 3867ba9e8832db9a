#include "devices/virtio/virtio.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "snapshot/snapshot.h"
#include "vmm/err.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define TRANSPORT_FEATURES ((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC) | \
			    (1ULL << VIRTIO_RING_F_EVENT_IDX))
#define VIOLATIONS_LOGGED 10 /* a guest that breaks the rules in a loop must not flood stderr */

/* ---- life cycle ---- */

static void on_kick(struct ev_handler *h, uint32_t events)
{
	struct virtio_kick *k = container_of(h, struct virtio_kick, h);

	(void)events;
	virtio_queue_notified(k->dev, k->queue);
}

static int kick_init(struct virtio_kick *k, struct virtio_dev *dev, int q)
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
	err = evloop_add(dev->env.loop, fd, EPOLLIN | EPOLLET, &k->h);
	if (err) {
		close(fd);
		k->h.fn = NULL;
	}
	return err;
}

int virtio_dev_init(struct virtio_dev *dev, const struct virtio_env *env,
		    const struct virtio_dev_ops *ops, void *config)
{
	memset(dev, 0, sizeof(*dev));
	dev->ops = ops;
	dev->env = *env;
	dev->config = config;
	pthread_mutex_init(&dev->lock, NULL);
	for (int q = 0; q < ops->num_queues; q++) {
		int err = kick_init(&dev->kicks[q], dev, q);

		if (err) {
			virtio_dev_cleanup(dev);
			return err;
		}
		dev->queue_size[q] = ops->queue_max_size;
		virtq_reset(&dev->vqs[q], ops->queue_max_size);
	}
	return 0;
}

void virtio_dev_cleanup(struct virtio_dev *dev)
{
	for (int q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (dev->kicks[q].h.fn) {
			evloop_del(dev->env.loop, &dev->kicks[q].h);
			close(dev->kicks[q].h.fd);
		}
		dev->kicks[q].h.fn = NULL;
	}
	pthread_mutex_destroy(&dev->lock);
}

void virtio_dev_free(void *opaque)
{
	struct virtio_dev *dev = opaque;

	if (dev->transport && dev->transport->destroy)
		dev->transport->destroy(dev);
	dev->transport = NULL;
	dev->ops->destroy(dev);
}

int virtio_dev_stats(void *opaque, struct stat_value *out, int max)
{
	struct virtio_dev *dev = opaque;
	const struct virtio_stats *s = &dev->stats;
	struct stat_value common[] = {
		{ "device", dev->ops->name, 0 },
		{ "notifies", NULL, atomic_load(&s->notifies) },
		{ "notifies_ignored", NULL, atomic_load(&s->notifies_ignored) },
		{ "notifies_userspace", NULL, atomic_load(&s->notifies_userspace) },
		{ "renotifies", NULL, atomic_load(&s->renotifies) },
		{ "interrupts", NULL, atomic_load(&s->interrupts) },
		{ "interrupts_suppressed", NULL, atomic_load(&s->interrupts_suppressed) },
		{ "violations", NULL, atomic_load(&s->violations) },
	};
	int n = MIN((int)ARRAY_SIZE(common), max);

	memcpy(out, common, n * sizeof(out[0]));
	if (dev->ops->stats && n < max)
		n += dev->ops->stats(dev, out + n, max - n);
	return n;
}

/* ---- features and status ---- */

uint64_t virtio_offered_features(const struct virtio_dev *dev)
{
	uint64_t f = dev->ops->features | TRANSPORT_FEATURES;

	/* A legacy interface has 32 feature bits and no VERSION_1. */
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

bool virtio_queue_live(const struct virtio_dev *dev, int q)
{
	return q >= 0 && q < dev->ops->num_queues && virtio_dev_ok(dev) && dev->vqs[q].ready;
}

static void raise_interrupt(struct virtio_dev *dev, int queue)
{
	dev->isr |= queue < 0 ? VIRTIO_ISR_CONFIG : VIRTIO_ISR_QUEUE;
	dev->transport->interrupt(dev, queue);
}

void virtio_dev_fail(struct virtio_dev *dev, const char *why)
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
	raise_interrupt(dev, -1);
}

static void reset(struct virtio_dev *dev)
{
	dev->status = 0;
	dev->driver_features = 0;
	dev->early_kicks = 0;
	dev->isr = 0;
	for (int q = 0; q < dev->ops->num_queues; q++) {
		dev->queue_size[q] = dev->ops->queue_max_size;
		virtq_reset(&dev->vqs[q], dev->ops->queue_max_size);
	}
	if (dev->ops->reset)
		dev->ops->reset(dev);
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

static void set_ring_features(struct virtio_dev *dev, int q)
{
	dev->vqs[q].event_idx = virtio_has_feature(dev, VIRTIO_RING_F_EVENT_IDX);
	dev->vqs[q].indirect = virtio_has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC);
}

static void serve(struct virtio_dev *dev, int q)
{
	atomic_fetch_add(&dev->stats.notifies, 1);
	if (dev->ops->queue_notify(dev, q)) {
		atomic_fetch_add(&dev->stats.renotifies, 1);
		virtio_queue_kick(dev, q);
	}
}

/* Serves the kicks a driver sent before DRIVER_OK (status DRIVER_OK now). */
static void serve_early_kicks(struct virtio_dev *dev)
{
	uint32_t pending = dev->early_kicks;

	dev->early_kicks = 0;
	for (int q = 0; q < dev->ops->num_queues; q++)
		if ((pending & (1u << q)) && virtio_queue_live(dev, q))
			serve(dev, q);
}

void virtio_write_status(struct virtio_dev *dev, uint8_t status)
{
	if (status == 0) {
		reset(dev);
		return;
	}
	/* The device owns NEEDS_RESET; the driver cannot set or clear it. Nor can it clear
	 * FEATURES_OK or DRIVER_OK once they are set (a driver must not clear a status bit; only a
	 * reset does): the features stay fixed and checked while the device runs. */
	status = (status & ~VIRTIO_CONFIG_S_NEEDS_RESET) | (dev->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	status |= dev->status & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && !(dev->status & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !features_acceptable(dev))
		status &= ~VIRTIO_CONFIG_S_FEATURES_OK;
	if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !(dev->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		/* A modern driver must have had its features accepted first. */
		if (!dev->legacy && !(status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			status &= ~VIRTIO_CONFIG_S_DRIVER_OK;
		} else {
			/* A legacy driver negotiates nothing: what it acked beyond the offer is
			 * dropped here (after FEATURES_OK there is nothing to drop). */
			dev->driver_features &= virtio_offered_features(dev);
			dev->status = status;
			for (int q = 0; q < dev->ops->num_queues; q++)
				set_ring_features(dev, q);
			if (dev->ops->activate)
				dev->ops->activate(dev);
			serve_early_kicks(dev);
			/* Activation may have found a violation: keep its NEEDS_RESET. */
			status |= dev->status & VIRTIO_CONFIG_S_NEEDS_RESET;
		}
	}
	dev->status = status;
}

void virtio_set_driver_features(struct virtio_dev *dev, uint32_t word, uint32_t value)
{
	/* Features are fixed once accepted, or (legacy: no FEATURES_OK) once the device runs. */
	if (word < 2 && !(dev->status & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK))) {
		uint64_t mask = 0xffffffffULL << (32 * word);

		dev->driver_features = (dev->driver_features & ~mask) | ((uint64_t)value << (32 * word));
	}
}

uint8_t virtio_isr_read_clear(struct virtio_dev *dev)
{
	uint8_t v = dev->isr;

	dev->isr = 0;
	return v;
}

/* ---- config space ---- */

void virtio_config_read(struct virtio_dev *dev, uint32_t off, void *data, uint32_t len)
{
	if (off < dev->ops->config_size && len <= dev->ops->config_size - off)
		memcpy(data, dev->config + off, len);
	else
		memset(data, 0, len);
}

void virtio_config_write(struct virtio_dev *dev, uint32_t off, const void *data, uint32_t len)
{
	/* Only models that take config writes get them; the rest of the space is read-only. */
	if (dev->ops->config_written && off < dev->ops->config_size &&
	    len <= dev->ops->config_size - off) {
		memcpy(dev->config + off, data, len);
		dev->ops->config_written(dev, off, len);
	}
}

void virtio_config_changed(struct virtio_dev *dev)
{
	dev->config_generation++;
	if (dev->status & VIRTIO_CONFIG_S_DRIVER_OK)
		raise_interrupt(dev, -1);
	else
		dev->isr |= VIRTIO_ISR_CONFIG;
}

/* ---- queues ---- */

void virtio_queue_set_size(struct virtio_dev *dev, uint32_t q, uint32_t size)
{
	if (q < dev->ops->num_queues && !dev->vqs[q].ready && size &&
	    size <= dev->ops->queue_max_size && !(size & (size - 1)))
		dev->queue_size[q] = (uint16_t)size;
}

void virtio_queue_set_addr(struct virtio_dev *dev, uint32_t q, enum virtio_ring ring,
			   uint64_t value, uint64_t mask)
{
	uint64_t *addr;

	/* The driver must not move a live queue; such writes are dropped. */
	if (q >= dev->ops->num_queues || dev->vqs[q].ready)
		return;
	addr = ring == VIRTIO_RING_DESC ? &dev->vqs[q].desc_gpa
	       : ring == VIRTIO_RING_AVAIL ? &dev->vqs[q].avail_gpa : &dev->vqs[q].used_gpa;
	*addr = (*addr & ~mask) | (value & mask);
}

void virtio_queue_set_legacy(struct virtio_dev *dev, uint32_t q, uint64_t base, uint64_t align)
{
	uint64_t num;
	struct virtq *vq;

	if (q >= dev->ops->num_queues || dev->vqs[q].ready)
		return;
	vq = &dev->vqs[q];
	num = dev->queue_size[q];
	/* align must be a power of two for the rounding below; a bad one makes the rings fail
	 * validation rather than land somewhere unintended. */
	if (!align || (align & (align - 1)))
		align = 1;
	vq->desc_gpa = base;
	vq->avail_gpa = base + 16 * num;
	vq->used_gpa = ALIGN_UP(vq->avail_gpa + 6 + 2 * num, align);
	virtio_queue_set_ready(dev, q, true);
}

void virtio_queue_set_ready(struct virtio_dev *dev, uint32_t q, bool ready)
{
	struct virtq *vq;
	const char *why;

	if (q >= dev->ops->num_queues)
		return;
	vq = &dev->vqs[q];
	if (!ready) {
		uint64_t d = vq->desc_gpa, a = vq->avail_gpa, u = vq->used_gpa;

		/* In-flight requests of this queue must finish before its ring is forgotten. */
		if (vq->ready && dev->ops->queue_disable)
			dev->ops->queue_disable(dev, q);
		virtq_reset(vq, dev->queue_size[q]);
		vq->desc_gpa = d, vq->avail_gpa = a, vq->used_gpa = u;
	} else if (!vq->ready) {
		vq->size = dev->queue_size[q];
		/* A queue enabled again after DRIVER_OK keeps the negotiated ring features. */
		set_ring_features(dev, q);
		if (virtq_enable(vq, dev->env.mem, &why) < 0)
			virtio_dev_fail(dev, why);
	}
}

void virtio_queue_kick(struct virtio_dev *dev, int q)
{
	uint64_t one = 1;

	/* The loop runs the handler when it gets to this eventfd again: after the handlers
	 * already ready, so nothing starves. */
	if (q >= 0 && q < dev->ops->num_queues && dev->kicks[q].h.fn &&
	    write(dev->kicks[q].h.fd, &one, sizeof(one)) < 0)
		pr_debug("%s: cannot re-signal queue %d: %s", dev->ops->name, q, strerror(errno));
}

static void queue_notified(struct virtio_dev *dev, int q)
{
	if (!virtio_queue_live(dev, q)) {
		atomic_fetch_add(&dev->stats.notifies_ignored, 1);
		/* The spec says a driver must not notify before DRIVER_OK, but Linux's
		 * virtio_balloon kicks its stats queue during probe: such a kick is held back and
		 * served when DRIVER_OK arrives. (A kick sent just before a reset may arrive here too:
		 * it is then served as one more, spurious, notification, which a device tolerates.) */
		if (dev->status && !(dev->status & VIRTIO_CONFIG_S_DRIVER_OK) && q >= 0 &&
		    q < dev->ops->num_queues && dev->vqs[q].ready)
			dev->early_kicks |= 1u << q;
		return;
	}
	serve(dev, q);
}

void virtio_queue_notify_userspace(struct virtio_dev *dev, uint32_t q)
{
	if (q < dev->ops->num_queues)
		atomic_fetch_add(&dev->stats.notifies_userspace, 1);
	queue_notified(dev, q < dev->ops->num_queues ? (int)q : -1);
}

void virtio_queue_notified(struct virtio_dev *dev, int q)
{
	pthread_mutex_lock(&dev->lock);
	queue_notified(dev, q);
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
		virtio_dev_fail(dev, why);
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
	raise_interrupt(dev, q);
}

/* ---- snapshots (dev->lock held; every vCPU paused) ---- */

#define KNOWN_STATUS (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
		      VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK | \
		      VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)

void virtio_dev_drain(struct virtio_dev *dev)
{
	if (dev->ops->drain)
		dev->ops->drain(dev);
}

int virtio_dev_save(struct virtio_dev *dev, struct snap_writer *w, struct err *e)
{
	const struct virtio_dev_ops *ops = dev->ops;

	snap_put_u32(w, ops->device_id);
	snap_put_u8(w, dev->status);
	snap_put_u8(w, dev->isr);
	snap_put_u64(w, dev->driver_features);
	snap_put_u32(w, dev->config_generation);
	snap_put_u32(w, dev->early_kicks);
	snap_put_u32(w, ops->config_size);
	if (ops->config_size)   /* a model without config may have no buffer for it */
		snap_put(w, dev->config, ops->config_size);
	snap_put_u16(w, ops->num_queues);
	for (int q = 0; q < ops->num_queues; q++) {
		const struct virtq *vq = &dev->vqs[q];

		snap_put_u16(w, dev->queue_size[q]);
		snap_put_u8(w, vq->ready);
		snap_put_u64(w, vq->desc_gpa);
		snap_put_u64(w, vq->avail_gpa);
		snap_put_u64(w, vq->used_gpa);
		snap_put_u16(w, vq->last_avail);
		snap_put_u16(w, vq->used_idx);
		snap_put_u16(w, vq->signalled_used);
		snap_put_u8(w, vq->signalled_valid);
		snap_put_u8(w, vq->event_idx);
		snap_put_u8(w, vq->indirect);
	}
	return ops->save ? ops->save(dev, w, e) : 0;
}

/* The core's part of a saved device, read and checked before any of it is used. */
struct saved_queue {
	uint16_t size, last_avail, used_idx, signalled_used;
	bool ready, signalled_valid, event_idx, indirect;
	uint64_t desc, avail, used;
};

static int bad(struct err *e, const struct virtio_dev *dev, const char *what)
{
	return err_set(e, -EINVAL, "snapshot: %s: %s", dev->ops->name, what);
}

static int check_saved_queue(struct virtio_dev *dev, int q, const struct saved_queue *s,
			     uint64_t offered, struct err *e)
{
	uint32_t max = dev->ops->queue_max_size;

	if (!s->size || s->size > max || (s->size & (s->size - 1)))
		return err_set(e, -EINVAL, "snapshot: %s: queue %d: size %u is not a power of two "
			       "up to %u", dev->ops->name, q, s->size, max);
	if ((s->event_idx && !(offered & (1ULL << VIRTIO_RING_F_EVENT_IDX))) ||
	    (s->indirect && !(offered & (1ULL << VIRTIO_RING_F_INDIRECT_DESC))))
		return err_set(e, -EINVAL, "snapshot: %s: queue %d: ring feature not offered",
			       dev->ops->name, q);
	/* A queue that is not ready has no ring state (virtq_reset); nothing else reaches it. */
	if (!s->ready && (s->last_avail || s->used_idx || s->signalled_used || s->signalled_valid ||
			  s->event_idx || s->indirect))
		return err_set(e, -EINVAL, "snapshot: %s: queue %d: ring state on a queue that is "
			       "not ready", dev->ops->name, q);
	/* last_avail and used_idx may be any pair: the ring code masks every index with the
	 * size and checks the driver's avail index against last_avail at each pop. */
	return 0;
}

/* The status bits a running device can have, with the features they imply. A transitional
 * device's legacy flag follows whichever interface the driver touched last, so a running
 * device may meet either interface's rules: the checks are those both share. Only known bits;
 * once FEATURES_OK or DRIVER_OK is set (the features were checked then and are fixed), only
 * features of the device's full offer, and with FEATURES_OK a combination the model accepts.
 * Before that the driver may have written anything, as the guest can. */
static int check_status(struct virtio_dev *dev, uint8_t status, struct err *e)
{
	uint64_t offered = dev->ops->features | TRANSPORT_FEATURES;
	uint64_t acked = dev->driver_features;

	if (status & ~KNOWN_STATUS)
		return bad(e, dev, "unknown device status bits");
	if (!(status & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK)))
		return 0;
	if (acked & ~offered)
		return bad(e, dev, "acknowledged features that were not offered");
	if ((status & VIRTIO_CONFIG_S_FEATURES_OK) && dev->ops->features_ok &&
	    !dev->ops->features_ok(dev, acked))
		return bad(e, dev, "FEATURES_OK on features the device refuses");
	return 0;
}

int virtio_dev_restore(struct virtio_dev *dev, struct snap_cursor *c, struct err *e)
{
	const struct virtio_dev_ops *ops = dev->ops;
	struct saved_queue sq[VIRTIO_MAX_QUEUES];
	uint32_t id, config_size, early;
	uint8_t status, isr;
	uint16_t nq;
	int err;

	id = snap_get_u32(c);
	status = snap_get_u8(c);
	isr = snap_get_u8(c);
	dev->driver_features = snap_get_u64(c);
	dev->config_generation = snap_get_u32(c);
	early = snap_get_u32(c);
	config_size = snap_get_u32(c);
	if (c->err)
		return err_set(e, -EBADMSG, "snapshot: %s: section truncated", ops->name);
	if (id != ops->device_id)
		return err_set(e, -EINVAL, "snapshot: %s: saved device ID %u, this is %u",
			       ops->name, id, ops->device_id);
	if (config_size != ops->config_size)
		return bad(e, dev, "config space of another size");
	if (isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG))
		return bad(e, dev, "unknown ISR bits");
	if (early & ~((1ULL << ops->num_queues) - 1))
		return bad(e, dev, "early kick on a queue that does not exist");
	if ((err = check_status(dev, status, e)))
		return err;
	/* The config bytes are the model's: its restore checks any field it relies on. */
	if (config_size)
		snap_get(c, dev->config, config_size);
	nq = snap_get_u16(c);
	if (!c->err && nq != ops->num_queues)
		return bad(e, dev, "another number of queues");
	for (int q = 0; q < ops->num_queues && !c->err; q++) {
		struct saved_queue *s = &sq[q];

		s->size = snap_get_u16(c);
		s->ready = snap_get_u8(c);
		s->desc = snap_get_u64(c);
		s->avail = snap_get_u64(c);
		s->used = snap_get_u64(c);
		s->last_avail = snap_get_u16(c);
		s->used_idx = snap_get_u16(c);
		s->signalled_used = snap_get_u16(c);
		s->signalled_valid = snap_get_u8(c);
		s->event_idx = snap_get_u8(c);
		s->indirect = snap_get_u8(c);
		if (!c->err && (err = check_saved_queue(dev, q, s, virtio_offered_features(dev), e)))
			return err;
	}
	if (c->err)
		return err_set(e, -EBADMSG, "snapshot: %s: section truncated", ops->name);

	/* Checked: make it the device's. virtq_enable checks the rings against guest RAM again. */
	for (int q = 0; q < ops->num_queues; q++) {
		const struct saved_queue *s = &sq[q];
		struct virtq *vq = &dev->vqs[q];
		const char *why;

		dev->queue_size[q] = s->size;
		virtq_reset(vq, s->size);
		vq->desc_gpa = s->desc, vq->avail_gpa = s->avail, vq->used_gpa = s->used;
		if (!s->ready)
			continue;
		vq->event_idx = s->event_idx;
		vq->indirect = s->indirect;
		if (virtq_enable(vq, dev->env.mem, &why) < 0) {
			virtq_reset(vq, s->size);
			return err_set(e, -EINVAL, "snapshot: %s: queue %d: %s", ops->name, q, why);
		}
		vq->last_avail = s->last_avail;
		vq->used_idx = s->used_idx;
		vq->signalled_used = s->signalled_used;
		vq->signalled_valid = s->signalled_valid;
	}
	dev->status = status;
	dev->isr = isr;
	/* Kicks are only held back before DRIVER_OK, on ready queues. */
	dev->early_kicks = 0;
	for (int q = 0; q < ops->num_queues; q++)
		if ((early & (1u << q)) && status && !(status & VIRTIO_CONFIG_S_DRIVER_OK) &&
		    dev->vqs[q].ready)
			dev->early_kicks |= 1u << q;

	if (ops->restore && (err = ops->restore(dev, c, e)))
		return err;
	if (status & VIRTIO_CONFIG_S_DRIVER_OK) {
		if (ops->activate)
			ops->activate(dev);
		/* A kick the old process had not served yet is gone with it: serve every live
		 * queue once from the loop (a spurious notification is harmless). */
		for (int q = 0; q < ops->num_queues; q++)
			if (virtio_queue_live(dev, q))
				virtio_queue_kick(dev, q);
	}
	return 0;
}
