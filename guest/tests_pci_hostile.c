/* Hostile drivers of the virtio-pci transport (issue #4): accesses past the BARs, writes to
 * read-only common-configuration fields, queue sizes changed after enable, out-of-range
 * queue_select and MSI-X vectors, completions while MSI-X is masked. After each attack mica must
 * be unchanged: the BARs where they were, every device drivable. The device a test drives and the
 * requests come from tests_pci.h: a virtio-pci rng or console, else the test SKIPs.
 * mica: --transport pci | pci-transitional [virtio_pci=legacy] with --rng and/or --console virtio. */
#include "tests_pci.h"

static bool in_any_bar(uint64_t a, bool io)
{
    for (unsigned i = 0; pci_func_get(i); i++) {
        const struct pci_func *f = pci_func_get(i);
        for (unsigned b = 0; b < 6; b++)
            if (f->bar[b].size && f->bar[b].io == io && a >= f->bar[b].addr && a < f->bar[b].addr + f->bar[b].size)
                return true;
    }
    return false;
}

/* The attack changed nothing: every virtio-pci function of a known type still has BAR 4 where
 * it was, and each one the tests can drive works after a reset. */
static enum test_result all_fine(const char *what)
{
    struct vdev *d;
    for (unsigned i = 0; (d = virtio_get(i)); i++) {
        if (!vdev_is_pci(d) || !virtio_dev_known(d->device_id))
            continue;
        uint32_t lo = pci_read32(d->pci, PCI_BAR0 + 16), hi = pci_read32(d->pci, PCI_BAR0 + 20);
        CHECK(((uint64_t)hi << 32 | (lo & ~0xfu)) == d->pci->bar[4].addr, "%s: BAR4 of 00:%02x (%s) now 0x%x%08x",
              what, d->pci->slot, virtio_dev_name(d->device_id), hi, lo);
        if (!pcitest_drivable(d))
            continue;
        enum test_result r = pcitest_up_and_request(d, what);
        if (r != TEST_PASS)
            return r;
    }
    return TEST_PASS;
}

/* Past the end of every virtio function's BARs (of a known type); the functions are checked and
 * the rng / console driven afterwards. */
static enum test_result test_beyond_bar(void)
{
    if (!pcitest_dev())
        return pcitest_no_device();
    unsigned tried = 0;
    for (unsigned i = 0; pci_func_get(i); i++) {
        struct pci_func *f = pci_func_get(i);
        if (!pcitest_vdev_of(f))
            continue;
        uint64_t end = f->bar[4].addr + f->bar[4].size;
        if (f->bar[4].size && !in_any_bar(end, false)) {
            uintptr_t a = (uintptr_t)end;
            uint8_t r8 = mmio_read8(a);
            uint16_t r16 = mmio_read16(a + 2);
            uint32_t r32 = mmio_read32(a + 4), r32e = mmio_read32(a + PAGE_SIZE - 4);
            uint64_t r64 = mmio_read64(a + 8);
            mmio_write32(a, 0);
            mmio_write64(a + 8, 0);
            mmio_write8(a + 0x10, 0);
            uint32_t again = mmio_read32(a);
            /* Inside the BAR, past the structures: informational (mica reads 0 there). */
            uint32_t hole = mmio_read32((uintptr_t)f->bar[4].addr + 0x7ffc);
            printf("# pci_hostile_beyond_bar: 00:%02x: past BAR4 (0x%lx): 0x%x 0x%x 0x%x 0x%lx 0x%x; after writes 0x%x; "
                   "BAR4+0x7ffc reads 0x%x\n", f->slot, end, r8, r16, r32, r64, r32e, again, hole);
            CHECK(r8 == 0xff && r16 == 0xffff && r32 == 0xffffffffu && r64 == ~0ULL && r32e == 0xffffffffu,
                  "past BAR4 of 00:%02x (0x%lx): reads 0x%x 0x%x 0x%x 0x%lx 0x%x, expected all-ones", f->slot, end, r8,
                  r16, r32, r64, r32e);
            CHECK(again == 0xffffffffu, "past BAR4: a write stuck (reads 0x%x)", again);
            tried++;
        }
        uint64_t iend = f->bar[0].addr + f->bar[0].size;
        if (f->bar[0].size && f->bar[0].io && iend < 0xfffc && !in_any_bar(iend, true)) {
            uint16_t p = (uint16_t)iend;
            uint8_t r8 = inb(p);
            uint16_t r16 = inw((uint16_t)(p + 2));
            uint32_t r32 = inl((uint16_t)(p + 4));
            outl((uint16_t)(p + 4), 0);
            outw((uint16_t)(p + 16), 0); /* where QUEUE_NOTIFY would be */
            uint32_t again = inl((uint16_t)(p + 4));
            printf("# pci_hostile_beyond_bar: 00:%02x: past BAR0 (port 0x%x): 0x%x 0x%x 0x%x; after writes 0x%x\n",
                   f->slot, p, r8, r16, r32, again);
            CHECK(r8 == 0xff && r16 == 0xffff && r32 == 0xffffffffu && again == 0xffffffffu,
                  "past BAR0 of 00:%02x (port 0x%x): reads 0x%x 0x%x 0x%x then 0x%x, expected all-ones", f->slot, p, r8,
                  r16, r32, again);
            tried++;
        }
    }
    CHECK(tried, "no BAR end that is not another BAR");
    return all_fine("works after accesses past the BAR");
}
TEST(pci_hostile_beyond_bar, test_beyond_bar);

