/* PCI (issue #4): enumeration through both config mechanisms, BAR sizing, the virtio
 * capabilities, MSI-X and INTx delivery. The hostile drivers of the transport are in
 * tests_pci_hostile.c; what both share (which device a test drives, one request) is here,
 * declared in tests_pci.h.
 * mica: --transport pci | pci-transitional [virtio_pci=legacy] with --rng and/or --console virtio
 * (other devices may be there too). pci_enum needs only the host bridge; pci_bars and pci_caps
 * look at every virtio-pci function of a known type; the tests that send requests SKIP without a
 * virtio-pci rng or console. */
#include "tests_pci.h"

/* ---- shared with tests_pci_hostile.c ---- */

static uint8_t *bufs;

uint8_t *pcitest_buf(unsigned i)
{
    if (!bufs)
        bufs = alloc_pages(4);
    return bufs ? bufs + (size_t)i * PAGE_SIZE : NULL;
}

bool pcitest_drivable(const struct vdev *d)
{
    return d->device_id == VIRTIO_ID_RNG || d->device_id == VIRTIO_ID_CONSOLE;
}

struct vdev *pcitest_find(uint32_t id)
{
    struct vdev *d;
    for (unsigned i = 0; (d = virtio_find(id, i)); i++)
        if (vdev_is_pci(d))
            return d;
    return NULL;
}

struct vdev *pcitest_dev(void)
{
    struct vdev *d = pcitest_find(VIRTIO_ID_RNG);
    return d ? d : pcitest_find(VIRTIO_ID_CONSOLE);
}

enum test_result pcitest_no_device(void)
{
    return test_skip("no virtio-pci rng or console to drive (mica --rng and/or --console virtio with --transport "
                     "pci, or --rng=pci)");
}

struct vdev *pcitest_vdev_of(const struct pci_func *f)
{
    struct vdev *d;
    for (unsigned i = 0; (d = virtio_get(i)); i++)
        if (d->pci == f)
            return d;
    return NULL;
}

unsigned pcitest_queue(const struct vdev *d) { return d->device_id == VIRTIO_ID_CONSOLE ? 1 : 0; }

static bool has_used(void *arg) { return vq_has_used(arg); }

enum test_result pcitest_request(struct vdev *d, const char *what)
{
    CHECK(pcitest_drivable(d), "%s: no request for a virtio %s device", what, virtio_dev_name(d->device_id));
    struct virtq *vq = &d->vq[pcitest_queue(d)];
    uint8_t *p = pcitest_buf(0);
    CHECK(p && vq->num, "%s: no buffer or queue %u not set up", what, pcitest_queue(d));
    struct vbuf vb;
    bool con = d->device_id == VIRTIO_ID_CONSOLE;
    if (con) {
        int n = snprintf((char *)p, 128, "# virtio-console (%s): %s\n", vdev_transport_name(d), what);
        vb = (struct vbuf){virt_to_phys(p), (uint32_t)n};
    } else {
        memset(p, 0x5a, 64);
        vb = (struct vbuf){virt_to_phys(p), 64};
    }
    CHECK(vq_add(vq, &vb, con, !con, p, false) >= 0, "%s: no room in queue %u", what, vq->index);
    vq_kick(vq);
    CHECK(poll_until(has_used, vq, IO_TIMEOUT, 1 * MS), "%s: queue %u: nothing used within 2 s (Status 0x%x)", what,
          vq->index, vdev_status(d));
    void *tok;
    uint32_t len;
    CHECK(vq_pop(vq, &tok, &len) && tok == p, "%s: bad used entry", what);
    CHECK(con || len == 64, "%s: used len %u, expected 64", what, len);
    return TEST_PASS;
}

enum test_result pcitest_request_irq(struct vdev *d, volatile unsigned *counter, const char *what)
{
    unsigned c0 = *counter;
    enum test_result r = pcitest_request(d, what);
    if (r != TEST_PASS)
        return r;
    CHECK(wait_count(counter, c0, IO_TIMEOUT), "%s: used, but no interrupt within 2 s", what);
    return TEST_PASS;
}

void pcitest_settle(void) { sleep_ns(20 * MS); }

