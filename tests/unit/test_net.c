/* virtio-net driven as a guest driver would, through a fake transport that counts interrupts:
 * transmit into a recording backend (and its backpressure), receive with and without posted
 * buffers, mergeable buffers, the bound on waiting frames, hostile chains, the option parser,
 * and libslirp for real (ARP and DHCP answered in-process, no root, no KVM): answers reach the
 * device from the loop without its lock held, in order, from mica's copy of each frame. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

#include "devices/net/backend.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/net.h"
#include "devices/virtio/virtio.h"
#include "tests/unit/test_env.h"
#include "tests/unit/test.h"
#include "tests/unit/vring_driver.h"
#include "vmm/evloop.h"
#include "vmm/log.h"
#include "vmm/util.h"
#include "cmd/cli.h"

#define RAM   (16 * 1024 * 1024ULL)
#define QSIZE 16
#define BUF   0x800000ULL
#define HDR   12

#define S_ACK   VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV   VIRTIO_CONFIG_S_DRIVER
#define S_FOK   VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK   VIRTIO_CONFIG_S_DRIVER_OK
#define S_RESET VIRTIO_CONFIG_S_NEEDS_RESET

#define F_V1  (1ULL << VIRTIO_F_VERSION_1)
#define F_MRG (1ULL << VIRTIO_NET_F_MRG_RXBUF)
#define F_MAC (1ULL << VIRTIO_NET_F_MAC)

#define RXQ 0
#define TXQ 1

static struct drv q[2];
static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* ---- a backend that records what the device sends ---- */

#define TB_MAX 8

struct test_backend {
	struct net_backend be;
	long room;              /* frames it takes before saying -EAGAIN */
	int sends;              /* send() calls, refused ones too */
	int nframes;
	size_t lens[TB_MAX];
	uint8_t frames[TB_MAX][4096];
	int pauses, resumes;
	bool paused;
	int configures;
	size_t hdr_len;         /* as configure() said */
	uint64_t features;
};

