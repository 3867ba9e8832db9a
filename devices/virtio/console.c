/* virtio-console (device ID 3). Port 0 (the guest's hvc0): receiveq 0 carries terminal input
 * to the guest, transmitq 1 carries guest output to mica's stdout (an output queue,
 * vmm/outq.h). The VIRTIO_CONSOLE_F_SIZE feature reports the terminal size; a resize changes
 * the config (and its generation) and interrupts the driver.
 *
 * With named ports (virtio_console_create_ports) the device also offers
 * VIRTIO_CONSOLE_F_MULTIPORT: control queues (console_ctrl.c) announce each port and its name,
 * each port's transmitq goes to its own output queue, and its receiveq is fed from a host fd
 * (console_input.c). Layout and locking: console_dev.h.
 *
 * Transmit backpressure, the same for every port: when the output queue has no room for a
 * request's bytes (its reader is slow or stopped), the device keeps that request, partly
 * written, and stops taking the transmitq; the guest's ring fills and its driver waits, as the
 * spec means a device that is not ready to transmit to behave. Nothing is dropped and nothing
 * blocks. When the queue has room again it tells us on the loop thread and the transmitq is
 * served again (a kick). A request goes back to the guest only once its last byte is in the
 * queue. */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/console_dev.h"
#include "snapshot/snapshot.h"
#include "vmm/err.h"
#include "vmm/log.h"
#include "vmm/outq.h"
#include "vmm/term.h"
#include "vmm/util.h"

/* ---- request batches (console_dev.h) ---- */

int con_batch_gather(struct virtio_dev *dev, int q, struct con_batch *b, struct virtq_req *req,
		     enum virtq_dir dir, bool *empty)
{
	*empty = false;
	while (b->nreq < CON_BATCH && b->niov <= VIRTQ_MAX_SEGS) {
		if (virtio_pop(dev, q, req, dir) != 0) {
			*empty = true;
			break;
		}
		for (int i = 0; i < req->nsegs; i++)
			b->iov[b->niov++] = (struct iovec){ req->segs[i].hva, req->segs[i].len };
		b->heads[b->nreq] = req->head;
		b->lens[b->nreq] = req->read_len + req->write_len;
		b->ends[b->nreq++] = b->niov;
	}
	return con_batch_held(b);
}

void con_batch_take(struct con_batch *b, size_t n)
{
	while (b->iov_next < b->niov && b->iov[b->iov_next].iov_len <= n)
		n -= b->iov[b->iov_next++].iov_len;
	if (n) { /* cut short inside this segment: the rest stays in hand */
		b->iov[b->iov_next].iov_base = (uint8_t *)b->iov[b->iov_next].iov_base + n;
		b->iov[b->iov_next].iov_len -= n;
	}
}

void con_batch_compact(struct con_batch *b)
{
	int held = con_batch_held(b), segs = b->niov - b->iov_next;

	if (!b->iov_next && !b->req_next)
		return;
	memmove(b->iov, b->iov + b->iov_next, segs * sizeof(b->iov[0]));
	memmove(b->heads, b->heads + b->req_next, held * sizeof(b->heads[0]));
	memmove(b->lens, b->lens + b->req_next, held * sizeof(b->lens[0]));
	for (int i = 0; i < held; i++)
		b->ends[i] = b->ends[b->req_next + i] - b->iov_next;
	b->niov = segs;
	b->nreq = held;
	b->iov_next = b->req_next = 0;
}

void con_batch_forget(struct con_batch *b)
{
	b->niov = b->iov_next = b->nreq = b->req_next = 0;
}

/* ---- transmit, every port ---- */

/* Hands the rest of p's batch to its output queue and returns the requests now complete to the
 * guest. Returns how many went back; the batch is empty when all did. */
