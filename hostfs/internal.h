/* hostfs's private state, shared by its files (never included outside hostfs/).
 *
 * Tables: nodes and handles live in two arrays allocated once by hostfs_open, each slot on a
 * free list when unused, so no request allocates. An id names a slot and a sequence number:
 *
 *     id = seq << bits | slot        (bits: enough for every slot index, and one more value)
 *
 * where seq comes from a per-table 64-bit counter that only goes up. Looking an id up is an
 * array index and one comparison with the id the slot holds now: a slot freed and reused holds
 * a new id, so an old one is stale (-ESTALE for nodes, -EBADF for handles), without a search and
 * without ever handing an old id to a new file. When the counter would run out (2^(64-bits)
 * ids: more than 2^40 for any bound hostfs accepts) the table refuses new entries (-ENFILE)
 * rather than wrap. The root node is slot 0 with the fixed id HOSTFS_ROOT_ID (1), which no
 * encoded id equals (their seq is at least 1). Slot indexes all fit below 2^bits - 1, so
 * UINT64_MAX (every bit set) is never a valid id. Node slots are handed out from the bottom
 * (node_top) before the free list is used, so a big table costs memory only as it fills.
 *
 * Nodes are also found by (st_dev, st_ino) through a hash of chains threaded through the
 * slots, so one host inode has one node while referenced.
 *
 * Descriptors: a node holds an O_PATH descriptor of its inode while it is among the max_fds most
 * recently used (a list, most recent first); beyond that the least recently used one's is
 * closed, and the node is found again when next used (hostfs_node_fd, fdcache.c): by its name
 * beneath its parent's descriptor, with openat2 like any lookup, and only if the inode found
 * there is still the node's (st_dev, st_ino); otherwise the guest gets -ESTALE. So the inode
 * table is bounded by memory (max_inodes) and mica's descriptors by max_fds, and a walk over a
 * tree bigger than max_fds works. Every node keeps its parent (the directory it was last found
 * in: a lookup, a create, a rename through the guest) alive while it lives. While a node holds
 * a descriptor its inode cannot go, so its number is not reused meanwhile; a node without one
 * that a lookup finds again by (st_dev, st_ino) takes that lookup's descriptor and place. */
#ifndef MICA_HOSTFS_INTERNAL_H
#define MICA_HOSTFS_INTERNAL_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "hostfs/hostfs.h"

#define HOSTFS_NONE UINT32_MAX         /* end of a chain or a free list */
#define HOSTFS_DIRBUF 8192             /* getdents64 buffer of one open directory */

struct hostfs_node {
	uint64_t id;         /* 0: the slot is free */
	uint64_t refs;       /* the guest's lookups not yet forgotten (the root's not counted),
			      * and holds for the length of a call */
	dev_t dev;
	ino_t ino;
	uint64_t mnt_id;     /* statx's mount ID, 0 if the kernel has none */
	char *name;          /* its name in parent, malloc'ed (the root: NULL) */
	int fd;              /* O_PATH | O_NOFOLLOW, owned; -1 while closed for room (never the
			      * root's) */
	mode_t type;         /* S_IFMT of the inode (S_IFDIR for a pseudo node) */
	uint32_t parent;     /* the slot of the directory it was last found in (root: NONE) */
	uint32_t children;   /* nodes whose parent this is: each keeps it alive */
	uint32_t next;       /* the next slot of its hash chain, or of the free list */
	uint32_t lru_prev, lru_next; /* among the nodes holding a descriptor (not the root) */
	bool pseudo;         /* on a pseudo file system: an empty read-only directory */
	bool pinned;         /* hostfs_node_fd_pair holds its descriptor: kept open */
};

struct hostfs_handle {
	uint64_t id;         /* 0: the slot is free */
	uint64_t node_id;    /* the node opened (not a reference: forget does not close it) */
	uint64_t ino;        /* its st_ino, for a pseudo directory's "." and ".." */
	int fd;              /* owned; -1 for a pseudo directory */
	bool dir;
	bool writable;       /* opened O_WRONLY or O_RDWR */
	uint32_t next;       /* the next free slot */
	/* Directories: getdents64 state. buf[pos, len) holds entries not handed out yet; cur_off
	 * is the offset of the entry at buf[pos] (where the descriptor stands if buf is empty). */
	char *buf;           /* HOSTFS_DIRBUF bytes, allocated by opendir */
	uint32_t pos, len;
	uint64_t cur_off;
};

