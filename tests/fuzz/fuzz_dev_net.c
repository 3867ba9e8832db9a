/* virtio-net in the device target, on a fake backend that checks every frame the device
 * transmits and injects received frames when the operations say so.
 *
 * The backend behaves as libslirp's does: it takes frames into a queue of a few frames (its
 * capacity: options bits 2-4; class 0 holds 1 frame) and refuses more (send() says -EAGAIN);
 * after each operation (settle, as the loop's after()) it empties the queue, unless stalled,
 * answers the frames it took when asked to, and calls tx_room() after a refusal, delivering
 * the kick that raises as the loop would.
 *
 * Options: bit 0 the backend speaks virtio-net headers (as tap, with every offload); bit 1 the
 * driver leaves out MRG_RXBUF; bits 2-4 the backend's capacity class.
 * Operations: 0: the backend receives 1 << (arg & 3) frames of size class arg >> 2 (8 bytes to
 *             one byte more than the device takes), then flushes;
 *             1: the backend's mode becomes arg & 3 (bit 0: send() fails, bit 1: each frame
 *             taken is answered with a received one at the next settle), it stalls (keeps its
 *             queue full) if arg & 16; then (arg & 4) a kick of the transmit queue and
 *             (arg & 8) of the receive queue.
 *
 * Every received frame is self-describing: after the header (the backend's own when it speaks
 * headers) come its length, a sequence number and a pattern. Checks beyond the sanitizers:
 *   - transmit: send() gets exactly the chain's readable bytes after the header (with it when
 *     the backend speaks headers), between 14 and 65550 bytes of frame, in guest RAM;
 *   - backpressure: after a refusal the device calls send() no more until tx_room() (or a
 *     reset), and tx_room() then signals the transmit queue's kick (unless a reset came
 *     between); the device's counters match what the backend took, failed and refused (a
 *     refused frame is neither sent nor dropped);
 *   - send() is never called from inside a port call (tx_room() only signals the kick);
 *   - receive: every frame delivered (one chain, or num_buffers chains with MRG_RXBUF) holds
 *     the header and the whole frame, exactly: never truncated, never padded, in sequence
 *     (skipped when the driver's buffers overlap, where one write may clobber another);
 *   - every frame the backend hands over is delivered, waiting, or dropped and counted
 *     (unless a reset or a violation threw the waiting ones away);
 *   - the backend is paused only while more than half the waiting queue is full, and
 *     always when it is full. */
#include <errno.h>
#include <linux/virtio_net.h>
#include <unistd.h>

#include "devices/net/backend.h"
#include "devices/virtio/net.h"
#include "tests/fuzz/fuzz_dev.h"

#define NET_MAX_FRAME   65550
#define NET_PENDING_MAX 256
#define HDR_MAX         12
#define F(bit)          (1ULL << (bit))

#define MODE_FAIL   1     /* send() fails: the frame is dropped */
#define MODE_ANSWER 2     /* each frame taken is answered at the next settle */
#define MODE_STALL  4     /* settle does not empty the queue */

struct fake_backend {
	struct net_backend be;
	int mode;                 /* MODE_* */
	unsigned cap, queued;     /* frames it holds at most (0: no limit), holds now */
	bool paused;
	size_t hdr_len;           /* as configure() said */
	bool mrg;
	bool refused;             /* send() said -EAGAIN; no tx_room() since */
	unsigned configures;      /* configure() calls: one per activation, so after each reset */
	unsigned refused_cfg;     /* configures at the refusal: unchanged, no reset since */
	bool in_port;             /* inside a call of the device's port */
	unsigned answers;         /* frames to answer after the operation */
	unsigned long refusals, fails, taken;
};

static struct fake_backend fb;
static uint32_t next_seq, min_seq;    /* next frame to inject; lowest the next delivery may have */
static unsigned long injected, injected_before;
static struct virtio_net_stats before;
static uint8_t frame[HDR_MAX + NET_MAX_FRAME + 1];
static uint8_t stream[HDR_MAX + NET_MAX_FRAME + 1], sent[HDR_MAX + NET_MAX_FRAME + 1];

static uint32_t le32_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint8_t pattern(uint32_t seq, uint32_t i)
{
	return (uint8_t)(seq * 13 + i);
}

/* One frame from the network; size class 0-7. */
static void inject(int cls)
{
	static const uint32_t payload_len[8] = { 8, 20, 60, 200, 1514, 4000, NET_MAX_FRAME,
						 NET_MAX_FRAME + 1 };
	uint32_t hl = fb.be.vnet_hdr ? (uint32_t)fb.hdr_len : 0, plen = payload_len[cls];
	uint8_t *p = frame + hl;

	for (uint32_t i = 0; i < hl; i++)
		frame[i] = (uint8_t)(0xa0 + i);
	memcpy(p, &plen, 4);
	memcpy(p + 4, &next_seq, 4);
	for (uint32_t i = 8; i < plen; i++)
		p[i] = pattern(next_seq, i);
	next_seq++;
	injected++;
	/* Class 0 with headers: shorter than the header, which the device must drop. */
	fb.in_port = true;
	fb.be.port->receive(fb.be.port, frame, cls == 0 && hl ? hl - 1 : hl + plen);
	fb.in_port = false;
}

