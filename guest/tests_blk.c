/* virtio-blk (device ID 2): a whole-disk write / flush / read-back with a pattern the host can
 * check in the image file afterwards, the error statuses (beyond the end, partial sectors,
 * unknown types), GET_ID, DISCARD / WRITE_ZEROES, a read-only disk, and two queues driven
 * concurrently from two vCPUs (MQ). The driver itself is blk.c.
 * mica: --disk IMG[,ro][,serial=S] (any --transport); cmdline blk_serial=S (GET_ID must return
 * it), blk_seed=N (the pattern's seed, 0-255; default: from the TSC), blk_sectors=N (the
 * capacity to expect). A missing device SKIPs.
 *
 * The pattern (virtio_blk, virtio_blk_mq): sector k holds "mica-blk sector %08u" (k, 24 bytes,
 * no NUL), then byte i (24 <= i < 512) = (k * 13 + i * 7 + seed) & 0xff. */
#include "blk.h"

#define IO_TIMEOUT BLK_IO_TIMEOUT_NS

#define REQ_SECTORS  128u          /* 64 KiB per request */
#define NSLOTS       8             /* requests in flight (4 per queue in the MQ test) */
#define MAX_SECTORS  (64u << 11)   /* 64 MiB: the whole-disk tests stop there */
#define PAT_HEAD     24            /* "mica-blk sector %08u" */

#define BLK_FEATURES                                                                                    \
    (BIT64(BLK_F_SIZE_MAX) | BIT64(BLK_F_SEG_MAX) | BIT64(BLK_F_BLK_SIZE) | BIT64(BLK_F_FLUSH) |         \
     BIT64(BLK_F_RO))

/* ---- buffers: allocated once (first touches are slow under nested emulation) ---- */

static struct blk_slot slots[NSLOTS];
static uint8_t *misc; /* 4 pages: single-request data */

static bool blk_mem(void)
{
    if (misc)
        return true;
    if (!blk_slots_alloc(slots, NSLOTS, REQ_SECTORS * SECTOR))
        return false;
    misc = alloc_pages(4);
    return misc != NULL;
}

static struct vdev *blk(void) { return blk_find(); }
static bool ro_disk(struct vdev *d) { return blk_ro(d); }

static uint32_t pattern_seed(void)
{
    static bool have;
    static uint32_t seed;
    if (!have) {
        seed = (uint32_t)cmdline_get_u64("blk_seed", (rdtsc() >> 8) % 251 + 1) & 0xff;
        have = true;
    }
    return seed;
}

static void fill_sector(uint8_t *p, uint64_t k, uint32_t seed)
{
    static const char head[] = "mica-blk sector ";
    memcpy(p, head, 16);
    uint32_t v = (uint32_t)k;
    for (int i = 23; i >= 16; i--, v /= 10)
        p[i] = (uint8_t)('0' + v % 10);
    uint8_t b = (uint8_t)(k * 13 + PAT_HEAD * 7 + seed);
    for (unsigned i = PAT_HEAD; i < SECTOR; i++, b = (uint8_t)(b + 7))
        p[i] = b;
}

/* -1 if sector p is sector k's pattern, else the first differing byte. */
static int check_sector(const uint8_t *p, uint64_t k, uint32_t seed)
{
    uint8_t want[SECTOR];
    fill_sector(want, k, seed);
    for (unsigned i = 0; i < SECTOR; i++)
        if (p[i] != want[i])
            return (int)i;
    return -1;
}

static bool has_prefix(const uint8_t *p, uint64_t k)
{
    uint8_t want[SECTOR];
    fill_sector(want, k, 0);
    return !memcmp(p, want, PAT_HEAD);
}

/* ---- requests ---- */

/* Interrupts are taken only while a wait hlts (a wait whose condition already holds never
 * enables them): wait for the counter to move, which lets a pending interrupt in. */
