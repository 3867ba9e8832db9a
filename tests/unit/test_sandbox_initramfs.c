/* The in-memory initramfs (sandbox/initramfs.h): archives checked by a newc parser here (names,
 * modes, sizes, contents, 4-byte alignment, the trailer at the very end) and, where the host
 * has it, by cpio itself (`cpio -itv`, `cpio -i --to-stdout`).
 *
 * Also a helper for the init's boot test under QEMU (tests/integration/sandbox_qemu.sh):
 *     test_sandbox_initramfs --write OUT KERNEL [-v] [--port] [--rw TAG=PATH]... [--] [CMD...]
 * writes the initramfs `mica sandbox` would build (OUT) and the job it would send on the port
 * mica.job (OUT.job) for CMD (the caller's cwd, ids, umask and environment; streams on
 * /dev/hvc0 as a terminal, or on the named ports with --port). */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/initramfs.h"
#include "sandbox/job.h"
#include "tests/unit/test.h"

int test_failed_checks;
const char *test_skipped;

/* ---- a strict newc reader ---- */

struct entry {
	char name[256];
	uint32_t ino, mode, nlink, size, rmajor, rminor;
	const uint8_t *data;
};

static int hex8(const uint8_t *p, uint32_t *v)
{
	*v = 0;
	for (int i = 0; i < 8; i++) {
		int c = p[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (d < 0)
			return -1;
		*v = *v << 4 | (uint32_t)d;
	}
	return 0;
}

static int zeros(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Returns the number of entries before the trailer, or -1 (with a diagnostic) if the archive
 * breaks a rule: bad magic or digits, an unterminated name, non-zero padding, no trailer, or
 * bytes after it. */
static int parse(const uint8_t *a, size_t len, struct entry *out, int max)
{
	size_t off = 0;
	int n = 0;

	while (off + 110 <= len && n < max) {
		uint32_t f[13];
		struct entry *e = &out[n];
		size_t name_end, data_end;

		if (off % 4 || memcmp(a + off, "070701", 6)) {
			printf("#   bad magic or alignment at %zu\n", off);
			return -1;
		}
		for (int i = 0; i < 13; i++)
			if (hex8(a + off + 6 + 8 * i, &f[i])) {
				printf("#   bad field %d at %zu\n", i, off);
				return -1;
			}
		e->ino = f[0], e->mode = f[1], e->nlink = f[4], e->size = f[6];
		e->rmajor = f[9], e->rminor = f[10];
		if (f[2] || f[3] || f[5] || f[12] || !f[11] || f[11] > sizeof(e->name)) {
			printf("#   uid/gid/mtime/check not 0, or a bad name size at %zu\n", off);
			return -1;
		}
		name_end = off + 110 + f[11];
		if (name_end > len || a[name_end - 1] || memchr(a + off + 110, 0, f[11] - 1)) {
			printf("#   bad name at %zu\n", off);
			return -1;
		}
		memcpy(e->name, a + off + 110, f[11]);
		off = (name_end + 3) & ~(size_t)3;
		if (off > len || !zeros(a + name_end, off - name_end)) {
			printf("#   bad name padding at %zu\n", name_end);
			return -1;
		}
		if (!strcmp(e->name, "TRAILER!!!"))
			return off == len ? n : (printf("#   %zu bytes after the trailer\n", len - off), -1);
		data_end = off + e->size;
		e->data = a + off;
		off = (data_end + 3) & ~(size_t)3;
		if (off > len || !zeros(a + data_end, off - data_end)) {
			printf("#   bad data padding for %s\n", e->name);
			return -1;
		}
		n++;
	}
	printf("#   no trailer\n");
	return -1;
}

static const struct entry *find(const struct entry *e, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(e[i].name, name))
			return &e[i];
	return NULL;
}

static int index_of(const struct entry *e, int n, const char *name)
{
	const struct entry *x = find(e, n, name);

	return x ? (int)(x - e) : -1;
}

/* ---- temp files ---- */

static char tmpdir[64];

static int rm_one(const char *p, const struct stat *s, int flag, struct FTW *f)
{
	(void)s, (void)flag, (void)f;
	return remove(p);
}

static void tmp_make(void)
{
	strcpy(tmpdir, "/tmp/mica-test-initramfs.XXXXXX");
	if (!mkdtemp(tmpdir))
		abort();
}

static void tmp_remove(void)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");

	if (!f || fwrite(data, 1, len, f) != len || fclose(f))
		abort();
}

/* ---- the generic writer ---- */

