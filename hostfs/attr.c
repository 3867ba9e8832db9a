/* A node's attributes: getattr, setattr, readlink, access, statfs and extended attributes. Each
 * works on the node's O_PATH descriptor where the kernel allows it (AT_EMPTY_PATH), and on a
 * descriptor reopened through /proc/self/fd only for regular files and directories. */
#include <errno.h>
#include <linux/limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "hostfs/internal.h"

#define SET_KNOWN (HOSTFS_SET_MODE | HOSTFS_SET_UID | HOSTFS_SET_GID | HOSTFS_SET_SIZE | \
		   HOSTFS_SET_ATIME | HOSTFS_SET_MTIME | HOSTFS_SET_ATIME_NOW | \
		   HOSTFS_SET_MTIME_NOW | HOSTFS_SET_CTIME)

int hostfs_getattr(struct hostfs *fs, uint64_t id, struct stat *st)
{
	struct hostfs_node *n = hostfs_node_get(fs, id);
	int fd;

	if (!n)
		return -ESTALE;
	fd = hostfs_node_fd(fs, n);
	if (fd < 0)
		return fd;
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	hostfs_node_attr(n, st);
	return 0;
}

static int set_mode(struct hostfs *fs, struct hostfs_node *n, mode_t mode)
{
	char name[16];
	int fd;

	if (n->type == S_IFLNK)
		return -EOPNOTSUPP;     /* a symlink has no mode of its own to change */
	fd = hostfs_node_fd(fs, n);
	if (fd < 0)
		return fd;
	/* Through the magic link: it leads to the node's inode and no further, and a chmod of a
	 * device node or FIFO does not open it. */
	hostfs_fd_name(fd, name);
	return fchmodat(fs->procfd, name, hostfs_guest_mode(mode, n->type), 0) < 0 ? -errno : 0;
}

/* Only to mica's own ids, whatever mica's privileges: a guest never gives a file away (nor, with
 * mica as root, to root). */
