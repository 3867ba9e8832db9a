/* virtio-console's named ports (VIRTIO_CONSOLE_F_MULTIPORT), driven as Linux's virtio_console
 * driver drives them: DEVICE_READY, PORT_READY per port, the guest's PORT_OPEN, receive buffers
 * posted and refilled, transmit requests. Each port's output is a pipe behind its own output
 * queue; input is a pipe, a regular file or /dev/null. The test runs the event loop itself
 * (the ports' input handlers, the output queues' writers, the kick eventfds). */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <pthread.h>
#include <pty.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "tests/unit/test.h"
#include "tests/unit/test_env.h"
#include "tests/unit/vring_driver.h"
#include "vmm/log.h"
#include "vmm/outq.h"
#include "vmm/util.h"

#define RAM   (64 * 1024 * 1024ULL)
#define QS    16
#define SLOT  0x1000 /* bytes per buffer slot */

#define S_ALL (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
	       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK)
#define F_V1        (1ULL << VIRTIO_F_VERSION_1)
#define F_MULTIPORT (1ULL << VIRTIO_CONSOLE_F_MULTIPORT)
#define F_SIZE      (1ULL << VIRTIO_CONSOLE_F_SIZE)

#define CTRL_RX 2
#define CTRL_TX 3
#define RXQ(n) ((n) ? 2 * (n) + 2 : 0)
#define TXQ(n) ((n) ? 2 * (n) + 3 : 1)

/* The fixture: port 0 (hvc0) and three named ports as `mica sandbox` has them. */
enum { P_STDIN = 1, P_STDOUT = 2, P_STDERR = 3, NPORTS = 3 };

static struct virtio_dev *dev;
static struct drv q[VIRTIO_MAX_QUEUES];
static uint16_t used_seen[VIRTIO_MAX_QUEUES];   /* the driver's progress in each used ring */
static int out_pipe[NPORTS + 1][2];              /* [0]: port 0's; [2], [3]: the outputs */
static struct outq *outq[NPORTS + 1];
static int in_pipe[2] = { -1, -1 };              /* the stdin port's, when it is a pipe */

struct msg {
	uint32_t id;
	uint16_t event, value;
	char name[64];
	uint32_t len;                              /* the used length */
};

static void run_loop(int timeout_ms)
{
	struct epoll_event evs[8];
	int n = epoll_wait(vm.loop.epfd, evs, 8, timeout_ms);

	for (int i = 0; i < n; i++)
		((struct ev_handler *)evs[i].data.ptr)->fn(evs[i].data.ptr, evs[i].events);
}

/* Runs the loop until nothing is ready. Returns the rounds that found something. */
static int settle(void)
{
	struct epoll_event evs[8];
	int rounds = 0, n;

	while (rounds < 10000 && (n = epoll_wait(vm.loop.epfd, evs, 8, 0)) > 0) {
		for (int i = 0; i < n; i++)
			((struct ev_handler *)evs[i].data.ptr)->fn(evs[i].data.ptr, evs[i].events);
		rounds++;
	}
	return rounds;
}

static uint64_t slot_gpa(int qn, int slot)
{
	return 0x2000000ULL + qn * 0x100000ULL + (uint64_t)slot * SLOT;
}

/* A device-writable buffer of len bytes in queue qn, in the slot of the next avail entry. */
static void post_in(int qn, uint32_t len)
{
	struct drv *d = &q[qn];
	uint16_t slot = d->avail_idx & (d->size - 1);

	drv_desc(d, slot, slot_gpa(qn, slot), len, VRING_DESC_F_WRITE, 0);
	drv_post(d, slot);
}

/* A device-readable buffer holding data. */
static void post_out(int qn, const void *data, uint32_t len)
{
	struct drv *d = &q[qn];
	uint16_t slot = d->avail_idx & (d->size - 1);

	memcpy(g2h(&vm.mem, slot_gpa(qn, slot), len), data, len);
	drv_desc(d, slot, slot_gpa(qn, slot), len, 0, 0);
	drv_post(d, slot);
}

/* The next used buffer of queue qn (its bytes, *len of them), or NULL. */
static const uint8_t *next_used(int qn, uint32_t *len)
{
	struct drv *d = &q[qn];
	struct vring_used_elem e;

	if (used_seen[qn] == __atomic_load_n(&d->used->idx, __ATOMIC_ACQUIRE))
		return NULL;
	e = d->used->ring[used_seen[qn]++ & (d->size - 1)];
	*len = e.len;
	return g2h(&vm.mem, slot_gpa(qn, (int)e.id), SLOT);
}

/* Bytes in the used buffers of queue qn the driver has not taken yet. */
static size_t used_bytes(int qn)
{
	size_t n = 0;

	for (uint16_t i = used_seen[qn]; i != q[qn].used->idx; i++)
		n += q[qn].used->ring[i & (q[qn].size - 1)].len;
	return n;
}