static void small_archive(struct initramfs *a)
{
	initramfs_init(a);
	initramfs_add_dir(a, "/a", 0755);
	initramfs_add_file(a, "/a/hello", 0644, "hello", 5);
	initramfs_add_file(a, "/a/empty", 0600, "", 0);
	initramfs_add_file(a, "/a/three", 0755, "abc", 3);
	initramfs_add_chardev(a, "/console", 0600, 5, 1);
	initramfs_add_dir(a, "/a/sub", 0700);
	initramfs_add_file(a, "/a/sub/four-byte-name-pad", 0644, "12345678", 8);
}

static void writer_layout(void)
{
	struct entry e[16];
	struct initramfs a;
	const struct entry *x;
	int n;

	small_archive(&a);
	CHECK_EQ(initramfs_finish(&a), 0);
	CHECK_EQ(a.len % 4, 0);
	n = parse(a.data, a.len, e, 16);
	CHECK_EQ(n, 7);
	if (n != 7) {
		initramfs_free(&a);
		return;
	}
	CHECK(!strcmp(e[0].name, "a") && e[0].mode == (S_IFDIR | 0755) && e[0].nlink == 2);
	x = find(e, n, "a/hello");
	CHECK(x && x->mode == (S_IFREG | 0644) && x->size == 5 && !memcmp(x->data, "hello", 5));
	x = find(e, n, "a/empty");
	CHECK(x && x->mode == (S_IFREG | 0600) && x->size == 0);
	x = find(e, n, "a/three");
	CHECK(x && x->mode == (S_IFREG | 0755) && x->size == 3 && !memcmp(x->data, "abc", 3));
	x = find(e, n, "console");
	CHECK(x && x->mode == (S_IFCHR | 0600) && x->rmajor == 5 && x->rminor == 1 && !x->size);
	x = find(e, n, "a/sub/four-byte-name-pad");
	CHECK(x && x->size == 8 && !memcmp(x->data, "12345678", 8));
	/* Distinct inode numbers: the kernel links entries sharing one (nlink > 1) together. */
	for (int i = 0; i < n; i++)
		for (int k = i + 1; k < n; k++)
			CHECK(e[i].ino != e[k].ino);
	initramfs_free(&a);
	CHECK(a.data == NULL && a.len == 0);
}

static bool have_cpio(void)
{
	return !system("cpio --version >/dev/null 2>&1");
}

/* The host's cpio reads the same archive the same way. */
static void writer_cpio_agrees(void)
{
	static const char *const want[][3] = { /* mode, size, name */
		{ "drwxr-xr-x", "0", "a" },       { "-rw-r--r--", "5", "a/hello" },
		{ "-rw-------", "0", "a/empty" }, { "-rwxr-xr-x", "3", "a/three" },
		{ "crw-------", NULL, "console" }, { "drwx------", "0", "a/sub" },
		{ "-rw-r--r--", "8", "a/sub/four-byte-name-pad" },
	};
	char path[128], cmd[512], line[512];
	struct initramfs a;
	FILE *p;
	int n = 0;

	if (!have_cpio())
		TEST_SKIP("no cpio on this host (apt-get install cpio); the parser above checked it");
	tmp_make();
	small_archive(&a);
	initramfs_finish(&a);
	snprintf(path, sizeof(path), "%s/a.cpio", tmpdir);
	write_file(path, a.data, a.len);
	initramfs_free(&a);

	snprintf(cmd, sizeof(cmd), "cpio -itv --quiet <%s 2>&1", path);
	p = popen(cmd, "r");
	while (p && fgets(line, sizeof(line), p)) {
		char mode[16], user[32], group[32], size[16], name[256];
		unsigned nlink;

		line[strcspn(line, "\n")] = 0;
		/* "drwxr-xr-x   2 root     root            0 Jan  1  1970 a" */
		if (sscanf(line, "%15s %u %31s %31s %15s", mode, &nlink, user, group, size) != 5 ||
		    !strrchr(line, ' ') || n >= 7) {
			printf("#   cpio said: %s\n", line);
			CHECK(0);
			continue;
		}
		strcpy(name, strrchr(line, ' ') + 1);
		CHECK(!strcmp(mode, want[n][0]));
		CHECK(!strcmp(user, "root") && !strcmp(group, "root"));
		if (want[n][1])
			CHECK(!strcmp(size, want[n][1]));
		else
			CHECK(!strcmp(size, "5,")); /* a device: "major, minor" */
		if (strcmp(name, want[n][2]))
			printf("#   entry %d: cpio says %s, want %s\n", n, name, want[n][2]);
		CHECK(!strcmp(name, want[n][2]));
		n++;
	}
	CHECK(p && pclose(p) == 0);
	CHECK_EQ(n, 7);

	snprintf(cmd, sizeof(cmd), "cpio -i --quiet --to-stdout a/sub/four-byte-name-pad <%s", path);
	p = popen(cmd, "r");
	CHECK(p && fgets(line, sizeof(line), p) && !strcmp(line, "12345678"));
	CHECK(p && pclose(p) == 0);
	tmp_remove();
}

