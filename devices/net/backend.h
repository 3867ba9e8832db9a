/* A network backend: where virtio-net's frames go and come from. The device model sees only
 * this interface (it never knows slirp from tap); a backend sees only the device's port.
 *
 * Threads and locks:
 *   - send(), configure() and set_rx_paused() are called with the device lock held, from the
 *     event-loop thread or (legacy PCI notifications without an ioeventfd) a vCPU thread. They
 *     never call back into the port: a backend that must hand a frame to code that may answer
 *     at once (libslirp) copies it and hands it over later, from the loop.
 *   - port->receive(), port->flush() and port->tx_room() are called from the event-loop thread
 *     with no device lock held (they take it), and never from inside one of the calls above.
 *     So the device lock is always taken before a backend's own locks, never after.
 *
 * Transmit backpressure: send() returns -EAGAIN when it cannot take the frame now. The device
 * then keeps the frame (its chain stays in the ring), sends nothing more, and waits for the
 * backend to call port->tx_room() once it can take frames again. A backend that returned
 * -EAGAIN must call tx_room() later (once, after room appeared; an extra call is harmless). */
#ifndef MICA_NET_BACKEND_H
#define MICA_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/virtio/net.h"

struct evloop;
struct net_backend;

/* The device side, as a backend sees it. */
struct net_port {
	/* One frame from the network (preceded by the virtio-net header when be->vnet_hdr). */
	void (*receive)(struct net_port *p, const void *frame, size_t len);
	/* After a batch of receive() calls: interrupt the guest if anything was delivered. */
	void (*flush)(struct net_port *p);
	/* The backend refused a frame (send() returned -EAGAIN) and can take frames again: the
	 * device resumes transmitting (from the loop, after the handlers already ready). */
	void (*tx_room)(struct net_port *p);
};

struct net_backend_ops {
	/* One frame for the network: iov holds len bytes (with the virtio-net header first when
	 * be->vnet_hdr), in guest memory: the backend must be done with it when send() returns
	 * (copy it to keep it). Must not block. Returns 0 (taken), -EAGAIN (no room now: nothing
	 * taken, tx_room() follows), or another -errno (the frame was dropped). */
	int (*send)(struct net_backend *be, const struct iovec *iov, int iovcnt, size_t len);
	/* Optional: the driver's features are known (at DRIVER_OK): the header size in use and
	 * the acked VIRTIO_NET_F_* bits (a backend with offloads enables the GUEST_* ones). */
	void (*configure)(struct net_backend *be, size_t hdr_len, uint64_t features);
	/* Optional: the device cannot hold more frames (paused) or can again. A backend that can
	 * make the network wait (tap) stops reading meanwhile; the others let frames be dropped. */
	void (*set_rx_paused)(struct net_backend *be, bool paused);
	void (*destroy)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
	const char *name;        /* "user", "tap", for messages */
	bool vnet_hdr;           /* frames carry a virtio-net header both ways */
	uint64_t offloads;       /* VIRTIO_NET_F_* offload bits it can serve (needs vnet_hdr) */
	struct net_port *port;   /* set by the device before any frame flows */
	/* The host ports forwarded into the guest as bound (the port the kernel chose for a rule
	 * asking for port 0), "tcp:HOSTADDR:PORT-GUESTADDR:PORT[,...]"; NULL when none. Set at
	 * creation, owned by the backend and unchanged until destroy(): --stats-json reads it
	 * after the run. */
	const char *hostfwd;
};

/* --net user: libslirp on loop (10.0.2.0/24, host 10.0.2.2, DHCP from 10.0.2.15, DNS
 * 10.0.2.3) with o's hostfwd rules; frames from the guest wait in a bounded ring for the loop.
 * Each rule's host socket is bound here, and be->hostfwd says which ports they got; a rule
 * with host port 0 gets a free port from the kernel, printed on stderr at once as
 * "mica: hostfwd tcp 0.0.0.0:34567 -> guest 10.0.2.15:22" (fixed ports only with -v).
 * Returns 0, or -errno with e saying why. */
int net_slirp_create(struct evloop *loop, const struct net_opts *o, struct net_backend **out,
		     struct err *e);
/* --net tap,ifname=NAME: an existing tap (or a new one, with CAP_NET_ADMIN); a full interface
 * queue makes send() say -EAGAIN until the fd is writable. */
int net_tap_create(struct evloop *loop, const char *ifname, struct net_backend **out,
		   struct err *e);

#endif