/* One mount of /proc/self/mountinfo, sorted by id. */
struct hostfs_mount {
	uint64_t id;
	bool pseudo;
};

struct hostfs {
	bool readonly;
	int procfd;                      /* /proc/self/fd, O_PATH | O_DIRECTORY: reopens */
	int selffd;                      /* /proc/self, O_PATH | O_DIRECTORY: mountinfo */
	uint32_t max_inodes, max_handles, max_fds;
	uint64_t fds_reserved;           /* what this share added to the process's reservation */

	struct hostfs_node *nodes;       /* max_inodes + 1 slots, slot 0 the root */
	uint32_t nnodes;
	uint32_t node_top;               /* slots [node_top, nnodes) were never used */
	uint32_t node_free;              /* free list head (slots below node_top) */
	uint32_t *hash;                  /* (dev, ino) -> first slot of the chain + 1, 0: none */
	uint32_t hash_mask;              /* buckets - 1; doubled when the nodes outnumber them */
	unsigned node_bits;
	uint64_t node_seq;               /* the last seq handed out */
	uint32_t inodes_used;            /* nodes but the root */
	uint32_t fds_used;               /* nodes but the root holding a descriptor */
	uint32_t lru_head, lru_tail;     /* most and least recently used of those */
	uint64_t reopened;               /* descriptors opened again by name (fdcache.c) */

	struct hostfs_handle *handles;   /* max_handles slots */
	uint32_t handle_free;
	unsigned handle_bits;
	uint64_t handle_seq;
	uint32_t handles_used;

	struct hostfs_mount *mounts;     /* malloc'ed, replaced when reread */
	size_t nmounts;
	uint64_t mnt_unlisted;           /* a mount ID still unknown after a reread */

	uint64_t refused;
};

/* The permission bits a guest may set on a node of type type: never S_ISUID, and S_ISGID only
 * on a directory (where it means "new files take this group"), so a guest never plants a
 * setuid or setgid program on the host's disk (one mica running as root would make root's). */
static inline mode_t hostfs_guest_mode(mode_t mode, mode_t type)
{
	return mode & (type == S_IFDIR ? 03777 : 01777);
}

/* ---- inode.c: the node table ---- */
static inline uint32_t hostfs_node_slot(const struct hostfs *fs, const struct hostfs_node *n)
{
	return (uint32_t)(n - fs->nodes);
}
int hostfs_nodes_init(struct hostfs *fs, uint32_t max_inodes);
void hostfs_nodes_free(struct hostfs *fs);
/* The node with this id, or NULL (stale or never handed out). */
struct hostfs_node *hostfs_node_get(struct hostfs *fs, uint64_t id);
/* Makes fd (O_PATH, a directory) the root node, slot 0. */
void hostfs_node_root(struct hostfs *fs, int fd, const struct stat *st, uint64_t mnt_id,
		      bool pseudo);
/* Takes one new node for fd (ownership passes on success), found as name in parent, with one
 * reference: -ENFILE when full, -ENOMEM. */
int hostfs_node_add(struct hostfs *fs, int fd, const struct stat *st, uint64_t mnt_id,
		    bool pseudo, struct hostfs_node *parent, const char *name,
		    struct hostfs_node **out);
struct hostfs_node *hostfs_node_find(struct hostfs *fs, dev_t dev, ino_t ino);
bool hostfs_node_room(const struct hostfs *fs);
/* Records that n (not the root) is now name in parent, where it is found again: nothing if
 * that would make n its own ancestor (a bind mount shows a directory inside itself). 0 or
 * -ENOMEM (n keeps its old place). */
int hostfs_node_move(struct hostfs *fs, struct hostfs_node *n, struct hostfs_node *parent,
		     const char *name);
/* Drops count references (at most those it has); the node goes (descriptor closed) when it
 * has none and no children, and so may its parents. The root never goes. */
void hostfs_node_unref(struct hostfs *fs, struct hostfs_node *n, uint64_t count);
/* Every node but the root goes. */
void hostfs_nodes_clear(struct hostfs *fs);
/* What getattr shows of a node whose host attributes are st: st itself, or the empty
 * read-only directory a pseudo node is. */