static enum test_result test_readonly_common(void)
{
    struct vdev *d = pcitest_dev();
    if (!d)
        return pcitest_no_device();
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    if (d->kind == VDEV_PCI_LEGACY) {
        uint16_t io = d->io;
        uint32_t hf = inl(io + VPCI_L_HOST_FEATURES);
        outl(io + VPCI_L_HOST_FEATURES, ~hf);
        uint32_t hf2 = inl(io + VPCI_L_HOST_FEATURES);
        outw(io + VPCI_L_QUEUE_SEL, 0);
        uint16_t qn = inw(io + VPCI_L_QUEUE_NUM);
        outw(io + VPCI_L_QUEUE_NUM, 16);
        uint16_t qn2 = inw(io + VPCI_L_QUEUE_NUM);
        printf("# pci_hostile_readonly_common (legacy): HOST_FEATURES 0x%x -> 0x%x, QUEUE_NUM %u -> %u\n", hf, hf2, qn,
               qn2);
        CHECK(hf2 == hf, "HOST_FEATURES 0x%x after writing 0x%x (was 0x%x)", hf2, ~hf, hf);
        CHECK(qn2 == qn, "QUEUE_NUM %u after writing 16 (was %u)", qn2, qn);
    } else {
        uintptr_t c = d->common;
        uint16_t nq = mmio_read16(c + VPCI_NUM_QUEUES);
        mmio_write16(c + VPCI_NUM_QUEUES, (uint16_t)(nq + 7));
        uint16_t nq2 = mmio_read16(c + VPCI_NUM_QUEUES);
        CHECK(nq2 == nq, "num_queues %u after writing %u (was %u)", nq2, nq + 7, nq);
        for (uint32_t sel = 0; sel < 2; sel++) {
            mmio_write32(c + VPCI_DFSELECT, sel);
            uint32_t f0 = mmio_read32(c + VPCI_DF);
            mmio_write32(c + VPCI_DF, ~f0);
            uint32_t f1 = mmio_read32(c + VPCI_DF);
            CHECK(f1 == f0 && f0 == (uint32_t)(d->offered >> (32 * sel)),
                  "device_feature word %u: 0x%x after writing 0x%x (was 0x%x)", sel, f1, ~f0, f0);
        }
        uint8_t g = mmio_read8(c + VPCI_CFG_GEN);
        mmio_write8(c + VPCI_CFG_GEN, (uint8_t)(g + 1));
        uint8_t g2 = mmio_read8(c + VPCI_CFG_GEN);
        CHECK(g2 == g, "config_generation %u after writing %u (was %u)", g2, (uint8_t)(g + 1), g);
        for (uint16_t q = 0; q < d->hw_queues && q < 8; q++) {
            mmio_write16(c + VPCI_Q_SELECT, q);
            uint16_t o = mmio_read16(c + VPCI_Q_NOTIFY_OFF);
            mmio_write16(c + VPCI_Q_NOTIFY_OFF, (uint16_t)(o + 3));
            uint16_t o2 = mmio_read16(c + VPCI_Q_NOTIFY_OFF);
            CHECK(o2 == o && o == q, "queue %u: queue_notify_off %u after writing %u (was %u)", q, o2, o + 3, o);
        }
        /* NEEDS_RESET belongs to the device: the driver cannot set it. */
        uint8_t st = mmio_read8(c + VPCI_STATUS);
        mmio_write8(c + VPCI_STATUS, st | VIRTIO_S_NEEDS_RESET);
        uint8_t st2 = mmio_read8(c + VPCI_STATUS);
        CHECK(st2 == st, "Status 0x%x after the driver wrote 0x%x", st2, st | VIRTIO_S_NEEDS_RESET);
        printf("# pci_hostile_readonly_common: num_queues %u, features 0x%lx, generation %u, notify_off = queue: "
               "unchanged\n", nq, d->offered, g);
    }
    return pcitest_request(d, "works after writes to read-only fields");
}
TEST(pci_hostile_readonly_common, test_readonly_common);

