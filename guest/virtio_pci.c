/* virtio-pci transports: modern (the virtio 1.x capabilities in a memory BAR) and legacy (the
 * 0.9.5 register block in I/O BAR 0 of a transitional device), MSI-X and INTx.
 *
 * A transitional device is driven through its legacy interface when the command line says
 * virtio_pci=legacy, otherwise through the modern one.
 * Interrupts: MSI-X by default, one table entry for configuration changes (msix_config = 0) and
 * one per queue (queue q -> entry 1 + q), each its own CPU vector on the BSP (fixed, edge,
 * physical destination). A table with fewer entries than 1 + queues (QEMU's virtio-serial-pci
 * has 2 by default) puts every queue on entry 1, as Linux does when per-queue vectors fail; a
 * 1-entry table means INTx. A queue vector's handler only counts (as Linux's vring_interrupt: the
 * used ring says what completed); the config vector's handler reads the ISR. With MSI-X off
 * (vdev_pci_use_msix(d, false)) the device raises INTx: the Interrupt Line GSI routed
 * level-triggered through the IOAPIC, shared between the devices on that line; the handler reads
 * the ISR (which lowers the line) before the EOI. */
#include "pci.h"
#include "virtio.h"

#define MSI_ADDR_BASE 0xfee00000u

/* The MSI-X table entry of queue q: its own (1 + q) when the table has room, else the shared
 * queue entry 1. */
static uint16_t queue_entry(const struct vdev *d, unsigned q)
{
    return (uint16_t)(1 + q < d->msix_nvec && 1 + q < VDEV_MAX_VECTORS ? 1 + q : 1);
}

/* ---- modern: common configuration in BAR 4 ---- */

static uint8_t m_get_status(struct vdev *d) { return mmio_read8(d->common + VPCI_STATUS); }
static void m_set_status(struct vdev *d, uint8_t s) { mmio_write8(d->common + VPCI_STATUS, s); }

static uint64_t m_device_features(struct vdev *d)
{
    mmio_write32(d->common + VPCI_DFSELECT, 0);
    uint64_t f = mmio_read32(d->common + VPCI_DF);
    mmio_write32(d->common + VPCI_DFSELECT, 1);
    return f | (uint64_t)mmio_read32(d->common + VPCI_DF) << 32;
}

static void m_driver_features(struct vdev *d, uint64_t f)
{
    mmio_write32(d->common + VPCI_GFSELECT, 0);
    mmio_write32(d->common + VPCI_GF, (uint32_t)f);
    mmio_write32(d->common + VPCI_GFSELECT, 1);
    mmio_write32(d->common + VPCI_GF, (uint32_t)(f >> 32));
}

static void m_feature_select(struct vdev *d, uint32_t sel)
{
    mmio_write32(d->common + VPCI_DFSELECT, sel);
    mmio_write32(d->common + VPCI_GFSELECT, sel);
}

static uint32_t m_feature_word(struct vdev *d) { return mmio_read32(d->common + VPCI_DF); }
static void m_queue_select(struct vdev *d, uint32_t q) { mmio_write16(d->common + VPCI_Q_SELECT, (uint16_t)q); }
/* After a reset queue_size holds the maximum (4.1.4.3). */
static uint32_t m_queue_max(struct vdev *d) { return mmio_read16(d->common + VPCI_Q_SIZE); }
static bool m_queue_live(struct vdev *d) { return mmio_read16(d->common + VPCI_Q_ENABLE) != 0; }

