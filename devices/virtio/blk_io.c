/* virtio-blk's I/O backend: io_uring, or a thread pool when io_uring is unavailable. See
 * blk_io.h for the contract. */
#include "devices/virtio/blk_io.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "confine/seccomp.h"
#include "vmm/confine.h"
#include "vmm/evloop.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define POOL_THREADS 4

struct blk_io {
	bool uring;
	struct evloop *loop;
	struct ev_handler h;
	bool watched;
	int efd;                       /* completions are waiting */
	blk_io_ready_fn ready;
	void *opaque;
	/* Requests that failed before reaching the kernel, delivered by the next reap. */
	struct blk_io_req *failed;

	/* io_uring */
	struct io_uring ring;
	unsigned inflight_ops;         /* SQEs prepared and not yet completed */
	unsigned cq_entries;

	/* Thread pool. staged is the caller's (no lock); the rest is under lock. */
	struct blk_io_req *staged_head, *staged_tail;
	pthread_mutex_t lock;
	pthread_cond_t work_cond, idle_cond;
	struct blk_io_req *work_head, *work_tail;
	struct blk_io_req *done_head, *done_tail;
	unsigned outstanding;          /* handed to the pool, not yet on the done list */
	bool stopping;
	int nthreads;
	pthread_t threads[POOL_THREADS];
};

static unsigned ops_of(const struct blk_io_req *r)
{
	if (r->op == BLK_IO_FALLOCATE)
		return (unsigned)r->nranges + (r->sync_after ? 1 : 0);
	return 1;
}

/* Moves a request's iovecs past n transferred bytes. */
static void advance(struct blk_io_req *r, uint64_t n)
{
	r->off += n;
	r->len -= n;
	while (r->niov > 0 && n >= r->iov->iov_len) {
		n -= r->iov->iov_len;
		r->iov++;
		r->niov--;
	}
	if (r->niov > 0 && n) {
		r->iov->iov_base = (uint8_t *)r->iov->iov_base + n;
		r->iov->iov_len -= n;
	}
}

static void wake_loop(struct blk_io *io)
{
	uint64_t one = 1;

	if (write(io->efd, &one, sizeof(one)) < 0)
		return; /* saturated: the loop is being woken anyway */
}

static void fail_early(struct blk_io *io, struct blk_io_req *r, int err)
{
	r->res = err;
	r->pending = 0;
	r->next = io->failed;
	io->failed = r;
	wake_loop(io);
}

static unsigned deliver_failed(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	unsigned n = 0;

	while (io->failed) {
		struct blk_io_req *r = io->failed;

		io->failed = r->next;
		done(arg, r);
		n++;
	}
	return n;
}

/* ---- io_uring ---- */

static struct io_uring_sqe *uring_sqe(struct blk_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	if (!sqe) {
		io_uring_submit(&io->ring);
		sqe = io_uring_get_sqe(&io->ring);
	}
	return sqe;
}

/* One SQE for (the rest of) a read or write. */
static bool uring_prep_rw(struct blk_io *io, struct blk_io_req *r)
{
	struct io_uring_sqe *sqe = uring_sqe(io);

	if (!sqe)
		return false;
	if (r->op == BLK_IO_READ) {
		io_uring_prep_readv(sqe, r->fd, r->iov, (unsigned)r->niov, r->off);
	} else {
		io_uring_prep_writev(sqe, r->fd, r->iov, (unsigned)r->niov, r->off);
		sqe->rw_flags = r->rw_flags;
	}
	io_uring_sqe_set_data(sqe, r);
	io->inflight_ops++;
	return true;
}

static void uring_queue(struct blk_io *io, struct blk_io_req *r)
{
	unsigned n = ops_of(r);

	r->res = 0;
	r->pending = (int)n;
	/* A linked chain must not be split across two submissions. */
	if (io_uring_sq_space_left(&io->ring) < n)
		io_uring_submit(&io->ring);
	if (io_uring_sq_space_left(&io->ring) < n) {
		fail_early(io, r, -EIO);
		return;
	}
	switch (r->op) {
	case BLK_IO_READ:
	case BLK_IO_WRITE:
		uring_prep_rw(io, r);
		break;
	case BLK_IO_FSYNC: {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

		io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
		io_uring_sqe_set_data(sqe, r);
		io->inflight_ops++;
		break;
	}
	case BLK_IO_FALLOCATE:
		/* Linked, so that the fsync runs after every range (a failure cancels the rest). */
		for (unsigned i = 0; i < n; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

			if ((int)i < r->nranges)
				io_uring_prep_fallocate(sqe, r->fd, r->ranges[i].mode, r->ranges[i].off,
							r->ranges[i].len);
			else
				io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
			if (i + 1 < n)
				sqe->flags |= IOSQE_IO_LINK;
			io_uring_sqe_set_data(sqe, r);
			io->inflight_ops++;
		}
		break;
	}
}

