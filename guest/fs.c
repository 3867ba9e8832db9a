/* The test guest's virtio-fs driver: bring-up and FUSE requests one at a time (fs.h). */
#include "fs.h"

struct vdev *fs_find(const char *tag)
{
    char t[VIRTIO_FS_TAG_LEN + 1];
    struct vdev *d;
    for (unsigned i = 0; (d = virtio_find(VIRTIO_ID_FS, i)); i++) {
        if (!tag)
            return d;
        fs_tag(d, t);
        if (!strcmp(t, tag))
            return d;
    }
    return NULL;
}

void fs_tag(struct vdev *d, char tag[VIRTIO_FS_TAG_LEN + 1])
{
    for (;;) {
        uint32_t g = vdev_generation(d);
        for (unsigned i = 0; i < VIRTIO_FS_TAG_LEN; i++)
            tag[i] = (char)vdev_config_read(d, FSCFG_TAG + i, 1);
        if (vdev_generation(d) == g)
            break;
    }
    tag[VIRTIO_FS_TAG_LEN] = '\0';
}

bool fs_up(struct fs *fs, struct vdev *d)
{
    if (!fs->args) {
        uint8_t *small = alloc_pages(1);
        fs->data = alloc_pages(FS_DATA_MAX / PAGE_SIZE);
        fs->payload = alloc_pages(FS_DATA_MAX / PAGE_SIZE);
        if (!small || !fs->data || !fs->payload)
            return false;
        fs->args = small;
        fs->oh = (struct fuse_out_header *)(small + 2048);
    }
    fs->d = d;
    vdev_begin(d);
    if (!vdev_set_features(d, d->offered & BIT64(VIRTIO_F_VERSION_1))) {
        printf("# virtio-fs: VERSION_1 alone refused (offered 0x%lx)\n", d->offered);
        return false;
    }
    if (!vq_setup(d, 0, 0) || !vq_setup(d, 1, 0))
        return false;
    fs->hiprio = &d->vq[0];
    fs->req = &d->vq[1];
    vdev_driver_ok(d);
    return true;
}

static bool used_any(void *arg) { return vq_has_used(arg); }

bool fs_chain(struct fs *fs, struct virtq *vq, const struct vbuf *b, unsigned nout, unsigned nin, uint32_t *used)
{
    void *tok;
    if (vq_add(vq, b, nout, nin, fs, false) < 0) {
        snprintf(fs->why, sizeof(fs->why), "queue %u: no room for a %u-buffer chain", vq->index, nout + nin);
        return false;
    }
    vq_kick(vq);
    if (!poll_until(used_any, vq, FS_TIMEOUT, 20 * MS) || !vq_pop(vq, &tok, used)) {
        snprintf(fs->why, sizeof(fs->why), "queue %u: the chain did not come back within 5 s (Status 0x%x)",
                 vq->index, vdev_status(vq->dev));
        return false;
    }
    fs->used = *used;
    return true;
}

uint64_t fs_hdr(struct fs *fs, void *p, uint32_t opcode, uint64_t nodeid, uint32_t len)
{
    struct fuse_in_header h = {.len = len, .opcode = opcode, .unique = ++fs->unique, .nodeid = nodeid};
    memcpy(p, &h, sizeof(h));
    return h.unique;
}

int fs_check_reply(struct fs *fs, const struct fuse_out_header *oh, uint32_t used, uint64_t unique, uint32_t room)
{
    struct fuse_out_header h;
    memcpy(&h, (const void *)oh, sizeof(h));
    const char *bad = NULL;
    if (used < sizeof(h))
        bad = "shorter than the out header";
    else if (used > room)
        bad = "longer than the room given";
    else if (h.len != used)
        bad = "header len is not the used length";
    else if (h.unique != unique)
        bad = "unique does not match the request's";
    else if (h.error > 0 || h.error <= -4096)
        bad = "error is not 0 or a negative errno";
    if (bad) {
        snprintf(fs->why, sizeof(fs->why), "reply %s: used %u of %u, len %u error %d unique %lu (sent %lu)", bad, used,
                 room, h.len, h.error, h.unique, unique);
        return FS_R_BADREPLY;
    }
    return h.error ? h.error : (int)(used - sizeof(h));
}