/* The driver's __send_control_msg(): one message on the control transmitq and a kick; the
 * device takes it at once. */
static void ctl_send(uint32_t id, uint16_t event, uint16_t value)
{
	struct virtio_console_control m = { htole32(id), htole16(event), htole16(value) };
	uint16_t before = q[CTRL_TX].used->idx;

	post_out(CTRL_TX, &m, sizeof(m));
	virtio_queue_notified(dev, CTRL_TX);
	CHECK_EQ(q[CTRL_TX].used->idx, (uint16_t)(before + 1));
	used_seen[CTRL_TX] = q[CTRL_TX].used->idx;
}

/* The next control message the device sent, its buffer posted again (as Linux does). */
static bool ctl_next(struct msg *m)
{
	const uint8_t *p;
	uint32_t len;

	if (!(p = next_used(CTRL_RX, &len)))
		return false;
	memset(m, 0, sizeof(*m));
	m->len = len;
	if (len >= 8) {
		struct virtio_console_control h;

		memcpy(&h, p, sizeof(h));
		m->id = le32toh(h.id);
		m->event = le16toh(h.event);
		m->value = le16toh(h.value);
		memcpy(m->name, p + 8, MIN(len - 8, sizeof(m->name) - 1));
	}
	post_in(CTRL_RX, 256);
	virtio_queue_notified(dev, CTRL_RX);
	return true;
}

/* Expects the next control message to be (id, event, value). */
static void expect(uint32_t id, uint16_t event, uint16_t value)
{
	struct msg m;

	CHECK(ctl_next(&m));
	CHECK_EQ(m.id, id);
	CHECK_EQ(m.event, event);
	CHECK_EQ(m.value, value);
}

static void expect_name(uint32_t id, const char *name)
{
	struct msg m;

	CHECK(ctl_next(&m));
	CHECK_EQ(m.id, id);
	CHECK_EQ(m.event, VIRTIO_CONSOLE_PORT_NAME);
	CHECK_EQ(m.len, 8 + strlen(name));
	CHECK(!strcmp(m.name, name));
}

static uint64_t stat_of(const char *name)
{
	struct stat_value v[STATS_MAX_VALUES];
	int n = virtio_dev_stats(dev, v, STATS_MAX_VALUES);

	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return v[i].num;
	return ~0ULL;
}

static void make_pipe(int p[2], int size)
{
	if (pipe2(p, O_CLOEXEC) < 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) < 0 ||
	    (size && fcntl(p[1], F_SETPIPE_SZ, size) < size))
		abort();
}

/* The stdin port's pipe: the test's write end never blocks; the read end does, so a device
 * reading through that shared description would hang the test. */
static void make_in_pipe(void)
{
	if (pipe2(in_pipe, O_CLOEXEC) < 0 || fcntl(in_pipe[1], F_SETFL, O_NONBLOCK) < 0)
		abort();
}

/* The device with the stdin port reading in_fd, each output on a pipe of pipe_size bytes (0:
 * the default) behind a queue of qsize bytes. Not brought up. */
static void create_with(int in_fd, size_t qsize, int pipe_size)
{
	struct console_port ports[NPORTS];

	log_set_level(LOG_ERROR);
	test_vm_init(RAM);
	memset(irqs, 0, sizeof(irqs));
	memset(used_seen, 0, sizeof(used_seen));
	for (int i = 0; i <= NPORTS; i++) {
		if (i == P_STDIN)
			continue;
		make_pipe(out_pipe[i], pipe_size);
		if (outq_create_named(&vm.loop, out_pipe[i][1], qsize, "port", &outq[i]))
			abort();
	}
	ports[0] = (struct console_port){ "mica.stdin", in_fd, NULL };
	ports[1] = (struct console_port){ "mica.stdout", -1, outq[P_STDOUT] };
	ports[2] = (struct console_port){ "mica.stderr", -1, outq[P_STDERR] };
	CHECK_EQ(virtio_console_create_ports(&vm.env, outq[0], ports, NPORTS, &dev), 0);
	if (!dev)
		abort();
	test_vm_plug(dev);
}

/* Up to DRIVER_OK with every queue, the control receiveq filled. */
static void bring_up(void)
{
	CHECK(drv_negotiate(dev, F_V1 | F_MULTIPORT));
	for (int n = 0; n < dev->ops->num_queues; n++)
		drv_attach_queue(dev, &q[n], &vm.mem, n, QS);
	drv_set_status(dev, S_ALL);
	CHECK_EQ(drv_get_status(dev), S_ALL);
	for (int i = 0; i < QS; i++)
		post_in(CTRL_RX, 256);
	virtio_queue_notified(dev, CTRL_RX);
}

