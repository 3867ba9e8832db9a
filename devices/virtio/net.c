/* virtio-net (device ID 1): one receiveq (0) and one transmitq (1), no control queue.
 *
 * Transmit: each chain is a virtio-net header and a frame; the frame goes to the backend (with
 * the header kept when the backend speaks virtio-net headers itself, i.e. tap), the chain is
 * returned at once, and the driver is interrupted once per batch. When the backend has no room
 * (send() says -EAGAIN) the device stops: the chain goes back to the ring untouched, nothing
 * is dropped, and transmitting resumes when the backend calls port->tx_room() (backend.h).
 *
 * Receive: a frame from the backend goes into device-writable chains behind a header (several
 * chains with VIRTIO_NET_F_MRG_RXBUF, num_buffers saying how many). When the driver has not
 * posted enough buffers the frame waits in a bounded queue (NET_PENDING_MAX frames; beyond it
 * frames are dropped and counted, and a backend that can wait is paused); the driver's next
 * kick on queue 0 drains it. Frames are never truncated: one longer than the buffers the
 * driver can ever offer is dropped and counted.
 *
 * Work per wake-up is bounded both ways, so neither a flooding guest nor a flooding network
 * starves the loop's other handlers: transmit stops at VIRTIO_BUDGET chains (the core kicks it
 * again) or at the backend's backpressure; receive takes what a backend hands over per wake-up
 * (tap: TAP_BATCH frames; slirp: one pass over its sockets), and a receive kick delivers at
 * most the NET_PENDING_MAX frames waiting.
 *
 * The guest may be hostile: chains go through virtio_pop() (validated segments), every length
 * is checked against the segments before anything is written, and a short or oversized
 * transmit chain is dropped and counted, not a reason for a crash or a reset. */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <stdlib.h>
#include <string.h>

#include "devices/net/backend.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/net.h"
#include "devices/virtio/virtio.h"
#include "snapshot/snapshot.h"
#include "vmm/err.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define RX_QUEUE 0
#define TX_QUEUE 1
#define NET_QUEUE_SIZE 256
#define NET_MTU 1500
#define NET_MAX_FRAME 65550     /* bytes after the virtio-net header, either way */
#define NET_MIN_FRAME 14        /* an Ethernet header */
#define NET_PENDING_MAX 256     /* received frames waiting for buffers */
#define NET_HDR_MAX 12          /* struct virtio_net_hdr_v1 / virtio_net_hdr_mrg_rxbuf */
#define NET_NUM_BUFFERS_OFF 10  /* offsetof(struct virtio_net_hdr_v1, num_buffers) */

#define F(bit) (1ULL << (bit))
#define NET_BASE_FEATURES (F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) | F(VIRTIO_NET_F_MTU) | \
			   F(VIRTIO_NET_F_MRG_RXBUF))
#define NET_OFFLOAD_FEATURES (F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) | \
			      F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) | \
			      F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6))

_Static_assert(sizeof(struct virtio_net_hdr_v1) == NET_HDR_MAX, "virtio-net header size");
_Static_assert(sizeof(struct virtio_net_hdr_mrg_rxbuf) == NET_HDR_MAX, "mergeable header size");
_Static_assert(offsetof(struct virtio_net_hdr_v1, num_buffers) == NET_NUM_BUFFERS_OFF,
	       "num_buffers offset");

struct pending_frame {
	size_t len;
	uint8_t data[];
};

struct net_counters {
	atomic_ulong tx_packets, tx_bytes, tx_dropped_short, tx_dropped_too_big, tx_dropped_backend;
	atomic_ulong tx_waits;
	atomic_ulong rx_packets, rx_bytes, rx_dropped_full, rx_dropped_too_big, rx_dropped_not_ready;
};

struct virtio_net {
	struct virtio_dev vdev;
	struct virtio_dev_ops ops;          /* features depend on the backend */
	struct virtio_net_config config;
	struct net_backend *be;
	struct net_port port;
	char ifname[IFNAMSIZ];              /* tap: the interface; "" otherwise (set up once) */
	uint8_t mac[6];                     /* as the options gave it (set up once) */
	bool mac_given;                     /* by mac=, not a default: a restore must match it */