enum test_result pcitest_up_and_request(struct vdev *d, const char *what)
{
    CHECK(vdev_up(d, VERSION_1, 0), "%s: bring-up failed: Status 0x%x", what, vdev_status(d));
    return pcitest_request(d, what);
}

/* A request with its buffer in the wrong direction (readable for rng, writable for the
 * console's transmitq): the device gives up on it with NEEDS_RESET and a config interrupt. */
static void bad_request(struct vdev *d)
{
    static uint8_t *buf;
    struct virtq *vq = &d->vq[pcitest_queue(d)];
    bool tx = d->device_id == VIRTIO_ID_CONSOLE;

    if (!buf)
        buf = alloc_pages(1);
    struct vbuf vb = {virt_to_phys(buf), 64};
    if (vq_add(vq, &vb, tx ? 0 : 1, tx ? 1 : 0, buf, false) >= 0)
        vq_notify(vq);
}

/* ---- pci_enum: mechanism #1 and ECAM agree on every function of bus 0 ---- */

static enum test_result test_pci_enum(void)
{
    unsigned nf = pci_probe();
    if (!nf)
        return test_skip("no PCI host bridge");
    CHECK(pci_have_ecam(), "no pci-host-ecam-generic node in the FDT");
    unsigned present = 0;
    for (unsigned slot = 0; slot < 32; slot++) {
        for (unsigned fn = 0; fn < 8; fn++) {
            uint32_t a = pci_cf8_read32(0, slot, fn, 0), b = pci_ecam_read32(0, slot, fn, 0);
            CHECK(a == b, "00:%02x.%u: vendor/device 0x%08x via 0xcf8, 0x%08x via ECAM", slot, fn, a, b);
            if ((a & 0xffff) == 0xffff) {
                CHECK(a == 0xffffffffu, "absent 00:%02x.%u reads 0x%08x, expected all-ones", slot, fn, a);
                uint32_t c = pci_ecam_read32(0, slot, fn, PCI_COMMAND);
                CHECK(c == 0xffffffffu, "absent 00:%02x.%u: command/status reads 0x%08x via ECAM", slot, fn, c);
                continue;
            }
            present++;
            for (unsigned off = 4; off < 0x40; off += 4) {
                uint32_t x = pci_cf8_read32(0, slot, fn, off), y = pci_ecam_read32(0, slot, fn, off);
                CHECK(x == y, "00:%02x.%u config 0x%02x: 0x%08x via 0xcf8, 0x%08x via ECAM", slot, fn, off, x, y);
            }
            bool listed = false;
            for (unsigned i = 0; i < nf; i++) {
                const struct pci_func *f = pci_func_get(i);
                listed |= f->slot == slot && f->fn == fn && f->vendor == (uint16_t)a;
            }
            CHECK(listed, "00:%02x.%u (0x%08x) missing from the enumeration", slot, fn, a);
        }
    }
    CHECK(present == nf, "%u functions answer, %u enumerated", present, nf);
    const struct pci_func *hb = pci_func_get(0);
    CHECK(hb->slot == 0 && (hb->class_code >> 16) == 0x06, "slot 0 is not a bridge (00:%02x class 0x%06x)", hb->slot,
          hb->class_code);
    /* Mechanism #1 with the enable bit clear, and a bus outside bus-range: all-ones. */
    outl(0xcf8, 0x00000000u);
    uint32_t dis = inl(0xcfc), back = inl(0xcf8);
    CHECK(dis == 0xffffffffu, "0xcfc with the enable bit clear reads 0x%08x", dis);
    CHECK(back == 0, "0xcf8 reads back 0x%08x after writing 0", back);
    uint32_t bus1 = pci_cf8_read32(1, 0, 0, 0);
    CHECK(bus1 == 0xffffffffu, "bus 1 (outside bus-range <0 0>) reads 0x%08x", bus1);
    /* A write through one path shows through the other (Interrupt Line, restored). */
    const struct pci_func *f = nf > 1 ? pci_func_get(1) : NULL;
    if (f) {
        uint32_t orig = pci_cf8_read32(0, f->slot, f->fn, PCI_INTERRUPT_LINE);
        pci_cf8_write32(0, f->slot, f->fn, PCI_INTERRUPT_LINE, (orig & ~0xffu) | 0x5a);
        uint32_t via_ecam = pci_ecam_read32(0, f->slot, f->fn, PCI_INTERRUPT_LINE);
        pci_ecam_write32(0, f->slot, f->fn, PCI_INTERRUPT_LINE, orig);
        uint32_t via_cf8 = pci_cf8_read32(0, f->slot, f->fn, PCI_INTERRUPT_LINE);
        CHECK((via_ecam & 0xff) == 0x5a, "Interrupt Line written via 0xcf8, ECAM reads 0x%x", via_ecam & 0xff);
        CHECK(via_cf8 == orig, "Interrupt Line restored via ECAM, 0xcf8 reads 0x%08x (was 0x%08x)", via_cf8, orig);
    }
    printf("# pci_enum: %u function(s) on bus 0, ECAM at 0x%lx, 256 addresses compared\n", present, pci_ecam_base());
    return TEST_PASS;
}
TEST(pci_enum, test_pci_enum);

