/* The bounded frame FIFO of the user-network backend (devices/net/frame_ring.h): frames come
 * out whole and in order across wrap-around, a frame that does not fit is refused and the room
 * reported once, the largest frame always fits an empty ring, an emptied ring starts over at
 * its first bytes (its footprint stays as deep as the longest burst), and a producer and a
 * consumer on two threads agree on every byte. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include "devices/net/frame_ring.h"
#include "tests/unit/test.h"

#define SIZE 4096

static uint8_t frame[SIZE], got[SIZE];

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 31 + i);
}

static int push(struct frame_ring *r, size_t len, unsigned seed, bool *was_empty)
{
	struct iovec iov = { frame, len };

	fill(frame, len, seed);
	return frame_ring_push(r, &iov, 1, len, was_empty);
}

/* Pops the oldest frame, checking it is len bytes of seed's pattern; returns pop's room. */
static bool pop_check(struct frame_ring *r, size_t len, unsigned seed)
{
	size_t l = 0;
	const uint8_t *p = frame_ring_peek(r, &l);

	CHECK(p != NULL);
	if (!p)
		return false;
	CHECK_EQ(l, len);
	fill(got, len, seed);
	CHECK(!memcmp(p, got, len));
	return frame_ring_pop(r);
}

static void order_across_wrap(void)
{
	struct frame_ring r;
	bool was_empty;
	unsigned next_in = 0, next_out = 0;
	size_t l;

	CHECK_EQ(frame_ring_init(&r, SIZE), 0);
	CHECK(frame_ring_peek(&r, &l) == NULL);
	/* Frames of 100..1000 bytes, the ring kept about half full: it wraps many times. */
	for (int round = 0; round < 200; round++) {
		while (frame_ring_count(&r) < 3) {
			CHECK_EQ(push(&r, 100 + next_in % 10 * 100, next_in, &was_empty), 0);
			next_in++;
		}
		pop_check(&r, 100 + next_out % 10 * 100, next_out);
		next_out++;
	}
	while (next_out < next_in) {
		pop_check(&r, 100 + next_out % 10 * 100, next_out);
		next_out++;
	}
	CHECK_EQ(frame_ring_count(&r), 0);
	CHECK(frame_ring_peek(&r, &l) == NULL);
	CHECK(!frame_ring_pop(&r));
	frame_ring_destroy(&r);
}

static void full_and_room(void)
{
	struct frame_ring r;
	bool was_empty;
	int n = 0;

	CHECK_EQ(frame_ring_init(&r, SIZE), 0);
	CHECK_EQ(push(&r, 1000, 0, &was_empty), 0);
	CHECK(was_empty);
	CHECK_EQ(push(&r, 1000, 1, &was_empty), 0);
	CHECK(!was_empty);
	/* 4 records of 1008 bytes fit 4096; the fifth does not. */
	CHECK_EQ(push(&r, 1000, 2, &was_empty), 0);
	CHECK_EQ(push(&r, 1000, 3, &was_empty), 0);
	CHECK_EQ(push(&r, 1000, 4, &was_empty), -EAGAIN);
	CHECK_EQ(frame_ring_count(&r), 4);
	/* The first pop makes room at the start (a wrap): reported once. */
	CHECK(pop_check(&r, 1000, 0));
	CHECK_EQ(push(&r, 1000, 4, &was_empty), 0);
	CHECK_EQ(push(&r, 2000, 5, &was_empty), -EAGAIN);
	CHECK(!pop_check(&r, 1000, 1));       /* 1008 free in front: not enough for 2008 */
	n += pop_check(&r, 1000, 2);          /* 2016 free: enough */
	CHECK_EQ(n, 1);
	CHECK(!pop_check(&r, 1000, 3));       /* reported already */
	CHECK_EQ(push(&r, 2000, 5, &was_empty), 0);
	CHECK(!pop_check(&r, 1000, 4));
	CHECK(!pop_check(&r, 2000, 5));
	CHECK_EQ(frame_ring_count(&r), 0);

	/* The largest frame fits an empty ring, and nothing larger ever will. */
	CHECK_EQ(push(&r, FRAME_RING_MAX_FRAME(SIZE), 6, &was_empty), 0);
	CHECK_EQ(push(&r, 1, 7, &was_empty), -EAGAIN);
	CHECK(pop_check(&r, FRAME_RING_MAX_FRAME(SIZE), 6));
	CHECK_EQ(push(&r, FRAME_RING_MAX_FRAME(SIZE) + 1, 8, &was_empty), -EMSGSIZE);
	frame_ring_destroy(&r);
}

