/* The nodes' O_PATH descriptors: at most max_fds of them open (besides the root's), the least
 * recently used closed first, and a node without one opened again by name when next used:
 * beneath its parent's descriptor (itself opened again first if need be), with the same
 * openat2 every lookup uses, and accepted only if it is still the node's inode. */
#include <errno.h>
#include <unistd.h>

#include "hostfs/internal.h"

static void lru_unlink(struct hostfs *fs, struct hostfs_node *n)
{
	if (n->lru_prev != HOSTFS_NONE)
		fs->nodes[n->lru_prev].lru_next = n->lru_next;
	else
		fs->lru_head = n->lru_next;
	if (n->lru_next != HOSTFS_NONE)
		fs->nodes[n->lru_next].lru_prev = n->lru_prev;
	else
		fs->lru_tail = n->lru_prev;
}

static void lru_push(struct hostfs *fs, struct hostfs_node *n)
{
	uint32_t slot = hostfs_node_slot(fs, n);

	n->lru_prev = HOSTFS_NONE;
	n->lru_next = fs->lru_head;
	if (fs->lru_head != HOSTFS_NONE)
		fs->nodes[fs->lru_head].lru_prev = slot;
	else
		fs->lru_tail = slot;
	fs->lru_head = slot;
}

void hostfs_node_detach(struct hostfs *fs, struct hostfs_node *n)
{
	if (n == fs->nodes || n->fd < 0)
		return;
	lru_unlink(fs, n);
	close(n->fd);
	n->fd = -1;
	fs->fds_used--;
}

void hostfs_node_attach(struct hostfs *fs, struct hostfs_node *n, int fd)
{
	/* Room first: the least recently used descriptor nobody is using goes. At most one node is
	 * pinned (hostfs_node_fd_pair) and max_fds is at least 16, so there is always one. */
	for (uint32_t s = fs->lru_tail; fs->fds_used >= fs->max_fds && s != HOSTFS_NONE;) {
		struct hostfs_node *victim = &fs->nodes[s];

		s = victim->lru_prev;
		if (!victim->pinned)
			hostfs_node_detach(fs, victim);
	}
	n->fd = fd;
	lru_push(fs, n);
	fs->fds_used++;
}

/* Opens n again beneath its parent, which holds a descriptor. */
static int reattach_one(struct hostfs *fs, struct hostfs_node *n)
{
	struct hostfs_node *p = &fs->nodes[n->parent];
	uint64_t mnt_id;
	struct stat st;
	int fd, r;

	fd = hostfs_resolve(fs, p->fd, n->name, O_PATH, 0);
	if (fd < 0)
		return fd == -ENOENT || fd == -ENOTDIR ? -ESTALE : fd;
	r = hostfs_stat_fd(fd, &st, &mnt_id);
	if (r == 0 && (st.st_dev != n->dev || st.st_ino != n->ino))
		r = -ESTALE;   /* renamed, removed or replaced on the host meanwhile */
	if (r < 0) {
		close(fd);
		return r;
	}
	fs->reopened++;
	hostfs_node_attach(fs, n, fd);
	return 0;
}

int hostfs_node_fd(struct hostfs *fs, struct hostfs_node *n)
{
	if (n->fd >= 0) {
		if (n != fs->nodes && fs->lru_head != hostfs_node_slot(fs, n)) {
			lru_unlink(fs, n);
			lru_push(fs, n);
		}
		return n->fd;
	}
	/* Down from the nearest ancestor holding a descriptor (the root always does), one level
	 * at a time: each step finds the highest node still without one. No recursion and no
	 * stack, however deep the path; the node opened last is the most recently used, so the
	 * next step's parent is never the one closed for room. */
	while (n->fd < 0) {
		struct hostfs_node *a = n;
		int r;

		while (fs->nodes[a->parent].fd < 0)
			a = &fs->nodes[a->parent];
		r = reattach_one(fs, a);
		if (r < 0)
			return r;
	}
	return n->fd;
}

int hostfs_node_fd_pair(struct hostfs *fs, struct hostfs_node *a, struct hostfs_node *b, int *afd,
			int *bfd)
{
	*afd = hostfs_node_fd(fs, a);
	if (*afd < 0)
		return *afd;
	a->pinned = true;
	*bfd = hostfs_node_fd(fs, b);
	a->pinned = false;
	return *bfd < 0 ? *bfd : 0;
}
