/* Finding the guest kernel's modules on the host (sandbox/kmod.h). */
#include "sandbox/kmod.h"

#include <asm/bootparam.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/util.h"

#define SETUP_HEADER_OFFSET 0x1f1
#define BZ_MAGIC_OFFSET     0x202 /* "HdrS" */
#define SETUP_MAX           ((255 + 1) * 512) /* setup_sects is one byte */
#define MODULES_DEP_MAX     (64u << 20)
#define NAME_MAX_MOD        64    /* MODULE_NAME_LEN - 8 */
#define DEP_DEPTH_MAX       64

const char *const kmod_sandbox_modules[] = {
	"virtio_pci", "virtio_mmio", "virtio_console", "fuse", "virtiofs", "overlay", NULL,
};

/* ---- the release, from the bzImage's setup header ---- */

static bool release_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_' || c == '+' || c == '~';
}

int kmod_release_from_image(const uint8_t *data, size_t len, char *release, size_t size)
{
	const struct setup_header *h = (const void *)(data + SETUP_HEADER_OFFSET);
	size_t setup_size, at, n = 0;

	if (len < 0x300 || memcmp(data + BZ_MAGIC_OFFSET, "HdrS", 4))
		return -ENOEXEC;
	/* kernel_version points into the setup code, relative to its second sector. */
	setup_size = ((size_t)(h->setup_sects ? h->setup_sects : 4) + 1) * 512;
	at = (size_t)h->kernel_version + 0x200;
	if (!h->kernel_version || setup_size > len)
		setup_size = len;
	if (!h->kernel_version || at >= setup_size)
		return -ENOEXEC;
	/* The first word: the release (`uname -r`), e.g. "6.1.0-57-cloud-amd64". It becomes a
	 * path component, so nothing but the characters a release is made of. */
	while (at + n < setup_size && release_char((char)data[at + n]))
		n++;
	if (!n || n >= size || data[at] == '.' ||
	    (at + n < setup_size && data[at + n] != ' ' && data[at + n] != 0))
		return -ENOEXEC;
	memcpy(release, data + at, n);
	release[n] = 0;
	return 0;
}

int kmod_kernel_release(const char *kernel, char *release, size_t size, struct err *e)
{
	uint8_t *buf = malloc(SETUP_MAX); /* the setup code, where the version string is */
	ssize_t n = -1;
	int fd, err;

	if (!buf)
		return err_set(e, -ENOMEM, "%s: %s", kernel, strerror(ENOMEM));
	fd = open(kernel, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		n = pread(fd, buf, SETUP_MAX, 0);
		err = n < 0 ? -errno : 0;
		close(fd);
	} else {
		err = -errno;
	}
	if (!err && (err = kmod_release_from_image(buf, (size_t)n, release, size)))
		err_set(e, err, "%s: not a bzImage with a version string, so its release is "
			"unknown", kernel);
	else if (err)
		err_set(e, err, "%s: %s", kernel, strerror(-err));
	free(buf);
	return err;
}

/* ---- modules.dep ---- */

struct dep_entry {
	char *path;   /* as modules.dep names it (relative to the tree, usually) */
	char *deps;   /* the rest of its line: paths separated by blanks */
	char name[NAME_MAX_MOD]; /* the module's name: basename without .ko*, '-' as '_' */
	uint8_t state; /* 0 not seen, 1 being resolved, 2 in the set */
};

struct dep_table {
	char *text;
	struct dep_entry *e;
	size_t n;
	char *builtin;   /* modules.builtin, or NULL */
};

/* "kernel/fs/fuse/virtiofs.ko.xz" -> "virtiofs"; false if it is no module file name. */
static bool module_name(const char *path, size_t len, char name[NAME_MAX_MOD])
{
	static const char *const exts[] = { ".ko", ".ko.xz", ".ko.zst", ".ko.gz" };
	const char *base = path;
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (path[i] == '/')
			base = path + i + 1;
	len -= (size_t)(base - path);
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		size_t el = strlen(exts[i]);

		if (len > el && !memcmp(base + len - el, exts[i], el)) {
			n = len - el;
			break;
		}
	}
	if (!n || n >= NAME_MAX_MOD)
		return false;
	for (size_t i = 0; i < n; i++)
		name[i] = base[i] == '-' ? '_' : base[i];
	name[n] = 0;
	return true;
}

static void normalize(const char *in, char name[NAME_MAX_MOD])
{
	size_t i;

	for (i = 0; in[i] && i < NAME_MAX_MOD - 1; i++)
		name[i] = in[i] == '-' ? '_' : in[i];
	name[i] = 0;
}

