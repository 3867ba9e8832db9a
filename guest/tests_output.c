/* output_flood (destructive): more output than the VMM's stdout path holds, on both consoles,
 * then a disk workload that must still complete. tests/integration/guest_output.sh runs it with
 * mica's stdout on a FIFO whose reader never reads (the disk work completes and mica exits with
 * this status: its event loop never waits for stdout) and on one whose reader pauses (every
 * console line arrives, whole and in order, with flood_wait).
 *
 *   1. virtio-console: as many transmit buffers as the queue holds (4 KiB each, one line
 *      "# flood-console NNNN " + filler + "\n"), posted and kicked at once, not waited for; then
 *      a pause until the device stops returning them (it took what the host could hold);
 *   2. COM1: flood_serial bytes of "# output_flood serial NNNNN ..." lines (default 16384);
 *   3. virtio-blk: BLK_SECTORS sectors written with a pattern, read back and compared;
 *   4. the console buffers returned so far must have come back in order with used len 0; with
 *      flood_wait=S, all of them within S seconds (else they may stay with the device).
 * mica: --console virtio --disk IMG (any --transport). A missing device SKIPs. */
#include "blk.h"

#define CON_BUF      4096u
#define CON_PREFIX   "# flood-console "
#define SERIAL_LINE  64u
#define BLK_SECTORS  256u               /* 128 KiB */
#define BLK_REQ      128u               /* sectors per request */
#define STABLE_CHECKS 3                 /* 100 ms apart, no buffer returned: the device waits */

static uint64_t pa(const void *p) { return virt_to_phys(p); }

/* Line i of the console flood, CON_BUF bytes (the host checks it byte for byte). */
static void con_line(uint8_t *p, unsigned i)
{
    int n = snprintf((char *)p, CON_BUF, CON_PREFIX "%04u ", i);
    for (unsigned k = (unsigned)n; k < CON_BUF - 1; k++)
        p[k] = (uint8_t)('a' + (i + k) % 26);
    p[CON_BUF - 1] = '\n';
}

struct reap {
    struct virtq *vq;
    unsigned returned, posted;
    bool bad;            /* out of order, or a used len other than 0 */
};

/* Pops the transmit buffers the device returned; they must come back in posting order. */
static void reap(struct reap *r)
{
    void *tok;
    uint32_t len;
    while (vq_pop(r->vq, &tok, &len)) {
        if ((uintptr_t)tok != r->returned + 1 || len != 0)
            r->bad = true;
        r->returned++;
    }
}

static bool all_back(void *arg)
{
    struct reap *r = arg;
    reap(r);
    return r->returned == r->posted;
}

#define FAIL(...)                           \
    do {                                    \
        snprintf(err, errlen, __VA_ARGS__); \
        return false;                       \
    } while (0)

/* Writes BLK_SECTORS sectors with a pattern, one request at a time, and reads them back. */
static bool blk_rw(struct vdev *d, char *err, size_t errlen)
{
    static struct blk_slot slot;
    static bool have;
    if (!have && !(have = blk_slots_alloc(&slot, 1, BLK_REQ * SECTOR)))
        FAIL("out of memory");
    if (!blk_up(d, 0, 1))
        FAIL("virtio-blk bring-up failed: Status 0x%x", vdev_status(d));
    if (blk_capacity(d) < BLK_SECTORS)
        FAIL("the disk has %lu sectors, %u needed", blk_capacity(d), BLK_SECTORS);
    struct virtq *vq = &d->vq[0];
    uint8_t seed = (uint8_t)(rdtsc() >> 4);
    for (int pass = 0; pass < 2; pass++) {
        bool write = pass == 0;
        const char *what = write ? "write" : "read";
        for (unsigned s = 0; s < BLK_SECTORS; s += BLK_REQ) {
            uint32_t len = BLK_REQ * SECTOR;
            if (write)
                for (uint32_t k = 0; k < len; k++)
                    slot.buf[k] = (uint8_t)(s * 3 + k * 7 + seed);
            else
                memset(slot.buf, 0, len);
            bool ok = write ? blk_add(vq, &slot, BLK_T_OUT, s, slot.buf, len, NULL, 0)
                            : blk_add(vq, &slot, BLK_T_IN, s, NULL, 0, slot.buf, len);
            if (!ok)
                FAIL("no room in the blk queue");
            vq_kick(vq);
            void *tok;
            uint32_t used;
            if (!blk_wait_used(vq, BLK_IO_TIMEOUT_NS) || !vq_pop(vq, &tok, &used))
                FAIL("%s of sector %u: no completion within 5 s", what, s);
            if (*slot.status != BLK_S_OK)
                FAIL("%s of sector %u: status %u", what, s, *slot.status);
            if (!write)
                for (uint32_t k = 0; k < len; k++)
                    if (slot.buf[k] != (uint8_t)(s * 3 + k * 7 + seed))
                        FAIL("sector %u byte %u reads back 0x%x", s + k / SECTOR, k % SECTOR, slot.buf[k]);
        }
    }
    return true;
}