/* ---- pci_bars: sizing with all-ones, decode off; the pre-assigned addresses kept ---- */

static enum test_result no_function(void)
{
    return test_skip("no virtio-pci function (mica --transport pci with a device, or --rng=pci)");
}

/* Every virtio function's BARs; then those the tests can drive work. */
static enum test_result test_pci_bars(void)
{
    unsigned n = 0, driven = 0;
    for (unsigned i = 0; pci_func_get(i); i++) {
        struct pci_func *f = pci_func_get(i);
        struct vdev *d = pcitest_vdev_of(f);
        if (!d)
            continue;
        uint32_t before[6], after[6];
        uint16_t cmd = pci_read16(f, PCI_COMMAND);
        for (unsigned b = 0; b < 6; b++)
            before[b] = pci_read32(f, PCI_BAR0 + 4 * b);
        uint32_t lo[6] = {0}, hi[6] = {0};
        uint64_t size[6] = {0};
        for (unsigned b = 0; b < 6; b++) {
            size[b] = pci_size_bar(f, b, &lo[b], &hi[b]);
            if (b < 5 && (before[b] & 7) == PCI_BAR_MEM64)
                b++; /* the upper half was sized with it */
        }
        for (unsigned b = 0; b < 6; b++)
            after[b] = pci_read32(f, PCI_BAR0 + 4 * b);
        printf("# pci_bars: 00:%02x.%u (%s): BAR0 0x%08x -> 0x%08x size 0x%lx; BAR4 0x%08x%08x -> 0x%08x%08x size "
               "0x%lx\n", f->slot, f->fn, virtio_dev_name(d->device_id), before[0], lo[0], size[0], before[5],
               before[4], hi[4], lo[4], size[4]);
        CHECK(!memcmp(before, after, sizeof(before)), "00:%02x: BARs changed by sizing (BAR4 0x%08x -> 0x%08x)",
              f->slot, before[4], after[4]);
        CHECK(pci_read16(f, PCI_COMMAND) == cmd, "00:%02x: command 0x%x after sizing, was 0x%x", f->slot,
              pci_read16(f, PCI_COMMAND), cmd);
        /* BAR 4: 32 KiB of 64-bit memory, above 4 GiB (above RAM), naturally aligned. */
        CHECK((lo[4] & 7) == PCI_BAR_MEM64, "00:%02x: BAR4 type bits 0x%x, expected 64-bit memory", f->slot, lo[4] & 7);
        CHECK(size[4] == 0x8000, "00:%02x: BAR4 size 0x%lx, expected 0x8000", f->slot, size[4]);
        uint64_t b4 = f->bar[4].addr;
        CHECK(b4 >= 0x100000000ULL && !(b4 & (size[4] - 1)), "00:%02x: BAR4 at 0x%lx: not above 4 GiB or misaligned",
              f->slot, b4);
        CHECK(cmd & PCI_CMD_MEM, "00:%02x: memory decode off (command 0x%x)", f->slot, cmd);
        if (d->transitional) {
            CHECK(lo[0] & PCI_BAR_IO, "00:%02x: transitional BAR0 is not I/O (0x%08x)", f->slot, lo[0]);
            CHECK(size[0] == 0x100, "00:%02x: BAR0 size 0x%lx, expected 0x100", f->slot, size[0]);
            CHECK(f->bar[0].addr >= 0xc000 && f->bar[0].addr + size[0] <= 0x10000 && !(f->bar[0].addr & 0xff),
                  "00:%02x: BAR0 at 0x%lx", f->slot, f->bar[0].addr);
            CHECK(cmd & PCI_CMD_IO, "00:%02x: I/O decode off (command 0x%x)", f->slot, cmd);
        } else {
            CHECK(size[0] == 0 && lo[0] == 0, "00:%02x: modern device has BAR0 (0x%08x)", f->slot, lo[0]);
        }
        for (unsigned b = 1; b < 4; b++)
            CHECK(size[b] == 0 && lo[b] == 0, "00:%02x: unexpected BAR%u (0x%08x)", f->slot, b, lo[b]);
        /* With memory decode off, BAR 4 is gone (all-ones); back on, the device is there again. */
        uint64_t fl = save_flags();
        cli();
        pci_write16(f, PCI_COMMAND, cmd & (uint16_t)~PCI_CMD_MEM);
        uint32_t off_val = mmio_read32((uintptr_t)b4 + VPCI_MSIX_CONFIG);
        pci_write16(f, PCI_COMMAND, cmd);
        uint16_t nq = mmio_read16((uintptr_t)b4 + VPCI_NUM_QUEUES);
        restore_flags(fl);
        CHECK(off_val == 0xffffffffu, "00:%02x: BAR4 reads 0x%08x with memory decode off", f->slot, off_val);
        CHECK(nq == d->hw_queues, "00:%02x: num_queues %u after decode back on, expected %u", f->slot, nq, d->hw_queues);
        n++;
        if (!pcitest_drivable(d))
            continue;
        enum test_result r = pcitest_up_and_request(d, "works after BAR sizing");
        if (r != TEST_PASS)
            return r;
        driven++;
    }
    if (!n)
        return no_function();
    printf("# pci_bars: %u virtio function(s): BARs kept where mica pre-assigned them; %u of them (rng, console) "
           "driven afterwards\n", n, driven);
    return TEST_PASS;
}
TEST(pci_bars, test_pci_bars);

