/* hostfs (hostfs/): a share of a scratch directory under /tmp, driven as a hostile guest would
 * drive it through a front end: every operation's normal behaviour, checked against what the
 * host's own calls see, and the confinement: names that climb, symlinks that point out, device
 * nodes and FIFOs, pseudo file systems, the bounds, stale ids, read-only shares. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "hostfs/hostfs.h"
#include "tests/unit/test.h"

static char dir[64];             /* this test's scratch directory */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p);
}

static void scratch(void)
{
	snprintf(dir, sizeof(dir), "/tmp/hostfs-test-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
}

static void scratch_done(void)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *at(const char *rel)
{
	static char p[2][PATH_MAX];
	static int i;

	i ^= 1;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dir, rel);
	return p[i];
}

static void put(const char *rel, const char *data)
{
	int fd = open(at(rel), O_CREAT | O_TRUNC | O_WRONLY, 0644);

	if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
		perror(rel);
	close(fd);
}

static struct hostfs *share_of(const char *path, bool ro, uint32_t mi, uint32_t mh)
{
	struct hostfs_opts o = { .path = path, .readonly = ro, .max_inodes = mi, .max_handles = mh };
	struct hostfs *fs = NULL;
	struct err e = { "" };
	int r = hostfs_open(&o, &fs, &e);

	if (r < 0) {
		printf("#   hostfs_open(%s): %d %s\n", path, r, e.msg);
		return NULL;
	}
	return fs;
}

static struct hostfs *share(bool ro)
{
	return share_of(dir, ro, 64, 16);
}

static uint64_t lookup(struct hostfs *fs, uint64_t parent, const char *name)
{
	struct hostfs_entry en;

	return hostfs_lookup(fs, parent, name, &en) == 0 ? en.id : 0;
}

static uint64_t refused(struct hostfs *fs)
{
	struct hostfs_counts c;

	hostfs_counts(fs, &c);
	return c.refused;
}

/* ---- readdir into a list ---- */

struct listing {
	int n, stop_at;                /* stop_at: refuse the entry with this index (-1: none) */
	char names[64][NAME_MAX + 1];
	uint64_t next[64];
	unsigned type[64];
};

static int collect(void *opaque, const char *name, size_t len, uint64_t ino, unsigned type,
		   uint64_t next_off)
{
	struct listing *l = opaque;

	(void)ino;
	if (l->n == l->stop_at || l->n >= 64)
		return 1;
	CHECK_EQ(strlen(name), len);
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	l->next[l->n] = next_off;
	l->type[l->n] = type;
	l->n++;
	return 0;
}

static int find(const struct listing *l, const char *name)
{
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], name))
			return i;
	return -1;
}

static void list(struct hostfs *fs, uint64_t fh, uint64_t off, int stop_at, struct listing *l)
{
	memset(l, 0, sizeof(*l));
	l->stop_at = stop_at;
	CHECK_EQ(hostfs_readdir(fs, fh, off, collect, l), 0);
}

/* ---- the share ---- */

static void open_refuses_what_is_not_a_directory(void)
{
	struct hostfs_opts o = { .path = NULL };
	struct hostfs *fs = NULL;
	struct err e = { "" };

	scratch();
	put("file", "x");
	o.path = at("missing");
	CHECK_EQ(hostfs_open(&o, &fs, &e), -ENOENT);
	CHECK(strstr(e.msg, "--share") && strstr(e.msg, "missing"));
	o.path = at("file");
	CHECK_EQ(hostfs_open(&o, &fs, &e), -ENOTDIR);
	CHECK(strstr(e.msg, "not a directory") != NULL);
	o.path = "";
	CHECK_EQ(hostfs_open(&o, &fs, &e), -EINVAL);
	o.path = dir;
	o.max_inodes = 1u << 30;
	CHECK_EQ(hostfs_open(&o, &fs, &e), -EINVAL);
	CHECK(fs == NULL);
	scratch_done();
}

/* The bounds must fit RLIMIT_NOFILE: the defaults shrink to fit, bounds a user chose that do
 * not fit are an error saying what to do. The soft limit is raised to the hard one first. */
