/* virtio-console's control queues (VIRTIO_CONSOLE_F_MULTIPORT, virtio spec 5.3.6.2).
 *
 * The guest's driver says DEVICE_READY; the device answers PORT_ADD for every port; for each
 * port the driver says PORT_READY, and the device sends CONSOLE_PORT (port 0), PORT_OPEN (the
 * host side is connected) and PORT_NAME. The driver's own PORT_OPEN says whether a program in
 * the guest has the port open: only then is the port's host input read (Linux drops what
 * arrives for a port nobody has open). When the input ends, PORT_OPEN 0 tells the guest, whose
 * read() then returns what is left and after that 0.
 *
 * What the device has to send waits in each port's pending bits (console_dev.h) until the
 * guest posts control receive buffers. The guest's messages are read once into a local copy;
 * a short one, or one with an unknown port or event, is ignored and counted. */
#include <endian.h>
#include <string.h>

#include "devices/virtio/console_dev.h"
#include "vmm/log.h"
#include "vmm/util.h"

bool con_host_open(const struct con_port *p)
{
	if (p->id == 0)
		return true; /* the terminal */
	if (p->in_mode != CON_IN_NONE)
		return !p->in_eof;
	return p->out != NULL;
}

/* The next message p has pending, as a control header in m (plus the name for PORT_NAME).
 * Returns its length in bytes. */
static size_t compose(const struct con_port *p, unsigned bit, uint8_t *m)
{
	struct virtio_console_control h = { .id = htole32((uint32_t)p->id), .value = htole16(1) };
	size_t len = sizeof(h), nlen;

	switch (bit) {
	case CON_SEND_ADD:
		h.event = htole16(VIRTIO_CONSOLE_PORT_ADD);
		break;
	case CON_SEND_CONSOLE:
		h.event = htole16(VIRTIO_CONSOLE_CONSOLE_PORT);
		break;
	case CON_SEND_OPEN:
		h.event = htole16(VIRTIO_CONSOLE_PORT_OPEN);
		h.value = htole16(con_host_open(p));
		break;
	default: /* CON_SEND_NAME: the name follows, without a NUL (its length is the rest) */
		h.event = htole16(VIRTIO_CONSOLE_PORT_NAME);
		nlen = strlen(p->name);
		memcpy(m + len, p->name, nlen);
		len += nlen;
		break;
	}
	memcpy(m, &h, sizeof(h));
	return len;
}

void con_ctrl_flush(struct virtio_console *c)
{
	struct virtio_dev *dev = &c->vdev;
	uint8_t m[sizeof(struct virtio_console_control) + CON_NAME_MAX];
	bool pushed = false;
	int i = 0;

	while (i < c->nports && virtio_queue_live(dev, CON_CTRL_RX)) {
		struct con_port *p = &c->ports[i];
		unsigned bit = p->pending & -p->pending; /* the lowest goes first */
		size_t len;
		uint64_t n;

		if (!bit) {
			i++;
			continue;
		}
		if (virtio_pop(dev, CON_CTRL_RX, &c->req, VIRTQ_DEV_WRITES) != 0)
			break; /* no buffer: the guest's next one brings us back */
		len = compose(p, bit, m);
		n = virtq_copy_to_writable(&c->req, m, len);
		virtio_push(dev, CON_CTRL_RX, c->req.head, (uint32_t)n);
		pushed = true;
		p->pending &= ~bit;
		atomic_fetch_add_explicit(n < len ? &c->ctrl_truncated : &c->ctrl_sent, 1,
					  memory_order_relaxed);
	}
	if (pushed)
		virtio_notify_used(dev, CON_CTRL_RX);
}

void con_ctrl_host_changed(struct con_port *p)
{
	/* Before PORT_READY the guest hears the state with the rest of the port's messages. */
	if (p->ready) {
		p->pending |= CON_SEND_OPEN;
		con_ctrl_flush(p->c);
	}
}

static void ignored(struct virtio_console *c)
{
	atomic_fetch_add_explicit(&c->ctrl_ignored, 1, memory_order_relaxed);
}

/* One message from the guest (its copy). */
static void handle(struct virtio_console *c, const struct virtio_console_control *m)
{
	uint32_t id = le32toh(m->id);
	uint16_t event = le16toh(m->event), value = le16toh(m->value);
	struct con_port *p;

	if (event == VIRTIO_CONSOLE_DEVICE_READY) {
		if (!value) {
			pr_info("virtio-console: the guest's driver failed to set up");
			return;
		}
		for (int i = 0; i < c->nports; i++)
			c->ports[i].pending |= CON_SEND_ADD;
		return;
	}
	if (id >= (uint32_t)c->nports) {
		ignored(c);
		return;
	}
	p = &c->ports[id];
	switch (event) {
	case VIRTIO_CONSOLE_PORT_READY:
		p->ready = value != 0;
		if (!p->ready) {
			pr_info("virtio-console: the guest could not add port %u", id);
			break;
		}
		p->pending |= id == 0 ? CON_SEND_CONSOLE : 0;
		p->pending |= con_host_open(p) ? CON_SEND_OPEN : 0;
		p->pending |= p->name[0] ? CON_SEND_NAME : 0;
		break;
	case VIRTIO_CONSOLE_PORT_OPEN:
		p->guest_open = value != 0;
		con_input_want(p); /* reads only while it is open */
		break;
	default:
		ignored(c);
		break;
	}
}

bool con_ctrl_receive(struct virtio_console *c)
{
	struct virtio_dev *dev = &c->vdev;
	int n = 0;

	while (n < VIRTIO_BUDGET && virtio_pop(dev, CON_CTRL_TX, &c->req, VIRTQ_DEV_READS) == 0) {
		struct virtio_console_control m;

		/* One copy: a second vCPU may rewrite the buffer while we look. */
		if (virtq_copy_from_readable(&c->req, &m, sizeof(m)) < sizeof(m))
			ignored(c);
		else
			handle(c, &m);
		virtio_push(dev, CON_CTRL_TX, c->req.head, 0);
		n++;
	}
	if (n)
		virtio_notify_used(dev, CON_CTRL_TX);
	con_ctrl_flush(c); /* what the messages asked for */
	return n == VIRTIO_BUDGET;
}
