/* --net tap,ifname=NAME: a Linux tap interface (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR).
 *
 * Frames carry a virtio-net header both ways, in the guest's own layout (TUNSETVNETHDRSZ to
 * the header size the driver negotiated), so checksum and segmentation offloads pass through
 * untouched: the device offers CSUM / HOST_TSO4/6 (the kernel takes such frames as they are)
 * and GUEST_CSUM / GUEST_TSO4/6 (enabled with TUNSETOFFLOAD once the driver acks them).
 *
 * The fd is nonblocking and watched for EPOLLIN on the event loop, except while the device
 * holds as many frames as it will (set_rx_paused): then the kernel queues (and in the end
 * drops) them, and the loop does not spin. At most TAP_BATCH frames are read per wake-up. A
 * write that finds the interface's queue full (EAGAIN) is refused to the device, which keeps
 * the frame; the fd is then watched for EPOLLOUT too, until writable, when the device hears
 * port->tx_room(). Opening needs CAP_NET_ADMIN, unless the interface already exists and
 * belongs to the user (ip tuntap add NAME mode tap user USER). */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/net/backend.h"
#include "vmm/evloop.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define TAP_BATCH 64                      /* frames read per wake-up before others get a turn */
#define TAP_BUF (12 + 65550 + 64)         /* header + the largest frame the device takes, and
					   * some: a longer one shows as such and is dropped */

struct tap_backend {
	struct net_backend be;
	struct evloop *loop;
	struct ev_handler h;
	int fd;
	char ifname[IFNAMSIZ];
	atomic_bool paused;               /* set_rx_paused(); also read by the reading loop */
	pthread_mutex_t watch_lock;       /* the three below, from any thread; a leaf lock */
	bool dead;                        /* reading failed for good: no more EPOLLIN */
	bool tx_waiting;                  /* a write met EAGAIN: EPOLLOUT until writable */
	uint32_t watched;                 /* events registered with the loop (0: none) */
	uint8_t buf[TAP_BUF];
};

/* Brings the loop's watch in line with paused / dead / tx_waiting (watch_lock held). */
static void update_watch(struct tap_backend *t)
{
	uint32_t want = (atomic_load(&t->paused) || t->dead ? 0 : EPOLLIN) |
			(t->tx_waiting ? EPOLLOUT : 0);
	int err;

	if (want == t->watched)
		return;
	if (!t->watched)
		err = evloop_add(t->loop, t->fd, want, &t->h);
	else if (!want)
		err = evloop_del(t->loop, &t->h);
	else
		err = evloop_mod(t->loop, &t->h, want);
	if (!err)
		t->watched = want;
	else
		pr_warn("net tap %s: epoll: %s", t->ifname, strerror(-err));
}

static void tap_ready(struct ev_handler *h, uint32_t events)
{
	struct tap_backend *t = container_of(h, struct tap_backend, h);
	struct net_port *port = t->be.port;
	bool room = false;
	int got = 0;

	if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
		/* Writable (or broken: the next write fails for good and the frame is dropped). */
		pthread_mutex_lock(&t->watch_lock);
		room = t->tx_waiting;
		t->tx_waiting = false;
		update_watch(t);
		pthread_mutex_unlock(&t->watch_lock);
		if (room && port)
			port->tx_room(port);
	}
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	for (int i = 0; i < TAP_BATCH && !atomic_load(&t->paused); i++) {
		ssize_t r = read(t->fd, t->buf, sizeof(t->buf));

		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			/* The interface went away (EBADFD) or worse: stop watching, or the loop
			 * would spin on the error. */
			pr_err("net tap %s: read: %s: no more frames from the network", t->ifname,
			       strerror(errno));
			pthread_mutex_lock(&t->watch_lock);
			t->dead = true;
			update_watch(t);
			pthread_mutex_unlock(&t->watch_lock);
			break;
		}
		if (r == 0 || !port)
			continue;
		port->receive(port, t->buf, (size_t)r);
		got++;
	}
	if (got)
		port->flush(port);
}

static int tap_send(struct net_backend *be, const struct iovec *iov, int iovcnt, size_t len)
{
	struct tap_backend *t = container_of(be, struct tap_backend, be);
	ssize_t w;

	(void)len;
	do
		w = writev(t->fd, iov, iovcnt);
	while (w < 0 && errno == EINTR);
	if (w >= 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		/* The interface's queue is full: the device keeps the frame until EPOLLOUT. */
		pthread_mutex_lock(&t->watch_lock);
		t->tx_waiting = true;
		update_watch(t);
		pthread_mutex_unlock(&t->watch_lock);
		return -EAGAIN;
	}
	return -errno;
}

