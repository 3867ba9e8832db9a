/* FUSE on the wire, as virtio-fs carries it (virtio 1.2, 5.11; the layouts of <linux/fuse.h>,
 * protocol 7.38): the few requests the test guest sends. The guest is freestanding (-nostdinc),
 * so the structures, opcodes, errno values and mode bits it needs are spelled out here. */
#ifndef GUEST_FUSE_WIRE_H
#define GUEST_FUSE_WIRE_H

#include "guest.h"

/* virtio-fs device configuration (5.11.4) */
#define VIRTIO_FS_TAG_LEN       36
#define FSCFG_TAG               0
#define FSCFG_NUM_REQUEST_QUEUES 36

#define FUSE_KERNEL_VERSION       7
#define FUSE_KERNEL_MINOR_VERSION 38
#define FUSE_ROOT_ID              1

enum fuse_opcode {
    FUSE_LOOKUP = 1,
    FUSE_FORGET = 2, /* no reply */
    FUSE_GETATTR = 3,
    FUSE_READLINK = 5,
    FUSE_OPEN = 14,
    FUSE_READ = 15,
    FUSE_WRITE = 16,
    FUSE_RELEASE = 18,
    FUSE_INIT = 26,
    FUSE_OPENDIR = 27,
    FUSE_READDIR = 28,
    FUSE_RELEASEDIR = 29,
    FUSE_CREATE = 35,
    FUSE_BATCH_FORGET = 42, /* no reply */
};

struct fuse_in_header {
    uint32_t len;     /* the whole request: this header and its arguments */
    uint32_t opcode;
    uint64_t unique;
    uint64_t nodeid;
    uint32_t uid, gid, pid;
    uint16_t total_extlen;
    uint16_t padding;
};

struct fuse_out_header {
    uint32_t len;     /* the whole reply: this header and its payload */
    int32_t error;    /* 0 or -errno */
    uint64_t unique;
};

struct fuse_attr {
    uint64_t ino, size, blocks, atime, mtime, ctime;
    uint32_t atimensec, mtimensec, ctimensec;
    uint32_t mode, nlink, uid, gid, rdev, blksize, flags;
};

struct fuse_entry_out {
    uint64_t nodeid;
    uint64_t generation;
    uint64_t entry_valid, attr_valid;
    uint32_t entry_valid_nsec, attr_valid_nsec;
    struct fuse_attr attr;
};

struct fuse_forget_in { uint64_t nlookup; };
struct fuse_forget_one { uint64_t nodeid, nlookup; };
struct fuse_batch_forget_in { uint32_t count, dummy; }; /* then count fuse_forget_one */

struct fuse_getattr_in {
    uint32_t getattr_flags;
    uint32_t dummy;
    uint64_t fh;
};

struct fuse_attr_out {
    uint64_t attr_valid;
    uint32_t attr_valid_nsec;
    uint32_t dummy;
    struct fuse_attr attr;
};

struct fuse_open_in { uint32_t flags, open_flags; };
struct fuse_create_in { uint32_t flags, mode, umask, open_flags; }; /* then the name */
struct fuse_open_out {
    uint64_t fh;
    uint32_t open_flags;
    uint32_t padding;
};
struct fuse_release_in {
    uint64_t fh;
    uint32_t flags, release_flags;
    uint64_t lock_owner;
};
struct fuse_read_in { /* READ and READDIR */
    uint64_t fh, offset;
    uint32_t size, read_flags;
    uint64_t lock_owner;
    uint32_t flags, padding;
};
struct fuse_write_in { /* then size bytes of data */
    uint64_t fh, offset;
    uint32_t size, write_flags;
    uint64_t lock_owner;
    uint32_t flags, padding;
};
struct fuse_write_out { uint32_t size, padding; };

struct fuse_init_in {
    uint32_t major, minor, max_readahead, flags, flags2;
    uint32_t unused[11];
};
struct fuse_init_out {
    uint32_t major, minor, max_readahead, flags;
    uint16_t max_background, congestion_threshold;
    uint32_t max_write, time_gran;
    uint16_t max_pages, map_alignment;
    uint32_t flags2;
    uint32_t unused[7];
};

/* READDIR's payload: records of this header and the name, each padded to 8 bytes. */
struct fuse_dirent {
    uint64_t ino, off;
    uint32_t namelen, type;
    char name[];
};
#define FUSE_DIRENT_SIZE(namelen) ALIGN_UP(sizeof(struct fuse_dirent) + (namelen), (size_t)8)

_Static_assert(sizeof(struct fuse_in_header) == 40, "fuse_in_header");
_Static_assert(sizeof(struct fuse_out_header) == 16, "fuse_out_header");
_Static_assert(sizeof(struct fuse_attr) == 88, "fuse_attr");
_Static_assert(sizeof(struct fuse_entry_out) == 128, "fuse_entry_out");
_Static_assert(sizeof(struct fuse_attr_out) == 104, "fuse_attr_out");
_Static_assert(sizeof(struct fuse_init_in) == 64, "fuse_init_in");
_Static_assert(sizeof(struct fuse_init_out) == 64, "fuse_init_out");
_Static_assert(sizeof(struct fuse_read_in) == 40, "fuse_read_in");
_Static_assert(sizeof(struct fuse_write_in) == 40, "fuse_write_in");
_Static_assert(sizeof(struct fuse_release_in) == 24, "fuse_release_in");

/* Linux's values (x86_64): open flags, mode bits, dirent types, errno. */
#define FS_O_RDONLY    0
#define FS_O_WRONLY    01
#define FS_O_RDWR      02
#define FS_O_CREAT     0100
#define FS_O_TRUNC     01000
#define FS_O_DIRECTORY 0200000

#define FS_S_IFMT   0170000
#define FS_S_IFDIR  0040000
#define FS_S_IFCHR  0020000
#define FS_S_IFREG  0100000
#define FS_S_IFLNK  0120000

#define FS_DT_DIR 4
#define FS_DT_REG 8

#define FS_EPERM        1
#define FS_ENOENT       2
#define FS_EIO          5
#define FS_EBADF        9
#define FS_EACCES       13
#define FS_ENOTDIR      20
#define FS_EINVAL       22
#define FS_ENFILE       23
#define FS_ERANGE       34
#define FS_ENAMETOOLONG 36
#define FS_ENOSYS       38
#define FS_ELOOP        40
#define FS_EPROTO       71
#define FS_ESTALE       116

#endif
