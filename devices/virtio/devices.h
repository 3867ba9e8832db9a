/* Constructors of the virtio device models, and attaching a model to the VM's transport. */
#ifndef MICA_VIRTIO_DEVICES_H
#define MICA_VIRTIO_DEVICES_H

#include "vmm/console.h"
#include "vmm/vm.h"

struct vm;
struct virtio_dev;

struct virtio_dev *virtio_rng_create(struct vm *vm);
struct virtio_dev *virtio_balloon_create(struct vm *vm);
/* out_fd receives what the guest writes to port 0. */
struct virtio_dev *virtio_console_create(struct vm *vm, int out_fd);
struct console_sink virtio_console_sink(struct virtio_dev *dev);
void virtio_console_set_term(struct virtio_dev *dev, struct term *t);

/* Puts the device on the transport the VM was configured with (--transport). */
int virtio_attach(struct vm *vm, struct virtio_dev *dev);
/* Puts the device on a given transport. */
int virtio_attach_to(struct vm *vm, struct virtio_dev *dev, enum virtio_transport_kind kind);

#endif
