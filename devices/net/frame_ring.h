/* A bounded FIFO of frames for a backend that cannot hand a frame on at once: each frame is
 * copied in (so the guest can no longer change it), whole, into one byte ring that is mapped
 * lazily (pages never touched cost no memory) and starts over at its beginning whenever it
 * runs empty, so a ring drained as fast as it is filled touches only its first few pages.
 *
 * One producer (the device's transmit path: device lock held, any thread) and one consumer
 * (the event-loop thread). The ring's lock is a leaf: held only inside these functions. The
 * consumer reads the oldest frame in place, without the lock, between peek and pop: the
 * producer never writes where a frame waits.
 *
 * Room: a push that does not fit returns -EAGAIN and is remembered; the pop after which it
 * would fit returns true, once, so the consumer can tell the producer to try again. */
#ifndef MICA_NET_FRAME_RING_H
#define MICA_NET_FRAME_RING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct frame_ring {
	pthread_mutex_t lock;      /* everything below but buf and size */
	uint8_t *buf;              /* size bytes, anonymous, mapped at init */
	size_t size;
	/* Frames lie in [head, tail), or once the producer wrapped in [head, wrap_end) and then
	 * [0, tail). Empty: count 0 and head = tail = 0. */
	size_t head, tail, wrap_end;
	bool wrapped;
	unsigned count;
	size_t refused;            /* room a refused frame needs (0: none refused since) */
};

/* The largest frame a ring of size bytes always takes once it is empty. */
#define FRAME_RING_MAX_FRAME(size) ((size) - 8)

/* Maps size bytes (a multiple of 8). Returns 0 or -errno. */
int frame_ring_init(struct frame_ring *r, size_t size);
/* Unmaps it, dropping what waits (safe on a ring whose init failed or never ran, if zeroed). */
void frame_ring_destroy(struct frame_ring *r);
/* Copies in the frame iov holds (len bytes). Returns 0, -EAGAIN when it does not fit now, or
 * -EMSGSIZE when it never could; *was_empty (on 0): the ring held no frame before. */
int frame_ring_push(struct frame_ring *r, const struct iovec *iov, int iovcnt, size_t len,
		    bool *was_empty);
/* The oldest frame, in place (valid until frame_ring_pop), or NULL when the ring is empty. */
const uint8_t *frame_ring_peek(struct frame_ring *r, size_t *len);
/* Drops the oldest frame. Returns true when a refused push would now fit (once per refusal). */
bool frame_ring_pop(struct frame_ring *r);
/* Frames waiting (a snapshot). */
unsigned frame_ring_count(struct frame_ring *r);

#endif
