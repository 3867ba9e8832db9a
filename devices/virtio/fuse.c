/* The FUSE server of virtio-fs over hostfs. See fuse.h for the contract.
 *
 * One request at a time: fuse_serve() copies the header and the operation's arguments out of
 * the readable segments into s->body (bounded: IN_MAX bytes, the largest request the server
 * implements, whatever in.len says), checks that the reply fits before it runs anything, runs
 * the operation on hostfs and writes the reply through a cursor over the writable segments
 * (struct wcur), the out header last, at the start. READ and WRITE hand hostfs an iovec over
 * the guest's data segments instead. */
#include "devices/virtio/fuse.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#include "hostfs/hostfs.h"
#include "vmm/util.h"

/* The oldest protocol served: struct sizes have been what <linux/fuse.h> says since 7.12
 * (fuse_mknod_in's umask); Linux has sent 7.12 or newer since 2.6.31. */
#define MIN_MINOR 12

/* INIT flags the server takes up when the guest offers them:
 *   ASYNC_READ         reads may be sent in parallel (each request is independent here);
 *   ATOMIC_O_TRUNC     OPEN carries O_TRUNC (hostfs_open_file keeps it);
 *   BIG_WRITES, MAX_PAGES  writes of up to max_pages pages;
 *   AUTO_INVAL_DATA    the guest drops its cached pages when the file's mtime changes;
 *   DO_READDIRPLUS, READDIRPLUS_AUTO  READDIRPLUS (the guest decides when);
 *   PARALLEL_DIROPS    lookups in one directory need not be serialized by the guest;
 *   CACHE_SYMLINKS     the guest caches link targets in its page cache;
 *   ASYNC_DIO          direct I/O may be split into parallel requests.
 * Not taken: locks (POSIX_LOCKS, FLOCK_LOCKS: the guest's kernel keeps them locally),
 * EXPORT_SUPPORT (lookups of "." and ".."), DONT_MASK and POSIX_ACL (no ACLs), WRITEBACK_CACHE,
 * HANDLE_KILLPRIV(_V2), SUBMOUNTS, DAX, INIT_EXT (no flags2 feature is served). */
#define INIT_FLAGS (FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_MAX_PAGES | \
		    FUSE_AUTO_INVAL_DATA | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | \
		    FUSE_PARALLEL_DIROPS | FUSE_CACHE_SYMLINKS | FUSE_ASYNC_DIO)
/* Requests the guest may have in flight in the background (readahead, async writes): more
 * than one ring's worth would only queue up in the guest. */
#define MAX_BACKGROUND 64
#define CONGESTION_THRESHOLD 48

#define PAGE 4096u
#define XATTR_MAX 65536u /* XATTR_SIZE_MAX: the largest value or list Linux hands out */

/* The largest request body copied: the largest fixed arguments (fuse_setattr_in) and the
 * longest names an implemented operation takes (SYMLINK: a name and a target). Longer bodies
 * are only ever WRITE (whose data stays in guest memory) or unimplemented operations. */
#define IN_MAX (sizeof(struct fuse_setattr_in) + NAME_MAX + 1 + PATH_MAX)

/* A cursor over the writable segments of a request. */
struct wcur {
	const struct virtq_req *req;
	int seg;            /* current segment */
	uint32_t off;       /* offset in it */
	uint64_t left;      /* writable bytes from here on */
};

struct fuse_server {
	struct hostfs *fs;
	uint32_t timeout;
	bool keep_cache;
	bool no_xattr;
	uint32_t max_pages;
	bool initialized;   /* INIT answered; DESTROY and resets clear it */
	struct fuse_server_stats stats;

	/* The request being served (fuse_serve's, one at a time). */
	const struct virtq_req *req;
	struct fuse_in_header in;
	uint32_t body_len;  /* in.len minus the header (and extensions): what the guest sent */
	uint32_t copied;    /* bytes of the body copied into body[] (at most IN_MAX) */
	struct wcur w;      /* the reply, after the out header */
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint8_t body[IN_MAX] __attribute__((aligned(8)));
	uint8_t scratch[XATTR_MAX]; /* link targets and xattrs on their way to the guest */
};