static int tb_send(struct net_backend *be, const struct iovec *iov, int iovcnt, size_t len)
{
	struct test_backend *t = container_of(be, struct test_backend, be);
	size_t off = 0;

	t->sends++;
	if (t->room == 0)
		return -EAGAIN;
	if (t->nframes == TB_MAX || len > sizeof(t->frames[0]))
		return -ENOBUFS;
	t->room--;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(t->frames[t->nframes] + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	if (off != len)
		abort();
	t->lens[t->nframes++] = len;
	return 0;
}

static void tb_paused(struct net_backend *be, bool paused)
{
	struct test_backend *t = container_of(be, struct test_backend, be);

	t->paused = paused;
	if (paused)
		t->pauses++;
	else
		t->resumes++;
}

static void tb_configure(struct net_backend *be, size_t hdr_len, uint64_t features)
{
	struct test_backend *t = container_of(be, struct test_backend, be);

	t->configures++;
	t->hdr_len = hdr_len;
	t->features = features;
}

static void tb_destroy(struct net_backend *be)
{
	free(container_of(be, struct test_backend, be));
}

static const struct net_backend_ops tb_ops = {
	.send = tb_send,
	.configure = tb_configure,
	.set_rx_paused = tb_paused,
	.destroy = tb_destroy,
};

static struct test_backend *tb;

/* ---- the VM and the driver side ---- */

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

/* A device on the test backend; vnet_hdr: frames carry a virtio-net header both ways, as with
 * tap, and the backend can serve `offloads`. */
static struct virtio_dev *net_setup_backend(bool vnet_hdr, uint64_t offloads)
{
	struct net_opts o;
	struct err e;
	struct virtio_dev *dev;

	setup_vm();
	CHECK_EQ(net_parse_opts("user,mac=52:54:00:12:34:56", &o, &e), 0);
	tb = calloc(1, sizeof(*tb));
	if (!tb)
		abort();
	tb->be = (struct net_backend){ .ops = &tb_ops, .name = "test", .vnet_hdr = vnet_hdr,
				       .offloads = offloads };
	tb->room = LONG_MAX;
	if (virtio_net_create_with(&vm.env, &o, &tb->be, &dev, &e))
		abort();
	return test_vm_plug(dev);
}

static struct virtio_dev *net_setup(void)
{
	return net_setup_backend(false, 0);
}

static void setup_queue(struct virtio_dev *dev, int n)
{
	drv_attach_queue(dev, &q[n], &vm.mem, n, QSIZE);
}

static void bring_up(struct virtio_dev *dev, uint64_t features)
{
	CHECK(drv_negotiate(dev, features));
	setup_queue(dev, RXQ);
	setup_queue(dev, TXQ);
	drv_set_status(dev, S_ACK | S_DRV | S_FOK | S_DOK);
	CHECK_EQ(drv_get_status(dev), S_ACK | S_DRV | S_FOK | S_DOK);
}

/* Receive buffers live at BUF + 64 KiB * i, transmit buffers at BUF + 4 MiB + 64 KiB * i. */
static uint64_t rx_gpa(int i)
{
	return BUF + 0x10000ULL * i;
}

static uint64_t tx_gpa(int i)
{
	return BUF + 0x400000ULL + 0x10000ULL * i;
}

static void post_rx(int desc, uint32_t len)
{
	memset(g2h(&vm.mem, rx_gpa(desc), len), 0xee, len);
	drv_desc(&q[RXQ], desc, rx_gpa(desc), len, VRING_DESC_F_WRITE, 0);
	drv_post(&q[RXQ], desc);
}

static uint8_t *rx_buf(int desc)
{
	return g2h(&vm.mem, rx_gpa(desc), 1);
}

/* A transmit chain: a header descriptor and a frame descriptor. */
static void post_tx(int desc, const void *frame, uint32_t len)
{
	struct drv *d = &q[TXQ];

	memset(g2h(&vm.mem, tx_gpa(desc), HDR), 0, HDR);
	memcpy(g2h(&vm.mem, tx_gpa(desc + 1), len), frame, len);
	drv_desc(d, desc, tx_gpa(desc), HDR, VRING_DESC_F_NEXT, desc + 1);
	drv_desc(d, desc + 1, tx_gpa(desc + 1), len, 0, 0);
	drv_post(d, desc);
}

static void pattern(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static uint16_t num_buffers(const uint8_t *hdr)
{
	return (uint16_t)(hdr[10] | hdr[11] << 8);
}

/* ---- the event loop, run by hand ---- */

static int loop_iterations, loop_limit;
static void (*after_handlers)(void);   /* once, after the next iteration's handlers */

static int stopper_prepare(struct ev_hook *h)
{
	(void)h;
	return 10;
}

static void stopper_after(struct ev_hook *h)
{
	void (*fn)(void) = after_handlers;

	(void)h;
	after_handlers = NULL;
	if (fn)
		fn();
	if (++loop_iterations >= loop_limit)
		evloop_stop(&vm.loop);
}

static struct ev_hook stopper = { .prepare = stopper_prepare, .after = stopper_after };

/* Runs n iterations of the loop. The stopper hook joins the loop at the first run: after the
 * backends' hooks, so its after() runs before theirs. */
static void run_loop(int n)
{
	bool have = false;

	for (struct ev_hook *k = vm.loop.hooks; k; k = k->next)
		have |= k == &stopper;
	if (!have)
		evloop_add_hook(&vm.loop, &stopper);
	loop_iterations = 0;
	loop_limit = n;
	atomic_store(&vm.loop.stopping, false);
	CHECK_EQ(evloop_run(&vm.loop), 0);
	atomic_store(&vm.loop.stopping, false);
}

/* Runs the loop until the receive queue's used index reaches want (or 100 iterations). */
static void run_loop_until_used(uint16_t want)
{
	for (int i = 0; i < 100 && q[RXQ].used->idx < want; i++)
		run_loop(1);
}

/* A notification through the queue's kick eventfd, as KVM's ioeventfd signals it: the device
 * serves it on the loop thread. */
static void kick_eventfd(struct virtio_dev *dev, int queue)
{
	uint64_t one = 1;

	CHECK_EQ(write(virtio_kick_fd(dev, queue), &one, sizeof(one)), (ssize_t)sizeof(one));
}

/* ---- tests ---- */

static void config_and_features(void)
{
	struct virtio_dev *dev = net_setup();
	struct virtio_net_config c;
	uint64_t f = virtio_offered_features(dev);

	CHECK(f & F_MAC);
	CHECK(f & (1ULL << VIRTIO_NET_F_STATUS));
	CHECK(f & (1ULL << VIRTIO_NET_F_MTU));
	CHECK(f & F_MRG);
	CHECK(!(f & (1ULL << VIRTIO_NET_F_CSUM)));       /* the test backend has no offloads */
	CHECK(!(f & (1ULL << VIRTIO_NET_F_CTRL_VQ)));
	memset(&c, 0, sizeof(c));
	drv_config_read(dev, 0, &c, offsetof(struct virtio_net_config, mtu) + 2);
	CHECK(!memcmp(c.mac, guest_mac, 6));
	CHECK_EQ(c.status, VIRTIO_NET_S_LINK_UP);
	CHECK_EQ(c.max_virtqueue_pairs, 1);
	CHECK_EQ(c.mtu, 1500);
	teardown();
}

/* The MAC a NIC gets without mac=: from the kernel path and its index (cmd/cli.c), so the same
 * command line gives the same addresses, and two NICs of one VM differ. */
static void default_mac_is_stable(void)
{
	char *args[] = { "mica", "run", "--kernel", "build/guest/mica-testguest", "--net", "user",
			 "--net", "user,mac=52:54:00:00:00:01", "--net", "user", NULL };
	struct cli a, b;
	struct err e;

	CHECK_EQ(cli_parse(10, args, &a, &e), 0);
	CHECK_EQ(cli_parse(10, args, &b, &e), 0);
	CHECK(!memcmp(a.cfg.nets[0].mac, b.cfg.nets[0].mac, 6));
	CHECK(memcmp(a.cfg.nets[0].mac, a.cfg.nets[2].mac, 6));
	CHECK(a.cfg.nets[0].mac[0] == 0x52 && a.cfg.nets[0].mac[1] == 0x54 &&
	      a.cfg.nets[0].mac[2] == 0x00);
	CHECK(a.cfg.nets[1].mac[5] == 0x01);
	args[3] = "another/kernel";
	CHECK_EQ(cli_parse(10, args, &b, &e), 0);
	CHECK(memcmp(a.cfg.nets[0].mac, b.cfg.nets[0].mac, 6));
}

static void tx_strips_header(void)
{
	struct virtio_dev *dev = net_setup();
	uint8_t frame[60];
	struct virtio_net_stats st;

	bring_up(dev, F_V1 | F_MRG);
	pattern(frame, sizeof(frame), 1);
	post_tx(0, frame, sizeof(frame));
	/* Header and frame in one descriptor (any layout). */
	memset(g2h(&vm.mem, tx_gpa(2), HDR), 0, HDR);
	pattern(g2h(&vm.mem, tx_gpa(2) + HDR, 100), 100, 9);
	drv_desc(&q[TXQ], 2, tx_gpa(2), HDR + 100, 0, 0);
	drv_post(&q[TXQ], 2);
	virtio_queue_notified(dev, TXQ);

	CHECK_EQ(tb->nframes, 2);
	CHECK_EQ(tb->lens[0], 60);
	CHECK(!memcmp(tb->frames[0], frame, 60));
	CHECK_EQ(tb->lens[1], 100);
	CHECK(!memcmp(tb->frames[1], g2h(&vm.mem, tx_gpa(2) + HDR, 100), 100));
	CHECK_EQ(q[TXQ].used->idx, 2);
	CHECK_EQ(q[TXQ].used->ring[0].id, 0);
	CHECK_EQ(q[TXQ].used->ring[0].len, 0);
	CHECK_EQ(irqs[1 + TXQ], 1);          /* once per batch */
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.tx_packets, 2);
	CHECK_EQ(st.tx_bytes, 160);
	teardown();
}

static void tx_hostile_chains(void)
{
	struct virtio_dev *dev = net_setup();
	struct virtio_net_stats st;

	bring_up(dev, F_V1);
	/* Shorter than the header. */
	drv_desc(&q[TXQ], 0, tx_gpa(0), 8, 0, 0);
	drv_post(&q[TXQ], 0);
	/* A header and nothing else. */
	drv_desc(&q[TXQ], 1, tx_gpa(1), HDR, 0, 0);
	drv_post(&q[TXQ], 1);
	/* Longer than any frame: 12 + 65551 bytes. */
	drv_desc(&q[TXQ], 2, tx_gpa(2), HDR + 65551, 0, 0);
	drv_post(&q[TXQ], 2);
	virtio_queue_notified(dev, TXQ);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(tb->nframes, 0);
	CHECK_EQ(st.tx_dropped_short, 2);
	CHECK_EQ(st.tx_dropped_too_big, 1);
	CHECK_EQ(q[TXQ].used->idx, 3);       /* all given back */
	CHECK(!(drv_get_status(dev) & S_RESET));
	CHECK_EQ(irqs[1 + TXQ], 1);
	teardown();
}

/* A backend without room: the device stops popping (every chain stays in the ring: nothing
 * used, dropped or signalled) and does not retry on the driver's next kick; tx_room() resumes
 * it through the loop, and the frames go out in order. */
static void tx_backpressure(void)
{
	struct virtio_dev *dev = net_setup();
	struct net_port *port = tb->be.port;
	uint8_t frame[60];
	struct virtio_net_stats st;

	bring_up(dev, F_V1);
	tb->room = 0;
	for (int i = 0; i < 4; i++) {
		pattern(frame, sizeof(frame), (uint8_t)(10 + i));
		post_tx(2 * i, frame, sizeof(frame));
	}
	virtio_queue_notified(dev, TXQ);
	CHECK_EQ(tb->sends, 1);               /* the first frame, refused */
	CHECK_EQ(tb->nframes, 0);
	CHECK_EQ(q[TXQ].used->idx, 0);
	CHECK_EQ(irqs[1 + TXQ], 0);
	virtio_queue_notified(dev, TXQ);
	CHECK_EQ(tb->sends, 1);               /* waiting for the backend, not retrying */

	/* Room for two: the device hears it through its kick, on the loop, not inside tx_room(). */
	tb->room = 2;
	port->tx_room(port);
	CHECK_EQ(tb->sends, 1);
	run_loop(1);
	CHECK_EQ(tb->nframes, 2);
	CHECK_EQ(tb->sends, 4);               /* two taken, the third refused */
	CHECK_EQ(q[TXQ].used->idx, 2);
	CHECK_EQ(irqs[1 + TXQ], 1);

	tb->room = LONG_MAX;
	port->tx_room(port);
	run_loop(1);
	CHECK_EQ(tb->nframes, 4);
	CHECK_EQ(q[TXQ].used->idx, 4);
	for (int i = 0; i < 4; i++) {
		pattern(frame, sizeof(frame), (uint8_t)(10 + i));
		CHECK_EQ(tb->lens[i], 60);
		CHECK(!memcmp(tb->frames[i], frame, 60));
		CHECK_EQ(q[TXQ].used->ring[i].id, 2 * i);
	}
	CHECK_EQ(irqs[1 + TXQ], 2);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.tx_packets, 4);
	CHECK_EQ(st.tx_bytes, 4 * 60);
	CHECK_EQ(st.tx_dropped_short + st.tx_dropped_too_big + st.tx_dropped_backend, 0);
	CHECK_EQ(st.tx_waits, 2);

	/* A tx_room() with nothing refused does nothing. */
	port->tx_room(port);
	run_loop(1);
	CHECK_EQ(tb->sends, 6);

	/* Refused, then reset: the driver starts over and the device sends at once again. */
	tb->room = 0;
	post_tx(8, frame, sizeof(frame));
	virtio_queue_notified(dev, TXQ);
	CHECK_EQ(tb->sends, 7);
	drv_set_status(dev, 0);
	tb->room = LONG_MAX;
	bring_up(dev, F_V1);
	post_tx(0, frame, sizeof(frame));
	virtio_queue_notified(dev, TXQ);
	CHECK_EQ(tb->sends, 8);
	CHECK_EQ(tb->nframes, 5);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

static void rx_waits_for_buffers(void)
{
	struct virtio_dev *dev = net_setup();
	struct net_port *port = tb->be.port;
	uint8_t frame[100];
	struct virtio_net_stats st;

	bring_up(dev, F_V1);
	pattern(frame, sizeof(frame), 3);
	port->receive(port, frame, sizeof(frame));
	port->flush(port);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.rx_pending, 1);
	CHECK_EQ(st.rx_packets, 0);
	CHECK_EQ(irqs[1 + RXQ], 0);

	post_rx(0, 1526);
	post_rx(1, 1526);
	virtio_queue_notified(dev, RXQ);
	CHECK_EQ(q[RXQ].used->idx, 1);
	CHECK_EQ(q[RXQ].used->ring[0].id, 0);
	CHECK_EQ(q[RXQ].used->ring[0].len, HDR + 100);
	for (int i = 0; i < 10; i++)
		CHECK_EQ(rx_buf(0)[i], 0); /* flags, gso_type, hdr_len, gso_size, csum_* */
	CHECK_EQ(num_buffers(rx_buf(0)), 1);
	CHECK(!memcmp(rx_buf(0) + HDR, frame, 100));
	CHECK_EQ(rx_buf(0)[HDR + 100], 0xee); /* nothing beyond */
	CHECK_EQ(irqs[1 + RXQ], 1);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.rx_pending, 0);
	CHECK_EQ(st.rx_packets, 1);
	CHECK_EQ(st.rx_bytes, 100);

	/* With a buffer posted, a frame goes straight in; the interrupt waits for flush(). */
	port->receive(port, frame, 60);
	CHECK_EQ(q[RXQ].used->idx, 2);
	CHECK_EQ(irqs[1 + RXQ], 1);
	port->flush(port);
	CHECK_EQ(irqs[1 + RXQ], 2);
	port->flush(port);
	CHECK_EQ(irqs[1 + RXQ], 2);
	teardown();
}