static bool got_irq(volatile unsigned *counter, unsigned from)
{
    return wait_count(counter, from, IO_TIMEOUT);
}

/* One request, synchronously, in slot 0. Returns false on a timeout or a bad used entry
 * (reason in err); else the status byte and the used length. */
static bool blk_one(struct virtq *vq, uint32_t type, uint64_t sector, const void *out, uint32_t out_len, void *in,
                    uint32_t in_len, uint8_t *status, uint32_t *used, char *err, size_t errlen)
{
    struct blk_slot *s = &slots[0];
    if (!blk_add(vq, s, type, sector, out, out_len, in, in_len)) {
        snprintf(err, errlen, "no room in queue %u", vq->index);
        return false;
    }
    vq_kick(vq);
    if (!blk_wait_used(vq, IO_TIMEOUT)) {
        snprintf(err, errlen, "request type %u sector %lu: no completion within 5 s (queue %u used idx %u, "
                 "Status 0x%x)", type, sector, vq->index, vq_used_idx(vq), vdev_status(vq->dev));
        return false;
    }
    void *tok;
    if (!vq_pop(vq, &tok, used) || tok != s) {
        snprintf(err, errlen, "request type %u: bad used entry", type);
        return false;
    }
    *status = *s->status;
    return true;
}

#define ONE(vq, type, sector, out, olen, in, ilen, st, used)                                                  \
    do {                                                                                                  \
        char why_[160];                                                                                   \
        if (!blk_one(vq, type, sector, out, olen, in, ilen, st, used, why_, sizeof(why_)))                \
            return test_fail("%s", why_);                                                                 \
    } while (0)

/* A stream of whole-sector reads or writes over [first, first + count) on one queue, up to
 * nslots requests in flight (a blk_job). Writes carry the pattern; reads are checked against
 * it. Runs on any CPU: failures go to err, nothing is printed. */
struct stream {
    struct blk_job job;
    bool write;
    uint32_t seed;
    uint64_t first, count, next;
};

static int stream_next(struct blk_job *j, struct blk_slot *s)
{
    struct stream *st = (struct stream *)j;
    uint64_t end = st->first + st->count;
    if (st->next >= end)
        return -1;
    s->sector = st->next;
    s->nsec = (uint32_t)(end - st->next < REQ_SECTORS ? end - st->next : REQ_SECTORS);
    if (st->write)
        for (uint32_t k = 0; k < s->nsec; k++)
            fill_sector(s->buf + k * SECTOR, st->next + k, st->seed);
    st->next += s->nsec;
    return st->write ? BLK_T_OUT : BLK_T_IN;
}

static bool stream_check(struct blk_job *j, struct blk_slot *s)
{
    struct stream *st = (struct stream *)j;
    if (st->write)
        return true;
    for (uint32_t k = 0; k < s->nsec; k++) {
        int at = check_sector(s->buf + k * SECTOR, s->sector + k, st->seed);
        if (at >= 0) {
            snprintf(j->err, sizeof(j->err), "queue %u: sector %lu differs at byte %d: 0x%02x, expected the "
                     "pattern", j->vq->index, s->sector + k, at, s->buf[k * SECTOR + (unsigned)at]);
            return false;
        }
    }
    return true;
}

/* A stream over [first, first + count) in nslots of the slots. */
static void stream_init(struct stream *st, struct virtq *vq, struct blk_slot *sl, unsigned nslots, bool write,
                        uint32_t seed, uint64_t first, uint64_t count)
{
    *st = (struct stream){.job = {.vq = vq, .slots = sl, .depth = nslots, .next = stream_next,
                                  .done = stream_check},
                          .write = write, .seed = seed, .first = first, .count = count};
}

static bool stream_run(struct stream *st)
{
    st->next = st->first;
    return blk_job_run(&st->job);
}