static void flush(void)
{
	fb.in_port = true;
	fb.be.port->flush(fb.be.port);
	fb.in_port = false;
}

static int fb_send(struct net_backend *be, const struct iovec *iov, int iovcnt, size_t len)
{
	const struct fuzz_chain *c = fuzz_track_last_live(1);
	uint32_t hl = (uint32_t)fb.hdr_len, skip = be->vnet_hdr ? 0 : hl;
	size_t got = 0, frame_len = len - (be->vnet_hdr ? hl : 0);

	FUZZ_ASSERT(!fb.in_port); /* the port only asks the loop to transmit */
	/* No send after a refusal until tx_room() or a reset. */
	FUZZ_ASSERT(!fb.refused || fb.configures != fb.refused_cfg);
	FUZZ_ASSERT(iovcnt >= 1 && iovcnt <= VIRTQ_MAX_SEGS && len <= sizeof(sent));
	for (int i = 0; i < iovcnt; i++) {
		FUZZ_ASSERT(fuzz_in_ram(iov[i].iov_base, iov[i].iov_len));
		FUZZ_ASSERT(iov[i].iov_len <= len - got);
		memcpy(sent + got, iov[i].iov_base, iov[i].iov_len);
		got += iov[i].iov_len;
	}
	FUZZ_ASSERT(got == len);
	FUZZ_ASSERT(frame_len >= 14 && frame_len <= NET_MAX_FRAME);
	if (c) { /* the chain being sent: exactly its readable bytes after skip */
		FUZZ_ASSERT(c->read_len == skip + len);
		FUZZ_ASSERT(fuzz_chain_bytes(c, false, skip, stream, len) == len);
		FUZZ_ASSERT(!memcmp(stream, sent, len));
	}
	if (fb.cap && fb.queued == fb.cap) {
		fb.refused = true;
		fb.refused_cfg = fb.configures;
		fb.refusals++;
		return -EAGAIN;
	}
	if (fb.mode & MODE_FAIL) {
		fb.fails++;
		return -EIO;
	}
	fb.taken++;
	fb.queued++;
	if (fb.mode & MODE_ANSWER)
		fb.answers++;
	return 0;
}

static void fb_configure(struct net_backend *be, size_t hdr_len, uint64_t features)
{
	(void)be;
	FUZZ_ASSERT(hdr_len == 10 || hdr_len == HDR_MAX);
	fb.hdr_len = hdr_len;
	fb.mrg = features & F(VIRTIO_NET_F_MRG_RXBUF);
	fb.configures++;
}

static void fb_set_rx_paused(struct net_backend *be, bool paused)
{
	(void)be;
	FUZZ_ASSERT(paused != fb.paused); /* told only of changes */
	fb.paused = paused;
}

static void fb_destroy(struct net_backend *be)
{
	(void)be; /* static */
}

static const struct net_backend_ops fb_ops = {
	.send = fb_send,
	.configure = fb_configure,
	.set_rx_paused = fb_set_rx_paused,
	.destroy = fb_destroy,
};

static struct virtio_dev *net_create(const struct virtio_env *env, uint8_t opt, uint64_t *features)
{
	static const unsigned caps[8] = { 1, 2, 3, 8, 64, 0, 0, 0 };
	struct net_opts o = { .kind = NET_USER, .mac_set = true, .mac = { 0x52, 0x54, 0, 1, 2, 3 } };
	struct err e;
	struct virtio_dev *dev = NULL;

	fb = (struct fake_backend){
		.be = { .ops = &fb_ops, .name = "fuzz", .vnet_hdr = opt & 1,
			.offloads = opt & 1 ? ~0ULL : 0 },
		.cap = caps[(opt >> 2) & 7],
		.hdr_len = HDR_MAX,
	};
	next_seq = min_seq = 0;
	injected = injected_before = 0;
	memset(&before, 0, sizeof(before));
	FUZZ_ASSERT(virtio_net_create_with(env, &o, &fb.be, &dev, &e) == 0);
	*features = virtio_offered_features(dev) & 0xffffff; /* the device-specific bits */
	if (opt & 2)
		*features &= ~F(VIRTIO_NET_F_MRG_RXBUF);
	return dev;
}

/* The backend has room again after a refusal: tx_room(), and the kick it raises delivered as
 * the loop would (the harness never reads the kick eventfds otherwise). A device not reset
 * since the refusal (still waiting) must raise it. */