static void open_fits_the_bounds_to_rlimit_nofile(void)
{
	struct hostfs_opts o = { .path = NULL };
	struct rlimit old, rl;
	struct hostfs *fs = NULL;
	struct err e = { "" };

	scratch();
	o.path = dir;
	getrlimit(RLIMIT_NOFILE, &old);
	rl.rlim_cur = 1024;
	rl.rlim_max = 3000;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		TEST_SKIP("cannot lower RLIMIT_NOFILE");
	o.max_inodes = 4000;
	CHECK_EQ(hostfs_open(&o, &fs, &e), -EMFILE);
	CHECK(strstr(e.msg, "RLIMIT_NOFILE") != NULL);
	o.max_inodes = 0;
	CHECK_EQ(hostfs_open(&o, &fs, &e), 0);
	getrlimit(RLIMIT_NOFILE, &rl);
	CHECK_EQ(rl.rlim_cur, 3000);     /* raised to the hard limit */
	hostfs_close(fs);
	o.max_inodes = 1000;
	o.max_handles = 100;
	CHECK_EQ(hostfs_open(&o, &fs, &e), 0);
	hostfs_close(fs);
	setrlimit(RLIMIT_NOFILE, &old);
	scratch_done();
}

/* ---- nodes ---- */

static void lookup_and_getattr_match_the_host(void)
{
	struct hostfs_entry a, b, c;
	struct stat st, hs;
	struct hostfs *fs;

	scratch();
	put("file", "hello");
	mkdir(at("sub"), 0750);
	put("sub/inner", "x");
	CHECK_EQ(link(at("file"), at("hardlink")), 0);
	fs = share(false);
	CHECK(fs != NULL);
	if (!fs)
		return;
	CHECK(!hostfs_readonly(fs));
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "file", &a), 0);
	lstat(at("file"), &hs);
	CHECK_EQ(a.st.st_ino, hs.st_ino);
	CHECK_EQ(a.st.st_mode, hs.st_mode);
	CHECK_EQ(a.st.st_size, 5);
	CHECK_EQ(a.generation, 0);
	CHECK(a.id != HOSTFS_ROOT_ID && a.id != 0);
	/* One inode, one id: again, and through its hard link. */
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "file", &b), 0);
	CHECK_EQ(b.id, a.id);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "hardlink", &c), 0);
	CHECK_EQ(c.id, a.id);
	CHECK_EQ(hostfs_getattr(fs, a.id, &st), 0);
	CHECK_EQ(st.st_nlink, 2);
	CHECK_EQ(st.st_ino, hs.st_ino);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "sub", &b), 0);
	CHECK(S_ISDIR(b.st.st_mode));
	CHECK_EQ(b.st.st_mode & 07777, 0750);
	CHECK_EQ(hostfs_lookup(fs, b.id, "inner", &c), 0);
	CHECK(S_ISREG(c.st.st_mode));
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "nothing", &c), -ENOENT);
	CHECK_EQ(hostfs_lookup(fs, a.id, "x", &c), -ENOTDIR);
	CHECK_EQ(hostfs_getattr(fs, HOSTFS_ROOT_ID, &st), 0);
	stat(dir, &hs);
	CHECK_EQ(st.st_ino, hs.st_ino);
	hostfs_close(fs);
	scratch_done();
}

static void read_moves_bytes_into_the_callers_buffers(void)
{
	char a[4], b[16];
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	struct hostfs *fs;
	uint64_t id, fh;

	scratch();
	put("file", "0123456789");
	fs = share(false);
	id = lookup(fs, HOSTFS_ROOT_ID, "file");
	CHECK_EQ(hostfs_open_file(fs, id, O_RDONLY, &fh), 0);
	memset(b, 0, sizeof(b));
	CHECK_EQ(hostfs_read(fs, fh, 0, iov, 2), 10);       /* short: end of file */
	CHECK(!memcmp(a, "0123", 4) && !memcmp(b, "456789", 6));
	CHECK_EQ(hostfs_read(fs, fh, 8, iov, 1), 2);
	CHECK(!memcmp(a, "89", 2));
	CHECK_EQ(hostfs_read(fs, fh, 100, iov, 2), 0);
	CHECK_EQ(hostfs_read(fs, fh, 0, iov, -1), -EINVAL);
	CHECK_EQ(hostfs_read(fs, fh, UINT64_MAX, iov, 1), -EINVAL);
	CHECK_EQ(hostfs_write(fs, fh, 0, iov, 1), -EBADF);   /* opened for reading */
	CHECK_EQ(hostfs_release(fs, fh), 0);
	CHECK_EQ(hostfs_read(fs, fh, 0, iov, 1), -EBADF);
	CHECK_EQ(hostfs_release(fs, fh), -EBADF);
	CHECK_EQ(hostfs_open_file(fs, HOSTFS_ROOT_ID, O_RDONLY, &fh), -EISDIR);
	CHECK_EQ(hostfs_open_file(fs, id, O_ACCMODE, &fh), -EINVAL);
	hostfs_close(fs);
	scratch_done();
}