/* ---- pci_caps: the five virtio structures and MSI-X ---- */

static enum test_result test_pci_caps(void)
{
    unsigned n = 0;
    for (unsigned i = 0; pci_func_get(i); i++) {
        struct pci_func *f = pci_func_get(i);
        struct vdev *d = pcitest_vdev_of(f);
        if (!d)
            continue;
        n++;
        CHECK(pci_read16(f, PCI_STATUS) & PCI_STATUS_CAPS, "00:%02x: Status has no capability list", f->slot);
        uint8_t seen[6] = {0}, cfg_cap = 0;
        unsigned ncaps = 0, msix = 0;
        for (uint8_t at = pci_read8(f, PCI_CAP_PTR); at; at = pci_read8(f, at + 1u)) {
            CHECK(at >= 0x40 && !(at & 3) && ++ncaps < 48, "00:%02x: bad capability pointer 0x%x (%u caps)", f->slot,
                  at, ncaps);
            uint8_t id = pci_read8(f, at);
            if (id == PCI_CAP_MSIX) {
                msix = at;
                continue;
            }
            if (id != PCI_CAP_VNDR)
                continue;
            uint8_t type = pci_read8(f, at + VIRTIO_PCI_CAP_TYPE), bar = pci_read8(f, at + VIRTIO_PCI_CAP_BAR);
            uint32_t off = pci_read32(f, at + VIRTIO_PCI_CAP_OFFSET), len = pci_read32(f, at + VIRTIO_PCI_CAP_LENGTH);
            uint8_t caplen = pci_read8(f, at + 2u);
            CHECK(type >= 1 && type <= 5, "00:%02x: vendor cap at 0x%x has cfg_type %u", f->slot, at, type);
            if (seen[type]++)
                continue;
            static const uint32_t want_off[6] = {0, 0x0000, 0x3000, 0x1000, 0x2000, 0};
            if (type == VIRTIO_PCI_CAP_PCI_CFG) {
                CHECK(caplen >= 20, "00:%02x: PCI_CFG cap_len %u", f->slot, caplen);
                cfg_cap = at;
                continue;
            }
            CHECK(bar == 4 && off == want_off[type], "00:%02x: cap type %u: BAR %u offset 0x%x, expected BAR 4 0x%x",
                  f->slot, type, bar, off, want_off[type]);
            CHECK(len > 0 && off + len <= f->bar[4].size, "00:%02x: cap type %u: length 0x%x", f->slot, type, len);
            if (type == VIRTIO_PCI_CAP_COMMON)
                CHECK(len >= 0x38, "00:%02x: common config length 0x%x < 0x38", f->slot, len);
            if (type == VIRTIO_PCI_CAP_NOTIFY) {
                uint32_t mult = pci_read32(f, at + VIRTIO_PCI_NOTIFY_MULT);
                CHECK(caplen >= 20 && mult == 4, "00:%02x: notify cap_len %u multiplier %u, expected 4", f->slot,
                      caplen, mult);
                CHECK(len >= 4u * d->hw_queues, "00:%02x: notify length 0x%x for %u queues", f->slot, len,
                      d->hw_queues);
            }
        }
        for (unsigned t = 1; t <= 5; t++)
            CHECK(seen[t], "00:%02x: no virtio capability of cfg_type %u", f->slot, t);
        CHECK(msix, "00:%02x: no MSI-X capability", f->slot);
        uint16_t ctrl = pci_read16(f, msix + PCI_MSIX_CTRL);
        uint32_t tbl = pci_read32(f, msix + PCI_MSIX_TABLE), pba = pci_read32(f, msix + PCI_MSIX_PBA);
        CHECK((ctrl & 0x7ff) + 1u == d->hw_queues + 1u, "00:%02x: MSI-X table size %u, expected num_queues + 1 = %u",
              f->slot, (ctrl & 0x7ff) + 1, d->hw_queues + 1);
        CHECK(tbl == (0x4000 | 4) && pba == (0x5000 | 4), "00:%02x: MSI-X table 0x%x PBA 0x%x (offset | BIR)", f->slot,
              tbl, pba);
        /* The PCI_CFG window: num_queues read through config space. */
        pci_write8(f, cfg_cap + VIRTIO_PCI_CAP_BAR, 4);
        pci_write32(f, cfg_cap + VIRTIO_PCI_CAP_OFFSET, VPCI_NUM_QUEUES);
        pci_write32(f, cfg_cap + VIRTIO_PCI_CAP_LENGTH, 2);
        uint32_t w = pci_read32(f, cfg_cap + VIRTIO_PCI_CFG_DATA);
        CHECK((w & 0xffff) == d->hw_queues, "00:%02x: num_queues through the PCI_CFG window 0x%x, expected %u", f->slot,
              w, d->hw_queues);
        printf("# pci_caps: 00:%02x (%s): %u capabilities: COMMON ISR DEVICE NOTIFY(x4) PCI_CFG, MSI-X %u vectors\n",
               f->slot, virtio_dev_name(d->device_id), ncaps, (ctrl & 0x7ff) + 1);
    }
    return n ? TEST_PASS : no_function();
}
TEST(pci_caps, test_pci_caps);

