#include "devices/virtio/virtq.h"

#include <errno.h>
#include <string.h>

#include "vmm/util.h"

#define VRING_DESC_SIZE sizeof(struct vring_desc)

static inline uint16_t load_acquire16(const volatile uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline uint16_t load_once16(const volatile uint16_t *p)
{
	return *p;
}

void virtq_reset(struct virtq *vq, uint16_t size)
{
	memset(vq, 0, sizeof(*vq));
	vq->size = size;
}

int virtq_enable(struct virtq *vq, const struct guest_mem *mem, const char **why)
{
	uint64_t n = vq->size;

	if (!n || n > VIRTQ_MAX_SIZE || (n & (n - 1))) {
		*why = "queue size is not a power of two within the maximum";
		return -EPROTO;
	}
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3)) {
		*why = "ring address misaligned (desc 16, avail 2, used 4 bytes)";
		return -EPROTO;
	}
	/* Both rings include the event word after the ring proper. */
	vq->desc = gpa_range(mem, vq->desc_gpa, n * VRING_DESC_SIZE);
	vq->avail = gpa_range(mem, vq->avail_gpa, 6 + 2 * n);
	vq->used = gpa_range(mem, vq->used_gpa, 6 + 8 * n);
	if (!vq->desc || !vq->avail || !vq->used) {
		*why = "a ring lies outside guest RAM";
		vq->desc = NULL;
		vq->avail = NULL;
		vq->used = NULL;
		return -EPROTO;
	}
	vq->mem = mem;
	vq->used_idx = 0;
	vq->last_avail = 0;
	vq->signalled_valid = false;
	vq->ready = true;
	return 0;
}

static int fail(const char **why, const char *msg)
{
	*why = msg;
	return -EPROTO;
}

int virtq_pop(struct virtq *vq, struct virtq_req *req, enum virtq_dir dir, const char **why)
{
	const volatile struct vring_desc *table = vq->desc;
	uint32_t table_size = vq->size;
	uint32_t budget = vq->size; /* descriptors this chain may still use */
	bool in_indirect = false, seen_write = false;
	uint16_t avail_idx, i;

	if (!vq->ready)
		return -ENOENT;
	/* Acquire: the ring entries and descriptors the driver wrote before bumping idx are
	 * visible once we see the new idx. */
	avail_idx = load_acquire16(&vq->avail->idx);
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
		return fail(why, "the avail index moved by more than the queue size");
	if (avail_idx == vq->last_avail)
		return -ENOENT;
	i = load_once16(&vq->avail->ring[vq->last_avail & (vq->size - 1)]);
	if (i >= vq->size)
		return fail(why, "avail ring entry names a descriptor beyond the queue size");
	req->head = i;
	req->nsegs = 0;
	req->read_len = req->write_len = 0;

	for (;;) {
		struct vring_desc d;
		void *hva;

		if (budget-- == 0)
			return fail(why, in_indirect ? "indirect chain longer than its table (a loop?)"
						     : "descriptor chain longer than the queue (a loop?)");
		/* One copy of the descriptor: the guest may change it under us. */
		d.addr = table[i].addr;
		d.len = table[i].len;
		d.flags = table[i].flags;
		d.next = table[i].next;

		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect)
				return fail(why, "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC");
			if (in_indirect)
				return fail(why, "an indirect table inside an indirect table");
			if (d.flags & VRING_DESC_F_NEXT)
				return fail(why, "indirect descriptor with NEXT set");
			if (req->nsegs)
				return fail(why, "indirect descriptor after direct buffers");
			if (d.len == 0 || d.len % VRING_DESC_SIZE ||
			    d.len / VRING_DESC_SIZE > VIRTQ_MAX_SEGS)
				return fail(why, "indirect table length is not a whole number of "
						 "descriptors within the limit");
			table = gpa_range(vq->mem, d.addr, d.len);
			if (!table)
				return fail(why, "indirect table outside guest RAM");
			table_size = d.len / VRING_DESC_SIZE;
			budget = table_size;
			in_indirect = true;
			i = 0;
			continue;
		}
		hva = gpa_range(vq->mem, d.addr, d.len);
		if (!hva)
			return fail(why, "buffer outside guest RAM (or its length wraps)");
		if (d.flags & VRING_DESC_F_WRITE) {
			if (dir == VIRTQ_DEV_READS)
				return fail(why, "device-writable buffer where the device only reads");
			seen_write = true;
			req->write_len += d.len;
		} else {
			if (dir == VIRTQ_DEV_WRITES)
				return fail(why, "device-readable buffer where the device must write");
			if (seen_write)
				return fail(why, "device-readable buffer after a device-writable one");
			req->read_len += d.len;
		}
		if (req->nsegs == VIRTQ_MAX_SEGS)
			return fail(why, "too many buffers in one chain");
		req->segs[req->nsegs++] = (struct virtq_seg){ hva, d.len, !!(d.flags & VRING_DESC_F_WRITE) };
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		i = d.next;
		if (i >= table_size)
			return fail(why, "next descriptor index beyond the table");
	}
	vq->last_avail++;
	return 0;
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t written)
{
	volatile struct vring_used_elem *e = &vq->used->ring[vq->used_idx & (vq->size - 1)];

	e->id = head;
	e->len = written;
	vq->used_idx++;
	/* Release: the element is visible before the index that publishes it. */
	__atomic_store_n(&vq->used->idx, vq->used_idx, __ATOMIC_RELEASE);
}

bool virtq_should_interrupt(struct virtq *vq)
{
	uint16_t old = vq->signalled_used, new = vq->used_idx, event;
	bool valid = vq->signalled_valid;

	/* Full fence: our used->idx store must be visible before we read the driver's
	 * used_event / flags, or both sides may decide the other will act. */
	barrier_full();
	if (!vq->event_idx)
		return !(load_once16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	vq->signalled_used = new;
	vq->signalled_valid = true;
	if (!valid)
		return true;
	event = load_once16(&vq->avail->ring[vq->size]); /* used_event */
	return vring_need_event(event, new, old);
}

bool virtq_enable_kicks(struct virtq *vq)
{
	if (!vq->ready)
		return false;
	if (vq->event_idx)
		__atomic_store_n((uint16_t *)&vq->used->ring[vq->size], vq->last_avail,
				 __ATOMIC_RELAXED); /* avail_event */
	barrier_full();
	return load_acquire16(&vq->avail->idx) != vq->last_avail;
}

uint64_t virtq_copy_to_writable(struct virtq_req *req, const void *src, uint64_t len)
{
	uint64_t done = 0;

	for (int i = 0; i < req->nsegs && done < len; i++) {
		uint64_t n;

		if (!req->segs[i].write)
			continue;
		n = MIN(req->segs[i].len, len - done);
		memcpy(req->segs[i].hva, (const uint8_t *)src + done, n);
		done += n;
	}
	return done;
}

uint64_t virtq_copy_from_readable(const struct virtq_req *req, void *dst, uint64_t len)
{
	uint64_t done = 0;

	for (int i = 0; i < req->nsegs && done < len; i++) {
		uint64_t n;

		if (req->segs[i].write)
			continue;
		n = MIN(req->segs[i].len, len - done);
		memcpy((uint8_t *)dst + done, req->segs[i].hva, n);
		done += n;
	}
	return done;
}