static void writer_errors(void)
{
	struct err e = { "" };
	struct initramfs a;
	char path[128];

	initramfs_init(&a);
	CHECK_EQ(initramfs_add_dir(&a, "relative", 0755), -EINVAL);
	/* Sticky: everything after a failure fails the same. */
	CHECK_EQ(initramfs_add_dir(&a, "/fine", 0755), -EINVAL);
	CHECK_EQ(initramfs_finish(&a), -EINVAL);
	initramfs_free(&a);

	initramfs_init(&a);
	CHECK_EQ(initramfs_add_dir(&a, "/", 0755), -EINVAL);
	initramfs_free(&a);

	initramfs_init(&a);
	CHECK_EQ(initramfs_add_host_file(&a, "/x", 0644, "/nonexistent/mica-test", &e), -ENOENT);
	CHECK(strstr(e.msg, "/nonexistent/mica-test") && strstr(e.msg, "No such file"));
	initramfs_free(&a);

	tmp_make();
	initramfs_init(&a);
	CHECK_EQ(initramfs_add_host_file(&a, "/x", 0644, tmpdir, &e), -EINVAL);
	CHECK(strstr(e.msg, "not a regular file"));
	snprintf(path, sizeof(path), "%s/f", tmpdir);
	write_file(path, "host bytes", 10);
	CHECK_EQ(initramfs_add_host_file(&a, "/x", 0644, path, &e), 0);
	CHECK_EQ(initramfs_finish(&a), 0);
	{
		struct entry en[2];

		CHECK_EQ(parse(a.data, a.len, en, 2), 1);
		CHECK(en[0].size == 10 && !memcmp(en[0].data, "host bytes", 10));
	}
	initramfs_free(&a);
	tmp_remove();
}

/* A big file grows the buffer past its first chunk: contents intact. */
static void writer_grows(void)
{
	size_t big = 300 * 1024 + 1;
	uint8_t *data = malloc(big);
	struct entry e[4];
	struct initramfs a;

	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 7);
	initramfs_init(&a);
	initramfs_add_file(&a, "/small", 0644, "x", 1);
	initramfs_add_file(&a, "/big", 0644, data, big);
	CHECK_EQ(initramfs_finish(&a), 0);
	CHECK_EQ(parse(a.data, a.len, e, 4), 2);
	CHECK(e[1].size == big && !memcmp(e[1].data, data, big));
	initramfs_free(&a);
	free(data);
}

/* ---- the sandbox's archive ---- */

static void sandbox_archive(void)
{
	struct kmod_file files[2] = { { "dep.ko", NULL }, { "top.ko.xz", NULL } };
	struct kmod_set mods = { .files = files, .n = 2 };
	char p0[128], p1[128];
	struct err e = { "" };
	struct entry en[32];
	struct initramfs a;
	const struct entry *x;
	int n;

	tmp_make();
	snprintf(p0, sizeof(p0), "%s/dep.ko", tmpdir);
	snprintf(p1, sizeof(p1), "%s/top.ko.xz", tmpdir);
	write_file(p0, "DEP", 3);
	write_file(p1, "TOPMODULE", 9);
	files[0].path = p0;
	files[1].path = p1;

	CHECK_EQ(initramfs_build_sandbox(&mods, &a, &e), 0);
	n = parse(a.data, a.len, en, 32);
	CHECK(n > 0);
	if (n <= 0)
		goto out;
	/* A directory before anything in it. */
	for (int i = 0; i < n; i++) {
		char dir[256], *slash;

		strcpy(dir, en[i].name);
		slash = strrchr(dir, '/');
		if (!slash)
			continue;
		*slash = 0;
		CHECK(index_of(en, n, dir) >= 0 && index_of(en, n, dir) < i);
	}
	for (const char *const *d = (const char *const[]){ "dev", "proc", "sys", "mnt/lower",
			"mnt/rw", "newroot", NULL }; *d; d++) {
		x = find(en, n, *d);
		CHECK(x && S_ISDIR(x->mode));
	}
	x = find(en, n, "init");
	CHECK(x && x->mode == (S_IFREG | 0755));
	CHECK(x && x->size == (size_t)(mica_init_end - mica_init_start) && x->size > 4096 &&
	      !memcmp(x->data, "\x7f" "ELF", 4) && !memcmp(x->data, mica_init_start, x->size));
	x = find(en, n, "dev/console");
	CHECK(x && S_ISCHR(x->mode) && x->rmajor == 5 && x->rminor == 1);
	/* Nothing of a job: it reaches the init on its port (a warm sandbox's snapshot of this
	 * archive serves every job). Exactly these entries, nothing else. */
	CHECK(!find(en, n, "mica/job"));
	CHECK_EQ(n, 15); /* 10 directories, dev/console, init, mica/modules, 2 modules */
	x = find(en, n, "mica/modules");
	CHECK(x && x->size == strlen("dep.ko\ntop.ko.xz\n") &&
	      !memcmp(x->data, "dep.ko\ntop.ko.xz\n", x->size));
	x = find(en, n, "lib/modules/dep.ko");
	CHECK(x && x->size == 3 && !memcmp(x->data, "DEP", 3));
	x = find(en, n, "lib/modules/top.ko.xz");
	CHECK(x && x->size == 9 && !memcmp(x->data, "TOPMODULE", 9));
	initramfs_free(&a);

	/* A module that went missing: the error names it, the archive is gone. */
	files[1].path = "/nonexistent/top.ko.xz";
	CHECK_EQ(initramfs_build_sandbox(&mods, &a, &e), -ENOENT);
	CHECK(strstr(e.msg, "top.ko.xz") && strstr(e.msg, "/nonexistent/top.ko.xz"));
	CHECK(a.data == NULL && a.len == 0);
out:
	tmp_remove();
}