static bool m_queue_activate(struct vdev *d, struct virtq *vq)
{
    uintptr_t c = d->common;
    uint64_t desc = virt_to_phys(vq->desc), a = virt_to_phys(vq->avail), u = virt_to_phys(vq->used);
    mmio_write16(c + VPCI_Q_SIZE, vq->num);
    uint16_t sz = mmio_read16(c + VPCI_Q_SIZE);
    if (sz != vq->num) {
        printf("# virtio-pci: queue %u: queue_size reads %u after writing %u\n", vq->index, sz, vq->num);
        return false;
    }
    if (d->irq_mode == VDEV_IRQ_MSIX) {
        uint16_t want = queue_entry(d, vq->index), got;
        mmio_write16(c + VPCI_Q_MSIX, want);
        got = mmio_read16(c + VPCI_Q_MSIX);
        if (got != want) {
            printf("# virtio-pci: queue %u: queue_msix_vector reads 0x%x after writing %u\n", vq->index, got, want);
            return false;
        }
    }
    mmio_write32(c + VPCI_Q_DESC, (uint32_t)desc);
    mmio_write32(c + VPCI_Q_DESC + 4, (uint32_t)(desc >> 32));
    mmio_write32(c + VPCI_Q_AVAIL, (uint32_t)a);
    mmio_write32(c + VPCI_Q_AVAIL + 4, (uint32_t)(a >> 32));
    mmio_write32(c + VPCI_Q_USED, (uint32_t)u);
    mmio_write32(c + VPCI_Q_USED + 4, (uint32_t)(u >> 32));
    vq->notify_addr = d->notify_base + (uintptr_t)mmio_read16(c + VPCI_Q_NOTIFY_OFF) * d->notify_mult;
    mmio_write16(c + VPCI_Q_ENABLE, 1);
    return true;
}

/* 16 bits of the queue index: what a datamatch ioeventfd would match. */
static void m_notify(struct virtq *vq) { mmio_write16(vq->notify_addr, (uint16_t)vq->index); }
static uint32_t m_generation(struct vdev *d) { return mmio_read8(d->common + VPCI_CFG_GEN); }

static uint32_t m_config_read(struct vdev *d, unsigned off, unsigned width) { return mmio_read_w(d->devcfg + off, width); }

static void m_config_write(struct vdev *d, unsigned off, unsigned width, uint32_t v) { mmio_write_w(d->devcfg + off, width, v); }

static uint32_t m_isr(struct vdev *d) { return mmio_read8(d->isr_addr); }

static void m_begin(struct vdev *d)
{
    if (d->irq_mode != VDEV_IRQ_MSIX)
        return;
    mmio_write16(d->common + VPCI_MSIX_CONFIG, 0);
    uint16_t v = mmio_read16(d->common + VPCI_MSIX_CONFIG);
    if (v != 0)
        printf("# virtio-pci: msix_config reads 0x%x after writing 0\n", v);
}

static const struct vdev_ops pci_modern_ops = {
    .name = "pci", .legacy = false, .get_status = m_get_status, .set_status = m_set_status,
    .device_features = m_device_features, .driver_features = m_driver_features,
    .feature_select = m_feature_select, .feature_word = m_feature_word, .queue_select = m_queue_select,
    .queue_max = m_queue_max, .queue_live = m_queue_live, .queue_activate = m_queue_activate,
    .notify = m_notify, .generation = m_generation, .config_read = m_config_read,
    .config_write = m_config_write, .isr = m_isr,
    .begin = m_begin,
};

/* ---- legacy: the I/O BAR 0 register block ---- */

static uint8_t l_get_status(struct vdev *d) { return inb((uint16_t)(d->io + VPCI_L_STATUS)); }
static void l_set_status(struct vdev *d, uint8_t s) { outb((uint16_t)(d->io + VPCI_L_STATUS), s); }
static uint64_t l_device_features(struct vdev *d) { return inl((uint16_t)(d->io + VPCI_L_HOST_FEATURES)); }
static void l_driver_features(struct vdev *d, uint64_t f) { outl((uint16_t)(d->io + VPCI_L_GUEST_FEATURES), (uint32_t)f); }
static void l_feature_select(struct vdev *d, uint32_t sel) { (void)d, (void)sel; } /* no selectors */
static uint32_t l_feature_word(struct vdev *d) { return inl((uint16_t)(d->io + VPCI_L_HOST_FEATURES)); }
static void l_queue_select(struct vdev *d, uint32_t q) { outw((uint16_t)(d->io + VPCI_L_QUEUE_SEL), (uint16_t)q); }
static uint32_t l_queue_max(struct vdev *d) { return inw((uint16_t)(d->io + VPCI_L_QUEUE_NUM)); }
static bool l_queue_live(struct vdev *d) { return inl((uint16_t)(d->io + VPCI_L_QUEUE_PFN)) != 0; }

