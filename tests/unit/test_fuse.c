/* The virtio-fs FUSE server (devices/virtio/fuse.c) driven as the guest's driver drives it,
 * over a scratch share in /tmp: requests are laid out in buffers that stand for guest memory,
 * split into segments as a chain would (also into odd, tiny pieces), and fuse_serve()
 * answers into a reply area followed by a canary that must stay untouched. Then the device
 * (devices/virtio/fs.c) on the fake transport: its config, its own thread serving a ring, a
 * reset. No KVM. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fuse.h>
#include <linux/virtio_fs.h>
#include <linux/virtio_ids.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/fs.h"
#include "devices/virtio/fuse.h"
#include "devices/virtio/virtio.h"
#include "hostfs/hostfs.h"
#include "tests/unit/test.h"
#include "tests/unit/test_env.h"
#include "tests/unit/vring_driver.h"
#include "vmm/log.h"

#define BUF      (1 << 20)
#define CANARY   64
#define HELLO    "hello, world\n"
#define BIG_SIZE (600 * 1024 + 17)
#define MAX_PAGES 128

static char share[64];
static struct hostfs *hfs;
static struct fuse_server *srv;

static uint8_t in_buf[BUF] __attribute__((aligned(8)));
static uint8_t out_buf[BUF + CANARY] __attribute__((aligned(8)));
static size_t in_len;
static struct virtq_req req;

/* ---- the scratch share ---- */

static void host_write(const char *rel, const void *data, size_t len)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", share, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		abort();
	close(fd);
}

static uint8_t big_byte(size_t i)
{
	return (uint8_t)(i * 7 + i / 4096);
}

