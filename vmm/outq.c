#include "vmm/outq.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/evloop.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define OUTQ_MAX_WAITERS 4

enum outq_mode {
	OUTQ_NONBLOCK,  /* a description of our own (or one already non-blocking): EAGAIN when full */
	OUTQ_SOCKET,    /* send(MSG_DONTWAIT | MSG_NOSIGNAL) */
	OUTQ_PLAIN,     /* a file that never waits for a reader, or one we could not make wait-free */
};

struct outq {
	pthread_mutex_t lock;      /* everything below but the set-up-time fields */
	struct evloop *loop;
	struct ev_handler h;       /* EPOLLOUT on wfd, one-shot, armed only while bytes wait */
	/* Set up once by outq_create(). */
	enum outq_mode mode;
	const char *name;          /* "stdout", "stderr": for messages and statistics */
	const char *kind;          /* "pipe", "tty", "socket", "file", ... for the statistics */
	int wfd;                   /* where the bytes go */
	bool own_wfd;              /* wfd was opened here (the reopened pipe or terminal) */
	struct {
		outq_space_fn fn;
		void *opaque;
	} waiters[OUTQ_MAX_WAITERS];
	int nwaiters;              /* registered before the loop runs; read on the loop thread */
	outq_tap_fn tap;           /* set up before the loop runs; called under lock */
	void *tap_opaque;

	bool registered;           /* wfd is in the epoll set */
	bool armed;                /* its one-shot EPOLLOUT is armed */
	bool gone;                 /* the reader went away: output is discarded from now on */
	bool want_space;           /* a write was cut short: wake the waiters when room is back */
	uint8_t *ring;
	size_t cap;                /* a power of two */
	size_t head, len;          /* queued: [head, head + len) modulo cap */
	uint64_t written, discarded, cut_short, queued_max;
};

/* One write of iov, without a signal (SIGPIPE is ignored process-wide too). */
static ssize_t out_writev(struct outq *q, const struct iovec *iov, int n)
{
	ssize_t r;

	n = MIN(n, IOV_MAX);
	do {
		if (q->mode == OUTQ_SOCKET) {
			struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };

			r = sendmsg(q->wfd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			r = writev(q->wfd, iov, n);
		}
	} while (r < 0 && errno == EINTR);
	if (r == 0)
		return -EAGAIN; /* nothing taken of a non-empty write: as full */
	return r < 0 ? -errno : r;
}

/* The same, skipping the first skip bytes of iov (rare: only after a partial write). */
static ssize_t out_writev_from(struct outq *q, const struct iovec *iov, int n, size_t skip)
{
	struct iovec tmp[64];
	int i = 0, k = 0;

	if (!skip)
		return out_writev(q, iov, n);
	while (i < n && skip >= iov[i].iov_len)
		skip -= iov[i++].iov_len;
	for (; i < n && k < (int)ARRAY_SIZE(tmp); i++)
		tmp[k++] = iov[i];
	tmp[0].iov_base = (uint8_t *)tmp[0].iov_base + skip;
	tmp[0].iov_len -= skip;
	return out_writev(q, tmp, k);
}

/* With the lock held: nothing more reaches the fd; what is queued is dropped. */
static void reader_gone(struct outq *q, int err, const char *what)
{
	q->gone = true;
	q->discarded += q->len;
	q->head = q->len = 0;
	pr_info("%s: %s (%s): guest output is discarded from now on", q->name, what,
		strerror(-err));
}

/* With the lock held and bytes queued: have the loop drain them once the fd is writable. */
static void arm(struct outq *q)
{
	int err;

	if (q->armed)
		return;
	/* One-shot: a disarmed fd reports nothing, not even the EPOLLERR of a pipe whose
	 * reader left, so the loop never spins on a file it has nothing to write to. */
	if (q->registered)
		err = evloop_mod(q->loop, &q->h, EPOLLOUT | EPOLLONESHOT);
	else
		err = evloop_add(q->loop, q->wfd, EPOLLOUT | EPOLLONESHOT, &q->h);
	if (err) {
		reader_gone(q, err, "cannot watch it");
		return;
	}
	q->registered = q->armed = true;
}

/* With the lock held: copies iov, from byte skip on, into the ring, as much as fits. */
static size_t ring_put(struct outq *q, const struct iovec *iov, int n, size_t skip)
{
	size_t room = q->cap - q->len, put = 0;

	for (int i = 0; i < n && put < room; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t l = iov[i].iov_len, tail, first;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		p += skip;
		l = MIN(l - skip, room - put);
		skip = 0;
		tail = (q->head + q->len + put) & (q->cap - 1);
		first = MIN(l, q->cap - tail);
		memcpy(q->ring + tail, p, first);
		memcpy(q->ring, p + first, l - first);
		put += l;
	}
	q->len += put;
	q->queued_max = MAX(q->queued_max, q->len);
	return put;
}