	/* Under the device lock: */
	uint32_t hdr_len;                   /* 12 (VERSION_1 or MRG_RXBUF) or 10 (legacy) */
	bool mrg;                           /* VIRTIO_NET_F_MRG_RXBUF negotiated */
	bool rx_unsignalled;                /* receive chains pushed, no interrupt yet */
	bool rx_paused;                     /* the backend was asked to stop reading */
	bool tx_blocked;                    /* the backend refused a frame: wait for tx_room() */
	struct pending_frame *pending[NET_PENDING_MAX];
	unsigned pending_head, pending_count;
	struct virtq_req tx_req, rx_req;
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint16_t rx_heads[VIRTQ_MAX_SIZE];
	uint32_t rx_lens[VIRTQ_MAX_SIZE];

	struct net_counters st;
};

static void count(atomic_ulong *c, unsigned long n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- receive ---- */

enum rx_result {
	RX_DONE,     /* delivered */
	RX_NOBUF,    /* not enough buffers posted: nothing consumed, the frame must wait */
	RX_DROPPED,  /* dropped and counted */
	RX_BROKEN,   /* the driver broke the rules: the device now needs a reset */
};

/* Writes bytes [off, off + len) of the stream hdr || payload into req's writable segments,
 * from the start of the chain. The caller checked len <= req->write_len. */
static void chain_write(struct virtq_req *req, const uint8_t *hdr, uint32_t hdr_len,
			const uint8_t *payload, uint64_t off, uint32_t len)
{
	uint32_t done = 0;

	for (int i = 0; i < req->nsegs && done < len; i++) {
		uint8_t *dst = req->segs[i].hva;
		uint32_t room = MIN(req->segs[i].len, len - done);

		while (room) {
			uint64_t s = off + done;
			const uint8_t *src;
			uint32_t k;

			if (s < hdr_len) {
				src = hdr + s;
				k = MIN(room, hdr_len - (uint32_t)s);
			} else {
				src = payload + (s - hdr_len);
				k = room;
			}
			memcpy(dst, src, k);
			dst += k;
			room -= k;
			done += k;
		}
	}
}

/* Host address of byte off of req's writable segments (off < req->write_len). */
static uint8_t *chain_byte(struct virtq_req *req, uint64_t off)
{
	for (int i = 0; i < req->nsegs; i++) {
		if (off < req->segs[i].len)
			return (uint8_t *)req->segs[i].hva + off;
		off -= req->segs[i].len;
	}
	return NULL;
}

/* Gives back the last n chains popped on q and not pushed: the device has no use for them yet
 * (virtq has no unpop; the chains are read and validated again when popped next time). */
static void unpop(struct virtio_net *n, int q, uint16_t nchains)
{
	n->vdev.vqs[q].last_avail -= nchains;
}

static bool rx_ready(struct virtio_net *n)
{
	return virtio_dev_ok(&n->vdev) && n->vdev.vqs[RX_QUEUE].ready;
}

/* Puts one frame (as the backend gave it) into receive chains. */
static enum rx_result rx_one(struct virtio_net *n, const uint8_t *frame, size_t len)
{
	struct virtio_dev *dev = &n->vdev;
	struct virtq *vq = &dev->vqs[RX_QUEUE];
	struct virtq_req *req = &n->rx_req;
	uint8_t hdr[NET_HDR_MAX] = { 0 };
	uint32_t hl = n->hdr_len;
	const uint8_t *payload = frame;
	size_t plen = len;
	uint64_t total, off = 0;
	uint8_t *nb_lo = NULL, *nb_hi = NULL;
	uint16_t nbufs = 0;
	int err;

	if (n->be->vnet_hdr) {
		if (len < hl) {
			count(&n->st.rx_dropped_not_ready, 1);
			return RX_DROPPED;
		}
		memcpy(hdr, frame, hl);
		payload += hl;
		plen -= hl;
	}
	if (plen > NET_MAX_FRAME) {
		count(&n->st.rx_dropped_too_big, 1);
		return RX_DROPPED;
	}
	if (hl == NET_HDR_MAX) {
		hdr[NET_NUM_BUFFERS_OFF] = 1; /* num_buffers, little-endian; patched below */
		hdr[NET_NUM_BUFFERS_OFF + 1] = 0;
	}
	total = hl + plen;

	if (!n->mrg) {
		err = virtio_pop(dev, RX_QUEUE, req, VIRTQ_DEV_WRITES);
		if (err)
			return err == -ENOENT ? RX_NOBUF : RX_BROKEN;
		if (req->write_len < total) {
			/* The driver gets the buffer back empty (a length error to it). */
			virtio_push(dev, RX_QUEUE, req->head, 0);
			n->rx_unsignalled = true;
			count(&n->st.rx_dropped_too_big, 1);
			return RX_DROPPED;
		}
		chain_write(req, hdr, hl, payload, 0, (uint32_t)total);
		virtio_push(dev, RX_QUEUE, req->head, (uint32_t)total);
		goto done;
	}

	/* Mergeable buffers: as many chains as the frame needs; pushed only once all are in hand,
	 * so that a frame waiting for buffers consumes none. */
	while (off < total) {
		uint32_t w;

		if (nbufs == vq->size) {
			/* Every buffer the ring can hold would not do (or the driver keeps re-posting
			 * empty ones): the frame can never fit. */
			unpop(n, RX_QUEUE, nbufs);
			count(&n->st.rx_dropped_too_big, 1);
			return RX_DROPPED;
		}
		err = virtio_pop(dev, RX_QUEUE, req, VIRTQ_DEV_WRITES);
		if (err == -ENOENT) {
			unpop(n, RX_QUEUE, nbufs);
			return RX_NOBUF;
		}
		if (err)
			return RX_BROKEN;
		if (nbufs == 0) {
			if (req->write_len < hl) {
				/* The header must be in the first buffer. */
				virtio_push(dev, RX_QUEUE, req->head, 0);
				n->rx_unsignalled = true;
				count(&n->st.rx_dropped_too_big, 1);
				return RX_DROPPED;
			}
			nb_lo = chain_byte(req, NET_NUM_BUFFERS_OFF);
			nb_hi = chain_byte(req, NET_NUM_BUFFERS_OFF + 1);
		}
		w = (uint32_t)MIN(req->write_len, total - off);
		chain_write(req, hdr, hl, payload, off, w);
		n->rx_heads[nbufs] = req->head;
		n->rx_lens[nbufs] = w;
		nbufs++;
		off += w;
	}
	if (nb_lo && nb_hi) {
		*nb_lo = (uint8_t)nbufs;
		*nb_hi = (uint8_t)(nbufs >> 8);
	}
	for (uint16_t i = 0; i < nbufs; i++)
		virtio_push(dev, RX_QUEUE, n->rx_heads[i], n->rx_lens[i]);
done:
	n->rx_unsignalled = true;
	count(&n->st.rx_packets, 1);
	count(&n->st.rx_bytes, plen);
	return RX_DONE;
}

static void pending_clear(struct virtio_net *n)
{
	while (n->pending_count) {
		free(n->pending[n->pending_head]);
		n->pending_head = (n->pending_head + 1) % NET_PENDING_MAX;
		n->pending_count--;
	}
	n->pending_head = 0;
}

static void set_paused(struct virtio_net *n, bool paused)
{
	if (n->rx_paused == paused)
		return;
	n->rx_paused = paused;
	if (n->be->ops->set_rx_paused)
		n->be->ops->set_rx_paused(n->be, paused);
}

/* Delivers waiting frames while buffers last. */
static void rx_drain(struct virtio_net *n)
{
	while (n->pending_count && rx_ready(n)) {
		struct pending_frame *p = n->pending[n->pending_head];
		enum rx_result r = rx_one(n, p->data, p->len);

		if (r == RX_NOBUF)
			break;
		if (r == RX_BROKEN) {
			pending_clear(n);
			break;
		}
		free(p);
		n->pending_head = (n->pending_head + 1) % NET_PENDING_MAX;
		n->pending_count--;
	}
	if (n->pending_count <= NET_PENDING_MAX / 2)
		set_paused(n, false);
}

static void rx_signal(struct virtio_net *n)
{
	if (n->rx_unsignalled && n->vdev.vqs[RX_QUEUE].ready) {
		n->rx_unsignalled = false;
		virtio_notify_used(&n->vdev, RX_QUEUE);
	}
}

static void port_receive(struct net_port *p, const void *frame, size_t len)
{
	struct virtio_net *n = container_of(p, struct virtio_net, port);
	struct pending_frame *pf;

	pthread_mutex_lock(&n->vdev.lock);
	if (!virtio_dev_ok(&n->vdev)) {
		count(&n->st.rx_dropped_not_ready, 1);
		goto out;
	}
	if (n->pending_count)
		rx_drain(n); /* keep the order */
	if (!n->pending_count && n->vdev.vqs[RX_QUEUE].ready &&
	    rx_one(n, frame, len) != RX_NOBUF)
		goto out;
	if (n->pending_count == NET_PENDING_MAX || !(pf = malloc(sizeof(*pf) + len))) {
		count(&n->st.rx_dropped_full, 1);
		goto out;
	}
	pf->len = len;
	memcpy(pf->data, frame, len);
	n->pending[(n->pending_head + n->pending_count) % NET_PENDING_MAX] = pf;
	if (++n->pending_count == NET_PENDING_MAX)
		set_paused(n, true);
out:
	pthread_mutex_unlock(&n->vdev.lock);
}

static void port_flush(struct net_port *p)
{
	struct virtio_net *n = container_of(p, struct virtio_net, port);

	pthread_mutex_lock(&n->vdev.lock);
	rx_signal(n);
	pthread_mutex_unlock(&n->vdev.lock);
}

static void port_tx_room(struct net_port *p)
{
	struct virtio_net *n = container_of(p, struct virtio_net, port);

	pthread_mutex_lock(&n->vdev.lock);
	if (n->tx_blocked) {
		n->tx_blocked = false;
		virtio_queue_kick(&n->vdev, TX_QUEUE);
	}
	pthread_mutex_unlock(&n->vdev.lock);
}

/* ---- transmit ---- */

/* The chain's readable bytes from skip on, as an iovec. */
static int tx_iov(struct virtio_net *n, const struct virtq_req *req, uint32_t skip)
{
	int niov = 0;

	for (int i = 0; i < req->nsegs; i++) {
		uint32_t len = req->segs[i].len;
		uint8_t *base = req->segs[i].hva;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		n->iov[niov++] = (struct iovec){ base + skip, len - skip };
		skip = 0;
	}
	return niov;
}

/* Sends up to VIRTIO_BUDGET chains; returns true when it stopped at the budget with chains
 * possibly left. While the backend has no room (tx_blocked) it pops nothing. */
static bool net_transmit(struct virtio_net *n)
{
	struct virtio_dev *dev = &n->vdev;
	struct virtq_req *req = &n->tx_req;
	uint32_t hl = n->hdr_len;
	int sent = 0;

	while (!n->tx_blocked && sent < VIRTIO_BUDGET &&
	       virtio_pop(dev, TX_QUEUE, req, VIRTQ_DEV_READS) == 0) {
		uint16_t head = req->head;

		if (req->read_len < hl + NET_MIN_FRAME) {
			count(&n->st.tx_dropped_short, 1);
		} else if (req->read_len - hl > NET_MAX_FRAME) {
			count(&n->st.tx_dropped_too_big, 1);
		} else {
			uint32_t skip = n->be->vnet_hdr ? 0 : hl;
			int niov = tx_iov(n, req, skip);
			int err = n->be->ops->send(n->be, n->iov, niov, req->read_len - skip);

			if (err == -EAGAIN) {
				/* Backpressure: the chain stays the driver's to see in the ring; it is
				 * popped (and checked) anew once the backend says tx_room(). */
				unpop(n, TX_QUEUE, 1);
				n->tx_blocked = true;
				count(&n->st.tx_waits, 1);
				break;
			}
			if (err < 0) {
				count(&n->st.tx_dropped_backend, 1);
			} else {
				count(&n->st.tx_packets, 1);
				count(&n->st.tx_bytes, req->read_len - hl);
			}
		}
		virtio_push(dev, TX_QUEUE, head, 0);
		sent++;
	}
	if (sent)
		virtio_notify_used(dev, TX_QUEUE);
	return sent == VIRTIO_BUDGET;
}

/* ---- virtio_dev_ops ---- */

static bool net_queue_notify(struct virtio_dev *dev, int q)
{
	struct virtio_net *n = container_of(dev, struct virtio_net, vdev);

	if (q == TX_QUEUE)
		return net_transmit(n);
	rx_drain(n); /* new receive buffers: waiting frames can go */
	rx_signal(n);
	return false;
}

static bool net_features_ok(struct virtio_dev *dev, uint64_t f)
{
	(void)dev;
	/* Segmentation offloads need the matching checksum offload (virtio 1.1, 5.1.3.1). */
	if ((f & (F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6))) &&
	    !(f & F(VIRTIO_NET_F_GUEST_CSUM)))
		return false;
	if ((f & (F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6))) &&
	    !(f & F(VIRTIO_NET_F_CSUM)))
		return false;
	return true;
}