static void make_share(void)
{
	static uint8_t big[BIG_SIZE];
	char path[256];

	snprintf(share, sizeof(share), "/tmp/mica-fuse-XXXXXX");
	if (!mkdtemp(share))
		abort();
	host_write("hello.txt", HELLO, strlen(HELLO));
	for (size_t i = 0; i < BIG_SIZE; i++)
		big[i] = big_byte(i);
	host_write("big.bin", big, BIG_SIZE);
	snprintf(path, sizeof(path), "%s/dir", share);
	if (mkdir(path, 0755) < 0)
		abort();
	host_write("dir/a", "A", 1);
	host_write("dir/bb", "BB", 2);
	host_write("dir/ccc", "CCC", 3);
	snprintf(path, sizeof(path), "%s/link", share);
	if (symlink("hello.txt", path) < 0)
		abort();
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void host_path(char *out, size_t n, const char *rel)
{
	snprintf(out, n, "%s/%s", share, rel);
}

static bool host_exists(const char *rel)
{
	char p[256];
	struct stat st;

	host_path(p, sizeof(p), rel);
	return lstat(p, &st) == 0;
}

static bool next_no_xattr;      /* the next setup's server serves no xattrs */

/* A share and a server on it (not yet INIT). */
static void setup(bool ro, uint32_t timeout)
{
	struct hostfs_opts ho = { 0 };
	struct fuse_server_opts so = { .timeout = timeout, .keep_cache = ro,
				       .max_pages = MAX_PAGES, .no_xattr = next_no_xattr };
	struct err e = { "" };

	log_set_level(LOG_ERROR);
	make_share();
	ho.path = share;
	ho.readonly = ro;
	if (hostfs_open(&ho, &hfs, &e)) {
		printf("# hostfs_open: %s\n", e.msg);
		abort();
	}
	so.fs = hfs;
	if (fuse_server_create(&so, &srv))
		abort();
}

static void teardown(void)
{
	fuse_server_destroy(srv);
	hostfs_close(hfs);
	nftw(share, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	srv = NULL;
	hfs = NULL;
}

/* ---- requests, as the driver lays them out ---- */

static struct fuse_in_header *hdr(void)
{
	return (struct fuse_in_header *)in_buf;
}

static void begin(uint32_t op, uint64_t nodeid)
{
	static uint64_t unique = 100;

	memset(in_buf, 0, 4096);
	*hdr() = (struct fuse_in_header){ .opcode = op, .unique = unique++, .nodeid = nodeid,
					  .uid = 1000, .gid = 1000, .pid = 42 };
	in_len = sizeof(struct fuse_in_header);
}

static void add(const void *p, size_t n)
{
	memcpy(in_buf + in_len, p, n);
	in_len += n;
}

static void add_str(const char *s)
{
	add(s, strlen(s) + 1);
}

/* Serves the request (in.len set to what was added, unless keep_len) as a chain whose
 * readable part is split into rpiece-byte segments and whose writable part of wcap bytes into
 * wpiece-byte ones (0: one segment). Checks that the reply stays within wcap and that the
 * used length is the out header's. Returns the used length. */
static uint32_t serve_raw(size_t rbytes, size_t wcap, size_t rpiece, size_t wpiece)
{
	uint32_t n;

	memset(&req, 0, sizeof(req));
	req.head = 7;
	for (size_t off = 0; off < rbytes;) {
		size_t k = rpiece ? rpiece : rbytes;

		k = k < rbytes - off ? k : rbytes - off;
		if (req.nsegs == VIRTQ_MAX_SEGS)
			abort();
		req.segs[req.nsegs++] = (struct virtq_seg){ in_buf + off, (uint32_t)k, false };
		off += k;
	}
	req.read_len = rbytes;
	for (size_t off = 0; off < wcap;) {
		size_t k = wpiece ? wpiece : wcap;

		k = k < wcap - off ? k : wcap - off;
		if (req.nsegs == VIRTQ_MAX_SEGS)
			abort();
		req.segs[req.nsegs++] = (struct virtq_seg){ out_buf + off, (uint32_t)k, true };
		off += k;
	}
	req.write_len = wcap;
	memset(out_buf, 0xa5, wcap + CANARY);
	n = fuse_serve(srv, &req);
	CHECK(n <= wcap);
	for (size_t i = wcap; i < wcap + CANARY; i++)
		if (out_buf[i] != 0xa5) {
			printf("#   byte %zu past the %zu-byte reply area written\n", i, wcap);
			test_failed_checks++;
			break;
		}
	if (n >= sizeof(struct fuse_out_header)) {
		const struct fuse_out_header *oh = (const void *)out_buf;

		CHECK_EQ(oh->len, n);
		CHECK_EQ(oh->unique, hdr()->unique);
	}
	return n;
}

/* The usual chain: one readable, one writable segment of wcap bytes. Returns the reply's
 * error (0 or -errno); its payload is at out_buf + 16, *plen bytes. */
static int serve_split(size_t wcap, size_t rpiece, size_t wpiece, uint32_t *plen)
{
	const struct fuse_out_header *oh = (const void *)out_buf;
	uint32_t n;

	hdr()->len = (uint32_t)in_len;
	n = serve_raw(in_len, wcap, rpiece, wpiece);
	if (n < sizeof(*oh)) {
		printf("#   no reply (%u bytes)\n", n);
		test_failed_checks++;
		return 1;
	}
	if (plen)
		*plen = n - (uint32_t)sizeof(*oh);
	if (oh->error)
		CHECK_EQ(n, sizeof(*oh));
	return oh->error;
}

static int serve(size_t wcap, uint32_t *plen)
{
	return serve_split(wcap, 0, 0, plen);
}

static void *payload(void)
{
	return out_buf + sizeof(struct fuse_out_header);
}

/* ---- operations ---- */

static int do_init(uint32_t minor, uint32_t flags, struct fuse_init_out *out)
{
	struct fuse_init_in in = { .major = 7, .minor = minor, .max_readahead = 1 << 20,
				   .flags = flags };
	uint32_t len;
	int err;

	begin(FUSE_INIT, 0);
	add(&in, sizeof(in));
	err = serve(4096, &len);
	if (!err && out) {
		memset(out, 0, sizeof(*out));
		memcpy(out, payload(), len < sizeof(*out) ? len : sizeof(*out));
	}
	return err;
}

static void init(void)
{
	CHECK_EQ(do_init(FUSE_KERNEL_MINOR_VERSION, FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES, NULL), 0);
}

static int lookup(uint64_t parent, const char *name, struct fuse_entry_out *eo)
{
	int err;

	begin(FUSE_LOOKUP, parent);
	add_str(name);
	err = serve(4096, NULL);
	if (!err && eo)
		memcpy(eo, payload(), sizeof(*eo));
	return err;
}

static uint64_t lookup_id(uint64_t parent, const char *name)
{
	struct fuse_entry_out eo = { 0 };

	CHECK_EQ(lookup(parent, name, &eo), 0);
	return eo.nodeid;
}

static int getattr(uint64_t id, struct fuse_attr *a)
{
	struct fuse_getattr_in in = { 0 };
	int err;

	begin(FUSE_GETATTR, id);
	add(&in, sizeof(in));
	err = serve(4096, NULL);
	if (!err && a)
		*a = ((struct fuse_attr_out *)payload())->attr;
	return err;
}

static int do_open(uint32_t op, uint64_t id, uint32_t flags, uint64_t *fh)
{
	struct fuse_open_in in = { .flags = flags };
	int err;

	begin(op, id);
	add(&in, sizeof(in));
	err = serve(4096, NULL);
	if (!err)
		*fh = ((struct fuse_open_out *)payload())->fh;
	return err;
}

static int release(uint32_t op, uint64_t id, uint64_t fh)
{
	struct fuse_release_in in = { .fh = fh };

	begin(op, id);
	add(&in, sizeof(in));
	return serve(4096, NULL);
}

static void read_req(uint64_t id, uint64_t fh, uint64_t off, uint32_t size)
{
	struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };

	begin(FUSE_READ, id);
	add(&in, sizeof(in));
}

static void forget(uint64_t id, uint64_t n)
{
	struct fuse_forget_in in = { .nlookup = n };

	begin(FUSE_FORGET, id);
	add(&in, sizeof(in));
	hdr()->len = (uint32_t)in_len;
	/* Forgets come with no writable part and get no reply. */
	CHECK_EQ(serve_raw(in_len, 0, 0, 0), 0);
}

static struct hostfs_counts counts(void)
{
	struct hostfs_counts c;

	hostfs_counts(hfs, &c);
	return c;
}

/* ---- tests: the protocol ---- */

static void negotiate(void)
{
	struct fuse_init_out out;

	setup(false, 1);
	/* Nothing before INIT. */
	CHECK_EQ(getattr(FUSE_ROOT_ID, NULL), -EIO);
	CHECK_EQ(do_init(FUSE_KERNEL_MINOR_VERSION + 5, 0xffffffff, &out), 0);
	CHECK_EQ(out.major, 7);
	CHECK_EQ(out.minor, FUSE_KERNEL_MINOR_VERSION);
	CHECK(out.flags & FUSE_DO_READDIRPLUS);
	CHECK(out.flags & FUSE_MAX_PAGES);
	CHECK(out.flags & FUSE_BIG_WRITES);
	CHECK(!(out.flags & (FUSE_EXPORT_SUPPORT | FUSE_POSIX_LOCKS | FUSE_WRITEBACK_CACHE |
			     FUSE_INIT_EXT | FUSE_DONT_MASK | FUSE_POSIX_ACL)));
	CHECK_EQ(out.max_pages, MAX_PAGES);
	CHECK_EQ(out.max_write, MAX_PAGES * 4096);
	CHECK_EQ(out.max_readahead, 1 << 19); /* the guest's 1 MiB, down to max_write */
	CHECK_EQ(getattr(FUSE_ROOT_ID, NULL), 0);
	/* An older guest gets its own minor and only the flags it offered. */
	CHECK_EQ(do_init(27, FUSE_ASYNC_READ, &out), 0);
	CHECK_EQ(out.minor, 27);
	CHECK_EQ(out.flags, FUSE_ASYNC_READ);
	/* 7.22 and older get the 24-byte fuse_init_out. */
	{
		struct fuse_init_in in = { .major = 7, .minor = 22 };
		uint32_t len;

		begin(FUSE_INIT, 0);
		add(&in, 16); /* and the short fuse_init_in of that time */
		CHECK_EQ(serve(4096, &len), 0);
		CHECK_EQ(len, FUSE_COMPAT_22_INIT_OUT_SIZE);
	}
	CHECK_EQ(do_init(11, 0, NULL), -EPROTO);
	/* A failed INIT leaves the session as it was (initialized). */
	{
		struct fuse_init_in in = { .major = 6, .minor = 30 };

		begin(FUSE_INIT, 0);
		add(&in, sizeof(in));
		CHECK_EQ(serve(4096, NULL), -EPROTO);
	}
	{
		/* A newer major: the server answers with its own, and the driver asks again. */
		struct fuse_init_in in = { .major = 8, .minor = 0 };
		uint32_t len;

		begin(FUSE_INIT, 0);
		add(&in, sizeof(in));
		CHECK_EQ(serve(4096, &len), 0);
		CHECK_EQ(len, 8);
		CHECK_EQ(((struct fuse_init_out *)payload())->major, 7);
	}
	teardown();
}

static void lookup_and_getattr(void)
{
	struct fuse_entry_out eo;
	struct fuse_attr a;
	struct stat st;
	char p[256];

	setup(false, 1);
	init();
	CHECK_EQ(lookup(FUSE_ROOT_ID, "hello.txt", &eo), 0);
	host_path(p, sizeof(p), "hello.txt");
	CHECK_EQ(stat(p, &st), 0);
	CHECK(eo.nodeid > FUSE_ROOT_ID);
	CHECK_EQ(eo.attr.ino, st.st_ino);
	CHECK_EQ(eo.attr.size, strlen(HELLO));
	CHECK_EQ(eo.attr.mode, st.st_mode);
	CHECK_EQ(eo.attr.uid, st.st_uid);
	CHECK_EQ(eo.attr.mtime, st.st_mtim.tv_sec);
	CHECK_EQ(eo.attr.mtimensec, st.st_mtim.tv_nsec);
	CHECK_EQ(eo.entry_valid, 1);
	CHECK_EQ(eo.attr_valid, 1);
	CHECK_EQ(getattr(eo.nodeid, &a), 0);
	CHECK_EQ(a.ino, st.st_ino);
	CHECK_EQ(a.size, strlen(HELLO));
	/* The same inode again: the same node id. */
	CHECK_EQ(lookup_id(FUSE_ROOT_ID, "hello.txt"), eo.nodeid);
	/* A subdirectory's entry, and a name in it. */
	{
		uint64_t dir = lookup_id(FUSE_ROOT_ID, "dir");

		CHECK_EQ(getattr(dir, &a), 0);
		CHECK(S_ISDIR(a.mode));
		CHECK_EQ(lookup(dir, "bb", &eo), 0);
		CHECK_EQ(eo.attr.size, 2);
	}
	/* A writable share does not cache missing names. */
	CHECK_EQ(lookup(FUSE_ROOT_ID, "missing", NULL), -ENOENT);
	/* READLINK */
	{
		uint64_t link = lookup_id(FUSE_ROOT_ID, "link");
		uint32_t len;

		begin(FUSE_READLINK, link);
		CHECK_EQ(serve(4096, &len), 0);
		CHECK_EQ(len, strlen("hello.txt"));
		CHECK(!memcmp(payload(), "hello.txt", len));
		/* No room for the target: EINVAL, nothing beyond the header. */
		begin(FUSE_READLINK, link);
		CHECK_EQ(serve(16 + 4, &len), -EINVAL);
	}
	teardown();
}

static void read_file(void)
{
	uint64_t id, fh;
	uint32_t len;

	setup(false, 1);
	init();
	id = lookup_id(FUSE_ROOT_ID, "hello.txt");
	CHECK_EQ(do_open(FUSE_OPEN, id, O_RDONLY, &fh), 0);
	read_req(id, fh, 0, 4096);
	CHECK_EQ(serve(4096 + 16, &len), 0);
	CHECK_EQ(len, strlen(HELLO));
	CHECK(!memcmp(payload(), HELLO, strlen(HELLO)));
	/* From an offset, and limited by size. */
	read_req(id, fh, 7, 3);
	CHECK_EQ(serve(4096 + 16, &len), 0);
	CHECK_EQ(len, 3);
	CHECK(!memcmp(payload(), "wor", 3));
	/* Past the end: nothing. */
	read_req(id, fh, 100, 10);
	CHECK_EQ(serve(4096 + 16, &len), 0);
	CHECK_EQ(len, 0);
	CHECK_EQ(release(FUSE_RELEASE, id, fh), 0);
	/* The big file, the largest READ, into 4099-byte segments (pages never line up with the
	 * header's 16 bytes): straight into the guest's buffers, every byte in place. */
	id = lookup_id(FUSE_ROOT_ID, "big.bin");
	CHECK_EQ(do_open(FUSE_OPEN, id, O_RDONLY, &fh), 0);
	read_req(id, fh, 4096, MAX_PAGES * 4096 + 4096);
	CHECK_EQ(serve_split(16 + MAX_PAGES * 4096 + 4096, 0, 4099, &len), 0);
	CHECK_EQ(len, MAX_PAGES * 4096); /* no more than max_pages, whatever size says */
	{
		bool same = true;

		for (uint32_t i = 0; i < len && same; i++)
			same = ((uint8_t *)payload())[i] == big_byte(4096 + i);
		CHECK(same);
	}
	teardown();
}

static void read_segments(void)
{
	uint64_t id, fh;
	uint32_t len;
	bool same = true;

	setup(false, 1);
	init();
	id = lookup_id(FUSE_ROOT_ID, "big.bin");
	CHECK_EQ(do_open(FUSE_OPEN, id, O_RDONLY, &fh), 0);
	/* 240 writable segments of 2053 bytes (the out header across none: 16 < 2053), the
	 * readable part in 8-byte pieces. */
	read_req(id, fh, 1000, 600000);
	CHECK_EQ(serve_split(2053 * 240, 8, 2053, &len), 0);
	CHECK_EQ(len, 2053 * 240 - 16 < MAX_PAGES * 4096 ? 2053 * 240 - 16 : MAX_PAGES * 4096);
	for (uint32_t i = 0; i < len && same; i++)
		same = ((uint8_t *)payload())[i] == big_byte(1000 + i);
	CHECK(same);
	/* The out header split over 5-byte segments, the data after it too. */
	read_req(id, fh, 0, 100);
	CHECK_EQ(serve_split(200, 3, 5, &len), 0);
	CHECK_EQ(len, 100);
	same = true;
	for (uint32_t i = 0; i < len; i++)
		same &= ((uint8_t *)payload())[i] == big_byte(i);
	CHECK(same);
	/* Up to the end of the file: a short read. */
	read_req(id, fh, BIG_SIZE - 10, 4096);
	CHECK_EQ(serve(8192, &len), 0);
	CHECK_EQ(len, 10);
	teardown();
}

static void write_file(void)
{
	struct fuse_write_in in = { 0 };
	uint64_t id, fh;
	uint32_t len;
	char p[256], got[64] = { 0 };
	int fd;

	setup(false, 1);
	init();
	id = lookup_id(FUSE_ROOT_ID, "hello.txt");
	CHECK_EQ(do_open(FUSE_OPEN, id, O_RDWR, &fh), 0);
	in.fh = fh;
	in.offset = 7;
	in.size = 5;
	begin(FUSE_WRITE, id);
	add(&in, sizeof(in));
	add("WORLD", 5);
	/* The data split over 1-byte segments: readable pieces of 1 byte all through. */
	CHECK_EQ(serve_split(64, 1, 0, &len), 0);
	CHECK_EQ(len, sizeof(struct fuse_write_out));
	CHECK_EQ(((struct fuse_write_out *)payload())->size, 5);
	host_path(p, sizeof(p), "hello.txt");
	fd = open(p, O_RDONLY);
	CHECK(fd >= 0);
	CHECK_EQ(read(fd, got, sizeof(got)), (ssize_t)strlen(HELLO));
	close(fd);
	CHECK(!strcmp(got, "hello, WORLD\n"));
	/* A big write, readable in 4 KiB pieces as the driver's pages come. */
	in.offset = 0;
	in.size = 64 * 4096;
	begin(FUSE_WRITE, id);
	add(&in, sizeof(in));
	for (uint32_t i = 0; i < in.size; i++)
		in_buf[in_len + i] = (uint8_t)(i * 13);
	in_len += in.size;
	CHECK_EQ(serve_split(64, 4096, 0, &len), 0);
	CHECK_EQ(((struct fuse_write_out *)payload())->size, 64 * 4096);
	{
		struct stat st;
		uint8_t b;

		CHECK_EQ(stat(p, &st), 0);
		CHECK_EQ(st.st_size, 64 * 4096);
		fd = open(p, O_RDONLY);
		CHECK_EQ(pread(fd, &b, 1, 12345), 1);
		CHECK_EQ(b, (uint8_t)(12345 * 13));
		close(fd);
	}
	CHECK_EQ(release(FUSE_RELEASE, id, fh), 0);
	/* A file opened read-only takes no write. */
	CHECK_EQ(do_open(FUSE_OPEN, id, O_RDONLY, &fh), 0);
	in = (struct fuse_write_in){ .fh = fh, .size = 1 };
	begin(FUSE_WRITE, id);
	add(&in, sizeof(in));
	add("x", 1);
	CHECK_EQ(serve(64, NULL), -EBADF);
	teardown();
}

/* The names of a READDIR(PLUS) reply, "name:nodeid" joined by spaces, in order. */
static void parse_dir(bool plus, uint32_t len, char *names, size_t cap, uint64_t *last_off)
{
	const uint8_t *p = payload();
	uint32_t pos = 0;

	while (pos < len) {
		const struct fuse_dirent *d;
		uint64_t nodeid = 0;
		size_t size;

		if (plus) {
			const struct fuse_direntplus *dp = (const void *)(p + pos);

			nodeid = dp->entry_out.nodeid;
			d = &dp->dirent;
			size = FUSE_DIRENTPLUS_SIZE(dp);
			if (nodeid) {
				CHECK_EQ(dp->entry_out.attr.ino, d->ino);
				CHECK_EQ(dp->entry_out.attr.mode >> 12, d->type);
			}
		} else {
			d = (const void *)(p + pos);
			size = FUSE_DIRENT_SIZE(d);
		}
		CHECK(pos + size <= len);
		snprintf(names + strlen(names), cap - strlen(names), "%s%.*s:%s", *names ? " " : "",
			 (int)d->namelen, d->name, plus ? (nodeid ? "id" : "0") : "-");
		*last_off = d->off;
		pos += (uint32_t)size;
	}
}

/* Lists dir with READDIR or READDIRPLUS, size bytes at a time; returns the sorted names. */
static void list_dir(uint64_t dir, bool plus, uint32_t size, char *out, size_t cap)
{
	char got[1024] = "";
	char *words[32];
	int n = 0;
	uint64_t fh, off = 0;

	CHECK_EQ(do_open(FUSE_OPENDIR, dir, O_RDONLY, &fh), 0);
	for (int round = 0; round < 32; round++) {
		struct fuse_read_in in = { .fh = fh, .offset = off, .size = size };
		uint32_t len;

		begin(plus ? FUSE_READDIRPLUS : FUSE_READDIR, dir);
		add(&in, sizeof(in));
		CHECK_EQ(serve(16 + size, &len), 0);
		if (!len)
			break;
		parse_dir(plus, len, got, sizeof(got), &off);
	}
	CHECK_EQ(release(FUSE_RELEASEDIR, dir, fh), 0);
	for (char *save = NULL, *w = strtok_r(got, " ", &save); w && n < 32;
	     w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	/* Sorted, so that the host's order does not matter. */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && strcmp(words[j - 1], words[j]) > 0; j--) {
			char *t = words[j];

			words[j] = words[j - 1];
			words[j - 1] = t;
		}
	out[0] = '\0';
	for (int i = 0; i < n; i++)
		snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? " " : "", words[i]);
}