static int tx_send(struct virtio_console *c, struct con_port *p)
{
	struct con_batch *b = &p->tx;
	size_t n;
	int pushed = 0;

	if (p->out) {
		n = outq_writev(p->out, b->iov + b->iov_next, b->niov - b->iov_next);
	} else { /* nobody reads this port: taken, and dropped */
		n = 0;
		for (int i = b->iov_next; i < b->niov; i++)
			n += b->iov[i].iov_len;
		atomic_fetch_add_explicit(&c->bytes_dropped, n, memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&p->bytes_out, n, memory_order_relaxed);
	con_batch_take(b, n);
	while (b->req_next < b->nreq && b->ends[b->req_next] <= b->iov_next) {
		/* The device wrote nothing into a transmit buffer. */
		virtio_push(&c->vdev, p->txq, b->heads[b->req_next++], 0);
		pushed++;
	}
	if (b->req_next == b->nreq)
		con_batch_forget(b);
	return pushed;
}

/* Serves p's transmitq. Returns true when it stopped at the budget with work left. */
static bool transmit(struct virtio_console *c, struct con_port *p)
{
	bool idle = false; /* the transmitq is empty or broken, or we wait for room */
	int pushed = 0;

	while (pushed < VIRTIO_BUDGET) {
		/* A batch left in hand goes first: the guest's bytes stay in order. */
		if (!p->tx.nreq && !con_batch_gather(&c->vdev, p->txq, &p->tx, &c->req,
						     VIRTQ_DEV_READS, &idle))
			break;
		pushed += tx_send(c, p);
		if (p->tx.nreq) {
			/* No room: take no more requests until the output queue calls back. */
			if (!p->tx_waiting)
				atomic_fetch_add_explicit(&p->output_waits, 1, memory_order_relaxed);
			p->tx_waiting = true;
			idle = true;
			break;
		}
		p->tx_waiting = false;
		if (idle)
			break;
	}
	if (pushed)
		virtio_notify_used(&c->vdev, p->txq);
	return !idle && pushed >= VIRTIO_BUDGET;
}

/* A port's output queue has room again (event-loop thread, no outq lock held). */
static void tx_space(void *opaque)
{
	struct con_port *p = opaque;
	struct virtio_dev *dev = &p->c->vdev;

	pthread_mutex_lock(&dev->lock);
	if (p->tx_waiting) {
		p->tx_waiting = false;
		virtio_queue_kick(dev, p->txq);
	}
	pthread_mutex_unlock(&dev->lock);
}

/* The driver reset the device or disabled the transmitq: the requests in hand belong to a ring
 * that is gone, so their rest is dropped and nothing goes back into it. */
static void tx_forget(struct con_port *p)
{
	con_batch_forget(&p->tx);
	p->tx_waiting = false;
}

/* ---- the device ---- */

/* The port a data queue belongs to (q is neither control queue). */
static struct con_port *queue_port(struct virtio_console *c, int q)
{
	return &c->ports[q < 2 ? 0 : (q - 2) / 2];
}

static bool is_tx_queue(int q)
{
	return q & 1;
}

static void console_reset(struct virtio_dev *dev)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);

	for (int i = 0; i < c->nports; i++) {
		struct con_port *p = &c->ports[i];

		tx_forget(p);
		con_input_forget(p);
		p->ready = p->guest_open = false;
		p->pending = 0;
	}
}

static void console_queue_disable(struct virtio_dev *dev, int q)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);

	if (c->multiport && (q == CON_CTRL_RX || q == CON_CTRL_TX))
		return; /* nothing of theirs is held */
	if (is_tx_queue(q))
		tx_forget(queue_port(c, q));
	else
		con_input_forget(queue_port(c, q));
}

static bool console_queue_notify(struct virtio_dev *dev, int q)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);
	struct con_port *p;

	if (c->multiport && q == CON_CTRL_RX) {
		con_ctrl_flush(c);
		return false;
	}
	if (c->multiport && q == CON_CTRL_TX)
		return con_ctrl_receive(c);
	p = queue_port(c, q);
	if (is_tx_queue(q))
		return transmit(c, p);
	if (p->id == 0) {
		if (c->term)
			term_input_space(c->term); /* new receive buffers: held-back input can go */
	} else {
		con_input_want(p);
	}
	return false;
}

