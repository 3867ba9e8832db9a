/* Open files: open, create, read, write, fsync, fallocate, lseek, release. A file handle holds
 * a descriptor reopened from the node's O_PATH one (hostfs_reopen: regular files only). */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hostfs/internal.h"

/* The guest's open flags kept; the rest are dropped (hostfs.h). */
#define OPEN_KEPT (O_ACCMODE | O_APPEND | O_TRUNC | O_DIRECT | O_SYNC | O_DSYNC | O_NONBLOCK | \
		   O_LARGEFILE)

/* -EINVAL, -EROFS, or 0; *writable says whether the file is opened for writing. */
static int check_flags(const struct hostfs *fs, int flags, bool *writable)
{
	int acc = flags & O_ACCMODE;

	if (acc == O_ACCMODE)
		return -EINVAL;
	*writable = acc != O_RDONLY;
	if (fs->readonly && (*writable || (flags & O_TRUNC)))
		return -EROFS;
	return 0;
}

int hostfs_open_file(struct hostfs *fs, uint64_t id, int flags, uint64_t *fh)
{
	struct hostfs_node *n = hostfs_node_get(fs, id);
	struct hostfs_handle *h;
	bool writable;
	int fd, r;

	if (!n)
		return -ESTALE;
	r = check_flags(fs, flags, &writable);
	if (r < 0)
		return r;
	if (n->type == S_IFDIR)
		return -EISDIR;
	if (n->type == S_IFLNK)
		return -ELOOP;
	if (!hostfs_handle_room(fs)) {
		fs->refused++;
		return -ENFILE;
	}
	fd = hostfs_reopen(fs, n, flags & OPEN_KEPT);     /* refuses all but regular files */
	if (fd < 0)
		return fd;
	r = hostfs_handle_add(fs, fd, n->id, false, writable, &h);
	if (r < 0) {
		close(fd);
		return r;
	}
	*fh = h->id;
	return 0;
}

