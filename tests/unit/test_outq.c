/* mica's stdout queue (vmm/outq.c) on the files stdout can be: a pipe nobody reads never blocks
 * a writer, queued bytes arrive in order once the reader reads, a writer cut short hears when
 * room is back, a reader that leaves costs no signal and no error, and a terminal, a socket and
 * a regular file each work. The test runs the event loop itself (epoll_wait on loop.epfd and the
 * ready handlers). Every pipe here is blocking on the test's side: a write on the caller's own
 * description would hang the test, which the alarm then ends. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "tests/unit/test.h"
#include "vmm/evloop.h"
#include "vmm/log.h"
#include "vmm/outq.h"

#define CAP 16384

static struct evloop loop;

/* Runs the handlers of one wait; returns how many were ready. */
static int run_loop(int timeout_ms)
{
	struct epoll_event evs[8];
	int n = epoll_wait(loop.epfd, evs, 8, timeout_ms);

	for (int i = 0; i < n; i++) {
		struct ev_handler *h = evs[i].data.ptr;

		h->fn(h, evs[i].events);
	}
	return n < 0 ? 0 : n;
}

/* Byte i of the stream the tests write. */
static uint8_t pat(size_t i)
{
	return (uint8_t)(i * 7 + i / 251);
}

/* Writes the pattern from *pos in chunks until a write is cut short; returns bytes taken. */
static size_t fill(struct outq *q, size_t *pos)
{
	uint8_t buf[1000];
	size_t taken = 0, n;

	do {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pat(*pos + i);
		n = outq_write(q, buf, sizeof(buf));
		*pos += n;
		taken += n;
	} while (n == sizeof(buf));
	return taken;
}

static int readable(int fd)
{
	int n = 0;

	return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

/* Reads what fd has now (it is made non-blocking for this), checking it continues the pattern
 * at *pos. Returns the bytes read, or -1 on a mismatch. */
static long read_check(int fd, size_t *pos)
{
	uint8_t buf[4096];
	long total = 0;
	ssize_t n;
	int fl = fcntl(fd, F_GETFL);

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pat(*pos + i)) {
				printf("# byte %zu: 0x%02x, expected 0x%02x\n", *pos + i, buf[i],
				       pat(*pos + i));
				fcntl(fd, F_SETFL, fl);
				return -1;
			}
		*pos += n;
		total += n;
	}
	fcntl(fd, F_SETFL, fl);
	return total;
}

/* Reads and runs the loop until everything written (up to end) arrived in order. */
static bool drain_all(struct outq *q, int fd, size_t *rpos, size_t end)
{
	for (int rounds = 0; rounds < 100000 && *rpos < end; rounds++) {
		if (read_check(fd, rpos) < 0)
			return false;
		run_loop(outq_queued(q) ? 100 : 0);
	}
	return *rpos == end && outq_queued(q) == 0;
}

static uint64_t stat_of(struct outq *q, const char *name)
{
	struct stat_value v[16];
	int n = outq_stats(q, v, 16);

	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return v[i].num;
	return ~0ULL;
}

static const char *kind_of(struct outq *q)
{
	struct stat_value v[16];
	int n = outq_stats(q, v, 16);

	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, "kind"))
			return v[i].str;
	return "";
}

static int space_calls;

static void on_space(void *opaque)
{
	(void)opaque;
	space_calls++;
}

static void setup(void)
{
	alarm(120); /* a writer that blocks ends the run (SIGALRM) instead of hanging it */
	log_set_level(LOG_ERROR);
	if (evloop_init(&loop) < 0)
		abort();
	space_calls = 0;
}

/* Nothing queued: a write goes straight to the fd, with no wake-up of the loop. */
static void direct_write_when_empty(void)
{
	int p[2];
	struct outq *q;
	size_t w = 0, r = 0;
	uint8_t b[100];

	setup();
	CHECK(pipe(p) == 0);
	CHECK_EQ(outq_create(&loop, p[1], CAP, &q), 0);
	CHECK(!strcmp(kind_of(q), "pipe"));
	for (int i = 0; i < 100; i++)
		b[i] = pat(i);
	CHECK_EQ(outq_write(q, b, 100), 100);
	w = 100;
	CHECK_EQ(readable(p[0]), 100);   /* already in the pipe */
	CHECK_EQ(outq_queued(q), 0);
	CHECK_EQ(run_loop(0), 0);        /* nothing for the loop to do */
	CHECK_EQ(read_check(p[0], &r), 100);
	CHECK_EQ(r, w);
	CHECK_EQ(stat_of(q, "bytes_written"), 100);
	outq_destroy(q);
	close(p[0]);
	close(p[1]);
	evloop_destroy(&loop);
}

