/* The test guest's virtio-blk driver: bring-up, requests, and jobs of many requests in flight
 * (blk.h). */
#include "blk.h"

struct vdev *blk_find(void) { return virtio_find(VIRTIO_ID_BLOCK, 0); }

bool blk_up(struct vdev *d, uint64_t want, unsigned nq)
{
    vdev_begin(d);
    if (!vdev_set_features(d, d->offered & (want | BIT64(VIRTIO_F_VERSION_1)))) {
        printf("# virtio-blk: features 0x%lx refused\n", d->offered & want);
        return false;
    }
    for (unsigned q = 0; q < nq; q++)
        if (!vq_setup(d, q, 0))
            return false;
    vdev_driver_ok(d);
    return true;
}

uint64_t blk_capacity(struct vdev *d)
{
    for (;;) {
        uint32_t g = vdev_generation(d);
        uint64_t c = vdev_config_read(d, BCFG_CAPACITY, 4) | (uint64_t)vdev_config_read(d, BCFG_CAPACITY + 4, 4) << 32;
        if (vdev_generation(d) == g)
            return c;
    }
}

bool blk_slots_alloc(struct blk_slot *slots, unsigned n, size_t buf_bytes)
{
    if (n > PAGE_SIZE / 64)
        return false;
    uint8_t *small = alloc_pages(1), *data = alloc_pages(ALIGN_UP(n * buf_bytes, PAGE_SIZE) / PAGE_SIZE);
    if (!small || !data)
        return false;
    for (unsigned i = 0; i < n; i++) {
        slots[i].hdr = (struct blk_hdr *)(small + i * 64);
        slots[i].status = small + i * 64 + 32;
        slots[i].buf = data + i * buf_bytes;
    }
    return true;
}

static uint64_t pa(const volatile void *p) { return virt_to_phys((const void *)p); }

bool blk_add(struct virtq *vq, struct blk_slot *s, uint32_t type, uint64_t sector, const void *out, uint32_t out_len,
             void *in, uint32_t in_len)
{
    struct vbuf b[4];
    unsigned n = 0, nout;
    *s->hdr = (struct blk_hdr){type, 0, sector};
    *s->status = 0xff;
    b[n++] = (struct vbuf){pa(s->hdr), sizeof(struct blk_hdr)};
    if (out_len)
        b[n++] = (struct vbuf){pa(out), out_len};
    nout = n;
    if (in_len)
        b[n++] = (struct vbuf){pa(in), in_len};
    b[n++] = (struct vbuf){pa(s->status), 1};
    return vq_add(vq, b, nout, n - nout, s, false) >= 0;
}

static bool used_any(void *arg) { return vq_has_used(arg); }

bool blk_wait_used(struct virtq *vq, uint64_t timeout_ns)
{
    return poll_until(used_any, vq, timeout_ns, this_cpu() == 0 ? 20000000 : 200000);
}

/* Fills every free slot the job still has work for; returns how many were added (-1: no room
 * in the queue). */
static int fill(struct blk_job *j, bool *busy, bool *more)
{
    int added = 0;
    for (unsigned i = 0; i < j->depth && *more; i++) {
        if (busy[i])
            continue;
        struct blk_slot *s = &j->slots[i];
        int type = j->next(j, s);
        if (type < 0) {
            *more = false;
            break;
        }
        uint32_t len = s->nsec * SECTOR;
        bool ok = type == BLK_T_OUT ? blk_add(j->vq, s, BLK_T_OUT, s->sector, s->buf, len, NULL, 0)
                                    : blk_add(j->vq, s, BLK_T_IN, s->sector, NULL, 0, s->buf, len);
        if (!ok) {
            snprintf(j->err, sizeof(j->err), "queue %u: no room for a request (num_free %u)", j->vq->index,
                     j->vq->num_free);
            return -1;
        }
        busy[i] = true;
        added++;
        j->requests++;
    }
    return added;
}

bool blk_job_run(struct blk_job *j)
{
    struct virtq *vq = j->vq;
    bool busy[BLK_JOB_MAX_DEPTH] = {false}, more = true;
    unsigned inflight = 0;
    j->t0 = rdtsc();
    j->ok = false;
    if (j->depth > BLK_JOB_MAX_DEPTH) {
        snprintf(j->err, sizeof(j->err), "queue depth %u above %u", j->depth, BLK_JOB_MAX_DEPTH);
        return false;
    }
    for (;;) {
        int added = fill(j, busy, &more);
        if (added < 0)
            return false;
        inflight += (unsigned)added;
        if (added)
            vq_kick(vq);
        if (!inflight)
            break;
        if (!(j->wait ? j->wait : blk_wait_used)(vq, BLK_IO_TIMEOUT_NS)) {
            snprintf(j->err, sizeof(j->err), "queue %u: %u request(s) outstanding for 5 s (used idx %u, "
                     "avail idx %u)", vq->index, inflight, vq_used_idx(vq), vq->avail_idx);
            return false;
        }
        void *tok;
        uint32_t used;
        while (vq_pop(vq, &tok, &used)) {
            struct blk_slot *s = tok;
            unsigned i = (unsigned)(s - j->slots);
            if (i >= j->depth || !busy[i]) {
                snprintf(j->err, sizeof(j->err), "queue %u: used entry %p is not an outstanding request",
                         vq->index, tok);
                return false;
            }
            bool write = s->hdr->type == BLK_T_OUT;
            uint32_t want = write ? 1 : s->nsec * SECTOR + 1;
            if (*s->status != BLK_S_OK || used != want) {
                snprintf(j->err, sizeof(j->err), "queue %u: %s of sectors %lu+%u: status %u, used len %u "
                         "(expected 0, %u)", vq->index, write ? "write" : "read", s->sector, s->nsec,
                         *s->status, used, want);
                return false;
            }
            if (j->done && !j->done(j, s))
                return false;
            busy[i] = false;
            inflight--;
        }
    }
    j->t1 = rdtsc();
    j->ok = true;
    return true;
}
