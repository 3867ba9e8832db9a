/* Constructors of the small virtio device models (blk and net have their own headers). Each
 * returns 0 and the device in *out, not yet attached to a transport (devices/virtio/attach.h),
 * or -errno; the caller owns the device until it is attached (virtio_dev_free). */
#ifndef MICA_VIRTIO_DEVICES_H
#define MICA_VIRTIO_DEVICES_H

#include "vmm/console.h"

struct control;
struct outq;
struct term;
struct virtio_dev;
struct virtio_env;

int virtio_rng_create(const struct virtio_env *env, struct virtio_dev **out);
/* Registers its commands (balloon, balloon-stats) with ctl. */
int virtio_balloon_create(const struct virtio_env *env, struct control *ctl,
			  struct virtio_dev **out);
/* virtio-console. tx receives what the guest writes to port 0 (hvc0), with backpressure: a
 * request the queue has no room for waits, and the transmitq with it, until the queue calls
 * back (registered here, so tx must outlive the device). Port 0's input is the terminal's
 * (virtio_console_sink). */
int virtio_console_create(const struct virtio_env *env, struct outq *tx, struct virtio_dev **out);

/* A named port beside port 0 (VIRTIO_CONSOLE_F_MULTIPORT): the guest finds it by name in
 * /sys/class/virtio-ports/vportNpM/name and reads and writes /dev/vportNpM.
 *   in_fd  read by mica (on the event loop, never blocking it; its own open file description
 *          is left as it is) and delivered to the guest while the guest has the port open;
 *          at its end the port's host side disconnects, so that the guest's read() returns 0
 *          once it has read everything. -1: no input. The fd stays the caller's.
 *   out    what the guest writes, with port 0's backpressure (so out must outlive the
 *          device); NULL: dropped.
 * The host side of a port is connected while it has input that has not ended, or else, for
 * an output-only port, always. */
#define VIRTIO_CONSOLE_MAX_PORTS 6
struct console_port {
	const char *name;   /* at most 63 bytes, copied */
	int in_fd;
	struct outq *out;
};

/* The same with nports (at most VIRTIO_CONSOLE_MAX_PORTS) named ports 1..nports; nports 0 is
 * virtio_console_create(): one port, no VIRTIO_CONSOLE_F_MULTIPORT. Here tx may be NULL: port
 * 0's output is then dropped (counted). */
int virtio_console_create_ports(const struct virtio_env *env, struct outq *tx,
				const struct console_port *ports, int nports,
				struct virtio_dev **out);
struct console_sink virtio_console_sink(struct virtio_dev *dev);
void virtio_console_set_term(struct virtio_dev *dev, struct term *t);
/* At exit, after vm_run() (the vCPUs and the loop have stopped): hands what the guest left in
 * every transmitq to its port's output queue, in order, and flushes each queue, waiting for a
 * reader that takes nothing at most idle_ms at a time (< 0: as long as the reader is there, as
 * a process writing to it would). Returns 0, or -ETIMEDOUT when a reader stalled (the rest of
 * its output is dropped). */
int virtio_console_drain(struct virtio_dev *dev, int idle_ms);

#endif