static bool l_queue_activate(struct vdev *d, struct virtq *vq)
{
    uint16_t max = inw((uint16_t)(d->io + VPCI_L_QUEUE_NUM));
    if (vq->num != max) { /* QUEUE_NUM is read-only in the legacy interface */
        printf("# virtio-pci legacy: queue %u: size %u, but the device's is %u\n", vq->index, vq->num, max);
        return false;
    }
    if (d->irq_mode == VDEV_IRQ_MSIX) {
        uint16_t want = queue_entry(d, vq->index), got;
        outw((uint16_t)(d->io + VPCI_L_MSIX_QUEUE), want);
        got = inw((uint16_t)(d->io + VPCI_L_MSIX_QUEUE));
        if (got != want) {
            printf("# virtio-pci legacy: queue %u: MSI queue vector reads 0x%x after writing %u\n", vq->index, got,
                   want);
            return false;
        }
    }
    outl((uint16_t)(d->io + VPCI_L_QUEUE_PFN), (uint32_t)(virt_to_phys(vq->desc) / PAGE_SIZE));
    return true;
}

static void l_notify(struct virtq *vq) { outw((uint16_t)(vq->dev->io + VPCI_L_QUEUE_NOTIFY), (uint16_t)vq->index); }

/* The legacy device configuration follows the MSI-X vector registers only while MSI-X is on. */
static uint16_t l_config_port(struct vdev *d, unsigned off) { return (uint16_t)(d->io + VPCI_L_CONFIG(d->irq_mode == VDEV_IRQ_MSIX) + off); }
static uint32_t l_config_read(struct vdev *d, unsigned off, unsigned width) { return in_w(l_config_port(d, off), width); }

static void l_config_write(struct vdev *d, unsigned off, unsigned width, uint32_t v) { out_w(l_config_port(d, off), width, v); }

static uint32_t l_isr(struct vdev *d) { return inb((uint16_t)(d->io + VPCI_L_ISR)); }

static void l_begin(struct vdev *d)
{
    if (d->irq_mode != VDEV_IRQ_MSIX)
        return;
    outw((uint16_t)(d->io + VPCI_L_MSIX_CONFIG), 0);
    uint16_t v = inw((uint16_t)(d->io + VPCI_L_MSIX_CONFIG));
    if (v != 0)
        printf("# virtio-pci legacy: MSI config vector reads 0x%x after writing 0\n", v);
}

static const struct vdev_ops pci_legacy_ops = {
    .name = "pci-legacy", .legacy = true, .get_status = l_get_status, .set_status = l_set_status,
    .device_features = l_device_features, .driver_features = l_driver_features,
    .feature_select = l_feature_select, .feature_word = l_feature_word, .queue_select = l_queue_select,
    .queue_max = l_queue_max, .queue_live = l_queue_live, .queue_activate = l_queue_activate,
    .notify = l_notify, .generation = NULL, .config_read = l_config_read,
    .config_write = l_config_write, .isr = l_isr, .begin = l_begin,
};

/* ---- interrupts ---- */

#define MAX_PCI_DEVS 16

struct vec_ctx {
    struct vdev *d;
    unsigned entry;
};
static struct vec_ctx vec_ctxs[MAX_PCI_DEVS * VDEV_MAX_VECTORS];
static unsigned nvec_ctxs;

static void msix_irq(unsigned vector, void *ctx)
{
    (void)vector;
    struct vec_ctx *c = ctx;
    struct vdev *d = c->d;
    d->irq_cpu = this_cpu();
    d->irqs++;
    d->vec_irqs[c->entry]++;
    if (c->entry == 0) {
        uint32_t isr = d->ops->isr(d);
        d->isr_seen |= isr;
        d->config_irqs++;
    } else {
        d->used_irqs++;
    }
}

struct intx_line {
    uint32_t gsi;
    int vector;
    unsigned n;
    struct vdev *devs[MAX_PCI_DEVS];
};
static struct intx_line intx_lines[8];
static unsigned nintx;

