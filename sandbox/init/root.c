/* The new root: the host's / (virtio-fs, read-only) under a tmpfs overlay, the writable shares
 * at their host paths, and the kernel's own file systems, then switched to as switch_root does
 * (an initramfs cannot be pivot_root'ed away: its contents stay, unreachable).
 *
 * Through virtio-fs the host's /proc, /sys and /dev are empty directories (hostfs never serves
 * pseudo file systems), so the guest's own go there: the initramfs's /proc, /sys and devtmpfs
 * /dev are moved over, with devpts at /dev/pts and fresh tmpfs at /dev/shm and /run (the
 * host's /run is sockets and PID files of the host's daemons, useless in here).
 *
 * /tmp is NOT a fresh tmpfs (virtme-ng makes one): it is the host's /tmp through the overlay,
 * writable and thrown away like every other directory. A caller working in a directory under
 * /tmp (mktemp -d, a build tree) finds it there, where a fresh /tmp would fail the chdir.
 *
 * The shares are mounted after all that, shallowest first, so --rw /tmp/x or --rw /a plus
 * --rw /a/b each stay visible; a share's directory is created in the overlay if it is missing
 * there (under /run, for one). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/init/init.h"

#define LOWER   "/mnt/lower"
#define RW      "/mnt/rw"
#define NEWROOT "/newroot"

static void mnt(const char *src, const char *dst, const char *type, unsigned long flags,
		const char *data)
{
	note("mounting %s (%s) on %s", src, type, dst);
	if (mount(src, dst, type, flags, data) < 0)
		die(errno, "mounting %s (%s) on %s", src, type, dst);
}

static void dir(const char *path, unsigned mode)
{
	int err = mkdir_p(path, mode);

	if (err)
		die(-err, "creating %s", path);
}

/* Move a mount of the initramfs into the new root. */
static void move(const char *from, const char *to)
{
	dir(to, 0755);
	note("moving %s to %s", from, to);
	if (mount(from, to, NULL, MS_MOVE, NULL) < 0)
		die(errno, "moving %s to %s", from, to);
}

static int depth(const char *path)
{
	int n = 0;

	for (; *path; path++)
		n += *path == '/';
	return n;
}

static int by_depth(const void *a, const void *b)
{
	const struct job_share *x = a, *y = b;

	return depth(x->path) - depth(y->path);
}

/* $XDG_RUNTIME_DIR, when the caller had one under /run: it is gone with the host's /run, and
 * programs refuse to run without it. Created as the host does, the caller's and mode 0700. */
static void runtime_dir(const struct sandbox_job *j)
{
	char path[4096];

	for (uint32_t i = 0; i < j->envc; i++) {
		const char *v = j->envp[i];

		if (strncmp(v, "XDG_RUNTIME_DIR=/run/", 21) || strstr(v, ".."))
			continue;
		snprintf(path, sizeof(path), NEWROOT "%s", v + 16);
		if (!mkdir_p(path, 0755) && (chown(path, j->uid, j->gid) < 0 || chmod(path, 0700) < 0))
			note("setting up %s: %s", path, strerror(errno));
	}
}

void root_setup(const struct sandbox_job *j)
{
	struct job_share *rw = NULL;
	char path[4096];

	mnt(j->root_tag, LOWER, "virtiofs", MS_RDONLY, NULL);
	mnt("tmpfs", RW, "tmpfs", 0, "mode=0755");
	dir(RW "/upper", 0755);
	dir(RW "/work", 0755);
	mnt("overlay", NEWROOT, "overlay", 0,
	    "lowerdir=" LOWER ",upperdir=" RW "/upper,workdir=" RW "/work");

	move("/dev", NEWROOT "/dev");
	move("/proc", NEWROOT "/proc");
	move("/sys", NEWROOT "/sys");
	dir(NEWROOT "/dev/pts", 0755);
	mnt("devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	    "ptmxmode=0666,mode=0620,gid=5");
	dir(NEWROOT "/dev/shm", 01777);
	mnt("tmpfs", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	dir(NEWROOT "/run", 0755);
	mnt("tmpfs", NEWROOT "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	runtime_dir(j);

	if (j->nrw) {
		rw = malloc(j->nrw * sizeof(*rw));
		if (!rw)
			die(ENOMEM, "mounting the shares");
		memcpy(rw, j->rw, j->nrw * sizeof(*rw));
		qsort(rw, j->nrw, sizeof(*rw), by_depth);
	}
	for (uint32_t i = 0; i < j->nrw; i++) {
		if (snprintf(path, sizeof(path), NEWROOT "%s", rw[i].path) >= (int)sizeof(path))
			die(ENAMETOOLONG, "mounting %s", rw[i].path);
		dir(path, 0755);
		mnt(rw[i].tag, path, "virtiofs", 0, NULL);
	}
	free(rw);

	note("switching to the new root");
	if (chdir(NEWROOT) < 0)
		die(errno, "entering " NEWROOT);
	if (mount(NEWROOT, "/", NULL, MS_MOVE, NULL) < 0)
		die(errno, "moving " NEWROOT " to /");
	if (chroot(".") < 0 || chdir("/") < 0)
		die(errno, "entering the new root");
}
