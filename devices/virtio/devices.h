/* Constructors of the small virtio device models (blk and net have their own headers). Each
 * returns 0 and the device in *out, not yet attached to a transport (devices/virtio/attach.h),
 * or -errno; the caller owns the device until it is attached (virtio_dev_free). */
#ifndef MICA_VIRTIO_DEVICES_H
#define MICA_VIRTIO_DEVICES_H

#include "vmm/console.h"

struct control;
struct term;
struct virtio_dev;
struct virtio_env;

int virtio_rng_create(const struct virtio_env *env, struct virtio_dev **out);
/* Registers its commands (balloon, balloon-stats) with ctl. */
int virtio_balloon_create(const struct virtio_env *env, struct control *ctl,
			  struct virtio_dev **out);
/* out_fd receives what the guest writes to port 0. */
int virtio_console_create(const struct virtio_env *env, int out_fd, struct virtio_dev **out);
struct console_sink virtio_console_sink(struct virtio_dev *dev);
void virtio_console_set_term(struct virtio_dev *dev, struct term *t);

#endif
