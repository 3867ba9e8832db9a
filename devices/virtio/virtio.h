/* The virtio core shared by every device model and both transports.
 *
 * A device model is one file: a struct virtio_dev_ops (ID, features, config, queues, handlers)
 * and a constructor. It never knows its transport: it raises "used buffers" and "config
 * changed" through virtio_notify_used() / virtio_config_changed(), and touches guest memory
 * only through virtq_pop()/virtq_push() and the segments they hand out. A transport (mmio.c,
 * later pci.c) maps its registers onto the calls below and implements virtio_transport_ops. */
#ifndef MICA_VIRTIO_H
#define MICA_VIRTIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtq.h"
#include "vmm/evloop.h"

struct vm;
struct virtio_dev;

#define VIRTIO_MAX_QUEUES 8
#define VIRTIO_ISR_QUEUE  0x1
#define VIRTIO_ISR_CONFIG 0x2

struct virtio_dev_ops {
	const char *name;            /* "virtio-rng", for messages */
	uint32_t device_id;          /* VIRTIO_ID_* */
	uint64_t features;           /* device-specific features offered */
	uint16_t num_queues;
	uint16_t queue_max_size;
	uint32_t config_size;        /* bytes of dev->config */
	/* A queue was notified (event-loop thread, device lock held, DRIVER_OK set). */
	void (*queue_notify)(struct virtio_dev *dev, int queue);
	/* Optional: refuse a feature combination the device cannot serve. */
	bool (*features_ok)(struct virtio_dev *dev, uint64_t acked);
	/* Optional: the driver wrote the device's config space (bytes already stored). */
	void (*config_written)(struct virtio_dev *dev, uint32_t off, uint32_t len);
	/* Optional: the device was reset (device lock held); drop in-flight state. */
	void (*reset)(struct virtio_dev *dev);
	/* Optional: queue q is being disabled (device lock held): finish or drop its in-flight
	 * requests so nothing lands in its ring afterwards. */
	void (*queue_disable)(struct virtio_dev *dev, int q);
	/* Optional: DRIVER_OK was set (device lock held). */
	void (*activate)(struct virtio_dev *dev);
};

struct virtio_transport_ops {
	/* Deliver an interrupt for `queue` (used buffers) or, with queue -1, a config change. */
	void (*interrupt)(struct virtio_dev *dev, int queue);
};

/* A queue's notification eventfd, watched by the event loop. The transport registers it with
 * KVM as an ioeventfd at its notify address; a kick then reaches virtio_queue_notified()
 * without any exit to mica's vCPU threads. */
struct virtio_kick {
	struct ev_handler h;        /* h.fn is set once the eventfd exists */
	struct virtio_dev *dev;
	int queue;
};

struct virtio_stats {
	atomic_ulong notifies;            /* queue notifications handled */
	atomic_ulong notifies_ignored;    /* before DRIVER_OK, or on a queue not ready */
	atomic_ulong notifies_userspace;  /* that exited to a vCPU thread (no ioeventfd) */
	atomic_ulong interrupts;          /* used-buffer interrupts raised */
	atomic_ulong interrupts_suppressed; /* skipped thanks to EVENT_IDX / NO_INTERRUPT */
	atomic_ulong violations;          /* guest rule breaks that needed a reset */
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	struct vm *vm;
	pthread_mutex_t lock;         /* registers, queues and device state */

	/* Transport state, set by the transport. */
	const struct virtio_transport_ops *transport;
	void *transport_priv;
	bool legacy;                  /* a legacy (virtio 0.9.5) transport: 32-bit features */

	uint8_t status;
	uint64_t driver_features;
	uint32_t early_kicks;         /* queues kicked before DRIVER_OK, served when it is set */
	uint32_t config_generation;
	atomic_uint isr;
	uint8_t *config;              /* ops->config_size bytes, little-endian, owned by the model */
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	uint16_t queue_size[VIRTIO_MAX_QUEUES]; /* as the driver set it (or the maximum) */
	struct virtio_stats stats;
};

/* Initializes the core part of a device model. */
void virtio_dev_init(struct virtio_dev *dev, struct vm *vm, const struct virtio_dev_ops *ops,
		     void *config);
void virtio_dev_destroy(struct virtio_dev *dev);

/* Features the device offers, including the transport-independent ones. */
uint64_t virtio_offered_features(const struct virtio_dev *dev);
bool virtio_has_feature(const struct virtio_dev *dev, unsigned bit);

/* Register semantics shared by the transports; all take the device lock. */
uint8_t virtio_get_status(struct virtio_dev *dev);
void virtio_set_status(struct virtio_dev *dev, uint8_t status);
void virtio_reset(struct virtio_dev *dev);
void virtio_set_driver_features(struct virtio_dev *dev, unsigned word, uint32_t value);
void virtio_config_read(struct virtio_dev *dev, uint32_t off, void *data, uint32_t len);
void virtio_config_write(struct virtio_dev *dev, uint32_t off, const void *data, uint32_t len);
/* Enables or disables a queue whose size and addresses the transport has set. */
void virtio_queue_set_ready(struct virtio_dev *dev, int q, bool ready);

/* Creates queue q's kick eventfd and adds it to the VM's event loop. */
int virtio_kick_init(struct virtio_kick *k, struct virtio_dev *dev, int q);
void virtio_kick_close(struct virtio_kick *k);

/* A queue notification arrived (event-loop thread). */
void virtio_queue_notified(struct virtio_dev *dev, int q);

/* For device models, with the device lock held: */
/* Pops the next request, putting the device in DEVICE_NEEDS_RESET on a violation. Returns 0,
 * -ENOENT (nothing more, kicks re-enabled) or -EPROTO (the device is now broken). */
int virtio_pop(struct virtio_dev *dev, int q, struct virtq_req *req, enum virtq_dir dir);
void virtio_push(struct virtio_dev *dev, int q, uint16_t head, uint32_t written);
/* After a batch of pushes: interrupts the driver if it wants one. */
void virtio_notify_used(struct virtio_dev *dev, int q);
/* The device changed its config: bump the generation and interrupt. */
void virtio_config_changed(struct virtio_dev *dev);
/* The guest broke the protocol: DEVICE_NEEDS_RESET, a config interrupt, and a message. */
void virtio_dev_fail(struct virtio_dev *dev, const char *why);
/* The same, for a device model that holds the device lock (in queue_notify). */
void virtio_dev_fail_locked(struct virtio_dev *dev, const char *why);
bool virtio_dev_ok(const struct virtio_dev *dev); /* DRIVER_OK and not NEEDS_RESET */

#endif
