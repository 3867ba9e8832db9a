/* hostfs (hostfs/): a share of a scratch directory under /tmp, driven as a hostile guest would
 * drive it through a front end: every operation's normal behaviour, checked against what the
 * host's own calls see, and the confinement: names that climb, symlinks that point out, device
 * nodes and FIFOs, pseudo file systems, the bounds, stale ids, read-only shares. */
#include <dirent.h>
#include <linux/capability.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
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
	o.max_fds = 4000;
	CHECK_EQ(hostfs_open(&o, &fs, &e), -EMFILE);
	CHECK(strstr(e.msg, "RLIMIT_NOFILE") != NULL);
	/* Inodes cost memory, not descriptors: any number fits. */
	o.max_fds = 0;
	o.max_inodes = 100000;
	CHECK_EQ(hostfs_open(&o, &fs, &e), 0);
	getrlimit(RLIMIT_NOFILE, &rl);
	CHECK_EQ(rl.rlim_cur, 3000);     /* raised to the hard limit */
	hostfs_close(fs);
	/* A bound the user chose stays; the other default shrinks around it. */
	o.max_inodes = 0;
	o.max_fds = 2000;
	CHECK_EQ(hostfs_open(&o, &fs, &e), 0);
	hostfs_close(fs);
	o.max_fds = 0;
	o.max_handles = 2000;
	CHECK_EQ(hostfs_open(&o, &fs, &e), 0);
	hostfs_close(fs);
	o.max_fds = 1000;
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


static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* One descriptor per node and per handle, none per request, and none left after close. */
static void descriptors_are_one_per_node_and_handle(void)
{
	struct hostfs_entry en;
	struct listing l;
	struct hostfs *fs;
	int base, opened;
	uint64_t id, fh, dfh;
	struct stat st;

	scratch();
	put("a", "x");
	put("b", "x");
	mkdir(at("d"), 0755);
	base = open_fds();
	fs = share(false);
	opened = open_fds();
	CHECK_EQ(opened - base, 3);              /* the root, /proc/self/fd, /proc/self */
	id = lookup(fs, HOSTFS_ROOT_ID, "a");
	for (int i = 0; i < 10; i++)             /* a known inode: nothing more */
		CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "a", &en), 0);
	CHECK(lookup(fs, HOSTFS_ROOT_ID, "b") != 0);
	CHECK_EQ(open_fds() - opened, 2);
	for (int i = 0; i < 10; i++) {
		CHECK_EQ(hostfs_getattr(fs, id, &st), 0);
		CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "missing", &en), -ENOENT);
		CHECK_EQ(hostfs_getxattr(fs, id, "user.none", NULL, 0), -ENODATA);
		CHECK_EQ(hostfs_access(fs, id, R_OK), 0);
	}
	CHECK_EQ(open_fds() - opened, 2);
	CHECK_EQ(hostfs_open_file(fs, id, O_RDONLY, &fh), 0);
	CHECK_EQ(hostfs_opendir(fs, HOSTFS_ROOT_ID, &dfh), 0);
	list(fs, dfh, 0, -1, &l);
	CHECK_EQ(open_fds() - opened, 4);
	/* A handle outlives its node's forget: it has its own descriptor. */
	hostfs_forget(fs, id, 11);
	CHECK_EQ(hostfs_getattr(fs, id, &st), -ESTALE);
	CHECK_EQ(hostfs_read(fs, fh, 0, &(struct iovec){ &st, 1 }, 1), 1);
	CHECK_EQ(open_fds() - opened, 3);
	hostfs_close(fs);
	CHECK_EQ(open_fds(), base);
	scratch_done();
}

/* A directory larger than one getdents64 buffer, read a few entries per call: every name once,
 * whether the next call resumes in the buffer or seeks. */
static void readdir_in_small_steps_sees_every_entry_once(void)
{
	static char seen[400];
	struct listing l;
	struct hostfs *fs;
	uint64_t fh, off = 0;
	int total = 0, calls = 0;

	scratch();
	for (int i = 0; i < 400; i++) {
		char name[80];

		snprintf(name, sizeof(name), "entry-with-a-rather-long-name-to-fill-buffers-%03d", i);
		put(name, "");
	}
	fs = share(false);
	CHECK_EQ(hostfs_opendir(fs, HOSTFS_ROOT_ID, &fh), 0);
	memset(seen, 0, sizeof(seen));
	for (;;) {
		list(fs, fh, off, 7, &l);
		calls++;
		if (l.n == 0)
			break;
		for (int i = 0; i < l.n; i++) {
			const char *dash = strrchr(l.names[i], '-');

			total++;
			if (dash && l.names[i][0] == 'e')
				seen[atoi(dash + 1)]++;
		}
		off = l.next[l.n - 1];
		/* Every third call from a second handle: a seek to the same offset. */
		if (calls % 3 == 0) {
			uint64_t other;

			CHECK_EQ(hostfs_opendir(fs, HOSTFS_ROOT_ID, &other), 0);
			CHECK_EQ(hostfs_releasedir(fs, fh), 0);
			fh = other;
		}
	}
	CHECK_EQ(total, 402);
	for (int i = 0; i < 400; i++)
		CHECK_EQ(seen[i], 1);
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


/* A share inside a directory: the guest cannot reach the directory's other files, by name, by
 * symlink (absolute or relative), by rename or link. */
static void a_subdirectory_share_cannot_reach_its_parent(void)
{
	struct hostfs_entry en;
	char target[PATH_MAX];
	struct hostfs *fs;
	uint64_t id, fh, root_before;
	struct stat st;
	ssize_t n;

	scratch();
	put("secret", "s3cret");
	mkdir(at("outside"), 0755);
	mkdir(at("share"), 0755);
	CHECK_EQ(symlink("../secret", at("share/rel")), 0);
	CHECK_EQ(symlink(at("secret"), at("share/abs")), 0);
	CHECK_EQ(symlink("..", at("share/up")), 0);
	CHECK_EQ(symlink(at("outside/made"), at("share/evil")), 0);
	fs = share_of(at("share"), false, 64, 16);
	if (!fs)
		return;
	/* Symlinks are data: readlink gives the target, lookup gives the link itself. */
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "rel", &en), 0);
	CHECK(S_ISLNK(en.st.st_mode));
	n = hostfs_readlink(fs, en.id, target, sizeof(target));
	CHECK_EQ(n, 9);
	CHECK(n == 9 && !memcmp(target, "../secret", 9));
	CHECK_EQ(hostfs_open_file(fs, en.id, O_RDONLY, &fh), -ELOOP);
	CHECK_EQ(hostfs_getattr(fs, en.id, &st), 0);
	CHECK(S_ISLNK(st.st_mode));
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "abs", &en), 0);
	CHECK(S_ISLNK(en.st.st_mode));
	n = hostfs_readlink(fs, en.id, target, sizeof(target));
	CHECK(n == (ssize_t)strlen(at("secret")) && !memcmp(target, at("secret"), (size_t)n));
	CHECK_EQ(hostfs_open_file(fs, en.id, O_RDONLY, &fh), -ELOOP);
	CHECK_EQ(hostfs_readlink(fs, HOSTFS_ROOT_ID, target, sizeof(target)), -EINVAL);
	/* Through a symlink to a directory: not a directory here. */
	id = lookup(fs, HOSTFS_ROOT_ID, "up");
	CHECK_EQ(hostfs_lookup(fs, id, "secret", &en), -ENOTDIR);
	CHECK_EQ(hostfs_opendir(fs, id, &fh), -ENOTDIR);
	CHECK_EQ(hostfs_mkdir(fs, id, "x", 0755, 0, &en), -ENOTDIR);
	/* Creating over a symlink that points out: the link is there, nothing is followed. */
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "evil", 0644, O_WRONLY | O_CREAT, 0, &en, &fh),
		 -ELOOP);
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "evil", 0644, O_WRONLY | O_CREAT | O_EXCL, 0,
			       &en, &fh), -EEXIST);
	CHECK(access(at("outside/made"), F_OK) < 0);
	/* Names that climb, in every call that takes one. */
	root_before = refused(fs);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "..", &en), -ENOENT);
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "../x", 0644, O_WRONLY, 0, &en, &fh), -EINVAL);
	CHECK_EQ(hostfs_mkdir(fs, HOSTFS_ROOT_ID, "..", 0755, 0, &en), -EINVAL);
	CHECK_EQ(hostfs_mknod(fs, HOSTFS_ROOT_ID, "../x", S_IFREG | 0644, 0, 0, &en), -EINVAL);
	CHECK_EQ(hostfs_symlink(fs, HOSTFS_ROOT_ID, "../x", "y", &en), -EINVAL);
	CHECK_EQ(hostfs_unlink(fs, HOSTFS_ROOT_ID, "../secret"), -EINVAL);
	CHECK_EQ(hostfs_rmdir(fs, HOSTFS_ROOT_ID, ".."), -EINVAL);
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "../secret", HOSTFS_ROOT_ID, "mine", 0), -EINVAL);
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "rel", HOSTFS_ROOT_ID, "../rel", 0), -EINVAL);
	CHECK_EQ(hostfs_link(fs, lookup(fs, HOSTFS_ROOT_ID, "rel"), HOSTFS_ROOT_ID, "../l", &en),
		 -EINVAL);
	CHECK_EQ(refused(fs) - root_before, 10);
	CHECK(access(at("secret"), F_OK) == 0 && access(at("x"), F_OK) < 0);
	CHECK(access(at("mine"), F_OK) < 0 && access(at("l"), F_OK) < 0);
	hostfs_close(fs);
	scratch_done();
}