/* ---- virtio_blk: pattern over the whole disk, FLUSH, read back ---- */
static enum test_result test_virtio_blk(void)
{
    struct vdev *d = blk();
    if (!d)
        return test_skip("no virtio-blk device (mica --disk IMG)");
    if (ro_disk(d))
        return test_skip("read-only disk (virtio_blk_ro covers it)");
    CHECK(blk_mem(), "out of memory");
    CHECK(blk_up(d, BLK_FEATURES, 1), "bring-up failed: Status 0x%x", vdev_status(d));
    struct virtq *vq = &d->vq[0];
    uint64_t cap = blk_capacity(d);
    uint64_t want_cap = cmdline_get_u64("blk_sectors", 0);
    printf("# virtio_blk: %s, %lu sectors (%lu KiB), features 0x%lx", vdev_transport_name(d), cap, cap / 2,
           d->features);
    if (d->features & BIT64(BLK_F_SIZE_MAX))
        printf(", size_max %u", vdev_config_read(d, BCFG_SIZE_MAX, 4));
    if (d->features & BIT64(BLK_F_SEG_MAX))
        printf(", seg_max %u", vdev_config_read(d, BCFG_SEG_MAX, 4));
    if (d->features & BIT64(BLK_F_BLK_SIZE))
        printf(", blk_size %u", vdev_config_read(d, BCFG_BLK_SIZE, 4));
    printf(", queue size %u\n", vq->num);
    CHECK(cap > 0, "capacity 0");
    CHECK(!want_cap || cap == want_cap, "capacity %lu sectors, the command line says %lu", cap, want_cap);
    if (d->features & BIT64(BLK_F_BLK_SIZE)) {
        uint32_t bs = vdev_config_read(d, BCFG_BLK_SIZE, 4);
        CHECK(bs >= 512 && !(bs & (bs - 1)), "blk_size %u is not a power of two >= 512", bs);
    }
    if (d->features & BIT64(BLK_F_SEG_MAX))
        CHECK(vdev_config_read(d, BCFG_SEG_MAX, 4) >= 1, "seg_max 0");
    if (d->features & BIT64(BLK_F_SIZE_MAX))
        CHECK(vdev_config_read(d, BCFG_SIZE_MAX, 4) >= REQ_SECTORS * SECTOR,
              "size_max %u: smaller than our 64 KiB segments", vdev_config_read(d, BCFG_SIZE_MAX, 4));
    uint64_t n = cap;
    if (n > MAX_SECTORS) {
        printf("# virtio_blk: only the first %u sectors (64 MiB) are written\n", MAX_SECTORS);
        n = MAX_SECTORS;
    }
    uint32_t seed = pattern_seed();
    unsigned irq0 = d->used_irqs;
    static struct stream st;
    stream_init(&st, vq, slots, NSLOTS, true, seed, 0, n);
    CHECK(stream_run(&st), "write: %s", st.job.err);
    uint64_t tw = st.job.t1 - st.job.t0;
    unsigned reqs = st.job.requests;
    uint8_t status;
    uint32_t used;
    if (d->features & BIT64(BLK_F_FLUSH)) {
        ONE(vq, BLK_T_FLUSH, 0, NULL, 0, NULL, 0, &status, &used);
        CHECK(status == BLK_S_OK && used == 1, "FLUSH: status %u, used len %u (expected 0, 1)", status, used);
    } else {
        printf("# virtio_blk: FLUSH not offered\n");
    }
    stream_init(&st, vq, slots, NSLOTS, false, seed, 0, n);
    CHECK(stream_run(&st), "read back: %s", st.job.err);
    uint64_t tr = st.job.t1 - st.job.t0;
    CHECK(got_irq(&d->used_irqs, irq0), "requests completed but no used-buffer interrupt arrived");
    printf("# virtio_blk: wrote %lu sectors, pattern seed %u\n", n, seed);
    printf("# virtio_blk: %u + %u requests of up to %u KiB, %u in flight; write %lu us, read %lu us, %u used "
           "interrupts, %u kicks (%u suppressed)\n", reqs, st.job.requests, REQ_SECTORS * SECTOR / 1024, NSLOTS,
           cycles_to_ns(tw) / 1000, cycles_to_ns(tr) / 1000, d->used_irqs - irq0, vq->kicks, vq->kicks_suppressed);
    return TEST_PASS;
}
TEST(virtio_blk, test_virtio_blk);

