/* An initramfs built in memory: an uncompressed "newc" cpio archive (the kernel unpacks it
 * without a decompressor), in one malloc'd buffer that goes to the guest as its initrd. No
 * temporary file is written anywhere.
 *
 * The generic writer (initramfs_add_*) appends entries in the order given; the kernel's
 * unpacker does not create parent directories, so add a directory before what it holds. Every
 * entry is owned by root, with mtime 0 (the archive of the same inputs is the same bytes).
 * Names are given as absolute paths ("/mica/modules") and stored without the leading '/'.
 *
 * initramfs_build_sandbox() lays out the whole archive of `mica sandbox`, the same for every job
 * (the job reaches the init on a port: sandbox/job.h):
 *     /init                 the embedded init (build/sandbox/mica-init, sandbox/init/)
 *     /mica/modules         the modules' file names, one a line, in load order
 *     /lib/modules/NAME.ko  each module (or .ko.xz/.ko.zst/.ko.gz, sandbox/kmod.h)
 *     /dev/console          the kernel opens it as the init's stdin, stdout and stderr
 *     /dev /proc /sys /mnt/lower /mnt/rw /newroot   the init's mount points */
#ifndef MICA_SANDBOX_INITRAMFS_H
#define MICA_SANDBOX_INITRAMFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/kmod.h"
#include "vmm/err.h"

/* The kernel command line the init expects: the console on the serial port (where the init's
 * own errors go before the streams are open: show it on failure), no kernel chatter, the init
 * from the initramfs, and an immediate reset on a panic (which `mica run` reports as status 0:
 * `mica sandbox` must read a reset as a failure, since the init always ends through 0x501). */
#define SANDBOX_KERNEL_CMDLINE "console=ttyS0 panic=-1 rdinit=/init"
/* Added unless the kernel's messages are wanted (-v, --log): only a panic's and the init's own
 * failures are printed then. */
#define SANDBOX_KERNEL_QUIET " quiet loglevel=1"

struct initramfs {
	uint8_t *data;   /* the archive: len bytes (malloc'd; initramfs_free releases it) */
	size_t len, cap;
	uint32_t next_ino;
	int err;         /* sticky: the first failure of an add (-ENOMEM, -EINVAL) */
};

/* Starts an empty archive (no allocation until the first entry). */
void initramfs_init(struct initramfs *a);
/* Appends an entry. mode carries the permission bits only (S_IFDIR etc. are added). Each
 * returns 0 or the archive's sticky error: after a failure the archive is unusable, so a
 * caller may add everything and check the last return value (or initramfs_finish's). */
int initramfs_add_dir(struct initramfs *a, const char *path, mode_t mode);
int initramfs_add_file(struct initramfs *a, const char *path, mode_t mode, const void *data,
		       size_t len);
int initramfs_add_chardev(struct initramfs *a, const char *path, mode_t mode, unsigned major,
			  unsigned minor);
/* Appends a regular file with the contents of the host's file host_path. */
int initramfs_add_host_file(struct initramfs *a, const char *path, mode_t mode,
			    const char *host_path, struct err *e);
/* Appends the trailer; the archive is then complete. Returns 0 or the sticky error. */
int initramfs_finish(struct initramfs *a);
void initramfs_free(struct initramfs *a);

/* The init mica embeds (sandbox/init_blob.S; built by sandbox/sandbox.mk). */
extern const uint8_t mica_init_start[], mica_init_end[];

/* Builds the archive of `mica sandbox` (see above) with the modules mods found (an empty set is
 * allowed: a kernel with everything built in). On failure, out is freed and e says what went
 * wrong. */
int initramfs_build_sandbox(const struct kmod_set *mods, struct initramfs *out, struct err *e);

#endif