static void intx_irq(unsigned vector, void *ctx)
{
    (void)vector;
    struct intx_line *l = ctx;
    bool any = false;
    for (unsigned i = 0; i < l->n; i++) {
        struct vdev *d = l->devs[i];
        if (d->irq_mode != VDEV_IRQ_INTX)
            continue;
        uint32_t isr = d->ops->isr(d); /* the read clears it and lowers the line */
        if (!isr)
            continue;
        any = true;
        d->irq_cpu = this_cpu();
        d->isr_seen |= isr;
        d->irqs++;
        if (isr & VIRTIO_INT_USED)
            d->used_irqs++;
        if (isr & VIRTIO_INT_CONFIG)
            d->config_irqs++;
    }
    if (!any && l->n)
        l->devs[0]->spurious_irqs++;
}

static struct intx_line *intx_line_of(uint32_t gsi)
{
    for (unsigned i = 0; i < nintx; i++)
        if (intx_lines[i].gsi == gsi)
            return &intx_lines[i];
    return NULL;
}

static bool intx_attach(struct vdev *d)
{
    struct intx_line *l = intx_line_of(d->gsi);
    if (!l) {
        if (nintx == ARRAY_SIZE(intx_lines))
            return false;
        int v = irq_alloc_vector();
        if (v < 0)
            return false;
        l = &intx_lines[nintx++];
        l->gsi = d->gsi;
        l->vector = v;
        irq_register((unsigned)v, intx_irq, l);
    }
    if (l->n == MAX_PCI_DEVS)
        return false;
    l->devs[l->n++] = d;
    d->vector = l->vector;
    return true;
}

uint16_t vpci_msix_ctrl(struct vdev *d) { return d->pci ? pci_read16(d->pci, d->pci->msix_cap + PCI_MSIX_CTRL) : 0; }

void vpci_msix_ctrl_write(struct vdev *d, uint16_t v)
{
    if (d->pci && d->pci->msix_cap)
        pci_write16(d->pci, d->pci->msix_cap + PCI_MSIX_CTRL, v);
}

static void msix_program(struct vdev *d)
{
    for (unsigned e = 0; e < VDEV_MAX_VECTORS && e < d->msix_nvec; e++) {
        if (d->msix_vec[e] < 0)
            continue;
        uintptr_t t = d->msix_table + e * PCI_MSIX_ENTRY_SIZE;
        mmio_write32(t + 0, MSI_ADDR_BASE | (bsp_apic_id & 0xff) << 12); /* physical, dest = BSP */
        mmio_write32(t + 4, 0);
        mmio_write32(t + 8, (uint32_t)d->msix_vec[e]);                   /* fixed, edge */
        mmio_write32(t + PCI_MSIX_ENTRY_CTRL, 0);                         /* unmasked */
    }
}

bool vdev_pci_use_msix(struct vdev *d, bool msix)
{
    if (!vdev_is_pci(d))
        return false;
    struct intx_line *l = intx_line_of(d->gsi);
    if (msix) {
        /* The config entry and, with queues, a queue entry (queue_entry()). */
        if (!d->msix_table || d->msix_vec[0] < 0 || (d->nqueues && d->msix_vec[1] < 0))
            return false;
        d->irq_mode = VDEV_IRQ_MSIX;
        bool others = false;
        for (unsigned i = 0; l && i < l->n; i++)
            others |= l->devs[i]->irq_mode == VDEV_IRQ_INTX;
        if (l && !others)
            ioapic_mask(d->gsi);
        msix_program(d);
        uint16_t c = vpci_msix_ctrl(d);
        vpci_msix_ctrl_write(d, (uint16_t)((c | PCI_MSIX_ENABLE) & ~PCI_MSIX_MASKALL));
        return (vpci_msix_ctrl(d) & (PCI_MSIX_ENABLE | PCI_MSIX_MASKALL)) == PCI_MSIX_ENABLE;
    }
    if (!l || d->vector < 0)
        return false;
    uint16_t c = vpci_msix_ctrl(d);
    if (d->msix_table)
        vpci_msix_ctrl_write(d, (uint16_t)(c & ~(PCI_MSIX_ENABLE | PCI_MSIX_MASKALL)));
    d->irq_mode = VDEV_IRQ_INTX;
    uint16_t cmd = pci_read16(d->pci, PCI_COMMAND);
    if (cmd & PCI_CMD_INTX_DISABLE)
        pci_write16(d->pci, PCI_COMMAND, cmd & (uint16_t)~PCI_CMD_INTX_DISABLE);
    ioapic_route(d->gsi, (uint8_t)l->vector, bsp_apic_id, IOAPIC_LEVEL);
    return !(vpci_msix_ctrl(d) & PCI_MSIX_ENABLE);
}