static void tap_configure(struct net_backend *be, size_t hdr_len, uint64_t features)
{
	struct tap_backend *t = container_of(be, struct tap_backend, be);
	int sz = (int)hdr_len;
	unsigned off = 0;

	if (features & (1ULL << VIRTIO_NET_F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		if (features & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (features & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
			off |= TUN_F_TSO6;
	}
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &sz) < 0)
		pr_warn("net tap %s: TUNSETVNETHDRSZ %d: %s", t->ifname, sz, strerror(errno));
	if (ioctl(t->fd, TUNSETOFFLOAD, off) < 0)
		pr_warn("net tap %s: TUNSETOFFLOAD 0x%x: %s", t->ifname, off, strerror(errno));
}

static void tap_set_rx_paused(struct net_backend *be, bool paused)
{
	struct tap_backend *t = container_of(be, struct tap_backend, be);

	atomic_store(&t->paused, paused);
	pthread_mutex_lock(&t->watch_lock);
	update_watch(t);
	pthread_mutex_unlock(&t->watch_lock);
}

static void tap_destroy(struct net_backend *be)
{
	struct tap_backend *t = container_of(be, struct tap_backend, be);

	if (t->fd >= 0) {
		pthread_mutex_lock(&t->watch_lock);
		t->dead = true;
		t->tx_waiting = false;
		update_watch(t);
		pthread_mutex_unlock(&t->watch_lock);
		close(t->fd);
	}
	pthread_mutex_destroy(&t->watch_lock);
	free(t);
}

static const struct net_backend_ops tap_ops = {
	.send = tap_send,
	.configure = tap_configure,
	.set_rx_paused = tap_set_rx_paused,
	.destroy = tap_destroy,
};

int net_tap_create(struct evloop *loop, const char *ifname, struct net_backend **out,
		   struct err *e)
{
	struct tap_backend *t = calloc(1, sizeof(*t));
	struct ifreq ifr;
	unsigned features = 0;
	int sz = (int)sizeof(struct virtio_net_hdr_v1);

	int err;

	if (!t)
		return err_set(e, -ENOMEM, "out of memory");
	t->be = (struct net_backend){
		.ops = &tap_ops,
		.name = "tap",
		.vnet_hdr = true,
		.offloads = (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_CSUM) |
			    (1ULL << VIRTIO_NET_F_HOST_TSO4) | (1ULL << VIRTIO_NET_F_HOST_TSO6) |
			    (1ULL << VIRTIO_NET_F_GUEST_TSO4) | (1ULL << VIRTIO_NET_F_GUEST_TSO6),
	};
	t->loop = loop;
	t->h.fn = tap_ready;
	pthread_mutex_init(&t->watch_lock, NULL);
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifname);

	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		err = err_set(e, -errno, "cannot open tap %s: /dev/net/tun: %s (needs "
			      "CAP_NET_ADMIN or an existing tap owned by you)", t->ifname,
			      strerror(errno));
		goto fail;
	}
	if (ioctl(t->fd, TUNGETFEATURES, &features) < 0 || !(features & IFF_VNET_HDR)) {
		err = err_set(e, -ENOTSUP, "cannot open tap %s: the kernel has no IFF_VNET_HDR",
			      t->ifname);
		goto fail;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, t->ifname, sizeof(ifr.ifr_name));
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		err = err_set(e, -errno, "cannot open tap %s: %s (needs CAP_NET_ADMIN or an "
			      "existing tap owned by you)", t->ifname,
			      errno == EINVAL ? "not a tap interface (a tun, or another kind?)"
			      : strerror(errno));
		goto fail;
	}
	/* Until the driver says otherwise: the modern header, and no offloads towards it. */
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &sz) < 0 || ioctl(t->fd, TUNSETOFFLOAD, 0U) < 0) {
		err = err_set(e, -errno, "cannot set up tap %s: %s", t->ifname, strerror(errno));
		goto fail;
	}
	pthread_mutex_lock(&t->watch_lock);
	update_watch(t);
	pthread_mutex_unlock(&t->watch_lock);
	if (!t->watched) {
		err = err_set(e, -EIO, "cannot watch tap %s on the event loop", t->ifname);
		goto fail;
	}
	*out = &t->be;
	return 0;
fail:
	tap_destroy(&t->be);
	return err;
}