static void readdir_lists_everything_and_resumes_at_an_offset(void)
{
	struct listing all, part, rest;
	struct hostfs *fs;
	uint64_t fh, fh2;
	int mid;

	scratch();
	for (int i = 0; i < 20; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%02d", i);
		put(name, "x");
	}
	mkdir(at("d"), 0755);
	fs = share(false);
	CHECK_EQ(hostfs_opendir(fs, HOSTFS_ROOT_ID, &fh), 0);
	list(fs, fh, 0, -1, &all);
	CHECK_EQ(all.n, 23);
	CHECK(find(&all, ".") >= 0 && find(&all, "..") >= 0);
	CHECK(find(&all, "f00") >= 0 && find(&all, "f19") >= 0);
	CHECK_EQ(all.type[find(&all, "d")], DT_DIR);
	CHECK_EQ(all.type[find(&all, "f07")], DT_REG);
	/* Stop in the middle: the refused entry comes first in the next call from its offset. */
	mid = 11;
	list(fs, fh, 0, mid, &part);
	CHECK_EQ(part.n, mid);
	list(fs, fh, part.next[mid - 1], -1, &rest);
	CHECK_EQ(rest.n, all.n - mid);
	for (int i = 0; i < rest.n && i + mid < all.n; i++)
		CHECK(!strcmp(rest.names[i], all.names[i + mid]));
	/* Another handle, straight at a middle offset (a seek). */
	CHECK_EQ(hostfs_opendir(fs, HOSTFS_ROOT_ID, &fh2), 0);
	list(fs, fh2, all.next[4], -1, &rest);
	CHECK_EQ(rest.n, all.n - 5);
	if (rest.n > 0)
		CHECK(!strcmp(rest.names[0], all.names[5]));
	/* From the start again on the first handle. */
	list(fs, fh, 0, -1, &rest);
	CHECK_EQ(rest.n, all.n);
	/* At the end: nothing. */
	list(fs, fh, all.next[all.n - 1], -1, &rest);
	CHECK_EQ(rest.n, 0);
	CHECK_EQ(hostfs_fsyncdir(fs, fh, false), 0);
	CHECK_EQ(hostfs_releasedir(fs, fh), 0);
	CHECK_EQ(hostfs_readdir(fs, fh, 0, collect, &rest), -EBADF);
	CHECK_EQ(hostfs_release(fs, fh2), -EBADF);        /* a directory handle is not a file's */
	CHECK_EQ(hostfs_releasedir(fs, fh2), 0);
	CHECK_EQ(hostfs_opendir(fs, lookup(fs, HOSTFS_ROOT_ID, "f01"), &fh), -ENOTDIR);
	hostfs_close(fs);
	scratch_done();
}

/* ---- confinement ---- */

static void names_that_are_not_one_component_are_refused(void)
{
	struct hostfs_entry en;
	char longname[NAME_MAX + 2];
	struct hostfs *fs;
	uint64_t before;

	scratch();
	put("file", "x");
	fs = share(false);
	before = refused(fs);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "..", &en), -ENOENT);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, ".", &en), -ENOENT);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "", &en), -EINVAL);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "../etc", &en), -EINVAL);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "/etc", &en), -EINVAL);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "a/file", &en), -EINVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, longname, &en), -ENAMETOOLONG);
	longname[NAME_MAX] = 0;                       /* exactly NAME_MAX: a name, just absent */
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, longname, &en), -ENOENT);
	CHECK_EQ(refused(fs) - before, 7);
	hostfs_close(fs);
	scratch_done();
}

TEST_MAIN("hostfs",
	T(open_refuses_what_is_not_a_directory),
	T(open_fits_the_bounds_to_rlimit_nofile),
	T(lookup_and_getattr_match_the_host),
	T(read_moves_bytes_into_the_callers_buffers),
	T(readdir_lists_everything_and_resumes_at_an_offset),
	T(names_that_are_not_one_component_are_refused))
