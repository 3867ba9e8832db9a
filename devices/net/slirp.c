/* --net user: libslirp, a user-space TCP/IP stack, on mica's event loop. No privileges.
 *
 * The guest network is 10.0.2.0/24: the host (gateway) 10.0.2.2, DNS 10.0.2.3, DHCP leases
 * from 10.0.2.15. Frames are complete Ethernet frames both ways (no virtio-net header, no
 * offloads).
 *
 * libslirp re-declares the sockets it wants polled every iteration, so the backend hooks into
 * the loop (struct ev_hook): prepare() calls slirp_pollfds_fill() and brings the epoll set in
 * line with what it asked for (add / mod / del against the previous iteration), and returns
 * the time to the earliest timer (0 while guest frames wait); the handlers record what epoll
 * reported; after() injects the guest's frames, hands epoll's news to slirp_pollfds_poll(),
 * runs the timers that expired, and flushes the device's interrupts.
 *
 * Frames from the guest: send() only copies the frame into a bounded ring (frame_ring.h) and
 * returns; after() feeds at most SLIRP_TX_BATCH of them per iteration to slirp_input(). So
 * libslirp runs only on the loop thread (it is not thread-safe), only ever reads mica's copy
 * (never guest memory a vCPU may be rewriting), and answers (ARP, DHCP, ...) reach the device
 * through port->receive() with no device lock held: no re-entry into the device. A full ring
 * makes send() say -EAGAIN; the pop that makes room calls port->tx_room(). A frame sent from a
 * vCPU thread (a legacy notification) takes the same path; only the loop, which may be
 * asleep, must then be woken: an eventfd, written when the ring stops being empty. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/net/backend.h"
#include "devices/net/frame_ring.h"
#include "devices/net/slirp_lib.h"
#include "vmm/evloop.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define SLIRP_MAX_FRAME (65550 + 14) /* what the device may send, Ethernet header included */
/* Guest frames waiting for the loop: 128 KiB of address space; resident only as deep as the
 * longest burst went (the ring starts over when empty), and it holds the largest frame. */
#define SLIRP_TX_RING (128 << 10)
#define SLIRP_TX_BATCH 64            /* frames injected per loop iteration */
#define GUEST_ERRORS_LOGGED 10
/* One rule in be->hostfwd: "udp:255.255.255.255:65535-255.255.255.255:65535," fits. */
#define HOSTFWD_TEXT_MAX 64

_Static_assert(FRAME_RING_MAX_FRAME(SLIRP_TX_RING) >= SLIRP_MAX_FRAME, "ring too small");

struct slirp_fd {
	struct ev_handler h;
	int fd;
	bool watched;        /* registered with the loop, for `events` */
	uint32_t events;
	uint32_t want;       /* what this iteration's fill asked for */
	uint32_t revents;    /* what epoll reported since prepare() */
	unsigned gen;        /* the iteration that last asked for it */
	struct slirp_fd *next;
};

struct slirp_timer {
	SlirpTimerId id;
	void *cb_opaque;
	bool armed;
	int64_t expire_ms;
	struct slirp_timer *next;
};

struct slirp_backend {
	struct net_backend be;
	struct evloop *loop;
	struct slirp_lib lib;
	Slirp *slirp;
	struct ev_hook hook;

	/* Loop thread only: */
	struct slirp_fd *fds;          /* every fd slirp asked for lately */
	struct slirp_fd **byfd;        /* fd -> entry */
	int nbyfd;
	struct slirp_fd **iter;        /* add_poll index -> entry, for this iteration */
	int niter, cap_iter;
	unsigned gen;
	struct slirp_timer *timers;
	unsigned long guest_errors;

	/* Frames from the guest (the ring has its own lock). */
	struct frame_ring tx;
	struct ev_handler wake_h;      /* an eventfd: frames queued from another thread */
	atomic_bool loop_known;        /* loop_thread is set (by the first prepare()) */
	pthread_t loop_thread;

	/* be.hostfwd: written while the backend is created, read after the run. */
	char hostfwd_text[NET_MAX_HOSTFWD * HOSTFWD_TEXT_MAX];
};

static uint32_t slirp_to_epoll(int ev)
{
	return (ev & SLIRP_POLL_IN ? EPOLLIN : 0) | (ev & SLIRP_POLL_OUT ? EPOLLOUT : 0) |
	       (ev & SLIRP_POLL_PRI ? EPOLLPRI : 0);
}