/* With the lock held: writes queued bytes until none are left (0), or the fd is full
 * (-EAGAIN), or the reader is gone (0, with q->gone). */
static int drain(struct outq *q)
{
	while (q->len && !q->gone) {
		size_t first = MIN(q->len, q->cap - q->head);
		struct iovec iov[2] = { { q->ring + q->head, first }, { q->ring, q->len - first } };
		ssize_t r = out_writev(q, iov, q->len > first ? 2 : 1);

		if (r == -EAGAIN)
			return -EAGAIN;
		if (r < 0) {
			reader_gone(q, (int)r, r == -EPIPE ? "its reader is gone" : "cannot write it");
			break;
		}
		q->written += r;
		q->head = (q->head + r) & (q->cap - 1);
		q->len -= r;
	}
	if (!q->len)
		q->head = 0; /* start over at the pages already touched */
	return 0;
}

/* With the lock held, the ring empty: the writer's own attempt. One non-blocking write, or for
 * a plain file, writes until all of it is taken. Returns the bytes written. */
static size_t write_direct(struct outq *q, const struct iovec *iov, int n, size_t total)
{
	size_t done = 0;

	while (done < total) {
		ssize_t r = out_writev_from(q, iov, n, done);

		if (r == -EAGAIN)
			break;
		if (r < 0) {
			reader_gone(q, (int)r, r == -EPIPE ? "its reader is gone" : "cannot write it");
			break;
		}
		done += r;
		q->written += r;
		if (q->mode != OUTQ_PLAIN)
			break; /* the rest waits for the loop: one syscall per write at most */
	}
	return done;
}

size_t outq_writev(struct outq *q, const struct iovec *iov, int iovcnt)
{
	size_t total = 0, done = 0;

	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (!total)
		return 0;
	pthread_mutex_lock(&q->lock);
	/* Bytes already queued go first: only an empty queue lets a writer write itself. */
	if (!q->gone && !q->len)
		done = write_direct(q, iov, iovcnt, total);
	if (!q->gone && done < total) {
		done += ring_put(q, iov, iovcnt, done);
		if (q->len)
			arm(q);
	}
	if (q->gone) {
		q->discarded += total - done;
		done = total;
	} else if (done < total) {
		q->want_space = true;
		q->cut_short++;
	}
	if (q->tap && done)
		q->tap(q->tap_opaque, iov, iovcnt, done);
	pthread_mutex_unlock(&q->lock);
	return done;
}

void outq_set_tap(struct outq *q, outq_tap_fn fn, void *opaque)
{
	q->tap = fn;
	q->tap_opaque = opaque;
}

size_t outq_write(struct outq *q, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };

	return outq_writev(q, &iov, 1);
}

static void on_writable(struct ev_handler *h, uint32_t events)
{
	struct outq *q = container_of(h, struct outq, h);
	bool wake;

	(void)events; /* EPOLLERR or EPOLLHUP: the write below says what happened */
	pthread_mutex_lock(&q->lock);
	q->armed = false; /* delivering a one-shot event disarms it */
	if (drain(q) == -EAGAIN)
		arm(q);
	/* Wake the waiters once half the ring is free, not at the first free byte: each resumed
	 * writer then moves a good batch instead of a trickle. */
	wake = q->want_space && (q->gone || q->len <= q->cap / 2);
	if (wake)
		q->want_space = false;
	pthread_mutex_unlock(&q->lock);
	for (int i = 0; wake && i < q->nwaiters; i++)
		q->waiters[i].fn(q->waiters[i].opaque);
}

int outq_on_space(struct outq *q, outq_space_fn fn, void *opaque)
{
	if (q->nwaiters == OUTQ_MAX_WAITERS)
		return -ENOSPC;
	q->waiters[q->nwaiters].fn = fn;
	q->waiters[q->nwaiters++].opaque = opaque;
	return 0;
}

void outq_off_space(struct outq *q, void *opaque)
{
	int k = 0;

	for (int i = 0; i < q->nwaiters; i++)
		if (q->waiters[i].opaque != opaque)
			q->waiters[k++] = q->waiters[i];
	q->nwaiters = k;
}

