/* virtio-console's parts, shared by its three files: console.c (the device, port 0 and the
 * terminal, every port's transmitq, the exit-time drain), console_ctrl.c (the control queues
 * of VIRTIO_CONSOLE_F_MULTIPORT) and console_input.c (a host fd read into a port's receiveq).
 *
 * Queues: port 0's receiveq and transmitq are 0 and 1; with ports, the control receiveq and
 * transmitq are 2 and 3, and port N's receiveq and transmitq 2N + 2 and 2N + 3.
 *
 * Locking: dev->lock guards everything here but the set-up-time fields (marked) and the
 * counters (atomics, read by --stats-json after the run). */
#ifndef MICA_VIRTIO_CONSOLE_DEV_H
#define MICA_VIRTIO_CONSOLE_DEV_H

#include <linux/virtio_console.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "vmm/evloop.h"

#define CON_CTRL_RX   2
#define CON_CTRL_TX   3
#define CON_MAX_PORTS (VIRTIO_CONSOLE_MAX_PORTS + 1) /* port 0 included */
#define CON_BATCH     64 /* requests taken from a queue at once */

/* Requests taken from one queue and not yet given back, oldest first. iov[iov_next, niov) is
 * what is still to send (transmitq) or to fill (receiveq); request i (req_next <= i < nreq)
 * owns the segments before ends[i], lens[i] bytes in all. Gathering stops once more than
 * VIRTQ_MAX_SEGS segments are in, so the last request always fits whole. The segments are
 * guest RAM the device may use until it pushes the request. */
struct con_batch {
	struct iovec iov[2 * VIRTQ_MAX_SEGS];
	int niov, iov_next;
	uint16_t heads[CON_BATCH];
	int ends[CON_BATCH];
	uint64_t lens[CON_BATCH];
	int nreq, req_next;
};

/* How a port's host input fd is read (set up once). */
enum con_in_mode {
	CON_IN_NONE,    /* no input: the guest reads nothing */
	CON_IN_POLL,    /* pipe, FIFO, terminal: our own non-blocking description, in epoll */
	CON_IN_SOCKET,  /* recvmsg(MSG_DONTWAIT) on the fd itself, in epoll */
	CON_IN_PLAIN,   /* regular file, /dev/null...: never waits; epoll refuses it, so an
			 * eventfd of ours stands for "readable" whenever we want to read */
};

/* Control messages a port still has to send, in the order they go: PORT_ADD first, then
 * CONSOLE_PORT, then PORT_OPEN before PORT_NAME, so that by the time the guest sees the name
 * (and opens the port) it knows whether the host side is connected. Bits, not a queue: the
 * outbox is bounded by construction and a later state replaces an earlier one. */
enum {
	CON_SEND_ADD = 1 << 0,
	CON_SEND_CONSOLE = 1 << 1,
	CON_SEND_OPEN = 1 << 2,
	CON_SEND_NAME = 1 << 3,
};

#define CON_NAME_MAX 64

_Static_assert(2 * CON_MAX_PORTS + 2 <= VIRTIO_MAX_QUEUES, "a queue pair per port, and control");

struct virtio_console;

struct con_port {
	/* Set up once: */
	struct virtio_console *c;
	int id, rxq, txq;
	char name[CON_NAME_MAX];     /* "" for port 0 */
	struct outq *out;            /* where the guest's bytes go; NULL: dropped */
	enum con_in_mode in_mode;
	int rfd;                     /* what is read: in_fd or our own description of it */
	bool own_rfd;
	int evfd;                    /* CON_IN_PLAIN: the "readable" eventfd */
	struct ev_handler in_h;      /* rfd (POLL, SOCKET) or evfd (PLAIN), in the loop */
	char stat_names[4][24];

	/* The transmitq: a batch waiting for room in out (tx_waiting). */
	struct con_batch tx;
	bool tx_waiting;
	/* Host input: receive buffers held while the fd has nothing (rx); in_armed: in_h will
	 * fire (a one-shot EPOLLIN, or the eventfd signalled); in_eof: the fd ended for good. */
	struct con_batch rx;
	bool in_armed, in_eof;
	/* The control protocol's view of the port. */
	bool ready;                  /* the guest answered PORT_READY 1 */
	bool guest_open;             /* the guest has it open (its PORT_OPEN) */
	unsigned pending;            /* CON_SEND_* */

	atomic_ulong bytes_in;       /* host to guest */
	atomic_ulong bytes_out;      /* guest to host, taken by out (or dropped without one) */
	atomic_ulong output_waits;   /* times the transmitq stopped for room in out */
};

struct virtio_console {
	struct virtio_dev vdev;
	struct virtio_dev_ops ops;   /* per device: queues and features depend on the ports */
	struct virtio_console_config config;
	struct term *term;
	struct virtq_req req;
	int nports;                  /* port 0 included; set up once */
	bool multiport;              /* set up once */
	struct con_port ports[CON_MAX_PORTS];
	atomic_ulong ctrl_sent;      /* control messages the guest received */
	atomic_ulong ctrl_ignored;   /* guest control messages short, unknown or out of range */
	atomic_ulong ctrl_truncated; /* ours cut short by a too small buffer */
	atomic_ulong bytes_dropped;  /* written by the guest to a port without output */
};

/* ---- console.c: request batches ---- */

/* Appends requests of queue q to b while it has room. Returns the requests now held; *empty
 * tells whether the queue ran dry (kicks re-enabled) or broke. */
int con_batch_gather(struct virtio_dev *dev, int q, struct con_batch *b, struct virtq_req *req,
		     enum virtq_dir dir, bool *empty);
/* Consumes n bytes of the batch's segments, from iov_next on. */
void con_batch_take(struct con_batch *b, size_t n);
/* Moves what is still held to the front, making room to gather more. */
void con_batch_compact(struct con_batch *b);
/* Forgets every request (their ring is gone). */
void con_batch_forget(struct con_batch *b);

static inline int con_batch_held(const struct con_batch *b)
{
	return b->nreq - b->req_next;
}

/* ---- console_ctrl.c ---- */

/* A kick on the control transmitq: the guest's messages. Returns true at the budget. */
bool con_ctrl_receive(struct virtio_console *c);
/* Sends what the ports have pending, as far as the control receiveq has buffers. */
void con_ctrl_flush(struct virtio_console *c);
/* Whether the host side of p is connected (PORT_OPEN's value). */
bool con_host_open(const struct con_port *p);
/* p's host side changed (its input ended): tell the guest. */
void con_ctrl_host_changed(struct con_port *p);

/* ---- console_input.c ---- */

/* Sets up reading in_fd for p (-1: none). Returns 0 or -errno. */
int con_input_init(struct con_port *p, struct evloop *loop, int in_fd);
void con_input_destroy(struct con_port *p, struct evloop *loop);
/* The guest posted receive buffers or opened the port: have the loop read in_fd if it may.
 * Any thread; never reads itself. */
void con_input_want(struct con_port *p);
/* The receiveq is gone (reset, disabled): drop the buffers held. */
void con_input_forget(struct con_port *p);

#endif