static int epoll_to_slirp(uint32_t ev)
{
	return (ev & EPOLLIN ? SLIRP_POLL_IN : 0) | (ev & EPOLLOUT ? SLIRP_POLL_OUT : 0) |
	       (ev & EPOLLPRI ? SLIRP_POLL_PRI : 0) | (ev & EPOLLERR ? SLIRP_POLL_ERR : 0) |
	       (ev & EPOLLHUP ? SLIRP_POLL_HUP : 0);
}

/* ---- sockets ---- */

static void fd_ready(struct ev_handler *h, uint32_t events)
{
	container_of(h, struct slirp_fd, h)->revents |= events;
}

static void fd_unwatch(struct slirp_backend *sb, struct slirp_fd *e)
{
	if (e->watched)
		evloop_del(sb->loop, &e->h); /* fails harmlessly if the fd was closed */
	e->watched = false;
}

static struct slirp_fd *fd_lookup(struct slirp_backend *sb, int fd)
{
	return fd >= 0 && fd < sb->nbyfd ? sb->byfd[fd] : NULL;
}

static int add_poll(int fd, int events, void *opaque)
{
	struct slirp_backend *sb = opaque;
	struct slirp_fd *e;

	if (fd < 0)
		return -1;
	if (fd >= sb->nbyfd) {
		int n = MAX(fd + 1, sb->nbyfd * 2);
		struct slirp_fd **b = realloc(sb->byfd, n * sizeof(*b));

		if (!b)
			return -1;
		memset(b + sb->nbyfd, 0, (n - sb->nbyfd) * sizeof(*b));
		sb->byfd = b;
		sb->nbyfd = n;
	}
	if (sb->niter == sb->cap_iter) {
		int n = sb->cap_iter ? sb->cap_iter * 2 : 16;
		struct slirp_fd **it = realloc(sb->iter, n * sizeof(*it));

		if (!it)
			return -1;
		sb->iter = it;
		sb->cap_iter = n;
	}
	e = sb->byfd[fd];
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e)
			return -1;
		e->fd = fd;
		e->h.fn = fd_ready;
		e->next = sb->fds;
		sb->fds = e;
		sb->byfd[fd] = e;
	}
	if (e->gen != sb->gen) {
		e->gen = sb->gen;
		e->want = 0;
	}
	e->want |= slirp_to_epoll(events);
	sb->iter[sb->niter] = e;
	return sb->niter++;
}

static int get_revents(int idx, void *opaque)
{
	struct slirp_backend *sb = opaque;

	if (idx < 0 || idx >= sb->niter || !sb->iter[idx])
		return 0;
	return epoll_to_slirp(sb->iter[idx]->revents);
}

/* Brings the loop's epoll set in line with what this iteration's fill asked for. */
static void sync_fds(struct slirp_backend *sb)
{
	struct slirp_fd **pe = &sb->fds;

	while (*pe) {
		struct slirp_fd *e = *pe;

		if (e->gen != sb->gen) {
			/* Not wanted any more: forget it (a socket that hung up must not keep
			 * waking the loop). */
			fd_unwatch(sb, e);
			if (fd_lookup(sb, e->fd) == e)
				sb->byfd[e->fd] = NULL;
			*pe = e->next;
			free(e);
			continue;
		}
		e->revents = 0;
		if (!e->watched || e->events != e->want) {
			int err = e->watched ? evloop_mod(sb->loop, &e->h, e->want) : -ENOENT;

			if (err == -ENOENT)
				err = evloop_add(sb->loop, e->fd, e->want, &e->h);
			if (err)
				pr_debug("net user: cannot poll fd %d: %s", e->fd, strerror(-err));
			e->watched = !err;
			e->events = e->want;
		}
		pe = &e->next;
	}
}

/* A socket was opened or is being closed: its fd number may come back as another socket,
 * which epoll would not know (a closed fd leaves the epoll set). */
static void forget_fd(int fd, void *opaque)
{
	struct slirp_backend *sb = opaque;
	struct slirp_fd *e = fd_lookup(sb, fd);

	if (e) {
		fd_unwatch(sb, e);
		e->revents = 0;
	}
}

/* ---- timers ---- */

static int64_t clock_ms(void)
{
	return (int64_t)(now_ns() / 1000000);
}

static void *timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct slirp_backend *sb = opaque;
	struct slirp_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->id = id;
	t->cb_opaque = cb_opaque;
	t->next = sb->timers;
	sb->timers = t;
	return t;
}

static void timer_free(void *timer, void *opaque)
{
	struct slirp_backend *sb = opaque;

	for (struct slirp_timer **pt = &sb->timers; *pt; pt = &(*pt)->next) {
		if (*pt == timer) {
			*pt = (*pt)->next;
			free(timer);
			return;
		}
	}
}

