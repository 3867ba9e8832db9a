/* virtio devices (issues #3, #4): rng, console, negotiation, reset, EVENT_IDX, over whichever
 * transport the device sits on (virtio-mmio v2/legacy, virtio-pci modern/legacy). The hostile
 * drivers are in tests_virtio_hostile.c; what both share is here, declared in tests_virtio.h.
 * mica: --rng and/or --console virtio [--transport mmio-legacy|pci|pci-transitional]; other
 * devices may be there too, no test touches them. A test whose device is missing SKIPs. */
#include "tests_virtio.h"

/* ---- shared with tests_virtio_hostile.c ---- */

/* never-reused pages, so allocate once */
#define POOL_PAGES 80
static uint8_t *pool;

uint8_t *vtest_page(unsigned i)
{
    if (!pool)
        pool = alloc_pages(POOL_PAGES);
    return pool && i < POOL_PAGES ? pool + (size_t)i * PAGE_SIZE : NULL;
}

struct vdev *vtest_rng(void) { return virtio_find(VIRTIO_ID_RNG, 0); }
struct vdev *vtest_con(void) { return virtio_find(VIRTIO_ID_CONSOLE, 0); }

static bool all_equal(const uint8_t *p, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (p[i] != p[0])
            return false;
    return true;
}

/* Why a wait for the used ring timed out. */
static enum test_result used_timeout(struct virtq *vq, const char *what, unsigned irq0)
{
    struct vdev *d = vq->dev;
    uint16_t u = vq_used_idx(vq);
    return test_fail("%s: timed out: queue %u used idx %u (expected > %u), avail idx %u, used irqs %u -> %u, "
                     "Status 0x%x, InterruptStatus 0x%x",
                     what, vq->index, u, vq->last_used, vq->avail_idx, irq0, d->used_irqs, vdev_status(d),
                     vdev_isr(d));
}


/* The used-buffer interrupt follows the used idx update: wait for it (bounded). */
static bool got_used_irq(struct vdev *d, unsigned irq0)
{
    return wait_count(&d->used_irqs, irq0, IO_TIMEOUT);
}

/* One rng request of len bytes (direct, or indirect in nseg pieces); checks the used length
 * and that the data is not constant. */
static enum test_result rng_once(struct vdev *d, uint32_t len, bool indirect, const char *what)
{
    struct virtq *vq = &d->vq[0];
    uint8_t *buf = vtest_page(PG_MISC);
    CHECK(buf, "out of memory");
    memset(buf, 0x5a, len);
    struct vbuf b = {pa(buf), len};
    unsigned irq0 = d->used_irqs;
    CHECK(vq_add(vq, &b, 0, 1, buf, indirect) >= 0, "%s: no room in the queue", what);
    vq_kick(vq);
    if (!vq_wait_used(vq, 1, IO_TIMEOUT))
        return used_timeout(vq, what, irq0);
    void *tok;
    uint32_t got;
    CHECK(vq_pop(vq, &tok, &got), "%s: used ring entry invalid", what);
    CHECK(tok == buf, "%s: used entry names another head", what);
    CHECK(got == len, "%s: used len %u, expected %u", what, got, len);
    CHECK(len < 16 || !all_equal(buf, len), "%s: %u bytes all 0x%x", what, len, buf[0]);
    CHECK(got_used_irq(d, irq0), "%s: used buffer but no used-buffer interrupt", what);
    return TEST_PASS;
}

/* Sends text through the console's transmitq and waits for it to come back used. */
static enum test_result con_write(struct vdev *d, const char *text, const char *what)
{
    struct virtq *vq = &d->vq[1];
    uint8_t *buf = vtest_page(PG_CON);
    CHECK(buf, "out of memory");
    size_t n = strlen(text);
    memcpy(buf, text, n);
    struct vbuf b = {pa(buf), (uint32_t)n};
    unsigned irq0 = d->used_irqs;
    CHECK(vq_add(vq, &b, 1, 0, buf, false) >= 0, "%s: no room in the transmitq", what);
    vq_kick(vq);
    if (!vq_wait_used(vq, 1, IO_TIMEOUT))
        return used_timeout(vq, what, irq0);
    void *tok;
    uint32_t got;
    CHECK(vq_pop(vq, &tok, &got), "%s: used ring entry invalid", what);
    CHECK(tok == buf, "%s: used entry names another head", what);
    CHECK(got_used_irq(d, irq0), "%s: used buffer but no used-buffer interrupt", what);
    return TEST_PASS;
}

