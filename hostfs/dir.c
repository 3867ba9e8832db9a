/* Open directories: opendir, readdir, fsyncdir, releasedir. A directory handle holds its own
 * descriptor (the node's directory opened again through "." beneath its O_PATH descriptor) and
 * a getdents64 buffer, so a readdir that stopped in the middle of a buffer resumes there without
 * a syscall, and one at any other offset seeks (the offsets are the host's d_off values). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostfs/internal.h"

int hostfs_opendir(struct hostfs *fs, uint64_t id, uint64_t *fh)
{
	struct hostfs_node *n = hostfs_node_get(fs, id);
	struct hostfs_handle *h;
	char *buf = NULL;
	int fd = -1, r;

	if (!n)
		return -ESTALE;
	if (n->type != S_IFDIR)
		return -ENOTDIR;
	if (!hostfs_handle_room(fs)) {
		fs->refused++;
		return -ENFILE;
	}
	if (!n->pseudo) {
		fd = hostfs_node_fd(fs, n);
		if (fd < 0)
			return fd;
		fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		buf = malloc(HOSTFS_DIRBUF);
		if (!buf) {
			close(fd);
			return -ENOMEM;
		}
	}
	r = hostfs_handle_add(fs, fd, n->id, true, false, &h);
	if (r < 0) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return r;
	}
	h->buf = buf;
	h->ino = n->ino;
	*fh = h->id;
	return 0;
}

static struct hostfs_handle *dir_handle(struct hostfs *fs, uint64_t fh)
{
	struct hostfs_handle *h = hostfs_handle_get(fs, fh);

	return h && h->dir ? h : NULL;
}

/* A pseudo directory: "." at 0, ".." at 1, nothing from 2. */
static int readdir_empty(const struct hostfs_handle *h, uint64_t off, hostfs_dirent_fn fn,
			 void *opaque)
{
	if (off == 0 && fn(opaque, ".", 1, h->ino, DT_DIR, 1))
		return 0;
	if (off <= 1)
		fn(opaque, "..", 2, h->ino, DT_DIR, 2);
	return 0;
}

int hostfs_readdir(struct hostfs *fs, uint64_t fh, uint64_t off, hostfs_dirent_fn fn,
		   void *opaque)
{
	struct hostfs_handle *h = dir_handle(fs, fh);

	if (!h)
		return -EBADF;
	if (h->fd < 0)
		return readdir_empty(h, off, fn, opaque);
	if (off != h->cur_off) {
		if (off > INT64_MAX)
			return -EINVAL;
		if (lseek(h->fd, (off_t)off, SEEK_SET) < 0)
			return -errno;
		h->pos = h->len = 0;
		h->cur_off = off;
	}
	for (;;) {
		struct dirent64 *d;

		if (h->pos >= h->len) {
			ssize_t n = getdents64(h->fd, h->buf, HOSTFS_DIRBUF);

			if (n < 0)
				return -errno;
			if (n == 0)
				return 0;
			h->pos = 0;
			h->len = (uint32_t)n;
		}
		d = (struct dirent64 *)(h->buf + h->pos);
		if (fn(opaque, d->d_name, strlen(d->d_name), d->d_ino, d->d_type, (uint64_t)d->d_off))
			return 0;
		h->pos += d->d_reclen;
		h->cur_off = (uint64_t)d->d_off;
	}
}

int hostfs_fsyncdir(struct hostfs *fs, uint64_t fh, bool datasync)
{
	struct hostfs_handle *h = dir_handle(fs, fh);

	if (!h)
		return -EBADF;
	if (h->fd < 0)
		return 0;
	return (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0 ? -errno : 0;
}

int hostfs_releasedir(struct hostfs *fs, uint64_t fh)
{
	struct hostfs_handle *h = dir_handle(fs, fh);

	if (!h)
		return -EBADF;
	hostfs_handle_del(fs, h);
	return 0;
}
