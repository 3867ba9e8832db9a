/* libFuzzer target: the virtio-fs FUSE server (devices/virtio/fuse.c) over hostfs, against a
 * hostile driver's requests.
 *
 * A scratch share is made once (mkdtemp under /tmp: files, a directory, a symlink, a FIFO) and
 * removed at exit; two servers serve it, one read-only and one writable. Each input starts a
 * new session (reset and INIT) on the share as it was made (put back when the input before
 * sent anything that may have changed it), so that an input replays the same way whatever ran
 * before and the share never grows; then it serves its requests in turn:
 *
 *   [0]        bit 0: the read-only server
 *   then, per request:
 *   [0]        readable segment size (0: one segment)
 *   [1]        writable segment size (0: one segment)
 *   [2..3]     writable bytes (the reply area)
 *   [4..5]     request bytes n, then n bytes: struct fuse_in_header and what follows
 *
 * The request and the reply area are heap blocks of exactly their size, each segment its own
 * slice: AddressSanitizer catches a read or write one byte outside. Node ids and handles are
 * 64-bit values the fuzzer could not guess, so the harness hands out the ones the server gave:
 * a nodeid (or a LINK/RENAME's second node) from 2 to 9 becomes the id of the (n - 2)th node a
 * reply named in this input, and a first argument word from 1 to 8 (the fh of READ, WRITE,
 * RELEASE, ...) the (n - 1)th handle. Checked beyond the sanitizers: the used length fits the
 * reply area and equals the out header's len, an error reply is a header alone with a
 * negative errno, and FORGETs get no reply.
 *
 * FALLOCATE is wrapped (-Wl,--wrap) to at most 1 MiB: one request must not fill /tmp. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/fuse.h"
#include "hostfs/hostfs.h"
#include "tests/fuzz/fuzz_common.h"

static char share[64];
static struct hostfs *fs[2];
static struct fuse_server *srv[2];
static struct virtq_req req;
static uint64_t ids[8], fhs[8];
static int nids, nfhs;
static bool dirty;          /* a request may have changed the share */

int __real_hostfs_fallocate(struct hostfs *h, uint64_t fh, int mode, uint64_t off, uint64_t len);

int __wrap_hostfs_fallocate(struct hostfs *h, uint64_t fh, int mode, uint64_t off, uint64_t len)
{
	if (len > (1 << 20))
		len = 1 << 20;
	return __real_hostfs_fallocate(h, fh, mode, off, len);
}

static void put(const char *rel, const char *data)
{
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", share, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	FUZZ_ASSERT(fd >= 0);
	FUZZ_ASSERT(write(fd, data, strlen(data)) == (ssize_t)strlen(data));
	close(fd);
}

/* Directories made searchable first (the guest may have chmod'ed one to 0), then everything
 * removed bottom-up; the share's own directory only at exit (the servers hold it). */
static int open_up(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_D && (st->st_mode & 0700) != 0700)
		chmod(path, 0700);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