/* ---- snapshots ---- */

#define CON_SNAP_FORMAT 1

/* Beyond the core's state, per port: the control protocol's view (PORT_READY, the guest's
 * PORT_OPEN, what the guest was last told of the host side, the messages still to send), and
 * how many requests the port holds, taken from its transmitq (waiting for room in the output
 * queue) or its receiveq (waiting for host input). Those are not completed by a drain: a
 * transmit buffer would have to go back with bytes the host never took, a receive buffer
 * empty (a read() of 0, an end of file, to a program in the guest). They stay the source
 * device's; the restored device gives them back to its rings instead (the avail index it
 * consumes moves back over them, as virtio-net does under backpressure) and takes them again:
 * the same heads, validated anew. A transmit request the output queue had taken part of is
 * sent whole by the restored VM (its start twice, on two different hosts' outputs); host-side
 * queues and input are not in a snapshot. Nothing else is in flight: no drain op. */
static int console_save(struct virtio_dev *dev, struct snap_writer *w, struct err *e)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);

	(void)e;
	snap_put_u32(w, CON_SNAP_FORMAT);
	snap_put_u8(w, (uint8_t)c->nports);
	snap_put_u8(w, c->multiport);
	for (int i = 0; i < c->nports; i++) {
		const struct con_port *p = &c->ports[i];

		snap_put_u8(w, p->ready);
		snap_put_u8(w, p->guest_open);
		snap_put_u8(w, con_host_open(p));
		snap_put_u8(w, (uint8_t)p->pending);
		snap_put_u8(w, (uint8_t)con_batch_held(&p->tx));
		snap_put_u8(w, (uint8_t)con_batch_held(&p->rx));
	}
	return 0;
}

/* n requests of queue q the source device held go back to the ring (see above). */
static bool unpop_valid(const struct virtio_dev *dev, int q, unsigned n)
{
	return !n || (n <= CON_BATCH && virtio_queue_live(dev, q) && n <= dev->vqs[q].size);
}

static int console_restore(struct virtio_dev *dev, struct snap_cursor *c_, struct err *e)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);
	uint8_t st[CON_MAX_PORTS][6];
	uint32_t format = snap_get_u32(c_);
	uint8_t nports = snap_get_u8(c_), multiport = snap_get_u8(c_);

	if (c_->err)
		return err_set(e, -EINVAL, "snapshot: virtio-console: its state is cut short");
	if (format != CON_SNAP_FORMAT)
		return err_set(e, -EINVAL, "snapshot: virtio-console: unknown state format %u",
			       format);
	if (nports != c->nports || multiport != c->multiport)
		return err_set(e, -EINVAL, "snapshot: virtio-console: the snapshot has %u port(s), "
			       "this console %d", nports, c->nports);
	for (int i = 0; i < c->nports; i++)
		snap_get(c_, st[i], sizeof(st[i]));
	if (c_->err)
		return err_set(e, -EINVAL, "snapshot: virtio-console: its state is cut short");
	for (int i = 0; i < c->nports; i++) {
		const struct con_port *p = &c->ports[i];
		bool flags_ok = st[i][0] <= 1 && st[i][1] <= 1 && st[i][2] <= 1 &&
				!(st[i][3] & ~(CON_SEND_ADD | CON_SEND_CONSOLE | CON_SEND_OPEN |
					       CON_SEND_NAME));

		/* Without ports there is no control protocol: nothing of it can be set. */
		if (!flags_ok || (!c->multiport && (st[i][0] || st[i][1] || st[i][3])))
			return err_set(e, -EINVAL, "snapshot: virtio-console: invalid port state");
		/* Port 0's receiveq is fed by the terminal, which holds no buffers. */
		if (!unpop_valid(dev, p->txq, st[i][4]) || !unpop_valid(dev, p->rxq, st[i][5]) ||
		    (p->id == 0 && st[i][5]))
			return err_set(e, -EINVAL, "snapshot: virtio-console: invalid held requests");
	}
	/* The config bytes the core restored are the file's: the port count is the device's
	 * (the terminal's size stays the snapshot's until the terminal next changes). */
	c->config.max_nr_ports = c->multiport ? htole32((uint32_t)c->nports) : 0;
	for (int i = 0; i < c->nports; i++) {
		struct con_port *p = &c->ports[i];

		p->ready = st[i][0];
		p->guest_open = st[i][1];
		p->pending = st[i][3];
		/* The host side here is not the one the guest was told about (an input that had
		 * ended is a new one now, or the reverse): tell it. */
		if (p->ready && st[i][2] != con_host_open(p))
			p->pending |= CON_SEND_OPEN;
		dev->vqs[p->txq].last_avail -= st[i][4];
		dev->vqs[p->rxq].last_avail -= st[i][5];
	}
	/* Once the loop runs: messages to send, requests to take again, input to read. */
	for (int q = 0; q < c->ops.num_queues; q++)
		if (virtio_queue_live(dev, q))
			virtio_queue_kick(dev, q);
	return 0;
}