/* A share of / must not hand out mica's /proc, the host's /sys or /dev: each is an empty,
 * read-only directory. /dev is devtmpfs, which only the mount table tells from a tmpfs. */
static void pseudo_file_systems_are_empty_read_only_directories(void)
{
	static const char *const names[] = { "proc", "sys", "dev" };
	struct hostfs_entry en, in;
	struct hostfs_setattr sa = { .valid = HOSTFS_SET_MODE, .mode = 0777 };
	struct listing l;
	struct hostfs *fs = share_of("/", true, 64, 16);
	struct statvfs sv;
	struct stat st;
	uint64_t fh;

	if (!fs)
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, names[i], &en), 0);
		CHECK_EQ(en.st.st_mode, S_IFDIR | 0555);
		CHECK_EQ(en.st.st_nlink, 2);
		CHECK_EQ(hostfs_getattr(fs, en.id, &st), 0);
		CHECK_EQ(st.st_mode, S_IFDIR | 0555);
		CHECK_EQ(hostfs_lookup(fs, en.id, "self", &in), -ENOENT);
		CHECK_EQ(hostfs_lookup(fs, en.id, "kvm", &in), -ENOENT);
		CHECK_EQ(hostfs_lookup(fs, en.id, "null", &in), -ENOENT);
		CHECK_EQ(hostfs_lookup(fs, en.id, "kernel", &in), -ENOENT);
		CHECK_EQ(hostfs_open_file(fs, en.id, O_RDONLY, &fh), -EISDIR);
		CHECK_EQ(hostfs_opendir(fs, en.id, &fh), 0);
		list(fs, fh, 0, -1, &l);
		CHECK_EQ(l.n, 2);
		CHECK(!strcmp(l.names[0], ".") && !strcmp(l.names[1], ".."));
		list(fs, fh, l.next[0], -1, &l);
		CHECK(l.n == 1 && !strcmp(l.names[0], ".."));
		CHECK_EQ(hostfs_releasedir(fs, fh), 0);
		CHECK_EQ(hostfs_access(fs, en.id, R_OK | X_OK), 0);
		CHECK_EQ(hostfs_getxattr(fs, en.id, "security.selinux", NULL, 0), -ENODATA);
		CHECK_EQ(hostfs_listxattr(fs, en.id, NULL, 0), 0);
		CHECK_EQ(hostfs_statfs(fs, en.id, &sv), 0);
		CHECK(sv.f_bsize > 0);
	}
	hostfs_close(fs);

	/* The same on a read-write share: every change refused. */
	fs = share_of("/", false, 64, 16);
	if (!fs)
		return;
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "proc", &en), 0);
	CHECK_EQ(hostfs_setattr(fs, en.id, UINT64_MAX, &sa, &st), -EROFS);
	CHECK_EQ(hostfs_mkdir(fs, en.id, "x", 0755, 0, &in), -EROFS);
	CHECK_EQ(hostfs_create(fs, en.id, "x", 0644, O_WRONLY, 0, &in, &fh), -EROFS);
	CHECK_EQ(hostfs_mknod(fs, en.id, "x", S_IFIFO | 0644, 0, 0, &in), -EROFS);
	CHECK_EQ(hostfs_symlink(fs, en.id, "x", "y", &in), -EROFS);
	CHECK_EQ(hostfs_unlink(fs, en.id, "self"), -EROFS);
	CHECK_EQ(hostfs_rmdir(fs, en.id, "1"), -EROFS);
	CHECK_EQ(hostfs_rename(fs, en.id, "self", en.id, "x", 0), -EROFS);
	CHECK_EQ(hostfs_access(fs, en.id, W_OK), -EROFS);
	CHECK_EQ(hostfs_link(fs, en.id, HOSTFS_ROOT_ID, "x", &in), -EPERM);
	hostfs_close(fs);

	/* A share that is itself a pseudo file system shows an empty root. */
	fs = share_of("/proc", true, 64, 16);
	if (!fs)
		return;
	CHECK_EQ(hostfs_getattr(fs, HOSTFS_ROOT_ID, &st), 0);
	CHECK_EQ(st.st_mode, S_IFDIR | 0555);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "self", &in), -ENOENT);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "1", &in), -ENOENT);
	hostfs_close(fs);
}

/* Mounts inside the share, made before and after it is opened (in a mount namespace of a child
 * process): proc, a bind of devtmpfs, a bind of an nsfs file; a tmpfs is served as usual. The
 * child reports its failed checks in its exit status (77: mounts are not possible here). */
static int mounts_child(void)
{
	struct hostfs_entry en, in;
	struct hostfs *fs;
	uint64_t fh;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return 77;
	mkdir(at("p"), 0755);
	mkdir(at("d"), 0755);
	mkdir(at("t"), 0755);
	put("nsfile", "");
	if (mount("proc", at("p"), "proc", 0, NULL) < 0)
		return 77;
	fs = share(false);
	if (!fs)
		return 1;
	if (mount("/dev", at("d"), NULL, MS_BIND, NULL) < 0 ||
	    mount("/proc/self/ns/net", at("nsfile"), NULL, MS_BIND, NULL) < 0 ||
	    mount("tmpfs", at("t"), "tmpfs", 0, "size=64k") < 0)
		return 77;
	put("t/file", "on tmpfs");
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "p", &en), 0);
	CHECK_EQ(en.st.st_mode, S_IFDIR | 0555);
	CHECK_EQ(hostfs_lookup(fs, en.id, "self", &in), -ENOENT);
	/* Mounted after the share was opened: the table is read again. */
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "d", &en), 0);
	CHECK_EQ(en.st.st_mode, S_IFDIR | 0555);
	CHECK_EQ(hostfs_lookup(fs, en.id, "null", &in), -ENOENT);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "nsfile", &en), 0);
	CHECK_EQ(en.st.st_mode, S_IFDIR | 0555);
	CHECK_EQ(hostfs_open_file(fs, en.id, O_RDONLY, &fh), -EISDIR);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "t", &en), 0);
	CHECK(S_ISDIR(en.st.st_mode) && (en.st.st_mode & 07777) != 0555);
	CHECK_EQ(hostfs_lookup(fs, en.id, "file", &in), 0);
	CHECK(S_ISREG(in.st.st_mode));
	CHECK_EQ(in.st.st_size, 8);
	hostfs_close(fs);
	return test_failed_checks;
}

