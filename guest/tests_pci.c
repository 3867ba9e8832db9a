/* PCI (issue #4): enumeration through both config mechanisms, BAR sizing, the virtio
 * capabilities, MSI-X and INTx delivery, and hostile drivers of the virtio-pci transport.
 * mica: --rng --console virtio --transport pci | pci-transitional [virtio_pci=legacy].
 * The virtio tests SKIP without a virtio-pci device; pci_enum needs only the host bridge. */
#include "pci.h"
#include "virtio.h"

#define MS 1000000UL
#define IO_TIMEOUT (2000 * MS)
#define VERSION_1 BIT64(VIRTIO_F_VERSION_1)

static uint8_t *bufs;

static uint8_t *buf(unsigned i)
{
    if (!bufs)
        bufs = alloc_pages(4);
    return bufs ? bufs + (size_t)i * PAGE_SIZE : NULL;
}

/* The first virtio-pci device with this ID (0: any ID, rng preferred). */
static struct vdev *pci_vdev(uint32_t id)
{
    if (!id) {
        struct vdev *d = pci_vdev(VIRTIO_ID_RNG);
        return d ? d : pci_vdev(VIRTIO_ID_CONSOLE);
    }
    struct vdev *d;
    for (unsigned i = 0; (d = virtio_find(id, i)); i++)
        if (vdev_is_pci(d))
            return d;
    return NULL;
}

static enum test_result no_device(void)
{
    return test_skip("no virtio-pci device (mica --rng --transport pci, or --rng=pci)");
}

/* The queue a request goes to: rng's requestq, the console's transmitq. */
static unsigned req_queue(const struct vdev *d) { return d->device_id == VIRTIO_ID_CONSOLE ? 1 : 0; }

static bool has_used(void *arg) { return vq_has_used(arg); }

/* A request with its buffer in the wrong direction (readable for rng, writable for the
 * console's transmitq): the device gives up on it with NEEDS_RESET and a config interrupt. */
static void bad_request(struct vdev *d)
{
    static uint8_t *buf;
    struct virtq *vq = &d->vq[req_queue(d)];
    bool tx = d->device_id == VIRTIO_ID_CONSOLE;

    if (!buf)
        buf = alloc_pages(1);
    struct vbuf vb = {virt_to_phys(buf), 64};
    if (vq_add(vq, &vb, tx ? 0 : 1, tx ? 1 : 0, buf, false) >= 0)
        vq_notify(vq);
}



/* One request (rng: 64 random bytes; console: a line), completion seen by polling the used
 * ring; the caller checks the interrupt side. */
