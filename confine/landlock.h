/* Landlock: once setup is done, mica may open only the files its options named.
 *
 * Contract:
 *   - The composition root builds one ruleset (cmd/landlock_rules.c collects every path from
 *     struct mica_config in one place): landlock_open(), then landlock_allow() per path, then
 *     landlock_apply() once the devices exist, the --control socket listens and the kernel is
 *     in guest RAM, before vm_run() starts the vCPU threads.
 *   - landlock_apply() confines the calling thread and every thread it creates afterwards
 *     (the kernels mica targets, Debian 12's 6.1 among them, have no
 *     LANDLOCK_RESTRICT_SELF_TSYNC to confine a process's other threads). A thread started during
 *     setup (the blk I/O pool when io_uring is unavailable) runs landlock_confine_thread()
 *     itself, through vmm/confine.h, before its first request.
 *   - What is already open stays usable (Landlock checks opens, not reads, writes and ioctls
 *     on open files): /dev/kvm, the images, the tap fd, stdout. The rules are for what is
 *     opened AGAIN after setup.
 *   - Only rights this kernel's Landlock ABI knows are handled (ABI 1: read, write, execute,
 *     make_*, remove_*; 2: refer; 3: truncate; 5: ioctl on devices); everything handled and
 *     not granted by a rule is refused with EACCES.
 *   - A kernel without Landlock (not built, or not in lsm=): landlock_open() fails with
 *     -EOPNOTSUPP and e says why; mica runs on, unconfined by Landlock.
 *   - Each allowed path stays open (O_PATH) until landlock_close(): a filesystem that forgets
 *     unused dentries (9p without a cache) would give a file looked up again a new inode,
 *     which no rule names.
 *   - A future host-filesystem share adds its directory with
 *     landlock_allow(ll, dir, LL_READ | LL_WRITE | LL_LIST | LL_CREATE): the rule covers the
 *     whole tree beneath it. */
#ifndef MICA_SANDBOX_LANDLOCK_H
#define MICA_SANDBOX_LANDLOCK_H

#include <stdint.h>

#include "vmm/err.h"

/* What a rule lets mica do with a path (beneath it, for a directory). */
enum landlock_use {
	LL_READ   = 1 << 0,  /* open files for reading */
	LL_WRITE  = 1 << 1,  /* open files for writing, truncate them */
	LL_EXEC   = 1 << 2,  /* execute files (and map them executable) */
	LL_IOCTL  = 1 << 3,  /* ioctl on a device file opened later (/dev/kvm, /dev/net/tun) */
	LL_LIST   = 1 << 4,  /* directories: list them */
	LL_CREATE = 1 << 5,  /* directories: create, remove, link and rename files and
			      * directories beneath (never device nodes) */
	LL_UNLINK = 1 << 6,  /* directories: remove a file beneath (the --control socket) */
};

struct landlock;

/* Starts a ruleset. abi_cap limits the ABI used (0: the kernel's; the unit tests force older
 * ones). -EOPNOTSUPP with e saying why where the kernel has no Landlock. */
int landlock_open(struct landlock **out, unsigned abi_cap, struct err *e);
/* The ABI in use and the filesystem rights it handles (LANDLOCK_ACCESS_FS_* bits). */
unsigned landlock_abi(const struct landlock *ll);
uint64_t landlock_handled(const struct landlock *ll);
/* Allows use of path (a file or a directory tree). Rights that make no sense for a file
 * (LL_LIST, LL_CREATE, LL_UNLINK) are dropped for one. -errno with e set when path cannot be
 * opened (-ENOENT for a missing one: the caller decides whether that matters). */
int landlock_allow(struct landlock *ll, const char *path, unsigned use, struct err *e);
/* Confines the calling thread and its future threads (sets no_new_privs first). */
int landlock_apply(struct landlock *ll, struct err *e);
/* Confines the calling thread with the applied ruleset; 0 and nothing done if none was
 * applied. For threads that existed before landlock_apply(). */
int landlock_confine_thread(void);
/* Closes the ruleset and the paths' fds (the confinement stays). */
void landlock_close(struct landlock *ll);

#endif
