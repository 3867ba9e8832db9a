/* The newc cpio writer, in memory (sandbox/initramfs.h). */
#include "sandbox/initramfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NEWC_MAGIC  "070701"
#define NEWC_HEADER 110 /* the magic and 13 fields of 8 hex digits */
#define FIRST_CHUNK (64 * 1024)

static size_t pad4(size_t n)
{
	return (4 - (n & 3)) & 3;
}

void initramfs_init(struct initramfs *a)
{
	memset(a, 0, sizeof(*a));
	a->next_ino = 1;
}

void initramfs_free(struct initramfs *a)
{
	free(a->data);
	initramfs_init(a);
}

/* Makes room for n more bytes; on failure the archive keeps -ENOMEM. */
static int reserve(struct initramfs *a, size_t n)
{
	size_t want, cap;
	uint8_t *p;

	if (a->err)
		return a->err;
	if (n > SIZE_MAX / 2 - a->len)
		return a->err = -ENOMEM;
	want = a->len + n;
	if (want <= a->cap)
		return 0;
	cap = a->cap ? a->cap : FIRST_CHUNK;
	while (cap < want)
		cap *= 2;
	p = realloc(a->data, cap);
	if (!p)
		return a->err = -ENOMEM;
	a->data = p;
	a->cap = cap;
	return 0;
}

static void put(struct initramfs *a, const void *p, size_t n)
{
	memcpy(a->data + a->len, p, n);
	a->len += n;
}

static void put_zeros(struct initramfs *a, size_t n)
{
	memset(a->data + a->len, 0, n);
	a->len += n;
}

/* Appends a header and its name (padded), and reserves room for size bytes of data and their
 * padding, which the caller then writes. name: without the leading '/'. mode 0: the trailer
 * (inode 0); every other entry gets the next inode number (the kernel hard-links entries that
 * share one and have nlink > 1). */
static int header(struct initramfs *a, const char *name, uint32_t mode, uint32_t nlink,
		  size_t size, unsigned rmajor, unsigned rminor)
{
	size_t namesize = strlen(name) + 1;
	char h[NEWC_HEADER + 1];

	if (a->err)
		return a->err;
	if (namesize > PATH_MAX || size > UINT32_MAX)
		return a->err = -EINVAL;
	if (reserve(a, NEWC_HEADER + namesize + 3 + size + 3))
		return a->err;
	snprintf(h, sizeof(h), NEWC_MAGIC "%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 mode ? a->next_ino++ : 0, mode, 0u, 0u, nlink, 0u,
		 (unsigned)size, 0u, 0u, rmajor, rminor, (unsigned)namesize, 0u);
	put(a, h, NEWC_HEADER);
	put(a, name, namesize);
	put_zeros(a, pad4(NEWC_HEADER + namesize));
	return 0;
}

/* "/a/b" -> "a/b"; NULL for a path that is not absolute or names the root. */
static const char *entry_name(const char *path)
{
	if (!path || path[0] != '/' || !path[1])
		return NULL;
	return path + 1;
}

static int bad_path(struct initramfs *a)
{
	if (!a->err)
		a->err = -EINVAL;
	return a->err;
}

int initramfs_add_dir(struct initramfs *a, const char *path, mode_t mode)
{
	const char *name = entry_name(path);

	if (!name)
		return bad_path(a);
	return header(a, name, S_IFDIR | (mode & 07777), 2, 0, 0, 0);
}

int initramfs_add_chardev(struct initramfs *a, const char *path, mode_t mode, unsigned major,
			  unsigned minor)
{
	const char *name = entry_name(path);

	if (!name)
		return bad_path(a);
	return header(a, name, S_IFCHR | (mode & 07777), 1, 0, major, minor);
}

int initramfs_add_file(struct initramfs *a, const char *path, mode_t mode, const void *data,
		       size_t len)
{
	const char *name = entry_name(path);

	if (!name)
		return bad_path(a);
	if (header(a, name, S_IFREG | (mode & 07777), 1, len, 0, 0))
		return a->err;
	if (len)
		put(a, data, len);
	put_zeros(a, pad4(len));
	return 0;
}