static void readdir_lists(void)
{
	char names[1024];
	uint64_t dir;
	struct hostfs_counts before;

	setup(false, 1);
	init();
	dir = lookup_id(FUSE_ROOT_ID, "dir");
	list_dir(dir, false, 4096, names, sizeof(names));
	CHECK(!strcmp(names, "..:- .:- a:- bb:- ccc:-"));
	if (strcmp(names, "..:- .:- a:- bb:- ccc:-"))
		printf("#   READDIR: %s\n", names);
	/* One entry at a time (32 bytes hold one short name): every name once. */
	list_dir(dir, false, 32, names, sizeof(names));
	CHECK(!strcmp(names, "..:- .:- a:- bb:- ccc:-"));
	before = counts();
	list_dir(dir, true, 4096, names, sizeof(names));
	CHECK(!strcmp(names, "..:0 .:0 a:id bb:id ccc:id"));
	if (strcmp(names, "..:0 .:0 a:id bb:id ccc:id"))
		printf("#   READDIRPLUS: %s\n", names);
	/* Each name looked up is one more node (and one reference the guest forgets later). */
	CHECK_EQ(counts().inodes, before.inodes + 3);
	/* An entry at a time: no name looked up that did not fit. */
	list_dir(dir, true, FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + 3), names,
		 sizeof(names));
	CHECK(!strcmp(names, "..:0 .:0 a:id bb:id ccc:id"));
	{
		/* A READDIRPLUS entry carries the attributes: "a" is one byte long. */
		struct fuse_entry_out eo;

		CHECK_EQ(lookup(dir, "a", &eo), 0);
		CHECK_EQ(eo.attr.size, 1);
	}
	teardown();
}

