/* The kernel modules `mica sandbox` loads in its guest, found on the host.
 *
 * A distribution kernel (Debian's cloud kernel) builds virtio, virtio-fs, FUSE and overlayfs
 * as modules; the init (sandbox/init/) loads them from the initramfs before it mounts the host's
 * files. kmod_find() works out the kernel's release, finds that release's module tree, and
 * resolves the needed modules and their dependencies from modules.dep into load order.
 *
 * The release: the first word of the bzImage's kernel_version string (setup header, x86 boot
 * protocol). The module tree, the first that exists of:
 *   1. --modules DIR: DIR itself if it holds modules.dep (a /lib/modules/RELEASE), else
 *      DIR/RELEASE (a directory of releases); nothing else is tried when DIR is given;
 *   2. /lib/modules/RELEASE (the host's own kernel booted as the guest);
 *   3. dirname(kernel)/pkg/ * /lib/modules/RELEASE (what scripts/get-linux-guest unpacks next
 *      to build/linux/vmlinuz).
 * A module named in modules.builtin is part of the kernel and skipped. Compressed modules
 * (.ko.xz, .ko.zst, .ko.gz) are carried as they are: the init hands them to finit_module()
 * with MODULE_INIT_COMPRESSED_FILE, which kernels from 5.17 with CONFIG_MODULE_DECOMPRESS
 * understand; any other kernel refuses them, and the init reports that in one line. */
#ifndef MICA_SANDBOX_KMOD_H
#define MICA_SANDBOX_KMOD_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/err.h"

#define KMOD_RELEASE_MAX 65 /* struct utsname's release field */

/* What `mica sandbox` needs: virtio over PCI and MMIO (whichever transport the VM uses), the
 * console's named ports, virtio-fs and overlayfs. NULL-terminated. */
extern const char *const kmod_sandbox_modules[];

struct kmod_file {
	char *name; /* the file's name in the tree, e.g. "virtio_ring.ko" */
	char *path; /* the host's path to it */
};

struct kmod_set {
	char release[KMOD_RELEASE_MAX]; /* "" when the kernel did not say (then only --modules) */
	char *dir;                /* the module tree used (NULL if every module was built in) */
	struct kmod_file *files;  /* in load order: each after everything it depends on, once */
	size_t n;
};

/* Reads the release from a bzImage's setup header into release (size bytes). Returns 0,
 * -ENOEXEC if the file is not a bzImage or says no version, or -errno; e says which. */
int kmod_kernel_release(const char *kernel, char *release, size_t size, struct err *e);

/* The same from a bzImage's bytes (the kernel file as read). */
int kmod_release_from_image(const uint8_t *data, size_t len, char *release, size_t size);

/* Finds the module tree for kernel (see above; modules_dir: --modules, or NULL) and resolves
 * names (NULL: kmod_sandbox_modules) with their dependencies. Returns 0, or -errno with e
 * saying what is missing, where it looked and what to do. On failure out is empty. */
int kmod_find(const char *kernel, const char *modules_dir, const char *const *names,
	      struct kmod_set *out, struct err *e);

/* Resolves names in the module tree dir (which holds modules.dep) into out. */
int kmod_resolve(const char *dir, const char *const *names, struct kmod_set *out,
		 struct err *e);

void kmod_set_free(struct kmod_set *s);

#endif