/* A pipe nobody reads: writers are cut short, never blocked; the caller's description stays
 * blocking; once the reader reads, every byte taken arrives, in order. */
static void stopped_reader_never_blocks(void)
{
	int p[2];
	struct outq *q;
	size_t w = 0, r = 0, taken;
	uint8_t b = 0;

	setup();
	CHECK(pipe(p) == 0);
	CHECK_EQ(outq_create(&loop, p[1], CAP, &q), 0);
	CHECK(outq_on_space(q, on_space, NULL) == 0);
	taken = fill(q, &w);
	CHECK_EQ(outq_queued(q), CAP);                    /* the ring is full... */
	CHECK_EQ(taken, (size_t)readable(p[0]) + CAP);    /* ...behind a full pipe */
	CHECK_EQ(outq_write(q, &b, 1), 0);               /* and a further write returns at once */
	CHECK(!(fcntl(p[1], F_GETFL) & O_NONBLOCK));      /* the shared description: untouched */
	CHECK(stat_of(q, "writes_cut_short") >= 2);
	CHECK_EQ(space_calls, 0);
	CHECK(drain_all(q, p[0], &r, w));
	CHECK_EQ(r, w);
	CHECK_EQ(space_calls, 1);                         /* the writer was told, once */
	CHECK_EQ(stat_of(q, "bytes_discarded"), 0);
	outq_destroy(q);
	close(p[0]);
	close(p[1]);
	evloop_destroy(&loop);
}

/* Room comes back only once half the ring is free; writes continue the stream in order. */
static void space_callback_at_half(void)
{
	int p[2];
	struct outq *q;
	size_t w = 0, r = 0;

	setup();
	CHECK(pipe(p) == 0);
	CHECK(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 4096);
	CHECK_EQ(outq_create(&loop, p[1], CAP, &q), 0);
	CHECK(outq_on_space(q, on_space, NULL) == 0);
	fill(q, &w);
	/* Read one pipe's worth: the loop moves that much of the ring, less than half of it. */
	CHECK(read_check(p[0], &r) > 0);
	run_loop(100);
	CHECK(outq_queued(q) > CAP / 2);
	CHECK_EQ(space_calls, 0);
	while (outq_queued(q) > CAP / 2) {
		CHECK(read_check(p[0], &r) >= 0);
		if (!run_loop(1000))
			break;
	}
	CHECK_EQ(space_calls, 1);
	fill(q, &w);                                      /* the stream goes on */
	CHECK(drain_all(q, p[0], &r, w));
	CHECK_EQ(space_calls, 2);
	outq_destroy(q);
	close(p[0]);
	close(p[1]);
	evloop_destroy(&loop);
}

/* The reader leaves with bytes queued: no signal (mica ignores SIGPIPE, as here), no error to
 * the writers, the queue dropped and counted, the waiters woken, everything after discarded. */
static void reader_gone_discards(void)
{
	int p[2];
	struct outq *q;
	size_t w = 0, queued;
	uint8_t b[10] = { 0 };

	setup();
	signal(SIGPIPE, SIG_IGN); /* as cmd/main.c: a pipe's writer gets the signal otherwise */
	CHECK(pipe(p) == 0);
	CHECK_EQ(outq_create(&loop, p[1], CAP, &q), 0);
	CHECK(outq_on_space(q, on_space, NULL) == 0);
	fill(q, &w);
	queued = outq_queued(q);
	close(p[0]);
	CHECK(run_loop(1000) > 0);                        /* EPOLLERR: the drain finds EPIPE */
	CHECK_EQ(outq_queued(q), 0);
	CHECK_EQ(stat_of(q, "bytes_discarded"), queued);
	CHECK_EQ(stat_of(q, "reader_gone"), 1);
	CHECK_EQ(space_calls, 1);
	CHECK_EQ(outq_write(q, b, 10), 10);               /* taken, and dropped */
	CHECK_EQ(stat_of(q, "bytes_discarded"), queued + 10);
	CHECK_EQ(outq_flush(q, 100), -EPIPE);
	CHECK_EQ(run_loop(0), 0);                         /* and the loop does not spin on it */
	outq_destroy(q);
	close(p[1]);
	evloop_destroy(&loop);
}