static void pseudo_mounts_inside_the_share_are_never_served(void)
{
	int status;
	pid_t pid;

	scratch();
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int failed = mounts_child();

		fflush(stdout);
		_exit(failed);
	}
	waitpid(pid, &status, 0);
	scratch_done();
	CHECK(WIFEXITED(status));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
		TEST_SKIP("mount namespaces or mounts are not allowed here");
	CHECK_EQ(WEXITSTATUS(status), 0);
}

static void open_blocked(int sig)
{
	static const char msg[] = "not ok - hostfs: an open of a FIFO blocked\n";

	(void)sig;
	fflush(stdout);
	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

/* Device nodes, FIFOs and sockets are seen but never opened; mknod makes only regular files and
 * FIFOs. The alarm ends the test if a FIFO open ever blocked. */
static void device_nodes_fifos_and_sockets_are_never_opened(void)
{
	struct hostfs_setattr sa = { .valid = HOSTFS_SET_SIZE, .size = 0 };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct hostfs_entry en, fifo, sock;
	struct hostfs *fs;
	uint64_t fh, before;
	struct stat st;
	int sfd;

	scratch();
	signal(SIGALRM, open_blocked);
	alarm(30);
	if (mknod(at("null"), S_IFCHR | 0666, makedev(1, 3)) < 0) {
		scratch_done();
		TEST_SKIP("mknod of a character device is not allowed here");
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", at("sock"));
	sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(bind(sfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	fs = share(false);
	before = refused(fs);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "null", &en), 0);
	CHECK(S_ISCHR(en.st.st_mode));
	CHECK_EQ(en.st.st_rdev, makedev(1, 3));
	CHECK_EQ(hostfs_open_file(fs, en.id, O_RDONLY, &fh), -EACCES);
	CHECK_EQ(hostfs_open_file(fs, en.id, O_WRONLY, &fh), -EACCES);
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "null", 0644, O_WRONLY | O_TRUNC, 0, &en, &fh),
		 -EACCES);
	CHECK_EQ(hostfs_setattr(fs, en.id, UINT64_MAX, &sa, &st), -EACCES);
	CHECK_EQ(hostfs_getxattr(fs, en.id, "user.x", NULL, 0), -ENODATA);
	CHECK_EQ(hostfs_listxattr(fs, en.id, NULL, 0), 0);
	CHECK_EQ(hostfs_opendir(fs, en.id, &fh), -ENOTDIR);
	/* A chmod opens nothing: allowed. */
	sa.valid = HOSTFS_SET_MODE;
	sa.mode = 0600;
	CHECK_EQ(hostfs_setattr(fs, en.id, UINT64_MAX, &sa, &st), 0);
	CHECK_EQ(st.st_mode, S_IFCHR | 0600);
	/* mknod: regular files and FIFOs only. */
	CHECK_EQ(hostfs_mknod(fs, HOSTFS_ROOT_ID, "c", S_IFCHR | 0666, makedev(1, 3), 0, &en),
		 -EPERM);
	CHECK_EQ(hostfs_mknod(fs, HOSTFS_ROOT_ID, "b", S_IFBLK | 0666, makedev(7, 0), 0, &en),
		 -EPERM);
	CHECK_EQ(hostfs_mknod(fs, HOSTFS_ROOT_ID, "s", S_IFSOCK | 0666, 0, 0, &en), -EPERM);
	CHECK(access(at("c"), F_OK) < 0 && access(at("b"), F_OK) < 0);
	CHECK_EQ(hostfs_mknod(fs, HOSTFS_ROOT_ID, "fifo", S_IFIFO | 0666, 0, 022, &fifo), 0);
	CHECK_EQ(fifo.st.st_mode, S_IFIFO | 0644);
	CHECK_EQ(hostfs_open_file(fs, fifo.id, O_RDONLY, &fh), -EACCES);
	CHECK_EQ(hostfs_open_file(fs, fifo.id, O_WRONLY | O_NONBLOCK, &fh), -EACCES);
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "fifo", 0644, O_RDONLY, 0, &en, &fh), -EACCES);
	sa.valid = HOSTFS_SET_SIZE;
	CHECK_EQ(hostfs_setattr(fs, fifo.id, UINT64_MAX, &sa, &st), -EACCES);
	CHECK_EQ(hostfs_mknod(fs, HOSTFS_ROOT_ID, "reg", S_IFREG | 06666, 0, 027, &en), 0);
	CHECK_EQ(en.st.st_mode, S_IFREG | 0640);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "sock", &sock), 0);
	CHECK(S_ISSOCK(sock.st.st_mode));
	CHECK_EQ(hostfs_open_file(fs, sock.id, O_RDWR, &fh), -EACCES);
	CHECK(refused(fs) - before >= 12);
	hostfs_close(fs);
	close(sfd);
	alarm(0);
	scratch_done();
}

/* ---- bounds and ids ---- */

static void the_inode_table_is_bounded(void)
{
	struct hostfs_counts c;
	struct hostfs_entry en;
	struct hostfs *fs;
	uint64_t ids[9], before, fh;

	scratch();
	for (int i = 0; i < 9; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%d", i);
		put(name, "x");
	}
	fs = share_of(dir, false, 8, 4);
	for (int i = 0; i < 8; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%d", i);
		ids[i] = lookup(fs, HOSTFS_ROOT_ID, name);
		CHECK(ids[i] != 0);
	}
	hostfs_counts(fs, &c);
	CHECK_EQ(c.inodes, 8);
	before = refused(fs);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "f8", &en), -ENFILE);
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "new", 0644, O_WRONLY, 0, &en, &fh), -ENFILE);
	CHECK_EQ(hostfs_mkdir(fs, HOSTFS_ROOT_ID, "newdir", 0755, 0, &en), -ENFILE);
	CHECK(access(at("new"), F_OK) < 0 && access(at("newdir"), F_OK) < 0);
	CHECK_EQ(refused(fs) - before, 3);
	/* A known inode needs no new slot. */
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "f3", &en), 0);
	CHECK_EQ(en.id, ids[3]);
	/* Two lookups of f3: one forget leaves it, the second frees its slot. */
	hostfs_forget(fs, ids[3], 1);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "f8", &en), -ENFILE);
	hostfs_forget(fs, ids[3], 1);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "f8", &en), 0);
	hostfs_counts(fs, &c);
	CHECK_EQ(c.inodes, 8);
	/* Forgetting more than was looked up, or the root, is harmless. */
	hostfs_forget(fs, en.id, 1000);
	hostfs_forget(fs, HOSTFS_ROOT_ID, 1000);
	hostfs_counts(fs, &c);
	CHECK_EQ(c.inodes, 7);
	CHECK_EQ(hostfs_getattr(fs, HOSTFS_ROOT_ID, &(struct stat){ 0 }), 0);
	hostfs_close(fs);
	scratch_done();
}

static void the_handle_table_is_bounded(void)
{
	struct hostfs_counts c;
	struct hostfs_entry en;
	struct hostfs *fs;
	uint64_t id, fh[4], more;

	scratch();
	put("file", "x");
	fs = share_of(dir, false, 8, 4);
	id = lookup(fs, HOSTFS_ROOT_ID, "file");
	for (int i = 0; i < 4; i++)
		CHECK_EQ(hostfs_open_file(fs, id, O_RDONLY, &fh[i]), 0);
	hostfs_counts(fs, &c);
	CHECK_EQ(c.handles, 4);
	CHECK_EQ(hostfs_open_file(fs, id, O_RDONLY, &more), -ENFILE);
	CHECK_EQ(hostfs_opendir(fs, HOSTFS_ROOT_ID, &more), -ENFILE);
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "new", 0644, O_WRONLY, 0, &en, &more), -ENFILE);
	CHECK(access(at("new"), F_OK) < 0);
	CHECK_EQ(hostfs_release(fs, fh[2]), 0);
	CHECK_EQ(hostfs_opendir(fs, HOSTFS_ROOT_ID, &more), 0);
	CHECK(more != fh[2]);                   /* the slot again, but a new handle */
	CHECK_EQ(hostfs_read(fs, fh[2], 0, &(struct iovec){ &c, 1 }, 1), -EBADF);
	hostfs_counts(fs, &c);
	CHECK_EQ(c.handles, 4);
	hostfs_close(fs);
	scratch_done();
}