/* ---- virtio_blk_errors ---- */

/* DISCARD or WRITE_ZEROES of [sector, sector + num), then the range reads zeroes; its old
 * content is put back (the host checks the image after the run). */
static enum test_result zero_range(struct virtq *vq, uint32_t type, const char *name, uint64_t sector, uint32_t num,
                                   uint32_t flags)
{
    uint8_t status;
    uint32_t used, len = num * SECTOR;
    uint8_t *save = misc, *buf = misc + 2 * PAGE_SIZE, *seg = slots[1].buf;
    CHECK(len <= 2 * PAGE_SIZE, "range too long");
    ONE(vq, BLK_T_IN, sector, NULL, 0, save, len, &status, &used);
    CHECK(status == BLK_S_OK, "%s: reading the range first: status %u", name, status);
    struct {
        uint64_t sector;
        uint32_t num, flags;
    } __attribute__((packed)) r = {sector, num, flags};
    memcpy(seg, &r, sizeof(r));
    ONE(vq, type, 0, seg, sizeof(r), NULL, 0, &status, &used);
    if (status == BLK_S_UNSUPP) {
        printf("# virtio_blk_errors: %s of sectors %lu+%u (flags %u): UNSUPP (the host file system cannot)\n",
               name, sector, num, flags);
        return TEST_SKIP;
    }
    CHECK(status == BLK_S_OK, "%s of sectors %lu+%u: status %u", name, sector, num, status);
    memset(buf, 0xee, len);
    ONE(vq, BLK_T_IN, sector, NULL, 0, buf, len, &status, &used);
    CHECK(status == BLK_S_OK, "%s: read after: status %u", name, status);
    /* The spec leaves discarded sectors' content open (write-zeroes must read zero); mica
     * punches a hole, so there they read zero. QEMU: reported only. */
    bool must = type != BLK_T_DISCARD || boot_source() == BOOT_FDT;
    for (uint32_t i = 0; i < len; i++) {
        if (buf[i] == 0)
            continue;
        CHECK(!must, "%s of sectors %lu+%u: byte %u reads 0x%02x, not 0", name, sector, num, i, buf[i]);
        printf("# virtio_blk_errors: %s of sectors %lu+%u: byte %u reads 0x%02x afterwards (allowed)\n", name,
               sector, num, i, buf[i]);
        break;
    }
    ONE(vq, BLK_T_OUT, sector, save, len, NULL, 0, &status, &used);
    CHECK(status == BLK_S_OK, "%s: restoring the range: status %u", name, status);
    printf("# virtio_blk_errors: %s of sectors %lu+%u (flags %u) done, range restored\n", name, sector, num,
           flags);
    return TEST_PASS;
}

static enum test_result test_virtio_blk_errors(void)
{
    struct vdev *d = blk();
    if (!d)
        return test_skip("no virtio-blk device (mica --disk IMG)");
    CHECK(blk_mem(), "out of memory");
    CHECK(blk_up(d, BLK_FEATURES | BIT64(BLK_F_DISCARD) | BIT64(BLK_F_WRITE_ZEROES), 1),
          "bring-up failed: Status 0x%x", vdev_status(d));
    struct virtq *vq = &d->vq[0];
    uint64_t cap = blk_capacity(d);
    CHECK(cap >= 64, "capacity %lu: too small for this test (64 sectors)", cap);
    uint8_t *buf = misc, status;
    uint32_t used;