int fs_call(struct fs *fs, uint32_t opcode, uint64_t nodeid, const void *a1, uint32_t l1, const void *a2, uint32_t l2,
            uint32_t out_len)
{
    uint32_t hl = (uint32_t)sizeof(struct fuse_in_header);
    if (hl + l1 > FS_ARGS_MAX || l2 > FS_DATA_MAX || out_len > FS_DATA_MAX) {
        snprintf(fs->why, sizeof(fs->why), "request too large for the driver's buffers");
        return FS_R_BADREPLY;
    }
    uint64_t unique = fs_hdr(fs, fs->args, opcode, nodeid, hl + l1 + l2);
    if (l1)
        memcpy(fs->args + hl, a1, l1);
    if (l2)
        memcpy(fs->data, a2, l2);
    memset(fs->oh, 0xa5, sizeof(*fs->oh)); /* nothing left from the previous reply */
    struct vbuf b[4];
    unsigned n = 0;
    b[n++] = (struct vbuf){virt_to_phys(fs->args), hl + l1};
    if (l2)
        b[n++] = (struct vbuf){virt_to_phys(fs->data), l2};
    unsigned nout = n;
    b[n++] = (struct vbuf){virt_to_phys(fs->oh), (uint32_t)sizeof(*fs->oh)};
    if (out_len)
        b[n++] = (struct vbuf){virt_to_phys(fs->payload), out_len};
    uint32_t used;
    if (!fs_chain(fs, fs->req, b, nout, n - nout, &used))
        return FS_R_TIMEOUT;
    return fs_check_reply(fs, fs->oh, used, unique, (uint32_t)sizeof(*fs->oh) + out_len);
}

const char *fs_err(int r)
{
    static char buf[32];
    switch (r) {
    case FS_R_TIMEOUT: return "timeout";
    case FS_R_BADREPLY: return "bad reply";
    case -FS_EPERM: return "EPERM";
    case -FS_ENOENT: return "ENOENT";
    case -FS_EIO: return "EIO";
    case -FS_EBADF: return "EBADF";
    case -FS_EACCES: return "EACCES";
    case -FS_ENOTDIR: return "ENOTDIR";
    case -FS_EINVAL: return "EINVAL";
    case -FS_ENFILE: return "ENFILE";
    case -FS_ERANGE: return "ERANGE";
    case -FS_ENAMETOOLONG: return "ENAMETOOLONG";
    case -FS_ENOSYS: return "ENOSYS";
    case -FS_ELOOP: return "ELOOP";
    case -FS_EPROTO: return "EPROTO";
    case -FS_ESTALE: return "ESTALE";
    default:
        snprintf(buf, sizeof(buf), r < 0 ? "error %d" : "ok (%d bytes)", r);
        return buf;
    }
}

/* A reply whose payload must be exactly want bytes. */
static int sized(struct fs *fs, int r, uint32_t want, const char *what)
{
    if (r >= 0 && (uint32_t)r != want) {
        snprintf(fs->why, sizeof(fs->why), "%s: payload of %d bytes, %u expected", what, r, want);
        return FS_R_BADREPLY;
    }
    return r < 0 ? r : 0;
}

int fs_init(struct fs *fs, struct fuse_init_out *out)
{
    struct fuse_init_in in = {.major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
                              .max_readahead = 128 * 1024};
    int r = fs_call(fs, FUSE_INIT, 0, &in, sizeof(in), NULL, 0, sizeof(*out));
    if (r >= 0 && (uint32_t)r > sizeof(*out))
        return sized(fs, r, sizeof(*out), "INIT");
    if (r >= 0) {
        memset(out, 0, sizeof(*out));
        memcpy(out, fs->payload, (size_t)r); /* an older minor may send less (checked by the caller) */
    }
    return r;
}