/* ---- --write: the boot test's initramfs ---- */

extern char **environ;

static int write_mode(int argc, char **argv)
{
	const char *out = argv[2], *kernel = argv[3];
	struct job_share rw[JOB_MAX_SHARES];
	struct sandbox_job j = { 0 };
	gid_t groups[256];
	char cwd[4096];
	struct kmod_set mods;
	struct initramfs a;
	struct err e = { "" };
	char job_path[4096];
	size_t jlen;
	uint8_t *jb;
	int i = 4, ng;
	mode_t um;

	uint8_t mode = JOB_STDIO_TTY;
	char *eq;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-v")) {
			j.flags |= JOB_VERBOSE;
		} else if (!strcmp(argv[i], "--port")) {
			mode = JOB_STDIO_PORT;
		} else if (!strcmp(argv[i], "--rw") && i + 1 < argc &&
			   (eq = strchr(argv[i + 1], '=')) && j.nrw < JOB_MAX_SHARES) {
			*eq = 0;
			rw[j.nrw].tag = argv[++i];
			rw[j.nrw++].path = eq + 1;
		} else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return 2;
		}
	}
	j.stdio[0] = j.stdio[1] = j.stdio[2] = mode;
	j.argv = argv + i;
	j.argc = (uint32_t)(argc - i);
	for (j.envc = 0; environ[j.envc]; j.envc++)
		;
	j.envp = environ;
	j.cwd = getcwd(cwd, sizeof(cwd));
	j.uid = getuid();
	j.gid = getgid();
	ng = getgroups(256, groups);
	j.groups = (uint32_t *)groups;
	j.ngroups = ng > 0 ? (uint32_t)ng : 0;
	um = umask(0);
	umask(um);
	j.umask = um;
	j.rows = 24;
	j.cols = 80;
	j.root_tag = SANDBOX_ROOT_TAG;
	j.hostname = "mica-sandbox";
	j.rw = rw;

	if (job_encode(&j, &jb, &jlen)) {
		fprintf(stderr, "mica: the job cannot be encoded\n");
		return 1;
	}
	if (kmod_find(kernel, NULL, NULL, &mods, &e) || initramfs_build_sandbox(&mods, &a, &e)) {
		fprintf(stderr, "mica: %s\n", e.msg);
		return 1;
	}
	write_file(out, a.data, a.len);
	snprintf(job_path, sizeof(job_path), "%s.job", out);
	write_file(job_path, jb, jlen);
	free(jb);
	printf("%s: %zu bytes, %zu modules from %s\n", out, a.len, mods.n, mods.dir);
	kmod_set_free(&mods);
	initramfs_free(&a);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct test_case t[] = {
		T(writer_layout), T(writer_cpio_agrees), T(writer_errors), T(writer_grows),
		T(sandbox_archive),
	};

	if (argc >= 4 && !strcmp(argv[1], "--write"))
		return write_mode(argc, argv);
	return run_tests("sandbox-initramfs", t, (int)(sizeof(t) / sizeof(t[0])));
}