int hostfs_create(struct hostfs *fs, uint64_t parent, const char *name, mode_t mode, int flags,
		  mode_t umask, struct hostfs_entry *out, uint64_t *fh)
{
	struct hostfs_node *p;
	struct hostfs_handle *h;
	char fdname[16];
	bool writable;
	int fd, pfd, r;

	r = hostfs_parent_for_change(fs, parent, &p);
	if (r < 0)
		return r;
	r = hostfs_check_name(fs, name);
	if (r < 0)
		return r;
	r = check_flags(fs, flags, &writable);
	if (r < 0)
		return r;
	if (!hostfs_node_room(fs) || !hostfs_handle_room(fs)) {
		fs->refused++;
		return -ENFILE;
	}
	/* Always O_EXCL: opening whatever already has the name (a FIFO, a device node) is
	 * hostfs_open_file's decision, which sees its type first. */
	pfd = hostfs_node_fd(fs, p);
	if (pfd < 0)
		return pfd;
	fd = hostfs_resolve(fs, pfd, name, (flags & OPEN_KEPT) | O_CREAT | O_EXCL,
			    hostfs_guest_mode(mode, S_IFREG) & ~umask);
	if (fd == -EEXIST && !(flags & O_EXCL)) {
		r = hostfs_lookup_checked(fs, p, name, out);
		if (r < 0)
			return r;
		r = hostfs_open_file(fs, out->id, flags, fh);
		if (r < 0) {
			hostfs_forget(fs, out->id, 1);
			return r;
		}
		/* O_TRUNC changed the size the lookup saw: the reply carries the file as it is
		 * now (the guest would otherwise cache the old size). */
		if ((flags & O_TRUNC) &&
		    fstat(hostfs_handle_get(fs, *fh)->fd, &out->st) < 0) {
			r = -errno;
			hostfs_release(fs, *fh);
			hostfs_forget(fs, out->id, 1);
		}
		return r;
	}
	if (fd < 0)
		return fd;
	/* The node's O_PATH descriptor from the open file itself: the same inode, whatever
	 * happens to the name meanwhile. */
	hostfs_fd_name(fd, fdname);
	pfd = openat(fs->procfd, fdname, O_PATH | O_CLOEXEC);
	if (pfd < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	r = hostfs_enter(fs, p, name, pfd, out);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = hostfs_handle_add(fs, fd, out->id, false, writable, &h);
	if (r < 0) {
		close(fd);
		hostfs_forget(fs, out->id, 1);
		return r;
	}
	*fh = h->id;
	return 0;
}

static struct hostfs_handle *file_handle(struct hostfs *fs, uint64_t fh)
{
	struct hostfs_handle *h = hostfs_handle_get(fs, fh);

	return h && !h->dir ? h : NULL;
}

/* Moves iov's bytes in one preadv/pwritev, and finishes a short count (a network file system,
 * a signal) segment by segment, so that a short read means end of file (at the cost of one more
 * pread there). An error after some bytes moved is the short count. */
static ssize_t file_move_bytes(int fd, uint64_t off, const struct iovec *iov, int iovcnt,
			       bool write)
{
	size_t want = 0, done, start = 0;
	ssize_t n;

	if (iovcnt < 0 || iovcnt > IOV_MAX || off > INT64_MAX)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		want += iov[i].iov_len;
	n = write ? pwritev(fd, iov, iovcnt, (off_t)off) : preadv(fd, iov, iovcnt, (off_t)off);
	if (n <= 0)
		return n < 0 ? -errno : 0;
	done = (size_t)n;
	for (int i = 0; i < iovcnt && done < want; start += iov[i].iov_len, i++) {
		size_t skip;

		if (done >= start + iov[i].iov_len)
			continue;
		for (skip = done - start; skip < iov[i].iov_len; skip += (size_t)n, done += (size_t)n) {
			char *base = (char *)iov[i].iov_base + skip;
			size_t len = iov[i].iov_len - skip;

			n = write ? pwrite(fd, base, len, (off_t)(off + done)) :
				    pread(fd, base, len, (off_t)(off + done));
			if (n <= 0)
				return (ssize_t)done;
		}
	}
	return (ssize_t)done;
}

ssize_t hostfs_read(struct hostfs *fs, uint64_t fh, uint64_t off, const struct iovec *iov,
		    int iovcnt)
{
	struct hostfs_handle *h = file_handle(fs, fh);

	if (!h)
		return -EBADF;
	return file_move_bytes(h->fd, off, iov, iovcnt, false);
}

ssize_t hostfs_write(struct hostfs *fs, uint64_t fh, uint64_t off, const struct iovec *iov,
		     int iovcnt)
{
	struct hostfs_handle *h = file_handle(fs, fh);

	if (fs->readonly)
		return -EROFS;
	if (!h || !h->writable)
		return -EBADF;
	return file_move_bytes(h->fd, off, iov, iovcnt, true);
}

int hostfs_fsync(struct hostfs *fs, uint64_t fh, bool datasync)
{
	struct hostfs_handle *h = file_handle(fs, fh);

	if (!h)
		return -EBADF;
	return (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0 ? -errno : 0;
}

int hostfs_fallocate(struct hostfs *fs, uint64_t fh, int mode, uint64_t off, uint64_t len)
{
	struct hostfs_handle *h = file_handle(fs, fh);

	if (fs->readonly)
		return -EROFS;
	if (!h || !h->writable)
		return -EBADF;
	if (off > INT64_MAX || len > INT64_MAX)
		return -EINVAL;
	return fallocate(h->fd, mode, (off_t)off, (off_t)len) < 0 ? -errno : 0;
}

int64_t hostfs_lseek(struct hostfs *fs, uint64_t fh, int64_t off, int whence)
{
	struct hostfs_handle *h = file_handle(fs, fh);
	off_t r;

	if (!h)
		return -EBADF;
	if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END &&
	    whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	r = lseek(h->fd, off, whence);
	return r < 0 ? -errno : r;
}

int hostfs_release(struct hostfs *fs, uint64_t fh)
{
	struct hostfs_handle *h = file_handle(fs, fh);

	if (!h)
		return -EBADF;
	hostfs_handle_del(fs, h);
	return 0;
}
