/* ci/monitor.c and ci/patterns.c: the guest's output cut into lines per stream whatever the
 * chunks, logged whole (with stamps), matched once per pattern, and a fail or end pattern ending
 * the run through the event loop. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ci/monitor.h"
#include "ci/patterns.h"
#include "tests/unit/test.h"
#include "vmm/evloop.h"
#include "vmm/util.h"

struct stops {
	struct evloop *loop;
	int n;
	enum ci_pattern_kind kind;
};

static void on_stop(void *opaque, enum ci_pattern_kind kind)
{
	struct stops *s = opaque;

	s->n++;
	s->kind = kind;
	if (s->loop)
		evloop_stop(s->loop);
}

static struct ci_opts opts_with(const char *kinds, const char *const *sources)
{
	struct ci_opts o = { 0 };

	for (int i = 0; kinds[i]; i++) {
		o.patterns[i].kind = kinds[i] == 'e' ? CI_EXPECT : kinds[i] == 'f' ? CI_FAIL_ON : CI_END_ON;
		o.patterns[i].source = sources[i];
		o.npatterns++;
	}
	return o;
}

static void feed(struct monitor_stream *s, const char *text)
{
	struct iovec iov = { (void *)text, strlen(text) };

	monitor_tap(s, &iov, 1, iov.iov_len);
}

/* The log file's content. */
static char *slurp(int fd, size_t *len)
{
	static char buf[1 << 16];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	*len = n > 0 ? (size_t)n : 0;
	buf[*len] = '\0';
	return buf;
}

static void test_lines_per_stream(void)
{
	static const char *const src[] = { "^ok 2 - b$", "serial: done" };
	struct ci_opts ci = opts_with("ee", src);
	struct stops st = { 0 };
	struct monitor_opts o = { .ci = &ci, .stop = on_stop, .opaque = &st };
	struct monitor_stream *a, *b;
	struct monitor *m;
	struct err e = { "" };
	char path[] = "/tmp/mica-test-monitor-XXXXXX";
	size_t len;
	char *log;

	o.log_fd = mkstemp(path);
	unlink(path);
	o.start_ns = now_ns();
	CHECK(monitor_create(&o, &m, &e) == 0);
	CHECK(monitor_stream(m, "console", &a) == 0 && monitor_stream(m, "serial", &b) == 0);
	/* Lines split across chunks, interleaved between streams, CR LF ends, an iovec of two. */
	feed(a, "ok 1 - a\nok 2");
	feed(b, "serial: do");
	feed(a, " - b\r\nrest");
	feed(b, "ne\n");
	struct iovec iov[2] = { { "x\ny", 3 }, { "z\nnot taken", 11 } };
	monitor_tap(a, iov, 2, 5); /* the queue took 5 bytes of 14: "x\ny" "z\n" */
	log = slurp(o.log_fd, &len);
	if (strcmp(log, "ok 1 - a\nok 2 - b\r\nserial: done\nrestx\nyz\n"))
		printf("#   log: '%s'\n", log);
	CHECK(!strcmp(log, "ok 1 - a\nok 2 - b\r\nserial: done\nrestx\nyz\n"));
	CHECK(monitor_patterns(m)->p[0].matched && monitor_patterns(m)->p[1].matched);
	/* "ok 2 - b" matched without its CR; the line kept is what the guest printed. */
	CHECK_EQ(monitor_patterns(m)->p[0].line_len, 8);
	feed(b, "partial, no newline");
	monitor_finish(m, now_ns());
	log = slurp(o.log_fd, &len);
	CHECK(len > 20 && !strcmp(log + len - 20, "partial, no newline\n"));
	CHECK_EQ(st.n, 0);
	close(o.log_fd);
	monitor_destroy(m);
}

static void test_long_lines_and_tail(void)
{
	struct ci_opts ci = { 0 };
	struct monitor_opts o = { .ci = &ci, .log_fd = -1, .stop = on_stop };
	static char big[3 * MONITOR_LINE_MAX + 10], tail[MONITOR_TAIL_BYTES];
	struct monitor_stream *s;
	struct monitor *m;
	struct err e = { "" };
	size_t n;

	ci.serial_log = "x"; /* watching, without a file */
	CHECK(monitor_create(&o, &m, &e) == 0);
	CHECK(monitor_stream(m, "console", &s) == 0);
	memset(big, 'a', sizeof(big) - 1);
	feed(s, big);
	feed(s, "\nlast line\n");
	n = monitor_tail(m, tail, sizeof(tail));
	/* The ring starts at a line: the cut pieces of the long line, then "last line". */
	CHECK(n >= 10 && !memcmp(tail + n - 10, "last line\n", 10));
	CHECK(n <= MONITOR_TAIL_BYTES && (n == 10 || tail[0] == 'a'));
	for (int i = 0; i < 100; i++)
		feed(s, "0123456789012345678901234567890123456789012345678901234567890123456789\n");
	n = monitor_tail(m, tail, sizeof(tail));
	/* 8192 bytes back reach into the long line's third piece: from the line after it on (its
	 * last 9 bytes, a line of their own). */
	CHECK(n == 10 + 10 + 100 * 71 && !memcmp(tail, "aaaaaaaaa\nlast line\n0123", 24) &&
	      tail[n - 1] == '\n');
	/* A smaller buffer gets the newest bytes. */
	CHECK_EQ(monitor_tail(m, tail, 71), 71);
	CHECK(!memcmp(tail, "0123", 4) && tail[70] == '\n');
	monitor_destroy(m);
}

