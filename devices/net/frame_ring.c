/* See frame_ring.h. Each frame is a record: its length in 8 bytes, then the frame, padded to a
 * multiple of 8. A record is never split: one that does not fit before the end of the buffer
 * goes to its start (wrap), if the oldest frame is far enough from it. */
#include "devices/net/frame_ring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/util.h"

#define REC_HDR 8

static size_t rec_size(size_t len)
{
	return ALIGN_UP(REC_HDR + len, REC_HDR);
}

int frame_ring_init(struct frame_ring *r, size_t size)
{
	void *p;

	memset(r, 0, sizeof(*r));
	/* MAP_NORESERVE: the ring costs memory only where frames have been. */
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	pthread_mutex_init(&r->lock, NULL);
	r->buf = p;
	r->size = size;
	return 0;
}

void frame_ring_destroy(struct frame_ring *r)
{
	if (!r->buf)
		return;
	munmap(r->buf, r->size);
	pthread_mutex_destroy(&r->lock);
	r->buf = NULL;
}

/* Where a record of need bytes would go, or false if it does not fit now (lock held). */
static bool room_for(const struct frame_ring *r, size_t need, size_t *off)
{
	if (!r->count) {
		*off = 0;
		return need <= r->size;
	}
	if (r->wrapped) {
		*off = r->tail;
		return r->tail + need <= r->head;
	}
	if (r->tail + need <= r->size) {
		*off = r->tail;
		return true;
	}
	*off = 0; /* wrap: in front of the oldest frame */
	return need <= r->head;
}

int frame_ring_push(struct frame_ring *r, const struct iovec *iov, int iovcnt, size_t len,
		    bool *was_empty)
{
	size_t need = rec_size(len), off, at;

	if (len > FRAME_RING_MAX_FRAME(r->size))
		return -EMSGSIZE;
	pthread_mutex_lock(&r->lock);
	if (!room_for(r, need, &off)) {
		r->refused = need;
		pthread_mutex_unlock(&r->lock);
		return -EAGAIN;
	}
	/* The copy is made under the lock: the consumer may meanwhile start the ring over (when
	 * it runs empty), which must not happen under a record being written. */
	at = off + REC_HDR;
	for (int i = 0; i < iovcnt && at < off + REC_HDR + len; i++) {
		size_t k = MIN(iov[i].iov_len, off + REC_HDR + len - at);

		memcpy(r->buf + at, iov[i].iov_base, k);
		at += k;
	}
	memcpy(r->buf + off, &(uint64_t){ len }, REC_HDR);
	if (r->count && !r->wrapped && off == 0) {
		r->wrapped = true;
		r->wrap_end = r->tail;
	}
	r->tail = off + need;
	*was_empty = r->count++ == 0;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

const uint8_t *frame_ring_peek(struct frame_ring *r, size_t *len)
{
	const uint8_t *p = NULL;
	uint64_t l;

	pthread_mutex_lock(&r->lock);
	if (r->count) {
		memcpy(&l, r->buf + r->head, REC_HDR);
		*len = (size_t)l;
		p = r->buf + r->head + REC_HDR;
	}
	pthread_mutex_unlock(&r->lock);
	return p;
}

bool frame_ring_pop(struct frame_ring *r)
{
	bool room = false;
	uint64_t len;
	size_t off;

	pthread_mutex_lock(&r->lock);
	if (r->count) {
		memcpy(&len, r->buf + r->head, REC_HDR);
		r->head += rec_size((size_t)len);
		if (--r->count == 0) {
			r->head = r->tail = 0; /* start over: the pages in front stay the warm ones */
			r->wrapped = false;
		} else if (r->wrapped && r->head == r->wrap_end) {
			r->head = 0;
			r->wrapped = false;
		}
		if (r->refused && room_for(r, r->refused, &off)) {
			r->refused = 0;
			room = true;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return room;
}

unsigned frame_ring_count(struct frame_ring *r)
{
	unsigned n;

	pthread_mutex_lock(&r->lock);
	n = r->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}
