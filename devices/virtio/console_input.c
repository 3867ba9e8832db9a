/* A named port's host input (console_dev.h): the fd is read straight into the guest's receive
 * buffers, one readv over every buffer held, with no copy in between.
 *
 * Only the event loop reads: a kick or a control message (which may arrive on a vCPU thread)
 * only arms the port's handler, which then runs on the loop. It is armed while the guest has
 * the port open and the input has not ended, when the guest posts receive buffers or opens the
 * port, and after a read that found nothing yet; a wake-up that finds no buffers stops until
 * the guest's next kick. A pipe or terminal is read through a
 * non-blocking description of our own (fd_reopen_nonblock: O_NONBLOCK on the shared one would
 * reach the shell), watched with a one-shot EPOLLIN so that a hung-up fd nobody wants to read
 * wakes nobody. A regular file or /dev/null cannot be watched (epoll says EPERM) and never
 * waits: an eventfd of ours, signalled whenever we want to read, stands in for "readable", so
 * such a file is read as fast as the guest posts buffers and no faster.
 *
 * At the end of the input (read returns 0, or an error such as EIO from a terminal that hung
 * up) the port's host side disconnects (PORT_OPEN 0) after everything read so far is in the
 * used ring: the guest reads that, and then 0. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/console_dev.h"
#include "vmm/log.h"
#include "vmm/outq.h"
#include "vmm/util.h"

/* Reads per wake-up before the loop serves others (each fills every buffer held). */
#define INPUT_BUDGET 16

static bool wanted(const struct con_port *p)
{
	return p->in_mode != CON_IN_NONE && !p->in_eof && p->guest_open &&
	       virtio_queue_live(&p->c->vdev, p->rxq);
}

/* Has in_h fire on the loop (dev->lock held). */
static void arm(struct con_port *p)
{
	uint64_t one = 1;
	int err = 0;

	if (p->in_armed)
		return;
	if (p->in_mode == CON_IN_PLAIN)
		err = write(p->evfd, &one, sizeof(one)) < 0 ? -errno : 0;
	else
		err = evloop_mod(p->c->vdev.env.loop, &p->in_h, EPOLLIN | EPOLLONESHOT);
	if (err)
		pr_warn("virtio-console: port %s: cannot watch its input: %s", p->name,
			strerror(-err));
	else
		p->in_armed = true;
}

void con_input_want(struct con_port *p)
{
	if (wanted(p))
		arm(p);
}

void con_input_forget(struct con_port *p)
{
	con_batch_forget(&p->rx);
}