static void stale_ids_and_handles_are_refused(void)
{
	struct hostfs_setattr sa = { .valid = HOSTFS_SET_MODE, .mode = 0600 };
	struct hostfs_entry en;
	struct hostfs_counts c;
	struct hostfs *fs;
	uint64_t id, id2, fh, dfh;
	char buf[8];
	struct stat st;

	scratch();
	put("file", "x");
	fs = share(false);
	id = lookup(fs, HOSTFS_ROOT_ID, "file");
	hostfs_forget(fs, id, 1);
	CHECK_EQ(hostfs_getattr(fs, id, &st), -ESTALE);
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), -ESTALE);
	CHECK_EQ(hostfs_open_file(fs, id, O_RDONLY, &fh), -ESTALE);
	CHECK_EQ(hostfs_readlink(fs, id, buf, sizeof(buf)), -ESTALE);
	CHECK_EQ(hostfs_lookup(fs, id, "x", &en), -ESTALE);
	CHECK_EQ(hostfs_link(fs, id, HOSTFS_ROOT_ID, "x", &en), -ESTALE);
	/* The same file again: the same slot, another id; the old one stays stale. */
	id2 = lookup(fs, HOSTFS_ROOT_ID, "file");
	CHECK(id2 != 0 && id2 != id);
	CHECK_EQ(hostfs_getattr(fs, id, &st), -ESTALE);
	CHECK_EQ(hostfs_getattr(fs, id2, &st), 0);
	/* Ids never handed out. */
	CHECK_EQ(hostfs_getattr(fs, 0, &st), -ESTALE);
	CHECK_EQ(hostfs_getattr(fs, UINT64_MAX, &st), -ESTALE);
	CHECK_EQ(hostfs_getattr(fs, id2 + 1, &st), -ESTALE);
	CHECK_EQ(hostfs_getattr(fs, id2 ^ (1ull << 40), &st), -ESTALE);
	CHECK_EQ(hostfs_release(fs, 0), -EBADF);
	CHECK_EQ(hostfs_release(fs, UINT64_MAX), -EBADF);
	CHECK_EQ(hostfs_fsync(fs, 12345, false), -EBADF);
	/* A reset forgets every node but the root and closes every handle. */
	CHECK_EQ(hostfs_open_file(fs, id2, O_RDONLY, &fh), 0);
	CHECK_EQ(hostfs_opendir(fs, HOSTFS_ROOT_ID, &dfh), 0);
	hostfs_reset(fs);
	hostfs_counts(fs, &c);
	CHECK_EQ(c.inodes, 0);
	CHECK_EQ(c.handles, 0);
	CHECK_EQ(hostfs_getattr(fs, id2, &st), -ESTALE);
	CHECK_EQ(hostfs_read(fs, fh, 0, &(struct iovec){ buf, 1 }, 1), -EBADF);
	CHECK_EQ(hostfs_releasedir(fs, dfh), -EBADF);
	CHECK_EQ(hostfs_getattr(fs, HOSTFS_ROOT_ID, &st), 0);
	CHECK(lookup(fs, HOSTFS_ROOT_ID, "file") != 0);
	hostfs_close(fs);
	scratch_done();
}

/* ---- read-only shares ---- */

static void a_read_only_share_changes_nothing(void)
{
	struct hostfs_setattr sa = { .valid = HOSTFS_SET_SIZE, .size = 0 };
	struct hostfs_entry en;
	struct hostfs *fs;
	uint64_t id, sub, fh;
	char buf[16];
	struct stat st, before;

	scratch();
	put("file", "keep me");
	mkdir(at("sub"), 0755);
	lstat(at("file"), &before);
	fs = share(true);
	CHECK(hostfs_readonly(fs));
	id = lookup(fs, HOSTFS_ROOT_ID, "file");
	sub = lookup(fs, HOSTFS_ROOT_ID, "sub");
	CHECK_EQ(hostfs_open_file(fs, id, O_WRONLY, &fh), -EROFS);
	CHECK_EQ(hostfs_open_file(fs, id, O_RDWR, &fh), -EROFS);
	CHECK_EQ(hostfs_open_file(fs, id, O_RDONLY | O_TRUNC, &fh), -EROFS);
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "new", 0644, O_RDONLY, 0, &en, &fh), -EROFS);
	CHECK_EQ(hostfs_mknod(fs, HOSTFS_ROOT_ID, "new", S_IFREG | 0644, 0, 0, &en), -EROFS);
	CHECK_EQ(hostfs_mkdir(fs, HOSTFS_ROOT_ID, "new", 0755, 0, &en), -EROFS);
	CHECK_EQ(hostfs_symlink(fs, HOSTFS_ROOT_ID, "new", "file", &en), -EROFS);
	CHECK_EQ(hostfs_link(fs, id, HOSTFS_ROOT_ID, "new", &en), -EROFS);
	CHECK_EQ(hostfs_unlink(fs, HOSTFS_ROOT_ID, "file"), -EROFS);
	CHECK_EQ(hostfs_rmdir(fs, HOSTFS_ROOT_ID, "sub"), -EROFS);
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "file", sub, "file", 0), -EROFS);
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), -EROFS);
	sa.valid = HOSTFS_SET_MODE;
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), -EROFS);
	sa.valid = HOSTFS_SET_MTIME_NOW;
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), -EROFS);
	sa.valid = HOSTFS_SET_UID;
	sa.uid = getuid();
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), -EROFS);
	sa.valid = HOSTFS_SET_CTIME;               /* changes nothing: fine */
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), 0);
	CHECK_EQ(hostfs_access(fs, id, W_OK), -EROFS);
	CHECK_EQ(hostfs_access(fs, id, R_OK), 0);
	/* Reading works; writing through a read handle does not. */
	CHECK_EQ(hostfs_open_file(fs, id, O_RDONLY, &fh), 0);
	CHECK_EQ(hostfs_read(fs, fh, 0, &(struct iovec){ buf, sizeof(buf) }, 1), 7);
	CHECK_EQ(hostfs_write(fs, fh, 0, &(struct iovec){ buf, 1 }, 1), -EROFS);
	CHECK_EQ(hostfs_fallocate(fs, fh, 0, 0, 4096), -EROFS);
	CHECK_EQ(hostfs_fsync(fs, fh, true), 0);
	hostfs_close(fs);
	lstat(at("file"), &st);
	CHECK_EQ(st.st_size, before.st_size);
	CHECK_EQ(st.st_mode, before.st_mode);
	CHECK_EQ(st.st_mtim.tv_sec, before.st_mtim.tv_sec);
	CHECK_EQ(st.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
	CHECK(access(at("new"), F_OK) < 0 && access(at("sub"), F_OK) == 0);
	scratch_done();
}

/* ---- changes ---- */