static void rx_before_driver_ok_dropped(void)
{
	struct virtio_dev *dev = net_setup();
	struct net_port *port = tb->be.port;
	uint8_t frame[64] = { 0 };
	struct virtio_net_stats st;

	port->receive(port, frame, sizeof(frame));
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.rx_dropped_not_ready, 1);
	CHECK_EQ(st.rx_pending, 0);
	teardown();
}

static void rx_too_long_for_buffer(void)
{
	struct virtio_dev *dev = net_setup();
	struct net_port *port = tb->be.port;
	uint8_t frame[200];
	struct virtio_net_stats st;

	bring_up(dev, F_V1);
	pattern(frame, sizeof(frame), 5);
	post_rx(0, 100);
	port->receive(port, frame, sizeof(frame));
	port->flush(port);
	CHECK_EQ(q[RXQ].used->idx, 1);
	CHECK_EQ(q[RXQ].used->ring[0].len, 0);
	CHECK_EQ(rx_buf(0)[0], 0xee);         /* nothing written */
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.rx_dropped_too_big, 1);
	CHECK_EQ(st.rx_pending, 0);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

static void rx_mergeable(void)
{
	struct virtio_dev *dev = net_setup();
	struct net_port *port = tb->be.port;
	static uint8_t frame[3000], got[3000];
	struct virtio_net_stats st;

	bring_up(dev, F_V1 | F_MRG);
	pattern(frame, sizeof(frame), 7);
	for (int i = 0; i < 3; i++)
		post_rx(i, 1526);
	port->receive(port, frame, sizeof(frame));
	port->flush(port);
	CHECK_EQ(q[RXQ].used->idx, 2);
	CHECK_EQ(q[RXQ].used->ring[0].id, 0);
	CHECK_EQ(q[RXQ].used->ring[0].len, 1526);
	CHECK_EQ(q[RXQ].used->ring[1].id, 1);
	CHECK_EQ(q[RXQ].used->ring[1].len, HDR + 3000 - 1526);
	CHECK_EQ(num_buffers(rx_buf(0)), 2);
	memcpy(got, rx_buf(0) + HDR, 1526 - HDR);
	memcpy(got + 1526 - HDR, rx_buf(1), 3000 - (1526 - HDR));
	CHECK(!memcmp(got, frame, 3000));
	CHECK_EQ(rx_buf(2)[0], 0xee);          /* the third buffer untouched */
	CHECK_EQ(irqs[1 + RXQ], 1);

	/* One buffer left: the frame waits, consuming none, until a second one comes. */
	port->receive(port, frame, sizeof(frame));
	port->flush(port);
	CHECK_EQ(q[RXQ].used->idx, 2);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.rx_pending, 1);
	CHECK_EQ(irqs[1 + RXQ], 1);
	post_rx(3, 2048);
	virtio_queue_notified(dev, RXQ);
	CHECK_EQ(q[RXQ].used->idx, 4);
	CHECK_EQ(q[RXQ].used->ring[2].id, 2);
	CHECK_EQ(q[RXQ].used->ring[3].id, 3);
	CHECK_EQ(num_buffers(rx_buf(2)), 2);
	CHECK_EQ(irqs[1 + RXQ], 2);

	/* A frame no ring of 16 x 64-byte buffers can hold is dropped, the buffers kept. */
	for (int i = 0; i < QSIZE; i++)
		post_rx(i, 64);
	port->receive(port, frame, sizeof(frame));
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.rx_dropped_too_big, 1);
	CHECK_EQ(st.rx_pending, 0);
	CHECK_EQ(q[RXQ].used->idx, 4);
	port->receive(port, frame, 100);      /* 112 bytes: two of them */
	port->flush(port);
	CHECK_EQ(q[RXQ].used->idx, 6);
	CHECK_EQ(num_buffers(rx_buf(0)), 2);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