/* The reader left before mica started: the reopen finds no reader. */
static void no_reader_at_start(void)
{
	int p[2];
	struct outq *q;

	setup();
	signal(SIGPIPE, SIG_IGN);
	CHECK(pipe(p) == 0);
	close(p[0]);
	CHECK_EQ(outq_create(&loop, p[1], CAP, &q), 0);
	CHECK_EQ(outq_write(q, "hello", 5), 5);
	CHECK_EQ(stat_of(q, "bytes_discarded"), 5);
	CHECK_EQ(stat_of(q, "reader_gone"), 1);
	outq_destroy(q);
	close(p[1]);
	evloop_destroy(&loop);
}

/* A socket: send() with MSG_NOSIGNAL, so even with SIGPIPE at its default (fatal) action a
 * peer that hung up costs nothing. */
static void socket_as_stdout(void)
{
	int sv[2], sndbuf = 4096;
	struct outq *q;
	size_t w = 0, r = 0;

	setup();
	signal(SIGPIPE, SIG_DFL);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	CHECK_EQ(outq_create(&loop, sv[0], CAP, &q), 0);
	CHECK(!strcmp(kind_of(q), "socket"));
	fill(q, &w);
	CHECK_EQ(outq_queued(q), CAP);
	CHECK(!(fcntl(sv[0], F_GETFL) & O_NONBLOCK));
	CHECK(drain_all(q, sv[1], &r, w));
	fill(q, &w);
	/* The peer takes what it was sent, then hangs up (with nothing unread, so that our next
	 * send finds EPIPE, not ECONNRESET): the queued rest meets the closed socket. */
	CHECK(read_check(sv[1], &r) > 0);
	close(sv[1]);
	while (outq_queued(q) && run_loop(1000))
		;
	CHECK_EQ(outq_queued(q), 0);
	CHECK_EQ(stat_of(q, "reader_gone"), 1);
	CHECK_EQ(outq_write(q, "x", 1), 1);
	outq_destroy(q);
	close(sv[0]);
	signal(SIGPIPE, SIG_IGN);
	evloop_destroy(&loop);
}

/* A terminal (a pty nobody reads): reopened non-blocking, the caller's description untouched,
 * everything arrives in order at the master. */
static void tty_as_stdout(void)
{
	int master, slave;
	struct termios raw;
	struct outq *q;
	size_t w = 0, r = 0;

	setup();
	if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
		TEST_SKIP("no pty");
	tcgetattr(slave, &raw);
	cfmakeraw(&raw);          /* bytes as they are: no "\n" -> "\r\n" */
	tcsetattr(slave, TCSANOW, &raw);
	CHECK_EQ(outq_create(&loop, slave, CAP, &q), 0);
	CHECK(!strcmp(kind_of(q), "tty"));
	fill(q, &w);
	CHECK_EQ(outq_queued(q), CAP);
	CHECK(!(fcntl(slave, F_GETFL) & O_NONBLOCK));
	CHECK(drain_all(q, master, &r, w));
	CHECK_EQ(r, w);
	outq_destroy(q);
	close(slave);
	close(master);
	evloop_destroy(&loop);
}

/* A regular file never waits for a reader: written at once, nothing ever queued. */
static void file_as_stdout(void)
{
	char path[] = "/tmp/mica-outq.XXXXXX";
	int fd = mkstemp(path);
	struct outq *q;
	size_t w = 0, r = 0;
	uint8_t b[1000];

	setup();
	CHECK(fd >= 0);
	unlink(path);
	CHECK_EQ(outq_create(&loop, fd, CAP, &q), 0);
	CHECK(!strcmp(kind_of(q), "file"));
	for (int k = 0; k < 40; k++) { /* more than the ring holds */
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = pat(w + i);
		CHECK_EQ(outq_write(q, b, sizeof(b)), sizeof(b));
		w += sizeof(b);
		CHECK_EQ(outq_queued(q), 0);
	}
	lseek(fd, 0, SEEK_SET);
	CHECK_EQ(read_check(fd, &r), (long)w);
	outq_destroy(q);
	close(fd);
	evloop_destroy(&loop);
}