static void create_write_and_read_back(void)
{
	struct hostfs_entry en, again;
	struct hostfs *fs;
	uint64_t fh, fh2;
	char buf[32];
	struct stat st;
	int fd;

	scratch();
	put("old", "old contents");
	fs = share(false);
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "new", 06666, O_RDWR | O_CREAT | O_EXCL, 022,
			       &en, &fh), 0);
	CHECK_EQ(en.st.st_mode, S_IFREG | 0644);          /* no setuid, no setgid */
	CHECK_EQ(en.st.st_uid, geteuid());
	CHECK_EQ(hostfs_write(fs, fh, 0, (struct iovec[]){ { "hel", 3 }, { "lo", 2 } }, 2), 5);
	CHECK_EQ(hostfs_write(fs, fh, 5, &(struct iovec){ " you", 4 }, 1), 4);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(hostfs_read(fs, fh, 0, &(struct iovec){ buf, sizeof(buf) }, 1), 9);
	CHECK(!strcmp(buf, "hello you"));
	CHECK_EQ(hostfs_fsync(fs, fh, false), 0);
	CHECK_EQ(hostfs_fsync(fs, fh, true), 0);
	fd = open(at("new"), O_RDONLY);
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(read(fd, buf, sizeof(buf)), 9);
	close(fd);
	CHECK(!strcmp(buf, "hello you"));
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "new", &again), 0);
	CHECK_EQ(again.id, en.id);
	CHECK_EQ(hostfs_release(fs, fh), 0);
	/* O_EXCL on a name that exists; without O_EXCL it opens it (O_TRUNC truncating). */
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "old", 0644, O_WRONLY | O_EXCL, 0, &en, &fh),
		 -EEXIST);
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "old", 0644, O_RDWR | O_TRUNC, 0, &en, &fh), 0);
	CHECK_EQ(en.st.st_size, 0); /* the entry as it is after the truncation, not before */
	CHECK_EQ(hostfs_getattr(fs, en.id, &st), 0);
	CHECK_EQ(st.st_size, 0);
	CHECK_EQ(hostfs_release(fs, fh), 0);
	/* O_APPEND kept. */
	CHECK_EQ(hostfs_open_file(fs, en.id, O_WRONLY | O_APPEND, &fh2), 0);
	CHECK_EQ(hostfs_write(fs, fh2, 0, &(struct iovec){ "ab", 2 }, 1), 2);
	CHECK_EQ(hostfs_write(fs, fh2, 0, &(struct iovec){ "cd", 2 }, 1), 2);
	lstat(at("old"), &st);
	CHECK_EQ(st.st_size, 4);
	CHECK_EQ(hostfs_release(fs, fh2), 0);
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "x", 0644, O_ACCMODE, 0, &en, &fh), -EINVAL);
	CHECK_EQ(hostfs_create(fs, 999, "x", 0644, O_RDWR, 0, &en, &fh), -ESTALE);
	hostfs_close(fs);
	scratch_done();
}

static void setattr_changes_mode_owner_size_and_times(void)
{
	struct hostfs_setattr sa = { 0 };
	struct hostfs *fs;
	uint64_t id, link_id, fh;
	struct stat st, hs;

	scratch();
	put("file", "0123456789");
	CHECK_EQ(symlink("file", at("link")), 0);
	fs = share(false);
	id = lookup(fs, HOSTFS_ROOT_ID, "file");
	link_id = lookup(fs, HOSTFS_ROOT_ID, "link");
	sa.valid = HOSTFS_SET_MODE;
	sa.mode = S_IFDIR | 01640;           /* the type bits are not the guest's to change */
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), 0);
	CHECK_EQ(st.st_mode, S_IFREG | 01640);
	lstat(at("file"), &hs);
	CHECK_EQ(hs.st_mode, S_IFREG | 01640);
	/* Never a setuid or setgid program; a setgid directory is fine. */
	sa.mode = 06755;
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), 0);
	CHECK_EQ(st.st_mode, S_IFREG | 0755);
	lstat(at("file"), &hs);
	CHECK_EQ(hs.st_mode, S_IFREG | 0755);
	sa.mode = 02775;
	CHECK_EQ(hostfs_setattr(fs, HOSTFS_ROOT_ID, UINT64_MAX, &sa, &st), 0);
	CHECK_EQ(st.st_mode, S_IFDIR | 02775);
	CHECK_EQ(hostfs_setattr(fs, link_id, UINT64_MAX, &sa, &st), -EOPNOTSUPP);
	/* Owner: to mica's own ids. */
	sa.valid = HOSTFS_SET_UID | HOSTFS_SET_GID;
	sa.uid = geteuid();
	sa.gid = getegid();
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), 0);
	CHECK_EQ(st.st_uid, geteuid());
	CHECK_EQ(hostfs_setattr(fs, link_id, UINT64_MAX, &sa, &st), 0);
	/* To anyone else: refused, even with mica as root. */
	sa.uid = geteuid() + 1234;
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), -EPERM);
	sa.valid = HOSTFS_SET_GID;
	sa.gid = getegid() + 1234;
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), -EPERM);
	lstat(at("file"), &hs);
	CHECK_EQ(hs.st_uid, geteuid());
	CHECK_EQ(hs.st_gid, getegid());
	/* Size: through a reopened descriptor, and through the caller's handle. */
	sa.valid = HOSTFS_SET_SIZE;
	sa.size = 4;
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), 0);
	CHECK_EQ(st.st_size, 4);
	CHECK_EQ(hostfs_open_file(fs, id, O_RDWR, &fh), 0);
	sa.size = 100000;
	CHECK_EQ(hostfs_setattr(fs, id, fh, &sa, &st), 0);
	CHECK_EQ(st.st_size, 100000);
	lstat(at("file"), &hs);
	CHECK_EQ(hs.st_size, 100000);
	CHECK_EQ(hostfs_setattr(fs, id, fh + 1, &sa, &st), -EBADF);
	CHECK_EQ(hostfs_setattr(fs, HOSTFS_ROOT_ID, UINT64_MAX, &sa, &st), -EISDIR);
	CHECK_EQ(hostfs_setattr(fs, link_id, UINT64_MAX, &sa, &st), -EINVAL);
	sa.size = UINT64_MAX;
	CHECK_EQ(hostfs_setattr(fs, id, fh, &sa, &st), -EFBIG);
	CHECK_EQ(hostfs_release(fs, fh), 0);
	/* Times: given, now, and of a symlink itself (not its target). */
	sa.valid = HOSTFS_SET_ATIME | HOSTFS_SET_MTIME;
	sa.atime = (struct timespec){ 1000000000, 5 };
	sa.mtime = (struct timespec){ 1200000000, 7 };
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), 0);
	CHECK_EQ(st.st_atim.tv_sec, 1000000000);
	CHECK_EQ(st.st_mtim.tv_sec, 1200000000);
	CHECK_EQ(st.st_mtim.tv_nsec, 7);
	CHECK_EQ(hostfs_setattr(fs, link_id, UINT64_MAX, &sa, &st), 0);
	CHECK_EQ(st.st_mtim.tv_sec, 1200000000);
	CHECK(S_ISLNK(st.st_mode));
	sa.valid = HOSTFS_SET_MTIME_NOW;
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), 0);
	CHECK(st.st_mtim.tv_sec > 1200000000);
	CHECK_EQ(st.st_atim.tv_sec, 1000000000);        /* untouched */
	sa.valid = HOSTFS_SET_MTIME;
	sa.mtime.tv_nsec = UTIME_NOW;                   /* a code, not a time */
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), -EINVAL);
	sa.valid = 1u << 20;
	CHECK_EQ(hostfs_setattr(fs, id, UINT64_MAX, &sa, &st), -EINVAL);
	hostfs_close(fs);
	scratch_done();
}