static enum test_result request(struct vdev *d, const char *what)
{
    struct virtq *vq = &d->vq[req_queue(d)];
    uint8_t *p = buf(0);
    CHECK(p && vq->num, "%s: no buffer or queue %u not set up", what, req_queue(d));
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

/* A request whose completion must come with an interrupt on `counter`. */
static enum test_result request_irq(struct vdev *d, volatile unsigned *counter, const char *what)
{
    unsigned c0 = *counter;
    enum test_result r = request(d, what);
    if (r != TEST_PASS)
        return r;
    CHECK(wait_count(counter, c0, IO_TIMEOUT), "%s: used, but no interrupt within 2 s", what);
    return TEST_PASS;
}

/* Interrupts are taken only while a wait hlts: let those still on their way from earlier
 * (polled) requests arrive before counting. */
static void settle(void) { sleep_ns(20 * MS); }

static enum test_result up_and_request(struct vdev *d, const char *what)
{
    CHECK(vdev_up(d, VERSION_1, 0), "%s: bring-up failed: Status 0x%x", what, vdev_status(d));
    return request(d, what);
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

static struct vdev *vdev_of(const struct pci_func *f)
{
    struct vdev *d;
    for (uint32_t id = 1; id < 64; id++)
        for (unsigned i = 0; (d = virtio_find(id, i)); i++)
            if (d->pci == f)
                return d;
    return NULL;
}

static enum test_result test_pci_bars(void)
{
    if (!pci_vdev(0))
        return no_device();
    unsigned n = 0;
    for (unsigned i = 0; pci_func_get(i); i++) {
        struct pci_func *f = pci_func_get(i);
        struct vdev *d = vdev_of(f);
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
        printf("# pci_bars: 00:%02x.%u: BAR0 0x%08x -> 0x%08x size 0x%lx; BAR4 0x%08x%08x -> 0x%08x%08x size 0x%lx\n",
               f->slot, f->fn, before[0], lo[0], size[0], before[5], before[4], hi[4], lo[4], size[4]);
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
        enum test_result r = up_and_request(d, "works after BAR sizing");
        if (r != TEST_PASS)
            return r;
        n++;
    }
    printf("# pci_bars: %u virtio function(s): BARs kept where mica pre-assigned them\n", n);
    return TEST_PASS;
}
TEST(pci_bars, test_pci_bars);

/* ---- pci_caps: the five virtio structures and MSI-X ---- */

static enum test_result test_pci_caps(void)
{
    if (!pci_vdev(0))
        return no_device();
    for (unsigned i = 0; pci_func_get(i); i++) {
        struct pci_func *f = pci_func_get(i);
        struct vdev *d = vdev_of(f);
        if (!d)
            continue;
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
        printf("# pci_caps: 00:%02x: %u capabilities: COMMON ISR DEVICE NOTIFY(x4) PCI_CFG, MSI-X %u vectors\n",
               f->slot, ncaps, (ctrl & 0x7ff) + 1);
    }
    return TEST_PASS;
}
TEST(pci_caps, test_pci_caps);

/* ---- virtio_msix: each queue's completions on its own vector, config changes on entry 0 ---- */

static enum test_result msix_queues(struct vdev *d)
{
    CHECK(d->irq_mode == VDEV_IRQ_MSIX, "%s: not in MSI-X mode", virtio_dev_name(d->device_id));
    uint16_t ctrl = vpci_msix_ctrl(d);
    CHECK((ctrl & (PCI_MSIX_ENABLE | PCI_MSIX_MASKALL)) == PCI_MSIX_ENABLE, "MSI-X control 0x%x", ctrl);
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    settle();
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
    unsigned q = req_queue(d);
    for (unsigned i = 0; i < 4; i++) {
        enum test_result r = request_irq(d, &d->vec_irqs[1 + q], "request on its queue vector");
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
    struct vdev *r = pci_vdev(VIRTIO_ID_RNG), *c = pci_vdev(VIRTIO_ID_CONSOLE), *d = r ? r : c;
    if (!d)
        return no_device();
    if (!d->msix_table)
        return test_skip("the device has no MSI-X");
    enum test_result res;
    if (r && (res = msix_queues(r)) != TEST_PASS)
        return res;
    if (c && (res = msix_queues(c)) != TEST_PASS)
        return res;
    /* A configuration interrupt: a request the device must refuse puts it in NEEDS_RESET. */
    CHECK(vdev_up(d, d->offered & VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    settle();
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
    return up_and_request(d, "works after the config interrupt");
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
    settle();
    d->isr_seen = 0;
    unsigned m0 = d->vec_irqs[1 + req_queue(d)];
    for (unsigned i = 0; i < 4; i++) {
        enum test_result r = request_irq(d, &d->used_irqs, "request with INTx");
        if (r != TEST_PASS)
            return r;
        CHECK(d->irq_cpu == 0, "INTx taken on cpu %u, not the BSP", d->irq_cpu);
    }
    CHECK(d->isr_seen & VIRTIO_INT_USED, "INTx handler never saw ISR bit 0 (0x%x)", d->isr_seen);
    CHECK(d->vec_irqs[1 + req_queue(d)] == m0, "an MSI-X interrupt with MSI-X disabled");
    /* Pin masked: the line stays up (Status.INTx) until the ISR read lowers it. */
    ioapic_mask(d->gsi);
    enum test_result r = request(d, "request with the pin masked");
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
    settle();
    unsigned c0 = d->config_irqs;
    bad_request(d);
    CHECK(wait_count(&d->config_irqs, c0, IO_TIMEOUT), "no config interrupt through INTx (Status 0x%x)", vdev_status(d));
    CHECK(d->isr_seen & VIRTIO_INT_CONFIG, "INTx config interrupt without ISR bit 1 (0x%x)", d->isr_seen);
    return TEST_PASS;
}

static enum test_result test_virtio_intx(void)
{
    struct vdev *d = pci_vdev(0);
    if (!d)
        return no_device();
    struct pci_func *f = d->pci;
    uint8_t pin = pci_read8(f, PCI_INTERRUPT_PIN), line = pci_read8(f, PCI_INTERRUPT_LINE);
    CHECK(pin == 1 && line == 16 + f->slot % 4, "00:%02x: Interrupt Pin %u Line %u, expected INTA on GSI %u", f->slot,
          pin, line, 16 + f->slot % 4);
    vdev_reset(d);
    settle();
    enum test_result r = intx_body(d);
    vdev_reset(d);
    if (d->msix_table)
        CHECK(vdev_pci_use_msix(d, true), "could not switch back to MSI-X");
    if (r != TEST_PASS)
        return r;
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up after switching back failed: Status 0x%x", vdev_status(d));
    return request_irq(d, &d->used_irqs, "works with MSI-X again");
}
TEST(virtio_intx, test_virtio_intx);

/* ---- hostile PCI drivers ---- */

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

/* Every device's BARs and a request on each afterwards: the attack changed nothing. */
static enum test_result all_fine(const char *what)
{
    struct vdev *d;
    for (uint32_t id = 1; id < 64; id++)
        for (unsigned i = 0; (d = virtio_find(id, i)); i++) {
            if (!vdev_is_pci(d))
                continue;
            uint32_t lo = pci_read32(d->pci, PCI_BAR0 + 16), hi = pci_read32(d->pci, PCI_BAR0 + 20);
            CHECK(((uint64_t)hi << 32 | (lo & ~0xfu)) == d->pci->bar[4].addr, "%s: BAR4 of 00:%02x now 0x%x%08x",
                  what, d->pci->slot, hi, lo);
            enum test_result r = up_and_request(d, what);
            if (r != TEST_PASS)
                return r;
        }
    return TEST_PASS;
}

static enum test_result test_beyond_bar(void)
{
    if (!pci_vdev(0))
        return no_device();
    unsigned tried = 0;
    for (unsigned i = 0; pci_func_get(i); i++) {
        struct pci_func *f = pci_func_get(i);
        if (!vdev_of(f))
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
    struct vdev *d = pci_vdev(0);
    if (!d)
        return no_device();
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
    return request(d, "works after writes to read-only fields");
}
TEST(pci_hostile_readonly_common, test_readonly_common);

static enum test_result test_queue_size_after_enable(void)
{
    struct vdev *d = pci_vdev(0);
    if (!d)
        return no_device();
    vdev_begin(d);
    CHECK(vdev_set_features(d, d->offered & VERSION_1), "features refused");
    unsigned q = req_queue(d);
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
        enum test_result r = request(d, "works with the size set before enable");
        if (r != TEST_PASS)
            return r;
    }
    return all_fine("works after reset");
}
TEST(pci_hostile_queue_size_after_enable, test_queue_size_after_enable);

static enum test_result test_queue_select_oob(void)
{
    struct vdev *d = pci_vdev(0);
    if (!d)
        return no_device();
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
            outl(io + VPCI_L_QUEUE_PFN, (uint32_t)(virt_to_phys(buf(1)) / PAGE_SIZE));
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
            mmio_write32(c + VPCI_Q_DESC, (uint32_t)virt_to_phys(buf(1)));
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
    return request(d, "works after out-of-range queue_select");
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
    struct vdev *d = pci_vdev(0);
    if (!d)
        return no_device();
    if (d->irq_mode != VDEV_IRQ_MSIX)
        return test_skip("the device is not using MSI-X");
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    unsigned q = req_queue(d);
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
    return request_irq(d, &d->vec_irqs[1 + q], "works with the vectors restored");
}
TEST(pci_hostile_msix_vector_oob, test_msix_vector_oob);

static uint32_t pba(struct vdev *d) { return mmio_read32(d->msix_pba); }

static enum test_result mask_round(struct vdev *d, bool function_mask)
{
    unsigned e = 1 + req_queue(d);
    uintptr_t ectl = d->msix_table + e * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_CTRL;
    const char *how = function_mask ? "function mask" : "entry mask";
    settle();
    uint16_t ctrl = vpci_msix_ctrl(d);
    if (function_mask)
        vpci_msix_ctrl_write(d, ctrl | PCI_MSIX_MASKALL);
    else
        mmio_write32(ectl, PCI_MSIX_ENTRY_MASK);
    unsigned c0 = d->vec_irqs[e];
    enum test_result r = request(d, function_mask ? "request with the function masked" : "request with the entry masked");
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
    struct vdev *d = pci_vdev(0);
    if (!d)
        return no_device();
    if (d->irq_mode != VDEV_IRQ_MSIX)
        return test_skip("the device is not using MSI-X");
    CHECK(vdev_up(d, VERSION_1, 0), "bring-up failed: Status 0x%x", vdev_status(d));
    enum test_result r = mask_round(d, false);
    if (r == TEST_PASS)
        r = mask_round(d, true);
    if (r != TEST_PASS)
        return r;
    return request_irq(d, &d->vec_irqs[1 + req_queue(d)], "works after masking");
}
TEST(pci_hostile_mask_pending, test_mask_pending);