int fs_lookup(struct fs *fs, uint64_t parent, const char *name, struct fuse_entry_out *e)
{
    int r = sized(fs, fs_call(fs, FUSE_LOOKUP, parent, NULL, 0, name, (uint32_t)strlen(name) + 1, sizeof(*e)),
                  sizeof(*e), "LOOKUP");
    if (!r)
        memcpy(e, fs->payload, sizeof(*e));
    return r;
}

int fs_getattr(struct fs *fs, uint64_t node, struct fuse_attr *a)
{
    struct fuse_getattr_in in = {0};
    struct fuse_attr_out out;
    int r = sized(fs, fs_call(fs, FUSE_GETATTR, node, &in, sizeof(in), NULL, 0, sizeof(out)), sizeof(out),
                  "GETATTR");
    if (!r) {
        memcpy(&out, fs->payload, sizeof(out));
        *a = out.attr;
    }
    return r;
}

int fs_open(struct fs *fs, uint64_t node, uint32_t flags, bool dir, uint64_t *fh)
{
    struct fuse_open_in in = {.flags = flags};
    struct fuse_open_out out;
    int r = sized(fs, fs_call(fs, dir ? FUSE_OPENDIR : FUSE_OPEN, node, &in, sizeof(in), NULL, 0, sizeof(out)),
                  sizeof(out), dir ? "OPENDIR" : "OPEN");
    if (!r) {
        memcpy(&out, fs->payload, sizeof(out));
        *fh = out.fh;
    }
    return r;
}

int fs_read(struct fs *fs, uint64_t node, uint64_t fh, uint64_t off, uint32_t size, bool dir)
{
    struct fuse_read_in in = {.fh = fh, .offset = off, .size = size};
    int r = fs_call(fs, dir ? FUSE_READDIR : FUSE_READ, node, &in, sizeof(in), NULL, 0, size);
    if (r > (int)size) {
        snprintf(fs->why, sizeof(fs->why), "%s: %d bytes for a %u-byte request", dir ? "READDIR" : "READ", r, size);
        return FS_R_BADREPLY;
    }
    return r;
}

int fs_release(struct fs *fs, uint64_t node, uint64_t fh, bool dir)
{
    struct fuse_release_in in = {.fh = fh};
    return sized(fs, fs_call(fs, dir ? FUSE_RELEASEDIR : FUSE_RELEASE, node, &in, sizeof(in), NULL, 0, 0), 0,
                 dir ? "RELEASEDIR" : "RELEASE");
}

bool fs_forget(struct fs *fs, uint64_t node, uint64_t nlookup)
{
    struct fuse_forget_in in = {nlookup};
    uint32_t len = (uint32_t)(sizeof(struct fuse_in_header) + sizeof(in)), used;
    fs_hdr(fs, fs->args, FUSE_FORGET, node, len);
    memcpy(fs->args + sizeof(struct fuse_in_header), &in, sizeof(in));
    struct vbuf b = {virt_to_phys(fs->args), len};
    return fs_chain(fs, fs->hiprio, &b, 1, 0, &used);
}

bool fs_batch_forget(struct fs *fs, const struct fuse_forget_one *f, uint32_t n)
{
    const uint32_t per = FS_DATA_MAX / sizeof(*f);
    for (uint32_t i = 0; i < n; i += per) {
        uint32_t k = n - i < per ? n - i : per, used;
        struct fuse_batch_forget_in in = {.count = k};
        uint32_t hl = (uint32_t)(sizeof(struct fuse_in_header) + sizeof(in));
        fs_hdr(fs, fs->args, FUSE_BATCH_FORGET, 0, hl + k * (uint32_t)sizeof(*f));
        memcpy(fs->args + sizeof(struct fuse_in_header), &in, sizeof(in));
        memcpy(fs->data, f + i, k * sizeof(*f));
        struct vbuf b[2] = {{virt_to_phys(fs->args), hl}, {virt_to_phys(fs->data), k * (uint32_t)sizeof(*f)}};
        if (!fs_chain(fs, fs->hiprio, b, 2, 0, &used))
            return false;
    }
    return true;
}