static void net_activate(struct virtio_dev *dev)
{
	struct virtio_net *n = container_of(dev, struct virtio_net, vdev);

	n->mrg = virtio_has_feature(dev, VIRTIO_NET_F_MRG_RXBUF);
	n->hdr_len = (virtio_has_feature(dev, VIRTIO_F_VERSION_1) || n->mrg) ?
		     sizeof(struct virtio_net_hdr_v1) : sizeof(struct virtio_net_hdr);
	if (n->be->ops->configure)
		n->be->ops->configure(n->be, n->hdr_len, dev->driver_features);
}

static void net_reset(struct virtio_dev *dev)
{
	struct virtio_net *n = container_of(dev, struct virtio_net, vdev);

	pending_clear(n);
	n->rx_unsignalled = false;
	n->tx_blocked = false; /* a tx_room() still due only kicks an idle queue */
	n->mrg = false;
	n->hdr_len = NET_HDR_MAX;
	set_paused(n, false);
}

void virtio_net_get_stats(struct virtio_dev *dev, struct virtio_net_stats *s)
{
	struct virtio_net *n = container_of(dev, struct virtio_net, vdev);

	s->tx_packets = atomic_load(&n->st.tx_packets);
	s->tx_bytes = atomic_load(&n->st.tx_bytes);
	s->tx_dropped_short = atomic_load(&n->st.tx_dropped_short);
	s->tx_dropped_too_big = atomic_load(&n->st.tx_dropped_too_big);
	s->tx_dropped_backend = atomic_load(&n->st.tx_dropped_backend);
	s->tx_waits = atomic_load(&n->st.tx_waits);
	s->rx_packets = atomic_load(&n->st.rx_packets);
	s->rx_bytes = atomic_load(&n->st.rx_bytes);
	s->rx_dropped_full = atomic_load(&n->st.rx_dropped_full);
	s->rx_dropped_too_big = atomic_load(&n->st.rx_dropped_too_big);
	s->rx_dropped_not_ready = atomic_load(&n->st.rx_dropped_not_ready);
	pthread_mutex_lock(&dev->lock);
	s->rx_pending = n->pending_count;
	pthread_mutex_unlock(&dev->lock);
}

