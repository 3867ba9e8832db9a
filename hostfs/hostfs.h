/* hostfs: a directory of the host's, as a hostile guest may use it.
 *
 * The one place where a guest's file operations (virtio-fs's FUSE requests today, 9p's next)
 * reach the host's disk. Front ends decode their wire format and call in here with node ids,
 * names and guest buffers; everything the guest names is confined beneath the share here, so a
 * front end cannot get confinement wrong.
 *
 * Contract (what every function guarantees, whatever the guest sends):
 *   - Beneath the share, always. Known inodes are O_PATH descriptors (or found again as one,
 *     below); a name is resolved one component at a time beneath its parent's descriptor with
 *     openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS) and O_NOFOLLOW,
 *     never as a path string built from guest input. Names are single components: empty names, names
 *     with '/' inside, longer than NAME_MAX, and "." or ".." are refused (-EINVAL, -ENAMETOOLONG;
 *     a lookup of "." or ".." is -ENOENT), so the guest never climbs above the share's root.
 *   - Symlinks are data: READLINK returns them, nothing here follows one.
 *   - Device nodes and sockets are seen (lookup, getattr) but never opened: open, create and
 *     setattr-with-size on them answer -EACCES; mknod makes only regular files and FIFOs
 *     (-EPERM otherwise). FIFOs are never opened either (the guest's kernel serves them).
 *   - Pseudo file systems are never served: a mount inside the share of proc, sysfs, devtmpfs,
 *     devpts, debugfs, tracefs, securityfs, cgroup/cgroup2, pstore, bpf, configfs, efivarfs,
 *     fusectl, binfmt_misc, mqueue, hugetlbfs, selinuxfs, autofs or nsfs (known by its mount ID
 *     from /proc/self/mountinfo, read when the share is opened, and by statfs's f_type for
 *     mounts made later) shows as an empty, read-only directory: a shared / never hands the
 *     guest mica's /proc/self/mem, the host's /sys or /dev/kvm.
 *   - Bounded: at most opts.max_inodes inodes (memory: a slot and a name each) and
 *     opts.max_handles open files/directories per share; beyond that the guest gets -ENFILE.
 *     Known inodes hold at most opts.max_fds O_PATH descriptors, the most recently used ones:
 *     an inode whose descriptor was closed for room is found again by its name beneath its
 *     parent (resolved as above) when next used, and is -ESTALE if that name no longer leads to
 *     the same inode (moved or replaced on the host meanwhile; moves the guest makes are
 *     followed). mica's own descriptors are never exhausted: hostfs_open checks that max_fds
 *     and max_handles fit RLIMIT_NOFILE, raising the soft limit to the hard one if needed.
 *   - Read-only shares answer -EROFS to every call that would change the host.
 *   - mica's own uid and gid, always: nothing here switches credentials; the guest's
 *     uid/gid in a request is ignored (files are created as the caller of mica), and a chown
 *     succeeds only to mica's own ids (-EPERM otherwise, even when mica runs as root).
 *   - No privileged programs: S_ISUID, and S_ISGID on anything but a directory, are dropped
 *     from every mode the guest sets (create, mknod, mkdir, setattr), so a guest never plants
 *     a setuid or setgid program on the host's disk.
 *   - Errors are negative errno values the guest may see (ENOENT, EACCES, ...); nothing is
 *     printed for a guest's bad request.
 *
 * Node ids: HOSTFS_ROOT_ID is the share's root (never forgotten). A lookup (and every call
 * returning a struct hostfs_entry) adds one reference to the node it returns; hostfs_forget()
 * drops n of them, and the node (and its descriptor) goes when none are left. Ids are never
 * reused within one hostfs (a 64-bit counter), so a stale id from the guest is -ESTALE, never
 * another file (hostfs/internal.h: an id encodes its table slot and that counter, so a stale one
 * is known without a search). One host inode (st_dev, st_ino) has one node id while
 * referenced (hard links share it).
 *
 * File handles (open files and directories) are 64-bit values; an unknown one is -EBADF.
 *
 * Threads: a struct hostfs is used by one thread at a time (its front end's); nothing here
 * locks. */
#ifndef MICA_HOSTFS_H
#define MICA_HOSTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vmm/err.h"

#define HOSTFS_ROOT_ID 1

struct hostfs;