/* Reads a whole (small) file into a NUL-terminated buffer. */
static int read_text(const char *path, char **out)
{
	size_t len;

	*out = NULL;
	return read_file(path, MODULES_DEP_MAX, (void **)out, &len);
}

/* Splits modules.dep ("path: dep dep ...", one module a line) in place. */
static int parse_dep(struct dep_table *t)
{
	size_t lines = 1;
	char *line, *next;

	for (char *p = t->text; *p; p++)
		lines += *p == '\n';
	t->e = calloc(lines, sizeof(*t->e));
	if (!t->e)
		return -ENOMEM;
	for (line = t->text; line && *line; line = next) {
		struct dep_entry *d = &t->e[t->n];
		char *colon;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		colon = strchr(line, ':');
		if (!colon || !module_name(line, (size_t)(colon - line), d->name))
			continue; /* not a module line: ignored, as modprobe does */
		*colon = 0;
		d->path = line;
		d->deps = colon + 1;
		t->n++;
	}
	return 0;
}

static bool is_builtin(const struct dep_table *t, const char *name)
{
	char n[NAME_MAX_MOD];

	for (const char *l = t->builtin; l && *l;) {
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);

		if (module_name(l, len, n) && !strcmp(n, name))
			return true;
		l = end ? end + 1 : l + len;
	}
	return false;
}

static struct dep_entry *by_name(struct dep_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].name, name))
			return &t->e[i];
	return NULL;
}

static struct dep_entry *by_path(struct dep_table *t, const char *path, size_t len)
{
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->e[i].path) == len && !memcmp(t->e[i].path, path, len))
			return &t->e[i];
	return NULL;
}

static int add_file(struct kmod_set *s, const char *dir, const struct dep_entry *d,
		    struct err *e)
{
	const char *base = strrchr(d->path, '/');
	struct kmod_file *f = &s->files[s->n];
	struct stat st;

	base = base ? base + 1 : d->path;
	if (d->path[0] == '/') {
		f->path = strdup(d->path);
	} else if (asprintf(&f->path, "%s/%s", dir, d->path) < 0) {
		f->path = NULL;
	}
	f->name = strdup(base);
	if (!f->path || !f->name) {
		free(f->path);
		free(f->name);
		return err_set(e, -ENOMEM, "kernel modules: %s", strerror(ENOMEM));
	}
	s->n++;
	if (stat(f->path, &st) < 0 || !S_ISREG(st.st_mode))
		return err_set(e, -ENOENT, "kernel module %s: %s is missing (%s/modules.dep lists "
			       "it): reinstall the kernel's modules or pass --modules DIR", d->name,
			       f->path, dir);
	return 0;
}

/* Adds d after everything it depends on (each module once). */
static int resolve(struct dep_table *t, struct dep_entry *d, const char *dir, int depth,
		   struct kmod_set *s, struct err *e)
{
	const char *p = d->deps;
	int err;

	if (d->state == 2)
		return 0;
	if (d->state == 1 || depth > DEP_DEPTH_MAX)
		return err_set(e, -ELOOP, "kernel module %s: its dependencies in %s/modules.dep "
			       "form a cycle: regenerate it with depmod", d->name, dir);
	d->state = 1;
	while (*p) {
		size_t len;
		struct dep_entry *dep;

		p += strspn(p, " \t\r");
		len = strcspn(p, " \t\r");
		if (!len)
			break;
		dep = by_path(t, p, len);
		if (!dep)
			return err_set(e, -ENOENT, "kernel module %s needs %.*s, which %s/"
				       "modules.dep does not list: regenerate it with depmod",
				       d->name, (int)len, p, dir);
		if ((err = resolve(t, dep, dir, depth + 1, s, e)))
			return err;
		p += len;
	}
	d->state = 2;
	return add_file(s, dir, d, e);
}

int kmod_resolve(const char *dir, const char *const *names, struct kmod_set *out,
		 struct err *e)
{
	struct dep_table t = { 0 };
	char *path = NULL;
	int err;

