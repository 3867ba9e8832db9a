/* virtio-console (device ID 3), one port: receiveq 0 carries terminal input to the guest,
 * transmitq 1 carries guest output to out_fd. VIRTIO_CONSOLE_F_SIZE reports the terminal size;
 * a resize changes the config (and its generation) and interrupts the driver. */
#include <errno.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "vmm/log.h"
#include "vmm/term.h"
#include "vmm/util.h"

#define RX_QUEUE 0
#define TX_QUEUE 1
#define TX_BATCH 64 /* requests gathered into one writev */

struct virtio_console {
	struct virtio_dev vdev;
	struct virtio_console_config config;
	struct term *term;
	int out_fd;
	struct virtq_req req;
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint16_t heads[TX_BATCH];
	uint32_t lens[TX_BATCH];
};

/* Writes all of iov, resuming after partial writes; output is dropped if out_fd is gone. */
static void write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* gone, or non-blocking and full: drop rather than spin under the lock */
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= w;
		}
	}
}

static bool console_transmit(struct virtio_console *c)
{
	struct virtio_dev *dev = &c->vdev;
	bool more = true;
	int total = 0;

	while (more && total < VIRTIO_BUDGET) {
		int nreq = 0, niov = 0;

		/* Gather several requests' buffers into one writev, then complete them. */
		while (nreq < TX_BATCH) {
			if (virtio_pop(dev, TX_QUEUE, &c->req, VIRTQ_DEV_READS) != 0) {
				more = false;
				break;
			}
			if (niov + c->req.nsegs > VIRTQ_MAX_SEGS) {
				write_all(c->out_fd, c->iov, niov);
				niov = 0;
			}
			for (int i = 0; i < c->req.nsegs; i++)
				c->iov[niov++] = (struct iovec){ c->req.segs[i].hva, c->req.segs[i].len };
			c->heads[nreq] = c->req.head;
			c->lens[nreq++] = 0; /* the device wrote nothing into a transmit buffer */
		}
		if (niov)
			write_all(c->out_fd, c->iov, niov);
		for (int i = 0; i < nreq; i++)
			virtio_push(dev, TX_QUEUE, c->heads[i], c->lens[i]);
		if (nreq)
			virtio_notify_used(dev, TX_QUEUE);
		total += nreq;
	}
	return more;
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

int virtio_console_create(const struct virtio_env *env, int out_fd, struct virtio_dev **out)
{
	struct virtio_console *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -ENOMEM;
	c->out_fd = out_fd;
	c->config.cols = 80;
	c->config.rows = 25;
	err = virtio_dev_init(&c->vdev, env, &console_ops, &c->config);
	if (err) {
		free(c);
		return err;
	}
	*out = &c->vdev;
	return 0;
}
