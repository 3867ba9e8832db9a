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
/* tx receives what the guest writes to port 0, with backpressure: a request the queue has no
 * room for waits, and the transmitq with it, until the queue calls back (registered here, so
 * tx must outlive the device). */
int virtio_console_create(const struct virtio_env *env, struct outq *tx, struct virtio_dev **out);
struct console_sink virtio_console_sink(struct virtio_dev *dev);
void virtio_console_set_term(struct virtio_dev *dev, struct term *t);

#endif