	if (!names)
		names = kmod_sandbox_modules;
	free(out->dir);
	out->dir = strdup(dir);
	if (!out->dir || asprintf(&path, "%s/modules.dep", dir) < 0) {
		path = NULL;
		err = err_set(e, -ENOMEM, "kernel modules: %s", strerror(ENOMEM));
		goto out;
	}
	err = read_text(path, &t.text);
	if (err) {
		err_set(e, err, "%s: %s: pass --modules DIR with the kernel's modules.dep", path,
			err == -EINVAL ? "not a regular file of a sane size" : strerror(-err));
		goto out;
	}
	free(path);
	path = NULL;
	if (asprintf(&path, "%s/modules.builtin", dir) < 0) {
		path = NULL;
		err = err_set(e, -ENOMEM, "kernel modules: %s", strerror(ENOMEM));
		goto out;
	}
	read_text(path, &t.builtin); /* optional: without it, nothing is built in */
	if ((err = parse_dep(&t))) {
		err_set(e, err, "kernel modules: %s", strerror(-err));
		goto out;
	}
	/* At most every module of the table once. */
	out->files = calloc(t.n ? t.n : 1, sizeof(*out->files));
	if (!out->files) {
		err = err_set(e, -ENOMEM, "kernel modules: %s", strerror(ENOMEM));
		goto out;
	}
	for (size_t i = 0; names[i]; i++) {
		char name[NAME_MAX_MOD];
		struct dep_entry *d;

		normalize(names[i], name);
		d = by_name(&t, name);
		if (!d && is_builtin(&t, name))
			continue;
		if (!d) {
			err = err_set(e, -ENOENT, "kernel module %s: not in %s (neither in its "
				      "modules.dep nor in modules.builtin): use a kernel that has "
				      "it, or pass --modules DIR", names[i], dir);
			goto out;
		}
		if ((err = resolve(&t, d, dir, 0, out, e)))
			goto out;
	}
out:
	free(path);
	free(t.text);
	free(t.builtin);
	free(t.e);
	if (err)
		kmod_set_free(out);
	return err;
}

/* ---- where the tree is ---- */

static bool has_dep(const char *dir)
{
	char path[PATH_MAX];

	return snprintf(path, sizeof(path), "%s/modules.dep", dir) < (int)sizeof(path) &&
	       !access(path, R_OK);
}

/* dirname(kernel)/pkg/ * /lib/modules/RELEASE: the first that has a modules.dep. */
static bool find_in_pkg(const char *kernel, const char *release, char *dir, size_t size,
			char *pattern, size_t psize)
{
	const char *slash = strrchr(kernel, '/');
	int base = slash ? (int)(slash - kernel) : 1;
	bool found = false;
	glob_t g;

	snprintf(pattern, psize, "%.*s/pkg/*/lib/modules/%s", base, slash ? kernel : ".",
		 release);
	if (glob(pattern, 0, NULL, &g))
		return false;
	for (size_t i = 0; !found && i < g.gl_pathc; i++)
		if (has_dep(g.gl_pathv[i]) && strlen(g.gl_pathv[i]) < size) {
			strcpy(dir, g.gl_pathv[i]);
			found = true;
		}
	globfree(&g);
	return found;
}

int kmod_find(const char *kernel, const char *modules_dir, const char *const *names,
	      struct kmod_set *out, struct err *e)
{
	char dir[PATH_MAX], host[PATH_MAX], pattern[PATH_MAX];
	struct err why = { "" };
	int err;

	memset(out, 0, sizeof(*out));
	err = kmod_kernel_release(kernel, out->release, sizeof(out->release), &why);
	if (modules_dir && has_dep(modules_dir)) {
		snprintf(dir, sizeof(dir), "%s", modules_dir);
	} else if (err) {
		return err_set(e, err, "%s: pass --modules DIR, a directory with the kernel's "
			       "modules.dep", why.msg);
	} else if (modules_dir) {
		snprintf(dir, sizeof(dir), "%s/%s", modules_dir, out->release);
		if (!has_dep(dir))
			return err_set(e, -ENOENT, "--modules %s: neither %s/modules.dep nor "
				       "%s/modules.dep exists: give the kernel's /lib/modules/%s",
				       modules_dir, modules_dir, dir, out->release);
	} else {
		snprintf(host, sizeof(host), "/lib/modules/%s", out->release);
		if (has_dep(host))
			snprintf(dir, sizeof(dir), "%s", host);
		else if (!find_in_pkg(kernel, out->release, dir, sizeof(dir), pattern,
				      sizeof(pattern)))
			return err_set(e, -ENOENT, "no kernel modules for %s (release %s): looked "
				       "in %s and %s: pass --modules DIR", kernel, out->release,
				       host, pattern);
	}
	return kmod_resolve(dir, names, out, e);
}

void kmod_set_free(struct kmod_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->files[i].name);
		free(s->files[i].path);
	}
	free(s->files);
	free(s->dir);
	s->files = NULL;
	s->dir = NULL;
	s->n = 0;
}