#define NUM(name, counter) ((struct stat_value){ (name), NULL, atomic_load(counter) })

static int console_stats(struct virtio_dev *dev, struct stat_value *out, int max)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);
	struct stat_value v[6 + 4 * VIRTIO_CONSOLE_MAX_PORTS] = {
		NUM("output_bytes", &c->ports[0].bytes_out),
		NUM("output_waits", &c->ports[0].output_waits),
	};
	int n = 2;

	if (c->multiport) {
		v[n++] = NUM("control_sent", &c->ctrl_sent);
		v[n++] = NUM("control_ignored", &c->ctrl_ignored);
		v[n++] = NUM("control_truncated", &c->ctrl_truncated);
	}
	if (c->multiport || !c->ports[0].out)
		v[n++] = NUM("bytes_dropped", &c->bytes_dropped);
	for (int i = 1; i < c->nports; i++) {
		struct con_port *p = &c->ports[i];

		v[n++] = (struct stat_value){ p->stat_names[0], p->name, 0 };
		v[n++] = NUM(p->stat_names[1], &p->bytes_in);
		v[n++] = NUM(p->stat_names[2], &p->bytes_out);
		v[n++] = NUM(p->stat_names[3], &p->output_waits);
	}
	n = MIN(n, max);
	memcpy(out, v, n * sizeof(v[0]));
	return n;
}

/* Terminal input for port 0: as much as the posted receive buffers take. */
static size_t console_receive(void *opaque, const uint8_t *buf, size_t len)
{
	struct virtio_console *c = opaque;
	struct virtio_dev *dev = &c->vdev;
	size_t done = 0;
	bool pushed = false;

	pthread_mutex_lock(&dev->lock);
	while (done < len && virtio_queue_live(dev, 0) &&
	       virtio_pop(dev, 0, &c->req, VIRTQ_DEV_WRITES) == 0) {
		uint64_t n = virtq_copy_to_writable(&c->req, buf + done, len - done);

		virtio_push(dev, 0, c->req.head, (uint32_t)n);
		pushed = true;
		done += n;
	}
	if (pushed)
		virtio_notify_used(dev, 0);
	pthread_mutex_unlock(&dev->lock);
	return done;
}

/* The terminal's size, for VIRTIO_CONSOLE_F_SIZE. (With ports, Linux takes port 0's size from
 * a VIRTIO_CONSOLE_RESIZE control message only, and kernels disagree on the order of its two
 * fields, so none is sent: the config is kept up to date all the same.) */
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

	for (int i = 0; i < c->nports; i++)
		con_input_destroy(&c->ports[i], dev->env.loop);
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
	.save = console_save,
	.restore = console_restore,
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

