/* Split virtqueues, device side, hardened against a hostile driver.
 *
 * Every descriptor is read once into a local copy (the guest may rewrite it while we look),
 * every buffer goes through gpa_range(), chains are bounded by the queue size (a loop ends as
 * an error, not a hang), indirect tables are bounded and may not nest, and the avail index may
 * not run more than the queue size ahead. A violation returns -EPROTO with a reason; the
 * caller (the virtio core) puts the device in DEVICE_NEEDS_RESET. */
#ifndef MICA_VIRTQ_H
#define MICA_VIRTQ_H

#include <linux/virtio_ring.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/memory.h"

#define VIRTQ_MAX_SIZE 256
#define VIRTQ_MAX_SEGS VIRTQ_MAX_SIZE

/* Which buffers a device accepts in a chain. Readable ones always precede writable ones. */
enum virtq_dir {
	VIRTQ_DEV_READS,   /* device-readable only (e.g. a console's transmitq) */
	VIRTQ_DEV_WRITES,  /* device-writable only (e.g. rng, a console's receiveq) */
	VIRTQ_DEV_BOTH,    /* readable, then writable (e.g. a block request) */
};

struct virtq_seg {
	void *hva;       /* validated: [hva, hva + len) is guest RAM */
	uint32_t len;
	bool write;      /* device-writable */
};

struct virtq_req {
	uint16_t head;
	uint16_t nsegs;
	uint64_t read_len;   /* bytes in device-readable segments */
	uint64_t write_len;  /* bytes in device-writable segments */
	struct virtq_seg segs[VIRTQ_MAX_SEGS];
};

struct virtq {
	const struct guest_mem *mem;
	uint16_t size;          /* queue size, a power of two, <= VIRTQ_MAX_SIZE */
	bool ready;
	bool event_idx;         /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;          /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail;    /* next avail ring slot the device consumes */
	uint16_t used_idx;      /* the device's copy of used->idx */
	uint16_t signalled_used;/* used_idx when the guest was last interrupted (EVENT_IDX) */
	bool signalled_valid;
};

/* Validates the ring addresses and maps them; on success the queue is ready. */
int virtq_enable(struct virtq *vq, const struct guest_mem *mem, const char **why);
/* Back to the reset state, keeping nothing. */
void virtq_reset(struct virtq *vq, uint16_t size);

/* Takes the next available chain. 0: a request; -ENOENT: nothing available; -EPROTO: the
 * guest broke the rules (*why says how). */
int virtq_pop(struct virtq *vq, struct virtq_req *req, enum virtq_dir dir, const char **why);
/* Returns a chain to the driver with the number of bytes the device wrote into it. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t written);
/* After a batch of pushes: does the driver want an interrupt? (VRING_AVAIL_F_NO_INTERRUPT or
 * used_event, across wrap-around.) */
bool virtq_should_interrupt(struct virtq *vq);
/* Before going idle: ask for a kick on the next buffer (avail_event) and report whether more
 * arrived meanwhile (then the caller must keep popping). */
bool virtq_enable_kicks(struct virtq *vq);

/* Copies between a request's segments and a flat buffer; return bytes copied. */
uint64_t virtq_copy_to_writable(struct virtq_req *req, const void *src, uint64_t len);
uint64_t virtq_copy_from_readable(const struct virtq_req *req, void *dst, uint64_t len);

#endif
