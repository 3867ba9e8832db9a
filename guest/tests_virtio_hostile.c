/* Hostile virtio drivers (issues #3, #4), over whichever transport the device sits on: a kick
 * before DRIVER_OK (deferred, as Linux's balloon needs), then descriptor loops, buffers beyond RAM
 * or wrapping the address space, nested indirect tables, a read-only buffer where the device must
 * write, an avail index that jumps: the device must go to DEVICE_NEEDS_RESET, raise a
 * configuration interrupt, use nothing, leave the other device alone, and work again after a
 * reset. The victims are the rng and the console of tests_virtio.h; a missing one SKIPs.
 * mica: --rng --console virtio [--transport ...]. */
#include "tests_virtio.h"

/* One attack: inject breaks the rules on the victim (the console when console, else the rng),
 * early: before DRIVER_OK; need: features the attack needs offered. */
typedef const char *(*inject_fn)(struct vdev *d);

static enum test_result hostile(const char *name, bool console, inject_fn inject, bool early, uint64_t need)
{
    struct vdev *victim = console ? vtest_con() : vtest_rng(), *other = console ? vtest_rng() : vtest_con();
    if (!victim)
        return test_skip("no virtio-%s device to attack (mica %s)", console ? "console" : "rng",
                         console ? "--console virtio" : "--rng");
    if ((victim->offered & need) != need)
        return test_skip("the device does not offer features 0x%lx", need);
    CHECK(vtest_page(0), "out of memory");
    if (other) {
        CHECK(vdev_up(other, STD_FEATURES, 0), "other device: bring-up failed: Status 0x%x", vdev_status(other));
        enum test_result r = vtest_works(other, "other device before the attack");
        if (r != TEST_PASS)
            return r;
    } else {
        printf("# %s: no second device: the isolation check is skipped\n", name);
    }
    uint64_t feat = STD_FEATURES & ~BIT64(VIRTIO_F_EVENT_IDX);
    if (early) {
        vdev_begin(victim);
        CHECK(vdev_set_features(victim, victim->offered & feat), "victim: features refused");
        for (unsigned q = 0; q < victim->nqueues; q++)
            CHECK(vq_setup(victim, q, 0), "victim: queue %u setup failed", q);
    } else {
        CHECK(vdev_up(victim, feat, 0), "victim: bring-up failed: Status 0x%x", vdev_status(victim));
    }
    unsigned cfg0 = victim->config_irqs;
    const char *what = inject(victim);
    CHECK(what, "could not build the bad request");
    bool got = wait_count(&victim->config_irqs, cfg0, IO_TIMEOUT);
    uint8_t st = vdev_status(victim);
    printf("# %s: %s: Status 0x%x, InterruptStatus seen 0x%x\n", name, what, st, victim->isr_seen);
    CHECK(got, "%s: no configuration-change interrupt within 2 s (Status 0x%x)", what, st);
    CHECK(st & VIRTIO_S_NEEDS_RESET, "%s: Status 0x%x without DEVICE_NEEDS_RESET (0x40)", what, st);
    CHECK(victim->isr_seen & VIRTIO_INT_CONFIG, "%s: InterruptStatus never had bit 1", what);
    for (unsigned q = 0; q < victim->nqueues; q++)
        CHECK(!victim->vq[q].num || vq_used_idx(&victim->vq[q]) == 0, "%s: queue %u used idx %u: something was used",
              what, q, vq_used_idx(&victim->vq[q]));
    /* A broken device stays inert: a valid request and a kick are not served until reset. */
    struct virtq *vq = &victim->vq[console ? 1 : 0];
    struct vbuf vb = {pa(vtest_page(PG_MISC + 2)), 64};
    if (vq_add(vq, &vb, console, !console, NULL, false) >= 0)
        vq_notify(vq);
    if (other) {
        enum test_result r = vtest_works(other, "other device works after the attack");
        if (r != TEST_PASS)
            return r;
    } else {
        sleep_ns(20 * MS);
    }
    CHECK(vq_used_idx(vq) == 0, "broken device used a buffer after another kick (used idx %u)", vq_used_idx(vq));
    vdev_reset(victim);
    st = vdev_status(victim);
    CHECK(st == 0, "victim: Status 0x%x after reset (NEEDS_RESET must clear)", st);
    CHECK(vdev_up(victim, STD_FEATURES, 0), "victim: bring-up after reset failed: Status 0x%x", vdev_status(victim));
    return vtest_works(victim, "victim works after reset");
}

static uint8_t *hbuf(void) { return vtest_page(PG_MISC + 1); }

static const char *inject_notify_early(struct vdev *d)
{
    struct virtq *vq = &d->vq[0];
    struct vbuf vb = {pa(hbuf()), 64};
    if (vq_add(vq, &vb, 0, 1, hbuf(), false) < 0)
        return NULL;
    vq_notify(vq); /* Status is ACKNOWLEDGE|DRIVER|FEATURES_OK: no DRIVER_OK yet */
    return "notify before DRIVER_OK";
}

static const char *inject_loop(struct vdev *d)
{
    struct virtq *vq = &d->vq[0];
    int a = vq_alloc_desc(vq), b = vq_alloc_desc(vq);
    if (a < 0 || b < 0)
        return NULL;
    vq->desc[a] = (struct vring_desc){pa(hbuf()), 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, (uint16_t)b};
    vq->desc[b] = (struct vring_desc){pa(hbuf() + 64), 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, (uint16_t)a};
    vq_publish(vq, (uint16_t)a);
    vq_notify(vq);
    return "descriptor chain a -> b -> a";
}