static void rx_pending_bound(void)
{
	struct virtio_dev *dev = net_setup();
	struct net_port *port = tb->be.port;
	uint8_t frame[80];
	struct virtio_net_stats st;

	bring_up(dev, F_V1 | F_MRG);
	for (int i = 0; i < 300; i++) {
		pattern(frame, sizeof(frame), (uint8_t)i);
		port->receive(port, frame, sizeof(frame));
	}
	port->flush(port);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.rx_pending, 256);
	CHECK_EQ(st.rx_dropped_full, 300 - 256);
	CHECK(tb->paused);
	CHECK_EQ(tb->pauses, 1);
	CHECK_EQ(irqs[1 + RXQ], 0);

	/* Buffers come: the oldest frames go first; still above half full, still paused. */
	for (int i = 0; i < QSIZE; i++)
		post_rx(i, 1526);
	virtio_queue_notified(dev, RXQ);
	CHECK_EQ(q[RXQ].used->idx, QSIZE);
	pattern(frame, sizeof(frame), 0);
	CHECK(!memcmp(rx_buf(0) + HDR, frame, sizeof(frame)));
	pattern(frame, sizeof(frame), 15);
	CHECK(!memcmp(rx_buf(15) + HDR, frame, sizeof(frame)));
	CHECK_EQ(irqs[1 + RXQ], 1);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.rx_pending, 256 - QSIZE);
	CHECK(tb->paused);

	/* A reset drops what waits and lets the backend read again. */
	drv_set_status(dev, 0);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.rx_pending, 0);
	CHECK(!tb->paused);
	CHECK_EQ(tb->resumes, 1);
	teardown();
}

static void rx_hostile_buffers(void)
{
	struct virtio_dev *dev = net_setup();
	struct net_port *port = tb->be.port;
	uint8_t frame[100] = { 1 };

	bring_up(dev, F_V1 | F_MRG);
	/* A readable buffer on the receive queue: a violation, the device needs a reset. */
	drv_desc(&q[RXQ], 0, rx_gpa(0), 1526, 0, 0);
	drv_post(&q[RXQ], 0);
	port->receive(port, frame, sizeof(frame));
	port->flush(port);
	CHECK(drv_get_status(dev) & S_RESET);
	CHECK_EQ(q[RXQ].used->idx, 0);
	/* Later frames are not delivered and nothing crashes. */
	port->receive(port, frame, sizeof(frame));
	virtio_queue_notified(dev, RXQ);
	CHECK_EQ(q[RXQ].used->idx, 0);
	teardown();

	/* The first mergeable buffer shorter than the header: returned empty, frame dropped. */
	dev = net_setup();
	port = tb->be.port;
	bring_up(dev, F_V1 | F_MRG);
	post_rx(0, 4);
	post_rx(1, 1526);
	port->receive(port, frame, sizeof(frame));
	port->flush(port);
	CHECK_EQ(q[RXQ].used->idx, 1);
	CHECK_EQ(q[RXQ].used->ring[0].len, 0);
	port->receive(port, frame, sizeof(frame));
	port->flush(port);
	CHECK_EQ(q[RXQ].used->idx, 2);
	CHECK_EQ(q[RXQ].used->ring[1].len, HDR + 100);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

static void legacy_header(void)
{
	struct virtio_dev *dev = net_setup();
	struct net_port *port = tb->be.port;
	uint8_t frame[60];

	/* A legacy driver without MRG_RXBUF: a 10-byte header. */
	dev->legacy = true;
	bring_up(dev, 0);
	pattern(frame, sizeof(frame), 2);
	post_rx(0, 1524);
	port->receive(port, frame, sizeof(frame));
	port->flush(port);
	CHECK_EQ(q[RXQ].used->ring[0].len, 10 + 60);
	CHECK(!memcmp(rx_buf(0) + 10, frame, 60));

	memset(g2h(&vm.mem, tx_gpa(0), 10), 0, 10);
	memcpy(g2h(&vm.mem, tx_gpa(0) + 10, 60), frame, 60);
	drv_desc(&q[TXQ], 0, tx_gpa(0), 70, 0, 0);
	drv_post(&q[TXQ], 0);
	virtio_queue_notified(dev, TXQ);
	CHECK_EQ(tb->nframes, 1);
	CHECK_EQ(tb->lens[0], 60);
	CHECK(!memcmp(tb->frames[0], frame, 60));
	teardown();
}

/* A backend that speaks virtio-net headers (tap): the header goes through both ways (only
 * num_buffers is the device's), offloads are offered, the backend learns the header size. */
static void vnet_hdr_backend(void)
{
	const uint64_t offloads = (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
				  (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO4);
	struct virtio_dev *dev = net_setup_backend(true, offloads | (1ULL << VIRTIO_NET_F_GUEST_UFO));
	struct net_port *port = tb->be.port;
	struct virtio_net_hdr_v1 hdr = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = 54, .gso_size = 1448, .csum_start = 34, .csum_offset = 16,
		.num_buffers = 0x7777,
	};
	static uint8_t frame[HDR + 100];
	struct virtio_net_stats st;
	uint64_t offered = virtio_offered_features(dev);

	CHECK_EQ(offered & offloads, offloads);
	CHECK(!(offered & (1ULL << VIRTIO_NET_F_GUEST_UFO))); /* not one the device knows */
	/* Segmentation offloads without their checksum offload: FEATURES_OK refused. */
	CHECK(!drv_negotiate(dev, F_V1 | (1ULL << VIRTIO_NET_F_GUEST_TSO4)));
	drv_set_status(dev, 0);
	CHECK(!drv_negotiate(dev, F_V1 | (1ULL << VIRTIO_NET_F_HOST_TSO4)));
	drv_set_status(dev, 0);
	CHECK_EQ(tb->configures, 0);

	bring_up(dev, F_V1 | F_MRG | offloads);
	CHECK_EQ(tb->configures, 1);
	CHECK_EQ(tb->hdr_len, HDR);
	CHECK_EQ(tb->features, F_V1 | F_MRG | offloads);

	/* Transmit: the backend gets the header too. */
	memcpy(frame, &hdr, HDR);
	pattern(frame + HDR, 60, 4);
	memcpy(g2h(&vm.mem, tx_gpa(0), HDR + 60), frame, HDR + 60);
	drv_desc(&q[TXQ], 0, tx_gpa(0), 5, VRING_DESC_F_NEXT, 1); /* the header cut in two */
	drv_desc(&q[TXQ], 1, tx_gpa(0) + 5, HDR - 5 + 60, 0, 0);
	drv_post(&q[TXQ], 0);
	virtio_queue_notified(dev, TXQ);
	CHECK_EQ(tb->nframes, 1);
	CHECK_EQ(tb->lens[0], HDR + 60);
	CHECK(!memcmp(tb->frames[0], frame, HDR + 60));
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.tx_bytes, 60);

	/* Receive: the backend's header, num_buffers set by the device. */
	hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
	memcpy(frame, &hdr, HDR);
	pattern(frame + HDR, 100, 5);
	post_rx(0, 1526);
	port->receive(port, frame, HDR + 100);
	port->flush(port);
	CHECK_EQ(q[RXQ].used->idx, 1);
	CHECK_EQ(q[RXQ].used->ring[0].len, HDR + 100);
	CHECK(!memcmp(rx_buf(0), frame, 10));
	CHECK_EQ(num_buffers(rx_buf(0)), 1);
	CHECK(!memcmp(rx_buf(0) + HDR, frame + HDR, 100));
	/* A frame shorter than its header: dropped and counted, no buffer used. */
	post_rx(1, 1526);
	port->receive(port, frame, HDR - 1);
	port->flush(port);
	CHECK_EQ(q[RXQ].used->idx, 1);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.rx_dropped_not_ready, 1);
	CHECK_EQ(st.rx_packets, 1);
	CHECK_EQ(st.rx_bytes, 100);
	CHECK(!(drv_get_status(dev) & S_RESET));
	teardown();
}

