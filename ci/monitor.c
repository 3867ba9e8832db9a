#include "ci/monitor.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ci/tap.h"
#include "vmm/evloop.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define LOG_BUF_SIZE (64 * 1024)  /* whole lines gathered for one write */
#define NO_END (-1)
#define NOT_READ UINT64_MAX  /* a tap call's time, before it is needed */

struct monitor_stream {
	struct monitor *m;
	const char *name;
	size_t len;                   /* of the line being assembled */
	char line[MONITOR_LINE_MAX];
};

struct monitor {
	pthread_mutex_t lock;         /* a leaf: everything below the set-up fields */
	/* Set up once. */
	int log_fd;
	bool timestamps;
	uint64_t start_ns;
	void (*stop)(void *opaque, enum ci_pattern_kind kind);
	void *opaque;
	int wake_fd;                  /* eventfd: a pattern asks the loop to end the run */
	struct ev_handler wake;
	struct ev_hook hook;          /* waits out the quiet time after a fail match */
	bool attached;

	struct patterns pats;
	struct tap *tap;              /* --junit's reader, or NULL */
	struct monitor_stream streams[MONITOR_MAX_STREAMS];
	int nstreams;
	char *logbuf;
	size_t loglen;
	uint64_t log_errors;
	char tail[MONITOR_TAIL_BYTES];  /* a ring of the output's last bytes, in lines */
	size_t tail_head, tail_len;
	int end_kind;                 /* NO_END, CI_FAIL_ON or CI_END_ON: the first that asked */
	uint64_t end_ns;              /* when it asked */
	uint64_t last_out_ns;         /* the guest's latest output once an end is asked for */
	bool stopped;                 /* o->stop was called (loop thread only) */
};

