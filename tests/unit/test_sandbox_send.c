/* The job port's pipe (cmd/sandbox.h: sandbox_job_pipe, sandbox_send_job): sized to hold the
 * whole job, so that mica writes it without a reader and never waits; the port's reader (a
 * description of its own, as virtio-console's input opens one) gets every byte, then the end;
 * a job larger than a pipe may be is refused with one line. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/sandbox.h"
#include "tests/unit/test.h"
#include "vmm/outq.h"

static struct sandbox_run run_with_job(size_t len)
{
	struct sandbox_run r = { .log_fd = -1, .job_fd = { -1, -1 } };

	r.job = malloc(len ? len : 1);
	for (size_t i = 0; i < len; i++)
		r.job[i] = (uint8_t)(i * 131 + (i >> 9));
	r.job_len = len;
	return r;
}

/* Reads fd (non-blocking) until the end: the bytes into buf (cap), their count in *got. Returns
 * 0 at the end, or -errno (-EAGAIN: no end yet). */
static int read_to_end(int fd, uint8_t *buf, size_t cap, size_t *got)
{
	*got = 0;
	for (;;) {
		ssize_t n = read(fd, buf + *got, cap - *got);

		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		*got += (size_t)n;
		if (*got == cap) {
			uint8_t extra;

			n = read(fd, &extra, 1);
			return n == 0 ? 0 : n < 0 ? -errno : -EFBIG;
		}
	}
}

/* Three times a pipe's default 64 KiB: it fits only because the pipe was raised. */
static void sends_all_then_the_end(void)
{
	size_t len = 200 * 1024 + 7, got;
	struct sandbox_run r = run_with_job(len);
	struct err e = { "" };
	uint8_t *buf = malloc(len);
	int rd;

	CHECK_EQ(sandbox_job_pipe(&r, &e), 0);
	CHECK(r.job_fd[0] >= 0 && r.job_fd[1] >= 0);
	CHECK(fcntl(r.job_fd[1], F_GETPIPE_SZ) >= (int)len);
	CHECK(fcntl(r.job_fd[0], F_GETFD) & FD_CLOEXEC);
	CHECK(fcntl(r.job_fd[1], F_GETFD) & FD_CLOEXEC);
	/* The port's reader, as the device opens it: nothing yet, and no end while mica holds the
	 * write end (a warm sandbox's guest waits there until the job is sent). */
	rd = fd_reopen_nonblock(r.job_fd[0], O_RDONLY);
	CHECK(rd >= 0);
	CHECK_EQ(read_to_end(rd, buf, len, &got), -EAGAIN);
	CHECK_EQ(got, 0);

	/* Nobody reads while it writes: it must not block (the test would hang) nor fall short. */
	CHECK_EQ(sandbox_send_job(&r), 0);
	CHECK_EQ(r.job_fd[1], -1);
	CHECK_EQ(read_to_end(rd, buf, len, &got), 0);
	CHECK_EQ(got, len);
	CHECK(!memcmp(buf, r.job, len));
	/* Once only. */
	CHECK_EQ(sandbox_send_job(&r), -EBADF);

	close(rd);
	sandbox_release(&r);
	CHECK(r.job == NULL && r.job_len == 0 && r.job_fd[0] == -1 && r.job_fd[1] == -1);
	free(buf);
}

static void small_and_empty_jobs(void)
{
	size_t lens[] = { 1, 100, 4096 }, got;
	uint8_t buf[4096];

	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		struct sandbox_run r = run_with_job(lens[k]);
		struct err e = { "" };

		CHECK_EQ(sandbox_job_pipe(&r, &e), 0);
		CHECK_EQ(sandbox_send_job(&r), 0);
		CHECK_EQ(read_to_end(r.job_fd[0], buf, sizeof(buf), &got), 0);
		CHECK(got == lens[k] && !memcmp(buf, r.job, got));
		sandbox_release(&r);
	}
	/* No bytes at all: the reader sees the end at once (and the init refuses the record). */
	{
		struct sandbox_run r = run_with_job(0);
		struct err e = { "" };

		CHECK_EQ(sandbox_job_pipe(&r, &e), 0);
		CHECK_EQ(sandbox_send_job(&r), 0);
		CHECK_EQ(read_to_end(r.job_fd[0], buf, sizeof(buf), &got), 0);
		CHECK_EQ(got, 0);
		sandbox_release(&r);
	}
}

/* Larger than /proc/sys/fs/pipe-max-size: refused before any pipe, with what to do. */
static void too_large_refused(void)
{
	unsigned long max = 0;
	FILE *f = fopen("/proc/sys/fs/pipe-max-size", "r");
	struct sandbox_run r = { .log_fd = -1, .job_fd = { -1, -1 } };
	struct err e = { "" };

	if (!f || fscanf(f, "%lu", &max) != 1)
		max = 1u << 20;
	if (f)
		fclose(f);
	r.job_len = max + 1; /* only the length is looked at */
	CHECK_EQ(sandbox_job_pipe(&r, &e), -E2BIG);
	CHECK(strstr(e.msg, "KiB") && strstr(e.msg, "shorten the environment"));
	CHECK(r.job_fd[0] == -1 && r.job_fd[1] == -1);
	r.job_len = 0;
	sandbox_release(&r);
}

TEST_MAIN("sandbox-send", T(sends_all_then_the_end), T(small_and_empty_jobs),
	  T(too_large_refused))
