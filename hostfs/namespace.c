/* Changing directories: mknod, mkdir, symlink, link, unlink, rmdir, rename. Every name is one
 * checked component handed to an *at call on its parent's O_PATH descriptor, which neither
 * follows a final symlink nor can leave the directory; the new entry is then looked up like any
 * other (hostfs_lookup_checked). A call that needs two nodes' descriptors gets them together
 * (hostfs_node_fd_pair: finding one may close another for room). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostfs/internal.h"

/* The parent and the name of a change that makes a node: also room for that node. */
static int prepare_new(struct hostfs *fs, uint64_t parent, const char *name,
		       struct hostfs_node **p)
{
	int r = hostfs_parent_for_change(fs, parent, p);

	if (r == 0)
		r = hostfs_check_name(fs, name);
	if (r == 0 && !hostfs_node_room(fs)) {
		fs->refused++;
		r = -ENFILE;
	}
	return r;
}

int hostfs_mknod(struct hostfs *fs, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
		 mode_t umask, struct hostfs_entry *out)
{
	mode_t type = mode & S_IFMT;
	struct hostfs_node *p;
	int r;

	(void)rdev;        /* only regular files and FIFOs, which have none */
	if (type != 0 && type != S_IFREG && type != S_IFIFO) {
		fs->refused++;
		return -EPERM;
	}
	r = prepare_new(fs, parent, name, &p);
	if (r < 0)
		return r;
	mode = (type ? type : S_IFREG) | (hostfs_guest_mode(mode, S_IFREG) & ~umask);
	r = hostfs_node_fd(fs, p);
	if (r < 0)
		return r;
	if (mknodat(r, name, mode, 0) < 0)
		return -errno;
	return hostfs_lookup_checked(fs, p, name, out);
}

int hostfs_mkdir(struct hostfs *fs, uint64_t parent, const char *name, mode_t mode, mode_t umask,
		 struct hostfs_entry *out)
{
	struct hostfs_node *p;
	int r = prepare_new(fs, parent, name, &p);

	if (r == 0)
		r = hostfs_node_fd(fs, p);
	if (r < 0)
		return r;
	if (mkdirat(r, name, hostfs_guest_mode(mode, S_IFDIR) & ~umask) < 0)
		return -errno;
	return hostfs_lookup_checked(fs, p, name, out);
}

int hostfs_symlink(struct hostfs *fs, uint64_t parent, const char *name, const char *target,
		   struct hostfs_entry *out)
{
	struct hostfs_node *p;
	int r = prepare_new(fs, parent, name, &p);

	if (r < 0)
		return r;
	/* The target is data, stored as given: nothing here ever follows it. */
	if (strnlen(target, PATH_MAX) >= PATH_MAX)
		return -ENAMETOOLONG;
	r = hostfs_node_fd(fs, p);
	if (r < 0)
		return r;
	if (symlinkat(target, r, name) < 0)
		return -errno;
	return hostfs_lookup_checked(fs, p, name, out);
}

int hostfs_link(struct hostfs *fs, uint64_t id, uint64_t newparent, const char *newname,
		struct hostfs_entry *out)
{
	struct hostfs_node *n, *p;
	char fdname[16];
	int r, nfd, pfd;

	r = hostfs_parent_for_change(fs, newparent, &p);
	if (r < 0)
		return r;
	r = hostfs_check_name(fs, newname);
	if (r < 0)
		return r;
	n = hostfs_node_get(fs, id);
	if (!n)
		return -ESTALE;
	if (n->pseudo)
		fs->refused++;
	if (n->type == S_IFDIR)
		return -EPERM;
	r = hostfs_node_fd_pair(fs, n, p, &nfd, &pfd);
	if (r < 0)
		return r;
	/* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (ENOENT without it); the magic link does not,
	 * and AT_SYMLINK_FOLLOW follows it to the node and no further. */
	if (linkat(nfd, "", pfd, newname, AT_EMPTY_PATH) < 0) {
		if (errno != ENOENT)
			return -errno;
		hostfs_fd_name(nfd, fdname);
		if (linkat(fs->procfd, fdname, pfd, newname, AT_SYMLINK_FOLLOW) < 0)
			return -errno;
	}
	return hostfs_lookup_checked(fs, p, newname, out);
}

static int remove_entry(struct hostfs *fs, uint64_t parent, const char *name, int flags)
{
	struct hostfs_node *p;
	int r = hostfs_parent_for_change(fs, parent, &p);

	if (r == 0)
		r = hostfs_check_name(fs, name);
	if (r == 0)
		r = hostfs_node_fd(fs, p);
	if (r < 0)
		return r;
	return unlinkat(r, name, flags) < 0 ? -errno : 0;
}

int hostfs_unlink(struct hostfs *fs, uint64_t parent, const char *name)
{
	return remove_entry(fs, parent, name, 0);
}

int hostfs_rmdir(struct hostfs *fs, uint64_t parent, const char *name)
{
	return remove_entry(fs, parent, name, AT_REMOVEDIR);
}

/* The node name in dir stands for now, if there is one (not the root): what a rename moves. */
static struct hostfs_node *known_entry(struct hostfs *fs, int dirfd, const char *name)
{
	struct stat st;
	struct hostfs_node *n;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return NULL;
	n = hostfs_node_find(fs, st.st_dev, st.st_ino);
	return n == fs->nodes ? NULL : n;
}

int hostfs_rename(struct hostfs *fs, uint64_t olddir, const char *oldname, uint64_t newdir,
		  const char *newname, unsigned flags)
{
	struct hostfs_node *op, *np, *moved, *swapped = NULL;
	int r, ofd, nfd;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE) ||
	    flags == (RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	r = hostfs_parent_for_change(fs, olddir, &op);
	if (r == 0)
		r = hostfs_parent_for_change(fs, newdir, &np);
	if (r == 0)
		r = hostfs_check_name(fs, oldname);
	if (r == 0)
		r = hostfs_check_name(fs, newname);
	if (r == 0)
		r = hostfs_node_fd_pair(fs, op, np, &ofd, &nfd);
	if (r < 0)
		return r;
	/* What moves keeps its node; the node's place (where it is found again) follows. */
	moved = known_entry(fs, ofd, oldname);
	if (flags & RENAME_EXCHANGE)
		swapped = known_entry(fs, nfd, newname);
	if (renameat2(ofd, oldname, nfd, newname, flags) < 0)
		return -errno;
	/* Held across the moves: one may leave a directory with nothing else keeping it. */
	op->refs++;
	np->refs++;
	if (moved)
		hostfs_node_move(fs, moved, np, newname);
	if (swapped)
		hostfs_node_move(fs, swapped, op, oldname);
	hostfs_node_unref(fs, op, 1);
	hostfs_node_unref(fs, np, 1);
	return 0;
}