int monitor_create(const struct monitor_opts *o, struct monitor **out, struct err *e)
{
	struct monitor *m = calloc(1, sizeof(*m));
	int err;

	if (!m)
		return -ENOMEM;
	m->log_fd = o->log_fd;
	m->timestamps = o->ci->timestamps;
	m->start_ns = o->start_ns;
	m->stop = o->stop;
	m->opaque = o->opaque;
	m->end_kind = NO_END;
	m->wake_fd = -1;
	pthread_mutex_init(&m->lock, NULL);
	err = patterns_compile(&m->pats, o->ci, e);
	if (!err && m->log_fd >= 0 && !(m->logbuf = malloc(LOG_BUF_SIZE)))
		err = -ENOMEM;
	if (!err && o->ci->junit)
		err = tap_create(&m->tap);
	if (!err && (m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		err = -errno;
	if (err) {
		monitor_destroy(m);
		return err;
	}
	*out = m;
	return 0;
}

void monitor_destroy(void *opaque)
{
	struct monitor *m = opaque;

	if (!m)
		return;
	if (m->wake_fd >= 0)
		close(m->wake_fd);
	patterns_free(&m->pats);
	if (m->tap)
		tap_free(m->tap);
	free(m->logbuf);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int monitor_stream(struct monitor *m, const char *name, struct monitor_stream **out)
{
	struct monitor_stream *s;

	if (m->nstreams == MONITOR_MAX_STREAMS)
		return -ENOSPC;
	s = &m->streams[m->nstreams++];
	s->m = m;
	s->name = name;
	*out = s;
	return 0;
}

/* With the lock held: writes the gathered lines (one write, retried for what a signal cut
 * short). A failing log is counted and said once; the run goes on. */
static void log_flush(struct monitor *m)
{
	size_t done = 0;

	while (done < m->loglen) {
		ssize_t r = write(m->log_fd, m->logbuf + done, m->loglen - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (!m->log_errors++)
				pr_err("--serial-log: cannot write (%s): the log misses lines from "
				       "here on", r < 0 ? strerror(errno) : "no room");
			break;
		}
		done += (size_t)r;
	}
	m->loglen = 0;
}

static void log_line(struct monitor *m, const char *line, size_t len, uint64_t ns)
{
	char stamp[32];
	int n = 0;

	if (m->log_fd < 0)
		return;
	if (m->timestamps)
		n = snprintf(stamp, sizeof(stamp), "[+%.6fs] ", (double)ns / 1e9);
	if (m->loglen + (size_t)n + len + 1 > LOG_BUF_SIZE)
		log_flush(m);
	memcpy(m->logbuf + m->loglen, stamp, (size_t)n);
	memcpy(m->logbuf + m->loglen + n, line, len);
	m->loglen += (size_t)n + len;
	m->logbuf[m->loglen++] = '\n';
}

static void tail_put(struct monitor *m, const char *line, size_t len)
{
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? line[i] : '\n';

		m->tail[(m->tail_head + m->tail_len) % MONITOR_TAIL_BYTES] = c;
		if (m->tail_len < MONITOR_TAIL_BYTES)
			m->tail_len++;
		else
			m->tail_head = (m->tail_head + 1) % MONITOR_TAIL_BYTES;
	}
}

/* With the lock held: asks the loop to end the run (the first asker wins). */
static void ask_end(struct monitor *m, enum ci_pattern_kind kind, uint64_t ns)
{
	uint64_t one = 1;

	if (m->end_kind != NO_END)
		return;
	m->end_kind = (int)kind;
	m->end_ns = ns;
	if (write(m->wake_fd, &one, sizeof(one)) < 0)
		pr_err("cannot wake the event loop to end the run: %s", strerror(errno));
}

/* With the lock held: one complete line of a stream, without its '\n'. */
static void line_done(struct monitor *m, const char *line, size_t len, uint64_t ns)
{
	struct pattern *first[3];
	size_t judged = len;

	log_line(m, line, len, ns);
	tail_put(m, line, len);
	/* A terminal's line end (CR LF) is not part of what patterns and TAP see. */
	if (judged && line[judged - 1] == '\r')
		judged--;
	patterns_match(&m->pats, line, judged, ns, first);
	if (first[CI_FAIL_ON])
		ask_end(m, CI_FAIL_ON, ns);
	else if (first[CI_END_ON])
		ask_end(m, CI_END_ON, ns);
	if (m->tap)
		tap_line(m->tap, line, judged, ns);
}

/* Time since start, read at most once per tap call and only when a line completes or an end
 * is pending: the UART hands over one byte per call, on the vCPU's exit path. */
static uint64_t since_start(const struct monitor *m, uint64_t *ns)
{
	if (*ns == NOT_READ)
		*ns = now_ns() - m->start_ns;
	return *ns;
}

void monitor_tap(void *opaque, const struct iovec *iov, int iovcnt, size_t len)
{
	struct monitor_stream *s = opaque;
	struct monitor *m = s->m;
	uint64_t ns = NOT_READ;

	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < iovcnt && len; i++) {
		const char *p = iov[i].iov_base;
		size_t n = MIN(iov[i].iov_len, len);

		len -= n;
		while (n) {
			const char *nl = memchr(p, '\n', n);
			size_t take = nl ? (size_t)(nl - p) : n;
			size_t room = MONITOR_LINE_MAX - s->len;

			if (take >= room) {
				/* Too long: what fits ends this line, the rest starts the next. */
				memcpy(s->line + s->len, p, room);
				line_done(m, s->line, MONITOR_LINE_MAX, since_start(m, &ns));
				s->len = 0;
				p += room;
				n -= room;
				continue;
			}
			memcpy(s->line + s->len, p, take);
			s->len += take;
			p += take;
			n -= take;
			if (nl) {
				line_done(m, s->line, s->len, since_start(m, &ns));
				s->len = 0;
				p++;
				n--;
			}
		}
	}
	/* The quiet time counts only once an end is asked for (perhaps by a line just done). */
	if (m->end_kind != NO_END)
		m->last_out_ns = since_start(m, &ns);
	if (m->loglen)
		log_flush(m);
	pthread_mutex_unlock(&m->lock);
}

/* How long the loop may sleep before the end asked for is due (ms; -1: none asked); 0 when it
 * is due now. With the lock held. */
static int end_due_in(struct monitor *m, uint64_t now)
{
	uint64_t due;

	if (m->end_kind == NO_END)
		return -1;
	if (m->end_kind == CI_END_ON)
		return 0;
	due = MIN(m->last_out_ns + MONITOR_QUIET_MS * 1000000ull,
		  m->end_ns + MONITOR_GRACE_MS * 1000000ull);
	return now >= due ? 0 : (int)((due - now + 999999) / 1000000);
}

/* On the loop thread: ends the run once the end asked for is due. */
static void end_if_due(struct monitor *m)
{
	int kind, in;

	if (m->stopped)
		return;
	pthread_mutex_lock(&m->lock);
	in = end_due_in(m, now_ns() - m->start_ns);
	kind = m->end_kind;
	pthread_mutex_unlock(&m->lock);
	if (in == 0) {
		m->stopped = true;
		m->stop(m->opaque, (enum ci_pattern_kind)kind);
	}
}

static void on_wake(struct ev_handler *h, uint32_t events)
{
	struct monitor *m = container_of(h, struct monitor, wake);
	uint64_t v;

	(void)events;
	if (read(m->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_err("cannot read the monitor's eventfd: %s", strerror(errno));
	end_if_due(m);
}

static int hook_prepare(struct ev_hook *hook)
{
	struct monitor *m = container_of(hook, struct monitor, hook);
	int in;

	if (m->stopped)
		return -1;
	pthread_mutex_lock(&m->lock);
	in = end_due_in(m, now_ns() - m->start_ns);
	pthread_mutex_unlock(&m->lock);
	return in;
}

static void hook_after(struct ev_hook *hook)
{
	end_if_due(container_of(hook, struct monitor, hook));
}

int monitor_attach(struct monitor *m, struct evloop *loop)
{
	int err;

	m->wake.fn = on_wake;
	err = evloop_add(loop, m->wake_fd, EPOLLIN, &m->wake);
	if (err)
		return err;
	m->hook.prepare = hook_prepare;
	m->hook.after = hook_after;
	evloop_add_hook(loop, &m->hook);
	m->attached = true;
	return 0;
}

void monitor_finish(struct monitor *m, uint64_t end_ns)
{
	uint64_t ns = end_ns - m->start_ns;

	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < m->nstreams; i++) {
		struct monitor_stream *s = &m->streams[i];

		if (s->len)
			line_done(m, s->line, s->len, ns);
		s->len = 0;
	}
	if (m->loglen)
		log_flush(m);
	if (m->tap)
		tap_end(m->tap, ns);
	pthread_mutex_unlock(&m->lock);
}

struct patterns *monitor_patterns(struct monitor *m)
{
	return &m->pats;
}

struct tap *monitor_tap_results(struct monitor *m)
{
	return m->tap;
}

size_t monitor_tail(struct monitor *m, char *buf, size_t size)
{
	size_t start = 0, n;

	pthread_mutex_lock(&m->lock);
	/* A full ring starts mid-line: from its first line end on. */
	if (m->tail_len == MONITOR_TAIL_BYTES) {
		while (start < m->tail_len &&
		       m->tail[(m->tail_head + start) % MONITOR_TAIL_BYTES] != '\n')
			start++;
		start = MIN(start + 1, m->tail_len);
	}
	if (m->tail_len - start > size)
		start = m->tail_len - size; /* the newest bytes that fit */
	n = m->tail_len - start;
	for (size_t i = 0; i < n; i++)
		buf[i] = m->tail[(m->tail_head + start + i) % MONITOR_TAIL_BYTES];
	pthread_mutex_unlock(&m->lock);
	return n;
}

uint64_t monitor_log_errors(struct monitor *m)
{
	return m->log_errors;
}