static void directories_change_as_asked(void)
{
	struct hostfs_entry d, f, s, l, again;
	char target[64];
	struct hostfs *fs;
	uint64_t fh;
	struct stat st;
	char buf[8];

	scratch();
	fs = share(false);
	CHECK_EQ(hostfs_mkdir(fs, HOSTFS_ROOT_ID, "d", 0777, 022, &d), 0);
	CHECK_EQ(d.st.st_mode, S_IFDIR | 0755);
	CHECK_EQ(hostfs_mkdir(fs, HOSTFS_ROOT_ID, "d", 0777, 022, &again), -EEXIST);
	CHECK_EQ(hostfs_create(fs, d.id, "f", 0644, O_WRONLY, 0, &f, &fh), 0);
	CHECK_EQ(hostfs_write(fs, fh, 0, &(struct iovec){ "data", 4 }, 1), 4);
	/* The node follows a rename: same id, same open handle. */
	CHECK_EQ(hostfs_rename(fs, d.id, "f", HOSTFS_ROOT_ID, "moved", 0), 0);
	CHECK(access(at("moved"), F_OK) == 0 && access(at("d/f"), F_OK) < 0);
	CHECK_EQ(hostfs_getattr(fs, f.id, &st), 0);
	CHECK_EQ(st.st_size, 4);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "moved", &again), 0);
	CHECK_EQ(again.id, f.id);
	CHECK_EQ(hostfs_write(fs, fh, 4, &(struct iovec){ "++", 2 }, 1), 2);
	CHECK_EQ(hostfs_release(fs, fh), 0);
	/* Symlink: the target stored as given. */
	CHECK_EQ(hostfs_symlink(fs, HOSTFS_ROOT_ID, "s", "/etc/shadow", &s), 0);
	CHECK(S_ISLNK(s.st.st_mode));
	CHECK_EQ(readlink(at("s"), target, sizeof(target)), 11);
	CHECK_EQ(hostfs_readlink(fs, s.id, target, 4), 4);       /* cut to the buffer */
	CHECK(!memcmp(target, "/etc", 4));
	/* Link: the same node, one more link; never a directory. */
	CHECK_EQ(hostfs_link(fs, f.id, d.id, "hard", &l), 0);
	CHECK_EQ(l.id, f.id);
	CHECK_EQ(l.st.st_nlink, 2);
	CHECK_EQ(hostfs_link(fs, s.id, d.id, "slink", &l), 0);
	CHECK_EQ(l.id, s.id);
	CHECK_EQ(hostfs_link(fs, d.id, HOSTFS_ROOT_ID, "dlink", &l), -EPERM);
	CHECK_EQ(hostfs_link(fs, f.id, d.id, "hard", &l), -EEXIST);
	/* rename's flags. */
	put("a", "A");
	put("b", "B");
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "a", HOSTFS_ROOT_ID, "b", RENAME_NOREPLACE),
		 -EEXIST);
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "a", HOSTFS_ROOT_ID, "b", RENAME_EXCHANGE), 0);
	{
		int fd = open(at("a"), O_RDONLY);

		CHECK_EQ(read(fd, buf, sizeof(buf)), 1);
		CHECK_EQ(buf[0], 'B');
		close(fd);
	}
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "a", HOSTFS_ROOT_ID, "c", RENAME_WHITEOUT),
		 -EINVAL);
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "a", HOSTFS_ROOT_ID, "c",
			       RENAME_EXCHANGE | RENAME_NOREPLACE), -EINVAL);
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "a", HOSTFS_ROOT_ID, "c", 0), 0);
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "c", f.id, "c", 0), -ENOTDIR);
	/* unlink, rmdir. */
	CHECK_EQ(hostfs_rmdir(fs, HOSTFS_ROOT_ID, "d"), -ENOTEMPTY);
	CHECK_EQ(hostfs_unlink(fs, d.id, "hard"), 0);
	CHECK_EQ(hostfs_unlink(fs, d.id, "slink"), 0);
	CHECK_EQ(hostfs_unlink(fs, HOSTFS_ROOT_ID, "d"), -EISDIR);
	CHECK_EQ(hostfs_rmdir(fs, HOSTFS_ROOT_ID, "d"), 0);
	CHECK_EQ(hostfs_unlink(fs, HOSTFS_ROOT_ID, "nothing"), -ENOENT);
	CHECK_EQ(hostfs_getattr(fs, d.id, &st), 0);      /* still held: the node's descriptor */
	CHECK_EQ(st.st_nlink, 0);
	CHECK_EQ(hostfs_unlink(fs, HOSTFS_ROOT_ID, "moved"), 0);
	CHECK_EQ(hostfs_getattr(fs, f.id, &st), 0);
	CHECK_EQ(st.st_nlink, 0);
	CHECK_EQ(hostfs_symlink(fs, HOSTFS_ROOT_ID, "long", "", &l), -ENOENT);
	hostfs_close(fs);
	scratch_done();
}

/* Without CAP_DAC_READ_SEARCH, linkat's AT_EMPTY_PATH is refused: link goes through the magic
 * link instead. A child drops the capability and reports its failed checks in its status. */
static int link_child(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	struct hostfs_entry f, s, l;
	struct hostfs *fs;
	int fd;

	if (syscall(SYS_capget, &h, d) < 0)
		return 77;
	d[0].effective &= ~(1u << CAP_DAC_READ_SEARCH);
	if (syscall(SYS_capset, &h, d) < 0)
		return 77;
	fd = open(at("file"), O_PATH);
	if (linkat(fd, "", AT_FDCWD, at("direct"), AT_EMPTY_PATH) == 0 || errno != ENOENT)
		return 77;                      /* the kernel does not need the capability */
	close(fd);
	fs = share(false);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "file", &f), 0);
	CHECK_EQ(hostfs_link(fs, f.id, HOSTFS_ROOT_ID, "hard", &l), 0);
	CHECK_EQ(l.id, f.id);
	CHECK_EQ(l.st.st_nlink, 2);
	CHECK_EQ(hostfs_lookup(fs, HOSTFS_ROOT_ID, "link", &s), 0);
	CHECK_EQ(hostfs_link(fs, s.id, HOSTFS_ROOT_ID, "hardlink", &l), 0);
	CHECK(S_ISLNK(l.st.st_mode));         /* the symlink itself, not its target */
	CHECK_EQ(l.id, s.id);
	hostfs_close(fs);
	return test_failed_checks;
}

static void link_works_without_cap_dac_read_search(void)
{
	struct stat st;
	int status;
	pid_t pid;

	scratch();
	put("file", "x");
	CHECK_EQ(symlink("file", at("link")), 0);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(link_child());
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		scratch_done();
		TEST_SKIP("cannot drop CAP_DAC_READ_SEARCH, or linkat does not need it");
	}
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK_EQ(lstat(at("hard"), &st), 0);
	CHECK_EQ(st.st_nlink, 2);
	CHECK_EQ(lstat(at("hardlink"), &st), 0);
	CHECK(S_ISLNK(st.st_mode));
	scratch_done();
}

static void access_and_statfs(void)
{
	struct hostfs *fs;
	struct statvfs mine, host;
	uint64_t id;

	scratch();
	put("file", "x");
	fs = share(false);
	id = lookup(fs, HOSTFS_ROOT_ID, "file");
	CHECK_EQ(hostfs_access(fs, id, R_OK | W_OK), 0);
	CHECK_EQ(hostfs_access(fs, id, F_OK), 0);
	CHECK_EQ(hostfs_access(fs, id, 0x40), -EINVAL);
	CHECK_EQ(hostfs_statfs(fs, id, &mine), 0);
	statvfs(dir, &host);
	CHECK_EQ(mine.f_bsize, host.f_bsize);
	CHECK_EQ(mine.f_blocks, host.f_blocks);
	CHECK_EQ(mine.f_fsid, host.f_fsid);
	CHECK_EQ(hostfs_statfs(fs, HOSTFS_ROOT_ID, &mine), 0);
	CHECK_EQ(mine.f_namemax, host.f_namemax);
	hostfs_close(fs);
	scratch_done();
}

