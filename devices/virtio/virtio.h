/* The virtio core shared by every device model and every transport.
 *
 * A device model is one file: a struct virtio_dev_ops (ID, features, config, queues, handlers)
 * and a constructor taking a struct virtio_env (guest RAM and the event loop: all a model may
 * use of the machine). It never knows its transport: it raises "used buffers" and "config
 * changed" through virtio_notify_used() / virtio_config_changed(), and touches guest memory
 * only through virtio_pop()/virtio_push() and the segments they hand out. A transport (mmio.c,
 * pci_modern.c, pci_legacy.c) maps its registers onto the virtio_* calls below and implements
 * struct virtio_transport_ops.
 *
 * Threads and locks: who owns what
 *
 *   dev->lock         One lock per device guards ALL of its guest-visible state: status,
 *                     features, ISR, config space, every queue's size, addresses and ring
 *                     state, the transport's register file (selectors, MSI-X vectors, legacy
 *                     PFNs) and the model's own state. Every transport register access (vCPU
 *                     threads) runs entirely under it, so a selector the guest writes is read
 *                     once, checked and used under the same lock; queue handlers (event-loop
 *                     thread), backend completions and control commands take it too. Every
 *                     virtio_* function below expects it held, except the three marked
 *                     "takes the lock".
 *   interrupts        are raised with dev->lock held (virtio_notify_used, config changes), and
 *                     the ISR is read-and-cleared with it held, so raising an interrupt and
 *                     acknowledging it never interleave (no lost INTx).
 *   lock order        pci bus lock -> dev->lock -> MSI-X lock -> INTx lock, machine leaf locks.
 *                     Nothing takes dev->lock while holding a lock to the right of it.
 *
 * Work budget: a model's queue_notify handles at most VIRTIO_BUDGET requests and returns true
 * when it stopped with work left; the core then signals the queue's kick again, so the loop
 * serves every other ready handler before it comes back (one flooded queue cannot starve the
 * others). */
#ifndef MICA_VIRTIO_H
#define MICA_VIRTIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtq.h"
#include "vmm/evloop.h"
#include "vmm/stats.h"

struct err;
struct guest_mem;
struct snap_cursor;
struct snap_writer;
struct virtio_dev;

/* virtio-console's 6 named ports take 16 (a pair per port, port 0's and the control pair). */
#define VIRTIO_MAX_QUEUES 16
#define VIRTIO_ISR_QUEUE  0x1
#define VIRTIO_ISR_CONFIG 0x2
/* Requests a queue handler serves per wake-up before yielding to the rest of the loop: a quarter
 * of a full ring, so a flooded queue gives way four times per ring, at the cost of one eventfd
 * write each time. */
#define VIRTIO_BUDGET     64

/* What a device model may use of the machine. */
struct virtio_env {
	struct guest_mem *mem;
	struct evloop *loop;
};

struct virtio_dev_ops {
	const char *name;            /* "virtio-rng", for messages and statistics */
	uint32_t device_id;          /* VIRTIO_ID_* */
	uint32_t pci_class;          /* PCI class code; 0: "other" (0x00ff00) */
	uint64_t features;           /* device-specific features offered */
	uint16_t num_queues;
	uint16_t queue_max_size;
	uint32_t config_size;        /* bytes of dev->config */
	/* A queue was notified (DRIVER_OK set, queue ready). Returns true when it stopped at its
	 * budget with requests left (the core notifies it again later). */
	bool (*queue_notify)(struct virtio_dev *dev, int queue);
	/* Optional: refuse a feature combination the device cannot serve. */
	bool (*features_ok)(struct virtio_dev *dev, uint64_t acked);
	/* Optional: the driver wrote the device's config space (bytes already stored). */
	void (*config_written)(struct virtio_dev *dev, uint32_t off, uint32_t len);
	/* Optional: the device was reset; drop in-flight state. */
	void (*reset)(struct virtio_dev *dev);
	/* Optional: queue q is being disabled: finish or drop its in-flight requests so nothing
	 * lands in its ring afterwards. */
	void (*queue_disable)(struct virtio_dev *dev, int q);
	/* Optional: DRIVER_OK was set, or a device whose status has DRIVER_OK was restored from
	 * a snapshot (after ops->restore; see virtio_dev_restore). */
	void (*activate)(struct virtio_dev *dev);
	/* Optional: the model's own counters for --stats-json (after the VM stopped). */
	int (*stats)(struct virtio_dev *dev, struct stat_value *out, int max);
	/* Optional, for snapshots (snapshot/snapshot.h; dev->lock held, every vCPU paused): finish
	 * the requests the model has taken from its queues but not yet returned (a backend's
	 * in-flight I/O), so that nothing is in flight when the state is saved. */
	void (*drain)(struct virtio_dev *dev);
	/* Optional: the model's own state after the core's (virtio_dev_save). A model without
	 * save has none beyond the core's; one that cannot be saved now returns -errno with e
	 * filled (-EBUSY). */
	int (*save)(struct virtio_dev *dev, struct snap_writer *w, struct err *e);
	/* Reads back what save wrote, after the core's state is restored; validates it. */
	int (*restore)(struct virtio_dev *dev, struct snap_cursor *c, struct err *e);
	/* Frees the model; its transport is gone by then. */
	void (*destroy)(struct virtio_dev *dev);
};