static void timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_timer *t = timer;

	(void)opaque;
	t->armed = true;
	t->expire_ms = expire_ms;
}

/* Runs the expired timers; a callback may re-arm or free any timer, so rescan after each. */
static void run_timers(struct slirp_backend *sb)
{
	int64_t now = clock_ms();
	bool again = true;

	while (again) {
		again = false;
		for (struct slirp_timer *t = sb->timers; t; t = t->next) {
			if (t->armed && t->expire_ms <= now) {
				t->armed = false;
				sb->lib.handle_timer(sb->slirp, t->id, t->cb_opaque);
				again = true;
				break;
			}
		}
	}
}

/* ---- other callbacks ---- */

static ssize_t send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirp_backend *sb = opaque;

	if (sb->be.port)
		sb->be.port->receive(sb->be.port, buf, len);
	return (ssize_t)len;
}

static void guest_error(const char *msg, void *opaque)
{
	struct slirp_backend *sb = opaque;

	if (sb->guest_errors < GUEST_ERRORS_LOGGED)
		pr_warn("net user: guest error: %s", msg);
	else if (sb->guest_errors == GUEST_ERRORS_LOGGED)
		pr_warn("net user: more guest errors: no longer reported");
	sb->guest_errors++;
}

static int64_t clock_get_ns(void *opaque)
{
	(void)opaque;
	return (int64_t)now_ns();
}

static void notify(void *opaque)
{
	(void)opaque; /* after() runs every iteration: nothing to kick */
}

static const SlirpCb slirp_callbacks = {
	.send_packet = send_packet,
	.guest_error = guest_error,
	.clock_get_ns = clock_get_ns,
	.timer_free = timer_free,
	.timer_mod = timer_mod,
	.register_poll_fd = forget_fd,
	.unregister_poll_fd = forget_fd,
	.notify = notify,
	.timer_new_opaque = timer_new_opaque,
};

/* ---- frames from the guest ---- */

static bool on_loop_thread(struct slirp_backend *sb)
{
	return atomic_load(&sb->loop_known) && pthread_equal(pthread_self(), sb->loop_thread);
}