static enum test_result test_queue_size_after_enable(void)
{
    struct vdev *d = pcitest_dev();
    if (!d)
        return pcitest_no_device();
    vdev_begin(d);
    CHECK(vdev_set_features(d, d->offered & VERSION_1), "features refused");
    unsigned q = pcitest_queue(d);
    if (d->kind == VDEV_PCI_LEGACY) {
        /* QUEUE_NUM is read-only in the legacy interface, before and after QUEUE_PFN. */
        uint16_t io = d->io;
        outw(io + VPCI_L_QUEUE_SEL, (uint16_t)q);
        uint16_t max = inw(io + VPCI_L_QUEUE_NUM);
        outw(io + VPCI_L_QUEUE_NUM, 64);
        uint16_t n1 = inw(io + VPCI_L_QUEUE_NUM);
        for (unsigned i = 0; i < d->nqueues; i++)
            CHECK(vq_setup(d, i, 0), "queue %u setup failed", i);
        outw(io + VPCI_L_QUEUE_SEL, (uint16_t)q);
        uint32_t pfn = inl(io + VPCI_L_QUEUE_PFN);
        outw(io + VPCI_L_QUEUE_NUM, 32);
        outl(io + VPCI_L_QUEUE_PFN, pfn + 16); /* move a live queue */
        uint16_t n2 = inw(io + VPCI_L_QUEUE_NUM);
        uint32_t pfn2 = inl(io + VPCI_L_QUEUE_PFN);
        printf("# pci_hostile_queue_size_after_enable (legacy): QUEUE_NUM %u -> %u -> %u; PFN 0x%x -> 0x%x\n", max, n1,
               n2, pfn, pfn2);
        CHECK(n1 == max && n2 == max, "QUEUE_NUM changed by a write: %u, %u (max %u)", n1, n2, max);
        CHECK(pfn2 == pfn, "QUEUE_PFN of a live queue moved 0x%x -> 0x%x", pfn, pfn2);
    } else {
        uintptr_t c = d->common;
        /* Invalid sizes before enabling are refused too. */
        mmio_write16(c + VPCI_Q_SELECT, (uint16_t)q);
        uint16_t max = mmio_read16(c + VPCI_Q_SIZE);
        static const uint16_t bad[] = {100, 0, 512, 0xffff};
        for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
            mmio_write16(c + VPCI_Q_SIZE, bad[i]);
            uint16_t s = mmio_read16(c + VPCI_Q_SIZE);
            CHECK(s == max, "queue_size %u after writing the invalid %u (max %u)", s, bad[i], max);
        }
        for (unsigned i = 0; i < d->nqueues; i++)
            CHECK(vq_setup(d, i, 64), "queue %u setup with 64 entries failed", i);
        mmio_write16(c + VPCI_Q_SELECT, (uint16_t)q);
        uint32_t desc = mmio_read32(c + VPCI_Q_DESC);
        mmio_write16(c + VPCI_Q_SIZE, 128);
        uint16_t s1 = mmio_read16(c + VPCI_Q_SIZE);
        mmio_write16(c + VPCI_Q_SIZE, 32);
        uint16_t s2 = mmio_read16(c + VPCI_Q_SIZE);
        mmio_write32(c + VPCI_Q_DESC, desc + 0x1000);
        uint32_t desc2 = mmio_read32(c + VPCI_Q_DESC);
        printf("# pci_hostile_queue_size_after_enable: queue %u enabled with 64: writes 128, 32 -> %u, %u; desc 0x%x -> "
               "0x%x\n", q, s1, s2, desc, desc2);
        CHECK(s1 == 64 && s2 == 64, "queue_size %u / %u after writes once enabled (set 64)", s1, s2);
        CHECK(desc2 == desc, "a live queue's descriptor address moved 0x%x -> 0x%x", desc, desc2);
    }
    vdev_driver_ok(d);
    for (unsigned i = 0; i < 3; i++) {
        enum test_result r = pcitest_request(d, "works with the size set before enable");
        if (r != TEST_PASS)
            return r;
    }
    return all_fine("works after reset");
}
TEST(pci_hostile_queue_size_after_enable, test_queue_size_after_enable);