int virtio_console_drain(struct virtio_dev *dev, int idle_ms)
{
	struct virtio_console *c = container_of(dev, struct virtio_console, vdev);
	int ret = 0;

	for (int i = 0; i < c->nports; i++) {
		struct con_port *p = &c->ports[i];
		bool held;
		int err;

		if (!p->out)
			continue;
		do {
			/* Everything the queue takes, then its reader catches up, and again until
			 * the transmitq is empty: what the guest queued before it stopped, in order
			 * after the batch in hand. (A broken or reset device has no ring to take
			 * from; the batch in hand, if any, still goes.) */
			pthread_mutex_lock(&dev->lock);
			while (transmit(c, p))
				;
			held = p->tx.nreq;
			pthread_mutex_unlock(&dev->lock);
			err = outq_flush(p->out, idle_ms);
		} while (held && err != -ETIMEDOUT);
		if (err == -ETIMEDOUT)
			ret = err;
	}
	return ret;
}

/* Port i's fixed part: its queues and names. */
static void port_setup(struct virtio_console *c, int i)
{
	static const char *const stats[4] = { "", "_bytes_in", "_bytes_out", "_output_waits" };
	struct con_port *p = &c->ports[i];

	p->c = c;
	p->id = i;
	p->rxq = i ? 2 * i + 2 : 0;
	p->txq = i ? 2 * i + 3 : 1;
	p->rfd = p->evfd = -1;
	for (int k = 0; k < 4; k++)
		snprintf(p->stat_names[k], sizeof(p->stat_names[k]), "port%d%s", i, stats[k]);
}

/* Undoes what virtio_console_create_ports() set up of the ports. */
static void ports_cleanup(struct virtio_console *c)
{
	for (int i = 0; i < c->nports; i++) {
		if (c->ports[i].out)
			outq_off_space(c->ports[i].out, &c->ports[i]);
		con_input_destroy(&c->ports[i], c->vdev.env.loop);
	}
}

static int ports_init(struct virtio_console *c, struct outq *tx, const struct console_port *cp)
{
	int err = 0;

	for (int i = 0; i < c->nports; i++)
		port_setup(c, i);
	c->ports[0].out = tx;
	for (int i = 1; i < c->nports && !err; i++) {
		struct con_port *p = &c->ports[i];
		const char *name = cp[i - 1].name;

		if (!name || !name[0] || strlen(name) >= sizeof(p->name))
			return -EINVAL;
		snprintf(p->name, sizeof(p->name), "%s", name);
		p->out = cp[i - 1].out;
		err = con_input_init(p, c->vdev.env.loop, cp[i - 1].in_fd);
	}
	/* Last, as it is the one step an output queue remembers. */
	for (int i = 0; i < c->nports && !err; i++)
		if (c->ports[i].out)
			err = outq_on_space(c->ports[i].out, tx_space, &c->ports[i]);
	return err;
}

int virtio_console_create_ports(const struct virtio_env *env, struct outq *tx,
				const struct console_port *ports, int nports,
				struct virtio_dev **out)
{
	struct virtio_console *c;
	int err;

	if (nports < 0 || nports > VIRTIO_CONSOLE_MAX_PORTS || (nports && !ports))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ops = console_ops;
	c->nports = nports + 1;
	c->multiport = nports > 0;
	if (c->multiport) {
		c->ops.features |= 1ULL << VIRTIO_CONSOLE_F_MULTIPORT;
		c->ops.num_queues = (uint16_t)(2 * c->nports + 2);
		c->config.max_nr_ports = htole32((uint32_t)c->nports);
	}
	c->config.cols = 80;
	c->config.rows = 25;
	err = virtio_dev_init(&c->vdev, env, &c->ops, &c->config);
	if (err) {
		free(c);
		return err;
	}
	err = ports_init(c, tx, ports);
	if (err) {
		ports_cleanup(c);
		virtio_dev_cleanup(&c->vdev);
		free(c);
		return err;
	}
	*out = &c->vdev;
	return 0;
}

int virtio_console_create(const struct virtio_env *env, struct outq *tx, struct virtio_dev **out)
{
	return virtio_console_create_ports(env, tx, NULL, 0, out);
}