struct slow_reader {
	int fd;
	size_t pos;
	long got;
};

static void *slow_read(void *arg)
{
	struct slow_reader *s = arg;
	uint8_t buf[512];
	ssize_t n;

	s->got = 0;
	while ((n = read(s->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pat(s->pos + i))
				s->got = -1;
		s->pos += n;
		if (s->got >= 0)
			s->got += n;
	}
	return NULL;
}

/* At exit: a reader that reads gets everything; one that takes nothing is given up on, and the
 * rest counted as discarded. */
static void flush_at_exit(void)
{
	int p[2];
	struct outq *q;
	size_t w = 0;
	struct slow_reader s = { 0 };
	pthread_t t;

	setup();
	CHECK(pipe(p) == 0);
	CHECK_EQ(outq_create(&loop, p[1], CAP, &q), 0);
	fill(q, &w);
	s.fd = p[0];
	pthread_create(&t, NULL, slow_read, &s);
	CHECK_EQ(outq_flush(q, 10000), 0);
	CHECK_EQ(outq_queued(q), 0);
	outq_destroy(q);
	close(p[1]);              /* the reader sees the end */
	pthread_join(t, NULL);
	CHECK_EQ(s.got, (long)w);
	close(p[0]);

	CHECK(pipe(p) == 0);
	CHECK_EQ(outq_create(&loop, p[1], CAP, &q), 0);
	w = 0;
	fill(q, &w);
	CHECK_EQ(outq_flush(q, 50), -ETIMEDOUT);
	CHECK_EQ(outq_queued(q), 0);
	CHECK_EQ(stat_of(q, "bytes_discarded"), CAP);
	outq_destroy(q);
	close(p[0]);
	close(p[1]);
	evloop_destroy(&loop);
}

/* Several threads writing byte by byte (as vCPUs through the UART) while the loop drains: each
 * thread's bytes arrive in its order, none lost when the writer retries what was cut short. */
#define WRITERS 4
#define PER_WRITER 20000

static atomic_int writers_done;

static void *writer(void *arg)
{
	struct outq *q = arg;
	static atomic_int next_id;
	int id = atomic_fetch_add(&next_id, 1) % WRITERS;

	for (int i = 0; i < PER_WRITER; i++) {
		uint8_t b = (uint8_t)(id << 6 | (i & 63));

		while (!outq_write(q, &b, 1))
			sched_yield();
	}
	atomic_fetch_add(&writers_done, 1);
	return NULL;
}

static void concurrent_writers(void)
{
	int p[2], expect[WRITERS] = { 0 };
	struct outq *q;
	pthread_t t[WRITERS];
	long total = 0;
	bool in_order = true;
	uint8_t buf[4096];

	setup();
	CHECK(pipe(p) == 0);
	CHECK(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 4096);
	CHECK_EQ(outq_create(&loop, p[1], 4096, &q), 0);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	atomic_store(&writers_done, 0);
	for (int i = 0; i < WRITERS; i++)
		pthread_create(&t[i], NULL, writer, q);
	while (total < WRITERS * PER_WRITER) {
		ssize_t n = read(p[0], buf, sizeof(buf));

		for (ssize_t i = 0; i < n; i++) {
			int id = buf[i] >> 6;

			if ((buf[i] & 63) != (expect[id] & 63))
				in_order = false;
			expect[id]++;
		}
		if (n > 0)
			total += n;
		run_loop(n > 0 ? 0 : 10);
		if (n <= 0 && atomic_load(&writers_done) == WRITERS && !outq_queued(q) &&
		    readable(p[0]) == 0)
			break;
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	CHECK(in_order);
	CHECK_EQ(total, WRITERS * PER_WRITER);
	outq_destroy(q);
	close(p[0]);
	close(p[1]);
	evloop_destroy(&loop);
}

TEST_MAIN("outq", T(direct_write_when_empty), T(stopped_reader_never_blocks),
	  T(space_callback_at_half), T(reader_gone_discards), T(no_reader_at_start),
	  T(socket_as_stdout), T(tty_as_stdout), T(file_as_stdout), T(flush_at_exit),
	  T(concurrent_writers))