int outq_flush(struct outq *q, int idle_ms)
{
	uint64_t last = now_ns();
	int err = 0;

	pthread_mutex_lock(&q->lock);
	while (q->len && !q->gone) {
		struct pollfd p = { .fd = q->wfd, .events = POLLOUT };
		size_t before = q->len;
		uint64_t now;

		if (drain(q) != -EAGAIN)
			break;
		now = now_ns();
		if (q->len != before)
			last = now;
		else if (idle_ms >= 0 && now - last >= (uint64_t)idle_ms * 1000000)
			err = -ETIMEDOUT;
		/* The loop has stopped; nobody else writes now, but the lock is not held across the
		 * wait all the same. */
		pthread_mutex_unlock(&q->lock);
		if (!err && poll(&p, 1, idle_ms < 0 ? -1 : idle_ms - (int)((now - last) / 1000000)) == 0)
			err = -ETIMEDOUT;
		pthread_mutex_lock(&q->lock);
		if (err) {
			pr_warn("%s: %zu bytes of guest output dropped: its reader took nothing for "
				"%d ms", q->name, q->len, idle_ms);
			q->discarded += q->len;
			q->head = q->len = 0;
		}
	}
	if (!err && q->gone)
		err = -EPIPE;
	pthread_mutex_unlock(&q->lock);
	return err;
}

size_t outq_queued(struct outq *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->len;
	pthread_mutex_unlock(&q->lock);
	return n;
}

int outq_stats(void *opaque, struct stat_value *out, int max)
{
	struct outq *q = opaque;
	int n;

	pthread_mutex_lock(&q->lock);
	{
		struct stat_value v[] = {
			{ "device", q->name, 0 },
			{ "kind", q->kind, 0 },
			{ "bytes_written", NULL, q->written },
			{ "bytes_discarded", NULL, q->discarded },
			{ "writes_cut_short", NULL, q->cut_short },
			{ "queued_max", NULL, q->queued_max },
			{ "reader_gone", NULL, q->gone },
		};

		n = MIN((int)ARRAY_SIZE(v), max);
		memcpy(out, v, n * sizeof(v[0]));
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}

/* Decides how fd is written (see outq.h). */
static void choose_mode(struct outq *q, int fd)
{
	struct stat st;
	int nfd, fl;

	q->wfd = fd;
	q->mode = OUTQ_PLAIN;
	if (fstat(fd, &st) < 0) {
		q->kind = "closed";
		q->gone = true;
		pr_info("%s is closed: guest output is discarded", q->name);
		return;
	}
	if (S_ISSOCK(st.st_mode)) {
		q->kind = "socket";
		q->mode = OUTQ_SOCKET;
		return;
	}
	if (!S_ISFIFO(st.st_mode) && !(S_ISCHR(st.st_mode) && isatty(fd))) {
		q->kind = S_ISREG(st.st_mode) ? "file" : "device";
		return;
	}
	q->kind = S_ISFIFO(st.st_mode) ? "pipe" : "tty";
	nfd = fd_reopen_nonblock(fd, O_WRONLY);
	if (nfd >= 0) {
		q->wfd = nfd;
		q->own_wfd = true;
		q->mode = OUTQ_NONBLOCK;
		return;
	}
	if (nfd == -ENXIO) { /* a pipe or FIFO nobody reads any more */
		q->gone = true;
		pr_info("%s: its reader is gone: guest output is discarded", q->name);
		return;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK)) { /* someone made it non-blocking already */
		q->mode = OUTQ_NONBLOCK;
		return;
	}
	pr_info("%s: cannot reopen it without blocking (%s): a stalled reader will stall the "
		"guest", q->name, strerror(-nfd));
}

int fd_reopen_nonblock(int fd, int accmode)
{
	char path[32];
	int nfd;

	/* O_NONBLOCK belongs to the open file description, which the shell and the rest of a
	 * pipeline share with us: set it on a description of our own instead. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, accmode | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	return nfd < 0 ? -errno : nfd;
}

int outq_create(struct evloop *loop, int fd, size_t capacity, struct outq **out)
{
	return outq_create_named(loop, fd, capacity, "stdout", out);
}

int outq_create_named(struct evloop *loop, int fd, size_t capacity, const char *name,
		      struct outq **out)
{
	struct outq *q = calloc(1, sizeof(*q));
	size_t cap = 4096;

	if (!q)
		return -ENOMEM;
	while (cap < capacity)
		cap <<= 1;
	/* Anonymous memory: pages the queue never fills cost nothing. */
	q->ring = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (q->ring == MAP_FAILED) {
		free(q);
		return -ENOMEM;
	}
	q->cap = cap;
	q->loop = loop;
	q->h.fn = on_writable;
	q->h.fd = -1;
	q->name = name;
	pthread_mutex_init(&q->lock, NULL);
	choose_mode(q, fd);
	*out = q;
	return 0;
}

void outq_destroy(void *opaque)
{
	struct outq *q = opaque;

	if (q->registered)
		evloop_del(q->loop, &q->h);
	if (q->own_wfd)
		close(q->wfd);
	munmap(q->ring, q->cap);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
