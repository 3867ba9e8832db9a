/* The test guest's virtio-fs driver (device ID 26; virtio 1.2, 5.11): bring-up of the hiprio
 * queue (0) and the first request queue (1), and FUSE requests one at a time, laid out as
 * Linux lays them out: the in header and the fixed arguments in one device-readable buffer,
 * a name or data in a second; the out header in one device-writable buffer, the payload in a
 * second. Shared by tests_fs.c and tests_fs_hostile.c. */
#ifndef GUEST_FS_H
#define GUEST_FS_H

#include "fuse_wire.h"
#include "virtio.h"

#define FS_ARGS_MAX  256                 /* in header + fixed arguments */
#define FS_DATA_MAX  (60 * 1024)         /* a name or WRITE data; READ payload */
#define FS_TIMEOUT   (5000 * MS)

/* fs_call results beyond 0.. (payload bytes) and -errno (the reply's error): */
#define FS_R_TIMEOUT  (-10000)           /* the chain did not come back within FS_TIMEOUT */
#define FS_R_BADREPLY (-10001)           /* the reply breaks the protocol: fs->why says how */

struct fs {
    struct vdev *d;
    struct virtq *hiprio, *req;
    uint64_t unique;                     /* of the last request */
    uint8_t *args;                       /* FS_ARGS_MAX: header + fixed arguments */
    uint8_t *data;                       /* FS_DATA_MAX: name / data of the request */
    struct fuse_out_header *oh;          /* the reply's header ... */
    uint8_t *payload;                    /* ... and its payload (FS_DATA_MAX) */
    uint32_t used;                       /* used length of the last chain */
    char why[160];
};

/* A virtio-fs device: with tag NULL the first one, else the first whose tag is tag; NULL if none. */
struct vdev *fs_find(const char *tag);
/* The device's tag (36 bytes, NUL-padded, not necessarily terminated) as a C string. */
void fs_tag(struct vdev *d, char tag[VIRTIO_FS_TAG_LEN + 1]);
/* Reset, VERSION_1 only, queues 0 and 1 at their maximum size (<= VQ_MAX_SIZE), DRIVER_OK.
 * Buffers are allocated on the first call for this fs. */
bool fs_up(struct fs *fs, struct vdev *d);

/* Publishes one chain on vq, kicks, and waits for it to come back (false on timeout). */
bool fs_chain(struct fs *fs, struct virtq *vq, const struct vbuf *b, unsigned nout, unsigned nin, uint32_t *used);
/* Writes an in header at p: opcode, nodeid, len, a fresh unique (returned). */
uint64_t fs_hdr(struct fs *fs, void *p, uint32_t opcode, uint64_t nodeid, uint32_t len);
/* Checks a reply of used bytes to the request with this unique: the header is there, its len
 * is the used length, unique matches, error is 0 or a negative errno. Returns the payload
 * length or the error, or FS_R_BADREPLY (why filled). */
int fs_check_reply(struct fs *fs, const struct fuse_out_header *oh, uint32_t used, uint64_t unique,
                   uint32_t room);

/* One request on the request queue: header, fixed arguments a1 (l1 bytes), then a2 (l2 bytes,
 * its own buffer; none when l2 is 0), and out_len bytes of room for the payload. Returns what
 * fs_check_reply returns, or FS_R_TIMEOUT. The payload is at fs->payload. */
int fs_call(struct fs *fs, uint32_t opcode, uint64_t nodeid, const void *a1, uint32_t l1, const void *a2,
            uint32_t l2, uint32_t out_len);
const char *fs_err(int r);               /* "ENOENT", "timeout", "error -77" ... */

int fs_init(struct fs *fs, struct fuse_init_out *out);
int fs_lookup(struct fs *fs, uint64_t parent, const char *name, struct fuse_entry_out *e);
int fs_getattr(struct fs *fs, uint64_t node, struct fuse_attr *a);
/* OPEN (or OPENDIR) with these flags: 0 and *fh set, or the error. */
int fs_open(struct fs *fs, uint64_t node, uint32_t flags, bool dir, uint64_t *fh);
/* READ (or READDIR) of up to size bytes at off: the bytes returned (at fs->payload) or error. */
int fs_read(struct fs *fs, uint64_t node, uint64_t fh, uint64_t off, uint32_t size, bool dir);
int fs_release(struct fs *fs, uint64_t node, uint64_t fh, bool dir);
/* FORGET / BATCH_FORGET on the hiprio queue (no reply): whether the chains came back. */
bool fs_forget(struct fs *fs, uint64_t node, uint64_t nlookup);
bool fs_batch_forget(struct fs *fs, const struct fuse_forget_one *f, uint32_t n);

#endif