struct hostfs_opts {
	const char *path;        /* the directory shared */
	bool readonly;
	uint32_t max_inodes;     /* 0: HOSTFS_DEFAULT_MAX_INODES */
	uint32_t max_fds;        /* 0: HOSTFS_DEFAULT_MAX_FDS (at most max_inodes) */
	uint32_t max_handles;    /* 0: HOSTFS_DEFAULT_MAX_HANDLES */
	uint32_t nshares;        /* shares this process opens in all (0: 1): where the default
				  * bounds do not fit RLIMIT_NOFILE, each gets its part of it */
};

#define HOSTFS_DEFAULT_MAX_INODES  (1u << 20)   /* ~100 bytes each, used ones only */
#define HOSTFS_DEFAULT_MAX_FDS     16384
#define HOSTFS_DEFAULT_MAX_HANDLES 4096
#define HOSTFS_MAX_BOUND           (1u << 22)  /* the largest of each accepted */
#define HOSTFS_MIN_FDS             16          /* the fewest max_fds accepted */

/* A node as a lookup returns it: its id, a generation (always 0 here: ids are not reused),
 * and its attributes (st_ino is the host's). */
struct hostfs_entry {
	uint64_t id;
	uint64_t generation;
	struct stat st;
};

/* What a setattr changes: the HOSTFS_SET_* bits in valid. */
enum {
	HOSTFS_SET_MODE = 1 << 0,
	HOSTFS_SET_UID = 1 << 1,       /* chown: only to mica's own ids succeeds (-EPERM) */
	HOSTFS_SET_GID = 1 << 2,
	HOSTFS_SET_SIZE = 1 << 3,
	HOSTFS_SET_ATIME = 1 << 4,     /* to atime */
	HOSTFS_SET_MTIME = 1 << 5,
	HOSTFS_SET_ATIME_NOW = 1 << 6,
	HOSTFS_SET_MTIME_NOW = 1 << 7,
	HOSTFS_SET_CTIME = 1 << 8,     /* accepted and ignored: the host sets ctime */
};

struct hostfs_setattr {
	uint32_t valid;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	uint64_t size;
	struct timespec atime, mtime;
};

/* One directory entry for hostfs_readdir's callback: name (NUL-terminated), the host's inode
 * number and DT_* type, and the offset to resume after it. Returns 0 to go on, 1 to stop
 * (the buffer is full: this entry was not taken and is handed out again from its offset). */
typedef int (*hostfs_dirent_fn)(void *opaque, const char *name, size_t namelen, uint64_t ino,
				unsigned type, uint64_t next_off);

/* ---- the share ---- */

/* Opens a share: path must be a directory (one line in e otherwise: "--share PATH: ..."). */
int hostfs_open(const struct hostfs_opts *o, struct hostfs **out, struct err *e);
/* Closes every descriptor and frees the share. */
void hostfs_close(struct hostfs *fs);
bool hostfs_readonly(const struct hostfs *fs);
/* Forgets every node but the root and closes every handle (the guest's driver started over:
 * FUSE INIT again, DESTROY, a device reset). */
void hostfs_reset(struct hostfs *fs);

/* ---- nodes ---- */

/* Finds name in directory parent. "." and ".." are -ENOENT (FUSE resolves them in the guest;
 * 9p's walk handles ".." itself by keeping its own path of ids). */
int hostfs_lookup(struct hostfs *fs, uint64_t parent, const char *name, struct hostfs_entry *out);
void hostfs_forget(struct hostfs *fs, uint64_t id, uint64_t n);
int hostfs_getattr(struct hostfs *fs, uint64_t id, struct stat *st);
/* fh, if not UINT64_MAX, is an open handle of the same node (ftruncate on it). Returns the
 * new attributes in st. */
int hostfs_setattr(struct hostfs *fs, uint64_t id, uint64_t fh, const struct hostfs_setattr *sa,
		   struct stat *st);
/* The link's target, not NUL-terminated, into buf: its length (at most size), or -errno. */
ssize_t hostfs_readlink(struct hostfs *fs, uint64_t id, char *buf, size_t size);
int hostfs_access(struct hostfs *fs, uint64_t id, int mask);
int hostfs_statfs(struct hostfs *fs, uint64_t id, struct statvfs *st);

/* ---- changing directories (mode is masked with ~umask as the guest's kernel asked) ---- */

int hostfs_mknod(struct hostfs *fs, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
		 mode_t umask, struct hostfs_entry *out);
int hostfs_mkdir(struct hostfs *fs, uint64_t parent, const char *name, mode_t mode, mode_t umask,
		 struct hostfs_entry *out);