static void extended_attributes_are_read_without_following(void)
{
	char buf[64];
	struct hostfs *fs;
	uint64_t id, did, lid;
	ssize_t n;

	scratch();
	put("file", "x");
	mkdir(at("d"), 0755);
	CHECK_EQ(symlink("file", at("link")), 0);
	if (setxattr(at("file"), "user.mica", "value", 5, 0) < 0 ||
	    setxattr(at("d"), "user.dir", "dv", 2, 0) < 0) {
		scratch_done();
		TEST_SKIP("this file system has no user.* extended attributes");
	}
	fs = share(false);
	id = lookup(fs, HOSTFS_ROOT_ID, "file");
	did = lookup(fs, HOSTFS_ROOT_ID, "d");
	lid = lookup(fs, HOSTFS_ROOT_ID, "link");
	CHECK_EQ(hostfs_getxattr(fs, id, "user.mica", NULL, 0), 5);
	CHECK_EQ(hostfs_getxattr(fs, id, "user.mica", buf, sizeof(buf)), 5);
	CHECK(!memcmp(buf, "value", 5));
	CHECK_EQ(hostfs_getxattr(fs, id, "user.mica", buf, 2), -ERANGE);
	CHECK_EQ(hostfs_getxattr(fs, id, "user.none", buf, sizeof(buf)), -ENODATA);
	CHECK_EQ(hostfs_getxattr(fs, id, "", buf, sizeof(buf)), -ERANGE);
	CHECK_EQ(hostfs_getxattr(fs, did, "user.dir", buf, sizeof(buf)), 2);
	n = hostfs_listxattr(fs, id, NULL, 0);
	CHECK(n >= 10);
	CHECK_EQ(hostfs_listxattr(fs, id, buf, sizeof(buf)), n);
	CHECK(memmem(buf, (size_t)n, "user.mica", 10) != NULL);
	CHECK_EQ(hostfs_listxattr(fs, id, buf, 3), -ERANGE);
	/* A symlink's attributes are not its target's. */
	CHECK_EQ(hostfs_getxattr(fs, lid, "user.mica", buf, sizeof(buf)), -ENODATA);
	CHECK_EQ(hostfs_listxattr(fs, lid, buf, sizeof(buf)), 0);
	hostfs_close(fs);
	scratch_done();
}

static void lseek_finds_data_and_holes_and_fallocate_allocates(void)
{
	struct hostfs_entry en;
	struct hostfs *fs;
	struct stat st;
	uint64_t fh;
	char blk[4096];
	int64_t r;

	scratch();
	fs = share(false);
	memset(blk, 'x', sizeof(blk));
	CHECK_EQ(hostfs_create(fs, HOSTFS_ROOT_ID, "sparse", 0644, O_RDWR, 0, &en, &fh), 0);
	CHECK_EQ(hostfs_write(fs, fh, 0, &(struct iovec){ blk, sizeof(blk) }, 1), 4096);
	CHECK_EQ(hostfs_write(fs, fh, 1 << 20, &(struct iovec){ blk, sizeof(blk) }, 1), 4096);
	CHECK_EQ(hostfs_lseek(fs, fh, 0, SEEK_DATA), 0);
	r = hostfs_lseek(fs, fh, 0, SEEK_HOLE);
	if (r == (1 << 20) + 4096) {
		printf("# this file system reports no holes\n");
	} else {
		CHECK_EQ(r, 4096);
		CHECK_EQ(hostfs_lseek(fs, fh, 4096, SEEK_DATA), 1 << 20);
	}
	CHECK_EQ(hostfs_lseek(fs, fh, 0, SEEK_END), (1 << 20) + 4096);
	CHECK_EQ(hostfs_lseek(fs, fh, (1 << 20) + 4096, SEEK_DATA), -ENXIO);
	CHECK_EQ(hostfs_lseek(fs, fh, 0, 42), -EINVAL);
	/* fallocate: grows the file, or keeps its size; punches a hole. */
	CHECK_EQ(hostfs_fallocate(fs, fh, 0, 0, 2 << 20), 0);
	CHECK_EQ(hostfs_getattr(fs, en.id, &st), 0);
	CHECK_EQ(st.st_size, 2 << 20);
	CHECK_EQ(hostfs_fallocate(fs, fh, FALLOC_FL_KEEP_SIZE, 2 << 20, 1 << 20), 0);
	CHECK_EQ(hostfs_getattr(fs, en.id, &st), 0);
	CHECK_EQ(st.st_size, 2 << 20);
	CHECK_EQ(hostfs_fallocate(fs, fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), 0);
	CHECK_EQ(hostfs_lseek(fs, fh, 0, SEEK_HOLE), 0);
	CHECK_EQ(hostfs_fallocate(fs, fh, 0, UINT64_MAX, 1), -EINVAL);
	CHECK_EQ(hostfs_release(fs, fh), 0);
	CHECK_EQ(hostfs_open_file(fs, en.id, O_RDONLY, &fh), 0);
	CHECK_EQ(hostfs_fallocate(fs, fh, 0, 0, 4096), -EBADF);     /* not open for writing */
	CHECK_EQ(hostfs_release(fs, fh), 0);
	hostfs_close(fs);
	scratch_done();
}

/* ---- more inodes than descriptors (fdcache.c) ---- */

static struct hostfs *share_fds(uint32_t max_fds)
{
	struct hostfs_opts o = { .path = dir, .max_fds = max_fds, .max_handles = 16 };
	struct hostfs *fs = NULL;
	struct err e = { "" };

	if (hostfs_open(&o, &fs, &e) < 0)
		printf("#   hostfs_open(%s): %s\n", dir, e.msg);
	return fs;
}

static struct hostfs_counts counts_of(struct hostfs *fs)
{
	struct hostfs_counts c;

	hostfs_counts(fs, &c);
	return c;
}