static void test_kernel_preset(void)
{
	static const char *const src[] = { "kernel" };
	static const char *const trouble[] = {
		"[    9.09] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
		"[    1.00] Oops: 0002 [#1] PREEMPT SMP NOPTI",
		"[    1.00] BUG: kernel NULL pointer dereference, address: 0000000000000000",
		"[    4.60] WARNING: CPU: 0 PID: 0 at arch/x86/kernel/fpu/xstate.c:606 fpu__init_system_xstate",
		"[    2.00] BUG: KASAN: slab-out-of-bounds in foo+0x1/0x2",
		"[    2.00] UBSAN: shift-out-of-bounds in lib/x.c:12:3",
		"[    2.00] general protection fault, probably for non-canonical address 0xdead: 0000 [#1]",
		"[  245.00] INFO: task kworker/0:1:12 blocked for more than 120 seconds.",
	};
	static const char *const fine[] = {
		"[    4.60] Speculative Return Stack Overflow: WARNING: See https://kernel.org/doc/html/",
		"[    0.00] Linux version 6.1.0-57-cloud-amd64",
		"ok 1 - oops_test_name",
	};
	struct ci_opts ci = opts_with("f", src);
	struct patterns ps;
	struct pattern *first[3];
	struct err e = { "" };

	for (size_t i = 0; i < ARRAY_SIZE(trouble); i++) {
		CHECK(patterns_compile(&ps, &ci, &e) == 0);
		patterns_match(&ps, trouble[i], strlen(trouble[i]), 1, first);
		if (!first[CI_FAIL_ON])
			printf("#   not matched: %s\n", trouble[i]);
		CHECK(first[CI_FAIL_ON] == &ps.p[0]);
		patterns_free(&ps);
	}
	CHECK(patterns_compile(&ps, &ci, &e) == 0);
	for (size_t i = 0; i < ARRAY_SIZE(fine); i++) {
		patterns_match(&ps, fine[i], strlen(fine[i]), 1, first);
		if (first[CI_FAIL_ON])
			printf("#   matched: %s\n", fine[i]);
		CHECK(!first[CI_FAIL_ON]);
	}
	patterns_free(&ps);
}

static void test_bad_pattern(void)
{
	static const char *const src[] = { "ok", "x(" };
	struct ci_opts ci = opts_with("ee", src);
	struct monitor_opts o = { .ci = &ci, .log_fd = -1, .stop = on_stop };
	struct monitor *m = NULL;
	struct err e = { "" };

	CHECK(monitor_create(&o, &m, &e) == -EINVAL);
	CHECK(strstr(e.msg, "--expect 'x('") && strstr(e.msg, "regex(7)"));
}

struct writer {
	struct monitor_stream *s;
	const char *text;
};

static void *write_later(void *opaque)
{
	struct writer *w = opaque;

	usleep(10000);
	feed(w->s, w->text);
	return NULL;
}

/* A match on another thread (as on a vCPU's) wakes the loop, which ends the run: at once for an
 * end pattern, after the quiet time for a fail pattern; once. */
static void end_through_loop(const char *kinds, const char *line, enum ci_pattern_kind want)
{
	static const char *const src[] = { "FAIL", "DONE" };
	struct ci_opts ci = opts_with(kinds, src);
	struct evloop loop;
	struct stops st = { .loop = &loop };
	struct monitor_opts o = { .ci = &ci, .log_fd = -1, .stop = on_stop, .opaque = &st };
	struct monitor_stream *s;
	struct monitor *m;
	struct err e = { "" };
	struct writer w;
	pthread_t t;

	o.start_ns = now_ns();
	CHECK(evloop_init(&loop) == 0);
	CHECK(monitor_create(&o, &m, &e) == 0);
	CHECK(monitor_stream(m, "serial", &s) == 0);
	CHECK(monitor_attach(m, &loop) == 0);
	w = (struct writer){ s, line };
	pthread_create(&t, NULL, write_later, &w);
	CHECK(evloop_run(&loop) == 0);
	pthread_join(t, NULL);
	CHECK_EQ(st.n, 1);
	CHECK_EQ(st.kind, want);
	feed(s, "FAIL again\nDONE again\n"); /* no second stop */
	CHECK_EQ(st.n, 1);
	monitor_destroy(m);
	evloop_destroy(&loop);
}

static void test_end_on_stops(void)
{
	end_through_loop("fn", "booting\nall DONE\n", CI_END_ON);
}

static void test_fail_on_stops(void)
{
	end_through_loop("fn", "a FAIL here\ntrace line\n", CI_FAIL_ON);
}

TEST_MAIN("monitor",
	{ "lines_per_stream", test_lines_per_stream },
	{ "long_lines_and_tail", test_long_lines_and_tail },
	{ "kernel_preset", test_kernel_preset },
	{ "bad_pattern", test_bad_pattern },
	{ "end_on_stops", test_end_on_stops },
	{ "fail_on_stops", test_fail_on_stops })