/* ---- snapshots ---- */

#define NET_SNAP_FORMAT 1
#define NET_SNAP_BACKEND 8                 /* bytes of the backend's name */

/* Beyond the core's state (features, which give the header length and mergeable buffers once
 * activate runs again): which network the device was on. The MAC, the backend and a tap's
 * interface must be the ones of the snapshot: the guest's ARP caches, DHCP lease and routes
 * name them. The link is always up. Nothing is ever held between requests (a frame that
 * waits for buffers gives them back, a chain the backend refused goes back to the ring), so
 * there is no drain. Host-side state is not saved: frames waiting for receive buffers are
 * dropped, and --net user's TCP connections and NAT are gone (the guest's sockets time out or
 * get reset); a tap's host side is the host's. */
static void backend_name(const struct virtio_net *n, char name[NET_SNAP_BACKEND])
{
	memset(name, 0, NET_SNAP_BACKEND);
	if (n->be->name)
		memcpy(name, n->be->name, MIN(strlen(n->be->name), (size_t)NET_SNAP_BACKEND - 1));
}

static int net_save(struct virtio_dev *dev, struct snap_writer *w, struct err *e)
{
	struct virtio_net *n = container_of(dev, struct virtio_net, vdev);
	char be[NET_SNAP_BACKEND];

	(void)e;
	backend_name(n, be);
	snap_put_u32(w, NET_SNAP_FORMAT);
	snap_put(w, n->mac, 6);
	snap_put(w, be, sizeof(be));
	snap_put(w, n->ifname, sizeof(n->ifname));
	return 0;
}

