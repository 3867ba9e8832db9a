#include "vmm/evloop.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void stop_cb(struct ev_handler *h, uint32_t events)
{
	uint64_t v;

	(void)events;
	if (read(h->fd, &v, sizeof(v)) < 0)
		return;
}

int evloop_init(struct evloop *loop)
{
	memset(loop, 0, sizeof(*loop));
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		return -errno;
	loop->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->stop_fd < 0) {
		int err = -errno;

		close(loop->epfd);
		return err;
	}
	loop->stop_handler.fn = stop_cb;
	return evloop_add(loop, loop->stop_fd, EPOLLIN, &loop->stop_handler);
}

void evloop_destroy(struct evloop *loop)
{
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->stop_fd >= 0)
		close(loop->stop_fd);
	loop->epfd = loop->stop_fd = -1;
}

int evloop_add(struct evloop *loop, int fd, uint32_t events, struct ev_handler *h)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	h->fd = fd;
	return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int evloop_mod(struct evloop *loop, struct ev_handler *h, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = h };

	return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, h->fd, &ev) < 0 ? -errno : 0;
}

int evloop_del(struct evloop *loop, struct ev_handler *h)
{
	return epoll_ctl(loop->epfd, EPOLL_CTL_DEL, h->fd, NULL) < 0 ? -errno : 0;
}

void evloop_add_hook(struct evloop *loop, struct ev_hook *hook)
{
	hook->next = loop->hooks;
	loop->hooks = hook;
}

static int prepare_hooks(struct evloop *loop)
{
	int timeout = -1;

	for (struct ev_hook *k = loop->hooks; k; k = k->next) {
		int t = k->prepare ? k->prepare(k) : -1;

		if (t >= 0 && (timeout < 0 || t < timeout))
			timeout = t;
	}
	return timeout;
}

int evloop_run(struct evloop *loop)
{
	struct epoll_event evs[32];

	while (!atomic_load(&loop->stopping)) {
		int n = epoll_wait(loop->epfd, evs, 32, prepare_hooks(loop));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n && !atomic_load(&loop->stopping); i++) {
			struct ev_handler *h = evs[i].data.ptr;

			h->fn(h, evs[i].events);
		}
		for (struct ev_hook *k = loop->hooks; k; k = k->next)
			if (k->after)
				k->after(k);
	}
	return 0;
}

void evloop_stop(struct evloop *loop)
{
	uint64_t one = 1;

	atomic_store(&loop->stopping, true);
	if (write(loop->stop_fd, &one, sizeof(one)) < 0)
		return; /* the counter is saturated: the loop is being woken anyway */
}
