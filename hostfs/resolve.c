/* The one place a guest's names meet the host's file system: names are checked here and
 * resolved beneath their parent's descriptor with openat2; nodes are reopened here, through
 * the /proc/self/fd descriptor taken when the share was opened, and only when they are regular
 * files or directories. */
#include <errno.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "hostfs/internal.h"

int hostfs_check_name(struct hostfs *fs, const char *name)
{
	size_t len = strnlen(name, NAME_MAX + 1);

	if (len > NAME_MAX) {
		fs->refused++;
		return -ENAMETOOLONG;
	}
	if (len == 0 || memchr(name, '/', len) || !strcmp(name, ".") || !strcmp(name, "..")) {
		fs->refused++;
		return -EINVAL;
	}
	return 0;
}

int hostfs_resolve(struct hostfs *fs, int dirfd, const char *name, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
	};
	long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));

	if (fd >= 0)
		return (int)fd;
	/* A checked single component cannot escape or cross a link; if the kernel still says so,
	 * the guest was trying (a name swapped under us on the host), and confinement refused. */
	if (errno == EXDEV || errno == ELOOP) {
		fs->refused++;
		return errno == ELOOP ? -ELOOP : -EACCES;
	}
	return -errno;
}

void hostfs_fd_name(int fd, char buf[16])
{
	snprintf(buf, 16, "%d", fd);
}

int hostfs_reopen(struct hostfs *fs, struct hostfs_node *n, int flags)
{
	char name[16];
	int fd;

	if (n->pseudo || (n->type != S_IFREG && n->type != S_IFDIR)) {
		fs->refused++;
		return -EACCES;
	}
	fd = hostfs_node_fd(fs, n);
	if (fd < 0)
		return fd;
	/* The magic link leads to the node's own inode, whose type cannot change: nothing is
	 * followed beyond it. O_NOFOLLOW would refuse the magic link itself. */
	hostfs_fd_name(fd, name);
	fd = openat(fs->procfd, name, (flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL)) | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static void stat_from_statx(struct stat *st, const struct statx *x)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
	st->st_ino = x->stx_ino;
	st->st_mode = x->stx_mode;
	st->st_nlink = x->stx_nlink;
	st->st_uid = x->stx_uid;
	st->st_gid = x->stx_gid;
	st->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
	st->st_size = (off_t)x->stx_size;
	st->st_blksize = x->stx_blksize;
	st->st_blocks = (blkcnt_t)x->stx_blocks;
	st->st_atim.tv_sec = x->stx_atime.tv_sec;
	st->st_atim.tv_nsec = x->stx_atime.tv_nsec;
	st->st_mtim.tv_sec = x->stx_mtime.tv_sec;
	st->st_mtim.tv_nsec = x->stx_mtime.tv_nsec;
	st->st_ctim.tv_sec = x->stx_ctime.tv_sec;
	st->st_ctim.tv_nsec = x->stx_ctime.tv_nsec;
}

int hostfs_stat_fd(int fd, struct stat *st, uint64_t *mnt_id)
{
	struct statx x;

	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_MNT_ID,
		  &x) < 0)
		return -errno;
	stat_from_statx(st, &x);
	*mnt_id = (x.stx_mask & STATX_MNT_ID) ? x.stx_mnt_id : 0;
	return 0;
}

int hostfs_enter(struct hostfs *fs, struct hostfs_node *parent, const char *name, int fd,
		 struct hostfs_entry *out)
{
	struct hostfs_node *n;
	uint64_t mnt_id;
	bool pseudo;
	int r;

	memset(out, 0, sizeof(*out));
	r = hostfs_stat_fd(fd, &out->st, &mnt_id);
	if (r < 0) {
		close(fd);
		return r;
	}
	n = hostfs_node_find(fs, out->st.st_dev, out->st.st_ino);
	if (n) {
		if (n == fs->nodes) {
			close(fd);      /* the root: always known, never counted */
		} else {
			/* Found where the guest looked now: the freshest place to find it again. */
			if (hostfs_node_move(fs, n, parent, name) < 0) {
				close(fd);
				return -ENOMEM;
			}
			if (n->fd < 0)
				hostfs_node_attach(fs, n, fd);
			else
				close(fd);
			n->refs++;
		}
		out->id = n->id;
		hostfs_node_attr(n, &out->st);
		return 0;
	}
	/* Only a mount boundary can lead onto another file system. */
	if (mnt_id ? mnt_id == parent->mnt_id : out->st.st_dev == parent->dev)
		pseudo = false;
	else
		pseudo = hostfs_is_pseudo(fs, fd, mnt_id);
	r = hostfs_node_add(fs, fd, &out->st, mnt_id, pseudo, parent, name, &n);
	if (r < 0) {
		if (r == -ENFILE)
			fs->refused++;
		close(fd);
		return r;
	}
	out->id = n->id;
	hostfs_node_attr(n, &out->st);
	return 0;
}

int hostfs_lookup_checked(struct hostfs *fs, struct hostfs_node *parent, const char *name,
			  struct hostfs_entry *out)
{
	int pfd, fd;

	if (parent->pseudo) {
		fs->refused++;
		return -ENOENT;
	}
	pfd = hostfs_node_fd(fs, parent);
	if (pfd < 0)
		return pfd;
	fd = hostfs_resolve(fs, pfd, name, O_PATH, 0);
	if (fd < 0)
		return fd;
	return hostfs_enter(fs, parent, name, fd, out);
}

int hostfs_lookup(struct hostfs *fs, uint64_t parent, const char *name, struct hostfs_entry *out)
{
	struct hostfs_node *p = hostfs_node_get(fs, parent);
	int r;

	if (!p)
		return -ESTALE;
	if (p->type != S_IFDIR)
		return -ENOTDIR;
	if (!strcmp(name, ".") || !strcmp(name, "..")) {
		fs->refused++;
		return -ENOENT;
	}
	r = hostfs_check_name(fs, name);
	if (r < 0)
		return r;
	return hostfs_lookup_checked(fs, p, name, out);
}

int hostfs_parent_for_change(struct hostfs *fs, uint64_t id, struct hostfs_node **out)
{
	struct hostfs_node *p;

	if (fs->readonly)
		return -EROFS;
	p = hostfs_node_get(fs, id);
	if (!p)
		return -ESTALE;
	if (p->type != S_IFDIR)
		return -ENOTDIR;
	if (p->pseudo) {
		fs->refused++;
		return -EROFS;
	}
	*out = p;
	return 0;
}
