/* virtio-console (device ID 3), one port: receiveq 0 carries terminal input to the guest,
 * transmitq 1 carries guest output to mica's stdout (an output queue, vmm/outq.h). The
 * VIRTIO_CONSOLE_F_SIZE feature reports the terminal size; a resize changes the config (and its
 * generation) and interrupts the driver.
 *
 * Transmit backpressure: when the output queue has no room for a request's bytes (stdout's
 * reader is slow or stopped), the device keeps that request, partly written, and stops taking
 * the transmitq; the guest's ring fills and its driver waits, as the spec means a device that is
 * not ready to transmit to behave. Nothing is dropped and nothing blocks. When the queue has
 * room again it tells us on the loop thread and the transmitq is served again (a kick). A
 * request goes back to the guest only once its last byte is in the queue. */
#include <errno.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "vmm/log.h"
#include "vmm/outq.h"
#include "vmm/term.h"
#include "vmm/util.h"

#define RX_QUEUE 0
#define TX_QUEUE 1
#define TX_BATCH 64 /* requests gathered into one write */

struct virtio_console {
	struct virtio_dev vdev;
	struct virtio_console_config config;
	struct term *term;
	struct outq *tx;             /* set up once */
	struct virtq_req req;

	/* The transmit batch (dev->lock): requests taken from the transmitq whose bytes are not
	 * all in the output queue yet, oldest first. iov[iov_next, niov) is what is still to
	 * go; request i (req_next <= i < nreq) owns the segments before ends[i]. Gathering stops
	 * once more than VIRTQ_MAX_SEGS segments are in, so the last request always fits whole. */
	struct iovec iov[2 * VIRTQ_MAX_SEGS];
	int niov, iov_next;
	uint16_t heads[TX_BATCH];
	int ends[TX_BATCH];
	int nreq, req_next;
	bool tx_waiting;             /* stopped for room in the output queue */

	atomic_ulong output_bytes;   /* guest bytes the output queue took */
	atomic_ulong output_waits;   /* times the transmitq stopped for room */
};

/* Takes requests from the transmitq into an empty batch. Returns how many; *empty tells whether
 * the queue ran dry (kicks re-enabled) or broke. */
static int tx_gather(struct virtio_console *c, bool *empty)
{
	struct virtio_dev *dev = &c->vdev;

	c->niov = c->iov_next = c->nreq = c->req_next = 0;
	*empty = false;
	while (c->nreq < TX_BATCH && c->niov <= VIRTQ_MAX_SEGS) {
		if (virtio_pop(dev, TX_QUEUE, &c->req, VIRTQ_DEV_READS) != 0) {
			*empty = true;
			break;
		}
		for (int i = 0; i < c->req.nsegs; i++)
			c->iov[c->niov++] = (struct iovec){ c->req.segs[i].hva, c->req.segs[i].len };
		c->heads[c->nreq] = c->req.head;
		c->ends[c->nreq++] = c->niov;
	}
	return c->nreq;
}

/* Hands the rest of the batch to the output queue and returns the requests now complete to the
 * guest. Returns how many went back; the batch is empty when all did. */
static int tx_send(struct virtio_console *c)
{
	struct virtio_dev *dev = &c->vdev;
	size_t n = outq_writev(c->tx, c->iov + c->iov_next, c->niov - c->iov_next);
	int pushed = 0;

	atomic_fetch_add_explicit(&c->output_bytes, n, memory_order_relaxed);
	while (c->iov_next < c->niov && c->iov[c->iov_next].iov_len <= n)
		n -= c->iov[c->iov_next++].iov_len;
	if (n) { /* cut short inside this segment: the rest stays in hand */
		c->iov[c->iov_next].iov_base = (uint8_t *)c->iov[c->iov_next].iov_base + n;
		c->iov[c->iov_next].iov_len -= n;
	}
	while (c->req_next < c->nreq && c->ends[c->req_next] <= c->iov_next) {
		/* The device wrote nothing into a transmit buffer. */
		virtio_push(dev, TX_QUEUE, c->heads[c->req_next++], 0);
		pushed++;
	}
	if (c->req_next == c->nreq)
		c->nreq = c->req_next = 0;
	return pushed;
}

static bool console_transmit(struct virtio_console *c)
{
	bool idle = false; /* the transmitq is empty or broken, or we wait for room */
	int pushed = 0;

	while (pushed < VIRTIO_BUDGET) {
		/* A batch left in hand goes first: the guest's bytes stay in order. */
		if (!c->nreq && !tx_gather(c, &idle))
			break;
		pushed += tx_send(c);
		if (c->nreq) {
			/* No room: take no more requests until the output queue calls back. */
			if (!c->tx_waiting)
				atomic_fetch_add_explicit(&c->output_waits, 1, memory_order_relaxed);
			c->tx_waiting = true;
			idle = true;
			break;
		}
		c->tx_waiting = false;
		if (idle)
			break;
	}
	if (pushed)
		virtio_notify_used(&c->vdev, TX_QUEUE);
	return !idle && pushed >= VIRTIO_BUDGET;
}