/* ---- virtio_msix: each queue's completions on its own vector, config changes on entry 0 ---- */

static enum test_result msix_queues(struct vdev *d)
{
    CHECK(d->irq_mode == VDEV_IRQ_MSIX, "%s: not in MSI-X mode", virtio_dev_name(d->device_id));
    uint16_t ctrl = vpci_msix_ctrl(d);
    CHECK((ctrl & (PCI_MSIX_ENABLE | PCI_MSIX_MASKALL)) == PCI_MSIX_ENABLE, "MSI-X control 0x%x", ctrl);
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    pcitest_settle();
    /* The vectors the driver assigned read back. */
    for (unsigned q = 0; q < d->nqueues; q++) {
        uint16_t cv, qv;
        if (d->kind == VDEV_PCI) {
            mmio_write16(d->common + VPCI_Q_SELECT, (uint16_t)q);
            cv = mmio_read16(d->common + VPCI_MSIX_CONFIG);
            qv = mmio_read16(d->common + VPCI_Q_MSIX);
        } else {
            outw((uint16_t)(d->io + VPCI_L_QUEUE_SEL), (uint16_t)q);
            cv = inw((uint16_t)(d->io + VPCI_L_MSIX_CONFIG));
            qv = inw((uint16_t)(d->io + VPCI_L_MSIX_QUEUE));
        }
        CHECK(cv == 0 && qv == 1 + q, "queue %u: msix_config %u, queue vector %u (expected 0, %u)", q, cv, qv, 1 + q);
        uintptr_t e = d->msix_table + (1 + q) * PCI_MSIX_ENTRY_SIZE;
        uint32_t addr = mmio_read32(e), data = mmio_read32(e + 8), ectl = mmio_read32(e + PCI_MSIX_ENTRY_CTRL);
        CHECK(addr == (0xfee00000u | bsp_apic_id << 12) && data == (uint32_t)d->msix_vec[1 + q] && ectl == 0,
              "table entry %u reads addr 0x%x data 0x%x ctrl 0x%x", 1 + q, addr, data, ectl);
    }
    unsigned v[VDEV_MAX_VECTORS];
    for (unsigned e = 0; e < VDEV_MAX_VECTORS; e++)
        v[e] = d->vec_irqs[e];
    unsigned q = pcitest_queue(d);
    for (unsigned i = 0; i < 4; i++) {
        enum test_result r = pcitest_request_irq(d, &d->vec_irqs[1 + q], "request on its queue vector");
        if (r != TEST_PASS)
            return r;
        CHECK(d->irq_cpu == 0, "interrupt taken on cpu %u, not the BSP", d->irq_cpu);
    }
    for (unsigned e = 0; e < VDEV_MAX_VECTORS; e++)
        CHECK(e == 1 + q || d->vec_irqs[e] == v[e], "%u interrupt(s) on entry %u; the requests were on queue %u",
              d->vec_irqs[e] - v[e], e, q);
    printf("# virtio_msix: %s (%s): 4 completions on queue %u -> %u interrupt(s) on vector 0x%x, none elsewhere\n",
           virtio_dev_name(d->device_id), vdev_transport_name(d), q, d->vec_irqs[1 + q] - v[1 + q],
           d->msix_vec[1 + q]);
    return TEST_PASS;
}

