/* A share: opening it (the root's descriptor, /proc's, the mount table, the tables, descriptor
 * bounds sized to fit RLIMIT_NOFILE), resetting and closing it, and its figures. */
#include <errno.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hostfs/internal.h"
#include "vmm/util.h"

/* Descriptors kept for mica itself beyond every share's bounds: its vCPUs, eventfds, images,
 * sockets, and the few a request holds for a moment (a new O_PATH one before it is known to be
 * a new inode, a reopened file). */
#define HOSTFS_FD_MARGIN 256
/* Per share beyond its tables: /proc/self/fd, /proc/self, and the root's. */
#define HOSTFS_FD_FIXED 3
/* The least a share shrunk to fit RLIMIT_NOFILE still gets (and HOSTFS_MIN_FDS descriptors:
 * fdcache.c needs a few besides the two a call may pin). */
#define HOSTFS_MIN_HANDLES 16

/* Descriptors the open shares of this process may hold at most. hostfs_open and hostfs_close
 * run while mica sets up and tears down, on one thread: no lock. */
static uint64_t fds_reserved;
static uint32_t shares_open;

/* Sizes the descriptor bounds (max_fds, max_handles) to RLIMIT_NOFILE: raises the soft limit
 * to the hard one when they need more, then shrinks the defaults (never bounds the user chose)
 * to what is left. */
static int fit_rlimit(const struct hostfs_opts *o, uint32_t *mf, uint32_t *mh, struct err *e)
{
	uint64_t base = fds_reserved + HOSTFS_FD_MARGIN + HOSTFS_FD_FIXED;
	uint64_t need = base + (uint64_t)*mf + *mh, avail;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return err_set(e, -errno, "--share %s: getrlimit(RLIMIT_NOFILE): %s", o->path,
			       strerror(errno));
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return err_set(e, -errno, "--share %s: raising RLIMIT_NOFILE to %llu: %s",
				       o->path, (unsigned long long)rl.rlim_max, strerror(errno));
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	avail = rl.rlim_cur > base ? rl.rlim_cur - base : 0;
	/* Leave the shares still to be opened their part. */
	if (o->nshares > shares_open + 1)
		avail /= o->nshares - shares_open;
	if (o->max_fds && o->max_handles)
		goto too_small;
	if (o->max_fds) {           /* the open files get what the user's choice leaves */
		if (avail < (uint64_t)*mf + HOSTFS_MIN_HANDLES)
			goto too_small;
		*mh = (uint32_t)MIN(*mh, avail - *mf);
	} else if (o->max_handles) {
		if (avail < (uint64_t)*mh + HOSTFS_MIN_FDS)
			goto too_small;
		*mf = (uint32_t)MIN(*mf, avail - *mh);
	} else {                    /* both shrink in proportion */
		if (avail < HOSTFS_MIN_FDS + HOSTFS_MIN_HANDLES)
			goto too_small;
		*mh = (uint32_t)MAX(avail * *mh / ((uint64_t)*mf + *mh), HOSTFS_MIN_HANDLES);
		*mf = (uint32_t)(avail - *mh);
	}
	return 0;
too_small:
	return err_set(e, -EMFILE, "--share %s: %u inode descriptors and %u open files need %llu "
		       "descriptors, but RLIMIT_NOFILE is %llu: raise it (ulimit -n) or lower the "
		       "bounds", o->path, *mf, *mh, (unsigned long long)need,
		       (unsigned long long)rl.rlim_cur);
}

static int open_root(struct hostfs *fs, const char *path, struct err *e)
{
	struct open_how how = { .flags = O_PATH | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
	struct stat st;
	uint64_t mnt_id;
	long probe;
	int fd, r;

	fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, -errno, "--share %s: %s", path,
			       errno == ENOTDIR ? "not a directory" : strerror(errno));
	probe = syscall(SYS_openat2, fd, ".", &how, sizeof(how));
	if (probe < 0) {
		r = -errno;
		close(fd);
		if (r == -ENOSYS)
			return err_set(e, r, "--share %s: this kernel has no openat2 (Linux 5.6 "
				       "and later): shares need it", path);
		return err_set(e, r, "--share %s: %s", path, strerror(-r));
	}
	close((int)probe);
	r = hostfs_stat_fd(fd, &st, &mnt_id);
	if (r < 0) {
		close(fd);
		return err_set(e, r, "--share %s: %s", path, strerror(-r));
	}
	hostfs_node_root(fs, fd, &st, mnt_id, hostfs_is_pseudo(fs, fd, mnt_id));
	return 0;
}