static enum test_result test_output_flood(void)
{
    struct vdev *con = virtio_find(VIRTIO_ID_CONSOLE, 0), *disk = blk_find();
    if (!con || !disk)
        return test_skip("needs virtio-console and virtio-blk (mica --console virtio --disk IMG)");
    uint64_t serial = cmdline_get_u64("flood_serial", 16384), wait_s = cmdline_get_u64("flood_wait", 0);

    CHECK(vdev_up(con, BIT64(VIRTIO_F_VERSION_1), 0), "console bring-up failed: Status 0x%x", vdev_status(con));
    struct reap r = {&con->vq[1], 0, con->vq[1].num, false};
    uint8_t *bufs = alloc_pages(r.posted * CON_BUF / PAGE_SIZE);
    CHECK(bufs, "out of memory for %u console buffers", r.posted);

    /* 1. The console flood: the whole queue at once. */
    for (unsigned i = 0; i < r.posted; i++) {
        con_line(bufs + (size_t)i * CON_BUF, i);
        struct vbuf b = {pa(bufs + (size_t)i * CON_BUF), CON_BUF};
        CHECK(vq_add(r.vq, &b, 1, 0, (void *)(uintptr_t)(i + 1), false) >= 0, "no room for console buffer %u", i);
    }
    vq_kick(r.vq);
    for (unsigned stable = 0, last = ~0u, rounds = 0; stable < STABLE_CHECKS && rounds < 200; rounds++) {
        sleep_ns(100 * MS);
        reap(&r);
        stable = r.returned == last ? stable + 1 : 0;
        last = r.returned;
        if (r.returned == r.posted)
            break;
    }
    unsigned before_serial = r.returned;

    /* 2. The serial flood. */
    char line[SERIAL_LINE];
    for (uint64_t done = 0, n = 0; done < serial; done += SERIAL_LINE, n++) {
        int k = snprintf(line, sizeof(line), "# output_flood serial %05lu ", n);
        for (; k < (int)SERIAL_LINE - 1; k++)
            line[k] = (char)('A' + (n + (unsigned)k) % 26);
        line[SERIAL_LINE - 1] = '\n';
        console_write(line, SERIAL_LINE);
    }

    /* 3. The disk: the VMM serves it whatever its stdout does. */
    char why[160];
    if (!blk_rw(disk, why, sizeof(why)))
        return test_fail("%s", why);

    /* 4. The console buffers. */
    if (wait_s)
        CHECK(poll_until(all_back, &r, wait_s * 1000 * MS, 100 * MS),
              "%u of %u console buffers came back within %lu s", r.returned, r.posted, wait_s);
    reap(&r);
    CHECK(!r.bad, "console buffers came back out of order or with a used len other than 0");
    printf("# output_flood: console returned %u of %u buffers (%u before the serial flood); %lu serial bytes; "
           "%u sectors written and read back\n", r.returned, r.posted, before_serial, serial, BLK_SECTORS);
    return TEST_PASS;
}
TEST_DESTRUCTIVE(output_flood, test_output_flood);