static void changes(void)
{
	struct fuse_entry_out eo;
	uint64_t dir, fh;
	char p[256];
	struct stat st;
	uint32_t len;

	setup(false, 1);
	init();
	/* CREATE: an entry and an open handle. */
	{
		struct fuse_create_in in = { .flags = O_RDWR | O_CREAT | O_EXCL,
					     .mode = S_IFREG | 0640, .umask = 022 };
		const struct fuse_open_out *oo;

		begin(FUSE_CREATE, FUSE_ROOT_ID);
		add(&in, sizeof(in));
		add_str("new.txt");
		CHECK_EQ(serve(4096, &len), 0);
		CHECK_EQ(len, sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out));
		memcpy(&eo, payload(), sizeof(eo));
		oo = (const void *)((uint8_t *)payload() + sizeof(eo));
		fh = oo->fh;
		CHECK(host_exists("new.txt"));
		host_path(p, sizeof(p), "new.txt");
		CHECK_EQ(stat(p, &st), 0);
		CHECK_EQ(st.st_mode & 0777, 0640);
		CHECK_EQ(eo.attr.ino, st.st_ino);
		CHECK_EQ(release(FUSE_RELEASE, eo.nodeid, fh), 0);
		/* Again, O_EXCL: it exists. */
		begin(FUSE_CREATE, FUSE_ROOT_ID);
		add(&in, sizeof(in));
		add_str("new.txt");
		CHECK_EQ(serve(4096, NULL), -EEXIST);
	}
	/* MKDIR */
	{
		struct fuse_mkdir_in in = { .mode = 0755, .umask = 0 };

		begin(FUSE_MKDIR, FUSE_ROOT_ID);
		add(&in, sizeof(in));
		add_str("sub");
		CHECK_EQ(serve(4096, NULL), 0);
		dir = ((struct fuse_entry_out *)payload())->nodeid;
		host_path(p, sizeof(p), "sub");
		CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
	}
	/* RENAME into it, RENAME2 with NOREPLACE onto an existing name. */
	{
		struct fuse_rename_in in = { .newdir = dir };
		struct fuse_rename2_in in2 = { .newdir = FUSE_ROOT_ID, .flags = RENAME_NOREPLACE };

		begin(FUSE_RENAME, FUSE_ROOT_ID);
		add(&in, sizeof(in));
		add_str("new.txt");
		add_str("moved.txt");
		CHECK_EQ(serve(4096, &len), 0);
		CHECK_EQ(len, 0);
		CHECK(!host_exists("new.txt") && host_exists("sub/moved.txt"));
		begin(FUSE_RENAME2, dir);
		add(&in2, sizeof(in2));
		add_str("moved.txt");
		add_str("hello.txt");
		CHECK_EQ(serve(4096, NULL), -EEXIST);
		CHECK(host_exists("sub/moved.txt"));
	}
	/* SYMLINK, LINK, MKNOD (a FIFO) */
	{
		struct fuse_link_in li = { .oldnodeid = lookup_id(FUSE_ROOT_ID, "hello.txt") };
		struct fuse_mknod_in mi = { .mode = S_IFIFO | 0600 };
		char target[64] = "";

		begin(FUSE_SYMLINK, dir);
		add_str("sl");
		add_str("../hello.txt");
		CHECK_EQ(serve(4096, NULL), 0);
		host_path(p, sizeof(p), "sub/sl");
		CHECK_EQ(readlink(p, target, sizeof(target) - 1), 12);
		CHECK(!strcmp(target, "../hello.txt"));
		begin(FUSE_LINK, dir);
		add(&li, sizeof(li));
		add_str("hard");
		CHECK_EQ(serve(4096, NULL), 0);
		CHECK_EQ(((struct fuse_entry_out *)payload())->nodeid, li.oldnodeid);
		CHECK_EQ(((struct fuse_entry_out *)payload())->attr.nlink, 2);
		begin(FUSE_MKNOD, dir);
		add(&mi, sizeof(mi));
		add_str("fifo");
		CHECK_EQ(serve(4096, NULL), 0);
		host_path(p, sizeof(p), "sub/fifo");
		CHECK(lstat(p, &st) == 0 && S_ISFIFO(st.st_mode));
	}
	/* SETATTR: truncate and chmod */
	{
		struct fuse_setattr_in in = { .valid = FATTR_SIZE | FATTR_MODE, .size = 3,
					      .mode = S_IFREG | 0600 };
		uint64_t id = lookup_id(dir, "moved.txt");

		begin(FUSE_SETATTR, id);
		add(&in, sizeof(in));
		CHECK_EQ(serve(4096, NULL), 0);
		CHECK_EQ(((struct fuse_attr_out *)payload())->attr.size, 3);
		host_path(p, sizeof(p), "sub/moved.txt");
		CHECK(stat(p, &st) == 0 && st.st_size == 3 && (st.st_mode & 0777) == 0600);
	}
	/* UNLINK, RMDIR */
	{
		begin(FUSE_UNLINK, dir);
		add_str("moved.txt");
		CHECK_EQ(serve(4096, NULL), 0);
		CHECK(!host_exists("sub/moved.txt"));
		begin(FUSE_RMDIR, FUSE_ROOT_ID);
		add_str("sub");
		CHECK_EQ(serve(4096, NULL), -ENOTEMPTY);
		static const char *const names[] = { "sl", "hard", "fifo" };

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			begin(FUSE_UNLINK, dir);
			add_str(names[i]);
			CHECK_EQ(serve(4096, NULL), 0);
		}
		begin(FUSE_RMDIR, FUSE_ROOT_ID);
		add_str("sub");
		CHECK_EQ(serve(4096, NULL), 0);
		CHECK(!host_exists("sub"));
	}
	teardown();
}