/* The output queue has room again (event-loop thread, no outq lock held). */
static void console_tx_space(void *opaque)
{
	struct virtio_console *c = opaque;

	pthread_mutex_lock(&c->vdev.lock);
	if (c->tx_waiting) {
		c->tx_waiting = false;
		virtio_queue_kick(&c->vdev, TX_QUEUE);
	}
	pthread_mutex_unlock(&c->vdev.lock);
}

/* The driver reset the device or disabled the transmitq: the requests in hand belong to a ring
 * that is gone, so their rest is dropped and nothing goes back into it. */
static void tx_forget(struct virtio_console *c)
{
	c->niov = c->iov_next = c->nreq = c->req_next = 0;
	c->tx_waiting = false;
}

static void console_reset(struct virtio_dev *dev)
{
	tx_forget(container_of(dev, struct virtio_console, vdev));
}

static void console_queue_disable(struct virtio_dev *dev, int q)
{
	if (q == TX_QUEUE)
		tx_forget(container_of(dev, struct virtio_console, vdev));
}

static int console_stats(struct virtio_dev *dev, struct stat_value *out, int max)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);
	struct stat_value v[] = {
		{ "output_bytes", NULL, atomic_load(&c->output_bytes) },
		{ "output_waits", NULL, atomic_load(&c->output_waits) },
	};
	int n = MIN((int)ARRAY_SIZE(v), max);

	memcpy(out, v, n * sizeof(v[0]));
	return n;
}

static bool console_queue_notify(struct virtio_dev *dev, int q)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);

	if (q == TX_QUEUE)
		return console_transmit(c);
	if (c->term)
		term_input_space(c->term); /* new receive buffers: held-back input can go */
	return false;
}

/* Terminal input for the guest: as much as the posted receive buffers take. */
static size_t console_receive(void *opaque, const uint8_t *buf, size_t len)
{
	struct virtio_console *c = opaque;
	struct virtio_dev *dev = &c->vdev;
	size_t done = 0;
	bool pushed = false;

	pthread_mutex_lock(&dev->lock);
	while (done < len && virtio_queue_live(dev, RX_QUEUE) &&
	       virtio_pop(dev, RX_QUEUE, &c->req, VIRTQ_DEV_WRITES) == 0) {
		uint64_t n = virtq_copy_to_writable(&c->req, buf + done, len - done);

		virtio_push(dev, RX_QUEUE, c->req.head, (uint32_t)n);
		pushed = true;
		done += n;
	}
	if (pushed)
		virtio_notify_used(dev, RX_QUEUE);
	pthread_mutex_unlock(&dev->lock);
	return done;
}

static void console_resize(void *opaque, uint16_t cols, uint16_t rows)
{
	struct virtio_console *c = opaque;
	struct virtio_dev *dev = &c->vdev;

	pthread_mutex_lock(&dev->lock);
	if (c->config.cols != cols || c->config.rows != rows) {
		c->config.cols = cols;
		c->config.rows = rows;
		virtio_config_changed(dev);
	}
	pthread_mutex_unlock(&dev->lock);
}

static void console_destroy(struct virtio_dev *dev)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);

	virtio_dev_cleanup(&c->vdev);
	free(c);
}

static const struct virtio_dev_ops console_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.pci_class = 0x078000,
	.features = 1ULL << VIRTIO_CONSOLE_F_SIZE,
	.num_queues = 2,
	.queue_max_size = 256,
	.config_size = sizeof(struct virtio_console_config),
	.queue_notify = console_queue_notify,
	.reset = console_reset,
	.queue_disable = console_queue_disable,
	.stats = console_stats,
	.destroy = console_destroy,
};

struct console_sink virtio_console_sink(struct virtio_dev *dev)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);

	return (struct console_sink){ .receive = console_receive, .resize = console_resize,
				      .dev = c };
}

void virtio_console_set_term(struct virtio_dev *dev, struct term *t)
{
	container_of(dev, struct virtio_console, vdev)->term = t;
}

int virtio_console_create(const struct virtio_env *env, struct outq *tx, struct virtio_dev **out)
{
	struct virtio_console *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->tx = tx;
	c->config.cols = 80;
	c->config.rows = 25;
	err = virtio_dev_init(&c->vdev, env, &console_ops, &c->config);
	if (!err && (err = outq_on_space(tx, console_tx_space, c)))
		virtio_dev_cleanup(&c->vdev);
	if (err) {
		free(c);
		return err;
	}
	*out = &c->vdev;
	return 0;
}