/* Reads the whole of node id's file into buf (NUL-terminated): its length or -errno. */
static ssize_t read_node(struct hostfs *fs, uint64_t id, char *buf, size_t size)
{
	uint64_t fh;
	ssize_t n;
	int r = hostfs_open_file(fs, id, O_RDONLY, &fh);

	if (r < 0)
		return r;
	n = hostfs_read(fs, fh, 0, &(struct iovec){ buf, size - 1 }, 1);
	hostfs_release(fs, fh);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* 10 directories of 10 files each and a chain 40 directories deep, with 16 descriptors: every
 * node known at once, most of them without a descriptor, and every one still works (getattr,
 * read, readlink, readdir, a lookup beneath it), found again by name through its parents. The
 * descriptors held never pass the bound. */
static void a_tree_bigger_than_max_fds_works_in_full(void)
{
	uint64_t files[10][10], dirs[10], chain[41], link_id;
	struct hostfs_entry en;
	struct listing l;
	struct hostfs *fs;
	char name[256], buf[64], want[64];
	struct stat st, hst;
	int base;

	scratch();
	for (int d = 0; d < 10; d++) {
		snprintf(name, sizeof(name), "d%d", d);
		mkdir(at(name), 0755);
		for (int f = 0; f < 10; f++) {
			snprintf(name, sizeof(name), "d%d/f%d", d, f);
			snprintf(want, sizeof(want), "file %d.%d", d, f);
			put(name, want);
		}
	}
	strcpy(name, "c");
	for (int i = 0; i < 40; i++) {
		mkdir(at(name), 0755);
		strcat(name, "/c");
	}
	put(name, "deep");
	CHECK(symlink("target/of/link", at("d3/link")) == 0);
	base = open_fds();
	fs = share_fds(16);
	if (!fs)
		return;
	for (int d = 0; d < 10; d++) {
		snprintf(name, sizeof(name), "d%d", d);
		dirs[d] = lookup(fs, HOSTFS_ROOT_ID, name);
		for (int f = 0; f < 10; f++) {
			snprintf(name, sizeof(name), "f%d", f);
			files[d][f] = lookup(fs, dirs[d], name);
			CHECK(files[d][f] != 0);
		}
	}
	link_id = lookup(fs, dirs[3], "link");
	chain[0] = HOSTFS_ROOT_ID;
	for (int i = 1; i <= 40; i++)
		chain[i] = lookup(fs, chain[i - 1], "c");
	CHECK(chain[40] != 0);
	CHECK_EQ(counts_of(fs).inodes, 10 + 100 + 1 + 40);
	CHECK(counts_of(fs).fds <= 16);
	CHECK(open_fds() - base <= 3 + 16);
	/* Every file, in an order that misses the cache most of the time. */
	for (int f = 0; f < 10; f++) {
		for (int d = 9; d >= 0; d--) {
			snprintf(want, sizeof(want), "file %d.%d", d, f);
			CHECK_EQ(read_node(fs, files[d][f], buf, sizeof(buf)), (ssize_t)strlen(want));
			CHECK(strcmp(buf, want) == 0);
			snprintf(name, sizeof(name), "d%d/f%d", d, f);
			stat(at(name), &hst);
			CHECK_EQ(hostfs_getattr(fs, files[d][f], &st), 0);
			CHECK_EQ(st.st_ino, hst.st_ino);
		}
	}
	CHECK_EQ(hostfs_readlink(fs, link_id, buf, sizeof(buf)), 14);
	/* The bottom of the chain, after the rest pushed all of it out. */
	CHECK_EQ(hostfs_getattr(fs, chain[1], &st), 0);
	for (int d = 0; d < 10; d++)
		CHECK_EQ(hostfs_getattr(fs, files[d][0], &st), 0);
	CHECK_EQ(hostfs_lookup(fs, chain[40], "c", &en), 0);
	CHECK_EQ(read_node(fs, en.id, buf, sizeof(buf)), 4);
	CHECK(strcmp(buf, "deep") == 0);
	CHECK_EQ(hostfs_opendir(fs, chain[20], &en.generation), 0);
	list(fs, en.generation, 0, -1, &l);
	CHECK_EQ(l.n, 3);                        /* ".", ".." and "c" */
	CHECK_EQ(hostfs_releasedir(fs, en.generation), 0);
	CHECK(counts_of(fs).reopened >= 100);
	CHECK(counts_of(fs).fds <= 16);
	CHECK(open_fds() - base <= 3 + 16);
	/* Forgetting a directory the guest still has files of keeps it (they are found through
	 * it); forgetting them too frees all of it. */
	hostfs_forget(fs, dirs[5], 1000);
	for (int d = 0; d < 10; d++)
		CHECK_EQ(hostfs_getattr(fs, files[d][1], &st), 0);
	CHECK_EQ(read_node(fs, files[5][9], buf, sizeof(buf)), 8);
	for (int f = 0; f < 10; f++)
		hostfs_forget(fs, files[5][f], 1);
	CHECK_EQ(counts_of(fs).inodes, 9 + 90 + 1 + 40 + 1);
	/* The chain's directories, forgotten, stay while the file at its bottom is known. */
	for (int i = 40; i >= 1; i--)
		hostfs_forget(fs, chain[i], 1);
	CHECK_EQ(counts_of(fs).inodes, 9 + 90 + 1 + 40 + 1);
	CHECK_EQ(read_node(fs, en.id, buf, sizeof(buf)), 4);
	hostfs_forget(fs, en.id, 1);
	CHECK_EQ(counts_of(fs).inodes, 9 + 90 + 1);
	hostfs_close(fs);
	CHECK_EQ(open_fds(), base);
	scratch_done();
}

/* A node without a descriptor is found again only if its name still leads to its inode: a file
 * moved or replaced on the host behind the guest's back is -ESTALE, never the file now under
 * that name. Moves the guest makes itself are followed. */
static void a_node_found_again_must_be_the_same_inode(void)
{
	uint64_t moved, replaced, kept, renamed, swapped, sub, ids[20];
	struct hostfs_entry en;
	struct hostfs *fs;
	char name[16], buf[32];
	struct stat st;

	scratch();
	put("moved", "moved");
	put("replaced", "replaced");
	put("kept", "kept");
	put("renamed", "renamed");
	put("swapped", "swapped");
	mkdir(at("sub"), 0755);
	put("sub/other", "other");
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "x%d", i);
		put(name, "x");
	}
	fs = share_fds(16);
	if (!fs)
		return;
	moved = lookup(fs, HOSTFS_ROOT_ID, "moved");
	replaced = lookup(fs, HOSTFS_ROOT_ID, "replaced");
	kept = lookup(fs, HOSTFS_ROOT_ID, "kept");
	renamed = lookup(fs, HOSTFS_ROOT_ID, "renamed");
	swapped = lookup(fs, HOSTFS_ROOT_ID, "swapped");
	sub = lookup(fs, HOSTFS_ROOT_ID, "sub");
	CHECK(lookup(fs, sub, "other") != 0);
	/* The guest's own moves, then 20 more nodes: all of the above lose their descriptors. */
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "renamed", sub, "renamed2", 0), 0);
	CHECK_EQ(hostfs_rename(fs, HOSTFS_ROOT_ID, "swapped", sub, "other", RENAME_EXCHANGE), 0);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "x%d", i);
		ids[i] = lookup(fs, HOSTFS_ROOT_ID, name);
	}
	/* Behind the guest's back: one file moved away, one replaced by another under its name. */
	CHECK(rename(at("moved"), at("sub/moved")) == 0);
	put("replaced.new", "an impostor");
	CHECK(rename(at("replaced.new"), at("replaced")) == 0);
	CHECK_EQ(hostfs_getattr(fs, moved, &st), -ESTALE);
	CHECK_EQ(read_node(fs, replaced, buf, sizeof(buf)), -ESTALE);
	CHECK_EQ(hostfs_getattr(fs, replaced, &st), -ESTALE);
	CHECK_EQ(read_node(fs, kept, buf, sizeof(buf)), 4);
	CHECK_EQ(read_node(fs, renamed, buf, sizeof(buf)), 7);
	CHECK(strcmp(buf, "renamed") == 0);
	CHECK_EQ(read_node(fs, swapped, buf, sizeof(buf)), 7);
	CHECK(strcmp(buf, "swapped") == 0);
	/* Looked up again where it is now, the moved file's node works again. */
	CHECK_EQ(hostfs_lookup(fs, sub, "moved", &en), 0);
	CHECK_EQ(en.id, moved);
	CHECK_EQ(hostfs_getattr(fs, moved, &st), 0);
	for (int i = 0; i < 20; i++)
		CHECK_EQ(hostfs_getattr(fs, ids[i], &st), 0);
	CHECK_EQ(hostfs_getattr(fs, moved, &st), 0);
	/* A link made while both ends lack descriptors. */
	CHECK_EQ(hostfs_link(fs, kept, sub, "kept-link", &en), 0);
	CHECK_EQ(en.id, kept);
	CHECK(access(at("sub/kept-link"), F_OK) == 0);
	CHECK(counts_of(fs).fds <= 16);
	hostfs_close(fs);
	scratch_done();
}

TEST_MAIN("hostfs",
	T(open_refuses_what_is_not_a_directory),
	T(open_fits_the_bounds_to_rlimit_nofile),
	T(lookup_and_getattr_match_the_host),
	T(read_moves_bytes_into_the_callers_buffers),
	T(readdir_lists_everything_and_resumes_at_an_offset),
	T(descriptors_are_one_per_node_and_handle),
	T(readdir_in_small_steps_sees_every_entry_once),
	T(names_that_are_not_one_component_are_refused),
	T(a_subdirectory_share_cannot_reach_its_parent),
	T(pseudo_file_systems_are_empty_read_only_directories),
	T(pseudo_mounts_inside_the_share_are_never_served),
	T(device_nodes_fifos_and_sockets_are_never_opened),
	T(the_inode_table_is_bounded),
	T(the_handle_table_is_bounded),
	T(stale_ids_and_handles_are_refused),
	T(a_read_only_share_changes_nothing),
	T(create_write_and_read_back),
	T(setattr_changes_mode_owner_size_and_times),
	T(directories_change_as_asked),
	T(link_works_without_cap_dac_read_search),
	T(access_and_statfs),
	T(extended_attributes_are_read_without_following),
	T(lseek_finds_data_and_holes_and_fallocate_allocates),
	T(a_tree_bigger_than_max_fds_works_in_full),
	T(a_node_found_again_must_be_the_same_inode))