    /* Beyond the end: the sector after the last; a request straddling the end. */
    ONE(vq, BLK_T_IN, cap, NULL, 0, buf, SECTOR, &status, &used);
    CHECK(status == BLK_S_IOERR, "read of sector %lu (the capacity): status %u, expected IOERR (1)", cap, status);
    ONE(vq, BLK_T_IN, cap - 1, NULL, 0, buf, 2 * SECTOR, &status, &used);
    CHECK(status == BLK_S_IOERR, "read of sectors %lu+2 (straddling the end): status %u, expected IOERR", cap - 1,
          status);
    ONE(vq, BLK_T_IN, ~0ULL, NULL, 0, buf, SECTOR, &status, &used);
    CHECK(status == BLK_S_IOERR, "read of sector 2^64-1: status %u, expected IOERR", status);
    if (!ro_disk(d)) {
        ONE(vq, BLK_T_OUT, cap, buf, SECTOR, NULL, 0, &status, &used);
        CHECK(status == BLK_S_IOERR, "write of sector %lu (the capacity): status %u, expected IOERR", cap, status);
    }
    /* Not a whole number of sectors. */
    ONE(vq, BLK_T_IN, 0, NULL, 0, buf, 100, &status, &used);
    CHECK(status == BLK_S_IOERR, "read of 100 bytes: status %u, expected IOERR", status);
    ONE(vq, BLK_T_IN, 0, NULL, 0, buf, SECTOR + 1, &status, &used);
    CHECK(status == BLK_S_IOERR, "read of 513 bytes: status %u, expected IOERR", status);
    if (!ro_disk(d)) {
        ONE(vq, BLK_T_OUT, 0, buf, 100, NULL, 0, &status, &used);
        CHECK(status == BLK_S_IOERR, "write of 100 bytes: status %u, expected IOERR", status);
    }
    /* Unknown types (not 2/3: legacy SCSI commands; nor an odd one: legacy devices mask the
     * OUT bit, and 5 was FLUSH_OUT). */
    static const uint32_t bad_types[] = {6, 42, 0x7ffffffe};
    for (unsigned i = 0; i < ARRAY_SIZE(bad_types); i++) {
        ONE(vq, bad_types[i], 0, NULL, 0, NULL, 0, &status, &used);
        CHECK(status == BLK_S_UNSUPP, "request type %u: status %u, expected UNSUPP (2)", bad_types[i], status);
        CHECK(used >= 1, "request type %u: used len %u (the status byte counts)", bad_types[i], used);
    }
    /* The device still works: a good read. */
    ONE(vq, BLK_T_IN, 0, NULL, 0, buf, SECTOR, &status, &used);
    CHECK(status == BLK_S_OK && used == SECTOR + 1, "read of sector 0 after the errors: status %u, used len %u",
          status, used);

    /* GET_ID: 20 bytes, the serial NUL-padded. */
    char id[24];
    memset(buf, 0xee, 32);
    ONE(vq, BLK_T_GET_ID, 0, NULL, 0, buf, 20, &status, &used);
    CHECK(status == BLK_S_OK, "GET_ID: status %u", status);
    CHECK(used >= 1 && used <= 21, "GET_ID: used len %u (at most 20 + the status byte)", used);
    memcpy(id, buf, 20);
    id[20] = 0;
    const char *want = cmdline_get("blk_serial");
    printf("# virtio_blk_errors: GET_ID '%s' (used len %u)%s%s%s\n", id, used, want ? ", expected '" : "",
           want ? want : "", want ? "'" : "");
    if (want) {
        size_t wl = strlen(want);
        CHECK(wl <= 20, "blk_serial= is longer than 20 bytes");
        CHECK(!memcmp(buf, want, wl) && (wl == 20 || buf[wl] == 0), "GET_ID returned '%s', expected '%s'", id, want);
    }

