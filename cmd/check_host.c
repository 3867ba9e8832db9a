/* `mica check`, the rest of the host: io_uring, Landlock, seccomp and transparent huge pages.
 * The probes are mica's own: blk_io_create() picks virtio-blk's backend, landlock_open() and
 * seccomp_setup() are what `mica run` calls. */
#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "cmd/check_internal.h"
#include "confine/landlock.h"
#include "confine/seccomp.h"
#include "devices/virtio/blk_io.h"
#include "vmm/evloop.h"

static void noop_ready(void *opaque)
{
	(void)opaque;
}

static void noop_done(void *arg, struct blk_io_req *req)
{
	(void)arg, (void)req;
}

static long read_long(const char *path, long dflt)
{
	FILE *f = fopen(path, "re");
	long v = dflt;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

/* Why io_uring_queue_init fails where blk_io chose threads (blk_io.c logs it only at debug). */
static void uring_reason(char *buf, size_t len)
{
	const char *env = getenv("MICA_BLK_NO_URING");
	struct io_uring ring;
	long disabled = read_long("/proc/sys/kernel/io_uring_disabled", 0);
	int err;

	if (env && *env && strcmp(env, "0")) {
		snprintf(buf, len, "MICA_BLK_NO_URING is set");
		return;
	}
	err = io_uring_queue_init(4, &ring, 0);
	if (!err) {
		io_uring_queue_exit(&ring);
		snprintf(buf, len, "it works now");
	} else if (err == -EPERM && disabled == 2) {
		snprintf(buf, len, "disabled by sysctl kernel.io_uring_disabled=2");
	} else if (err == -EPERM && disabled == 1) {
		snprintf(buf, len, "sysctl kernel.io_uring_disabled=1: only group "
			 "kernel.io_uring_group may use it");
	} else if ((err == -EPERM || err == -ENOSYS) && prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2) {
		snprintf(buf, len, "%s, under a seccomp filter mica was started with (a "
			 "container's?)", strerror(-err));
	} else if (err == -ENOSYS) {
		snprintf(buf, len, "this kernel is built without io_uring");
	} else {
		snprintf(buf, len, "%s", strerror(-err));
	}
}

void check_io_uring(struct report *r)
{
	struct evloop loop;
	struct blk_io *io = NULL;
	struct err e = { "" };
	struct item *it;
	char why[160];

	if (evloop_init(&loop) < 0) {
		add(r, "io_uring", ST_WARN, "cannot tell which I/O backend virtio-blk uses "
			 "(no epoll instance: %s)", strerror(errno));
		return;
	}
	if (blk_io_create(&io, &loop, 8, noop_ready, NULL, &e) == 0) {
		r->blk_backend = blk_io_backend(io);
		blk_io_destroy(io, noop_done, NULL);
	}
	evloop_destroy(&loop);
	if (!r->blk_backend) {
		it = add(r, "io_uring", ST_WARN, "virtio-blk's I/O backend cannot start");
		act(it, "%s: mica run --disk will fail", e.msg);
	} else if (!strcmp(r->blk_backend, "io_uring")) {
		add(r, "io_uring", ST_OK, "io_uring: virtio-blk's I/O goes through it");
	} else {
		uring_reason(why, sizeof(why));
		it = add(r, "io_uring", ST_WARN, "io_uring unavailable (%s)", why);
		act(it, "virtio-blk falls back to a pool of worker threads: a system call and a "
		    "thread wake-up per request, slower than io_uring's batches");
	}
}

void check_landlock(struct report *r)
{
	struct landlock *ll;
	struct err e = { "" };
	struct item *it;

	if (landlock_open(&ll, 0, &e) == 0) {
		r->landlock_abi = landlock_abi(ll);
		landlock_close(ll);
		add(r, "landlock", ST_OK, "Landlock ABI %u: after setup mica opens only the files its "
		    "options named (--landlock on)", r->landlock_abi);
		return;
	}
	it = add(r, "landlock", ST_WARN, "no Landlock: %s", e.msg);
	act(it, "mica runs without it: --landlock on cannot confine which files mica opens%s",
	    strstr(e.msg, "lsm=") ? " (add landlock to the kernel's lsm= parameter)" : "");
}

void check_thp(struct report *r)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	char line[128] = "", *open, *close;
	struct item *it;

	if (f) {
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		fclose(f);
	}
	open = strchr(line, '[');
	close = open ? strchr(open, ']') : NULL;
	if (close && close - open - 1 < (long)sizeof(r->thp))
		snprintf(r->thp, sizeof(r->thp), "%.*s", (int)(close - open - 1), open + 1);
	ascii_safe(r->thp);
	if (!strcmp(r->thp, "always") || !strcmp(r->thp, "madvise")) {
		add(r, "thp", ST_OK, "transparent huge pages (%s): guest RAM can be backed by 2 MiB "
		    "pages", r->thp);
		return;
	}
	it = add(r, "thp", ST_WARN, "transparent huge pages: %s", r->thp[0] ? r->thp : "not in "
		 "this kernel");
	act(it, "guest RAM is mapped in 4 KiB pages: more page faults and TLB misses%s",
	    r->thp[0] ? " (echo madvise > /sys/kernel/mm/transparent_hugepage/enabled)" : "");
}

/* Last of the probes: seccomp_setup() also installs mica's SIGSYS handler and prepares what
 * glibc would do lazily (nothing else here runs after it). */
void check_seccomp(struct report *r)
{
	struct seccomp_opts o = { .on = true, .probe = SECCOMP_NONE };
	struct item *it;
	int err = seccomp_setup(&o);

	r->seccomp = err == 0;
	if (!err) {
		add(r, "seccomp", ST_OK, "seccomp filters: each mica thread runs under its own "
		    "(--seccomp on)");
		return;
	}
	if (err == -EINVAL)
		it = add(r, "seccomp", ST_WARN, "no seccomp filters in this kernel");
	else
		it = add(r, "seccomp", ST_WARN, "cannot prepare the seccomp filters (%s)",
			 strerror(-err));
	act(it, "mica run stops with status 2 unless given --seccomp off, and its threads then "
	    "run unconfined");
}