/* One read into every buffer held. Returns the bytes, 0 at the end, or -errno. */
static ssize_t input_read(struct con_port *p)
{
	struct iovec *iov = p->rx.iov + p->rx.iov_next;
	int n = p->rx.niov - p->rx.iov_next;
	ssize_t r;

	do {
		if (p->in_mode == CON_IN_SOCKET) {
			struct msghdr m = { .msg_iov = iov, .msg_iovlen = n };

			r = recvmsg(p->rfd, &m, MSG_DONTWAIT);
		} else {
			r = readv(p->rfd, iov, n);
		}
	} while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* n bytes arrived in the buffers held: each buffer they reached goes back, the last one with
 * what it got. Returns how many went back. */
static int deliver(struct con_port *p, size_t n)
{
	struct con_batch *b = &p->rx;
	int pushed = 0;

	con_batch_take(b, n);
	while (b->req_next < b->nreq) {
		int r = b->req_next;
		uint64_t left = 0;

		for (int i = b->iov_next; i < b->ends[r]; i++)
			left += b->iov[i].iov_len;
		if (left == b->lens[r] && b->lens[r])
			break; /* not reached */
		/* Filled, or partly: the rest of a partly filled buffer goes unused. */
		virtio_push(&p->c->vdev, p->rxq, b->heads[r], (uint32_t)(b->lens[r] - left));
		b->iov_next = MAX(b->iov_next, b->ends[r]);
		b->req_next++;
		pushed++;
	}
	con_batch_compact(b);
	atomic_fetch_add_explicit(&p->bytes_in, n, memory_order_relaxed);
	return pushed;
}

static void input_ended(struct con_port *p, int err)
{
	if (err)
		pr_info("virtio-console: port %s: its input failed (%s): treated as its end",
			p->name, strerror(-err));
	p->in_eof = true;
	con_ctrl_host_changed(p);
}

/* Reads into the guest's buffers while it wants input (dev->lock held, loop thread). */
static void pump(struct con_port *p)
{
	struct virtio_dev *dev = &p->c->vdev;
	bool pushed = false, empty;
	int reads = 0;

	while (wanted(p)) {
		ssize_t r;

		if (!con_batch_gather(dev, p->rxq, &p->rx, &p->c->req, VIRTQ_DEV_WRITES, &empty))
			break; /* no buffers: the guest's kick brings us back */
		if (reads++ == INPUT_BUDGET) {
			arm(p); /* more later, after the loop's other handlers */
			break;
		}
		r = input_read(p);
		if (r == -EAGAIN) {
			arm(p);
			break;
		}
		if (r <= 0) {
			if (pushed) /* the data first: the guest reads it before it hears the end */
				virtio_notify_used(dev, p->rxq);
			pushed = false;
			input_ended(p, (int)r);
			break;
		}
		pushed |= deliver(p, (size_t)r) > 0;
	}
	if (pushed)
		virtio_notify_used(dev, p->rxq);
}

static void on_input(struct ev_handler *h, uint32_t events)
{
	struct con_port *p = container_of(h, struct con_port, in_h);
	struct virtio_dev *dev = &p->c->vdev;
	uint64_t v;

	(void)events; /* EPOLLHUP or EPOLLERR: the read says what happened */
	pthread_mutex_lock(&dev->lock);
	if (p->in_mode == CON_IN_PLAIN && read(p->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_debug("virtio-console: port %s: eventfd: %s", p->name, strerror(errno));
	p->in_armed = false; /* a one-shot event, or the eventfd read, disarms it */
	pump(p);
	pthread_mutex_unlock(&dev->lock);
}

/* The fd cannot be watched, or need not be: the eventfd stands in for it. */
static int init_plain(struct con_port *p, struct evloop *loop)
{
	int err;

	p->in_mode = CON_IN_PLAIN;
	p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->evfd < 0)
		return -errno;
	err = evloop_add(loop, p->evfd, EPOLLIN, &p->in_h);
	if (err) {
		close(p->evfd);
		p->evfd = -1;
	}
	return err;
}

int con_input_init(struct con_port *p, struct evloop *loop, int in_fd)
{
	struct stat st;
	int fd, err;

	p->in_h.fn = on_input;
	p->in_h.fd = -1;
	if (in_fd < 0)
		return 0;
	if (fstat(in_fd, &st) < 0)
		return -errno;
	p->rfd = in_fd;
	if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return init_plain(p, loop);
	if (S_ISSOCK(st.st_mode)) {
		p->in_mode = CON_IN_SOCKET;
	} else {
		p->in_mode = CON_IN_POLL;
		fd = fd_reopen_nonblock(in_fd, O_RDONLY);
		if (fd >= 0) {
			p->rfd = fd;
			p->own_rfd = true;
		} else if (!(fcntl(in_fd, F_GETFL) & O_NONBLOCK)) {
			pr_info("virtio-console: port %s: cannot reopen its input without blocking "
				"(%s): a read may stall the loop", p->name, strerror(-fd));
		}
	}
	/* Watched from now on, but with no event armed: one-shot, and nothing asked for (a
	 * hang-up is reported once, and finds nothing to do). */
	err = evloop_add(loop, p->rfd, EPOLLONESHOT, &p->in_h);
	if (err == -EPERM) /* /dev/null, /dev/zero: never wait either */
		return init_plain(p, loop);
	return err;
}

void con_input_destroy(struct con_port *p, struct evloop *loop)
{
	if (p->in_h.fn && p->in_h.fd >= 0)
		evloop_del(loop, &p->in_h);
	if (p->evfd >= 0)
		close(p->evfd);
	if (p->own_rfd)
		close(p->rfd);
	p->evfd = p->rfd = p->in_h.fd = -1;
	p->own_rfd = false;
	p->in_mode = CON_IN_NONE;
}