int hostfs_open(const struct hostfs_opts *o, struct hostfs **out, struct err *e)
{
	uint32_t mi = o->max_inodes ? o->max_inodes : HOSTFS_DEFAULT_MAX_INODES;
	uint32_t mf = o->max_fds ? o->max_fds : HOSTFS_DEFAULT_MAX_FDS;
	uint32_t mh = o->max_handles ? o->max_handles : HOSTFS_DEFAULT_MAX_HANDLES;
	struct hostfs *fs;
	int r;

	if (!o->path || !*o->path)
		return err_set(e, -EINVAL, "--share: no directory given");
	if (mi > HOSTFS_MAX_BOUND || mf > HOSTFS_MAX_BOUND || mh > HOSTFS_MAX_BOUND)
		return err_set(e, -EINVAL, "--share %s: at most %u inodes, descriptors and open "
			       "files", o->path, HOSTFS_MAX_BOUND);
	if (o->max_fds && o->max_fds < HOSTFS_MIN_FDS)
		return err_set(e, -EINVAL, "--share %s: max_fds must be at least %u", o->path,
			       HOSTFS_MIN_FDS);
	if (mf > mi)
		mf = mi < HOSTFS_MIN_FDS ? HOSTFS_MIN_FDS : mi;
	r = fit_rlimit(o, &mf, &mh, e);
	if (r < 0)
		return r;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return err_set(e, -ENOMEM, "--share %s: out of memory", o->path);
	fs->readonly = o->readonly;
	fs->max_inodes = mi;
	fs->max_fds = mf;
	fs->max_handles = mh;
	fs->procfd = fs->selffd = -1;
	if (hostfs_nodes_init(fs, mi) < 0 || hostfs_handles_init(fs, mh) < 0) {
		r = err_set(e, -ENOMEM, "--share %s: out of memory for %u inodes and %u open files",
			    o->path, mi, mh);
		goto fail;
	}
	fs->procfd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	fs->selffd = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->procfd < 0 || fs->selffd < 0) {
		r = err_set(e, -errno, "--share %s: /proc/self: %s (shares need /proc mounted)",
			    o->path, strerror(errno));
		goto fail;
	}
	r = hostfs_mounts_load(fs);
	if (r < 0) {
		err_set(e, r, "--share %s: cannot read /proc/self/mountinfo", o->path);
		goto fail;
	}
	r = open_root(fs, o->path, e);
	if (r < 0)
		goto fail;
	fs->fds_reserved = (uint64_t)mf + mh + HOSTFS_FD_FIXED;
	fds_reserved += fs->fds_reserved;
	shares_open++;
	*out = fs;
	return 0;
fail:
	hostfs_close(fs);
	return r;
}

void hostfs_close(struct hostfs *fs)
{
	if (!fs)
		return;
	if (fs->fds_reserved) { /* it was opened */
		fds_reserved -= fs->fds_reserved;
		shares_open--;
	}
	hostfs_handles_free(fs);
	hostfs_nodes_free(fs);
	if (fs->procfd >= 0)
		close(fs->procfd);
	if (fs->selffd >= 0)
		close(fs->selffd);
	free(fs->mounts);
	free(fs);
}

bool hostfs_readonly(const struct hostfs *fs)
{
	return fs->readonly;
}

void hostfs_reset(struct hostfs *fs)
{
	hostfs_handles_clear(fs);
	hostfs_nodes_clear(fs);
}

void hostfs_counts(const struct hostfs *fs, struct hostfs_counts *c)
{
	c->inodes = fs->inodes_used;
	c->fds = fs->fds_used;
	c->reopened = fs->reopened;
	c->handles = fs->handles_used;
	c->refused = fs->refused;
}