/* ---- discovery ---- */

static bool want_legacy(void)
{
    const char *v = cmdline_get("virtio_pci");
    return v && !strcmp(v, "legacy");
}

static uintptr_t cap_addr(const struct pci_func *f, uint8_t at, uint32_t *len)
{
    unsigned bar = pci_read8(f, at + VIRTIO_PCI_CAP_BAR);
    uint32_t off = pci_read32(f, at + VIRTIO_PCI_CAP_OFFSET);
    if (len)
        *len = pci_read32(f, at + VIRTIO_PCI_CAP_LENGTH);
    if (bar >= 6 || !f->bar[bar].size || f->bar[bar].io || off >= f->bar[bar].size)
        return 0;
    return (uintptr_t)(f->bar[bar].addr + off);
}

/* The virtio device ID of a virtio-pci function: a transitional device (0x1000-0x103f) has it in
 * its subsystem ID, a modern one (0x1040-0x107f) in its device ID (4.1.2.1). */
static uint32_t pci_virtio_id(const struct pci_func *f)
{
    return f->device < 0x1040 ? f->subsys_id : (uint32_t)(f->device - 0x1040);
}

static bool setup_one(struct vdev *d, struct pci_func *f)
{
    d->pci = f;
    d->vector = -1;
    d->transitional = f->device < 0x1040;
    d->device_id = pci_virtio_id(f);
    d->version = f->revision;
    d->gsi = f->irq_line;
    for (unsigned e = 0; e < VDEV_MAX_VECTORS; e++)
        d->msix_vec[e] = -1;
    pci_write16(f, PCI_COMMAND, pci_read16(f, PCI_COMMAND) | PCI_CMD_IO | PCI_CMD_MEM | PCI_CMD_MASTER);
    for (uint8_t at = pci_find_cap(f, PCI_CAP_VNDR, 0); at; at = pci_find_cap(f, PCI_CAP_VNDR, at)) {
        uint8_t type = pci_read8(f, at + VIRTIO_PCI_CAP_TYPE);
        uint32_t len;
        uintptr_t a = cap_addr(f, at, &len);
        if (!a)
            continue;
        /* The first structure of each type is the one to use (4.1.4). */
        if (type == VIRTIO_PCI_CAP_COMMON && !d->common)
            d->common = a;
        else if (type == VIRTIO_PCI_CAP_ISR && !d->isr_addr)
            d->isr_addr = a;
        else if (type == VIRTIO_PCI_CAP_DEVICE && !d->devcfg) {
            d->devcfg = a;
            d->devcfg_len = len;
        } else if (type == VIRTIO_PCI_CAP_NOTIFY && !d->notify_base) {
            d->notify_base = a;
            d->notify_mult = pci_read32(f, at + VIRTIO_PCI_NOTIFY_MULT);
        }
    }
    bool modern_ok = d->common && d->isr_addr && d->notify_base;
    bool legacy_ok = d->transitional && f->bar[0].size && f->bar[0].io;
    if (legacy_ok)
        d->io = (uint16_t)f->bar[0].addr;
    if (legacy_ok && (want_legacy() || !modern_ok)) {
        d->kind = VDEV_PCI_LEGACY;
        d->ops = &pci_legacy_ops;
    } else if (modern_ok) {
        d->kind = VDEV_PCI;
        d->ops = &pci_modern_ops;
    } else {
        printf("# virtio-pci: 00:%02x.%u: neither the modern capabilities nor a legacy BAR 0\n", f->slot, f->fn);
        return false;
    }
    d->nqueues = d->device_id == VIRTIO_ID_CONSOLE ? 2 : d->device_id == VIRTIO_ID_RNG ? 1 : 0;
    d->irq_mode = VDEV_IRQ_INTX; /* until MSI-X is on */
    if (d->kind == VDEV_PCI) {
        d->hw_queues = mmio_read16(d->common + VPCI_NUM_QUEUES);
    } else {
        uint16_t q = 0;
        for (; q < 64; q++) {
            d->ops->queue_select(d, q);
            if (!d->ops->queue_max(d))
                break;
        }
        d->ops->queue_select(d, 0);
        d->hw_queues = q;
    }
    if (d->nqueues > d->hw_queues)
        d->nqueues = d->hw_queues;
    /* MSI-X: the table and PBA in memory BARs. */
    if (f->msix_cap) {
        uint32_t t = pci_read32(f, f->msix_cap + PCI_MSIX_TABLE), p = pci_read32(f, f->msix_cap + PCI_MSIX_PBA);
        const struct pci_bar_info *tb = &f->bar[t & 7], *pb = &f->bar[p & 7];
        d->msix_nvec = (uint16_t)((vpci_msix_ctrl(d) & 0x7ff) + 1);
        if (tb->size && !tb->io && pb->size && !pb->io) {
            d->msix_table = (uintptr_t)(tb->addr + (t & ~7u));
            d->msix_pba = (uintptr_t)(pb->addr + (p & ~7u));
        }
    }
    if (d->msix_table) {
        for (unsigned e = 0; e < VDEV_MAX_VECTORS && e < d->msix_nvec && e <= d->hw_queues; e++) {
            int v = irq_alloc_vector();
            if (v < 0 || nvec_ctxs == ARRAY_SIZE(vec_ctxs))
                break;
            vec_ctxs[nvec_ctxs] = (struct vec_ctx){d, e};
            irq_register((unsigned)v, msix_irq, &vec_ctxs[nvec_ctxs++]);
            d->msix_vec[e] = v;
        }
    }
    if (!intx_attach(d))
        printf("# virtio-pci: 00:%02x.%u: no INTx vector\n", f->slot, f->fn);
    if (d->msix_table && !vdev_pci_use_msix(d, true))
        printf("# virtio-pci: 00:%02x.%u: MSI-X not usable (%u-entry table, control 0x%x): INTx\n", f->slot,
               f->fn, d->msix_nvec, vpci_msix_ctrl(d));
    if (d->irq_mode != VDEV_IRQ_MSIX && !vdev_pci_use_msix(d, false))
        return false;
    d->offered = d->ops->device_features(d);
    printf("# virtio: pci 00:%02x.%u %s: %s (id %u)%s, %u queue(s), features 0x%lx, %s", f->slot, f->fn,
           d->ops->name, virtio_dev_name(d->device_id), d->device_id, d->transitional ? " transitional" : "",
           d->hw_queues, d->offered, d->irq_mode == VDEV_IRQ_MSIX ? "MSI-X vectors" : "INTx");
    if (d->irq_mode == VDEV_IRQ_MSIX)
        for (unsigned e = 0; e < VDEV_MAX_VECTORS; e++)
            if (d->msix_vec[e] >= 0)
                printf(" 0x%x", d->msix_vec[e]);
    if (d->irq_mode == VDEV_IRQ_MSIX && d->nqueues > 1 && queue_entry(d, d->nqueues - 1) == 1)
        printf(" (%u-entry table: the queues share entry 1)", d->msix_nvec);
    printf(" (INTx gsi %u)\n", d->gsi);
    return true;
}

void virtio_pci_probe(struct vdev *devs, unsigned *ndevs, unsigned max)
{
    unsigned nf = pci_probe(), found = 0;
    for (unsigned i = 0; i < nf && *ndevs < max && found < MAX_PCI_DEVS; i++) {
        struct pci_func *f = pci_func_get(i);
        if (f->vendor != VIRTIO_PCI_VENDOR || f->device < 0x1000 || f->device > 0x107f)
            continue;
        if (!virtio_dev_known(pci_virtio_id(f))) { /* left as enumerated: no command bits, no MSI-X */
            printf("# virtio: pci 00:%02x.%u: device id %u: no driver here, ignored\n", f->slot, f->fn,
                   pci_virtio_id(f));
            continue;
        }
        struct vdev *d = &devs[*ndevs];
        memset(d, 0, sizeof(*d));
        if (!setup_one(d, f))
            continue;
        (*ndevs)++;
        found++;
    }
}