    /* DISCARD and WRITE_ZEROES, if offered, on 8 KiB at sector 64-aligned offsets. */
    bool skipped = false;
    if (ro_disk(d)) {
        printf("# virtio_blk_errors: read-only disk: DISCARD / WRITE_ZEROES not tried\n");
    } else {
        if (d->features & BIT64(BLK_F_DISCARD)) {
            /* 16 sectors at 16: aligned for any discard_sector_alignment up to 8 KiB */
            printf("# virtio_blk_errors: discard_sector_alignment %u\n", vdev_config_read(d, BCFG_DISCARD_ALIGN, 4));
            enum test_result r = zero_range(vq, BLK_T_DISCARD, "DISCARD", 16, 16, 0);
            if (r == TEST_FAIL)
                return r;
            skipped |= r == TEST_SKIP;
        } else {
            printf("# virtio_blk_errors: DISCARD not offered\n");
            /* Not negotiated: the device must refuse it. */
            struct {
                uint64_t sector;
                uint32_t num, flags;
            } __attribute__((packed)) r = {16, 16, 0};
            memcpy(slots[1].buf, &r, sizeof(r));
            ONE(vq, BLK_T_DISCARD, 0, slots[1].buf, sizeof(r), NULL, 0, &status, &used);
            CHECK(status != BLK_S_OK, "DISCARD without the feature: status OK");
        }
        if (d->features & BIT64(BLK_F_WRITE_ZEROES)) {
            /* Without UNMAP the device must write zeroes; with UNMAP (write_zeroes_may_unmap) it may
             * punch a hole instead. */
            enum test_result r = zero_range(vq, BLK_T_WRITE_ZEROES, "WRITE_ZEROES", 48, 16, 0);
            if (r == TEST_FAIL)
                return r;
            skipped |= r == TEST_SKIP;
            if (vdev_config_read(d, BCFG_WZ_MAY_UNMAP, 1)) {
                r = zero_range(vq, BLK_T_WRITE_ZEROES, "WRITE_ZEROES", 48, 16, BLK_WZ_FLAG_UNMAP);
                if (r == TEST_FAIL)
                    return r;
                skipped |= r == TEST_SKIP;
            }
        } else {
            printf("# virtio_blk_errors: WRITE_ZEROES not offered\n");
        }
    }
    if (d->features & BIT64(BLK_F_FLUSH)) {
        ONE(vq, BLK_T_FLUSH, 0, NULL, 0, NULL, 0, &status, &used);
        CHECK(status == BLK_S_OK, "FLUSH: status %u", status);
    }
    if (skipped)
        printf("# virtio_blk_errors: a zero check was skipped (UNSUPP)\n");
    return TEST_PASS;
}
TEST(virtio_blk_errors, test_virtio_blk_errors);