static enum test_result test_virtio_msix(void)
{
    struct vdev *r = pcitest_find(VIRTIO_ID_RNG), *c = pcitest_find(VIRTIO_ID_CONSOLE), *d = r ? r : c;
    if (!d)
        return pcitest_no_device();
    if (!d->msix_table)
        return test_skip("the device has no MSI-X");
    enum test_result res;
    if (r && (res = msix_queues(r)) != TEST_PASS)
        return res;
    if (c && (res = msix_queues(c)) != TEST_PASS)
        return res;
    /* A configuration interrupt: a request the device must refuse puts it in NEEDS_RESET. */
    CHECK(vdev_up(d, d->offered & VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    pcitest_settle();
    unsigned v[VDEV_MAX_VECTORS];
    for (unsigned e = 0; e < VDEV_MAX_VECTORS; e++)
        v[e] = d->vec_irqs[e];
    d->isr_seen = 0;
    bad_request(d);
    CHECK(wait_count(&d->vec_irqs[0], v[0], IO_TIMEOUT), "no interrupt on the config vector (Status 0x%x)",
          vdev_status(d));
    CHECK(vdev_status(d) & VIRTIO_S_NEEDS_RESET, "Status 0x%x without NEEDS_RESET", vdev_status(d));
    CHECK(d->isr_seen & VIRTIO_INT_CONFIG, "config vector, but the ISR read 0x%x", d->isr_seen);
    for (unsigned e = 1; e < VDEV_MAX_VECTORS; e++)
        CHECK(d->vec_irqs[e] == v[e], "the config change also interrupted entry %u", e);
    printf("# virtio_msix: config change on vector 0x%x (ISR 0x%x)\n", d->msix_vec[0], d->isr_seen);
    return pcitest_up_and_request(d, "works after the config interrupt");
}
TEST(virtio_msix, test_virtio_msix);

/* ---- virtio_intx: MSI-X off, completions through the level-triggered INTx line ---- */

static enum test_result intx_body(struct vdev *d)
{
    struct pci_func *f = d->pci;
    CHECK(vdev_pci_use_msix(d, false), "could not switch to INTx (MSI-X control 0x%x)", vpci_msix_ctrl(d));
    uint64_t e = ioapic_read_entry(d->gsi);
    CHECK((e & 0xff) == (uint64_t)d->vector && (e & IOAPIC_LEVEL) && !(e & IOAPIC_MASKED),
          "IOAPIC pin %u entry 0x%lx", d->gsi, e);
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up with INTx failed: Status 0x%x", vdev_status(d));
    pcitest_settle();
    d->isr_seen = 0;
    unsigned m0 = d->vec_irqs[1 + pcitest_queue(d)];
    for (unsigned i = 0; i < 4; i++) {
        enum test_result r = pcitest_request_irq(d, &d->used_irqs, "request with INTx");
        if (r != TEST_PASS)
            return r;
        CHECK(d->irq_cpu == 0, "INTx taken on cpu %u, not the BSP", d->irq_cpu);
    }
    CHECK(d->isr_seen & VIRTIO_INT_USED, "INTx handler never saw ISR bit 0 (0x%x)", d->isr_seen);
    CHECK(d->vec_irqs[1 + pcitest_queue(d)] == m0, "an MSI-X interrupt with MSI-X disabled");
    /* Pin masked: the line stays up (Status.INTx) until the ISR read lowers it. */
    ioapic_mask(d->gsi);
    enum test_result r = pcitest_request(d, "request with the pin masked");
    if (r != TEST_PASS) {
        ioapic_unmask(d->gsi);
        return r;
    }
    uint16_t st1 = pci_read16(f, PCI_STATUS);
    uint32_t isr = vdev_isr(d);
    uint16_t st2 = pci_read16(f, PCI_STATUS);
    ioapic_unmask(d->gsi);
    printf("# virtio_intx: gsi %u vector 0x%x: PCI status 0x%x, ISR 0x%x, then status 0x%x\n", d->gsi, d->vector, st1,
           isr, st2);
    CHECK(st1 & PCI_STATUS_INTX, "PCI Status has no interrupt bit (0x%x) with a completion pending", st1);
    CHECK(isr & VIRTIO_INT_USED, "ISR 0x%x without bit 0 after a completion", isr);
    CHECK(!(st2 & PCI_STATUS_INTX), "the ISR read left the line up (status 0x%x)", st2);
    /* A configuration change through INTx as well. */
    CHECK(vdev_up(d, d->offered & VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    pcitest_settle();
    unsigned c0 = d->config_irqs;
    bad_request(d);
    CHECK(wait_count(&d->config_irqs, c0, IO_TIMEOUT), "no config interrupt through INTx (Status 0x%x)", vdev_status(d));
    CHECK(d->isr_seen & VIRTIO_INT_CONFIG, "INTx config interrupt without ISR bit 1 (0x%x)", d->isr_seen);
    return TEST_PASS;
}

static enum test_result test_virtio_intx(void)
{
    struct vdev *d = pcitest_dev();
    if (!d)
        return pcitest_no_device();
    struct pci_func *f = d->pci;
    uint8_t pin = pci_read8(f, PCI_INTERRUPT_PIN), line = pci_read8(f, PCI_INTERRUPT_LINE);
    CHECK(pin == 1 && line == 16 + f->slot % 4, "00:%02x: Interrupt Pin %u Line %u, expected INTA on GSI %u", f->slot,
          pin, line, 16 + f->slot % 4);
    vdev_reset(d);
    pcitest_settle();
    enum test_result r = intx_body(d);
    vdev_reset(d);
    if (d->msix_table)
        CHECK(vdev_pci_use_msix(d, true), "could not switch back to MSI-X");
    if (r != TEST_PASS)
        return r;
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up after switching back failed: Status 0x%x", vdev_status(d));
    return pcitest_request_irq(d, &d->used_irqs, "works with MSI-X again");
}
TEST(virtio_intx, test_virtio_intx);