static int slirp_send(struct net_backend *be, const struct iovec *iov, int iovcnt, size_t len)
{
	struct slirp_backend *sb = container_of(be, struct slirp_backend, be);
	bool was_empty;
	uint64_t one = 1;
	int err = frame_ring_push(&sb->tx, iov, iovcnt, len, &was_empty);

	if (err)
		return err;
	/* On the loop thread, this iteration's after() injects it; another thread wakes the loop
	 * (once per batch: a ring already holding frames has its wake-up coming). */
	if (was_empty && !on_loop_thread(sb) &&
	    write(sb->wake_h.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_debug("net user: cannot wake the loop: %s", strerror(errno));
	return 0;
}

static void wake_ready(struct ev_handler *h, uint32_t events)
{
	uint64_t v;

	(void)events;
	/* Only to end the wait: after() injects the frames. */
	if (read(h->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_debug("net user: eventfd: %s", strerror(errno));
}

/* Feeds up to SLIRP_TX_BATCH queued frames to libslirp (loop thread, no device lock): what it
 * answers at once goes to port->receive() from here. */
static void inject(struct slirp_backend *sb)
{
	struct net_port *port = sb->be.port;
	bool room = false;

	for (int i = 0; i < SLIRP_TX_BATCH; i++) {
		size_t len;
		const uint8_t *frame = frame_ring_peek(&sb->tx, &len);

		if (!frame)
			break;
		sb->lib.input(sb->slirp, frame, (int)len);
		room |= frame_ring_pop(&sb->tx);
	}
	if (room && port)
		port->tx_room(port);
}

/* ---- the loop hook ---- */

static int slirp_prepare(struct ev_hook *hook)
{
	struct slirp_backend *sb = container_of(hook, struct slirp_backend, hook);
	uint32_t timeout = UINT32_MAX;
	int64_t now;

	if (!atomic_load(&sb->loop_known)) {
		sb->loop_thread = pthread_self();
		atomic_store(&sb->loop_known, true);
	}
	sb->gen++;
	sb->niter = 0;
	sb->lib.pollfds_fill(sb->slirp, &timeout, add_poll, sb);
	sync_fds(sb);

	if (frame_ring_count(&sb->tx))
		return 0; /* more than one batch waited: the rest goes next iteration */
	now = clock_ms();
	for (struct slirp_timer *t = sb->timers; t; t = t->next) {
		if (t->armed) {
			int64_t d = t->expire_ms - now;

			d = d < 0 ? 0 : d;
			if (d < (int64_t)timeout)
				timeout = (uint32_t)d;
		}
	}
	return timeout > INT_MAX ? -1 : (int)timeout;
}

static void slirp_after(struct ev_hook *hook)
{
	struct slirp_backend *sb = container_of(hook, struct slirp_backend, hook);

	inject(sb);
	sb->lib.pollfds_poll(sb->slirp, 0, get_revents, sb);
	run_timers(sb);
	if (sb->be.port)
		sb->be.port->flush(sb->be.port);
}

/* ---- host forwarding: which port each rule got ---- */

/* The fds one slirp_pollfds_fill() names (at setup, apart from the loop's bookkeeping). */
struct fd_list {
	int fd[NET_MAX_HOSTFWD + 8];
	int n;
};

static int collect_fd(int fd, int events, void *opaque)
{
	struct fd_list *l = opaque;

	(void)events;
	if (l->n == (int)ARRAY_SIZE(l->fd))
		return -1;
	l->fd[l->n] = fd;
	/* slirp keeps the index for a get_revents() that never comes with it: the loop's first
	 * prepare() fills anew before any slirp_pollfds_poll(). */
	return l->n++;
}

/* Whether fd is a socket of h's protocol bound to h's host address, and to h's port unless
 * that is 0; its address in *a. */
static bool bound_for(int fd, const struct net_hostfwd *h, struct sockaddr_in *a)
{
	int type;
	socklen_t alen = sizeof(*a), tlen = sizeof(type);

	return getsockname(fd, (struct sockaddr *)a, &alen) == 0 && alen == sizeof(*a) &&
	       a->sin_family == AF_INET && a->sin_addr.s_addr == h->host_addr.s_addr &&
	       (!h->host_port || ntohs(a->sin_port) == h->host_port) &&
	       getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 &&
	       type == (h->udp ? SOCK_DGRAM : SOCK_STREAM);
}

/* The socket libslirp has just bound for rule h. slirp_add_hostfwd() does not return the port
 * (libslirp 4.7 nor passes the socket to register_poll_fd), but slirp_pollfds_fill() names
 * every socket slirp polls, and before the guest runs those are the forwarding sockets alone:
 * h's is the one that matches h and is none of the earlier rules' (claimed[0..nclaimed)),
 * which may match it too (the same address, port 0). Called at setup, before any seccomp
 * filter: getsockname() and getsockopt() need no rule. Returns its fd (address in *a), or -1
 * when there is not exactly one such socket. */
static int find_bound(struct slirp_backend *sb, const struct net_hostfwd *h, const int *claimed,
		      int nclaimed, struct sockaddr_in *a)
{
	struct fd_list l = { .n = 0 };
	uint32_t timeout = UINT32_MAX;
	int found = -1;

	sb->lib.pollfds_fill(sb->slirp, &timeout, collect_fd, &l);
	for (int i = 0; i < l.n; i++) {
		struct sockaddr_in cand;
		bool taken = false;

		for (int k = 0; k < nclaimed; k++)
			taken |= claimed[k] == l.fd[i];
		if (taken || !bound_for(l.fd[i], h, &cand))
			continue;
		if (found >= 0)
			return -1;
		found = l.fd[i];
		*a = cand;
	}
	return found;
}

/* Binds o's rules in order; each as bound goes into be.hostfwd and, when the kernel chose
 * the port, on stderr (a script running many VMs at once greps it; the JSON has it too). */
static int add_forwards(struct slirp_backend *sb, const struct net_opts *o, struct err *e)
{
	int claimed[NET_MAX_HOSTFWD];
	size_t used = 0;

	for (int i = 0; i < o->nhostfwd; i++) {
		const struct net_hostfwd *h = &o->hostfwd[i];
		const char *proto = h->udp ? "udp" : "tcp";
		char addr[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];
		struct sockaddr_in a;

		inet_ntop(AF_INET, &h->host_addr, addr, sizeof(addr));
		inet_ntop(AF_INET, &h->guest_addr, guest, sizeof(guest));
		errno = 0;
		if (sb->lib.add_hostfwd(sb->slirp, h->udp, h->host_addr, h->host_port,
				      h->guest_addr, h->guest_port) < 0)
			return err_set(e, errno ? -errno : -EINVAL,
				       "net user: cannot forward %s %s:%u (to guest port %u): %s",
				       proto, addr, h->host_port, h->guest_port,
				       errno ? strerror(errno) : "refused by libslirp");
		claimed[i] = find_bound(sb, h, claimed, i, &a);
		if (claimed[i] < 0)
			return err_set(e, -EIO, "net user: forwarding %s %s:%u (to guest port %u): "
				       "cannot find the socket libslirp bound, to learn its port",
				       proto, addr, h->host_port, h->guest_port);
		/* HOSTFWD_TEXT_MAX holds any rule: never truncated. */
		used += (size_t)snprintf(sb->hostfwd_text + used, sizeof(sb->hostfwd_text) - used,
					 "%s%s:%s:%u-%s:%u", i ? "," : "", proto, addr,
					 ntohs(a.sin_port), guest, h->guest_port);
		used = MIN(used, sizeof(sb->hostfwd_text) - 1);
		/* Printed at the default level when the port is news to the user, else with -v. */
		log_msg(h->host_port ? LOG_INFO : LOG_WARN, "hostfwd %s %s:%u -> guest %s:%u", proto,
			addr, ntohs(a.sin_port), guest, h->guest_port);
	}
	if (o->nhostfwd)
		sb->be.hostfwd = sb->hostfwd_text;
	return 0;
}

/* ---- life cycle ---- */

static void slirp_destroy(struct net_backend *be)
{
	struct slirp_backend *sb = container_of(be, struct slirp_backend, be);

	if (sb->slirp)
		sb->lib.cleanup(sb->slirp);
	while (sb->fds) {
		struct slirp_fd *e = sb->fds;

		fd_unwatch(sb, e);
		sb->fds = e->next;
		free(e);
	}
	while (sb->timers) {
		struct slirp_timer *t = sb->timers;

		sb->timers = t->next;
		free(t);
	}
	if (sb->wake_h.fn) {
		evloop_del(sb->loop, &sb->wake_h);
		close(sb->wake_h.fd);
	}
	/* The hook stays on the loop's list (evloop has no way to take it off): the loop must
	 * not run again once the device is destroyed, as in vm_destroy(). */
	frame_ring_destroy(&sb->tx);
	free(sb->byfd);
	free(sb->iter);
	slirp_lib_close(&sb->lib);
	free(sb);
}

static const struct net_backend_ops slirp_ops = {
	.send = slirp_send,
	.destroy = slirp_destroy,
};

static struct in_addr ip4(const char *s)
{
	struct in_addr a;

	inet_pton(AF_INET, s, &a);
	return a;
}

int net_slirp_create(struct evloop *loop, const struct net_opts *o, struct net_backend **out,
		     struct err *e)
{
	struct slirp_backend *sb = calloc(1, sizeof(*sb));
	SlirpConfig cfg = {
		.version = 4,
		.restricted = 0,
		.in_enabled = true,
		.vnetwork = ip4("10.0.2.0"),
		.vnetmask = ip4("255.255.255.0"),
		.vhost = ip4("10.0.2.2"),
		.in6_enabled = false,
		.vhostname = "mica",
		.vdhcp_start = ip4("10.0.2.15"),
		.vnameserver = ip4("10.0.2.3"),
	};
	int fd, err;

	if (!sb)
		return err_set(e, -ENOMEM, "out of memory");
	sb->be = (struct net_backend){ .ops = &slirp_ops, .name = "user" };
	sb->loop = loop;
	err = frame_ring_init(&sb->tx, SLIRP_TX_RING);
	if (err) {
		err_set(e, err, "net user: cannot map the transmit ring: %s", strerror(-err));
		goto fail;
	}
	err = slirp_lib_open(&sb->lib, e);
	if (err)
		goto fail;

	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0) {
		err = err_set(e, -errno, "net user: eventfd: %s", strerror(errno));
		goto fail;
	}
	sb->wake_h.fn = wake_ready;
	err = evloop_add(loop, fd, EPOLLIN, &sb->wake_h);
	if (err) {
		close(fd);
		sb->wake_h.fn = NULL;
		err_set(e, err, "net user: epoll: %s", strerror(-err));
		goto fail;
	}

	sb->slirp = sb->lib.new_(&cfg, &slirp_callbacks, sb);
	if (!sb->slirp) {
		err = err_set(e, -EIO, "net user: libslirp could not start");
		goto fail;
	}
	err = add_forwards(sb, o, e);
	if (err)
		goto fail;
	sb->hook.prepare = slirp_prepare;
	sb->hook.after = slirp_after;
	evloop_add_hook(loop, &sb->hook);
	*out = &sb->be;
	return 0;
fail:
	slirp_destroy(&sb->be);
	return err;
}