static int net_restore(struct virtio_dev *dev, struct snap_cursor *c, struct err *e)
{
	struct virtio_net *n = container_of(dev, struct virtio_net, vdev);
	char be[NET_SNAP_BACKEND], snap_be[NET_SNAP_BACKEND], ifname[IFNAMSIZ];
	uint8_t mac[6];
	uint32_t format = snap_get_u32(c);

	snap_get(c, mac, sizeof(mac));
	snap_get(c, snap_be, sizeof(snap_be));
	snap_get(c, ifname, sizeof(ifname));
	if (c->err)
		return err_set(e, -EINVAL, "snapshot: virtio-net: its state is cut short");
	if (format != NET_SNAP_FORMAT)
		return err_set(e, -EINVAL, "snapshot: virtio-net: unknown state format %u", format);
	if (snap_be[sizeof(snap_be) - 1] || ifname[sizeof(ifname) - 1])
		return err_set(e, -EINVAL, "snapshot: virtio-net: invalid backend");
	backend_name(n, be);
	if (strcmp(be, snap_be))
		return err_set(e, -EINVAL, "snapshot: virtio-net: the snapshot's network was %s, "
			       "this one is %s", snap_be, be);
	if (strcmp(ifname, n->ifname))
		return err_set(e, -EINVAL, "snapshot: virtio-net: the snapshot's tap was %s, this "
			       "one is %s (give ifname=%s)", ifname, n->ifname, ifname);
	/* A default MAC (derived from the --kernel path, which a restore has not) is the
	 * snapshot's; one given with mac= must be it. */
	if (n->mac_given && memcmp(mac, n->mac, 6))
		return err_set(e, -EINVAL, "snapshot: virtio-net: the snapshot's MAC was "
			       "%02x:%02x:%02x:%02x:%02x:%02x, this device's differs", mac[0],
			       mac[1], mac[2], mac[3], mac[4], mac[5]);
	memcpy(n->mac, mac, 6);
	/* The config bytes the core restored are the file's: the device's own are these. */
	memcpy(n->config.mac, n->mac, 6);
	n->config.status = htole16(VIRTIO_NET_S_LINK_UP);
	n->config.max_virtqueue_pairs = htole16(1);
	n->config.mtu = htole16(NET_MTU);
	/* A chain the old backend refused, or a kick unread: served once the loop runs. */
	if (virtio_queue_live(dev, TX_QUEUE))
		virtio_queue_kick(dev, TX_QUEUE);
	if (!strcmp(be, "user"))
		pr_info("virtio-net: restored on a new user network: the guest's connections "
			"are gone");
	return 0;
}