static enum test_result test_queue_select_oob(void)
{
    struct vdev *d = pcitest_dev();
    if (!d)
        return pcitest_no_device();
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    uint16_t oob[] = {(uint16_t)(d->hw_queues + 5), 0xffff};
    bool msix = d->irq_mode == VDEV_IRQ_MSIX;
    for (unsigned i = 0; i < ARRAY_SIZE(oob); i++) {
        uint16_t sel = oob[i], size, vec, size2, vec2;
        uint32_t en = 0, en2 = 0;
        if (d->kind == VDEV_PCI_LEGACY) {
            uint16_t io = d->io;
            outw(io + VPCI_L_QUEUE_SEL, sel);
            size = inw(io + VPCI_L_QUEUE_NUM);
            vec = msix ? inw(io + VPCI_L_MSIX_QUEUE) : 0xffff;
            en = inl(io + VPCI_L_QUEUE_PFN);
            outl(io + VPCI_L_QUEUE_PFN, (uint32_t)(virt_to_phys(pcitest_buf(1)) / PAGE_SIZE));
            if (msix)
                outw(io + VPCI_L_MSIX_QUEUE, 1);
            size2 = inw(io + VPCI_L_QUEUE_NUM);
            vec2 = msix ? inw(io + VPCI_L_MSIX_QUEUE) : 0xffff;
            en2 = inl(io + VPCI_L_QUEUE_PFN);
        } else {
            uintptr_t c = d->common;
            mmio_write16(c + VPCI_Q_SELECT, sel);
            uint16_t rs = mmio_read16(c + VPCI_Q_SELECT);
            CHECK(rs == sel, "queue_select reads %u after writing %u", rs, sel);
            size = mmio_read16(c + VPCI_Q_SIZE);
            vec = mmio_read16(c + VPCI_Q_MSIX);
            en = mmio_read16(c + VPCI_Q_ENABLE) | mmio_read32(c + VPCI_Q_DESC);
            mmio_write16(c + VPCI_Q_SIZE, 64);
            mmio_write16(c + VPCI_Q_MSIX, 1);
            mmio_write32(c + VPCI_Q_DESC, (uint32_t)virt_to_phys(pcitest_buf(1)));
            mmio_write16(c + VPCI_Q_ENABLE, 1);
            size2 = mmio_read16(c + VPCI_Q_SIZE);
            vec2 = mmio_read16(c + VPCI_Q_MSIX);
            en2 = mmio_read16(c + VPCI_Q_ENABLE) | mmio_read32(c + VPCI_Q_DESC);
        }
        printf("# pci_hostile_queue_select_oob: queue %u: size %u vector 0x%x enable/addr 0x%x; after writes %u 0x%x "
               "0x%x\n", sel, size, vec, en, size2, vec2, en2);
        CHECK(size == 0 && size2 == 0, "queue %u: size reads %u, then %u after a write (expected 0)", sel, size, size2);
        CHECK(vec == VIRTIO_MSI_NO_VECTOR && vec2 == VIRTIO_MSI_NO_VECTOR,
              "queue %u: vector reads 0x%x, then 0x%x after a write (expected 0xffff)", sel, vec, vec2);
        CHECK(en == 0 && en2 == 0, "queue %u: enable/address reads 0x%x, then 0x%x after writes", sel, en, en2);
    }
    /* Queue 0 is untouched. */
    struct virtq *vq = &d->vq[0];
    vdev_queue_select(d, 0);
    CHECK(vdev_queue_live(d), "queue 0 no longer enabled");
    if (d->kind == VDEV_PCI) {
        uint16_t s = mmio_read16(d->common + VPCI_Q_SIZE), v = mmio_read16(d->common + VPCI_Q_MSIX);
        uint32_t a = mmio_read32(d->common + VPCI_Q_DESC);
        CHECK(s == vq->num && a == (uint32_t)virt_to_phys(vq->desc) && (!msix || v == 1),
              "queue 0 changed: size %u desc 0x%x vector 0x%x", s, a, v);
    } else {
        uint32_t pfn = inl(d->io + VPCI_L_QUEUE_PFN);
        CHECK(pfn == virt_to_phys(vq->desc) / PAGE_SIZE, "queue 0 PFN now 0x%x", pfn);
    }
    CHECK(!(vdev_status(d) & VIRTIO_S_NEEDS_RESET), "Status 0x%x", vdev_status(d));
    return pcitest_request(d, "works after out-of-range queue_select");
}
TEST(pci_hostile_queue_select_oob, test_queue_select_oob);