/* The driver's probe: DEVICE_READY, then PORT_READY for each port it was told of. The stdin
 * port is connected when it has input (it has no output). */
static void ports_up_with(bool stdin_connected)
{
	struct msg m;

	ctl_send(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (uint32_t id = 0; id <= NPORTS; id++)
		expect(id, VIRTIO_CONSOLE_PORT_ADD, 1);
	CHECK(!ctl_next(&m));
	for (uint32_t id = 0; id <= NPORTS; id++)
		ctl_send(id, VIRTIO_CONSOLE_PORT_READY, 1);
	expect(0, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	expect(0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	if (stdin_connected)
		expect(P_STDIN, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_name(P_STDIN, "mica.stdin");
	expect(P_STDOUT, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_name(P_STDOUT, "mica.stdout");
	expect(P_STDERR, VIRTIO_CONSOLE_PORT_OPEN, 1);
	expect_name(P_STDERR, "mica.stderr");
	CHECK(!ctl_next(&m));
}

static void ports_up(void)
{
	ports_up_with(true);
}

static void destroy(void)
{
	while (vm.ndevs)
		virtio_dev_free(vm.devs[--vm.ndevs]);
	dev = NULL;
	for (int i = 0; i <= NPORTS; i++) {
		if (i == P_STDIN)
			continue;
		outq_destroy(outq[i]);
		close(out_pipe[i][0]);
		close(out_pipe[i][1]);
	}
	test_vm_destroy();
	for (int i = 0; i < 2; i++) {
		if (in_pipe[i] >= 0)
			close(in_pipe[i]);
		in_pipe[i] = -1;
	}
}

static size_t read_all(int fd, uint8_t *buf, size_t max)
{
	size_t got = 0;
	ssize_t n;

	while (got < max && (n = read(fd, buf + got, max - got)) > 0)
		got += n;
	return got;
}

static uint8_t pat(size_t i, int seed)
{
	return (uint8_t)(i * 7 + i / 251 + seed * 31);
}

/* ---- set-up and the control protocol ---- */

static void single_port_unchanged(void)
{
	struct virtio_dev *d;
	struct outq *o;
	int p[2];
	uint32_t max = 7;

	test_vm_init(RAM);
	make_pipe(p, 0);
	CHECK_EQ(outq_create(&vm.loop, p[1], 4096, &o), 0);
	CHECK_EQ(virtio_console_create_ports(&vm.env, o, NULL, 0, &d), 0);
	test_vm_plug(d);
	CHECK_EQ(d->ops->num_queues, 2);
	CHECK(!(virtio_offered_features(d) & F_MULTIPORT));
	CHECK(virtio_offered_features(d) & F_SIZE);
	drv_config_read(d, offsetof(struct virtio_console_config, max_nr_ports), &max, 4);
	CHECK_EQ(max, 0);
	virtio_dev_free(d);
	vm.ndevs = 0;
	outq_destroy(o);
	test_vm_destroy();
	close(p[0]);
	close(p[1]);
}

static void multiport_config(void)
{
	uint32_t max = 0;

	create_with(-1, OUTQ_SIZE, 0);
	CHECK_EQ(dev->ops->num_queues, 2 * (NPORTS + 1) + 2);
	CHECK(virtio_offered_features(dev) & F_MULTIPORT);
	drv_config_read(dev, offsetof(struct virtio_console_config, max_nr_ports), &max, 4);
	CHECK_EQ(max, NPORTS + 1);
	destroy();
}

/* PORT_ADD for each port; after PORT_READY the console port, then each port's PORT_OPEN before
 * its name; the stdin port without input (and without output) is not connected. */
static void control_handshake(void)
{
	create_with(-1, OUTQ_SIZE, 0);
	bring_up();
	ports_up_with(false);
	/* PORT_ADD x4, CONSOLE_PORT, PORT_OPEN x3, PORT_NAME x3 */
	CHECK_EQ(stat_of("control_sent"), 11);
	CHECK_EQ(stat_of("control_ignored"), 0);
	CHECK(!(drv_get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET));
	destroy();
}

/* The device's messages wait for control buffers, and a state sent late is the latest one: a
 * guest repeating DEVICE_READY gets each port added once per round, not a growing backlog. */
static void control_outbox_waits_for_buffers(void)
{
	struct msg m;

	create_with(-1, OUTQ_SIZE, 0);
	CHECK(drv_negotiate(dev, F_V1 | F_MULTIPORT));
	for (int n = 0; n < dev->ops->num_queues; n++)
		drv_attach_queue(dev, &q[n], &vm.mem, n, QS);
	drv_set_status(dev, S_ALL);
	for (int i = 0; i < 100; i++)
		ctl_send(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	CHECK_EQ(q[CTRL_RX].used->idx, 0);
	post_in(CTRL_RX, 256);
	post_in(CTRL_RX, 256);
	virtio_queue_notified(dev, CTRL_RX);
	CHECK_EQ(q[CTRL_RX].used->idx, 2); /* as many as there are buffers */
	virtio_queue_notified(dev, CTRL_RX);
	for (uint32_t id = 0; id <= NPORTS; id++) /* ctl_next posts a buffer for each */
		expect(id, VIRTIO_CONSOLE_PORT_ADD, 1);
	CHECK(!ctl_next(&m));
	destroy();
}

/* Short messages, unknown ports and events, the device's own events, a message split over two
 * buffers, and a control buffer too small for a name: ignored or cut, counted, and the device
 * goes on working. */
static void control_hostile(void)
{
	struct virtio_console_control m = { htole32(P_STDOUT), htole16(VIRTIO_CONSOLE_PORT_READY),
					    htole16(1) };
	struct drv *tx = &q[CTRL_TX];
	struct msg got;
	uint16_t slot;

	create_with(-1, OUTQ_SIZE, 0);
	bring_up();
	post_out(CTRL_TX, &m, 4); /* short */
	virtio_queue_notified(dev, CTRL_TX);
	ctl_send(99, VIRTIO_CONSOLE_PORT_READY, 1);
	ctl_send(0xfffffffe, VIRTIO_CONSOLE_PORT_OPEN, 1);
	ctl_send(P_STDOUT, 42, 1);
	ctl_send(P_STDOUT, VIRTIO_CONSOLE_PORT_ADD, 1);
	ctl_send(P_STDOUT, VIRTIO_CONSOLE_PORT_NAME, 1);
	CHECK_EQ(stat_of("control_ignored"), 6);
	CHECK(!ctl_next(&got));

	/* One message in two buffers (4 + 4 bytes) counts as one. The second control buffer
	 * the device takes next is only 10 bytes: the name is cut to 2 bytes, and counted. */
	q[CTRL_RX].desc[(q[CTRL_RX].used->idx + 1) & (QS - 1)].len = 10;
	slot = tx->avail_idx & (QS - 1);
	memcpy(g2h(&vm.mem, slot_gpa(CTRL_TX, slot), 8), &m, 8);
	drv_desc(tx, slot, slot_gpa(CTRL_TX, slot), 4, VRING_DESC_F_NEXT, (slot + 1) & (QS - 1));
	drv_desc(tx, (slot + 1) & (QS - 1), slot_gpa(CTRL_TX, slot) + 4, 4, 0, 0);
	drv_post(tx, slot);
	virtio_queue_notified(dev, CTRL_TX);
	CHECK_EQ(tx->used->idx, 7);
	expect(P_STDOUT, VIRTIO_CONSOLE_PORT_OPEN, 1);
	CHECK(ctl_next(&got));
	CHECK_EQ(got.event, VIRTIO_CONSOLE_PORT_NAME);
	CHECK_EQ(got.len, 10);
	CHECK(!strcmp(got.name, "mi"));
	CHECK_EQ(stat_of("control_ignored"), 6);
	CHECK_EQ(stat_of("control_truncated"), 1);
	CHECK(!(drv_get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET));
	destroy();
}

/* ---- output ---- */

/* Each port's transmitq reaches its own fd, byte-exact, and no other. */
static void output_per_port(void)
{
	uint8_t buf[256];

	create_with(-1, OUTQ_SIZE, 0);
	bring_up();
	ports_up_with(false);
	post_out(TXQ(P_STDOUT), "out-1 ", 6);
	post_out(TXQ(P_STDERR), "err-1 ", 6);
	post_out(TXQ(0), "console ", 8);
	post_out(TXQ(P_STDOUT), "out-2", 5);
	virtio_queue_notified(dev, TXQ(P_STDOUT));
	virtio_queue_notified(dev, TXQ(P_STDERR));
	virtio_queue_notified(dev, TXQ(0));
	CHECK_EQ(read_all(out_pipe[P_STDOUT][0], buf, sizeof(buf)), 11);
	CHECK(!memcmp(buf, "out-1 out-2", 11));
	CHECK_EQ(read_all(out_pipe[P_STDERR][0], buf, sizeof(buf)), 6);
	CHECK(!memcmp(buf, "err-1 ", 6));
	CHECK_EQ(read_all(out_pipe[0][0], buf, sizeof(buf)), 8);
	CHECK(!memcmp(buf, "console ", 8));
	CHECK_EQ(q[TXQ(P_STDOUT)].used->idx, 2);
	CHECK_EQ(q[TXQ(P_STDERR)].used->idx, 1);
	/* The stdin port has no output: what the guest writes there is dropped, not kept. */
	post_out(TXQ(P_STDIN), "lost", 4);
	virtio_queue_notified(dev, TXQ(P_STDIN));
	CHECK_EQ(q[TXQ(P_STDIN)].used->idx, 1);
	CHECK_EQ(stat_of("bytes_dropped"), 4);
	CHECK_EQ(stat_of("port2_bytes_out"), 11);
	CHECK_EQ(stat_of("port3_bytes_out"), 6);
	CHECK_EQ(stat_of("output_bytes"), 8);
	destroy();
}

/* A full pipe: the port's requests wait in the ring, the other port goes on, and once the reader
 * reads every byte arrives in order. */
static void output_backpressure(void)
{
	enum { REQS = QS, LEN = 1000 };
	static uint8_t got[REQS * LEN];
	uint8_t chunk[LEN], b[64];
	size_t n = 0;
	bool ok = true;

	create_with(-1, 4096, 4096);
	bring_up();
	ports_up_with(false);
	for (int r = 0; r < REQS; r++) {
		for (int k = 0; k < LEN; k++)
			chunk[k] = pat((size_t)r * LEN + k, 1);
		post_out(TXQ(P_STDOUT), chunk, LEN);
	}
	virtio_queue_notified(dev, TXQ(P_STDOUT));
	CHECK(q[TXQ(P_STDOUT)].used->idx < REQS);
	CHECK_EQ(stat_of("port2_output_waits"), 1);
	post_out(TXQ(P_STDERR), "unblocked", 9);
	virtio_queue_notified(dev, TXQ(P_STDERR));
	CHECK_EQ(read_all(out_pipe[P_STDERR][0], b, sizeof(b)), 9);
	for (int i = 0; i < 10000 && n < sizeof(got); i++) {
		n += read_all(out_pipe[P_STDOUT][0], got + n, sizeof(got) - n);
		run_loop(n < sizeof(got) ? 10 : 0);
	}
	CHECK_EQ(n, sizeof(got));
	for (size_t i = 0; i < n; i++)
		ok &= got[i] == pat(i, 1);
	CHECK(ok);
	CHECK_EQ(q[TXQ(P_STDOUT)].used->idx, REQS);
	destroy();
}

struct reader {
	int fd;
	uint8_t *buf;
	size_t max, got;
};

/* Reads 512 bytes a millisecond until max, or until nothing came for 3 s. */
static void *slow_reader(void *opaque)
{
	struct reader *r = opaque;
	int idle = 0;
	ssize_t n;

	while (r->got < r->max && idle < 3000) {
		n = read(r->fd, r->buf + r->got, MIN(r->max - r->got, 512));
		if (n > 0)
			r->got += n, idle = 0;
		else
			idle++;
		usleep(1000);
	}
	return NULL;
}

/* At exit the loop is gone: what the guest left in its transmitqs, a batch held for room
 * included, still reaches each fd, in order, as the readers take it. */
static void drain_at_exit(void)
{
	enum { REQS = QS, LEN = 1000 };
	static uint8_t got[REQS * LEN];
	uint8_t chunk[LEN], b[16];
	struct reader r = { .buf = got, .max = sizeof(got) };
	pthread_t t;
	bool ok = true;

	create_with(-1, 4096, 4096);
	bring_up();
	ports_up_with(false);
	for (int i = 0; i < REQS; i++) {
		for (int k = 0; k < LEN; k++)
			chunk[k] = pat((size_t)i * LEN + k, 2);
		post_out(TXQ(P_STDOUT), chunk, LEN);
	}
	virtio_queue_notified(dev, TXQ(P_STDOUT)); /* part goes, the rest waits for room */
	CHECK(q[TXQ(P_STDOUT)].used->idx < REQS);
	/* Requests the loop never saw: more on a port that waits, one on another port and on
	 * port 0, posted without a kick. (The stdout port's ring is full: its last bytes go to
	 * the stderr port.) */
	post_out(TXQ(P_STDERR), "stderr", 6);
	post_out(TXQ(0), "last!", 5);
	r.fd = out_pipe[P_STDOUT][0];
	CHECK_EQ(pthread_create(&t, NULL, slow_reader, &r), 0);
	CHECK_EQ(virtio_console_drain(dev, -1), 0); /* no limit: the reader is there */
	pthread_join(t, NULL);
	CHECK_EQ(r.got, (size_t)REQS * LEN);
	for (size_t i = 0; i < r.got; i++)
		ok &= got[i] == pat(i, 2);
	CHECK(ok);
	CHECK_EQ(q[TXQ(P_STDOUT)].used->idx, REQS);
	CHECK_EQ(read_all(out_pipe[P_STDERR][0], b, sizeof(b)), 6);
	CHECK(!memcmp(b, "stderr", 6));
	CHECK_EQ(read_all(out_pipe[0][0], b, sizeof(b)), 5);
	CHECK(!memcmp(b, "last!", 5));
	destroy();
}

/* A reader that takes nothing: the drain gives up after the idle time, and says so. */
static void drain_gives_up(void)
{
	uint8_t chunk[1000] = { 0 };

	create_with(-1, 4096, 4096);
	bring_up();
	ports_up_with(false);
	for (int i = 0; i < QS; i++)
		post_out(TXQ(P_STDERR), chunk, sizeof(chunk));
	virtio_queue_notified(dev, TXQ(P_STDERR));
	post_out(TXQ(P_STDOUT), "fine", 4);
	CHECK_EQ(virtio_console_drain(dev, 50), -ETIMEDOUT);
	CHECK_EQ(read_all(out_pipe[P_STDOUT][0], chunk, sizeof(chunk)), 4); /* the others go */
	CHECK(!memcmp(chunk, "fine", 4));
	destroy();
}

/* ---- input ---- */

/* The driver reads the stdin port: takes used receive buffers (appending their bytes to buf)
 * and posts them again. Returns the bytes taken. */
static size_t guest_read(uint8_t *buf, size_t max, size_t *got)
{
	const uint8_t *p;
	uint32_t len;
	size_t before = *got;

	while ((p = next_used(RXQ(P_STDIN), &len))) {
		if (*got + len <= max)
			memcpy(buf + *got, p, len);
		*got += len;
		post_in(RXQ(P_STDIN), SLOT);
	}
	if (*got != before)
		virtio_queue_notified(dev, RXQ(P_STDIN));
	return *got - before;
}

/* Whether the guest has heard that the stdin port's host side is gone. */
static bool heard_eof(bool *eof)
{
	struct msg m;

	while (ctl_next(&m))
		if (m.id == P_STDIN && m.event == VIRTIO_CONSOLE_PORT_OPEN && m.value == 0)
			*eof = true;
	return *eof;
}

static void guest_opens_stdin(void)
{
	for (int i = 0; i < QS; i++)
		post_in(RXQ(P_STDIN), SLOT);
	virtio_queue_notified(dev, RXQ(P_STDIN));
	ctl_send(P_STDIN, VIRTIO_CONSOLE_PORT_OPEN, 1);
}

/* A pipe: nothing is read before the guest opens the port, then every byte arrives in order,
 * and the end comes after the last byte. */
static void input_pipe(void)
{
	enum { TOTAL = 300000 };
	static uint8_t got[TOTAL];
	size_t sent = 0, n = 0, at_eof = 0;
	bool eof = false, ok = true;
	int ready = 0;

	make_in_pipe();
	create_with(in_pipe[0], OUTQ_SIZE, 0);
	bring_up();
	ports_up();
	CHECK_EQ(write(in_pipe[1], "early", 5), 5);
	for (int i = 0; i < QS; i++)
		post_in(RXQ(P_STDIN), SLOT);
	virtio_queue_notified(dev, RXQ(P_STDIN));
	settle();
	CHECK_EQ(q[RXQ(P_STDIN)].used->idx, 0);
	CHECK(ioctl(in_pipe[0], FIONREAD, &ready) == 0 && ready == 5);

	ctl_send(P_STDIN, VIRTIO_CONSOLE_PORT_OPEN, 1);
	sent = 5;
	memcpy(got, "early", 5); /* the pattern starts after it */
	for (int i = 0; i < 100000; i++) {
		static uint8_t chunk[20000];
		size_t k = MIN(sizeof(chunk), (size_t)TOTAL - sent);
		ssize_t w;

		for (size_t j = 0; j < k; j++)
			chunk[j] = pat(sent + j, 3);
		if (k && (w = write(in_pipe[1], chunk, k)) > 0)
			sent += w;
		if (sent == TOTAL && in_pipe[1] >= 0) {
			close(in_pipe[1]);
			in_pipe[1] = -1;
		}
		run_loop(1);
		if (heard_eof(&eof)) {
			/* Everything is in the used ring by the time the guest hears the end. */
			at_eof = n + used_bytes(RXQ(P_STDIN));
			break;
		}
		guest_read(got, sizeof(got), &n);
	}
	guest_read(got, sizeof(got), &n);
	CHECK_EQ(at_eof, TOTAL);
	CHECK(eof);
	CHECK_EQ(n, TOTAL);
	CHECK(!memcmp(got, "early", 5));
	for (size_t i = 5; i < MIN(n, (size_t)TOTAL); i++)
		ok &= got[i] == pat(i, 3);
	CHECK(ok);
	CHECK_EQ(stat_of("port1_bytes_in"), TOTAL);
	CHECK_EQ(stat_of("port1_bytes_out"), 0);
	destroy();
}

/* The guest closing the port stops the reading; opening it again resumes it. */
static void input_stops_while_closed(void)
{
	static uint8_t got[64];
	size_t n = 0;
	int ready = 0;

	make_in_pipe();
	create_with(in_pipe[0], OUTQ_SIZE, 0);
	bring_up();
	ports_up();
	guest_opens_stdin();
	CHECK_EQ(write(in_pipe[1], "one", 3), 3);
	settle();
	guest_read(got, sizeof(got), &n);
	CHECK_EQ(n, 3);
	ctl_send(P_STDIN, VIRTIO_CONSOLE_PORT_OPEN, 0);
	CHECK_EQ(write(in_pipe[1], "two", 3), 3);
	settle();
	CHECK_EQ(guest_read(got, sizeof(got), &n), 0);
	CHECK(ioctl(in_pipe[0], FIONREAD, &ready) == 0 && ready == 3);
	ctl_send(P_STDIN, VIRTIO_CONSOLE_PORT_OPEN, 1);
	settle();
	guest_read(got, sizeof(got), &n);
	CHECK_EQ(n, 6);
	CHECK(!memcmp(got, "onetwo", 6));
	destroy();
}

/* A regular file cannot be watched: it is read as buffers come, and the loop is idle when the
 * guest has none (no busy loop). */
static void input_regular_file(void)
{
	enum { TOTAL = 200000 };
	static uint8_t got[TOTAL], data[TOTAL];
	char path[] = "/tmp/mica-test-console-XXXXXX";
	int fd = mkstemp(path);
	size_t n = 0;
	bool eof = false, ok = true;

	CHECK(fd >= 0);
	unlink(path);
	for (size_t i = 0; i < TOTAL; i++)
		data[i] = pat(i, 4);
	CHECK_EQ(write(fd, data, TOTAL), TOTAL);
	lseek(fd, 0, SEEK_SET);
	create_with(fd, OUTQ_SIZE, 0);
	bring_up();
	ports_up();
	guest_opens_stdin();
	CHECK(settle() < 10);                        /* the loop goes idle... */
	CHECK_EQ(q[RXQ(P_STDIN)].used->idx, QS);   /* with every buffer filled */
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), QS * SLOT);
	for (int i = 0; i < 10000 && !heard_eof(&eof); i++) {
		guest_read(got, sizeof(got), &n);
		settle();
	}
	guest_read(got, sizeof(got), &n);
	CHECK(eof);
	CHECK_EQ(n, TOTAL);
	for (size_t i = 0; i < MIN(n, (size_t)TOTAL); i++)
		ok &= got[i] == data[i];
	CHECK(ok);
	destroy();
	close(fd);
}

/* /dev/null: the guest hears at once that there is nothing. */
static void input_dev_null(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	bool eof = false;
	uint8_t b[8];

	create_with(fd, OUTQ_SIZE, 0);
	bring_up();
	ports_up();
	guest_opens_stdin();
	settle();
	CHECK(heard_eof(&eof));
	CHECK_EQ(guest_read(b, sizeof(b), &n), 0);
	CHECK_EQ(q[RXQ(P_STDIN)].used->idx, 0);
	/* The end stays: after a reset and a new handshake, the port starts disconnected. */
	drv_set_status(dev, 0);
	memset(used_seen, 0, sizeof(used_seen));
	bring_up();
	ctl_send(VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (uint32_t id = 0; id <= NPORTS; id++)
		expect(id, VIRTIO_CONSOLE_PORT_ADD, 1);
	ctl_send(P_STDIN, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_name(P_STDIN, "mica.stdin"); /* no PORT_OPEN: not connected */
	destroy();
	close(fd);
}

/* A socket: read with recvmsg, its shutdown is the end. */
static void input_socket(void)
{
	static uint8_t got[64];
	size_t n = 0;
	bool eof = false;
	int sv[2];

	CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	create_with(sv[0], OUTQ_SIZE, 0);
	bring_up();
	ports_up();
	guest_opens_stdin();
	CHECK_EQ(write(sv[1], "over a socket", 13), 13);
	shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < 100 && !heard_eof(&eof); i++) {
		settle();
		guest_read(got, sizeof(got), &n);
	}
	guest_read(got, sizeof(got), &n);
	CHECK(eof);
	CHECK_EQ(n, 13);
	CHECK(!memcmp(got, "over a socket", 13));
	destroy();
	close(sv[0]);
	close(sv[1]);
}

/* A terminal: read through a description of our own (the test's stays blocking); a hang-up
 * (EIO) is the end, after what was typed. */
static void input_terminal(void)
{
	static uint8_t got[64];
	size_t n = 0;
	bool eof = false;
	int m, sl;

	if (openpty(&m, &sl, NULL, NULL, NULL) < 0)
		TEST_SKIP("no pseudo-terminal");
	create_with(sl, OUTQ_SIZE, 0);
	bring_up();
	ports_up();
	guest_opens_stdin();
	CHECK_EQ(write(m, "typed\n", 6), 6);
	for (int i = 0; i < 100 && n < 6; i++) {
		run_loop(10);
		guest_read(got, sizeof(got), &n);
	}
	CHECK_EQ(n, 6);
	CHECK(!memcmp(got, "typed\n", 6));
	CHECK(!(fcntl(sl, F_GETFL) & O_NONBLOCK));
	close(m);
	for (int i = 0; i < 100 && !heard_eof(&eof); i++)
		run_loop(10);
	CHECK(eof);
	destroy();
	close(sl);
}

/* A reset while buffers are held: none comes back into the old ring, and input waits for the
 * new one, with nothing lost. */
static void reset_drops_held_buffers(void)
{
	static uint8_t got[64];
	size_t n = 0;

	make_in_pipe();
	create_with(in_pipe[0], OUTQ_SIZE, 0);
	bring_up();
	ports_up();
	guest_opens_stdin();
	settle(); /* the buffers are held, waiting for input */
	drv_set_status(dev, 0);
	CHECK_EQ(write(in_pipe[1], "after", 5), 5);
	settle();
	CHECK_EQ(q[RXQ(P_STDIN)].used->idx, 0);
	memset(used_seen, 0, sizeof(used_seen));
	bring_up();
	ports_up();
	guest_opens_stdin();
	settle();
	guest_read(got, sizeof(got), &n);
	CHECK_EQ(n, 5);
	CHECK(!memcmp(got, "after", 5));
	destroy();
}

/* Port 0 without an output queue (mica sandbox keeps hvc0 off stdout): what the guest writes
 * there is taken, dropped and counted. */
static void port0_without_output(void)
{
	struct console_port port = { "mica.stdout", -1, NULL };

	log_set_level(LOG_ERROR);
	test_vm_init(RAM);
	memset(used_seen, 0, sizeof(used_seen));
	CHECK_EQ(virtio_console_create_ports(&vm.env, NULL, &port, 1, &dev), 0);
	test_vm_plug(dev);
	CHECK(drv_negotiate(dev, F_V1 | F_MULTIPORT));
	for (int n = 0; n < dev->ops->num_queues; n++)
		drv_attach_queue(dev, &q[n], &vm.mem, n, QS);
	drv_set_status(dev, S_ALL);
	post_out(TXQ(0), "boot messages", 13);
	virtio_queue_notified(dev, TXQ(0));
	CHECK_EQ(q[TXQ(0)].used->idx, 1);
	CHECK_EQ(stat_of("bytes_dropped"), 13);
	CHECK_EQ(virtio_console_drain(dev, 0), 0);
	test_vm_destroy();
	dev = NULL;
}

/* A constructor that fails leaves nothing registered on the output queues: an output queue
 * takes 4 callbacks, so 6 ports on one fail, and would leave it full if they stayed. */
static void create_errors(void)
{
	struct console_port ports[VIRTIO_CONSOLE_MAX_PORTS + 1];
	struct virtio_dev *d = NULL;
	struct outq *o;
	int p[2];

	test_vm_init(RAM);
	make_pipe(p, 0);
	CHECK_EQ(outq_create(&vm.loop, p[1], 4096, &o), 0);
	for (int i = 0; i <= VIRTIO_CONSOLE_MAX_PORTS; i++)
		ports[i] = (struct console_port){ "p", -1, o };
	CHECK_EQ(virtio_console_create_ports(&vm.env, o, ports, VIRTIO_CONSOLE_MAX_PORTS + 1, &d),
		 -EINVAL);
	for (int i = 0; i < 3; i++)
		CHECK_EQ(virtio_console_create_ports(&vm.env, o, ports, VIRTIO_CONSOLE_MAX_PORTS,
						     &d), -ENOSPC);
	ports[1].name = "0123456789012345678901234567890123456789012345678901234567890123";
	CHECK_EQ(virtio_console_create_ports(&vm.env, o, ports, 2, &d), -EINVAL);
	ports[1].name = "";
	CHECK_EQ(virtio_console_create_ports(&vm.env, o, ports, 2, &d), -EINVAL);
	ports[1].name = "ok";
	CHECK_EQ(virtio_console_create_ports(&vm.env, o, ports, 2, &d), 0);
	CHECK(d != NULL);
	if (d)
		virtio_dev_free(d);
	outq_destroy(o);
	test_vm_destroy();
	close(p[0]);
	close(p[1]);
}

TEST_MAIN("console-ports",
	  T(single_port_unchanged), T(multiport_config), T(control_handshake),
	  T(control_outbox_waits_for_buffers), T(control_hostile), T(output_per_port),
	  T(output_backpressure), T(drain_at_exit), T(drain_gives_up), T(input_pipe),
	  T(input_stops_while_closed), T(input_regular_file), T(input_dev_null), T(input_socket),
	  T(input_terminal), T(reset_drops_held_buffers), T(port0_without_output), T(create_errors))