static void file_ops(void)
{
	uint64_t id, fh;
	uint32_t len;

	setup(false, 1);
	init();
	id = lookup_id(FUSE_ROOT_ID, "big.bin");
	CHECK_EQ(do_open(FUSE_OPEN, id, O_RDWR, &fh), 0);
	{
		struct fuse_fsync_in in = { .fh = fh, .fsync_flags = FUSE_FSYNC_FDATASYNC };
		struct fuse_flush_in fl = { .fh = fh };

		begin(FUSE_FSYNC, id);
		add(&in, sizeof(in));
		CHECK_EQ(serve(4096, &len), 0);
		CHECK_EQ(len, 0);
		begin(FUSE_FLUSH, id);
		add(&fl, sizeof(fl));
		CHECK_EQ(serve(4096, NULL), 0);
	}
	{
		struct fuse_lseek_in in = { .fh = fh, .offset = 10, .whence = SEEK_DATA };

		begin(FUSE_LSEEK, id);
		add(&in, sizeof(in));
		CHECK_EQ(serve(4096, NULL), 0);
		CHECK_EQ(((struct fuse_lseek_out *)payload())->offset, 10);
		in.whence = SEEK_HOLE;
		begin(FUSE_LSEEK, id);
		add(&in, sizeof(in));
		CHECK_EQ(serve(4096, NULL), 0);
		CHECK_EQ(((struct fuse_lseek_out *)payload())->offset, BIG_SIZE);
	}
	{
		struct fuse_fallocate_in in = { .fh = fh, .offset = BIG_SIZE, .length = 4096 };
		struct fuse_attr a;

		begin(FUSE_FALLOCATE, id);
		add(&in, sizeof(in));
		CHECK_EQ(serve(4096, NULL), 0);
		CHECK_EQ(getattr(id, &a), 0);
		CHECK_EQ(a.size, BIG_SIZE + 4096);
	}
	CHECK_EQ(release(FUSE_RELEASE, id, fh), 0);
	/* A released handle is gone. */
	CHECK_EQ(release(FUSE_RELEASE, id, fh), -EBADF);
	{
		struct fuse_statfs_out *o;

		begin(FUSE_STATFS, FUSE_ROOT_ID);
		CHECK_EQ(serve(4096, &len), 0);
		CHECK_EQ(len, sizeof(*o));
		o = payload();
		CHECK(o->st.bsize > 0 && o->st.blocks > 0 && o->st.namelen > 0);
	}
	{
		struct fuse_access_in in = { .mask = R_OK | W_OK };

		begin(FUSE_ACCESS, id);
		add(&in, sizeof(in));
		CHECK_EQ(serve(4096, NULL), 0);
	}
	{
		/* LISTXATTR's size query, GETXATTR of a name no file has. */
		struct fuse_getxattr_in in = { .size = 0 };

		begin(FUSE_LISTXATTR, id);
		add(&in, sizeof(in));
		CHECK_EQ(serve(4096, &len), 0);
		CHECK_EQ(len, sizeof(struct fuse_getxattr_out));
		in.size = 256;
		begin(FUSE_GETXATTR, id);
		add(&in, sizeof(in));
		add_str("user.mica.nothing");
		CHECK_EQ(serve(4096, NULL), -ENODATA);
	}
	teardown();
}

/* A share without xattrs (the sandbox's root): GETXATTR and LISTXATTR are ENOSYS, so the
 * guest's kernel stops asking; nothing else changes. */
static void xattrs_off_are_enosys(void)
{
	struct fuse_getxattr_in in = { .size = 256 };
	uint64_t id;

	next_no_xattr = true;
	setup(true, 1);
	next_no_xattr = false;
	init();
	id = lookup_id(FUSE_ROOT_ID, "hello.txt");
	begin(FUSE_GETXATTR, id);
	add(&in, sizeof(in));
	add_str("user.mica.nothing");
	CHECK_EQ(serve(4096, NULL), -ENOSYS);
	begin(FUSE_LISTXATTR, id);
	add(&in, sizeof(in));
	CHECK_EQ(serve(4096, NULL), -ENOSYS);
	CHECK_EQ(getattr(id, NULL), 0);
	teardown();
}

static void destroy_and_reinit(void)
{
	uint64_t id, fh;
	uint32_t len;

	setup(false, 1);
	init();
	id = lookup_id(FUSE_ROOT_ID, "hello.txt");
	CHECK_EQ(do_open(FUSE_OPEN, id, O_RDONLY, &fh), 0);
	CHECK_EQ(counts().handles, 1);
	begin(FUSE_DESTROY, 0);
	CHECK_EQ(serve(4096, &len), 0);
	CHECK_EQ(len, 0);
	CHECK_EQ(counts().handles, 0);
	CHECK_EQ(counts().inodes, 0); /* the root is not counted */
	CHECK_EQ(getattr(FUSE_ROOT_ID, NULL), -EIO);
	init();
	/* The old session's node and handle are gone for good. */
	CHECK_EQ(getattr(id, NULL), -ESTALE);
	read_req(id, fh, 0, 10);
	CHECK_EQ(serve(4096, NULL), -EBADF);
	/* A second INIT without DESTROY forgets too. */
	id = lookup_id(FUSE_ROOT_ID, "hello.txt");
	init();
	CHECK_EQ(getattr(id, NULL), -ESTALE);
	teardown();
}

