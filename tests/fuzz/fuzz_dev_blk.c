/* virtio-blk in the device target: the real blk.c and blk_io.c (thread pool, as with
 * MICA_BLK_NO_URING=1) over a small raw image in a memfd, opened by its /proc/self/fd path.
 * Completions are delivered deterministically: after each operation the target runs the
 * event loop until every request handed to blk_io has come back (counted by wrapping
 * blk_io_queue, blk_io_reap, blk_io_submit_reap and blk_io_drain with -Wl,--wrap: one done()
 * call per request queued; a request queued again from its completion counts once more).
 *
 * Options: bit 0 read-only; bits 1-2 cache: writeback, writethrough, none (writeback where
 * the memfd takes no O_DIRECT), writeback; bit 3 two queues; bit 4 the driver leaves out
 * FLUSH, SIZE_MAX, DISCARD and WRITE_ZEROES.
 * Operations: 0: kick queue arg & 1, then at once (arg & 2) disable and re-enable queue
 *             (arg ^ arg >> 2) & 1, with requests in flight, and (arg & 8) write
 *             wce = arg >> 4;
 *             1: kick queue arg & 1, then reset the device at once (it stays reset until the
 *             driver initializes it again).
 *
 * Checks beyond the sanitizers: the image never changes size; the bytes after its last whole
 * sector (unreachable for the guest) never change; a read-only image never changes at all;
 * every request handed to the backend completes, and none is left in flight by
 * blk_io_drain(). */
#include <errno.h>
#include <linux/virtio_blk.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/blk_io.h"
#include "tests/fuzz/fuzz_dev.h"

#define IMG_SECTORS 128
#define IMG_TAIL    100
#define IMG_BYTES   (IMG_SECTORS * 512 + IMG_TAIL)

static int img_fd = -1;
static uint8_t img_pattern[IMG_BYTES], img_now[IMG_BYTES];
static bool read_only;
static unsigned inflight; /* requests queued to blk_io whose done() has not run yet */

void __real_blk_io_queue(struct blk_io *io, struct blk_io_req *r);
unsigned __real_blk_io_reap(struct blk_io *io, blk_io_done_fn done, void *arg);
unsigned __real_blk_io_submit_reap(struct blk_io *io, blk_io_done_fn done, void *arg);
void __real_blk_io_drain(struct blk_io *io, blk_io_done_fn done, void *arg);

static blk_io_done_fn device_done; /* the device's completion callback, counted below */

static void counted_done(void *arg, struct blk_io_req *r)
{
	FUZZ_ASSERT(inflight > 0); /* a request completed twice */
	inflight--;
	device_done(arg, r);
}

void __wrap_blk_io_queue(struct blk_io *io, struct blk_io_req *r)
{
	inflight++;
	__real_blk_io_queue(io, r);
}

unsigned __wrap_blk_io_reap(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	device_done = done;
	return __real_blk_io_reap(io, counted_done, arg);
}

unsigned __wrap_blk_io_submit_reap(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	device_done = done;
	return __real_blk_io_submit_reap(io, counted_done, arg);
}

void __wrap_blk_io_drain(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	device_done = done;
	__real_blk_io_drain(io, counted_done, arg);
	FUZZ_ASSERT(inflight == 0); /* blk_io.h: it waits until nothing is in flight */
}

static struct virtio_dev *blk_create(const struct virtio_env *env, uint8_t opt, uint64_t *features)
{
	static const enum blk_cache caches[4] = { BLK_CACHE_WRITEBACK, BLK_CACHE_WRITETHROUGH,
						  BLK_CACHE_NONE, BLK_CACHE_WRITEBACK };
	struct blk_opts o = { .ro = opt & 1, .cache = caches[(opt >> 1) & 3],
			      .serial = "fuzz-serial-0123" };
	struct err e = { "" };
	struct virtio_dev *dev = NULL;

	if (img_fd < 0) {
		img_fd = memfd_create("fuzz-blk", MFD_CLOEXEC);
		FUZZ_ASSERT(img_fd >= 0);
		for (int i = 0; i < IMG_BYTES; i++)
			img_pattern[i] = (uint8_t)(i * 131 + (i >> 9));
		setenv("MICA_BLK_NO_URING", "1", 1);
	}
	FUZZ_ASSERT(ftruncate(img_fd, IMG_BYTES) == 0);
	FUZZ_ASSERT(pwrite(img_fd, img_pattern, IMG_BYTES, 0) == IMG_BYTES);
	snprintf(o.path, sizeof(o.path), "/proc/self/fd/%d", img_fd);
	read_only = o.ro;
	inflight = 0;
	o.num_queues = opt & 8 ? 2 : 1;
	if (virtio_blk_create(env, &o, &dev, &e) && o.cache == BLK_CACHE_NONE) {
		/* a kernel whose memfds take no O_DIRECT */
		o.cache = BLK_CACHE_WRITEBACK;
		virtio_blk_create(env, &o, &dev, &e);
	}
	if (!dev)
		fprintf(stderr, "virtio_blk_create: %s\n", e.msg);
	FUZZ_ASSERT(dev);
	*features = virtio_offered_features(dev) & 0xffffff; /* the device-specific bits */
	if (opt & 16)
		*features &= ~((1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_SIZE_MAX) |
			       (1ULL << VIRTIO_BLK_F_DISCARD) | (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	return dev;
}

static void blk_op(struct virtio_dev *dev, int which, uint8_t arg)
{
	int q = (arg & 1) % dev->ops->num_queues;

	virtio_queue_notified(dev, q);
	if (which == 1) {
		fuzz_dev_reset(dev);
		return;
	}
	if (arg & 2) {
		int d = ((arg ^ arg >> 2) & 1) % dev->ops->num_queues;

		drv_queue_ready(dev, d, false);
		fuzz_track_forget(d);
		drv_queue_ready(dev, d, true);
	}
	if (arg & 8) {
		uint8_t wce = arg >> 4;

		drv_config_write(dev, offsetof(struct virtio_blk_config, wce), &wce, 1);
	}
}

/* Runs the event loop until every request handed to the backend is back (a request that
 * never comes back is a hang, reported by libFuzzer's -timeout). */
static void blk_settle(struct virtio_dev *dev)
{
	while (inflight) {
		struct epoll_event evs[8];
		int n = epoll_wait(dev->env.loop->epfd, evs, 8, -1);

		FUZZ_ASSERT(n > 0 || errno == EINTR);
		for (int k = 0; k < n; k++) {
			struct ev_handler *h = evs[k].data.ptr;

			h->fn(h, evs[k].events);
		}
	}
}

static void blk_check(struct virtio_dev *dev, bool disrupted)
{
	struct stat st;

	(void)dev, (void)disrupted;
	FUZZ_ASSERT(fstat(img_fd, &st) == 0 && st.st_size == IMG_BYTES);
}

static void blk_finish(void)
{
	FUZZ_ASSERT(pread(img_fd, img_now, IMG_BYTES, 0) == IMG_BYTES);
	FUZZ_ASSERT(!memcmp(img_now + IMG_SECTORS * 512, img_pattern + IMG_SECTORS * 512, IMG_TAIL));
	if (read_only)
		FUZZ_ASSERT(!memcmp(img_now, img_pattern, IMG_BYTES));
}

const struct fuzz_model fuzz_model_blk = {
	.create = blk_create,
	.op = blk_op,
	.settle = blk_settle,
	.check = blk_check,
	.finish = blk_finish,
};