struct virtio_transport_ops {
	/* Delivers an interrupt for `queue`'s used buffers or, with queue -1, a config change
	 * (dev->isr already updated). */
	void (*interrupt)(struct virtio_dev *dev, int queue);
	/* Frees the transport's state (at virtio_dev_free()). */
	void (*destroy)(struct virtio_dev *dev);
};

/* A queue's notification eventfd, watched by the event loop. The transport registers it with
 * KVM as an ioeventfd at its notify address; a kick then reaches the model without any exit
 * to mica's vCPU threads. */
struct virtio_kick {
	struct ev_handler h;        /* h.fn is set once the eventfd exists */
	struct virtio_dev *dev;
	int queue;
};

struct virtio_stats {
	atomic_ulong notifies;            /* queue notifications handled */
	atomic_ulong notifies_ignored;    /* before DRIVER_OK, or on a queue not ready */
	atomic_ulong notifies_userspace;  /* that exited to a vCPU thread (no ioeventfd) */
	atomic_ulong renotifies;          /* handler passes that stopped at the work budget */
	atomic_ulong interrupts;          /* used-buffer interrupts raised */
	atomic_ulong interrupts_suppressed; /* skipped thanks to EVENT_IDX / NO_INTERRUPT */
	atomic_ulong violations;          /* guest rule breaks that needed a reset */
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	struct virtio_env env;
	pthread_mutex_t lock;         /* everything below; see the table at the top */

	const struct virtio_transport_ops *transport;
	void *transport_priv;
	bool legacy;                  /* driven through a legacy (0.9.5) interface: 32-bit features */

	uint8_t status;
	uint8_t isr;                  /* VIRTIO_ISR_* pending, cleared by the driver's read/ack */
	uint64_t driver_features;
	uint32_t early_kicks;         /* queues kicked before DRIVER_OK, served when it is set */
	uint32_t config_generation;
	uint8_t *config;              /* ops->config_size bytes, little-endian, owned by the model */
	struct virtq vqs[VIRTIO_MAX_QUEUES];
	uint16_t queue_size[VIRTIO_MAX_QUEUES]; /* as the driver set it (or the maximum) */
	struct virtio_kick kicks[VIRTIO_MAX_QUEUES];
	struct virtio_stats stats;
};

/* ---- life cycle ---- */

/* Initializes the core part of a device model and creates its queues' kick eventfds on the
 * event loop. Returns 0 or -errno. */
int virtio_dev_init(struct virtio_dev *dev, const struct virtio_env *env,
		    const struct virtio_dev_ops *ops, void *config);
/* Undoes virtio_dev_init() (for a model's destroy op). */
void virtio_dev_cleanup(struct virtio_dev *dev);
/* Frees a device: its transport, then the model. Takes a void * to serve as a destructor for
 * machine_own(). */
void virtio_dev_free(void *dev);
/* The common counters and then the model's own, for --stats-json (a stats_fn). */
int virtio_dev_stats(void *dev, struct stat_value *out, int max);

/* ---- for transports: register semantics (dev->lock held) ---- */

uint64_t virtio_offered_features(const struct virtio_dev *dev);
/* Device status writes: 0 resets; FEATURES_OK and DRIVER_OK are checked. */
void virtio_write_status(struct virtio_dev *dev, uint8_t status);
void virtio_set_driver_features(struct virtio_dev *dev, uint32_t word, uint32_t value);
void virtio_config_read(struct virtio_dev *dev, uint32_t off, void *data, uint32_t len);
void virtio_config_write(struct virtio_dev *dev, uint32_t off, const void *data, uint32_t len);
/* Queue q's size, if q exists and is not enabled and size is a power of two up to the
 * maximum; otherwise nothing changes. */