enum test_result vtest_works(struct vdev *d, const char *what)
{
    if (d->device_id == VIRTIO_ID_RNG)
        return rng_once(d, 64, false, what);
    CHECK(d->device_id == VIRTIO_ID_CONSOLE, "%s: no request for a virtio %s device", what,
          virtio_dev_name(d->device_id));
    char line[120];
    snprintf(line, sizeof(line), "# virtio-console: %s\n", what);
    return con_write(d, line, what);
}

/* ---- virtio_rng: 64 requests each of 1, 64 and 4096 bytes, 16 per kick (fewer when the
 * queue is smaller: QEMU's virtio-rng has 8 entries) ---- */
#define RNG_REQS  64
#define RNG_BATCH 16

static enum test_result test_virtio_rng(void)
{
    struct vdev *d = vtest_rng();
    if (!d)
        return test_skip("no virtio-rng device (mica --rng)");
    CHECK(vtest_page(0), "out of memory");
    CHECK(vdev_up(d, STD_FEATURES, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    struct virtq *vq = &d->vq[0];
    /* The queue size is a power of 2, so the batch divides RNG_REQS. */
    unsigned batch = vq->num < RNG_BATCH ? vq->num : RNG_BATCH;
    static const uint32_t sizes[] = {1, 64, 4096};
    static uint8_t prev[4096];
    unsigned irq0 = d->used_irqs;
    for (unsigned s = 0; s < ARRAY_SIZE(sizes); s++) {
        uint32_t len = sizes[s];
        uint8_t ones[RNG_REQS];
        bool have_prev = false;
        for (unsigned b = 0; b < RNG_REQS / batch; b++) {
            for (unsigned i = 0; i < batch; i++) {
                uint8_t *p = vtest_page(b * batch + i);
                memset(p, 0x5a, len);
                struct vbuf vb = {pa(p), len};
                CHECK(vq_add(vq, &vb, 0, 1, p, false) >= 0, "no room in the queue (num_free %u of %u)",
                      vq->num_free, vq->num);
            }
            unsigned irqb = d->used_irqs;
            vq_kick(vq);
            if (!vq_wait_used(vq, (uint16_t)batch, IO_TIMEOUT))
                return used_timeout(vq, "rng batch", irqb);
            for (unsigned i = 0; i < batch; i++) {
                void *tok;
                uint32_t got;
                CHECK(vq_pop(vq, &tok, &got), "used entry %u of the batch invalid", i);
                uint8_t *p = tok;
                unsigned k = (unsigned)((p - vtest_page(0)) / PAGE_SIZE);
                CHECK(k < RNG_REQS, "used entry token %p is not one of ours", tok);
                CHECK(got == len, "request %u: used len %u, expected %u", k, got, len);
            }
            for (unsigned i = 0; i < batch; i++) {
                unsigned k = b * batch + i;
                uint8_t *p = vtest_page(k);
                if (len == 1) {
                    ones[k] = p[0];
                    continue;
                }
                CHECK(!all_equal(p, len), "request %u: %u bytes all 0x%x", k, len, p[0]);
                CHECK(!have_prev || memcmp(p, prev, len), "request %u: same %u bytes as the one before", k, len);
                memcpy(prev, p, len);
                have_prev = true;
            }
        }
        if (len == 1)
            CHECK(!all_equal(ones, RNG_REQS), "%u one-byte requests all returned 0x%x", RNG_REQS, ones[0]);
    }
    CHECK(got_used_irq(d, irq0), "the used ring advanced but no used-buffer interrupt arrived");
    printf("# virtio_rng: %u requests (%s%s, queue size %u, %u per kick), %u kicks (%u suppressed), %u used "
           "interrupts\n", RNG_REQS * (unsigned)ARRAY_SIZE(sizes), vdev_transport_name(d),
           vq->event_idx ? ", EVENT_IDX" : "", vq->num, batch, vq->kicks, vq->kicks_suppressed, d->used_irqs - irq0);
    return TEST_PASS;
}
TEST(virtio_rng, test_virtio_rng);

/* ---- virtio_rng_indirect: chains through indirect tables of several writable segments;
 * the gaps between the segments must stay untouched. As many requests per kick as the queue
 * holds (an indirect chain takes one descriptor, the direct one four): one round on a 16-entry
 * queue, two on QEMU's 8-entry one ---- */
static const struct {
    uint32_t off, len;
} segs[] = {{0, 8}, {64, 100}, {512, 1000}, {2048, 2000}};

/* Request k's page: every segment filled, every byte outside them still 0x5a. */
static enum test_result indirect_check(unsigned k, const uint8_t *p, uint32_t got, uint32_t total, bool direct)
{
    CHECK(got == total, "request %u (%s): used len %u, expected %u", k, direct ? "direct" : "indirect", got, total);
    uint32_t at = 0;
    for (unsigned s = 0; s < ARRAY_SIZE(segs); s++) {
        CHECK(!all_equal(p + segs[s].off, segs[s].len), "request %u segment %u (%u bytes) not filled", k, s,
              segs[s].len);
        for (; at < segs[s].off; at++)
            CHECK(p[at] == 0x5a, "request %u: byte %u outside the segments was written", k, at);
        at = segs[s].off + segs[s].len;
    }
    for (; at < PAGE_SIZE; at++)
        CHECK(p[at] == 0x5a, "request %u: byte %u outside the segments was written", k, at);
    return TEST_PASS;
}

static enum test_result test_virtio_rng_indirect(void)
{
    struct vdev *d = vtest_rng();
    if (!d)
        return test_skip("no virtio-rng device (mica --rng)");
    if (!(d->offered & BIT64(VIRTIO_F_INDIRECT_DESC)))
        return test_skip("the device does not offer VIRTIO_RING_F_INDIRECT_DESC");
    CHECK(vtest_page(0), "out of memory");
    CHECK(vdev_up(d, BIT64(VIRTIO_F_INDIRECT_DESC), 0), "bring-up failed: Status 0x%x", vdev_status(d));
    struct virtq *vq = &d->vq[0];
    CHECK(vq->indirect_ok, "INDIRECT_DESC not negotiated");
    CHECK(vq->num >= ARRAY_SIZE(segs), "queue size %u: too small for the %u-descriptor direct chain", vq->num,
          (unsigned)ARRAY_SIZE(segs));
    enum { NREQ = 9 }; /* 8 indirect, the last one a direct chain of the same segments */
    uint32_t total = 0;
    for (unsigned s = 0; s < ARRAY_SIZE(segs); s++)
        total += segs[s].len;
    unsigned next = 0, done = 0, rounds = 0, seen = 0;
    while (done < NREQ) {
        unsigned first = next;
        /* Queue what fits, then one kick for the round. */
        for (; next < NREQ; next++) {
            bool indirect = next < NREQ - 1;
            if (vq->num_free < (indirect ? 1 : ARRAY_SIZE(segs)))
                break;
            uint8_t *p = vtest_page(next);
            memset(p, 0x5a, PAGE_SIZE);
            struct vbuf vb[ARRAY_SIZE(segs)];
            for (unsigned s = 0; s < ARRAY_SIZE(segs); s++)
                vb[s] = (struct vbuf){pa(p + segs[s].off), segs[s].len};
            CHECK(vq_add(vq, vb, 0, ARRAY_SIZE(segs), p, indirect) >= 0, "no room for request %u (num_free %u of %u)",
                  next, vq->num_free, vq->num);
        }
        CHECK(next > done, "no room for request %u (num_free %u of %u)", next, vq->num_free, vq->num);
        rounds++;
        unsigned irq0 = d->used_irqs;
        vq_kick(vq);
        if (!vq_wait_used(vq, (uint16_t)(next - done), IO_TIMEOUT))
            return used_timeout(vq, "indirect requests", irq0);
        for (; done < next; done++) {
            void *tok;
            uint32_t got;
            CHECK(vq_pop(vq, &tok, &got), "used entry %u invalid", done);
            uint8_t *p = tok;
            unsigned k = (unsigned)((p - vtest_page(0)) / PAGE_SIZE);
            CHECK(p >= vtest_page(0) && k >= first && k < next, "used token %p is not one of the outstanding requests",
                  tok);
            CHECK(!(seen & 1u << k), "request %u used twice", k);
            seen |= 1u << k;
            enum test_result r = indirect_check(k, p, got, total, k == NREQ - 1);
            if (r != TEST_PASS)
                return r;
        }
    }
    printf("# virtio_rng_indirect: %u requests of %u segments (%u bytes) via indirect tables + 1 direct chain, "
           "%u round(s) on a %u-entry queue\n", NREQ - 1, (unsigned)ARRAY_SIZE(segs), total, rounds, vq->num);
    return TEST_PASS;
}
TEST(virtio_rng_indirect, test_virtio_rng_indirect);

/* ---- virtio_console_out: one line through the transmitq, as a two-buffer chain ---- */
static enum test_result test_virtio_console_out(void)
{
    struct vdev *d = vtest_con();
    if (!d)
        return test_skip("no virtio-console device (mica --console virtio)");
    CHECK(vdev_up(d, STD_FEATURES | BIT64(VIRTIO_CONSOLE_F_SIZE), 0), "bring-up failed: Status 0x%x",
          vdev_status(d));
    if (d->features & BIT64(VIRTIO_CONSOLE_F_SIZE))
        printf("# virtio-console: %ux%u\n", vdev_config_read(d, 0, 2), vdev_config_read(d, 2, 2));
    struct virtq *vq = &d->vq[1];
    static const char a[] = "virtio-console: ", b[] = "hello from the guest\n";
    uint8_t *buf = vtest_page(PG_CON);
    CHECK(buf, "out of memory");
    memcpy(buf, a, sizeof(a) - 1);
    memcpy(buf + 256, b, sizeof(b) - 1);
    struct vbuf vb[2] = {{pa(buf), sizeof(a) - 1}, {pa(buf + 256), sizeof(b) - 1}};
    unsigned irq0 = d->used_irqs;
    CHECK(vq_add(vq, vb, 2, 0, buf, false) >= 0, "no room in the transmitq");
    vq_kick(vq);
    if (!vq_wait_used(vq, 1, IO_TIMEOUT))
        return used_timeout(vq, "transmit", irq0);
    void *tok;
    uint32_t got;
    CHECK(vq_pop(vq, &tok, &got), "used ring entry invalid");
    CHECK(tok == buf, "used entry names another head");
    CHECK(got == 0, "transmit buffer: used len %u, expected 0 (the device writes nothing)", got);
    CHECK(got_used_irq(d, irq0), "used buffer but no used-buffer interrupt");
    return TEST_PASS;
}
TEST(virtio_console_out, test_virtio_console_out);

/* ---- virtio_console_in (needs input): a line through the receiveq ---- */
#define RX_BUFS 8
#define RX_LEN  64

struct rx_state {
    struct virtq *vq;
    char line[256];
    unsigned len;
    bool done;
};

static bool rx_cond(void *arg)
{
    struct rx_state *s = arg;
    return vq_has_used(s->vq);
}

static enum test_result test_virtio_console_in(void)
{
    struct vdev *d = vtest_con();
    if (!d)
        return test_skip("no virtio-console device (mica --console virtio)");
    CHECK(vdev_up(d, STD_FEATURES, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    struct virtq *vq = &d->vq[0];
    for (unsigned i = 0; i < RX_BUFS; i++) {
        uint8_t *p = vtest_page(PG_CON + 1) + i * RX_LEN;
        struct vbuf vb = {pa(p), RX_LEN};
        CHECK(vq_add(vq, &vb, 0, 1, p, false) >= 0, "no room in the receiveq");
    }
    vq_kick(vq);
    printf("# virtio_console_in: waiting for a line\n");
    static struct rx_state s;
    memset(&s, 0, sizeof(s));
    s.vq = vq;
    uint64_t start = rdtsc(), limit = ns_to_cycles(30000 * MS);
    unsigned bufs = 0;
    while (!s.done) {
        uint64_t el = rdtsc() - start;
        if (el >= limit || !wait_until(rx_cond, &s, tsc_hz ? cycles_to_ns(limit - el) : 30000 * MS))
            break;
        void *tok;
        uint32_t got;
        while (vq_pop(vq, &tok, &got)) {
            const char *p = tok;
            bufs++;
            CHECK(got <= RX_LEN, "used len %u larger than the %u-byte buffer", got, RX_LEN);
            for (uint32_t i = 0; i < got && !s.done; i++) {
                if (p[i] == '\n' || p[i] == '\r')
                    s.done = s.len > 0;
                else if (s.len < sizeof(s.line) - 1)
                    s.line[s.len++] = p[i];
            }
            struct vbuf vb = {pa(tok), RX_LEN}; /* give the buffer back */
            CHECK(vq_add(vq, &vb, 0, 1, tok, false) >= 0, "no room to re-post a receive buffer");
        }
        vq_kick(vq);
    }
    s.line[s.len] = 0;
    CHECK(s.done, "no input line within 30 s (%u bytes in %u buffers so far; Status 0x%x)", s.len, bufs,
          vdev_status(d));
    printf("# received: %s\n", s.line);
    return TEST_PASS;
}
TEST_DESTRUCTIVE(virtio_console_in, test_virtio_console_in);

/* ---- virtio_console_size (needs a terminal resize): a config-change interrupt ---- */
static void con_size(struct vdev *d, uint32_t *gen, uint16_t *cols, uint16_t *rows)
{
    uint32_t g0, g1 = vdev_generation(d);
    unsigned tries = 0;
    do { /* 2.4.1 / 4.2.2.2: re-read until the generation is stable around the reads */
        g0 = g1;
        *cols = (uint16_t)vdev_config_read(d, 0, 2);
        *rows = (uint16_t)vdev_config_read(d, 2, 2);
        g1 = vdev_generation(d);
    } while (g0 != g1 && ++tries < 100);
    *gen = g1;
}


static enum test_result test_virtio_console_size(void)
{
    struct vdev *d = vtest_con();
    if (!d)
        return test_skip("no virtio-console device (mica --console virtio)");
    if (!(d->offered & BIT64(VIRTIO_CONSOLE_F_SIZE)))
        return test_skip("the device does not offer VIRTIO_CONSOLE_F_SIZE");
    CHECK(vdev_up(d, STD_FEATURES | BIT64(VIRTIO_CONSOLE_F_SIZE), 0), "bring-up failed: Status 0x%x",
          vdev_status(d));
    uint32_t g0, g1;
    uint16_t c0, r0, c1, r1;
    con_size(d, &g0, &c0, &r0);
    printf("# virtio_console_size: initial %ux%u generation %u\n", c0, r0, g0);
    unsigned cfg0 = d->config_irqs;
    printf("# virtio_console_size: waiting for a resize\n");
    bool got = wait_count(&d->config_irqs, cfg0, 30000 * MS);
    CHECK(got, "no configuration-change interrupt within 30 s (generation now %u)",
          vdev_generation(d));
    con_size(d, &g1, &c1, &r1);
    printf("# console size: %ux%u generation %u -> %u\n", c1, r1, g0, g1);
    uint8_t st = vdev_status(d);
    CHECK(!(st & VIRTIO_S_NEEDS_RESET), "a resize left Status 0x%x (DEVICE_NEEDS_RESET)", st);
    CHECK(!vdev_has_generation(d) || g1 != g0, "ConfigGeneration unchanged (%u) after a config-change interrupt", g0);
    CHECK(c1 != c0 || r1 != r0, "size unchanged (%ux%u) after a config-change interrupt", c0, r0);
    return TEST_PASS;
}
TEST_DESTRUCTIVE(virtio_console_size, test_virtio_console_size);

/* ---- virtio_negotiation: an unoffered feature is refused, a legal subset accepted ---- */
static enum test_result test_virtio_negotiation(void)
{
    struct vdev *d = vtest_rng();
    if (!d)
        return test_skip("no virtio-rng device (mica --rng)");
    if (vdev_legacy(d)) {
        printf("# virtio_negotiation: legacy transport has no FEATURES_OK: checking the subset only\n");
    } else {
        static const unsigned candidates[] = {33, 34, 35, 1, 2, 3, 24, 27};
        unsigned bad = 64;
        for (unsigned i = 0; i < ARRAY_SIZE(candidates) && bad == 64; i++)
            if (!(d->offered & BIT64(candidates[i])))
                bad = candidates[i];
        CHECK(bad < 64, "the device offers every candidate bit (features 0x%lx)", d->offered);
        vdev_begin(d);
        uint64_t f = d->offered | BIT64(bad);
        bool ok = vdev_set_features(d, f);
        uint8_t st = vdev_status(d);
        printf("# virtio_negotiation: acked 0x%lx (bit %u not offered): Status 0x%x\n", f, bad, st);
        bool refused = !ok && !(st & VIRTIO_S_FEATURES_OK);
        /* The spec only forbids the driver to ack an unoffered bit; a device may accept (QEMU
         * drops the bit and keeps FEATURES_OK). mica documents the stricter refusal, so only
         * under mica is acceptance a failure. */
        if (boot_source() == BOOT_PVH && !refused)
            printf("# virtio_negotiation: FEATURES_OK stuck with unoffered bit %u: allowed by the spec, not checked "
                   "under QEMU (PVH boot)\n", bad);
        else
            CHECK(refused, "FEATURES_OK stuck after acking unoffered bit %u (Status 0x%x)", bad, st);
        /* Without VERSION_1 a modern device may refuse too (mica does): informational. */
        vdev_begin(d);
        ok = vdev_set_features(d, d->offered & BIT64(VIRTIO_F_EVENT_IDX));
        printf("# virtio_negotiation: without VERSION_1: FEATURES_OK %s\n", ok ? "accepted" : "refused");
    }
    vdev_begin(d);
    uint64_t subset = d->offered & BIT64(VIRTIO_F_VERSION_1);
    CHECK(vdev_set_features(d, subset), "FEATURES_OK refused for the subset 0x%lx (Status 0x%x)", subset,
          vdev_status(d));
    CHECK(vq_setup(d, 0, 0), "queue setup failed");
    vdev_driver_ok(d);
    uint8_t st = vdev_status(d);
    uint8_t want = VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_DRIVER_OK |
                   (vdev_legacy(d) ? 0 : VIRTIO_S_FEATURES_OK);
    CHECK(st == want, "Status 0x%x after DRIVER_OK, expected 0x%x", st, want);
    CHECK(!d->vq[0].event_idx && !d->vq[0].indirect_ok, "subset unexpectedly has EVENT_IDX/INDIRECT");
    for (unsigned i = 0; i < 4; i++) {
        enum test_result r = rng_once(d, 64, false, "rng request with only the subset");
        if (r != TEST_PASS)
            return r;
    }
    return TEST_PASS;
}
TEST(virtio_negotiation, test_virtio_negotiation);

static bool has_used(void *arg) { return vq_has_used(arg); }

/* ---- virtio_reset: what the spec requires of a reset (Status 0, InterruptStatus clear, no queue
 * enabled, queue maxima intact), then the device works again. The selector registers
 * (DeviceFeaturesSel, QueueSel) are left away from 0 across the reset: the spec does not say a
 * reset returns them to 0 (QEMU keeps DeviceFeaturesSel), so what they read afterwards is only
 * reported, and every check selects explicitly. ---- */
static enum test_result reset_one(struct vdev *d, const char *name)
{
    CHECK(vdev_up(d, STD_FEATURES | BIT64(VIRTIO_CONSOLE_F_SIZE), 0), "%s: bring-up failed: Status 0x%x", name,
          vdev_status(d));
    enum test_result r = vtest_works(d, "in use before reset");
    if (r != TEST_PASS)
        return r;
    uint32_t qmax[VDEV_MAX_QUEUES];
    for (unsigned q = 0; q < d->nqueues; q++) {
        vdev_queue_select(d, q);
        qmax[q] = vdev_queue_max(d);
    }
    /* Leave the interrupt status set: a used buffer while the device's interrupt is held back
     * (mmio/INTx: the IOAPIC pin masked, so the edge is lost; MSI-X: the function mask, so it
     * stays pending and arrives on unmask, leaving the ISR alone). */
    uint32_t isr_before = 0;
    if (d->device_id == VIRTIO_ID_RNG) {
        vdev_irq_mask(d, true);
        struct virtq *vq = &d->vq[0];
        uint8_t *p = vtest_page(PG_MISC);
        struct vbuf vb = {pa(p), 16};
        if (vq_add(vq, &vb, 0, 1, p, false) < 0) {
            vdev_irq_mask(d, false);
            return test_fail("no room in the queue");
        }
        vq_kick(vq);
        bool used = poll_until(has_used, vq, IO_TIMEOUT, 1 * MS);
        if (!vdev_is_pci(d)) /* a PCI ISR read would clear it */
            isr_before = vdev_isr(d);
        vdev_irq_mask(d, false);
        CHECK(used, "%s: request with the handler off never used", name);
    }
    /* Selectors away from 0 across the reset: the device must reset regardless. */
    vdev_queue_select(d, 7);
    vdev_feature_select(d, 1);
    vdev_reset(d);
    uint8_t st = vdev_status(d);
    uint32_t isr = vdev_isr(d);
    uint32_t feat = vdev_feature_word(d);
    uint32_t nmax = vdev_queue_max(d);
    printf("# virtio_reset: %s (%s): InterruptStatus 0x%x before reset%s; after: Status 0x%x InterruptStatus 0x%x; "
           "unselected reads (informational, the spec does not reset selectors): DeviceFeatures 0x%x (word 0 0x%x, "
           "word 1 0x%x), QueueNumMax %u\n", name, vdev_transport_name(d), isr_before,
           vdev_is_pci(d) ? " (not read: PCI reads clear)" : "", st, isr, feat, (uint32_t)d->offered,
           (uint32_t)(d->offered >> 32), nmax);
    CHECK(st == 0, "%s: Status 0x%x after reset", name, st);
    CHECK(isr == 0, "%s: InterruptStatus 0x%x after reset", name, isr);
    for (unsigned q = 0; q < d->nqueues; q++) {
        vdev_queue_select(d, q);
        uint32_t m = vdev_queue_max(d);
        CHECK(m == qmax[q], "%s: queue %u: QueueNumMax %u after reset, %u before", name, q, m, qmax[q]);
        CHECK(!vdev_queue_live(d), "%s: queue %u: still enabled (QueueReady/QueuePFN) after reset", name, q);
    }
    CHECK(vdev_up(d, STD_FEATURES | BIT64(VIRTIO_CONSOLE_F_SIZE), 0), "%s: bring-up after reset failed: Status 0x%x",
          name, vdev_status(d));
    return vtest_works(d, "works after reset");
}

static enum test_result test_virtio_reset(void)
{
    struct vdev *devs[2] = {vtest_rng(), vtest_con()};
    if (!devs[0] && !devs[1])
        return test_skip("no virtio-rng or virtio-console device");
    for (unsigned i = 0; i < 2; i++) {
        if (!devs[i])
            continue;
        enum test_result r = reset_one(devs[i], i ? "console" : "rng");
        if (r != TEST_PASS)
            return r;
    }
    return TEST_PASS;
}
TEST(virtio_reset, test_virtio_reset);

/* ---- virtio_event_idx: used_event holds back used-buffer interrupts until crossed ---- */
static enum test_result test_virtio_event_idx(void)
{
    struct vdev *d = vtest_rng();
    if (!d)
        return test_skip("no virtio-rng device (mica --rng)");
    if (!(d->offered & BIT64(VIRTIO_F_EVENT_IDX)))
        return test_skip("the device does not offer VIRTIO_RING_F_EVENT_IDX");
    CHECK(vdev_up(d, BIT64(VIRTIO_F_EVENT_IDX), 0), "bring-up failed: Status 0x%x", vdev_status(d));
    struct virtq *vq = &d->vq[0];
    CHECK(vq->event_idx, "EVENT_IDX not negotiated");
    /* Warm-up: the first used buffer interrupts whatever used_event says. */
    enum test_result r = rng_once(d, 16, false, "warm-up request");
    if (r != TEST_PASS)
        return r;
    enum { AHEAD = 8 };
    vq->manual_used_event = true;
    uint16_t base = vq->last_used;
    /* Interrupt when entry base + AHEAD - 1 is used, i.e. with the AHEAD-th request. */
    WRITE_ONCE(*vq_used_event(vq), (uint16_t)(base + AHEAD - 1));
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    unsigned irq0 = d->used_irqs;
    uint8_t *p = vtest_page(PG_MISC);
    for (unsigned i = 0; i < AHEAD; i++) {
        if (i == AHEAD - 1) {
            /* Nothing may have arrived for the requests below used_event (allow stragglers). */
            sleep_ns(50 * MS);
            CHECK(d->used_irqs == irq0, "%u used-buffer interrupt(s) for requests below used_event %u (used idx %u)",
                  d->used_irqs - irq0, (uint16_t)(base + AHEAD - 1), vq_used_idx(vq));
        }
        struct vbuf vb = {pa(p + 16 * i), 16};
        CHECK(vq_add(vq, &vb, 0, 1, p, false) >= 0, "no room in the queue");
        vq_kick(vq);
        if (i < AHEAD - 1) {
            /* Suppressed: poll the used ring (the timer wakes us every ms). */
            CHECK(poll_until(has_used, vq, IO_TIMEOUT, 1 * MS), "request %u of %u never used (used idx %u)", i + 1,
                  AHEAD, vq_used_idx(vq));
        } else {
            CHECK(wait_count(&d->used_irqs, irq0, IO_TIMEOUT), "no interrupt after crossing used_event %u (used idx %u)",
                  (uint16_t)(base + AHEAD - 1), vq_used_idx(vq));
        }
        uint32_t got = 0;
        CHECK(vq_pop(vq, NULL, &got) && got == 16, "request %u: bad used entry (len %u)", i + 1, got);
    }
    CHECK(d->used_irqs == irq0 + 1, "%u interrupts for %u requests, expected 1", d->used_irqs - irq0, AHEAD);
    vq->manual_used_event = false;
    WRITE_ONCE(*vq_used_event(vq), vq->last_used);
    printf("# virtio_event_idx: %u requests, 1 interrupt at used_event %u; avail_event %u; %u kicks (%u "
           "suppressed)\n", AHEAD, (uint16_t)(base + AHEAD - 1), READ_ONCE(*vq_avail_event(vq)), vq->kicks,
           vq->kicks_suppressed);
    /* And back to normal: every request interrupts again. */
    return rng_once(d, 16, false, "request after used_event caught up");
}
TEST(virtio_event_idx, test_virtio_event_idx);