static void tx_room(struct virtio_dev *dev)
{
	uint64_t v;
	bool kicked, waiting = fb.configures == fb.refused_cfg &&
			       (drv_get_status(dev) & VIRTIO_CONFIG_S_DRIVER_OK);

	fb.refused = false;
	fb.in_port = true;
	fb.be.port->tx_room(fb.be.port);
	fb.in_port = false;
	kicked = read(virtio_kick_fd(dev, 1), &v, sizeof(v)) == sizeof(v);
	if (waiting)
		FUZZ_ASSERT(kicked);
	if (kicked)
		virtio_queue_notified(dev, 1);
}

static void net_op(struct virtio_dev *dev, int which, uint8_t arg)
{
	if (which == 0) {
		for (int i = 0; i < 1 << (arg & 3); i++)
			inject(arg >> 2);
		flush();
		return;
	}
	fb.mode = (arg & 3) | (arg & 16 ? MODE_STALL : 0);
	if (arg & 4)
		virtio_queue_notified(dev, 1);
	if (arg & 8)
		virtio_queue_notified(dev, 0);
}

/* After each operation, from outside the device, as libslirp's after(): the frames taken go
 * (their answers come back), and room is reported after a refusal. */
static void net_settle(struct virtio_dev *dev)
{
	if (fb.mode & MODE_STALL)
		return;
	fb.queued = 0;
	if (fb.answers) {
		for (; fb.answers; fb.answers--)
			inject(2);
		flush();
	}
	if (fb.refused)
		tx_room(dev);
}

/* The frames delivered on the receive queue in this operation, checked; returns how many. */
static unsigned long check_delivered(void)
{
	uint32_t hl = (uint32_t)fb.hdr_len;
	unsigned long frames = 0;
	const struct fuzz_chain *c;

	for (unsigned i = 0; (c = fuzz_track_pushed(0, i));) {
		uint64_t len = 0;
		uint16_t nb = 1;
		uint32_t plen, seq;

		if (!c->written) { /* an empty buffer given back: a frame dropped */
			i++;
			continue;
		}
		FUZZ_ASSERT(c->written >= hl);
		if (fb.mrg) {
			fuzz_chain_bytes(c, true, 0, stream, HDR_MAX);
			nb = (uint16_t)(stream[10] | stream[11] << 8);
		}
		FUZZ_ASSERT(nb >= 1);
		for (unsigned k = 0; k < nb; k++, i++) {
			const struct fuzz_chain *b = fuzz_track_pushed(0, i);

			FUZZ_ASSERT(b && len + b->written <= sizeof(stream));
			len += fuzz_chain_bytes(b, true, 0, stream + len, b->written);
		}
		/* The header: the backend's, or zeros; num_buffers says how many chains. */
		for (uint32_t k = 0; k < hl; k++) {
			uint8_t want = fb.be.vnet_hdr ? (uint8_t)(0xa0 + k) : 0;

			if (hl == HDR_MAX && k == 10)
				want = (uint8_t)nb;
			else if (hl == HDR_MAX && k == 11)
				want = (uint8_t)(nb >> 8);
			FUZZ_ASSERT(stream[k] == want);
		}
		FUZZ_ASSERT(len >= hl + 8);
		plen = le32_at(stream + hl);
		seq = le32_at(stream + hl + 4);
		FUZZ_ASSERT(len == hl + (uint64_t)plen); /* the whole frame, and nothing more */
		FUZZ_ASSERT(seq >= min_seq && seq < next_seq);
		min_seq = seq + 1;
		for (uint32_t k = 8; k < plen; k++)
			FUZZ_ASSERT(stream[hl + k] == pattern(seq, k));
		frames++;
	}
	return frames;
}

static void net_check(struct virtio_dev *dev, bool disrupted)
{
	struct virtio_net_stats s;
	unsigned long dropped, frames;
	bool aliased = fuzz_track_aliased();

	frames = aliased ? 0 : check_delivered();
	virtio_net_get_stats(dev, &s);
	dropped = s.rx_dropped_full + s.rx_dropped_too_big + s.rx_dropped_not_ready -
		  (before.rx_dropped_full + before.rx_dropped_too_big + before.rx_dropped_not_ready);
	if (!disrupted) {
		FUZZ_ASSERT(injected - injected_before + before.rx_pending ==
			    s.rx_packets - before.rx_packets + dropped + s.rx_pending);
		if (!aliased)
			FUZZ_ASSERT(frames == s.rx_packets - before.rx_packets);
	}
	/* A refusal is neither a frame sent nor one dropped. */
	FUZZ_ASSERT(s.tx_waits == fb.refusals);
	FUZZ_ASSERT(s.tx_dropped_backend == fb.fails && s.tx_packets == fb.taken);
	FUZZ_ASSERT(s.rx_pending <= NET_PENDING_MAX);
	if (fb.paused)
		FUZZ_ASSERT(s.rx_pending > NET_PENDING_MAX / 2);
	if (s.rx_pending == NET_PENDING_MAX)
		FUZZ_ASSERT(fb.paused);
	before = s;
	injected_before = injected;
}

const struct fuzz_model fuzz_model_net = {
	.create = net_create,
	.op = net_op,
	.settle = net_settle,
	.check = net_check,
};