/* ---- construction ---- */

static int net_stats(struct virtio_dev *dev, struct stat_value *out, int max)
{
	struct virtio_net *nd = container_of(dev, struct virtio_net, vdev);
	struct virtio_net_stats st;
	int n;

	virtio_net_get_stats(dev, &st);
	struct stat_value v[] = {
		{ "tx_packets", NULL, st.tx_packets },
		{ "tx_bytes", NULL, st.tx_bytes },
		{ "tx_dropped", NULL, st.tx_dropped_short + st.tx_dropped_too_big +
			st.tx_dropped_backend },
		{ "tx_waits", NULL, st.tx_waits },
		{ "rx_packets", NULL, st.rx_packets },
		{ "rx_bytes", NULL, st.rx_bytes },
		{ "rx_dropped", NULL, st.rx_dropped_full + st.rx_dropped_too_big +
			st.rx_dropped_not_ready },
		/* Last, and only with rules: the backend's text lives as long as the device. */
		{ "hostfwd", nd->be->hostfwd, 0 },
	};
	n = MIN((int)ARRAY_SIZE(v) - !nd->be->hostfwd, max);
	memcpy(out, v, n * sizeof(v[0]));
	return n;
}

static void net_destroy(struct virtio_dev *dev)
{
	struct virtio_net *n = container_of(dev, struct virtio_net, vdev);

	if (n->be)
		n->be->ops->destroy(n->be);
	pending_clear(n);
	virtio_dev_cleanup(&n->vdev);
	free(n);
}

