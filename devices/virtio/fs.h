/* virtio-fs (device ID 26): a host directory shared with the guest over FUSE (fuse.c), served
 * by hostfs (hostfs/hostfs.h) on the device's own thread. Options as the command line gives
 * them, the constructor and the stop hook. */
#ifndef MICA_VIRTIO_FS_H
#define MICA_VIRTIO_FS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/err.h"

struct virtio_dev;
struct virtio_env;

/* The tag the guest mounts (mount -t virtiofs TAG DIR): at most 36 bytes (struct
 * virtio_fs_config's tag), printable ASCII without spaces or commas. */
#define FS_TAG_MAX      36
#define FS_DEFAULT_TAG  "mica"

/* How long the guest may cache names and attributes without asking again, in seconds: a
 * read-only share changes only under the host's hands (a day: the guest sees host changes
 * late, and in exchange never asks twice), a writable one is shared with the host and other
 * processes as it runs (a second, virtiofsd's cache=auto). timeout= overrides both. */
#define FS_TIMEOUT_RO   86400
#define FS_TIMEOUT_RW   1
#define FS_TIMEOUT_MAX  (365 * 86400)

struct fs_opts {
	char path[PATH_MAX];
	char tag[FS_TAG_MAX + 1];    /* NUL-terminated; FS_DEFAULT_TAG when not given */
	bool ro;
	bool no_xattr;               /* xattr=off: the guest sees no extended attributes */
	bool timeout_set;            /* timeout= given */
	uint32_t timeout;            /* seconds, when timeout_set */
	uint32_t max_inodes;         /* hostfs's bounds (hostfs/hostfs.h); 0: its default */
	uint32_t max_fds;
	uint32_t nshares;            /* how many shares this mica opens (set by the composition
				      * root): each gets its part of the descriptor limit */
};

/* Parses PATH[,tag=TAG][,ro][,timeout=SECONDS][,xattr=on|off][,max_inodes=N][,max_fds=N] (",,"
 * in PATH stands for one comma). Returns 0,
 * or -EINVAL with e saying what is wrong (prefixed "--share"). The path is not checked here:
 * virtio_fs_create() opens it. */
int fs_parse_opts(const char *spec, struct fs_opts *o, struct err *e);

/* The entry and attribute timeout the options give (see FS_TIMEOUT_*). */
uint32_t fs_opts_timeout(const struct fs_opts *o);

/* Opens the share (hostfs_open: a missing or unusable directory is one line in e, "--share
 * PATH: ..."), creates the device, not yet attached (devices/virtio/attach.h), with its own
 * event loop, and starts its thread. The thread enters seccomp kind SECCOMP_FS as it starts
 * and runs the confinement steps of vmm/confine.h before each request, so it must be created
 * after seccomp_setup() and the steps it needs must be registered before the guest runs.
 * Returns 0, or -errno (with e saying why when the user can mend it). */
int virtio_fs_create(const struct virtio_env *env, const struct fs_opts *o,
		     struct virtio_dev **out, struct err *e);

/* Stops and joins the device's thread; the device answers nothing afterwards. Idempotent, and
 * called by the device's destroy op too. The thread raises interrupts through the transport,
 * which the machine destroys right before the model: whoever attached the device must stop it
 * before that, e.g. vm_own(vm, dev, virtio_fs_stop) right after the attach (the VM destroys
 * what it owns in reverse order). */
void virtio_fs_stop(void *dev);

#endif