/* Drained as fast as it is filled, the ring keeps using its first record: the rest of it is
 * never touched (never resident). Frames gathered from several pieces come out in one. */
static void starts_over_when_empty(void)
{
	struct frame_ring r;
	bool was_empty;
	const uint8_t *first = NULL, *p;
	size_t l;
	uint8_t a[10], b[50];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };

	CHECK_EQ(frame_ring_init(&r, SIZE), 0);
	for (int i = 0; i < 100; i++) {
		CHECK_EQ(push(&r, 60 + i % 7, (unsigned)i, &was_empty), 0);
		p = frame_ring_peek(&r, &l);
		if (!first)
			first = p;
		CHECK(p == first);
		pop_check(&r, 60 + i % 7, (unsigned)i);
	}
	fill(a, sizeof(a), 1);
	fill(b, sizeof(b), 2);
	CHECK_EQ(frame_ring_push(&r, iov, 2, sizeof(a) + sizeof(b), &was_empty), 0);
	p = frame_ring_peek(&r, &l);
	CHECK(p == first);
	CHECK_EQ(l, sizeof(a) + sizeof(b));
	CHECK(!memcmp(p, a, sizeof(a)) && !memcmp(p + sizeof(a), b, sizeof(b)));
	frame_ring_destroy(&r);
}

/* ---- two threads ---- */

#define STRESS_FRAMES 20000

static struct frame_ring sr;
static pthread_mutex_t room_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t room_cond = PTHREAD_COND_INITIALIZER;
static bool room_said;

static size_t stress_len(unsigned i)
{
	return 14 + (i * 97) % 1500;
}

/* Pushes every frame, waiting on a refusal until the consumer reports room (as the device
 * waits for tx_room()). */
static void *producer(void *arg)
{
	static uint8_t buf[2048];
	bool was_empty;

	(void)arg;
	for (unsigned i = 0; i < STRESS_FRAMES;) {
		size_t len = stress_len(i);
		struct iovec iov = { buf, len };

		fill(buf, len, i);
		pthread_mutex_lock(&room_lock);
		room_said = false;
		pthread_mutex_unlock(&room_lock);
		if (frame_ring_push(&sr, &iov, 1, len, &was_empty) == 0) {
			i++;
			continue;
		}
		pthread_mutex_lock(&room_lock);
		while (!room_said)
			pthread_cond_wait(&room_cond, &room_lock);
		pthread_mutex_unlock(&room_lock);
	}
	return NULL;
}

static void two_threads(void)
{
	static uint8_t want[2048];
	pthread_t t;
	unsigned next = 0, bad = 0;

	CHECK_EQ(frame_ring_init(&sr, 8192), 0);
	CHECK_EQ(pthread_create(&t, NULL, producer, NULL), 0);
	while (next < STRESS_FRAMES) {
		size_t len;
		const uint8_t *p = frame_ring_peek(&sr, &len);

		if (!p) {
			sched_yield();
			continue;
		}
		fill(want, stress_len(next), next);
		if (len != stress_len(next) || memcmp(p, want, len))
			bad++;
		next++;
		if (frame_ring_pop(&sr)) {
			pthread_mutex_lock(&room_lock);
			room_said = true;
			pthread_cond_signal(&room_cond);
			pthread_mutex_unlock(&room_lock);
		}
	}
	CHECK_EQ(pthread_join(t, NULL), 0);
	CHECK_EQ(bad, 0);
	CHECK_EQ(frame_ring_count(&sr), 0);
	frame_ring_destroy(&sr);
}

TEST_MAIN("frame_ring",
	  T(order_across_wrap),
	  T(full_and_room),
	  T(starts_over_when_empty),
	  T(two_threads))