static void count(atomic_ulong *c, unsigned long n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* The guest's mistake: arguments too short, no room for the reply, a bad name. */
static int bad(struct fuse_server *s)
{
	count(&s->stats.malformed, 1);
	return -EINVAL;
}

/* ---- guest memory ---- */

/* Copies up to len bytes from offset off of the readable part into dst; returns how many. */
static uint64_t guest_copy_in(const struct virtq_req *r, uint64_t off, void *dst, uint64_t len)
{
	uint8_t *d = dst;
	uint64_t done = 0;

	for (int i = 0; i < r->nsegs && !r->segs[i].write && done < len; i++) {
		uint64_t k, sl = r->segs[i].len;

		if (off >= sl) {
			off -= sl;
			continue;
		}
		k = MIN(sl - off, len - done);
		memcpy(d + done, (const uint8_t *)r->segs[i].hva + off, k);
		done += k;
		off = 0;
	}
	return done;
}

/* An iovec over [off, off + len) of the readable or the writable part, into iov (room for
 * VIRTQ_MAX_SEGS); returns the count and in *got the bytes covered (less than len if the part
 * ends first). */
static int build_iov(const struct virtq_req *r, bool writable, uint64_t off, uint64_t len,
		     struct iovec *iov, uint64_t *got)
{
	int n = 0;

	*got = 0;
	for (int i = 0; i < r->nsegs && *got < len; i++) {
		uint64_t k, sl = r->segs[i].len;

		if (r->segs[i].write != writable)
			continue;
		if (off >= sl) {
			off -= sl;
			continue;
		}
		k = MIN(sl - off, len - *got);
		iov[n].iov_base = (uint8_t *)r->segs[i].hva + off;
		iov[n].iov_len = k;
		n++;
		*got += k;
		off = 0;
	}
	return n;
}

/* Places w at offset off of the writable part (which holds at least off bytes). */
static void w_init(struct wcur *w, const struct virtq_req *r, uint64_t off)
{
	w->req = r;
	w->left = r->write_len - off;
	for (w->seg = 0; w->seg < r->nsegs; w->seg++) {
		if (!r->segs[w->seg].write)
			continue;
		if (off < r->segs[w->seg].len)
			break;
		off -= r->segs[w->seg].len;
	}
	w->off = (uint32_t)off;
}

/* Writes n bytes (src NULL: zeros); the caller checked n <= w->left. */
static void guest_put(struct wcur *w, const void *src, uint64_t n)
{
	const uint8_t *p = src;

	w->left -= n;
	while (n) {
		const struct virtq_seg *sg = &w->req->segs[w->seg];
		uint64_t k = MIN(n, (uint64_t)sg->len - w->off);

		if (p) {
			memcpy((uint8_t *)sg->hva + w->off, p, k);
			p += k;
		} else {
			memset((uint8_t *)sg->hva + w->off, 0, k);
		}
		n -= k;
		w->off += (uint32_t)k;
		if (w->off == sg->len) {
			w->seg++;
			w->off = 0;
		}
	}
}

/* ---- the request's arguments (from the copy) ---- */

/* The operation's fixed arguments, or NULL when the request is shorter. */
static const void *args(struct fuse_server *s, size_t size)
{
	return s->copied >= size ? s->body : NULL;
}

/* A NUL-terminated string at *pos of the body, of 1 to max bytes; moves *pos past it.
 * Returns 0, -ENAMETOOLONG or -EINVAL (empty, or no NUL before the body ends). */
static int string_at(struct fuse_server *s, uint32_t *pos, size_t max, const char **out)
{
	const char *p = (const char *)s->body + *pos;
	size_t avail = *pos < s->copied ? s->copied - *pos : 0;
	const char *nul = memchr(p, '\0', MIN(avail, max + 1));

	if (!nul) {
		/* No NUL within max + 1 bytes: too long, if the guest sent that much. */
		return avail > max ? -ENAMETOOLONG : bad(s);
	}
	if (nul == p)
		return bad(s);
	*out = p;
	*pos += (uint32_t)(nul - p) + 1;
	return 0;
}

/* ---- replies ---- */

/* Whether the reply holds n more bytes; the operation is refused (before it runs) if not. */
static bool room(struct fuse_server *s, uint64_t n)
{
	return s->w.left >= n;
}

static uint32_t encode_dev(dev_t d)
{
	/* The guest decodes fuse_attr.rdev with new_decode_dev(). */
	unsigned maj = major(d), min = minor(d);

	return (min & 0xff) | ((maj & 0xfff) << 8) | ((min & ~0xffu) << 12);
}

static dev_t decode_dev(uint32_t d)
{
	return makedev((d & 0xfff00) >> 8, (d & 0xff) | ((d >> 12) & 0xfff00));
}

static void fill_attr(struct fuse_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->atime = (uint64_t)st->st_atim.tv_sec;
	a->mtime = (uint64_t)st->st_mtim.tv_sec;
	a->ctime = (uint64_t)st->st_ctim.tv_sec;
	a->atimensec = (uint32_t)st->st_atim.tv_nsec;
	a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
	a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = st->st_nlink > UINT32_MAX ? UINT32_MAX : (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = encode_dev(st->st_rdev);
	a->blksize = (uint32_t)st->st_blksize;
}

static void fill_entry(struct fuse_server *s, struct fuse_entry_out *eo,
		       const struct hostfs_entry *e)
{
	memset(eo, 0, sizeof(*eo));
	eo->nodeid = e->id;
	eo->generation = e->generation;
	eo->entry_valid = s->timeout;
	eo->attr_valid = s->timeout;
	fill_attr(&eo->attr, &e->st);
}

static int put_entry(struct fuse_server *s, const struct hostfs_entry *e)
{
	struct fuse_entry_out eo;

	fill_entry(s, &eo, e);
	guest_put(&s->w, &eo, sizeof(eo));
	return sizeof(eo);
}

static int put_attr(struct fuse_server *s, const struct stat *st)
{
	struct fuse_attr_out ao = { .attr_valid = s->timeout };

	fill_attr(&ao.attr, st);
	guest_put(&s->w, &ao, sizeof(ao));
	return sizeof(ao);
}

static uint32_t open_flags(const struct fuse_server *s, bool dir)
{
	if (!s->keep_cache)
		return 0;
	return FOPEN_KEEP_CACHE | (dir ? FOPEN_CACHE_DIR : 0);
}

/* ---- operations: each returns the reply's length after the header, or -errno ---- */

static int op_init(struct fuse_server *s)
{
	struct fuse_init_in in = { 0 };
	struct fuse_init_out out = { .major = FUSE_KERNEL_VERSION };
	uint32_t max_bytes = s->max_pages * PAGE, len;

	/* Older drivers send a shorter fuse_init_in: what is missing reads as zero. */
	memcpy(&in, s->body, MIN(s->copied, sizeof(in)));
	if (s->copied < 16)
		return bad(s);
	if (in.major < FUSE_KERNEL_VERSION)
		return -EPROTO;
	if (in.major > FUSE_KERNEL_VERSION) {
		/* The driver asks again with our major. */
		out.minor = FUSE_KERNEL_MINOR_VERSION;
		len = FUSE_COMPAT_INIT_OUT_SIZE;
		if (!room(s, len))
			return bad(s);
		guest_put(&s->w, &out, len);
		return (int)len;
	}
	out.minor = MIN(in.minor, (uint32_t)FUSE_KERNEL_MINOR_VERSION);
	if (out.minor < MIN_MINOR)
		return -EPROTO;
	len = out.minor < 23 ? FUSE_COMPAT_22_INIT_OUT_SIZE : sizeof(out);
	if (!room(s, len))
		return bad(s);
	/* A new session: whatever the last one left is forgotten. */
	hostfs_reset(s->fs);
	out.flags = in.flags & INIT_FLAGS;
	out.max_readahead = MIN(in.max_readahead, max_bytes);
	out.max_background = MAX_BACKGROUND;
	out.congestion_threshold = CONGESTION_THRESHOLD;
	out.max_write = max_bytes;
	out.time_gran = 1;
	out.max_pages = (uint16_t)s->max_pages;
	guest_put(&s->w, &out, len);
	s->initialized = true;
	return (int)len;
}

static int op_lookup(struct fuse_server *s)
{
	struct hostfs_entry e;
	uint32_t pos = 0;
	const char *name;
	int err;

	if ((err = string_at(s, &pos, NAME_MAX, &name)))
		return err;
	if (!room(s, sizeof(struct fuse_entry_out)))
		return bad(s);
	count(&s->stats.lookups, 1);
	err = hostfs_lookup(s->fs, s->in.nodeid, name, &e);
	if (err == -ENOENT && s->keep_cache && s->timeout) {
		/* A read-only share: the guest may remember that the name is missing (node id 0
		 * with a timeout) instead of asking again on every path search. */
		struct fuse_entry_out eo = { .entry_valid = s->timeout };

		guest_put(&s->w, &eo, sizeof(eo));
		return sizeof(eo);
	}
	return err ? err : put_entry(s, &e);
}

/* FORGET and BATCH_FORGET: no reply. Read straight from the segments (a batch may be longer
 * than the copy), in.len bounding what is read. */
static void op_forget(struct fuse_server *s)
{
	const uint64_t base = sizeof(struct fuse_in_header);
	uint64_t body = s->body_len;

	if (s->in.opcode == FUSE_FORGET) {
		struct fuse_forget_in f;

		if (body >= sizeof(f) && guest_copy_in(s->req, base, &f, sizeof(f)) == sizeof(f)) {
			hostfs_forget(s->fs, s->in.nodeid, f.nlookup);
			count(&s->stats.forgets, 1);
		}
		return;
	}
	struct fuse_batch_forget_in b;
	struct fuse_forget_one one[64];
	uint64_t n, done = 0, off = base + sizeof(b);

	if (body < sizeof(b) || guest_copy_in(s->req, base, &b, sizeof(b)) != sizeof(b))
		return;
	n = MIN((uint64_t)b.count, (body - sizeof(b)) / sizeof(one[0]));
	while (done < n) {
		uint64_t k = MIN(n - done, ARRAY_SIZE(one));

		if (guest_copy_in(s->req, off, one, k * sizeof(one[0])) != k * sizeof(one[0]))
			break;
		for (uint64_t i = 0; i < k; i++)
			hostfs_forget(s->fs, one[i].nodeid, one[i].nlookup);
		count(&s->stats.forgets, k);
		done += k;
		off += k * sizeof(one[0]);
	}
}

static int op_getattr(struct fuse_server *s)
{
	struct stat st;
	int err;

	if (!args(s, sizeof(struct fuse_getattr_in)))
		return bad(s);
	if (!room(s, sizeof(struct fuse_attr_out)))
		return bad(s);
	err = hostfs_getattr(s->fs, s->in.nodeid, &st);
	return err ? err : put_attr(s, &st);
}

static int op_setattr(struct fuse_server *s)
{
	const struct fuse_setattr_in *in = args(s, sizeof(*in));
	struct hostfs_setattr sa = { 0 };
	struct stat st;
	int err;

	if (!in || !room(s, sizeof(struct fuse_attr_out)))
		return bad(s);
	if (in->valid & FATTR_MODE)
		sa.valid |= HOSTFS_SET_MODE, sa.mode = in->mode;
	if (in->valid & FATTR_UID)
		sa.valid |= HOSTFS_SET_UID, sa.uid = in->uid;
	if (in->valid & FATTR_GID)
		sa.valid |= HOSTFS_SET_GID, sa.gid = in->gid;
	if (in->valid & FATTR_SIZE)
		sa.valid |= HOSTFS_SET_SIZE, sa.size = in->size;
	if (in->valid & FATTR_ATIME_NOW)
		sa.valid |= HOSTFS_SET_ATIME_NOW;
	else if (in->valid & FATTR_ATIME)
		sa.valid |= HOSTFS_SET_ATIME;
	if (in->valid & FATTR_MTIME_NOW)
		sa.valid |= HOSTFS_SET_MTIME_NOW;
	else if (in->valid & FATTR_MTIME)
		sa.valid |= HOSTFS_SET_MTIME;
	if (in->valid & FATTR_CTIME)
		sa.valid |= HOSTFS_SET_CTIME;
	sa.atime = (struct timespec){ (time_t)in->atime, in->atimensec };
	sa.mtime = (struct timespec){ (time_t)in->mtime, in->mtimensec };
	err = hostfs_setattr(s->fs, s->in.nodeid, (in->valid & FATTR_FH) ? in->fh : UINT64_MAX, &sa,
			     &st);
	return err ? err : put_attr(s, &st);
}

static int op_readlink(struct fuse_server *s)
{
	ssize_t n = hostfs_readlink(s->fs, s->in.nodeid, (char *)s->scratch, PATH_MAX);

	if (n < 0)
		return (int)n;
	if (!room(s, (uint64_t)n))
		return bad(s);
	guest_put(&s->w, s->scratch, (uint64_t)n);
	return (int)n;
}

/* The fixed arguments (size bytes) and the name after them of a request that makes an entry,
 * once the reply's room (reply bytes) is known to be there. NULL: the request is refused, *err
 * says how. */
static const void *entry_request(struct fuse_server *s, uint32_t size, uint64_t reply,
				 uint32_t *pos, const char **name, int *err)
{
	const void *in = args(s, size);

	*pos = size;
	if (!in) {
		*err = bad(s);
		return NULL;
	}
	if ((*err = string_at(s, pos, NAME_MAX, name)))
		return NULL;
	if (!room(s, reply)) {
		*err = bad(s);
		return NULL;
	}
	return in;
}

/* MKNOD, MKDIR, SYMLINK, LINK, CREATE: a new entry in directory in.nodeid. */
static int op_make(struct fuse_server *s)
{
	const uint64_t entry = sizeof(struct fuse_entry_out);
	uint32_t op = s->in.opcode, pos;
	const char *name, *target;
	struct hostfs_entry e;
	uint64_t fh = 0;
	int err;

	switch (op) {
	case FUSE_MKNOD: {
		const struct fuse_mknod_in *in = entry_request(s, sizeof(*in), entry, &pos, &name,
							      &err);

		if (!in)
			return err;
		err = hostfs_mknod(s->fs, s->in.nodeid, name, in->mode, decode_dev(in->rdev),
				   in->umask, &e);
		break;
	}
	case FUSE_MKDIR: {
		const struct fuse_mkdir_in *in = entry_request(s, sizeof(*in), entry, &pos, &name,
							      &err);

		if (!in)
			return err;
		err = hostfs_mkdir(s->fs, s->in.nodeid, name, in->mode, in->umask, &e);
		break;
	}
	case FUSE_SYMLINK:
		pos = 0;
		if ((err = string_at(s, &pos, NAME_MAX, &name)) ||
		    (err = string_at(s, &pos, PATH_MAX - 1, &target)))
			return err;
		if (!room(s, entry))
			return bad(s);
		err = hostfs_symlink(s->fs, s->in.nodeid, name, target, &e);
		break;
	case FUSE_LINK: {
		const struct fuse_link_in *in = entry_request(s, sizeof(*in), entry, &pos, &name,
							     &err);

		if (!in)
			return err;
		err = hostfs_link(s->fs, in->oldnodeid, s->in.nodeid, name, &e);
		break;
	}
	default: { /* FUSE_CREATE */
		const struct fuse_create_in *in = entry_request(s, sizeof(*in),
							       entry + sizeof(struct fuse_open_out),
							       &pos, &name, &err);

		if (!in)
			return err;
		count(&s->stats.opens, 1);
		err = hostfs_create(s->fs, s->in.nodeid, name, in->mode, (int)in->flags, in->umask,
				    &e, &fh);
		if (err)
			return err;
		struct fuse_open_out oo = { .fh = fh, .open_flags = open_flags(s, false) };

		put_entry(s, &e);
		guest_put(&s->w, &oo, sizeof(oo));
		return sizeof(struct fuse_entry_out) + sizeof(oo);
	}
	}
	count(&s->stats.changes, 1);
	return err ? err : put_entry(s, &e);
}

/* UNLINK, RMDIR, RENAME, RENAME2: no reply beyond the header. */
static int op_remove(struct fuse_server *s)
{
	uint32_t op = s->in.opcode, pos = 0, flags = 0;
	const char *name, *newname;
	uint64_t newdir;
	int err;

	count(&s->stats.changes, 1);
	if (op == FUSE_UNLINK || op == FUSE_RMDIR) {
		if ((err = string_at(s, &pos, NAME_MAX, &name)))
			return err;
		return op == FUSE_UNLINK ? hostfs_unlink(s->fs, s->in.nodeid, name)
					 : hostfs_rmdir(s->fs, s->in.nodeid, name);
	}
	if (op == FUSE_RENAME) {
		const struct fuse_rename_in *in = args(s, sizeof(*in));

		if (!in)
			return bad(s);
		newdir = in->newdir;
		pos = sizeof(*in);
	} else {
		const struct fuse_rename2_in *in = args(s, sizeof(*in));

		if (!in)
			return bad(s);
		newdir = in->newdir;
		flags = in->flags;
		pos = sizeof(*in);
	}
	if ((err = string_at(s, &pos, NAME_MAX, &name)) ||
	    (err = string_at(s, &pos, NAME_MAX, &newname)))
		return err;
	return hostfs_rename(s->fs, s->in.nodeid, name, newdir, newname, flags);
}

static int op_open(struct fuse_server *s)
{
	const struct fuse_open_in *in = args(s, sizeof(*in));
	bool dir = s->in.opcode == FUSE_OPENDIR;
	struct fuse_open_out oo = { 0 };
	int err;

	if (!in || !room(s, sizeof(oo)))
		return bad(s);
	count(&s->stats.opens, 1);
	err = dir ? hostfs_opendir(s->fs, s->in.nodeid, &oo.fh)
		  : hostfs_open_file(s->fs, s->in.nodeid, (int)in->flags, &oo.fh);
	if (err)
		return err;
	oo.open_flags = open_flags(s, dir);
	guest_put(&s->w, &oo, sizeof(oo));
	return sizeof(oo);
}

/* READ: straight from the file into the guest's buffers after the out header. */
static int op_read(struct fuse_server *s)
{
	const struct fuse_read_in *in = args(s, sizeof(*in));
	uint64_t len, got;
	ssize_t n;
	int niov;

	if (!in)
		return bad(s);
	len = MIN((uint64_t)in->size, s->w.left);
	len = MIN(len, (uint64_t)s->max_pages * PAGE);
	niov = build_iov(s->req, true, sizeof(struct fuse_out_header), len, s->iov, &got);
	count(&s->stats.reads, 1);
	n = niov ? hostfs_read(s->fs, in->fh, in->offset, s->iov, niov) : 0;
	if (n < 0)
		return (int)n;
	count(&s->stats.bytes_read, (unsigned long)n);
	/* The bytes went in through the iovec: only the cursor moves. */
	s->w.left -= (uint64_t)n;
	return (int)n;
}

/* WRITE: straight from the guest's buffers after fuse_write_in into the file. */
static int op_write(struct fuse_server *s)
{
	const struct fuse_write_in *in = args(s, sizeof(*in));
	struct fuse_write_out out = { 0 };
	uint64_t got;
	ssize_t n = 0;
	int niov;

	if (!in || !room(s, sizeof(out)))
		return bad(s);
	/* The data must be in the request, as in.len counts it. */
	if (in->size > s->body_len - sizeof(*in))
		return bad(s);
	niov = build_iov(s->req, false, sizeof(struct fuse_in_header) + sizeof(*in), in->size,
			 s->iov, &got);
	if (got != in->size)
		return bad(s);
	count(&s->stats.writes, 1);
	if (niov)
		n = hostfs_write(s->fs, in->fh, in->offset, s->iov, niov);
	if (n < 0)
		return (int)n;
	count(&s->stats.bytes_written, (unsigned long)n);
	out.size = (uint32_t)n;
	guest_put(&s->w, &out, sizeof(out));
	return sizeof(out);
}

static int op_statfs(struct fuse_server *s)
{
	struct fuse_statfs_out out = { 0 };
	struct statvfs sv;
	int err;

	if (!room(s, sizeof(out)))
		return bad(s);
	err = hostfs_statfs(s->fs, s->in.nodeid, &sv);
	if (err)
		return err;
	out.st.blocks = sv.f_blocks;
	out.st.bfree = sv.f_bfree;
	out.st.bavail = sv.f_bavail;
	out.st.files = sv.f_files;
	out.st.ffree = sv.f_ffree;
	out.st.bsize = (uint32_t)sv.f_bsize;
	out.st.namelen = (uint32_t)sv.f_namemax;
	out.st.frsize = (uint32_t)sv.f_frsize;
	guest_put(&s->w, &out, sizeof(out));
	return sizeof(out);
}

/* RELEASE, RELEASEDIR, FLUSH, FSYNC, FSYNCDIR: a handle, and no reply beyond the header. */
static int op_handle(struct fuse_server *s)
{
	switch (s->in.opcode) {
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR: {
		const struct fuse_release_in *in = args(s, sizeof(*in));

		if (!in)
			return bad(s);
		return s->in.opcode == FUSE_RELEASE ? hostfs_release(s->fs, in->fh)
						    : hostfs_releasedir(s->fs, in->fh);
	}
	case FUSE_FLUSH:
		/* close() of one of the guest's descriptors: nothing is buffered here. */
		return args(s, sizeof(struct fuse_flush_in)) ? 0 : bad(s);
	default: { /* FSYNC, FSYNCDIR */
		const struct fuse_fsync_in *in = args(s, sizeof(*in));
		bool datasync;

		if (!in)
			return bad(s);
		count(&s->stats.syncs, 1);
		datasync = in->fsync_flags & FUSE_FSYNC_FDATASYNC;
		return s->in.opcode == FUSE_FSYNC ? hostfs_fsync(s->fs, in->fh, datasync)
						  : hostfs_fsyncdir(s->fs, in->fh, datasync);
	}
	}
}

struct dir_fill {
	struct fuse_server *s;
	bool plus;
	uint64_t left;      /* bytes the guest asked for, still free */
	uint32_t written;
};

static bool is_dot_or_dotdot(const char *name, size_t len)
{
	return name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.'));
}

static int dirent_fill(void *opaque, const char *name, size_t namelen, uint64_t ino,
		       unsigned type, uint64_t next_off)
{
	struct dir_fill *d = opaque;
	struct fuse_server *s = d->s;
	size_t head = d->plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
	size_t size = FUSE_DIRENT_ALIGN(head + namelen);
	struct fuse_dirent de = { .ino = ino, .off = next_off, .namelen = (uint32_t)namelen,
				  .type = type };

	if (size > d->left || namelen > NAME_MAX)
		return 1;
	if (d->plus) {
		struct fuse_entry_out eo = { 0 };
		struct hostfs_entry e;

		/* "." and ".." get node id 0, as from virtiofsd: the guest links neither. A name
		 * that vanished or is refused meanwhile gets node id 0 too: the guest then lists
		 * it without caching anything about it. */
		if (!is_dot_or_dotdot(name, namelen)) {
			count(&s->stats.lookups, 1);
			if (hostfs_lookup(s->fs, s->in.nodeid, name, &e) == 0)
				fill_entry(s, &eo, &e);
		}
		guest_put(&s->w, &eo, sizeof(eo));
	}
	guest_put(&s->w, &de, FUSE_NAME_OFFSET);
	guest_put(&s->w, name, namelen);
	guest_put(&s->w, NULL, size - head - namelen);
	d->left -= size;
	d->written += (uint32_t)size;
	return 0;
}

static int op_readdir(struct fuse_server *s)
{
	const struct fuse_read_in *in = args(s, sizeof(*in));
	struct dir_fill d = { .s = s, .plus = s->in.opcode == FUSE_READDIRPLUS };
	int err;

	if (!in)
		return bad(s);
	d.left = MIN((uint64_t)in->size, s->w.left);
	d.left = MIN(d.left, (uint64_t)s->max_pages * PAGE);
	count(&s->stats.readdirs, 1);
	err = hostfs_readdir(s->fs, in->fh, in->offset, dirent_fill, &d);
	/* What was written is the guest's, even if the directory failed after it. */
	return d.written ? (int)d.written : err;
}

static int op_access(struct fuse_server *s)
{
	const struct fuse_access_in *in = args(s, sizeof(*in));

	return in ? hostfs_access(s->fs, s->in.nodeid, (int)in->mask) : bad(s);
}

static int op_fallocate(struct fuse_server *s)
{
	const struct fuse_fallocate_in *in = args(s, sizeof(*in));

	if (!in)
		return bad(s);
	count(&s->stats.changes, 1);
	return hostfs_fallocate(s->fs, in->fh, (int)in->mode, in->offset, in->length);
}

static int op_lseek(struct fuse_server *s)
{
	const struct fuse_lseek_in *in = args(s, sizeof(*in));
	struct fuse_lseek_out out;
	int64_t off;

	if (!in || !room(s, sizeof(out)))
		return bad(s);
	off = hostfs_lseek(s->fs, in->fh, (int64_t)in->offset, (int)in->whence);
	if (off < 0)
		return (int)off;
	out.offset = (uint64_t)off;
	guest_put(&s->w, &out, sizeof(out));
	return sizeof(out);
}

/* GETXATTR, LISTXATTR: with size 0 the value's (list's) size, otherwise the value itself, or
 * -ERANGE when it is longer than size. */
static int op_xattr(struct fuse_server *s)
{
	const struct fuse_getxattr_in *in = args(s, sizeof(*in));
	uint32_t pos = sizeof(*in);
	const char *name = NULL;
	size_t cap;
	ssize_t n;
	int err;

	if (!in)
		return bad(s);
	if (s->in.opcode == FUSE_GETXATTR && (err = string_at(s, &pos, XATTR_NAME_MAX, &name)))
		return err;
	count(&s->stats.getattrs, 1);
	if (in->size == 0) {
		struct fuse_getxattr_out out = { 0 };

		if (!room(s, sizeof(out)))
			return bad(s);
		n = name ? hostfs_getxattr(s->fs, s->in.nodeid, name, NULL, 0)
			 : hostfs_listxattr(s->fs, s->in.nodeid, NULL, 0);
		if (n < 0)
			return (int)n;
		out.size = (uint32_t)n;
		guest_put(&s->w, &out, sizeof(out));
		return sizeof(out);
	}
	cap = MIN((size_t)in->size, sizeof(s->scratch));
	if (!room(s, cap))
		return bad(s);
	n = name ? hostfs_getxattr(s->fs, s->in.nodeid, name, s->scratch, cap)
		 : hostfs_listxattr(s->fs, s->in.nodeid, s->scratch, cap);
	if (n < 0)
		return (int)n;
	guest_put(&s->w, s->scratch, (uint64_t)n);
	return (int)n;
}

static int dispatch(struct fuse_server *s)
{
	uint32_t op = s->in.opcode;

	if (op == FUSE_INIT) {
		count(&s->stats.inits, 1);
		return op_init(s);
	}
	if (!s->initialized)
		return -EIO;
	switch (op) {
	case FUSE_LOOKUP:
		return op_lookup(s);
	case FUSE_GETATTR:
		count(&s->stats.getattrs, 1);
		return op_getattr(s);
	case FUSE_SETATTR:
		count(&s->stats.getattrs, 1);
		return op_setattr(s);
	case FUSE_READLINK:
		count(&s->stats.getattrs, 1);
		return op_readlink(s);
	case FUSE_MKNOD:
	case FUSE_MKDIR:
	case FUSE_SYMLINK:
	case FUSE_LINK:
	case FUSE_CREATE:
		return op_make(s);
	case FUSE_UNLINK:
	case FUSE_RMDIR:
	case FUSE_RENAME:
	case FUSE_RENAME2:
		return op_remove(s);
	case FUSE_OPEN:
	case FUSE_OPENDIR:
		return op_open(s);
	case FUSE_READ:
		return op_read(s);
	case FUSE_WRITE:
		return op_write(s);
	case FUSE_STATFS:
		count(&s->stats.getattrs, 1);
		return op_statfs(s);
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
	case FUSE_FLUSH:
	case FUSE_FSYNC:
	case FUSE_FSYNCDIR:
		return op_handle(s);
	case FUSE_READDIR:
	case FUSE_READDIRPLUS:
		return op_readdir(s);
	case FUSE_ACCESS:
		count(&s->stats.getattrs, 1);
		return op_access(s);
	case FUSE_FALLOCATE:
		return op_fallocate(s);
	case FUSE_LSEEK:
		return op_lseek(s);
	case FUSE_GETXATTR:
	case FUSE_LISTXATTR:
		if (s->no_xattr)
			break;
		return op_xattr(s);
	case FUSE_DESTROY:
		count(&s->stats.inits, 1);
		fuse_server_reset(s);
		return 0;
	}
	/* SETXATTR and REMOVEXATTR (hostfs's xattrs are read-only), GETXATTR and LISTXATTR on a
	 * share without xattrs, locks (not negotiated: the
	 * guest keeps them), INTERRUPT, BMAP, IOCTL, POLL, COPY_FILE_RANGE, DAX mappings, SYNCFS,
	 * TMPFILE and whatever comes next: the guest's kernel remembers ENOSYS and stops asking. */
	count(&s->stats.unsupported, 1);
	return -ENOSYS;
}

uint32_t fuse_serve(struct fuse_server *s, const struct virtq_req *req)
{
	const uint32_t hlen = sizeof(struct fuse_in_header);
	struct fuse_out_header out;
	uint64_t ext;
	int res;

	count(&s->stats.requests, 1);
	s->req = req;
	if (req->read_len < hlen || guest_copy_in(req, 0, &s->in, hlen) != hlen) {
		count(&s->stats.malformed, 1);
		return 0;
	}
	/* in.len counts the header, the arguments and the extensions; it may not claim more than
	 * the chain holds (trailing bytes beyond it are ignored). */
	ext = (uint64_t)s->in.total_extlen * 8;
	if (s->in.len < hlen || s->in.len > req->read_len || s->in.len - hlen < ext) {
		res = -EINVAL;
		s->body_len = 0;
	} else {
		res = 0;
		s->body_len = (uint32_t)(s->in.len - hlen - ext);
	}
	if (s->in.opcode == FUSE_FORGET || s->in.opcode == FUSE_BATCH_FORGET) {
		if (res)
			count(&s->stats.malformed, 1);
		else if (s->initialized)
			op_forget(s);
		return 0;
	}
	if (req->write_len < sizeof(out)) {
		count(&s->stats.malformed, 1);
		return 0;
	}
	w_init(&s->w, req, sizeof(out));
	/* A used length is 32 bits: larger writable parts are used only up to that. */
	if (s->w.left > UINT32_MAX - sizeof(out))
		s->w.left = UINT32_MAX - sizeof(out);
	if (res == 0) {
		/* WRITE's data stays in guest memory: only its fuse_write_in is copied. */
		uint64_t want = s->in.opcode == FUSE_WRITE ? sizeof(struct fuse_write_in) : IN_MAX;

		s->copied = (uint32_t)guest_copy_in(req, hlen, s->body, MIN(want, s->body_len));
		res = dispatch(s);
	} else {
		count(&s->stats.malformed, 1);
	}
	if (res < 0) {
		count(&s->stats.errors, 1);
		out = (struct fuse_out_header){ .len = sizeof(out), .error = res };
	} else {
		out = (struct fuse_out_header){ .len = sizeof(out) + (uint32_t)res };
	}
	out.unique = s->in.unique;
	w_init(&s->w, req, 0);
	guest_put(&s->w, &out, sizeof(out));
	return out.len;
}

void fuse_server_reset(struct fuse_server *s)
{
	hostfs_reset(s->fs);
	s->initialized = false;
}

bool fuse_server_initialized(const struct fuse_server *s)
{
	return s->initialized;
}

int fuse_server_create(const struct fuse_server_opts *o, struct fuse_server **out)
{
	struct fuse_server *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->fs = o->fs;
	s->timeout = o->timeout;
	s->no_xattr = o->no_xattr;
	s->keep_cache = o->keep_cache;
	s->max_pages = MAX(1u, MIN(o->max_pages, (uint32_t)UINT16_MAX));
	*out = s;
	return 0;
}

void fuse_server_destroy(struct fuse_server *s)
{
	free(s);
}

const struct fuse_server_stats *fuse_server_stats(const struct fuse_server *s)
{
	return &s->stats;
}