/* Accounts one CQE; returns true when its request is complete. */
static bool uring_cqe(struct blk_io *io, struct blk_io_req *r, int res, bool *resubmit)
{
	if (r->op == BLK_IO_READ || r->op == BLK_IO_WRITE) {
		if (res < 0) {
			r->res = res;
		} else if ((uint64_t)res < r->len) {
			if (res == 0) {
				r->res = -EIO; /* the end of the file: it shrank under us */
			} else {
				/* Short transfer: go on with the rest. */
				advance(r, (uint64_t)res);
				if (uring_prep_rw(io, r)) {
					*resubmit = true;
					return false;
				}
				r->res = -EIO;
			}
		}
		r->pending = 0;
		return true;
	}
	/* In a linked chain the first failure cancels the rest: keep the first real error. */
	if (res < 0 && (r->res == 0 || r->res == -ECANCELED))
		r->res = res;
	return --r->pending == 0;
}

/* Calls done for the requests failed early and those whose CQEs are in the ring. */
static unsigned uring_collect(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	struct blk_io_req *head = NULL, **tail = &head;
	struct io_uring_cqe *cqe;
	unsigned cqhead, seen = 0, n;
	bool resubmit = false;

	n = deliver_failed(io, done, arg);
	io_uring_for_each_cqe(&io->ring, cqhead, cqe) {
		struct blk_io_req *r = io_uring_cqe_get_data(cqe);

		seen++;
		io->inflight_ops--;
		if (uring_cqe(io, r, cqe->res, &resubmit)) {
			r->next = NULL;
			*tail = r;
			tail = &r->next;
		}
	}
	io_uring_cq_advance(&io->ring, seen);
	if (resubmit)
		io_uring_submit(&io->ring);
	/* After the CQ is released: done() may queue new requests. */
	while (head) {
		struct blk_io_req *r = head;

		head = r->next;
		done(arg, r);
		n++;
	}
	return n;
}

/* Submits and collects what completed meanwhile with the ring's eventfd disabled (a store to
 * the shared CQ flags, no syscall): what is reaped here need not wake the loop. */
static unsigned uring_submit_reap(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	unsigned n;

	io_uring_cq_eventfd_toggle(&io->ring, false);
	if (io_uring_sq_ready(&io->ring))
		io_uring_submit(&io->ring);
	n = uring_collect(io, done, arg);
	io_uring_cq_eventfd_toggle(&io->ring, true);
	/* A CQE posted between the collect and the toggle signalled nothing: look once more.
	 * The kernel publishes the CQ tail, then takes a lock (a full barrier on x86) before it
	 * reads the flags; this fence orders our flag store before our tail load the same way,
	 * so one of the two sides sees the other. */
	barrier_full();
	if (io_uring_cq_ready(&io->ring))
		n += uring_collect(io, done, arg);
	return n;
}

static void uring_drain(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	for (;;) {
		int err;

		uring_collect(io, done, arg);
		if (!io->inflight_ops)
			break;
		err = io_uring_submit_and_wait(&io->ring, 1);
		if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY) {
			pr_err("virtio-blk: waiting for io_uring completions: %s", strerror(-err));
			break;
		}
	}
	deliver_failed(io, done, arg);
}

/* ---- thread pool ---- */

static int pool_rw(struct blk_io_req *r)
{
	while (r->len) {
		ssize_t n = r->op == BLK_IO_READ ? preadv(r->fd, r->iov, r->niov, (off_t)r->off)
						 : pwritev2(r->fd, r->iov, r->niov, (off_t)r->off,
							    r->rw_flags);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* the end of the file: it shrank under us */
		advance(r, (uint64_t)n);
	}
	return 0;
}