int initramfs_add_host_file(struct initramfs *a, const char *path, mode_t mode,
			    const char *host_path, struct err *e)
{
	const char *name = entry_name(path);
	struct stat st;
	size_t size, got = 0;
	int fd, err = 0;

	if (!name)
		return err_set(e, bad_path(a), "%s: not an absolute path in the initramfs", path);
	if (a->err)
		return err_set(e, a->err, "the initramfs: %s", strerror(-a->err));
	fd = open(host_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return err_set(e, -errno, "%s: %s", host_path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		err = err_set(e, -errno, "%s: %s", host_path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > UINT32_MAX) {
		err = err_set(e, -EINVAL, "%s: %s", host_path, S_ISREG(st.st_mode) ?
			      "larger than an initramfs entry can be (4 GiB)" : "not a regular file");
		goto out;
	}
	size = (size_t)st.st_size;
	if (header(a, name, S_IFREG | (mode & 07777), 1, size, 0, 0)) {
		err = err_set(e, a->err, "the initramfs: %s", strerror(-a->err));
		goto out;
	}
	/* Straight into the archive (header() reserved the room). A file that changes size
	 * under us is an error, not a short or overlong entry. */
	while (got < size) {
		ssize_t n = read(fd, a->data + a->len + got, size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = err_set(e, n < 0 ? -errno : -EIO, "%s: %s", host_path,
				      n < 0 ? strerror(errno) : "shorter than it was a moment ago");
			a->err = err;
			goto out;
		}
		got += (size_t)n;
	}
	a->len += size;
	put_zeros(a, pad4(size));
out:
	close(fd);
	return err;
}

int initramfs_finish(struct initramfs *a)
{
	return header(a, "TRAILER!!!", 0, 1, 0, 0, 0);
}

/* /mica/modules: the file names, one a line, in load order. */
static char *module_list(const struct kmod_set *mods, size_t *len)
{
	size_t n = 0;
	char *s, *p;

	for (size_t i = 0; i < mods->n; i++)
		n += strlen(mods->files[i].name) + 1;
	p = s = malloc(n + 1);
	if (!s)
		return NULL;
	for (size_t i = 0; i < mods->n; i++)
		p += sprintf(p, "%s\n", mods->files[i].name);
	*len = n;
	return s;
}

int initramfs_build_sandbox(const struct kmod_set *mods, struct initramfs *out, struct err *e)
{
	static const char *const dirs[] = { "/dev", "/proc", "/sys", "/mnt", "/mnt/lower",
					    "/mnt/rw", "/newroot", "/mica", "/lib", "/lib/modules" };
	char path[PATH_MAX], *list;
	size_t llen = 0;
	int err;

	initramfs_init(out);
	list = module_list(mods, &llen);
	if (!list)
		return err_set(e, -ENOMEM, "the initramfs: %s", strerror(ENOMEM));
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		initramfs_add_dir(out, dirs[i], 0755);
	initramfs_add_chardev(out, "/dev/console", 0600, 5, 1);
	initramfs_add_file(out, "/init", 0755, mica_init_start,
			   (size_t)(mica_init_end - mica_init_start));
	initramfs_add_file(out, "/mica/modules", 0644, list, llen);
	free(list);
	err = out->err;
	if (err)
		err_set(e, err, "the initramfs: %s", strerror(-err));
	for (size_t i = 0; !err && i < mods->n; i++) {
		snprintf(path, sizeof(path), "/lib/modules/%s", mods->files[i].name);
		err = initramfs_add_host_file(out, path, 0644, mods->files[i].path, e);
		if (err)
			err_prefix(e, err, "kernel module %s", mods->files[i].name);
	}
	if (!err && (err = initramfs_finish(out)))
		err_set(e, err, "the initramfs: %s", strerror(-err));
	if (err)
		initramfs_free(out);
	return err;
}
