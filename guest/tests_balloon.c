/* virtio-balloon (device ID 5), driven by the host: mica --balloon --control SOCK, then
 * `balloon MIB` on the socket once the guest says it waits (tests/integration/control.py;
 * tests/integration/kvm.sh does it all, over each transport, and checks mica's RSS).
 *
 * virtio_balloon (destructive: needs the host): touches 32 MiB, waits up to 60 s for a
 * configuration interrupt with num_pages > 0, inflates exactly num_pages 4 KiB PFNs of the
 * touched region (256 per buffer), writes `actual`; sends a stats buffer (free-memory,
 * total-memory, available-memory) and waits up to 60 s for the host to hand it back (mica does
 * on `balloon-stats`); deflates half, writes `actual` again, and (mica) checks that the
 * deflated pages read zero: the host discarded them. A fresh stats buffer goes out at the end. */
#include "virtio.h"

#define IO_TIMEOUT (5000 * MS)
#define HOST_TIMEOUT (60000 * MS)

#define BALLOON_F_MUST_TELL_HOST 0
#define BALLOON_F_STATS_VQ       1
#define BALLOON_F_DEFLATE_ON_OOM 2

#define BCFG_NUM_PAGES 0
#define BCFG_ACTUAL    4

#define S_MEMFREE 4
#define S_MEMTOT  5
#define S_AVAIL   6

#define TOUCH_PAGES  8192u /* 32 MiB */
#define PFNS_PER_BUF 256u

struct balloon_stat {
    uint16_t tag;
    uint64_t val;
} __attribute__((packed));

struct target_wait {
    struct vdev *d;
    uint32_t pages;
};

static bool target_set(void *arg)
{
    struct target_wait *w = arg;
    w->pages = vdev_config_read(w->d, BCFG_NUM_PAGES, 4);
    return w->pages != 0;
}

struct used_wait {
    struct virtq *vq;
    uint16_t n;
};

static bool used_n(void *arg)
{
    struct used_wait *w = arg;
    return (uint16_t)(vq_used_idx(w->vq) - w->vq->last_used) >= w->n;
}

/* Interrupt-driven, with a 50 ms re-check in case one is lost (reported by the caller). */
static bool wait_used(struct virtq *vq, uint16_t n, uint64_t timeout_ns)
{
    struct used_wait w = {vq, n};
    return poll_until(used_n, &w, timeout_ns, 50 * MS);
}


/* Sends PFNs pfns[0..n) on vq (inflate or deflate), PFNS_PER_BUF per buffer, and waits for all
 * of them to come back used. */
static enum test_result send_pfns(struct virtq *vq, const char *what, uint32_t *pfns, uint32_t n)
{
    unsigned nb = 0;
    for (uint32_t i = 0; i < n; i += PFNS_PER_BUF, nb++) {
        uint32_t k = n - i < PFNS_PER_BUF ? n - i : PFNS_PER_BUF;
        struct vbuf b = {virt_to_phys(pfns + i), k * 4};
        CHECK(vq_add(vq, &b, 1, 0, pfns + i, false) >= 0, "%s: no room for buffer %u (queue size %u)", what, nb,
              vq->num);
    }
    vq_kick(vq);
    CHECK(wait_used(vq, (uint16_t)nb, IO_TIMEOUT), "%s: %u buffer(s) sent, %u used within 5 s (Status 0x%x)", what,
          nb, (uint16_t)(vq_used_idx(vq) - vq->last_used), vdev_status(vq->dev));
    for (unsigned i = 0; i < nb; i++) {
        void *tok;
        uint32_t len;
        CHECK(vq_pop(vq, &tok, &len), "%s: used entry %u invalid", what, i);
        CHECK(tok && (uint32_t *)tok >= pfns && (uint32_t *)tok < pfns + n, "%s: used entry names another buffer",
              what);
    }
    return TEST_PASS;
}

/* Fills the stats buffer; returns its length. */
static uint32_t fill_stats(struct balloon_stat *s, uint64_t *free_b, uint64_t *total_b)
{
    *free_b = mem_free();
    *total_b = mem_total();
    s[0] = (struct balloon_stat){S_MEMFREE, *free_b};
    s[1] = (struct balloon_stat){S_MEMTOT, *total_b};
    s[2] = (struct balloon_stat){S_AVAIL, *free_b};
    return 3 * sizeof(struct balloon_stat);
}

static enum test_result test_virtio_balloon(void)
{
    struct vdev *d = virtio_find(VIRTIO_ID_BALLOON, 0);
    if (!d)
        return test_skip("no virtio-balloon device (mica --balloon --control SOCK)");
    uint8_t *mem = alloc_pages(TOUCH_PAGES);
    uint32_t *pfns = alloc_pages(TOUCH_PAGES * 4 / PAGE_SIZE);
    struct balloon_stat *stats = alloc_pages(1);
    CHECK(mem && pfns && stats, "out of memory for 32 MiB (mica --mem 96M)");
    /* Touch every page, so the host's resident set holds them. */
    uint64_t t0 = rdtsc();
    for (uint32_t i = 0; i < TOUCH_PAGES; i++)
        WRITE_ONCE(mem[(size_t)i * PAGE_SIZE], (uint8_t)(0xa5 ^ i));
    uint64_t touch_ns = cycles_to_ns(rdtsc() - t0);

