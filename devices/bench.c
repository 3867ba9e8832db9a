/* The exit-cost lab's probes (--bench-devices): a port and an MMIO page that mica handles in
 * userspace and that do nothing else, and a port that is a PIO ioeventfd. They let the test
 * guest time each kind of exit with no device model behind it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/legacy.h"
#include "snapshot/snapshot.h"
#include "vmm/bus.h"
#include "vmm/err.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/evloop.h"
#include "vmm/machine.h"

struct bench_dev {
	struct ev_handler eventfd_h;
	uint32_t scratch;
};

static void probe_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct bench_dev *b = opaque;

	(void)off;
	memcpy(data, &b->scratch, MIN(len, 4u));
}

static void probe_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct bench_dev *b = opaque;

	(void)off;
	memcpy(&b->scratch, data, MIN(len, 4u));
}

static const struct bus_ops probe_ops = { .read = probe_read, .write = probe_write };

static void drain(struct ev_handler *h, uint32_t events)
{
	uint64_t n;

	(void)events;
	if (read(h->fd, &n, sizeof(n)) < 0)
		return;
}

/* Snapshots: the probes' scratch word, which the guest reads back (the eventfd port holds
 * nothing). Guest accesses to it are not locked: a snapshot runs with every vCPU paused. */
static int bench_save(void *opaque, struct snap_writer *w, struct err *e)
{
	struct bench_dev *b = opaque;

	(void)e;
	snap_put_u32(w, b->scratch);
	return 0;
}

static int bench_restore(void *opaque, struct snap_cursor *c, struct err *e)
{
	struct bench_dev *b = opaque;
	uint32_t v = snap_get_u32(c);

	if (snap_cursor_end(c))
		return err_set(e, -EBADMSG, "snapshot: bench: section of another length");
	b->scratch = v; /* any value: the guest can write any */
	return 0;
}

static const struct snap_ops bench_snap_ops = {
	.name = "bench", .version = 1, .save = bench_save, .restore = bench_restore,
};

static void bench_destroy(void *opaque)
{
	struct bench_dev *b = opaque;

	if (b->eventfd_h.fn)
		close(b->eventfd_h.fd);
	free(b);
}

int bench_devices_create(struct machine *m)
{
	struct bench_dev *b = calloc(1, sizeof(*b));
	struct machine_ioeventfd io = { .addr = BENCH_EVENTFD_PORT, .len = 4, .pio = true };
	int fd, err;

	if (!b)
		return -ENOMEM;
	err = machine_own(m, b, bench_destroy);
	if (err) {
		free(b);
		return err;
	}
	err = bus_register(m->pio, BENCH_PIO_PORT, 4, &probe_ops, b, "bench-pio");
	if (!err)
		err = bus_register(m->mmio, BENCH_MMIO_ADDR, 4096, &probe_ops, b, "bench-mmio");
	if (err)
		return err;
	fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	b->eventfd_h.fn = drain;
	err = evloop_add(m->loop, fd, EPOLLIN, &b->eventfd_h);
	if (err) {
		close(fd);
		b->eventfd_h.fn = NULL;
		return err;
	}
	io.fd = fd;
	err = machine_ioeventfd(m, &io, true);
	return err ? err : machine_add_state(m, b, &bench_snap_ops);
}