/* ---- virtio_blk_ro (mica --disk IMG,ro): RO offered, writes fail, reads work ---- */
static enum test_result test_virtio_blk_ro(void)
{
    struct vdev *d = blk();
    if (!d)
        return test_skip("no virtio-blk device (mica --disk IMG,ro)");
    CHECK(blk_mem(), "out of memory");
    CHECK(ro_disk(d), "VIRTIO_BLK_F_RO not offered (features 0x%lx): run with --disk IMG,ro", d->offered);
    CHECK(blk_up(d, BLK_FEATURES | BIT64(BLK_F_DISCARD) | BIT64(BLK_F_WRITE_ZEROES), 1),
          "bring-up failed: Status 0x%x", vdev_status(d));
    CHECK(d->features & BIT64(BLK_F_RO), "RO not negotiated");
    struct virtq *vq = &d->vq[0];
    uint64_t cap = blk_capacity(d);
    CHECK(cap > 0, "capacity 0");
    uint8_t *before = misc, *w = misc + PAGE_SIZE, status;
    uint32_t used;
    ONE(vq, BLK_T_IN, 0, NULL, 0, before, SECTOR, &status, &used);
    CHECK(status == BLK_S_OK && used == SECTOR + 1, "read of sector 0: status %u, used len %u", status, used);
    memset(w, 0xa5, SECTOR);
    ONE(vq, BLK_T_OUT, 0, w, SECTOR, NULL, 0, &status, &used);
    CHECK(status == BLK_S_IOERR, "write to a read-only disk: status %u, expected IOERR (1)", status);
    if (d->offered & BIT64(BLK_F_WRITE_ZEROES) || d->offered & BIT64(BLK_F_DISCARD))
        printf("# virtio_blk_ro: a read-only disk offers DISCARD/WRITE_ZEROES (features 0x%lx)\n", d->offered);
    struct {
        uint64_t sector;
        uint32_t num, flags;
    } __attribute__((packed)) r = {0, 8, 0};
    memcpy(slots[1].buf, &r, sizeof(r));
    /* mica refuses both; QEMU answers OK to a DISCARD on a read-only drive (advisory, nothing
     * changes): reported only. Sector 0 must keep its content either way. */
    static const uint32_t dwz[] = {BLK_T_WRITE_ZEROES, BLK_T_DISCARD};
    for (unsigned i = 0; i < ARRAY_SIZE(dwz); i++) {
        const char *nm = dwz[i] == BLK_T_DISCARD ? "DISCARD" : "WRITE_ZEROES";
        ONE(vq, dwz[i], 0, slots[1].buf, sizeof(r), NULL, 0, &status, &used);
        CHECK(status != BLK_S_OK || boot_source() != BOOT_FDT, "%s on a read-only disk: status OK", nm);
        if (status == BLK_S_OK)
            printf("# virtio_blk_ro: %s of sectors 0+8 on a read-only disk: status OK\n", nm);
    }
    memset(w, 0, SECTOR);
    ONE(vq, BLK_T_IN, 0, NULL, 0, w, SECTOR, &status, &used);
    CHECK(status == BLK_S_OK && !memcmp(w, before, SECTOR), "sector 0 changed after the refused write / discard");
    if (d->features & BIT64(BLK_F_FLUSH)) {
        ONE(vq, BLK_T_FLUSH, 0, NULL, 0, NULL, 0, &status, &used);
        CHECK(status == BLK_S_OK, "FLUSH on a read-only disk: status %u", status);
    }
    /* Read the whole disk (up to 64 MiB); with blk_seed= check the pattern, else count it. */
    uint64_t n = cap > MAX_SECTORS ? MAX_SECTORS : cap, with = 0;
    const char *seed_s = cmdline_get("blk_seed");
    if (seed_s) {
        static struct stream st;
        stream_init(&st, vq, slots, NSLOTS, false, pattern_seed(), 0, n);
        CHECK(stream_run(&st), "read: %s", st.job.err);
        with = n;
    } else {
        for (uint64_t k = 0; k < n; k += REQ_SECTORS) {
            uint32_t ns = (uint32_t)(n - k < REQ_SECTORS ? n - k : REQ_SECTORS);
            ONE(vq, BLK_T_IN, k, NULL, 0, slots[1].buf, ns * SECTOR, &status, &used);
            CHECK(status == BLK_S_OK && used == ns * SECTOR + 1, "read of sectors %lu+%u: status %u, used len %u",
                  k, ns, status, used);
            for (uint32_t i = 0; i < ns; i++)
                with += has_prefix(slots[1].buf + i * SECTOR, k + i);
        }
    }
    printf("# virtio_blk_ro: read %lu sectors, %lu carry the pattern%s\n", n, with,
           seed_s ? " (checked with blk_seed)" : " header");
    return TEST_PASS;
}
TEST_DESTRUCTIVE(virtio_blk_ro, test_virtio_blk_ro);

/* ---- virtio_blk_mq: CPU 1 drives queue 1 while CPU 0 drives queue 0 ---- */

/* Each half of the disk: a scratch pattern (seed ^ 0x5a) written and checked, then the real
 * pattern written and checked (the host checks the image afterwards). */