static uint16_t rd_vec(struct vdev *d, bool config)
{
    if (d->kind == VDEV_PCI_LEGACY)
        return inw((uint16_t)(d->io + (config ? VPCI_L_MSIX_CONFIG : VPCI_L_MSIX_QUEUE)));
    return mmio_read16(d->common + (config ? VPCI_MSIX_CONFIG : VPCI_Q_MSIX));
}

static void wr_vec(struct vdev *d, bool config, uint16_t v)
{
    if (d->kind == VDEV_PCI_LEGACY)
        outw((uint16_t)(d->io + (config ? VPCI_L_MSIX_CONFIG : VPCI_L_MSIX_QUEUE)), v);
    else
        mmio_write16(d->common + (config ? VPCI_MSIX_CONFIG : VPCI_Q_MSIX), v);
}

static enum test_result test_msix_vector_oob(void)
{
    struct vdev *d = pcitest_dev();
    if (!d)
        return pcitest_no_device();
    if (d->irq_mode != VDEV_IRQ_MSIX)
        return test_skip("the device is not using MSI-X");
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    unsigned q = pcitest_queue(d);
    vdev_queue_select(d, q);
    uint16_t n = d->msix_nvec;
    const uint16_t bad[] = {n, (uint16_t)(n + 1), 0x7fff, 0xfffe};
    for (unsigned cfg = 0; cfg < 2; cfg++) {
        const char *what = cfg ? "msix_config" : "queue_msix_vector";
        for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
            wr_vec(d, cfg, bad[i]);
            uint16_t v = rd_vec(d, cfg);
            CHECK(v == VIRTIO_MSI_NO_VECTOR, "%s reads 0x%x after writing %u (table size %u), expected 0xffff", what, v,
                  bad[i], n);
        }
        wr_vec(d, cfg, (uint16_t)(n - 1));
        uint16_t v = rd_vec(d, cfg);
        CHECK(v == n - 1, "%s reads 0x%x after writing the valid %u", what, v, n - 1);
    }
    wr_vec(d, true, 0);
    wr_vec(d, false, (uint16_t)(1 + q));
    CHECK(rd_vec(d, true) == 0 && rd_vec(d, false) == 1 + q, "vectors not restored");
    printf("# pci_hostile_msix_vector_oob: %u-entry table: %u, %u, 0x7fff, 0xfffe -> 0xffff (msix_config and queue %u)\n",
           n, n, n + 1, q);
    return pcitest_request_irq(d, &d->vec_irqs[1 + q], "works with the vectors restored");
}
TEST(pci_hostile_msix_vector_oob, test_msix_vector_oob);