void virtio_queue_set_size(struct virtio_dev *dev, uint32_t q, uint32_t size);
/* In this order: virtio-mmio derives it from its register offsets. */
enum virtio_ring { VIRTIO_RING_DESC, VIRTIO_RING_AVAIL, VIRTIO_RING_USED };
/* Sets the bits of mask in one ring address of queue q, unless the queue is live or does not
 * exist (such writes are dropped). */
void virtio_queue_set_addr(struct virtio_dev *dev, uint32_t q, enum virtio_ring ring,
			   uint64_t value, uint64_t mask);
/* A legacy queue: the three rings in one block at base, the used ring aligned to align (a
 * power of two; anything else makes the rings fail validation), and the queue enabled. */
void virtio_queue_set_legacy(struct virtio_dev *dev, uint32_t q, uint64_t base, uint64_t align);
/* Enables or disables a queue whose size and addresses are set. */
void virtio_queue_set_ready(struct virtio_dev *dev, uint32_t q, bool ready);
/* A notification that exited to a vCPU thread (no ioeventfd matched). */
void virtio_queue_notify_userspace(struct virtio_dev *dev, uint32_t q);
/* The driver read (and so acknowledged) the ISR: returns it and clears it. */
uint8_t virtio_isr_read_clear(struct virtio_dev *dev);

/* The kick eventfds, for the transport to register as ioeventfds. */
static inline int virtio_kick_fd(const struct virtio_dev *dev, int q)
{
	return dev->kicks[q].h.fd;
}

/* ---- for device models (dev->lock held) ---- */

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
bool virtio_dev_ok(const struct virtio_dev *dev); /* DRIVER_OK and not NEEDS_RESET */
bool virtio_has_feature(const struct virtio_dev *dev, unsigned bit);
/* Whether queue q is enabled and may be served (DRIVER_OK, not NEEDS_RESET). */
bool virtio_queue_live(const struct virtio_dev *dev, int q);
/* Runs queue q's handler again from the event loop (a model that stopped at its budget
 * outside queue_notify, e.g. after backpressure lifted). */
void virtio_queue_kick(struct virtio_dev *dev, int q);

/* ---- snapshots (for transports; dev->lock held, every vCPU paused) ----
 *
 * The core's state is the device ID (a restore into another kind of device is refused), status,
 * ISR, the driver's features, the config generation
 * and the ops->config_size config bytes, the kicks held back before DRIVER_OK, and per queue its
 * size, ready flag, ring addresses, last_avail, used_idx, the EVENT_IDX interrupt bookkeeping
 * and the negotiated ring features; then the model's own (ops->save / ops->restore).
 *
 * virtio_dev_restore() runs on a device just created from the same options (reset state), after
 * the transport restored its own registers and dev->legacy (which interface the driver speaks
 * is the transport's to save and check), and in this order: reads and checks the core's
 * state (every value as hostile as a guest write: queue sizes, feature bits against the offer,
 * status bits against each other), re-enables each ready queue through virtq_enable (which
 * checks its rings against guest RAM again) and puts back its indices, then calls
 * ops->restore; then, if the status has DRIVER_OK, ops->activate (a model that starts a
 * backend or queues work at DRIVER_OK does it again here: activate must cope with being called
 * on restored state, not only on a fresh DRIVER_OK), and signals each live queue's kick once
 * (a kick the old process had not served yet is lost with it; a spurious one is harmless).
 * The config bytes are restored as saved: a model whose config holds a value it relies on
 * (a count, a size) must check it in ops->restore. */

/* Calls ops->drain, if any: nothing the model took from a queue is still in flight after it. */
void virtio_dev_drain(struct virtio_dev *dev);
/* Writes the core's state, then the model's (ops->save). The transport calls
 * virtio_dev_drain() first. */
int virtio_dev_save(struct virtio_dev *dev, struct snap_writer *w, struct err *e);
/* Reads back what virtio_dev_save() wrote (see above); -EINVAL or -EBADMSG with e filled
 * ("snapshot: <device>: ...") on anything a running device could not have been in. */
int virtio_dev_restore(struct virtio_dev *dev, struct snap_cursor *c, struct err *e);

/* ---- takes the lock ---- */

/* A queue notification arrived (event-loop thread: the kick eventfd). */
void virtio_queue_notified(struct virtio_dev *dev, int q);

#endif
