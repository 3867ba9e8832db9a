/* virtio-net (device ID 1): options as the command line gives them, and the constructor. */
#ifndef MICA_VIRTIO_NET_H
#define MICA_VIRTIO_NET_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/err.h"

struct virtio_dev;
struct virtio_env;
struct net_backend;

#define NET_MAX_HOSTFWD 16

enum net_kind {
	NET_NONE,  /* --net none: no network device */
	NET_USER,  /* --net user: libslirp, no privileges */
	NET_TAP,   /* --net tap,ifname=NAME */
};

/* hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT */
struct net_hostfwd {
	bool udp;
	struct in_addr host_addr;   /* INADDR_ANY when not given */
	uint16_t host_port;
	struct in_addr guest_addr;  /* 10.0.2.15 when not given */
	uint16_t guest_port;
};

struct net_opts {
	enum net_kind kind;
	char ifname[IFNAMSIZ];      /* tap */
	bool mac_set;               /* mac= given; else the caller fills mac with a default */
	uint8_t mac[6];
	int nhostfwd;               /* user */
	struct net_hostfwd hostfwd[NET_MAX_HOSTFWD];
};

/* Parses "user[,hostfwd=...]...[,mac=...]", "tap,ifname=NAME[,mac=...]" or "none" (net_opts.c).
 * Returns 0, or -EINVAL with e saying what is wrong. */
int net_parse_opts(const char *spec, struct net_opts *o, struct err *e);

/* Creates the device with o->mac and its backend (on env->loop, so before the loop runs), not
 * yet attached (devices/virtio/attach.h). Returns 0, or -errno with e saying why (NET_NONE
 * makes no device). */
int virtio_net_create(const struct virtio_env *env, const struct net_opts *o,
		      struct virtio_dev **out, struct err *e);
/* The same with a given backend, which the device then owns, even on failure (unit tests plug
 * their own). */
int virtio_net_create_with(const struct virtio_env *env, const struct net_opts *o,
			   struct net_backend *be, struct virtio_dev **out, struct err *e);

/* Counters, for statistics and tests. */
struct virtio_net_stats {
	unsigned long tx_packets, tx_bytes;
	unsigned long tx_dropped_short;    /* chain shorter than the virtio-net header */
	unsigned long tx_dropped_too_big;  /* frame longer than NET_MAX_FRAME */
	unsigned long tx_dropped_backend;  /* the backend failed it (not: had no room, see below) */
	unsigned long tx_waits;            /* times transmit stopped until the backend had room */
	unsigned long rx_packets, rx_bytes;
	unsigned long rx_dropped_full;     /* the pending queue was full */
	unsigned long rx_dropped_too_big;  /* longer than the buffers the guest posted */
	unsigned long rx_dropped_not_ready;/* before DRIVER_OK, or malformed from the backend */
	unsigned long rx_pending;          /* frames now waiting for receive buffers */
};
void virtio_net_get_stats(struct virtio_dev *dev, struct virtio_net_stats *s);

#endif