int hostfs_symlink(struct hostfs *fs, uint64_t parent, const char *name, const char *target,
		   struct hostfs_entry *out);
int hostfs_link(struct hostfs *fs, uint64_t id, uint64_t newparent, const char *newname,
		struct hostfs_entry *out);
int hostfs_unlink(struct hostfs *fs, uint64_t parent, const char *name);
int hostfs_rmdir(struct hostfs *fs, uint64_t parent, const char *name);
/* flags: RENAME_NOREPLACE, RENAME_EXCHANGE (renameat2); RENAME_WHITEOUT is -EINVAL. */
int hostfs_rename(struct hostfs *fs, uint64_t olddir, const char *oldname, uint64_t newdir,
		  const char *newname, unsigned flags);

/* ---- files ---- */

/* flags: the guest's O_* open flags; O_CREAT, O_EXCL, O_NOCTTY, O_NOFOLLOW are dropped (the
 * node exists), O_APPEND, O_TRUNC, O_DIRECT, O_SYNC, O_DSYNC, O_NONBLOCK kept, and the file is
 * always opened O_CLOEXEC, by reopening the node's own O_PATH descriptor through /proc/self/fd:
 * no name is resolved again and nothing is followed. Only regular files (a directory is
 * -EISDIR, a symlink -ELOOP, anything else -EACCES). */
int hostfs_open_file(struct hostfs *fs, uint64_t id, int flags, uint64_t *fh);
int hostfs_create(struct hostfs *fs, uint64_t parent, const char *name, mode_t mode, int flags,
		  mode_t umask, struct hostfs_entry *out, uint64_t *fh);
/* Straight between the file and the caller's buffers (guest memory): preadv/pwritev. Return
 * bytes moved or -errno. A short read is end of file. */
ssize_t hostfs_read(struct hostfs *fs, uint64_t fh, uint64_t off, const struct iovec *iov,
		    int iovcnt);
ssize_t hostfs_write(struct hostfs *fs, uint64_t fh, uint64_t off, const struct iovec *iov,
		     int iovcnt);
int hostfs_fsync(struct hostfs *fs, uint64_t fh, bool datasync);
int hostfs_fallocate(struct hostfs *fs, uint64_t fh, int mode, uint64_t off, uint64_t len);
/* SEEK_DATA / SEEK_HOLE (and SEEK_SET/CUR/END): the resulting offset or -errno. */
int64_t hostfs_lseek(struct hostfs *fs, uint64_t fh, int64_t off, int whence);
int hostfs_release(struct hostfs *fs, uint64_t fh);

/* ---- directories ---- */

int hostfs_opendir(struct hostfs *fs, uint64_t id, uint64_t *fh);
/* Entries from offset off (0: the start; otherwise a next_off handed out before), "." and
 * ".." included (as the host's file system lists them; a pseudo directory has just those two),
 * until fn says stop or the directory ends. The offsets are the host's getdents64 d_off values;
 * resuming where the last call stopped costs no syscall, any other offset one seek. Returns 0
 * or -errno. */
int hostfs_readdir(struct hostfs *fs, uint64_t fh, uint64_t off, hostfs_dirent_fn fn,
		   void *opaque);
int hostfs_fsyncdir(struct hostfs *fs, uint64_t fh, bool datasync);
int hostfs_releasedir(struct hostfs *fs, uint64_t fh);

/* ---- extended attributes (read-only: setting and removing them is the front end's ENOSYS)
 * ---- */

/* With size 0: the value's size. Otherwise the value into buf, its size, -ERANGE if it does
 * not fit. Same for the list (NUL-separated names). */
ssize_t hostfs_getxattr(struct hostfs *fs, uint64_t id, const char *name, void *buf, size_t size);
ssize_t hostfs_listxattr(struct hostfs *fs, uint64_t id, void *buf, size_t size);

/* ---- figures, for --stats-json ---- */

struct hostfs_counts {
	uint32_t inodes, handles;           /* now (inodes: those max_inodes bounds, not the root) */
	uint32_t fds;                       /* inodes holding a descriptor now */
	uint64_t reopened;                  /* inodes found again by name after their descriptor
					     * was closed for room */
	uint64_t refused;                   /* requests refused by confinement (escapes, device
					     * nodes, pseudo file systems, the bounds) */
};
void hostfs_counts(const struct hostfs *fs, struct hostfs_counts *c);

#endif