int virtio_net_create_with(const struct virtio_env *env, const struct net_opts *o,
			   struct net_backend *be, struct virtio_dev **out, struct err *e)
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	int err;

	if (!n) {
		be->ops->destroy(be);
		return err_set(e, -ENOMEM, "out of memory");
	}
	n->be = be;
	n->ops = (struct virtio_dev_ops){
		.name = "virtio-net",
		.device_id = VIRTIO_ID_NET,
		.pci_class = 0x020000,
		.features = NET_BASE_FEATURES |
			    (be->vnet_hdr ? be->offloads & NET_OFFLOAD_FEATURES : 0),
		.num_queues = 2,
		.queue_max_size = NET_QUEUE_SIZE,
		/* Up to mtu: speed, duplex and RSS belong to features not offered. */
		.config_size = offsetof(struct virtio_net_config, mtu) + sizeof(n->config.mtu),
		.queue_notify = net_queue_notify,
		.features_ok = net_features_ok,
		.reset = net_reset,
		.activate = net_activate,
		.stats = net_stats,
		.save = net_save,
		.restore = net_restore,
		.destroy = net_destroy,
	};
	memcpy(n->config.mac, o->mac, 6);
	memcpy(n->mac, o->mac, 6);
	n->mac_given = o->mac_set;
	if (o->kind == NET_TAP)
		memcpy(n->ifname, o->ifname, sizeof(n->ifname));
	n->config.status = htole16(VIRTIO_NET_S_LINK_UP);
	n->config.max_virtqueue_pairs = htole16(1);
	n->config.mtu = htole16(NET_MTU);
	n->hdr_len = NET_HDR_MAX;
	n->port = (struct net_port){ .receive = port_receive, .flush = port_flush,
				     .tx_room = port_tx_room };
	err = virtio_dev_init(&n->vdev, env, &n->ops, &n->config);
	if (err) {
		be->ops->destroy(be);
		free(n);
		return err_set(e, err, "virtio-net: cannot set up its queues: %s", strerror(-err));
	}
	be->port = &n->port;
	*out = &n->vdev;
	return 0;
}

int virtio_net_create(const struct virtio_env *env, const struct net_opts *o,
		      struct virtio_dev **out, struct err *e)
{
	struct net_backend *be = NULL;
	int err = -EINVAL;

	switch (o->kind) {
	case NET_NONE:
		return err_set(e, -EINVAL, "no network (--net none)");
	case NET_USER:
		err = net_slirp_create(env->loop, o, &be, e);
		break;
	case NET_TAP:
		err = net_tap_create(env->loop, o->ifname, &be, e);
		break;
	}
	return err ? err : virtio_net_create_with(env, o, be, out, e);
}