static void parse_options(void)
{
	struct net_opts o;
	struct err e;
	struct in_addr a;

	CHECK_EQ(net_parse_opts("none", &o, &e), 0);
	CHECK_EQ(o.kind, NET_NONE);
	CHECK_EQ(net_parse_opts("user", &o, &e), 0);
	CHECK_EQ(o.kind, NET_USER);
	CHECK(!o.mac_set);
	CHECK_EQ(net_parse_opts("user,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp::5353-10.0.2.20:53,"
				"mac=52:54:00:ab:cd:ef", &o, &e), 0);
	CHECK_EQ(o.nhostfwd, 2);
	CHECK(!o.hostfwd[0].udp);
	inet_pton(AF_INET, "127.0.0.1", &a);
	CHECK_EQ(o.hostfwd[0].host_addr.s_addr, a.s_addr);
	CHECK_EQ(o.hostfwd[0].host_port, 8080);
	inet_pton(AF_INET, "10.0.2.15", &a);
	CHECK_EQ(o.hostfwd[0].guest_addr.s_addr, a.s_addr);
	CHECK_EQ(o.hostfwd[0].guest_port, 80);
	CHECK(o.hostfwd[1].udp);
	CHECK_EQ(o.hostfwd[1].host_addr.s_addr, htonl(INADDR_ANY));
	inet_pton(AF_INET, "10.0.2.20", &a);
	CHECK_EQ(o.hostfwd[1].guest_addr.s_addr, a.s_addr);
	CHECK(o.mac_set && o.mac[3] == 0xab && o.mac[5] == 0xef);
	CHECK_EQ(net_parse_opts("tap,ifname=tap0", &o, &e), 0);
	CHECK_EQ(o.kind, NET_TAP);
	CHECK(!strcmp(o.ifname, "tap0"));

	static const char *bad[] = {
		"", "bridge", "tap", "tap,ifname=", "tap,ifname=averyveryverylongname",
		"user,ifname=tap0", "tap,ifname=t,hostfwd=tcp::1-:2", "none,mac=52:54:00:12:34:56",
		"user,mac=52:54:00:12:34", "user,mac=53:54:00:12:34:56", "user,mac=52:54:00:12:34:56:",
		"user,hostfwd=tcp::8080", "user,hostfwd=sctp::1-:2", "user,hostfwd=tcp::70000-:2",
		"user,hostfwd=tcp::1-:0", "user,hostfwd=tcp:300.1.1.1:1-:2", "user,foo=1", "user,mac",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		e.msg[0] = '\0';
		if (net_parse_opts(bad[i], &o, &e) != -EINVAL) {
			printf("#   accepted: '%s'\n", bad[i]);
			test_failed_checks++;
		}
		CHECK(e.msg[0] != '\0' && !strchr(e.msg, '\n'));
	}
}

/* ---- libslirp, for real ---- */

static uint16_t ip_csum(const uint8_t *p, size_t len)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

#define ARP_SPA 28  /* the sender's IPv4 address in an ARP frame; the target's at 38 */

/* Who has 10.0.2.2, asked by 10.0.2.<from> (slirp answers any sender in its network). */
static size_t build_arp_request_from(uint8_t *f, uint8_t from)
{
	static const uint8_t arp[] = {
		0, 1, 8, 0, 6, 4, 0, 1,                /* Ethernet, IPv4, request */
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 2, 15,
		0, 0, 0, 0, 0, 0, 10, 0, 2, 2,
	};

	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08, f[13] = 0x06;
	memcpy(f + 14, arp, sizeof(arp));
	f[ARP_SPA + 3] = from;
	memset(f + 14 + sizeof(arp), 0, 60 - 14 - sizeof(arp));
	return 60;
}

static size_t build_arp_request(uint8_t *f)
{
	return build_arp_request_from(f, 15);
}

/* Ethernet + IPv4 + UDP 68 -> 67 + a BOOTP DISCOVER with its 312-byte options area. */
static size_t build_dhcp_discover(uint8_t *f)
{
	const size_t bootp_len = 236 + 312, udp_len = 8 + bootp_len, ip_len = 20 + udp_len;
	uint8_t *ip = f + 14, *udp = ip + 20, *bp = udp + 8, *opt = bp + 236;
	uint16_t c;

	memset(f, 0, 14 + ip_len);
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	f[12] = 0x08, f[13] = 0x00;
	ip[0] = 0x45;
	ip[2] = (uint8_t)(ip_len >> 8), ip[3] = (uint8_t)ip_len;
	ip[8] = 64;                          /* TTL */
	ip[9] = 17;                          /* UDP */
	memset(ip + 16, 0xff, 4);            /* 0.0.0.0 -> 255.255.255.255 */
	c = ip_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
	udp[1] = 68, udp[3] = 67;
	udp[4] = (uint8_t)(udp_len >> 8), udp[5] = (uint8_t)udp_len; /* checksum 0: none */
	bp[0] = 1, bp[1] = 1, bp[2] = 6;     /* BOOTREQUEST, Ethernet, 6-byte address */
	bp[4] = 0x12, bp[5] = 0x34, bp[6] = 0x56, bp[7] = 0x78; /* xid */
	memcpy(bp + 28, guest_mac, 6);       /* chaddr */
	opt[0] = 99, opt[1] = 130, opt[2] = 83, opt[3] = 99;    /* magic cookie */
	opt[4] = 53, opt[5] = 1, opt[6] = 1; /* DHCP DISCOVER */
	opt[7] = 255;
	return 14 + ip_len;
}

/* Finds a received frame (in used entries [from, to)) for which match() holds. */
static const uint8_t *find_rx(uint16_t from, uint16_t to, bool (*match)(const uint8_t *, uint32_t),
			      uint32_t *len)
{
	for (uint16_t i = from; i < to; i++) {
		struct vring_used_elem *e = &q[RXQ].used->ring[i % QSIZE];
		const uint8_t *b = rx_buf((int)e->id);

		if (e->len >= HDR && num_buffers(b) == 1 && match(b + HDR, e->len - HDR)) {
			*len = e->len - HDR;
			return b + HDR;
		}
	}
	return NULL;
}

