#include "vmm/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/evloop.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define CONTROL_MAX_COMMANDS 16
#define CONTROL_MAX_CLIENTS 8
#define CONTROL_LINE 256

struct control_cmd {
	const char *name, *help;
	control_fn fn;
	void *opaque;
};

struct control_client {
	struct ev_handler h;
	struct control *ctl;
	bool used;
	size_t len;
	char buf[CONTROL_LINE];
};

struct control {
	struct evloop *loop;
	struct ev_handler listen_h;
	char *path;
	struct control_cmd cmds[CONTROL_MAX_COMMANDS];
	int ncmds;
	struct control_client clients[CONTROL_MAX_CLIENTS];
};

void control_destroy(void *opaque)
{
	struct control *c = opaque;

	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (c->clients[i].used)
			close(c->clients[i].h.fd);
	if (c->listen_h.fn) {
		close(c->listen_h.fd);
		unlink(c->path);
	}
	free(c->path);
	free(c);
}

int control_create(struct evloop *loop, struct control **out)
{
	struct control *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->loop = loop;
	*out = c;
	return 0;
}

int control_register(struct control *c, const char *name, const char *help, control_fn fn,
		     void *opaque)
{
	if (c->ncmds == CONTROL_MAX_COMMANDS)
		return -ENOSPC;
	c->cmds[c->ncmds++] = (struct control_cmd){ name, help, fn, opaque };
	return 0;
}

static void execute(struct control *c, char *line, char *out, size_t outlen)
{
	char *args = line + strcspn(line, " \t");
	size_t n;

	if (*args)
		*args++ = 0;
	args += strspn(args, " \t");
	if (!strcmp(line, "help")) {
		n = snprintf(out, outlen, "ok commands: help");
		for (int i = 0; i < c->ncmds && n < outlen; i++)
			n += snprintf(out + n, outlen - n, ", %s (%s)", c->cmds[i].name, c->cmds[i].help);
		return;
	}
	for (int i = 0; i < c->ncmds; i++) {
		if (!strcmp(line, c->cmds[i].name)) {
			char reply[CONTROL_LINE] = "";
			int err = c->cmds[i].fn(c->cmds[i].opaque, args, reply, sizeof(reply));

			snprintf(out, outlen, "%s %s", err ? "error" : "ok", reply);
			return;
		}
	}
	snprintf(out, outlen, "error unknown command '%.40s': try help", line);
}

static void client_close(struct control_client *cl)
{
	evloop_del(cl->ctl->loop, &cl->h);
	close(cl->h.fd);
	cl->used = false;
}

static void on_client(struct ev_handler *h, uint32_t events)
{
	struct control_client *cl = container_of(h, struct control_client, h);
	ssize_t n = read(h->fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len);
	char *nl;

	(void)events;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) { /* hung up, or reset (ECONNRESET: it left with our reply unread) */
		client_close(cl);
		return;
	}
	cl->len += n;
	cl->buf[cl->len] = 0;
	while ((nl = strchr(cl->buf, '\n'))) {
		char out[CONTROL_LINE * 2];
		size_t len;

		*nl = 0;
		if (nl > cl->buf && nl[-1] == '\r')
			nl[-1] = 0;
		execute(cl->ctl, cl->buf, out, sizeof(out) - 1);
		len = strlen(out);
		out[len++] = '\n';
		/* MSG_NOSIGNAL: a client that hung up must not kill mica with SIGPIPE. The socket
		 * is non-blocking: a reply that does not fit whole (a client sending commands
		 * without reading the replies) ends the client rather than leave half a line. */
		if (send(h->fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len) {
			client_close(cl);
			return;
		}
		cl->len -= nl + 1 - cl->buf;
		memmove(cl->buf, nl + 1, cl->len + 1);
	}
	if (cl->len == sizeof(cl->buf) - 1) {
		static const char msg[] = "error line too long\n";

		if (send(h->fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
			pr_debug("control: cannot answer a client");
		client_close(cl);
	}
}

static void on_accept(struct ev_handler *h, uint32_t events)
{
	struct control *c = container_of(h, struct control, listen_h);
	int fd = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	(void)events;
	if (fd < 0)
		return;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct control_client *cl = &c->clients[i];

		if (!cl->used) {
			memset(cl, 0, sizeof(*cl));
			cl->ctl = c;
			cl->h.fn = on_client;
			if (evloop_add(c->loop, fd, EPOLLIN, &cl->h) == 0) {
				cl->used = true;
				return;
			}
			break;
		}
	}
	close(fd); /* too many clients */
}

int control_listen(struct control *c, const char *path, struct err *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return err_set(e, -ENAMETOOLONG, "the --control path is too long for a UNIX socket "
			       "(%zu bytes at most)", sizeof(sa.sun_path) - 1);
	/* Replace a stale socket left by an earlier run, but never another kind of file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err_set(e, -EEXIST, "%s exists and is not a socket: give another "
				       "--control path", path);
		unlink(path);
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		err = err_set(e, -errno, "cannot listen on %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return err;
	}
	c->path = strdup(path);
	c->listen_h.fn = on_accept;
	err = evloop_add(c->loop, fd, EPOLLIN, &c->listen_h);
	if (err) {
		c->listen_h.fn = NULL;
		close(fd);
		return err_set(e, err, "cannot watch the --control socket: %s", strerror(-err));
	}
	return 0;
}
