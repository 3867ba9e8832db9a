/* ---- snapshot: one test that spans a snapshot and a restore (tests/integration/snapshot.sh).
 * Not part of tests=all: it waits for the host.
 *
 * Before: virtio-rng and virtio-blk are brought up and serve a request each (blk writes a
 * patterned sector), 8 MiB of RAM get a pattern from a TSC seed, the UART's receive interrupt
 * is armed, and the guest prints "# snapshot: ready" and waits for a line on the serial port.
 * The host then saves the VM and ends it (`snapshot NAME stop`), restores it in a new mica and
 * types the line. After: the pattern is whole, the TSC moved on, the LAPIC timer still wakes a
 * timed wait, the RTC ticks, and both devices serve requests on the queues set up before,
 * without a reset (blk reads back the sector written before and writes another). ---- */
#include "blk.h"
#include "guest.h"
#include "tests_virtio.h"

#define PATTERN_BYTES (8u << 20)
#define RBR 0
#define IER 1
#define LSR 5

static volatile bool line_done;

static void rx_irq(unsigned vector, void *ctx)
{
    (void)vector, (void)ctx;
    while (inb(COM1 + LSR) & 1)
        if (inb(COM1 + RBR) == '\n')
            line_done = true;
}

static bool got_line(void *arg)
{
    (void)arg;
    return line_done;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void fill(uint64_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = next(&seed);
}

/* The index of the first word that differs from the pattern, or n. */
static size_t check(const uint64_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != next(&seed))
            return i;
    return n;
}

static uint8_t cmos(uint8_t reg)
{
    outb(0x70, reg);
    return inb(0x71);
}

/* Seconds since midnight from the RTC (BCD, as mica's RTC keeps it). */
static unsigned rtc_seconds(void)
{
    unsigned s = cmos(0), m = cmos(2), h = cmos(4);
    return ((h >> 4) * 10 + (h & 15)) * 3600 + ((m >> 4) * 10 + (m & 15)) * 60 + (s >> 4) * 10 + (s & 15);
}

/* One blk request in slot s, waited for: the status byte, or -1 on a timeout. */
static int blk_sync(struct virtq *vq, struct blk_slot *s, uint32_t type, uint64_t sector, void *data)
{
    bool out = type == BLK_T_OUT;
    void *tok;
    uint32_t len;

    if (!blk_add(vq, s, type, sector, out ? data : NULL, out ? SECTOR : 0, out ? NULL : data, out ? 0 : SECTOR))
        return -1;
    vq_kick(vq);
    if (!blk_wait_used(vq, BLK_IO_TIMEOUT_NS) || !vq_pop(vq, &tok, &len) || tok != s)
        return -1;
    return *s->status;
}

static enum test_result test_snapshot(void)
{
    struct vdev *rng = vtest_rng(), *blk = blk_find();
    static struct blk_slot slot;
    uint64_t *mem = alloc_pages(PATTERN_BYTES / PAGE_SIZE);
    uint64_t seed = rdtsc() | 1, t0, t1;
    uint8_t *sec = NULL;
    unsigned rtc0, irqs;
    enum test_result r;

    CHECK(rng, "no virtio-rng device (mica --rng)");
    CHECK(mem && vtest_page(0), "out of memory");
    CHECK(vdev_up(rng, STD_FEATURES, 0), "rng bring-up failed: Status 0x%x", vdev_status(rng));
    if ((r = vtest_works(rng, "before the snapshot")) != TEST_PASS)
        return r;
    if (blk) {
        CHECK(blk_up(blk, 0, 1), "blk bring-up failed: Status 0x%x", vdev_status(blk));
        CHECK(blk_slots_alloc(&slot, 1, SECTOR), "out of memory");
        sec = vtest_page(1);
        for (unsigned i = 0; i < SECTOR; i++)
            sec[i] = (uint8_t)(seed >> (i % 8) * 8) ^ (uint8_t)i;
        CHECK(blk_sync(&blk->vq[0], &slot, BLK_T_OUT, 7, sec) == BLK_S_OK, "blk write before failed");
    }
    fill(mem, PATTERN_BYTES / 8, seed);
    line_done = false;
    irq_register(VEC_UART, rx_irq, NULL);
    ioapic_route(COM1_GSI, VEC_UART, bsp_apic_id, IOAPIC_EDGE);
    outb(COM1 + IER, 0x01);
    rtc0 = rtc_seconds();
    t0 = rdtsc();
    printf("# snapshot: ready (seed %lx)\n", seed);
    bool got = wait_until(got_line, NULL, 600000 * MS);
    t1 = rdtsc();
    outb(COM1 + IER, 0);
    ioapic_mask(COM1_GSI);
    irq_unregister(VEC_UART);
    CHECK(got, "no line on the serial port within 600 s");
    printf("# snapshot: resumed after %lu ms of guest TSC\n", cycles_to_ns(t1 - t0) / 1000000);

    size_t bad = check(mem, PATTERN_BYTES / 8, seed);
    CHECK(bad == PATTERN_BYTES / 8, "RAM pattern differs at byte %lu of %u", bad * 8, PATTERN_BYTES);
    CHECK(t1 > t0, "the TSC went back: %lu then %lu", t0, t1);
    /* A timed wait ends through the LAPIC timer's interrupt: it still fires. */
    t0 = rdtsc();
    wait_until(never, NULL, 20 * MS);
    t1 = rdtsc();
    CHECK(cycles_to_ns(t1 - t0) >= 20 * MS, "a 20 ms wait ended after %lu ns", cycles_to_ns(t1 - t0));
    unsigned rtc1 = rtc_seconds();
    CHECK(rtc1 >= rtc0 || rtc0 - rtc1 > 80000, "the RTC went back: %u s then %u s", rtc0, rtc1);
    /* The devices, as the driver left them: same queues, no reset. */
    irqs = rng->used_irqs;
    if ((r = vtest_works(rng, "after the restore")) != TEST_PASS)
        return r;
    CHECK(rng->used_irqs > irqs, "rng: no used-buffer interrupt after the restore");
    if (blk) {
        uint8_t *back = vtest_page(2);
        CHECK(blk_sync(&blk->vq[0], &slot, BLK_T_IN, 7, back) == BLK_S_OK, "blk read after failed");
        CHECK(!memcmp(back, sec, SECTOR), "blk: the sector written before the snapshot reads back different");
        CHECK(blk_sync(&blk->vq[0], &slot, BLK_T_OUT, 8, sec) == BLK_S_OK, "blk write after failed");
    }
    printf("# snapshot: RAM, TSC, LAPIC timer, RTC, virtio-rng%s fine after the restore\n", blk ? ", virtio-blk" : "");
    return TEST_PASS;
}
TEST_DESTRUCTIVE(snapshot, test_snapshot);
