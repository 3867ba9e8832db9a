/* The FUSE server of virtio-fs: one request of a popped chain in, its reply out, over hostfs.
 *
 * The chain is what the guest's virtio-fs driver queued: the readable segments hold struct
 * fuse_in_header and the operation's arguments (<linux/fuse.h>), the writable ones receive
 * struct fuse_out_header and the reply. Everything the guest sent is hostile:
 *   - the header and the operation's fixed arguments and names are copied out of guest memory
 *     once, into the server's own buffer, and only that copy is looked at (the guest may
 *     rewrite its buffers meanwhile); in.len may not exceed the readable bytes; names must end
 *     with a NUL inside the request and are at most NAME_MAX bytes (a symlink's target PATH_MAX);
 *   - nothing is written outside the writable segments: a reply is built only if it fits
 *     (-EINVAL otherwise, before the operation runs, so that no lookup reference or open
 *     handle is made that the guest would never hear of), and a chain whose writable part
 *     cannot hold even struct fuse_out_header gets nothing (0 bytes written);
 *   - node ids and handles go to hostfs as they are: it answers -ESTALE / -EBADF for unknown
 *     ones and keeps every name beneath the share.
 * READ and WRITE move data straight between the file and the guest's buffers (an iovec over
 * the segments, preadv/pwritev in hostfs), with no copy in between.
 *
 * Threads: a server is used by one thread at a time (the device's); its counters are atomics,
 * read by the statistics at the end. */
#ifndef MICA_VIRTIO_FUSE_H
#define MICA_VIRTIO_FUSE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtq.h"

struct hostfs;
struct fuse_server;

struct fuse_server_opts {
	struct hostfs *fs;          /* the share; not owned by the server */
	uint32_t timeout;           /* entry and attribute validity, seconds */
	bool keep_cache;            /* a read-only share: the guest keeps its page cache of a
				     * file across opens (FOPEN_KEEP_CACHE, FOPEN_CACHE_DIR) */
	uint32_t max_pages;         /* the largest READ / WRITE in pages, from the device's
				     * segment limit (INIT's max_pages, max_write) */
	bool no_xattr;              /* GETXATTR and LISTXATTR are ENOSYS, which the guest's kernel
				     * remembers: it never asks again (an overlay over the share
				     * would otherwise ask once per directory it meets) */
};

/* What the server did, for --stats-json. */
struct fuse_server_stats {
	atomic_ulong requests;      /* chains served, replied or not */
	atomic_ulong lookups;       /* LOOKUP, and the names READDIRPLUS looked up */
	atomic_ulong forgets;       /* nodes in FORGET and BATCH_FORGET */
	atomic_ulong getattrs;      /* GETATTR, SETATTR, STATFS, ACCESS, READLINK, GETXATTR,
				     * LISTXATTR */
	atomic_ulong opens;         /* OPEN, OPENDIR, CREATE */
	atomic_ulong reads, bytes_read;
	atomic_ulong writes, bytes_written;
	atomic_ulong readdirs;      /* READDIR, READDIRPLUS */
	atomic_ulong changes;       /* MKNOD, MKDIR, SYMLINK, LINK, UNLINK, RMDIR, RENAME(2),
				     * FALLOCATE */
	atomic_ulong syncs;         /* FSYNC, FSYNCDIR */
	atomic_ulong inits;         /* INIT, DESTROY */
	atomic_ulong errors;        /* replies with an error, the ones below included */
	atomic_ulong unsupported;   /* ENOSYS: an operation the server does not implement */
	atomic_ulong malformed;     /* too short, in.len beyond the chain, no room for the
				     * reply, a name without its NUL: the guest's mistakes */
};

/* Creates a server on o->fs; returns 0 or -ENOMEM. */
int fuse_server_create(const struct fuse_server_opts *o, struct fuse_server **out);
void fuse_server_destroy(struct fuse_server *s);

/* Serves one request; returns the bytes written into req's writable segments (the used
 * length to push: 0 for FORGET, BATCH_FORGET and chains too short to answer). */
uint32_t fuse_serve(struct fuse_server *s, const struct virtq_req *req);

/* The device was reset: every node and handle is forgotten, INIT is needed again. */
void fuse_server_reset(struct fuse_server *s);
/* Whether a session is established (INIT answered, no DESTROY or reset since): the guest has
 * the share mounted. Serialized with fuse_serve() by the caller. */
bool fuse_server_initialized(const struct fuse_server *s);

const struct fuse_server_stats *fuse_server_stats(const struct fuse_server *s);

#endif