static void read_only_share(void)
{
	struct fuse_entry_out eo;
	uint64_t id, fh;

	setup(true, 30);
	init();
	CHECK_EQ(lookup(FUSE_ROOT_ID, "hello.txt", &eo), 0);
	id = eo.nodeid;
	CHECK_EQ(eo.entry_valid, 30);
	/* A missing name is remembered by the guest for the timeout: node id 0. */
	memset(&eo, 0xff, sizeof(eo));
	CHECK_EQ(lookup(FUSE_ROOT_ID, "missing", &eo), 0);
	CHECK_EQ(eo.nodeid, 0);
	CHECK_EQ(eo.entry_valid, 30);
	/* Reading works, with the page cache kept across opens. */
	CHECK_EQ(do_open(FUSE_OPEN, id, O_RDONLY, &fh), 0);
	CHECK(((struct fuse_open_out *)payload())->open_flags & FOPEN_KEEP_CACHE);
	/* Everything that would change the host: EROFS. */
	CHECK_EQ(do_open(FUSE_OPEN, id, O_RDWR, &fh), -EROFS);
	CHECK_EQ(do_open(FUSE_OPEN, id, O_WRONLY | O_TRUNC, &fh), -EROFS);
	{
		struct fuse_mkdir_in in = { .mode = 0755 };

		begin(FUSE_MKDIR, FUSE_ROOT_ID);
		add(&in, sizeof(in));
		add_str("nope");
		CHECK_EQ(serve(4096, NULL), -EROFS);
	}
	{
		struct fuse_create_in in = { .flags = O_WRONLY | O_CREAT, .mode = S_IFREG | 0644 };

		begin(FUSE_CREATE, FUSE_ROOT_ID);
		add(&in, sizeof(in));
		add_str("nope");
		CHECK_EQ(serve(4096, NULL), -EROFS);
	}
	begin(FUSE_UNLINK, FUSE_ROOT_ID);
	add_str("hello.txt");
	CHECK_EQ(serve(4096, NULL), -EROFS);
	{
		struct fuse_setattr_in in = { .valid = FATTR_SIZE, .size = 0 };

		begin(FUSE_SETATTR, id);
		add(&in, sizeof(in));
		CHECK_EQ(serve(4096, NULL), -EROFS);
	}
	CHECK(host_exists("hello.txt") && !host_exists("nope"));
	{
		struct stat st;
		char p[256];

		host_path(p, sizeof(p), "hello.txt");
		CHECK(stat(p, &st) == 0 && st.st_size == (off_t)strlen(HELLO));
	}
	teardown();
}

/* ---- tests: a hostile driver ---- */

static void short_and_oversized(void)
{
	struct fuse_getattr_in in = { 0 };

	setup(false, 1);
	init();
	/* Fewer bytes than a header: no reply at all, nothing written. */
	begin(FUSE_GETATTR, FUSE_ROOT_ID);
	hdr()->len = 40;
	CHECK_EQ(serve_raw(39, 4096, 0, 0), 0);
	CHECK(out_buf[0] == 0xa5);
	CHECK_EQ(serve_raw(0, 4096, 0, 0), 0);
	/* in.len larger than the chain's readable bytes. */
	begin(FUSE_GETATTR, FUSE_ROOT_ID);
	add(&in, sizeof(in));
	hdr()->len = (uint32_t)in_len + 1;
	CHECK_EQ(serve_raw(in_len, 4096, 0, 0), 16);
	CHECK_EQ(((struct fuse_out_header *)out_buf)->error, -EINVAL);
	hdr()->len = 0xffffffff;
	CHECK_EQ(serve_raw(in_len, 4096, 0, 0), 16);
	CHECK_EQ(((struct fuse_out_header *)out_buf)->error, -EINVAL);
	/* in.len shorter than the header. */
	hdr()->len = 39;
	CHECK_EQ(serve_raw(in_len, 4096, 0, 0), 16);
	CHECK_EQ(((struct fuse_out_header *)out_buf)->error, -EINVAL);
	/* in.len cutting the arguments short. */
	hdr()->len = (uint32_t)in_len - 1;
	CHECK_EQ(serve_raw(in_len, 4096, 0, 0), 16);
	CHECK_EQ(((struct fuse_out_header *)out_buf)->error, -EINVAL);
	/* Extensions claimed beyond in.len. */
	begin(FUSE_GETATTR, FUSE_ROOT_ID);
	add(&in, sizeof(in));
	hdr()->total_extlen = 4;
	CHECK_EQ(serve(4096, NULL), -EINVAL);
	/* A WRITE whose size claims more data than the request carries. */
	{
		struct fuse_write_in w = { .fh = 0, .size = 100 };

		begin(FUSE_WRITE, FUSE_ROOT_ID);
		add(&w, sizeof(w));
		add("abc", 3);
		CHECK_EQ(serve(4096, NULL), -EINVAL);
	}
	/* A READ asking for 4 GiB gets what the reply area holds, no more. */
	{
		uint64_t id = lookup_id(FUSE_ROOT_ID, "big.bin"), fh;
		uint32_t len;

		CHECK_EQ(do_open(FUSE_OPEN, id, O_RDONLY, &fh), 0);
		read_req(id, fh, 0, 0xffffffff);
		CHECK_EQ(serve(16 + 1000, &len), 0);
		CHECK_EQ(len, 1000);
	}
	teardown();
}

static void bad_names(void)
{
	char longname[300];
	struct hostfs_counts before;

	setup(false, 1);
	init();
	before = counts();
	/* A name without its NUL inside in.len (the byte after it is a NUL, outside). */
	begin(FUSE_LOOKUP, FUSE_ROOT_ID);
	add("hello.txt", 9);
	hdr()->len = (uint32_t)in_len;
	in_buf[in_len] = '\0';
	CHECK_EQ(serve_raw(in_len + 1, 4096, 0, 0), 16);
	CHECK_EQ(((struct fuse_out_header *)out_buf)->error, -EINVAL);
	/* An empty name, "..", ".", a name with a slash, one too long. */
	CHECK_EQ(lookup(FUSE_ROOT_ID, "", NULL), -EINVAL);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "..", NULL), -ENOENT);
	CHECK_EQ(lookup(FUSE_ROOT_ID, ".", NULL), -ENOENT);
	CHECK_EQ(lookup(FUSE_ROOT_ID, "dir/a", NULL), -EINVAL);
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	CHECK_EQ(lookup(FUSE_ROOT_ID, longname, NULL), -ENAMETOOLONG);
	/* ".." from the root's child is no way out either. */
	{
		uint64_t dir = lookup_id(FUSE_ROOT_ID, "dir");

		CHECK_EQ(lookup(dir, "..", NULL), -ENOENT);
		CHECK_EQ(counts().inodes, before.inodes + 1);
	}
	{
		struct fuse_mkdir_in in = { .mode = 0755 };

		begin(FUSE_MKDIR, FUSE_ROOT_ID);
		add(&in, sizeof(in));
		add_str("..");
		CHECK(serve(4096, NULL) < 0);
		/* SYMLINK with its target missing its NUL. */
		begin(FUSE_SYMLINK, FUSE_ROOT_ID);
		add_str("sl");
		add("hello", 5);
		CHECK_EQ(serve(4096, NULL), -EINVAL);
		CHECK(!host_exists("sl"));
		/* RENAME with one name only. */
		begin(FUSE_RENAME, FUSE_ROOT_ID);
		add(&(struct fuse_rename_in){ .newdir = FUSE_ROOT_ID },
		    sizeof(struct fuse_rename_in));
		add_str("hello.txt");
		CHECK_EQ(serve(4096, NULL), -EINVAL);
		CHECK(host_exists("hello.txt"));
	}
	teardown();
}