static void empty_share(void)
{
	chmod(share, 0700);
	nftw(share, open_up, 16, FTW_PHYS);
	nftw(share, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_share(void)
{
	empty_share();
	rmdir(share);
}

static void populate(void)
{
	char p[128];

	chmod(share, 0755);
	put("hello.txt", "hello, world\n");
	snprintf(p, sizeof(p), "%s/dir", share);
	FUZZ_ASSERT(mkdir(p, 0755) == 0);
	put("dir/a", "A");
	put("dir/b", "BB");
	snprintf(p, sizeof(p), "%s/link", share);
	FUZZ_ASSERT(symlink("../../etc/passwd", p) == 0);
	snprintf(p, sizeof(p), "%s/fifo", share);
	FUZZ_ASSERT(mkfifo(p, 0600) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	snprintf(share, sizeof(share), "/tmp/mica-fuzz-fuse-XXXXXX");
	FUZZ_ASSERT(mkdtemp(share));
	atexit(remove_share);
	populate();
	for (int i = 0; i < 2; i++) {
		/* 16 descriptors for up to 256 inodes: most requests find their node again
		 * by name (hostfs/fdcache.c). */
		struct hostfs_opts ho = { .path = share, .readonly = i == 1, .max_inodes = 256,
					  .max_fds = 16, .max_handles = 64 };
		struct fuse_server_opts so = { .timeout = 1, .keep_cache = i == 1,
					       .max_pages = 32 };
		struct err e = { "" };

		if (hostfs_open(&ho, &fs[i], &e)) {
			fprintf(stderr, "fuzz_fuse: %s\n", e.msg);
			abort();
		}
		so.fs = fs[i];
		FUZZ_ASSERT(fuse_server_create(&so, &srv[i]) == 0);
	}
	return 0;
}

/* Serves the n request bytes at data with the given segmentation; returns the used length. */
static uint32_t serve(struct fuse_server *s, const uint8_t *data, size_t n, unsigned rpiece,
		      unsigned wpiece, size_t wcap, uint8_t **reply)
{
	uint8_t *in = malloc(n ? n : 1), *out = malloc(wcap ? wcap : 1);
	uint32_t used;

	FUZZ_ASSERT(in && out);
	memcpy(in, data, n);
	memset(&req, 0, sizeof(req));
	for (size_t off = 0; off < n;) {
		size_t k = rpiece ? rpiece : n;

		if (req.nsegs == VIRTQ_MAX_SEGS / 2 - 1 || k > n - off)
			k = n - off;
		req.segs[req.nsegs++] = (struct virtq_seg){ in + off, (uint32_t)k, false };
		off += k;
	}
	req.read_len = n;
	for (size_t off = 0; off < wcap;) {
		size_t k = wpiece ? wpiece : wcap;

		if (req.nsegs == VIRTQ_MAX_SEGS - 1 || k > wcap - off)
			k = wcap - off;
		req.segs[req.nsegs++] = (struct virtq_seg){ out + off, (uint32_t)k, true };
		off += k;
	}
	req.write_len = wcap;
	used = fuse_serve(s, &req);
	FUZZ_ASSERT(used <= wcap);
	if (used >= sizeof(struct fuse_out_header)) {
		struct fuse_out_header oh;

		memcpy(&oh, out, sizeof(oh));
		FUZZ_ASSERT(oh.len == used);
		FUZZ_ASSERT(oh.error <= 0 && oh.error > -4096);
		FUZZ_ASSERT(!oh.error || used == sizeof(oh));
	}
	free(in);
	*reply = out;
	return used;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* Hands the server's own node ids and handles back in the request (see the top). */
static void substitute(uint8_t *r, size_t n)
{
	struct fuse_in_header h;
	uint64_t v;

	if (n < sizeof(h))
		return;
	memcpy(&h, r, sizeof(h));
	if (h.nodeid >= 2 && h.nodeid < 10 && (int)(h.nodeid - 2) < nids) {
		h.nodeid = ids[h.nodeid - 2];
		memcpy(r, &h, sizeof(h));
	}
	if (n < sizeof(h) + 8)
		return;
	v = le64(r + sizeof(h));
	if (h.opcode == FUSE_LINK || h.opcode == FUSE_RENAME || h.opcode == FUSE_RENAME2) {
		if (v >= 2 && v < 10 && (int)(v - 2) < nids)
			memcpy(r + sizeof(h), &ids[v - 2], 8);
	} else if (v >= 1 && v <= 8 && (int)(v - 1) < nfhs) {
		memcpy(r + sizeof(h), &fhs[v - 1], 8);
	}
}

/* Remembers the node ids and handles a successful reply carries. */
static void harvest(uint32_t opcode, const uint8_t *out, uint32_t used)
{
	const uint8_t *p = out + sizeof(struct fuse_out_header);
	uint32_t len = used - (uint32_t)sizeof(struct fuse_out_header);
	struct fuse_entry_out eo;
	struct fuse_open_out oo;

	switch (opcode) {
	case FUSE_LOOKUP: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_SYMLINK: case FUSE_LINK:
	case FUSE_CREATE:
		if (len < sizeof(eo))
			return;
		memcpy(&eo, p, sizeof(eo));
		if (eo.nodeid && nids < 8)
			ids[nids++] = eo.nodeid;
		if (opcode != FUSE_CREATE || len < sizeof(eo) + sizeof(oo))
			return;
		p += sizeof(eo);
		/* fall through */
	case FUSE_OPEN: case FUSE_OPENDIR:
		if (len < sizeof(oo) || nfhs == 8)
			return;
		memcpy(&oo, p, sizeof(oo));
		fhs[nfhs++] = oo.fh;
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuse_init_in init = { .major = 7, .minor = FUSE_KERNEL_MINOR_VERSION,
				     .max_readahead = 1 << 17, .flags = 0xffffffff };
	uint8_t msg[sizeof(struct fuse_in_header) + sizeof(init)], *out;
	struct fuse_in_header h = { .len = sizeof(msg), .opcode = FUSE_INIT, .unique = 1 };
	struct fuse_server *s;
	uint32_t used;

	if (!size)
		return 0;
	s = srv[data[0] & 1];
	data++, size--;
	nids = nfhs = 0;
	fuse_server_reset(s);
	if (dirty) {
		empty_share();
		populate();
		dirty = false;
	}
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), &init, sizeof(init));
	used = serve(s, msg, sizeof(msg), 0, 0, 4096, &out);
	FUZZ_ASSERT(used > sizeof(struct fuse_out_header));
	free(out);
	while (size >= 6) {
		unsigned rpiece = data[0], wpiece = data[1];
		size_t wcap = data[2] | (size_t)data[3] << 8, n = data[4] | (size_t)data[5] << 8;
		uint8_t *r;
		uint32_t opcode = 0;

		data += 6, size -= 6;
		if (n > size)
			n = size;
		r = malloc(n ? n : 1);
		FUZZ_ASSERT(r);
		memcpy(r, data, n);
		substitute(r, n);
		if (n >= 8)
			memcpy(&opcode, r + 4, 4);
		switch (opcode) {
		case FUSE_SETATTR: case FUSE_SYMLINK: case FUSE_MKNOD: case FUSE_MKDIR:
		case FUSE_UNLINK: case FUSE_RMDIR: case FUSE_RENAME: case FUSE_LINK: case FUSE_OPEN:
		case FUSE_WRITE: case FUSE_CREATE: case FUSE_FALLOCATE: case FUSE_RENAME2:
		case FUSE_SETXATTR: case FUSE_REMOVEXATTR:
			dirty = true;
		}
		used = serve(s, r, n, rpiece, wpiece, wcap, &out);
		if (opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET)
			FUZZ_ASSERT(used == 0);
		if (used > sizeof(struct fuse_out_header))
			harvest(opcode, out, used);
		free(out);
		free(r);
		data += n, size -= n;
	}
	return 0;
}