static bool is_arp_reply(const uint8_t *f, uint32_t len)
{
	static const uint8_t gw[4] = { 10, 0, 2, 2 };

	return len >= 42 && f[12] == 0x08 && f[13] == 0x06 && f[20] == 0 && f[21] == 2 &&
	       !memcmp(f + 28, gw, 4) && !memcmp(f + 32, guest_mac, 6) && !memcmp(f, guest_mac, 6);
}

static bool is_dhcp_offer(const uint8_t *f, uint32_t len)
{
	static const uint8_t gw[4] = { 10, 0, 2, 2 }, lease[4] = { 10, 0, 2, 15 };
	const uint8_t *ip = f + 14, *udp = ip + 20, *bp = udp + 8, *opt = bp + 236;

	if (len < 14 + 20 + 8 + 240 + 3 || f[12] != 0x08 || f[13] != 0x00 || ip[9] != 17 ||
	    memcmp(ip + 12, gw, 4) || udp[1] != 67 || udp[3] != 68 || bp[0] != 2)
		return false;
	if (memcmp(bp + 16, lease, 4) || bp[4] != 0x12 || bp[7] != 0x78)
		return false;
	/* Options after the cookie: look for message type 2 (OFFER). */
	for (uint32_t i = 4; 14 + 20 + 8 + 236 + i + 2 < len && opt[i] != 255;) {
		if (opt[i] == 0) {
			i++;
			continue;
		}
		if (opt[i] == 53)
			return opt[i + 2] == 2;
		i += 2 + opt[i + 1];
	}
	return false;
}

static uint16_t syn_port; /* is_syn_to()'s port */

/* A SYN to 10.0.2.15:syn_port. */
static bool is_syn_to(const uint8_t *f, uint32_t len)
{
	static const uint8_t guest[4] = { 10, 0, 2, 15 };
	const uint8_t *ip = f + 14, *tcp = ip + 20;

	return len >= 14 + 20 + 20 && f[12] == 0x08 && f[13] == 0x00 && ip[9] == 6 &&
	       !memcmp(ip + 16, guest, 4) && (tcp[2] << 8 | tcp[3]) == syn_port &&
	       (tcp[13] & 0x02);
}

/* A TCP port free on the host loopback a moment ago. */
static uint16_t free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port = 0;

	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &alen) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

static void slirp_arp_dhcp_hostfwd(void)
{
	struct net_opts o;
	struct err e = { "" };
	struct virtio_dev *dev;
	static uint8_t f[1024];
	const uint8_t *got;
	uint32_t len;
	struct virtio_net_stats st;
	char spec[128];
	uint16_t port, before;
	int c;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	setup_vm();
	port = free_port();
	snprintf(spec, sizeof(spec), "user,mac=52:54:00:12:34:56,hostfwd=tcp:127.0.0.1:%u-:22", port);
	CHECK_EQ(net_parse_opts(spec, &o, &e), 0);
	CHECK_EQ(virtio_net_create(&vm.env, &o, &dev, &e), 0);
	if (e.msg[0]) {
		printf("#   %s\n", e.msg);
		teardown();
		return;
	}
	test_vm_plug(dev);
	bring_up(dev, F_V1 | F_MRG);
	for (int i = 0; i < 8; i++)
		post_rx(i, 2048);

	/* Sent before the loop ever ran: slirp gets it from the loop thread. */
	post_tx(0, f, (uint32_t)build_arp_request(f));
	virtio_queue_notified(dev, TXQ);
	CHECK_EQ(q[TXQ].used->idx, 1);
	run_loop_until_used(1);
	got = find_rx(0, q[RXQ].used->idx, is_arp_reply, &len);
	CHECK(got != NULL);
	if (got)   /* the gateway's MAC, as slirp makes it: 52:55:0a:00:02:02 */
		CHECK(got[6] == 0x52 && got[7] == 0x55 && got[22] == 0x52);
	CHECK(irqs[1 + RXQ] >= 1);

	/* Sent on the loop thread now known (this one): queued, and injected by the loop. */
	before = q[RXQ].used->idx;
	post_tx(2, f, (uint32_t)build_dhcp_discover(f));
	virtio_queue_notified(dev, TXQ);
	run_loop_until_used(before + 1);
	got = find_rx(before, q[RXQ].used->idx, is_dhcp_offer, &len);
	CHECK(got != NULL);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.tx_packets, 2);
	CHECK(st.rx_packets >= 2);
	CHECK_EQ(st.rx_dropped_full + st.rx_dropped_too_big, 0);
	CHECK(!(drv_get_status(dev) & S_RESET));

	/* A connection to the forwarded host port reaches the guest as a SYN to port 22: slirp's
	 * listening socket went through the loop's epoll set. */
	before = q[RXQ].used->idx;
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	a.sin_port = htons(port);
	CHECK(c >= 0);
	CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
	run_loop_until_used(before + 1);
	syn_port = 22;
	CHECK(find_rx(before, q[RXQ].used->idx, is_syn_to, &len) != NULL);
	close(c);

	/* More iterations with nothing to do: nothing breaks, nothing spins. */
	run_loop(3);
	teardown();
}

/* ---- libslirp behind a port that watches the device's lock ---- */

static struct net_port *real_port;
static pthread_mutex_t *spied_lock;
static int spy_receives, spy_locked;

/* Every call the backend makes into the device: the device lock must be free (the backend
 * never calls the port from inside send(), where the device holds it). */
static void spy_check(void)
{
	if (pthread_mutex_trylock(spied_lock) == 0)
		pthread_mutex_unlock(spied_lock);
	else
		spy_locked++;
}

static void spy_receive(struct net_port *p, const void *frame, size_t len)
{
	(void)p;
	spy_check();
	spy_receives++;
	real_port->receive(real_port, frame, len);
}

static void spy_flush(struct net_port *p)
{
	(void)p;
	spy_check();
	real_port->flush(real_port);
}

static void spy_tx_room(struct net_port *p)
{
	(void)p;
	spy_check();
	real_port->tx_room(real_port);
}

static struct net_port spy_port = { .receive = spy_receive, .flush = spy_flush,
				    .tx_room = spy_tx_room };

/* A device on libslirp, its port spied on, up with 8 receive buffers; NULL (and a note) when
 * libslirp is missing here. */
static struct virtio_dev *slirp_spied_setup(void)
{
	struct net_opts o;
	struct err e = { "" };
	struct net_backend *be;
	struct virtio_dev *dev;

	setup_vm();
	CHECK_EQ(net_parse_opts("user,mac=52:54:00:12:34:56", &o, &e), 0);
	if (net_slirp_create(&vm.loop, &o, &be, &e)) {
		printf("#   %s\n", e.msg);
		teardown();
		return NULL;
	}
	CHECK_EQ(virtio_net_create_with(&vm.env, &o, be, &dev, &e), 0);
	real_port = be->port;
	be->port = &spy_port;
	spied_lock = &dev->lock;
	spy_receives = spy_locked = 0;
	test_vm_plug(dev);
	bring_up(dev, F_V1 | F_MRG);
	for (int i = 0; i < 8; i++)
		post_rx(i, 2048);
	return dev;
}

