/* The event loop: one epoll instance, run by one thread, serving every device backend
 * (eventfds, stdin, sockets, timers). Handlers are embedded in their owners' structs. */
#ifndef MICA_EVLOOP_H
#define MICA_EVLOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct ev_handler {
	/* events: EPOLLIN, EPOLLOUT, EPOLLHUP, ... as returned by epoll_wait. */
	void (*fn)(struct ev_handler *h, uint32_t events);
	int fd;
};

/* A backend that needs a word before and after each wait (libslirp: it re-declares its sockets
 * and timers every iteration). */
struct ev_hook {
	/* Before waiting: returns how long the loop may sleep, in ms (-1: no limit). */
	int (*prepare)(struct ev_hook *hook);
	/* After the ready handlers of one wait have run. */
	void (*after)(struct ev_hook *hook);
	struct ev_hook *next;
};

struct evloop {
	int epfd;
	struct ev_hook *hooks;
	int stop_fd;             /* eventfd: wakes the loop from any thread */
	atomic_bool stopping;
	struct ev_handler stop_handler;
};

int evloop_init(struct evloop *loop);
void evloop_destroy(struct evloop *loop);
/* Watches h->fd = fd for events; h->fn runs on the loop thread. */
int evloop_add(struct evloop *loop, int fd, uint32_t events, struct ev_handler *h);
int evloop_mod(struct evloop *loop, struct ev_handler *h, uint32_t events);
int evloop_del(struct evloop *loop, struct ev_handler *h);
/* Adds a hook; call before evloop_run (hooks are not for use across threads). */
void evloop_add_hook(struct evloop *loop, struct ev_hook *hook);
/* Runs handlers until evloop_stop(). Returns 0, or -errno if epoll fails. */
int evloop_run(struct evloop *loop);
/* Safe from any thread and from signal handlers. */
void evloop_stop(struct evloop *loop);

#endif