    vdev_begin(d);
    uint64_t want = BIT64(VIRTIO_F_VERSION_1) | BIT64(BALLOON_F_STATS_VQ);
    CHECK(vdev_set_features(d, d->offered & want), "features 0x%lx refused", d->offered & want);
    bool have_stats = d->features & BIT64(BALLOON_F_STATS_VQ);
    CHECK(vq_setup(d, 0, 0) && vq_setup(d, 1, 0), "inflate/deflate queue setup failed");
    if (have_stats)
        CHECK(vq_setup(d, 2, 0), "stats queue setup failed");
    vdev_driver_ok(d);
    struct virtq *inflq = &d->vq[0], *deflq = &d->vq[1], *statsq = &d->vq[2];
    printf("# virtio_balloon: %s, features offered 0x%lx, acked 0x%lx; touched %u MiB at 0x%lx in %lu ms\n",
           vdev_transport_name(d), d->offered, d->features, TOUCH_PAGES / 256, virt_to_phys(mem),
           touch_ns / 1000000);
    uint32_t pre = vdev_config_read(d, BCFG_NUM_PAGES, 4), actual0 = vdev_config_read(d, BCFG_ACTUAL, 4);
    CHECK(actual0 == 0, "actual reads %u after reset", actual0);
    if (pre)
        printf("# virtio_balloon: num_pages already %u\n", pre);

    /* The host sets a target. */
    unsigned cfg0 = d->config_irqs, used0 = d->used_irqs;
    printf("# virtio_balloon: waiting for a target\n");
    struct target_wait tw = {d, 0};
    CHECK(poll_until(target_set, &tw, HOST_TIMEOUT, 1000 * MS), "no target (num_pages > 0) within 60 s");
    /* The interrupt may trail the config it announces (KVM injects an irqfd's MSI
     * asynchronously), and the poll may see num_pages first: give it time to come in. */
    CHECK(pre || wait_count(&d->config_irqs, cfg0, IO_TIMEOUT), "num_pages %u but no configuration-change interrupt",
          tw.pages);
    uint32_t n = tw.pages;
    printf("# virtio_balloon: target %u pages (%u MiB), %u config interrupt(s)\n", n, n / 256, d->config_irqs - cfg0);
    CHECK(n <= TOUCH_PAGES, "target %u pages is more than the %u touched pages", n, TOUCH_PAGES);

    /* Inflate exactly n pages of the touched region. */
    uint32_t pfn0 = (uint32_t)(virt_to_phys(mem) / PAGE_SIZE);
    for (uint32_t i = 0; i < n; i++)
        pfns[i] = pfn0 + i;
    enum test_result r = send_pfns(inflq, "inflate", pfns, n);
    if (r != TEST_PASS)
        return r;
    vdev_config_write(d, BCFG_ACTUAL, 4, n);
    uint32_t act = vdev_config_read(d, BCFG_ACTUAL, 4);
    CHECK(act == n, "actual reads %u after writing %u", act, n);
    printf("# virtio_balloon: inflated %u pages\n", n);

    /* Statistics: the device keeps the buffer until the host asks (balloon-stats). */
    if (have_stats) {
        uint64_t fb, tb;
        uint32_t len = fill_stats(stats, &fb, &tb);
        struct vbuf b = {virt_to_phys(stats), len};
        CHECK(vq_add(statsq, &b, 1, 0, stats, false) >= 0, "stats queue: no room");
        vq_kick(statsq);
        printf("# virtio_balloon: stats sent: free-memory %lu total-memory %lu available-memory %lu\n", fb, tb, fb);
        CHECK(wait_used(statsq, 1, HOST_TIMEOUT), "the stats buffer did not come back within 60 s (the host's "
              "balloon-stats returns it)");
        void *tok;
        uint32_t ulen;
        CHECK(vq_pop(statsq, &tok, &ulen) && tok == stats, "stats queue: bad used entry");
        printf("# virtio_balloon: the host asked for new stats\n");
    } else {
        printf("# virtio_balloon: VIRTIO_BALLOON_F_STATS_VQ not offered\n");
    }

    /* Deflate half; the pages the host discarded read back zero (mica: MADV_DONTNEED). */
    uint32_t m = n / 2;
    r = send_pfns(deflq, "deflate", pfns, m);
    if (r != TEST_PASS)
        return r;
    vdev_config_write(d, BCFG_ACTUAL, 4, n - m);
    act = vdev_config_read(d, BCFG_ACTUAL, 4);
    CHECK(act == n - m, "actual reads %u after writing %u", act, n - m);
    uint32_t nonzero = 0;
    for (uint32_t i = 0; i < m; i++)
        nonzero += READ_ONCE(mem[(size_t)i * PAGE_SIZE]) != 0;
    printf("# virtio_balloon: deflated %u pages, %u in the balloon; %u of the deflated pages kept their "
           "content\n", m, n - m, nonzero);
    if (boot_source() == BOOT_FDT)
        CHECK(nonzero == 0, "%u of %u deflated pages still hold the guest's data: the host did not discard them",
              nonzero, m);
    /* a pending interrupt comes in while we wait */
    CHECK(wait_count(&d->used_irqs, used0, IO_TIMEOUT), "buffers were used but no used-buffer interrupt arrived");

    /* A fresh stats buffer for the host's next request. */
    if (have_stats) {
        uint64_t fb, tb;
        struct vbuf b = {virt_to_phys(stats), fill_stats(stats, &fb, &tb)};
        CHECK(vq_add(statsq, &b, 1, 0, stats, false) >= 0, "stats queue: no room");
        vq_kick(statsq);
    }
    return TEST_PASS;
}
TEST_DESTRUCTIVE(virtio_balloon, test_virtio_balloon);