static uint32_t pba(struct vdev *d) { return mmio_read32(d->msix_pba); }

static enum test_result mask_round(struct vdev *d, bool function_mask)
{
    unsigned e = 1 + pcitest_queue(d);
    uintptr_t ectl = d->msix_table + e * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_CTRL;
    const char *how = function_mask ? "function mask" : "entry mask";
    pcitest_settle();
    uint16_t ctrl = vpci_msix_ctrl(d);
    if (function_mask)
        vpci_msix_ctrl_write(d, ctrl | PCI_MSIX_MASKALL);
    else
        mmio_write32(ectl, PCI_MSIX_ENTRY_MASK);
    unsigned c0 = d->vec_irqs[e];
    enum test_result r = pcitest_request(d, function_mask ? "request with the function masked" : "request with the entry masked");
    sleep_ns(20 * MS);
    unsigned during = d->vec_irqs[e] - c0;
    uint32_t pending = pba(d);
    uint32_t ctl_read = function_mask ? vpci_msix_ctrl(d) : mmio_read32(ectl);
    if (function_mask)
        vpci_msix_ctrl_write(d, ctrl & (uint16_t)~PCI_MSIX_MASKALL);
    else
        mmio_write32(ectl, 0);
    bool arrived = wait_count(&d->vec_irqs[e], c0 + during, IO_TIMEOUT);
    uint32_t after = pba(d);
    printf("# pci_hostile_mask_pending: %s (reads 0x%x): %u interrupt(s) while masked, PBA 0x%x; unmasked: %s, PBA 0x%x\n",
           how, ctl_read, during, pending, arrived ? "arrived" : "nothing", after);
    if (r != TEST_PASS)
        return r;
    CHECK(during == 0, "%s: %u interrupt(s) while masked", how, during);
    CHECK(pending & (1u << e), "%s: PBA 0x%x without bit %u after a masked completion", how, pending, e);
    CHECK(arrived, "%s: nothing arrived on unmask (PBA 0x%x)", how, after);
    CHECK(!(after & (1u << e)), "%s: PBA bit %u still set after delivery (0x%x)", how, e, after);
    return TEST_PASS;
}

static enum test_result test_mask_pending(void)
{
    struct vdev *d = pcitest_dev();
    if (!d)
        return pcitest_no_device();
    if (d->irq_mode != VDEV_IRQ_MSIX)
        return test_skip("the device is not using MSI-X");
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    enum test_result r = mask_round(d, false);
    if (r == TEST_PASS)
        r = mask_round(d, true);
    if (r != TEST_PASS)
        return r;
    return pcitest_request_irq(d, &d->vec_irqs[1 + pcitest_queue(d)], "works after masking");
}
TEST(pci_hostile_mask_pending, test_mask_pending);