static void unknown_nodes_and_forgets(void)
{
	uint64_t id;
	struct hostfs_counts before;

	setup(false, 1);
	init();
	CHECK_EQ(getattr(0, NULL), -ESTALE);
	CHECK_EQ(getattr(987654321, NULL), -ESTALE);
	CHECK_EQ(lookup(987654321, "a", NULL), -ESTALE);
	before = counts();
	id = lookup_id(FUSE_ROOT_ID, "hello.txt");
	CHECK_EQ(counts().inodes, before.inodes + 1);
	forget(id, 1);
	CHECK_EQ(counts().inodes, before.inodes);
	CHECK_EQ(getattr(id, NULL), -ESTALE);
	/* Twice, more than it had, an unknown one, the root: nothing breaks. */
	forget(id, 1);
	forget(id, 1000);
	forget(987654321, 1);
	forget(FUSE_ROOT_ID, 5);
	CHECK_EQ(getattr(FUSE_ROOT_ID, NULL), 0);
	/* A new lookup of the same file is a new node id: the old one stays stale. */
	CHECK(lookup_id(FUSE_ROOT_ID, "hello.txt") != id);
	CHECK_EQ(getattr(id, NULL), -ESTALE);
	/* BATCH_FORGET: a count beyond what the request holds reads only what is there. */
	{
		uint64_t a = lookup_id(FUSE_ROOT_ID, "big.bin");
		struct fuse_batch_forget_in b = { .count = 1000000 };
		struct fuse_forget_one one = { .nodeid = a, .nlookup = 1 };

		begin(FUSE_BATCH_FORGET, 0);
		add(&b, sizeof(b));
		add(&one, sizeof(one));
		one.nodeid = 4242;
		add(&one, sizeof(one));
		hdr()->len = (uint32_t)in_len;
		CHECK_EQ(serve_raw(in_len, 0, 0, 0), 0);
		CHECK_EQ(getattr(a, NULL), -ESTALE);
	}
	/* A stale handle. */
	read_req(FUSE_ROOT_ID, 31337, 0, 10);
	CHECK_EQ(serve(4096, NULL), -EBADF);
	teardown();
}

static void reply_too_small(void)
{
	struct hostfs_counts before;
	struct fuse_getattr_in in = { 0 };

	setup(false, 1);
	init();
	/* Less than an out header: no reply, nothing written at all. */
	begin(FUSE_GETATTR, FUSE_ROOT_ID);
	add(&in, sizeof(in));
	hdr()->len = (uint32_t)in_len;
	CHECK_EQ(serve_raw(in_len, 15, 0, 0), 0);
	CHECK(out_buf[0] == 0xa5 && out_buf[14] == 0xa5);
	CHECK_EQ(serve_raw(in_len, 0, 0, 0), 0);
	/* An out header but no room for the attributes: EINVAL. */
	CHECK_EQ(serve(16, NULL), -EINVAL);
	CHECK_EQ(serve(16 + sizeof(struct fuse_attr_out) - 1, NULL), -EINVAL);
	CHECK_EQ(serve(16 + sizeof(struct fuse_attr_out), NULL), 0);
	/* LOOKUP, OPEN, CREATE without room: refused before they run, so no node, handle or
	 * file is made that the guest would never hear of. */
	before = counts();
	begin(FUSE_LOOKUP, FUSE_ROOT_ID);
	add_str("hello.txt");
	CHECK_EQ(serve(16 + sizeof(struct fuse_entry_out) - 8, NULL), -EINVAL);
	CHECK_EQ(counts().inodes, before.inodes);
	{
		struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT, .mode = S_IFREG | 0644 };
		struct fuse_open_in oi = { .flags = O_RDONLY };

		begin(FUSE_CREATE, FUSE_ROOT_ID);
		add(&ci, sizeof(ci));
		add_str("ghost");
		CHECK_EQ(serve(16 + sizeof(struct fuse_entry_out), NULL), -EINVAL);
		CHECK(!host_exists("ghost"));
		begin(FUSE_OPENDIR, FUSE_ROOT_ID);
		add(&oi, sizeof(oi));
		CHECK_EQ(serve(16 + 4, NULL), -EINVAL);
		CHECK_EQ(counts().handles, before.handles);
		CHECK_EQ(counts().inodes, before.inodes);
	}
	/* INIT without room for its reply. */
	{
		struct fuse_init_in ii = { .major = 7, .minor = FUSE_KERNEL_MINOR_VERSION };

		begin(FUSE_INIT, 0);
		add(&ii, sizeof(ii));
		CHECK_EQ(serve(16 + 24, NULL), -EINVAL);
	}
	teardown();
}

static void unsupported(void)
{
	static const uint32_t ops[] = { FUSE_SETXATTR, FUSE_REMOVEXATTR, FUSE_GETLK, FUSE_SETLK,
					FUSE_SETLKW, FUSE_INTERRUPT, FUSE_BMAP, FUSE_IOCTL,
					FUSE_POLL, FUSE_COPY_FILE_RANGE, FUSE_SETUPMAPPING,
					FUSE_SYNCFS, 7, 19, 9999, CUSE_INIT, 0xffffffff };

	setup(false, 1);
	init();
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		begin(ops[i], FUSE_ROOT_ID);
		add("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
		CHECK_EQ(serve(4096, NULL), -ENOSYS);
	}
	CHECK_EQ(atomic_load(&fuse_server_stats(srv)->unsupported), sizeof(ops) / sizeof(ops[0]));
	teardown();
}

/* ---- the device ---- */

#define RAM   (16 * 1024 * 1024ULL)
#define QSIZE 16
#define REQ   0x400000ULL   /* request bytes */
#define REPLY 0x500000ULL   /* reply area */

static struct drv dq[2];

/* Waits (up to 10 s, never assumed) for the device thread to use n buffers of queue q. */
static bool wait_used(int q, uint16_t n)
{
	for (int i = 0; i < 10000; i++) {
		if (__atomic_load_n(&dq[q].used->idx, __ATOMIC_ACQUIRE) == n)
			return true;
		usleep(1000);
	}
	return false;
}