void hostfs_node_attr(const struct hostfs_node *n, struct stat *st);

/* ---- fdcache.c: the nodes' descriptors ---- */
/* n's O_PATH descriptor, opened again by name if it was closed for room: the descriptor (n's,
 * valid until the next call that may open another node's: pin n to hold it longer), -ESTALE
 * if n's name no longer leads to n's inode, or -errno. */
int hostfs_node_fd(struct hostfs *fs, struct hostfs_node *n);
/* The descriptors of two nodes at once (link, rename): a's is pinned while b's is found, so
 * finding b's cannot close a's. 0, or -ESTALE / -errno as hostfs_node_fd. */
int hostfs_node_fd_pair(struct hostfs *fs, struct hostfs_node *a, struct hostfs_node *b, int *afd,
			int *bfd);
/* Gives n (holding none) the descriptor fd, closing the least recently used unpinned one if
 * max_fds are open. */
void hostfs_node_attach(struct hostfs *fs, struct hostfs_node *n, int fd);
/* Closes n's descriptor if it holds one. */
void hostfs_node_detach(struct hostfs *fs, struct hostfs_node *n);

/* ---- handle.c: the handle table ---- */
int hostfs_handles_init(struct hostfs *fs, uint32_t max_handles);
void hostfs_handles_free(struct hostfs *fs);
struct hostfs_handle *hostfs_handle_get(struct hostfs *fs, uint64_t fh);
bool hostfs_handle_room(const struct hostfs *fs);
/* Takes a slot for fd (ownership passes on success; -1 allowed): -ENFILE when full. */
int hostfs_handle_add(struct hostfs *fs, int fd, uint64_t node_id, bool dir, bool writable,
		      struct hostfs_handle **out);
void hostfs_handle_del(struct hostfs *fs, struct hostfs_handle *h);
void hostfs_handles_clear(struct hostfs *fs);

/* ---- resolve.c: names and descriptors ---- */
/* 0 if name is one plain component; -EINVAL (empty, '/', "." or "..") or -ENAMETOOLONG,
 * counted as refused. */
int hostfs_check_name(struct hostfs *fs, const char *name);
/* openat2 of name beneath dirfd, never following a symlink or crossing a magic link:
 * O_NOFOLLOW | O_CLOEXEC are added to flags. A descriptor or -errno. */
int hostfs_resolve(struct hostfs *fs, int dirfd, const char *name, int flags, mode_t mode);
/* A new descriptor on node n's inode with flags, through /proc/self/fd: only regular files
 * and directories (anything else is -EACCES, counted); never a pseudo node. */
int hostfs_reopen(struct hostfs *fs, struct hostfs_node *n, int flags);
/* The name of fd in /proc/self/fd. */
void hostfs_fd_name(int fd, char buf[16]);
/* statx of fd itself: its attributes and its mount ID (0 if the kernel has none). */
int hostfs_stat_fd(int fd, struct stat *st, uint64_t *mnt_id);
/* Makes fd (an O_PATH descriptor of name's inode, just resolved beneath parent) a node with
 * one more reference, or adds one to the node that inode already has (which takes fd if it
 * holds no descriptor, and name in parent as its place). Always consumes fd. Fills out. */
int hostfs_enter(struct hostfs *fs, struct hostfs_node *parent, const char *name, int fd,
		 struct hostfs_entry *out);
/* lookup's body: name already checked, parent a directory. */
int hostfs_lookup_checked(struct hostfs *fs, struct hostfs_node *parent, const char *name,
			  struct hostfs_entry *out);
/* The parent directory a change names an entry in: -ESTALE, -ENOTDIR, -EROFS (read-only
 * share, pseudo directory). */
int hostfs_parent_for_change(struct hostfs *fs, uint64_t id, struct hostfs_node **out);

/* ---- mounts.c: pseudo file systems ---- */
int hostfs_mounts_load(struct hostfs *fs);
/* Whether fd (on mount mnt_id, 0 if unknown) is on a pseudo file system. */
bool hostfs_is_pseudo(struct hostfs *fs, int fd, uint64_t mnt_id);

#endif