/* The ARP replies among received entries [from, to), in order: the last byte of the address
 * each was sent to (the asker's). Returns how many. */
static int arp_reply_targets(uint16_t from, uint16_t to, uint8_t *who, int max)
{
	int n = 0;

	for (uint16_t i = from; i < to && n < max; i++) {
		struct vring_used_elem *e = &q[RXQ].used->ring[i % QSIZE];
		const uint8_t *f = rx_buf((int)e->id) + HDR;

		if (e->len >= HDR + 42 && f[12] == 0x08 && f[13] == 0x06 && f[21] == 2)
			who[n++] = f[38 + 3];
	}
	return n;
}

/* Frames sent on the loop thread (through the kick eventfd, as with KVM's ioeventfd), ARP and
 * DHCP: libslirp answers each, through port->receive() without the device lock held (it once
 * ran inside send(), lock held), and in the order the guest sent them. */
static void slirp_answers_from_the_loop(void)
{
	struct virtio_dev *dev = slirp_spied_setup();
	static uint8_t f[1024];
	uint8_t who[8];
	uint32_t len;
	struct virtio_net_stats st;

	if (!dev)
		TEST_SKIP("libslirp is not installed here");
	run_loop(1); /* the backend now knows the loop thread */
	post_tx(0, f, (uint32_t)build_arp_request_from(f, 15));
	post_tx(2, f, (uint32_t)build_arp_request_from(f, 16));
	post_tx(4, f, (uint32_t)build_dhcp_discover(f));
	post_tx(6, f, (uint32_t)build_arp_request_from(f, 17));
	post_tx(8, f, (uint32_t)build_arp_request_from(f, 18));
	kick_eventfd(dev, TXQ);
	run_loop_until_used(5);
	CHECK_EQ(q[TXQ].used->idx, 5);
	CHECK(spy_receives >= 5);
	CHECK_EQ(spy_locked, 0);
	CHECK_EQ(arp_reply_targets(0, q[RXQ].used->idx, who, 8), 4);
	CHECK(who[0] == 15 && who[1] == 16 && who[2] == 17 && who[3] == 18);
	CHECK(find_rx(0, q[RXQ].used->idx, is_dhcp_offer, &len) != NULL);
	CHECK(irqs[1 + RXQ] >= 1);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.tx_packets, 5);
	CHECK_EQ(st.rx_dropped_full + st.rx_dropped_too_big + st.rx_dropped_not_ready, 0);
	teardown();
}

/* More than libslirp's transmit ring holds (128 KiB) in one kick: the backend refuses a frame,
 * the device waits, the loop injects what was queued and reports room, and the rest follows:
 * nothing dropped, every frame answered, in order. */
static void slirp_backpressure(void)
{
	struct virtio_dev *dev = slirp_spied_setup();
	static uint8_t f[20000];
	uint8_t who[8];
	struct virtio_net_stats st;

	if (!dev)
		TEST_SKIP("libslirp is not installed here");
	run_loop(1);
	for (int i = 0; i < 8; i++) {
		build_arp_request_from(f, (uint8_t)(15 + i));
		post_tx(2 * i, f, sizeof(f)); /* an ARP request and 19940 bytes of padding */
	}
	kick_eventfd(dev, TXQ);
	run_loop_until_used(8);
	CHECK_EQ(q[TXQ].used->idx, 8);
	CHECK_EQ(arp_reply_targets(0, q[RXQ].used->idx, who, 8), 8);
	for (int i = 0; i < 8; i++)
		CHECK_EQ(who[i], 15 + i);
	virtio_net_get_stats(dev, &st);
	CHECK_EQ(st.tx_packets, 8);
	CHECK_EQ(st.tx_dropped_short + st.tx_dropped_too_big + st.tx_dropped_backend, 0);
	CHECK(st.tx_waits >= 1);
	CHECK_EQ(spy_locked, 0);
	teardown();
}

static int scribbled;

/* The guest rewrites the frame in transmit chain 0 (asker 10.0.2.77): what a vCPU may do any
 * time after the kick. */
static void scribble_tx0(void)
{
	((uint8_t *)g2h(&vm.mem, tx_gpa(1), 60))[ARP_SPA + 3] = 77;
	scribbled++;
}

static void *notify_tx(void *dev)
{
	virtio_queue_notified(dev, TXQ);
	return NULL;
}

/* libslirp parses mica's copy of a frame, never the guest's buffer: the guest rewriting it
 * after the kick (before slirp got to it) changes nothing. Sent on the loop thread, and from
 * another thread (a legacy notification on a vCPU thread), which wakes the loop. */
static void slirp_sees_a_copy(void)
{
	struct virtio_dev *dev = slirp_spied_setup();
	static uint8_t f[64];
	uint8_t who[8];
	pthread_t t;
	uint16_t before;

	if (!dev)
		TEST_SKIP("libslirp is not installed here");
	run_loop(1);
	post_tx(0, f, (uint32_t)build_arp_request_from(f, 15));
	kick_eventfd(dev, TXQ);
	after_handlers = scribble_tx0;  /* sent by then, injected after */
	run_loop_until_used(1);
	CHECK_EQ(scribbled, 1);
	CHECK_EQ(q[TXQ].used->idx, 1);
	CHECK_EQ(arp_reply_targets(0, q[RXQ].used->idx, who, 8), 1);
	CHECK_EQ(who[0], 15);

	before = q[RXQ].used->idx;
	post_tx(0, f, (uint32_t)build_arp_request_from(f, 16));
	CHECK_EQ(pthread_create(&t, NULL, notify_tx, dev), 0);
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(q[TXQ].used->idx, 2);         /* sent (copied): the chain is back */
	scribble_tx0();
	run_loop_until_used(before + 1);
	CHECK_EQ(arp_reply_targets(before, q[RXQ].used->idx, who, 8), 1);
	CHECK_EQ(who[0], 16);
	CHECK_EQ(spy_locked, 0);
	teardown();
}

static void slirp_hostfwd_conflict(void)
{
	struct net_opts o;
	char spec[128];
	struct err e = { "" };
	struct virtio_dev *dev;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);

	setup_vm();
	/* A port already taken on the host: a clear error, not a device. */
	CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(s, 1) == 0);
	CHECK(getsockname(s, (struct sockaddr *)&a, &alen) == 0);
	snprintf(spec, sizeof(spec), "user,hostfwd=tcp:127.0.0.1:%u-:22", ntohs(a.sin_port));
	CHECK_EQ(net_parse_opts(spec, &o, &e), 0);
	CHECK(virtio_net_create(&vm.env, &o, &dev, &e) < 0);
	CHECK(strstr(e.msg, "cannot forward tcp"));
	close(s);

	CHECK_EQ(net_parse_opts("none", &o, &e), 0);
	CHECK(virtio_net_create(&vm.env, &o, &dev, &e) < 0);
	teardown();
}