/* Posts the request in in_buf on queue q (one readable, one writable descriptor). */
static void post(struct virtio_dev *dev, int q, uint16_t slot, uint32_t wcap)
{
	uint64_t one = 1;

	hdr()->len = (uint32_t)in_len;
	memcpy(g2h(&vm.mem, REQ + slot * 0x10000ULL, in_len), in_buf, in_len);
	drv_desc(&dq[q], (uint16_t)(2 * slot), REQ + slot * 0x10000ULL, (uint32_t)in_len,
		 VRING_DESC_F_NEXT, (uint16_t)(2 * slot + 1));
	drv_desc(&dq[q], (uint16_t)(2 * slot + 1), REPLY + slot * 0x10000ULL, wcap,
		 VRING_DESC_F_WRITE, 0);
	drv_post(&dq[q], (uint16_t)(2 * slot));
	CHECK_EQ(write(virtio_kick_fd(dev, q), &one, sizeof(one)), (ssize_t)sizeof(one));
}

static const struct fuse_out_header *reply_hdr(uint16_t slot)
{
	return g2h(&vm.mem, REPLY + slot * 0x10000ULL, 16);
}

static struct virtio_dev *make_device(const char *spec)
{
	struct fs_opts o;
	struct err e = { "" };
	struct virtio_dev *dev;

	test_vm_init(RAM);
	if (fs_parse_opts(spec, &o, &e) || virtio_fs_create(&vm.env, &o, &dev, &e)) {
		printf("# %s\n", e.msg);
		abort();
	}
	return test_vm_plug(dev);
}

static void device_config(void)
{
	struct virtio_fs_config c;
	struct virtio_dev *dev;
	char spec[128];
	struct fs_opts o;
	struct err e = { "" };

	log_set_level(LOG_ERROR);
	make_share();
	snprintf(spec, sizeof(spec), "%s,tag=mica-test,ro", share);
	dev = make_device(spec);
	CHECK_EQ(dev->ops->device_id, VIRTIO_ID_FS);
	CHECK_EQ(dev->ops->num_queues, 2);
	drv_config_read(dev, 0, &c, sizeof(c));
	CHECK(!memcmp(c.tag, "mica-test\0\0\0", 12));
	CHECK_EQ(c.num_request_queues, 1);
	test_vm_destroy();
	/* A missing directory: one line for the user. */
	snprintf(spec, sizeof(spec), "%s/nothing-here", share);
	CHECK_EQ(fs_parse_opts(spec, &o, &e), 0);
	test_vm_init(RAM);
	CHECK(virtio_fs_create(&vm.env, &o, &dev, &e) < 0);
	CHECK(strstr(e.msg, "--share") && strstr(e.msg, "nothing-here") && !strchr(e.msg, '\n'));
	printf("# %s\n", e.msg);
	test_vm_destroy();
	nftw(share, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void device_serves_on_its_thread(void)
{
	struct fuse_init_in ii = { .major = 7, .minor = FUSE_KERNEL_MINOR_VERSION };
	struct fuse_open_in oi = { .flags = O_RDONLY };
	struct virtio_dev *dev;
	struct stat_value v[STATS_MAX_VALUES];
	char spec[128];
	int n;

	log_set_level(LOG_ERROR);
	make_share();
	snprintf(spec, sizeof(spec), "%s,tag=t", share);
	dev = make_device(spec);
	CHECK(drv_negotiate(dev, 1ULL << VIRTIO_F_VERSION_1));
	drv_attach_queue(dev, &dq[0], &vm.mem, 0, QSIZE);
	drv_attach_queue(dev, &dq[1], &vm.mem, 1, QSIZE);
	drv_set_status(dev, drv_get_status(dev) | VIRTIO_CONFIG_S_DRIVER_OK);
	/* INIT on the request queue. */
	begin(FUSE_INIT, 0);
	add(&ii, sizeof(ii));
	post(dev, 1, 0, 4096);
	CHECK(wait_used(1, 1));
	CHECK_EQ(reply_hdr(0)->error, 0);
	CHECK_EQ(dq[1].used->ring[0].len, 16 + sizeof(struct fuse_init_out));
	/* OPENDIR of the root: a handle the reset must close. */
	begin(FUSE_OPENDIR, FUSE_ROOT_ID);
	add(&oi, sizeof(oi));
	post(dev, 1, 1, 4096);
	CHECK(wait_used(1, 2));
	CHECK_EQ(reply_hdr(1)->error, 0);
	/* A FORGET on the high-priority queue: used with 0 bytes. */
	begin(FUSE_FORGET, 12345);
	add(&(struct fuse_forget_in){ .nlookup = 1 }, sizeof(struct fuse_forget_in));
	post(dev, 0, 0, 4096);
	CHECK(wait_used(0, 1));
	CHECK_EQ(dq[0].used->ring[0].len, 0);
	/* A notification that exits to a vCPU thread is served by the device thread too. */
	begin(FUSE_GETATTR, FUSE_ROOT_ID);
	add(&(struct fuse_getattr_in){ 0 }, sizeof(struct fuse_getattr_in));
	hdr()->len = (uint32_t)in_len;
	memcpy(g2h(&vm.mem, REQ + 2 * 0x10000ULL, in_len), in_buf, in_len);
	drv_desc(&dq[1], 4, REQ + 2 * 0x10000ULL, (uint32_t)in_len, VRING_DESC_F_NEXT, 5);
	drv_desc(&dq[1], 5, REPLY + 2 * 0x10000ULL, 4096, VRING_DESC_F_WRITE, 0);
	drv_post(&dq[1], 4);
	pthread_mutex_lock(&dev->lock);
	virtio_queue_notify_userspace(dev, 1);
	/* Not served here, under the lock this (vCPU) thread holds: the device thread needs it. */
	CHECK_EQ(__atomic_load_n(&dq[1].used->idx, __ATOMIC_ACQUIRE), 2);
	pthread_mutex_unlock(&dev->lock);
	CHECK(wait_used(1, 3));
	CHECK_EQ(reply_hdr(2)->error, 0);
	n = virtio_dev_stats(dev, v, STATS_MAX_VALUES);
	for (int i = 0; i < n; i++) {
		if (!strcmp(v[i].name, "handles"))
			CHECK_EQ(v[i].num, 1);
		if (!strcmp(v[i].name, "requests"))
			CHECK_EQ(v[i].num, 4);
		if (!strcmp(v[i].name, "tag"))
			CHECK(!strcmp(v[i].str, "t"));
	}
	/* A device reset: the handle is closed (on the device thread, which is woken for it). */
	drv_set_status(dev, 0);
	for (int i = 0; i < 10000; i++) {
		bool done = false;

		n = virtio_dev_stats(dev, v, STATS_MAX_VALUES);
		for (int k = 0; k < n; k++)
			if (!strcmp(v[k].name, "handles") && v[k].num == 0)
				done = true;
		if (done)
			break;
		usleep(1000);
	}
	n = virtio_dev_stats(dev, v, STATS_MAX_VALUES);
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, "handles"))
			CHECK_EQ(v[i].num, 0);
	virtio_fs_stop(dev);
	virtio_fs_stop(dev); /* twice: nothing */
	test_vm_destroy();
	nftw(share, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TEST_MAIN("fuse", T(negotiate), T(lookup_and_getattr), T(read_file), T(read_segments),
	  T(write_file), T(readdir_lists), T(changes), T(file_ops), T(xattrs_off_are_enosys),
	T(destroy_and_reinit),
	  T(read_only_share), T(short_and_oversized), T(bad_names), T(unknown_nodes_and_forgets),
	  T(reply_too_small), T(unsupported), T(device_config), T(device_serves_on_its_thread))