static const char *inject_beyond_ram(struct vdev *d) /* on the console's transmitq */
{
    struct virtq *vq = &d->vq[1];
    int a = vq_alloc_desc(vq);
    if (a < 0)
        return NULL;
    vq->desc[a] = (struct vring_desc){0x7fff00000000ULL, 64, 0, 0};
    vq_publish(vq, (uint16_t)a);
    vq_notify(vq);
    return "transmit buffer at 0x7fff00000000";
}

static const char *inject_wrap(struct vdev *d)
{
    struct virtq *vq = &d->vq[0];
    int a = vq_alloc_desc(vq);
    if (a < 0)
        return NULL;
    vq->desc[a] = (struct vring_desc){0xfffffffffffff000ULL, 0x2000, VRING_DESC_F_WRITE, 0};
    vq_publish(vq, (uint16_t)a);
    vq_notify(vq);
    return "buffer 0xfffffffffffff000 + 0x2000";
}

static const char *inject_nested_indirect(struct vdev *d)
{
    struct virtq *vq = &d->vq[0];
    int a = vq_alloc_desc(vq);
    if (a < 0)
        return NULL;
    struct vring_desc *outer = (struct vring_desc *)(hbuf() + 1024), *inner = outer + 4;
    inner[0] = (struct vring_desc){pa(hbuf()), 64, VRING_DESC_F_WRITE, 0};
    outer[0] = (struct vring_desc){pa(inner), sizeof(*inner), VRING_DESC_F_INDIRECT, 0};
    vq->desc[a] = (struct vring_desc){pa(outer), sizeof(*outer), VRING_DESC_F_INDIRECT, 0};
    vq_publish(vq, (uint16_t)a);
    vq_notify(vq);
    return "indirect table holding an INDIRECT descriptor";
}

static const char *inject_readonly(struct vdev *d)
{
    struct virtq *vq = &d->vq[0];
    struct vbuf vb = {pa(hbuf()), 64};
    if (vq_add(vq, &vb, 1, 0, hbuf(), false) < 0) /* device-readable */
        return NULL;
    vq_notify(vq);
    return "rng buffer without VRING_DESC_F_WRITE";
}

static const char *inject_avail_jump(struct vdev *d)
{
    struct virtq *vq = &d->vq[0];
    struct vbuf vb = {pa(hbuf()), 64};
    if (vq_add(vq, &vb, 0, 1, hbuf(), false) < 0)
        return NULL;
    vq->avail_idx = (uint16_t)(vq->avail_idx + vq->num + 1);
    WRITE_ONCE(vq->avail->idx, vq->avail_idx);
    vq_notify(vq);
    return "avail idx moved by queue size + 2";
}

#define HOSTILE(n, console, fn, early, need)                                                 \
    static enum test_result test_##n(void) { return hostile(#n, console, fn, early, need); } \
    TEST(n, test_##n)

/* A kick before DRIVER_OK breaks the spec's rule, but Linux's virtio_balloon does exactly that
 * with its stats queue, so mica defers it: nothing is used before DRIVER_OK, the device stays
 * healthy, and the buffer is served once DRIVER_OK is set. */
static enum test_result test_virtio_hostile_notify_early(void)
{
    struct vdev *victim = vtest_rng(), *other = vtest_con();
    if (!victim)
        return test_skip("no virtio-rng device (mica --rng)");
    CHECK(vtest_page(0), "out of memory");
    if (other) {
        CHECK(vdev_up(other, STD_FEATURES, 0), "other device: bring-up failed: Status 0x%x", vdev_status(other));
        enum test_result r = vtest_works(other, "other device before the early kick");
        if (r != TEST_PASS)
            return r;
    }
    vdev_begin(victim);
    CHECK(vdev_set_features(victim, victim->offered & STD_FEATURES & ~BIT64(VIRTIO_F_EVENT_IDX)),
          "victim: features refused");
    for (unsigned q = 0; q < victim->nqueues; q++)
        CHECK(vq_setup(victim, q, 0), "victim: queue %u setup failed", q);
    unsigned cfg0 = victim->config_irqs;
    const char *what = inject_notify_early(victim);
    CHECK(what, "could not build the request");
    sleep_ns(50 * MS);
    uint8_t st = vdev_status(victim);
    printf("# virtio_hostile_notify_early: %s: Status 0x%x, used idx %u\n", what, st,
           vq_used_idx(&victim->vq[0]));
    CHECK(vq_used_idx(&victim->vq[0]) == 0, "a buffer was used before DRIVER_OK");
    CHECK(!(st & VIRTIO_S_NEEDS_RESET), "Status 0x%x: the device gave up on an early kick", st);
    CHECK(victim->config_irqs == cfg0, "a configuration interrupt for an early kick");
    vdev_driver_ok(victim);
    CHECK(vq_wait_used(&victim->vq[0], 1, IO_TIMEOUT), "the early buffer was not served after DRIVER_OK");
    void *token;
    uint32_t len;
    CHECK(vq_pop(&victim->vq[0], &token, &len) && len == 64, "the early buffer came back with %u bytes", len);
    if (other) {
        enum test_result r = vtest_works(other, "other device after the early kick");
        if (r != TEST_PASS)
            return r;
    }
    return vtest_works(victim, "victim after the early kick");
}
TEST(virtio_hostile_notify_early, test_virtio_hostile_notify_early);
HOSTILE(virtio_hostile_loop, false, inject_loop, false, 0);
HOSTILE(virtio_hostile_beyond_ram, true, inject_beyond_ram, false, 0);
HOSTILE(virtio_hostile_wrap, false, inject_wrap, false, 0);
HOSTILE(virtio_hostile_nested_indirect, false, inject_nested_indirect, false, BIT64(VIRTIO_F_INDIRECT_DESC));
HOSTILE(virtio_hostile_readonly, false, inject_readonly, false, 0);
HOSTILE(virtio_hostile_avail_jump, false, inject_avail_jump, false, 0);