static void mq_worker(void *arg)
{
    struct stream *st = arg;
    uint32_t seed = st->seed;
    st->seed = seed ^ 0x5a;
    st->write = true;
    if (!stream_run(st))
        return;
    st->write = false;
    if (!stream_run(st))
        return;
    uint64_t t0 = st->job.t0;
    st->seed = seed;
    st->write = true;
    if (!stream_run(st))
        return;
    st->write = false;
    stream_run(st);
    st->job.t0 = t0;
}

static enum test_result test_virtio_blk_mq(void)
{
    struct vdev *d = blk();
    if (!d)
        return test_skip("no virtio-blk device (mica --disk IMG)");
    if (ro_disk(d))
        return test_skip("read-only disk");
    if (boot_cpus() < 2)
        return test_skip("one vCPU (mica --cpus 2)");
    if (!(d->offered & BIT64(BLK_F_MQ)))
        return test_skip("VIRTIO_BLK_F_MQ not offered");
    CHECK(blk_mem(), "out of memory");
    vdev_begin(d); /* num_queues is valid once MQ is offered */
    unsigned nq = vdev_config_read(d, BCFG_NUM_QUEUES, 2);
    if (nq < 2)
        return test_skip("num_queues %u", nq);
    CHECK(smp_wait_arrived(1, 1000 * MS), "cpu 1 never arrived");
    CHECK(blk_up(d, BLK_FEATURES | BIT64(BLK_F_MQ), 2), "bring-up with 2 queues failed: Status 0x%x",
          vdev_status(d));
    uint64_t cap = blk_capacity(d), n = cap > MAX_SECTORS ? MAX_SECTORS : cap;
    CHECK(n >= 2, "capacity %lu", cap);
    uint64_t half = n / 2;
    uint32_t seed = pattern_seed();
    static struct stream st[2];
    stream_init(&st[0], &d->vq[0], slots, NSLOTS / 2, false, seed, 0, half);
    stream_init(&st[1], &d->vq[1], slots + NSLOTS / 2, NSLOTS / 2, false, seed, half, n - half);
    unsigned irq0 = d->used_irqs;
    CHECK(smp_call_async(1, mq_worker, &st[1]), "cpu 1 did not take the call");
    mq_worker(&st[0]);
    bool back = smp_call_wait(1, 60000 * MS);
    CHECK(back, "cpu 1 did not finish queue 1 within 60 s (used idx %u)", vq_used_idx(&d->vq[1]));
    CHECK(st[0].job.ok, "cpu 0: %s", st[0].job.err);
    CHECK(st[1].job.ok, "cpu 1: %s", st[1].job.err);
    CHECK(vq_used_idx(&d->vq[0]) && vq_used_idx(&d->vq[1]), "a queue saw no completions");
    CHECK(got_irq(&d->used_irqs, irq0), "no used-buffer interrupt");
    /* Overlap: both streams ran at the same time (informational: one may simply be faster). */
    const struct blk_job *j0 = &st[0].job, *j1 = &st[1].job;
    uint64_t s = j0->t0 > j1->t0 ? j0->t0 : j1->t0, e = j0->t1 < j1->t1 ? j0->t1 : j1->t1;
    printf("# virtio_blk_mq: %u queues offered; cpu 0 -> queue 0 sectors 0+%lu (%u requests), cpu 1 -> queue 1 "
           "sectors %lu+%lu (%u requests); overlap %lu us of %lu / %lu us\n", nq, half, j0->requests, half,
           n - half, j1->requests, e > s ? cycles_to_ns(e - s) / 1000 : 0, cycles_to_ns(j0->t1 - j0->t0) / 1000,
           cycles_to_ns(j1->t1 - j1->t0) / 1000);
    if (vdev_is_pci(d) && d->irq_mode == VDEV_IRQ_MSIX)
        printf("# virtio_blk_mq: MSI-X entries 1, 2: %u, %u interrupts\n", d->vec_irqs[1], d->vec_irqs[2]);
    return TEST_PASS;
}
TEST(virtio_blk_mq, test_virtio_blk_mq);