static int pool_execute(struct blk_io_req *r)
{
	switch (r->op) {
	case BLK_IO_READ:
	case BLK_IO_WRITE:
		return pool_rw(r);
	case BLK_IO_FSYNC:
		return fdatasync(r->fd) < 0 ? -errno : 0;
	case BLK_IO_FALLOCATE:
		for (int i = 0; i < r->nranges; i++)
			if (fallocate(r->fd, r->ranges[i].mode, (off_t)r->ranges[i].off,
				      (off_t)r->ranges[i].len) < 0)
				return -errno;
		if (r->sync_after && fdatasync(r->fd) < 0)
			return -errno;
		return 0;
	}
	return -EINVAL;
}

static void *pool_worker(void *opaque)
{
	struct blk_io *io = opaque;
	unsigned confined = 0;   /* vmm/confine.h: started during setup, before the confinement */

	seccomp_enter(SECCOMP_IO, -1);

	pthread_mutex_lock(&io->lock);
	for (;;) {
		struct blk_io_req *r;
		bool was_empty;

		while (!io->work_head && !io->stopping)
			pthread_cond_wait(&io->work_cond, &io->lock);
		if (!io->work_head)
			break; /* stopping, and nothing left */
		r = io->work_head;
		io->work_head = r->next;
		if (!io->work_head)
			io->work_tail = NULL;
		pthread_mutex_unlock(&io->lock);

		confine_late_thread(&confined);
		r->res = pool_execute(r);
		r->next = NULL;

		pthread_mutex_lock(&io->lock);
		was_empty = !io->done_head;
		if (io->done_tail)
			io->done_tail->next = r;
		else
			io->done_head = r;
		io->done_tail = r;
		if (--io->outstanding == 0)
			pthread_cond_broadcast(&io->idle_cond);
		/* The loop takes the whole list at once: one wake-up per non-empty list. */
		if (was_empty)
			wake_loop(io);
	}
	pthread_mutex_unlock(&io->lock);
	return NULL;
}

static void pool_queue(struct blk_io *io, struct blk_io_req *r)
{
	r->res = 0;
	r->pending = 1;
	r->next = NULL;
	if (io->staged_tail)
		io->staged_tail->next = r;
	else
		io->staged_head = r;
	io->staged_tail = r;
}

static void pool_submit(struct blk_io *io)
{
	unsigned n = 0;

	if (!io->staged_head)
		return;
	for (struct blk_io_req *r = io->staged_head; r; r = r->next)
		n++;
	pthread_mutex_lock(&io->lock);
	if (io->work_tail)
		io->work_tail->next = io->staged_head;
	else
		io->work_head = io->staged_head;
	io->work_tail = io->staged_tail;
	io->outstanding += n;
	if (n > 1)
		pthread_cond_broadcast(&io->work_cond);
	else
		pthread_cond_signal(&io->work_cond);
	pthread_mutex_unlock(&io->lock);
	io->staged_head = io->staged_tail = NULL;
}

/* Calls done for the requests failed early and those the workers finished. */
static unsigned pool_collect(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	struct blk_io_req *r;
	unsigned n;

	n = deliver_failed(io, done, arg);
	pthread_mutex_lock(&io->lock);
	r = io->done_head;
	io->done_head = io->done_tail = NULL;
	pthread_mutex_unlock(&io->lock);
	while (r) {
		struct blk_io_req *next = r->next;

		r->pending = 0;
		done(arg, r);
		n++;
		r = next;
	}
	return n;
}

static void pool_drain(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	/* Until done() queues nothing more (a write-zeroes request's next step), as the io_uring
	 * drain does. */
	do {
		pool_submit(io);
		pthread_mutex_lock(&io->lock);
		while (io->outstanding)
			pthread_cond_wait(&io->idle_cond, &io->lock);
		pthread_mutex_unlock(&io->lock);
		pool_collect(io, done, arg);
	} while (io->staged_head);
}

