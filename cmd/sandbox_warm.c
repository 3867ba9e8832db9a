#include "cmd/sandbox_warm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/legacy.h"
#include "sandbox/milestones.h"
#include "snapshot/snapshot.h"
#include "vmm/json.h"
#include "vmm/log.h"
#include "vmm/util.h"
#include "vmm/vm.h"
#include "vmm/vm_snapshot.h"

#define ENTRY_PREFIX "sandbox-"
#define ENTRY_SUFFIX ".snap"

/* ---- the key: a 64-bit FNV-1a hash of what the snapshot depends on ---- */

static void key_add(uint64_t *h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++)
		*h = (*h ^ p[i]) * 1099511628211ULL;
}

static void key_str(uint64_t *h, const char *s)
{
	key_add(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

static void key_u64(uint64_t *h, uint64_t v)
{
	key_add(h, &v, sizeof(v));
}

/* A file by what changes when it is replaced or rewritten: path, size, mtime, inode. */
static int key_file(uint64_t *h, const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	key_str(h, path);
	key_u64(h, (uint64_t)st.st_size);
	key_u64(h, (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec);
	key_u64(h, (uint64_t)st.st_ino);
	key_u64(h, (uint64_t)st.st_dev);
	return 0;
}

static int warm_key(const struct mica_config *c, uint64_t *out)
{
	uint64_t h = 14695981039346656037ULL;
	int err;

	key_str(&h, MICA_VERSION);
	if ((err = key_file(&h, "/proc/self/exe")) || (err = key_file(&h, c->kernel)))
		return err;
	/* The modules, byte for byte (the job is not in the initramfs: it comes on its port). */
	key_u64(&h, c->initrd_size);
	key_u64(&h, snap_crc32c(0, c->initrd_data, c->initrd_size));
	key_str(&h, c->boot.cmdline);
	key_u64(&h, c->vm.mem_size);
	key_u64(&h, (uint64_t)c->vm.ncpus);
	key_u64(&h, (uint64_t)c->transport);
	key_u64(&h, (uint64_t)c->console);
	key_u64(&h, (uint64_t)c->nports);
	for (int i = 0; i < c->nports; i++) {
		key_str(&h, c->ports[i].name);
		key_u64(&h, (c->ports[i].in_fd >= 0) | (c->ports[i].out_fd >= 0) << 1);
	}
	/* The shares by tag and flags, not path: the snapshot is taken before any is mounted,
	 * so each run may share other directories. */
	key_u64(&h, (uint64_t)c->nshares);
	for (int i = 0; i < c->nshares; i++) {
		key_str(&h, c->shares[i].tag);
		key_u64(&h, c->shares[i].ro | c->shares[i].no_xattr << 1);
	}
	*out = h;
	return 0;
}

/* ---- the cache directory ---- */

/* mkdir -p, private to the user. */
static int make_dirs(const char *path)
{
	char p[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(p))
		return -ENAMETOOLONG;
	memcpy(p, path, n + 1);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -errno;
	return access(p, R_OK | W_OK | X_OK) < 0 ? -errno : 0;
}

static int default_dir(char *out, size_t len)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");

	if (xdg && xdg[0] == '/')
		return snprintf(out, len, "%s/mica", xdg) < (int)len ? 0 : -ENAMETOOLONG;
	if (home && home[0] == '/')
		return snprintf(out, len, "%s/.cache/mica", home) < (int)len ? 0 : -ENAMETOOLONG;
	return -ENOENT;
}

/* Keeps the keep most recently used entries (a restore touches its entry). */
static void prune(const char *dir, int keep)
{
	struct { char name[64]; int64_t mtime; } e[64];
	int n = 0;
	struct dirent *d;
	DIR *dp = opendir(dir);

	if (!dp)
		return;
	while ((d = readdir(dp)) && n < (int)(sizeof(e) / sizeof(e[0]))) {
		size_t len = strlen(d->d_name);
		struct stat st;

		if (strncmp(d->d_name, ENTRY_PREFIX, strlen(ENTRY_PREFIX)) || len >= sizeof(e[0].name) ||
		    len < strlen(ENTRY_SUFFIX) ||
		    strcmp(d->d_name + len - strlen(ENTRY_SUFFIX), ENTRY_SUFFIX) ||
		    fstatat(dirfd(dp), d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		memcpy(e[n].name, d->d_name, len + 1);
		e[n++].mtime = st.st_mtim.tv_sec;
	}
	while (n > keep) {
		int oldest = 0;

		for (int i = 1; i < n; i++)
			if (e[i].mtime < e[oldest].mtime)
				oldest = i;
		unlinkat(dirfd(dp), e[oldest].name, 0);
		e[oldest] = e[--n];
	}
	closedir(dp);
}

int sandbox_warm_prepare(const struct sandbox_opts *o, struct mica_config *c,
			 struct sandbox_run *r, struct sandbox_warm *w, struct err *e)
{
	uint64_t key;
	int err;

	memset(w, 0, sizeof(*w));
	w->run = r;
	w->ready.fd = -1;
	w->kernel = c->kernel;
	w->initrd_data = c->initrd_data;
	w->initrd_size = c->initrd_size;
	w->cmdline = c->boot.cmdline;
	w->mode = WARM_COLD;
	if (o->cold) {
		w->why_cold = "--cold";
		return 0;
	}
	if (o->cache_dir) {
		if (snprintf(w->dir, sizeof(w->dir), "%s", o->cache_dir) >= (int)sizeof(w->dir))
			return err_set(e, -ENAMETOOLONG, "--cache %s: path too long", o->cache_dir);
		if ((err = make_dirs(w->dir)))
			return err_set(e, err, "--cache %s: %s; give a directory mica can create and "
				       "write, or --cold", o->cache_dir, strerror(-err));
	} else if (default_dir(w->dir, sizeof(w->dir)) || make_dirs(w->dir)) {
		w->why_cold = "no usable cache directory ($XDG_CACHE_HOME/mica, ~/.cache/mica)";
		pr_info("mica sandbox: %s: booting cold", w->why_cold);
		return 0;
	}
	if ((err = warm_key(c, &key))) {
		w->why_cold = "the kernel or mica's binary cannot be read";
		return 0;
	}
	snprintf(w->path, sizeof(w->path), "%s/" ENTRY_PREFIX "%016llx" ENTRY_SUFFIX, w->dir,
		 (unsigned long long)key);
	if (access(w->path, R_OK) == 0) {
		w->mode = WARM_RESTORE;
		/* Most recently used, for prune(). */
		utimensat(AT_FDCWD, w->path, NULL, 0);
		c->restore_path = w->path;
		c->restore_fallback = true;
		c->kernel = NULL;
		c->initrd_data = NULL;
		c->initrd_size = 0;
		c->boot.cmdline = NULL;
	} else {
		w->mode = WARM_CREATE;
		c->snapshot_dir = w->dir;   /* Landlock and seccomp let the loop write there */
		/* Room for the entry this run saves (here, at setup: the loop's seccomp filter
		 * lets it write its snapshot, not list directories). */
		prune(w->dir, WARM_MAX_ENTRIES - 1);
	}
	return 0;
}

void sandbox_warm_fall_back(struct sandbox_warm *w, struct mica_config *c, const char *why)
{
	pr_warn("mica sandbox: the cached snapshot %s cannot be used (%s): booting, and saving a "
		"new one", w->path, why);
	unlink(w->path);
	w->mode = WARM_CREATE;
	c->snapshot_dir = w->dir;
	c->restore_path = NULL;
	c->restore_fallback = false;
	c->kernel = w->kernel;
	c->initrd_data = w->initrd_data;
	c->initrd_size = w->initrd_size;
	c->boot.cmdline = w->cmdline;
}

/* The READY milestone, on the vCPU's thread: the loop takes it from here (vm_pause waits for
 * this vCPU). */
static void on_milestone(void *opaque, unsigned n)
{
	struct sandbox_warm *w = opaque;
	uint64_t one = 1;

	if (n == SANDBOX_MILESTONE_READY && write(w->ready.fd, &one, sizeof(one)) < 0)
		pr_warn("mica sandbox: cannot signal the snapshot point: %s", strerror(errno));
}

/* On the loop: save the VM as it waits for its job, then give it the job. A snapshot that
 * fails costs only the next run's warm start. */
static void on_ready(struct ev_handler *h, uint32_t events)
{
	struct sandbox_warm *w = container_of(h, struct sandbox_warm, ready);
	struct vm_snapshot_result res;
	struct err e = { "" };
	uint64_t n;

	(void)events;
	if (read(h->fd, &n, sizeof(n)) != sizeof(n))
		return;
	if (vm_snapshot(w->vm, w->path, &res, &e) == 0) {
		w->made = true;
		w->save_ns = res.paused_ns;
		pr_info("mica sandbox: saved %s for warm starts (paused %llu ms)", w->path,
			(unsigned long long)(res.paused_ns / 1000000));
	} else {
		pr_warn("mica sandbox: cannot save a snapshot for warm starts: %s", e.msg);
	}
	if (sandbox_send_job(w->run) < 0)
		vm_request_exit(w->vm, EXIT_CRASH, "vmm-error");
}

int sandbox_warm_start(struct sandbox_warm *w, struct vm *vm, struct milestones *ms)
{
	int err;

	w->vm = vm;
	w->restored = w->mode == WARM_RESTORE;
	if (w->mode != WARM_CREATE)
		return sandbox_send_job(w->run);
	w->ready.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->ready.fd < 0)
		return -errno;
	w->ready.fn = on_ready;
	err = evloop_add(&vm->loop, w->ready.fd, EPOLLIN, &w->ready);
	if (err)
		return err;
	ms->opaque = w;
	ms->reached = on_milestone;
	return 0;
}

void sandbox_warm_json(void *opaque, FILE *f)
{
	const struct sandbox_warm *w = opaque;

	fprintf(f, "  \"warm\": { \"used\": %s, \"made\": %s, \"cache\": ",
		w->restored ? "true" : "false", w->made ? "true" : "false");
	json_cstring(f, w->mode == WARM_COLD ? NULL : w->path);
	fputs(", \"save_seconds\": ", f);
	if (w->made)
		fprintf(f, "%.6f", w->save_ns / 1e9);
	else
		fputs("null", f);
	fputs(", \"why_cold\": ", f);
	json_cstring(f, w->why_cold);
	fputs(" },\n", f);
}

void sandbox_warm_release(struct sandbox_warm *w)
{
	if (w->ready.fd >= 0)
		close(w->ready.fd);
	w->ready.fd = -1;
}