/* The string value `name` of a device's --stats-json entry, or NULL. */
static const char *stats_str(struct virtio_dev *dev, const char *name)
{
	static struct stat_value v[STATS_MAX_VALUES];
	int n = virtio_dev_stats(dev, v, STATS_MAX_VALUES);

	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return v[i].str;
	return NULL;
}

/* A connection to 127.0.0.1:host_port reaches the guest as a SYN to guest_port. */
static bool connect_reaches(uint16_t host_port, uint16_t guest_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons(host_port) };
	uint16_t before = q[RXQ].used->idx;
	int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	uint32_t len;
	bool reached;

	if (c < 0 || (connect(c, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)) {
		if (c >= 0)
			close(c);
		return false;
	}
	run_loop_until_used(before + 1);
	syn_port = guest_port;
	reached = find_rx(before, q[RXQ].used->idx, is_syn_to, &len) != NULL;
	close(c);
	return reached;
}

/* Whether a socket of this type can be bound to 127.0.0.1:port now (no SO_REUSEADDR). */
static bool port_free(int type, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons(port) };
	int s = socket(AF_INET, type, 0);
	bool ok = s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (s >= 0)
		close(s);
	return ok;
}

/* hostfwd with host port 0: the kernel picks a free port per rule (two TCP rules get two
 * ports), and mica reports each one as bound: a line on stderr per port-0 rule (not for a
 * fixed port, at the default level), and the device's --stats-json entry lists every rule in
 * order. A connection to each reported TCP port reaches the guest port of its own rule; the
 * reported UDP port is held. */
static void slirp_hostfwd_port_zero(void)
{
	struct net_opts o;
	struct err e = { "" };
	struct net_backend *be;
	struct virtio_dev *dev;
	static uint8_t f[1024];
	char spec[256], want[256], printed[1024] = "";
	const char *fwd;
	unsigned t22 = 0, u53 = 0, t23 = 0, fixed_got = 0;
	uint16_t fixed = free_port();
	int saved = dup(STDERR_FILENO), cap = memfd_create("stderr", 0);
	ssize_t got;
	int rc;

	setup_vm();
	snprintf(spec, sizeof(spec), "user,mac=52:54:00:12:34:56,hostfwd=tcp:127.0.0.1:0-:22,"
		 "hostfwd=udp:127.0.0.1:0-:53,hostfwd=tcp:127.0.0.1:0-10.0.2.15:23,"
		 "hostfwd=tcp:127.0.0.1:%u-:24", fixed);
	CHECK_EQ(net_parse_opts(spec, &o, &e), 0);
	/* What the backend prints while it is created, at mica's default level. */
	CHECK(saved >= 0 && cap >= 0);
	log_set_level(LOG_WARN);
	dup2(cap, STDERR_FILENO);
	rc = net_slirp_create(&vm.loop, &o, &be, &e);
	dup2(saved, STDERR_FILENO);
	log_set_level(LOG_ERROR);
	got = pread(cap, printed, sizeof(printed) - 1, 0);
	printed[got > 0 ? got : 0] = '\0';
	close(cap);
	close(saved);
	if (rc) {
		printf("#   %s\n", e.msg);
		CHECK(strstr(e.msg, "cannot load"));  /* libslirp missing: nothing else may fail */
		teardown();
		return;
	}
	CHECK_EQ(virtio_net_create_with(&vm.env, &o, be, &dev, &e), 0);
	test_vm_plug(dev);

	fwd = stats_str(dev, "hostfwd");
	CHECK(fwd && fwd == be->hostfwd);
	if (!fwd || sscanf(fwd, "tcp:127.0.0.1:%u-10.0.2.15:22,udp:127.0.0.1:%u-10.0.2.15:53,"
			   "tcp:127.0.0.1:%u-10.0.2.15:23,tcp:127.0.0.1:%u-10.0.2.15:24",
			   &t22, &u53, &t23, &fixed_got) != 4) {
		printf("#   hostfwd: %s\n", fwd ? fwd : "(none)");
		test_failed_checks++;
		teardown();
		return;
	}
	snprintf(want, sizeof(want), "tcp:127.0.0.1:%u-10.0.2.15:22,udp:127.0.0.1:%u-10.0.2.15:53,"
		 "tcp:127.0.0.1:%u-10.0.2.15:23,tcp:127.0.0.1:%u-10.0.2.15:24", t22, u53, t23,
		 fixed_got);
	CHECK(!strcmp(fwd, want));
	CHECK(t22 > 0 && t22 <= 65535 && u53 > 0 && u53 <= 65535 && t23 > 0 && t23 <= 65535);
	CHECK(t22 != t23 && t22 != fixed && t23 != fixed);
	CHECK_EQ(fixed_got, fixed);

	/* One line per port-0 rule, in order, and nothing else. */
	snprintf(want, sizeof(want), "mica: hostfwd tcp 127.0.0.1:%u -> guest 10.0.2.15:22\n"
		 "mica: hostfwd udp 127.0.0.1:%u -> guest 10.0.2.15:53\n"
		 "mica: hostfwd tcp 127.0.0.1:%u -> guest 10.0.2.15:23\n", t22, u53, t23);
	if (strcmp(printed, want)) {
		printf("#   stderr was:\n%s#   want:\n%s", printed, want);
		test_failed_checks++;
	}

	/* The ports are bound, each to its own rule. */
	CHECK(!port_free(SOCK_DGRAM, (uint16_t)u53));
	CHECK(!port_free(SOCK_STREAM, (uint16_t)t22));
	bring_up(dev, F_V1 | F_MRG);
	for (int i = 0; i < 8; i++)
		post_rx(i, 2048);
	post_tx(0, f, (uint32_t)build_arp_request(f)); /* slirp learns the guest's MAC */
	virtio_queue_notified(dev, TXQ);
	run_loop_until_used(1);
	CHECK(connect_reaches((uint16_t)t22, 22));
	CHECK(connect_reaches((uint16_t)t23, 23));
	CHECK(connect_reaches(fixed, 24));
	teardown();

	/* No rules: no "hostfwd" value at all. */
	setup_vm();
	CHECK_EQ(net_parse_opts("user", &o, &e), 0);
	CHECK_EQ(net_slirp_create(&vm.loop, &o, &be, &e), 0);
	CHECK(be->hostfwd == NULL);
	CHECK_EQ(virtio_net_create_with(&vm.env, &o, be, &dev, &e), 0);
	test_vm_plug(dev);
	CHECK(stats_str(dev, "hostfwd") == NULL);
	teardown();
}

TEST_MAIN("net",
	  T(config_and_features),
	  T(default_mac_is_stable),
	  T(tx_strips_header),
	  T(tx_hostile_chains),
	  T(tx_backpressure),
	  T(rx_waits_for_buffers),
	  T(rx_before_driver_ok_dropped),
	  T(rx_too_long_for_buffer),
	  T(rx_mergeable),
	  T(rx_pending_bound),
	  T(rx_hostile_buffers),
	  T(legacy_header),
	  T(vnet_hdr_backend),
	  T(parse_options),
	  T(slirp_arp_dhcp_hostfwd),
	  T(slirp_answers_from_the_loop),
	  T(slirp_sees_a_copy),
	  T(slirp_backpressure),
	  T(slirp_hostfwd_conflict),
	  T(slirp_hostfwd_port_zero))