static int pool_start(struct blk_io *io)
{
	sigset_t all, old;

	pthread_mutex_init(&io->lock, NULL);
	pthread_cond_init(&io->work_cond, NULL);
	pthread_cond_init(&io->idle_cond, NULL);
	/* Workers take no signals: those are for the main and vCPU threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < POOL_THREADS; i++) {
		if (pthread_create(&io->threads[i], NULL, pool_worker, io))
			break;
		io->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!io->nthreads) {
		pthread_cond_destroy(&io->idle_cond);
		pthread_cond_destroy(&io->work_cond);
		pthread_mutex_destroy(&io->lock);
		return -EAGAIN;
	}
	return 0;
}

static void pool_stop(struct blk_io *io)
{
	pthread_mutex_lock(&io->lock);
	io->stopping = true;
	pthread_cond_broadcast(&io->work_cond);
	pthread_mutex_unlock(&io->lock);
	for (int i = 0; i < io->nthreads; i++)
		pthread_join(io->threads[i], NULL);
	pthread_cond_destroy(&io->idle_cond);
	pthread_cond_destroy(&io->work_cond);
	pthread_mutex_destroy(&io->lock);
}

/* ---- the interface ---- */

static void on_event(struct ev_handler *h, uint32_t events)
{
	struct blk_io *io = container_of(h, struct blk_io, h);

	(void)events;
	io->ready(io->opaque);
}

static bool uring_wanted(void)
{
	const char *e = getenv("MICA_BLK_NO_URING");

	return !(e && *e && strcmp(e, "0") != 0);
}

static int uring_start(struct blk_io *io, unsigned depth)
{
	struct io_uring_params p = { 0 };
	int err = io_uring_queue_init_params(depth, &io->ring, &p);

	if (err < 0)
		return err;
	err = io_uring_register_eventfd(&io->ring, io->efd);
	if (err < 0) {
		io_uring_queue_exit(&io->ring);
		return err;
	}
	io->cq_entries = p.cq_entries;
	return 0;
}

int blk_io_create(struct blk_io **out, struct evloop *loop, unsigned depth, blk_io_ready_fn ready,
		  void *opaque, struct err *e)
{
	struct blk_io *io = calloc(1, sizeof(*io));
	int err;

	if (!io)
		return err_set(e, -ENOMEM, "out of memory");
	io->loop = loop;
	io->ready = ready;
	io->opaque = opaque;
	io->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (io->efd < 0) {
		err = err_set(e, -errno, "cannot create an eventfd: %s", strerror(errno));
		free(io);
		return err;
	}
	if (uring_wanted()) {
		err = uring_start(io, depth);
		if (!err)
			io->uring = true;
		else
			pr_debug("virtio-blk: io_uring unavailable (%s): using worker threads",
				 strerror(-err));
	}
	if (!io->uring) {
		err = pool_start(io);
		if (err) {
			err_set(e, err, "cannot start I/O worker threads: %s", strerror(-err));
			goto fail;
		}
	}
	io->h.fn = on_event;
	/* Edge-triggered: every signal of the eventfd (each one a kernel or worker write) is one
	 * event, so the counter is never read back: one syscall fewer per wake-up. */
	err = evloop_add(loop, io->efd, EPOLLIN | EPOLLET, &io->h);
	if (err) {
		err_set(e, err, "cannot watch the I/O eventfd: %s", strerror(-err));
		if (io->uring)
			io_uring_queue_exit(&io->ring);
		else
			pool_stop(io);
		goto fail;
	}
	io->watched = true;
	*out = io;
	return 0;
fail:
	close(io->efd);
	free(io);
	return err;
}

void blk_io_destroy(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	if (!io)
		return;
	blk_io_drain(io, done, arg);
	if (io->watched)
		evloop_del(io->loop, &io->h);
	if (io->uring)
		io_uring_queue_exit(&io->ring);
	else
		pool_stop(io);
	close(io->efd);
	free(io);
}

const char *blk_io_backend(const struct blk_io *io)
{
	return io->uring ? "io_uring" : "threads";
}

bool blk_io_has_room(const struct blk_io *io, unsigned nops)
{
	/* Never more operations in flight than the CQ holds: no CQE can overflow. */
	return !io->uring || io->inflight_ops + nops <= io->cq_entries;
}

void blk_io_queue(struct blk_io *io, struct blk_io_req *r)
{
	if (io->uring)
		uring_queue(io, r);
	else
		pool_queue(io, r);
}

unsigned blk_io_submit_reap(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	if (io->uring)
		return uring_submit_reap(io, done, arg);
	/* The workers' wake-up of the loop, if any, stays: that reap then finds nothing. */
	pool_submit(io);
	return pool_collect(io, done, arg);
}

unsigned blk_io_reap(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	return io->uring ? uring_collect(io, done, arg) : pool_collect(io, done, arg);
}

void blk_io_drain(struct blk_io *io, blk_io_done_fn done, void *arg)
{
	if (io->uring)
		uring_drain(io, done, arg);
	else
		pool_drain(io, done, arg);
}