static int set_owner(struct hostfs *fs, struct hostfs_node *n, const struct hostfs_setattr *sa)
{
	uid_t uid = (sa->valid & HOSTFS_SET_UID) ? sa->uid : (uid_t)-1;
	gid_t gid = (sa->valid & HOSTFS_SET_GID) ? sa->gid : (gid_t)-1;
	int fd;

	if ((uid != (uid_t)-1 && uid != geteuid()) || (gid != (gid_t)-1 && gid != getegid())) {
		fs->refused++;
		return -EPERM;
	}
	fd = hostfs_node_fd(fs, n);
	if (fd < 0)
		return fd;
	return fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int set_size(struct hostfs *fs, struct hostfs_node *n, uint64_t fh, uint64_t size)
{
	struct hostfs_handle *h;
	int fd, r;

	if (n->type == S_IFDIR)
		return -EISDIR;
	if (n->type == S_IFLNK)
		return -EINVAL;
	if (n->type != S_IFREG) {
		fs->refused++;
		return -EACCES;
	}
	if (size > INT64_MAX)
		return -EFBIG;
	h = fh == UINT64_MAX ? NULL : hostfs_handle_get(fs, fh);
	if (fh != UINT64_MAX && !h)
		return -EBADF;
	if (h && !h->dir && h->node_id == n->id && h->writable)
		return ftruncate(h->fd, (off_t)size) < 0 ? -errno : 0;
	fd = hostfs_reopen(fs, n, O_WRONLY | O_NONBLOCK);
	if (fd < 0)
		return fd;
	r = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static bool nsec_valid(long nsec)
{
	return nsec >= 0 && nsec < 1000000000L;
}

static int set_times(struct hostfs *fs, struct hostfs_node *n, const struct hostfs_setattr *sa)
{
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
	char name[16];
	int fd;

	if (sa->valid & HOSTFS_SET_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	else if (sa->valid & HOSTFS_SET_ATIME)
		ts[0] = sa->atime;
	if (sa->valid & HOSTFS_SET_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	else if (sa->valid & HOSTFS_SET_MTIME)
		ts[1] = sa->mtime;
	/* The guest's values are times, not the UTIME_* codes. */
	if (((sa->valid & (HOSTFS_SET_ATIME | HOSTFS_SET_ATIME_NOW)) == HOSTFS_SET_ATIME &&
	     !nsec_valid(ts[0].tv_nsec)) ||
	    ((sa->valid & (HOSTFS_SET_MTIME | HOSTFS_SET_MTIME_NOW)) == HOSTFS_SET_MTIME &&
	     !nsec_valid(ts[1].tv_nsec)))
		return -EINVAL;
	fd = hostfs_node_fd(fs, n);
	if (fd < 0)
		return fd;
	if (utimensat(fd, "", ts, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	/* A kernel without AT_EMPTY_PATH for utimensat: through the magic link, which a symlink
	 * cannot take (the link would be followed). */
	if (n->type == S_IFLNK)
		return -EOPNOTSUPP;
	hostfs_fd_name(fd, name);
	return utimensat(fs->procfd, name, ts, 0) < 0 ? -errno : 0;
}

int hostfs_setattr(struct hostfs *fs, uint64_t id, uint64_t fh, const struct hostfs_setattr *sa,
		   struct stat *st)
{
	struct hostfs_node *n = hostfs_node_get(fs, id);
	uint32_t v = sa->valid;
	int r = 0;

	if (!n)
		return -ESTALE;
	if (v & ~SET_KNOWN)
		return -EINVAL;
	if (v & ~HOSTFS_SET_CTIME) {
		if (fs->readonly)
			return -EROFS;
		if (n->pseudo) {
			fs->refused++;
			return -EROFS;
		}
	}
	if (v & HOSTFS_SET_MODE)
		r = set_mode(fs, n, sa->mode);
	if (!r && (v & (HOSTFS_SET_UID | HOSTFS_SET_GID)))
		r = set_owner(fs, n, sa);
	if (!r && (v & HOSTFS_SET_SIZE))
		r = set_size(fs, n, fh, sa->size);
	if (!r && (v & (HOSTFS_SET_ATIME | HOSTFS_SET_MTIME | HOSTFS_SET_ATIME_NOW |
			HOSTFS_SET_MTIME_NOW)))
		r = set_times(fs, n, sa);
	if (r < 0)
		return r;
	return hostfs_getattr(fs, id, st);
}

ssize_t hostfs_readlink(struct hostfs *fs, uint64_t id, char *buf, size_t size)
{
	struct hostfs_node *n = hostfs_node_get(fs, id);
	ssize_t len;
	int fd;

	if (!n)
		return -ESTALE;
	if (n->type != S_IFLNK)
		return -EINVAL;
	fd = hostfs_node_fd(fs, n);
	if (fd < 0)
		return fd;
	len = readlinkat(fd, "", buf, size);
	return len < 0 ? -errno : len;
}

int hostfs_access(struct hostfs *fs, uint64_t id, int mask)
{
	struct hostfs_node *n = hostfs_node_get(fs, id);
	char name[16];
	int fd;

	if (!n)
		return -ESTALE;
	if (mask & ~(R_OK | W_OK | X_OK))
		return -EINVAL;
	if ((mask & W_OK) && (fs->readonly || n->pseudo))
		return -EROFS;
	if (n->pseudo)
		return 0;          /* r-x for everyone, as getattr shows it */
	fd = hostfs_node_fd(fs, n);
	if (fd < 0)
		return fd;
	/* The magic link leads to the node itself: access checks do not open anything. */
	hostfs_fd_name(fd, name);
	return faccessat(fs->procfd, name, mask, AT_EACCESS) < 0 ? -errno : 0;
}

int hostfs_statfs(struct hostfs *fs, uint64_t id, struct statvfs *st)
{
	struct hostfs_node *n = hostfs_node_get(fs, id);
	int fd;

	if (!n)
		return -ESTALE;
	/* A pseudo file system's figures are none of the guest's business: the share's instead. */
	fd = hostfs_node_fd(fs, n->pseudo ? fs->nodes : n);
	if (fd < 0)
		return fd;
	return fstatvfs(fd, st) < 0 ? -errno : 0;
}

/* Whether n has extended attributes to show: symlinks, device nodes, FIFOs, sockets and pseudo
 * nodes are never opened for them, so they show none. */
static bool has_xattrs(const struct hostfs_node *n)
{
	return !n->pseudo && (n->type == S_IFREG || n->type == S_IFDIR);
}

static int xattr_fd(struct hostfs *fs, struct hostfs_node *n)
{
	return hostfs_reopen(fs, n, (n->type == S_IFDIR ? O_DIRECTORY : 0) | O_RDONLY | O_NONBLOCK);
}

ssize_t hostfs_getxattr(struct hostfs *fs, uint64_t id, const char *name, void *buf, size_t size)
{
	struct hostfs_node *n = hostfs_node_get(fs, id);
	size_t len = strnlen(name, XATTR_NAME_MAX + 1);
	ssize_t r;
	int fd;

	if (!n)
		return -ESTALE;
	if (len == 0 || len > XATTR_NAME_MAX)
		return -ERANGE;
	if (!has_xattrs(n))
		return -ENODATA;
	fd = xattr_fd(fs, n);
	if (fd < 0)
		return fd;
	r = fgetxattr(fd, name, size ? buf : NULL, size);
	r = r < 0 ? -errno : r;
	close(fd);
	return r;
}

ssize_t hostfs_listxattr(struct hostfs *fs, uint64_t id, void *buf, size_t size)
{
	struct hostfs_node *n = hostfs_node_get(fs, id);
	ssize_t r;
	int fd;

	if (!n)
		return -ESTALE;
	if (!has_xattrs(n))
		return 0;
	fd = xattr_fd(fs, n);
	if (fd < 0)
		return fd;
	r = flistxattr(fd, size ? buf : NULL, size);
	r = r < 0 ? -errno : r;
	close(fd);
	return r;
}
