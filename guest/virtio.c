/* virtio front end: discovery (virtio-mmio slots from the FDT, then virtio-pci functions on bus
 * 0), device bring-up through a per-transport ops table (virtio-mmio version 2 and legacy
 * version 1 here; virtio-pci modern and legacy in virtio_pci.c), interrupts and split
 * virtqueues.
 *
 * Register accesses are VM exits (expensive under nested virtualization): the hot paths touch
 * only memory (the rings) plus the notify register when the device wants a kick; the mmio
 * interrupt handler reads InterruptStatus and writes InterruptACK once per interrupt. */
#include "virtio.h"
#include "pci.h"

#define MAX_DEVS 16

static struct vdev devs[MAX_DEVS];
static unsigned ndevs;
static bool probed;

/* ---- virtio-mmio transport (version 2 and legacy version 1) ---- */

static void mmio_irq(unsigned vector, void *ctx)
{
    (void)vector;
    struct vdev *d = ctx;
    uint32_t isr = vdev_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
    if (!isr) {
        d->spurious_irqs++;
        return;
    }
    vdev_write(d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
    d->isr_seen |= isr;
    d->irqs++;
    if (isr & VIRTIO_INT_USED)
        d->used_irqs++;
    if (isr & VIRTIO_INT_CONFIG)
        d->config_irqs++;
}

static uint8_t mmio_get_status(struct vdev *d) { return (uint8_t)vdev_read(d, VIRTIO_MMIO_STATUS); }
static void mmio_set_status(struct vdev *d, uint8_t s) { vdev_write(d, VIRTIO_MMIO_STATUS, s); }

static uint64_t mmio_device_features(struct vdev *d)
{
    vdev_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t f = vdev_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
    vdev_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    f |= (uint64_t)vdev_read(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
    return f;
}

static void mmio_driver_features(struct vdev *d, uint64_t f)
{
    vdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    vdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
    vdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    vdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
}

static void mmio_feature_select(struct vdev *d, uint32_t sel)
{
    vdev_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
    vdev_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
}

static uint32_t mmio_feature_word(struct vdev *d) { return vdev_read(d, VIRTIO_MMIO_DEVICE_FEATURES); }
static void mmio_queue_select(struct vdev *d, uint32_t q) { vdev_write(d, VIRTIO_MMIO_QUEUE_SEL, q); }
static uint32_t mmio_queue_max(struct vdev *d) { return vdev_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX); }

static bool mmio_queue_live(struct vdev *d)
{
    return vdev_read(d, vdev_legacy(d) ? VIRTIO_MMIO_QUEUE_PFN : VIRTIO_MMIO_QUEUE_READY) != 0;
}

static bool mmio_queue_activate(struct vdev *d, struct virtq *vq)
{
    uint64_t pa = virt_to_phys(vq->desc), a = virt_to_phys(vq->avail), u = virt_to_phys(vq->used);
    vdev_write(d, VIRTIO_MMIO_QUEUE_NUM, vq->num);
    if (vdev_legacy(d)) {
        vdev_write(d, VIRTIO_MMIO_GUEST_PAGE_SIZE, PAGE_SIZE);
        vdev_write(d, VIRTIO_MMIO_QUEUE_ALIGN, VQ_RING_ALIGN);
        vdev_write(d, VIRTIO_MMIO_QUEUE_PFN, (uint32_t)(pa / PAGE_SIZE));
        return true;
    }
    vdev_write(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)pa);
    vdev_write(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(pa >> 32));
    vdev_write(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)a);
    vdev_write(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(a >> 32));
    vdev_write(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)u);
    vdev_write(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(u >> 32));
    vdev_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
    return true;
}

static void mmio_notify(struct virtq *vq) { vdev_write(vq->dev, VIRTIO_MMIO_QUEUE_NOTIFY, vq->index); }
static uint32_t mmio_generation(struct vdev *d) { return vdev_read(d, VIRTIO_MMIO_CONFIG_GENERATION); }

static uint32_t mmio_config_read(struct vdev *d, unsigned off, unsigned width)
{
    return mmio_read_w(d->base + VIRTIO_MMIO_CONFIG + off, width);
}

static void mmio_config_write(struct vdev *d, unsigned off, unsigned width, uint32_t v)
{
    mmio_write_w(d->base + VIRTIO_MMIO_CONFIG + off, width, v);
}

static uint32_t mmio_isr(struct vdev *d) { return vdev_read(d, VIRTIO_MMIO_INTERRUPT_STATUS); }
static void mmio_isr_ack(struct vdev *d, uint32_t bits) { vdev_write(d, VIRTIO_MMIO_INTERRUPT_ACK, bits); }

#define MMIO_OPS(n, leg, gen)                                                                        \
    {                                                                                                \
        .name = n, .legacy = leg, .get_status = mmio_get_status, .set_status = mmio_set_status,      \
        .device_features = mmio_device_features, .driver_features = mmio_driver_features,            \
        .feature_select = mmio_feature_select, .feature_word = mmio_feature_word,                    \
        .queue_select = mmio_queue_select, .queue_max = mmio_queue_max, .queue_live = mmio_queue_live, \
        .queue_activate = mmio_queue_activate, .notify = mmio_notify, .generation = gen,             \
        .config_read = mmio_config_read, .config_write = mmio_config_write, .isr = mmio_isr, .isr_ack = mmio_isr_ack,                   \
    }
static const struct vdev_ops mmio_ops = MMIO_OPS("mmio", false, mmio_generation);
static const struct vdev_ops mmio_legacy_ops = MMIO_OPS("mmio-legacy", true, NULL);

const char *virtio_dev_name(uint32_t id)
{
    switch (id) {
    case VIRTIO_ID_NET: return "net";
    case VIRTIO_ID_BLOCK: return "block";
    case VIRTIO_ID_CONSOLE: return "console";
    case VIRTIO_ID_RNG: return "rng";
    case VIRTIO_ID_BALLOON: return "balloon";
    case VIRTIO_ID_FS: return "fs";
    default: return "?";
    }
}

bool virtio_dev_known(uint32_t id) { return strcmp(virtio_dev_name(id), "?") != 0; }

static void probe_mmio(void)
{
    for (int n = fdt_find_compatible(-1, "virtio,mmio"); n >= 0 && ndevs < MAX_DEVS;
         n = fdt_find_compatible(n, "virtio,mmio")) {
        uint64_t base, size;
        uint32_t gsi;
        if (!fdt_reg(n, 0, &base, &size) || !fdt_prop_u32(n, "interrupts", &gsi)) {
            printf("# virtio: %s: no reg or interrupts, ignored\n", fdt_name(n));
            continue;
        }
        struct vdev *d = &devs[ndevs];
        memset(d, 0, sizeof(*d));
        d->base = (uintptr_t)base;
        d->gsi = gsi;
        d->irq_mode = VDEV_IRQ_PIN;
        uint32_t magic = vdev_read(d, VIRTIO_MMIO_MAGIC_VALUE);
        d->version = vdev_read(d, VIRTIO_MMIO_VERSION);
        d->device_id = vdev_read(d, VIRTIO_MMIO_DEVICE_ID);
        if (magic != VIRTIO_MMIO_MAGIC || (d->version != 1 && d->version != 2)) {
            printf("# virtio: 0x%lx: magic 0x%x version %u: not a virtio-mmio device\n", base, magic, d->version);
            continue;
        }
        if (d->device_id == 0) /* an empty slot */
            continue;
        if (!virtio_dev_known(d->device_id)) { /* its interrupt stays masked */
            printf("# virtio: 0x%lx: device id %u: no driver here, ignored\n", base, d->device_id);
            continue;
        }
        d->kind = d->version == 1 ? VDEV_MMIO_LEGACY : VDEV_MMIO;
        d->ops = d->version == 1 ? &mmio_legacy_ops : &mmio_ops;
        d->offered = d->ops->device_features(d);
        d->nqueues = d->device_id == VIRTIO_ID_CONSOLE ? 2 : d->device_id == VIRTIO_ID_RNG ? 1 : 0;
        d->vector = irq_alloc_vector();
        if (d->vector < 0) {
            printf("# virtio: out of interrupt vectors\n");
            break;
        }
        irq_register((unsigned)d->vector, mmio_irq, d);
        ioapic_route(gsi, (uint8_t)d->vector, bsp_apic_id, IOAPIC_EDGE);
        printf("# virtio: 0x%lx gsi %u vector 0x%x: %s (id %u) version %u vendor 0x%x features 0x%lx\n", base,
               gsi, d->vector, virtio_dev_name(d->device_id), d->device_id, d->version,
               vdev_read(d, VIRTIO_MMIO_VENDOR_ID), d->offered);
        ndevs++;
    }
}

static void probe(void)
{
    probed = true;
    probe_mmio();
    virtio_pci_probe(devs, &ndevs, MAX_DEVS);
}

struct vdev *virtio_find(uint32_t device_id, unsigned idx)
{
    if (!probed)
        probe();
    for (unsigned i = 0; i < ndevs; i++)
        if (devs[i].device_id == device_id && idx-- == 0)
            return &devs[i];
    return NULL;
}

unsigned virtio_count(void)
{
    if (!probed)
        probe();
    return ndevs;
}

struct vdev *virtio_get(unsigned i) { return i < virtio_count() ? &devs[i] : NULL; }

/* ---- transport-independent register access ---- */

const char *vdev_transport_name(const struct vdev *d) { return d->ops->name; }
uint8_t vdev_status(const struct vdev *d) { return d->ops->get_status((struct vdev *)d); }
uint32_t vdev_config_read(struct vdev *d, unsigned off, unsigned width) { return d->ops->config_read(d, off, width); }
void vdev_config_write(struct vdev *d, unsigned off, unsigned width, uint32_t v) { d->ops->config_write(d, off, width, v); }
bool vdev_has_generation(const struct vdev *d) { return d->ops->generation != NULL; }
uint32_t vdev_generation(struct vdev *d) { return d->ops->generation ? d->ops->generation(d) : 0; }
uint32_t vdev_isr(struct vdev *d) { return d->ops->isr(d); }
void vdev_queue_select(struct vdev *d, uint32_t q) { d->ops->queue_select(d, q); }
uint32_t vdev_queue_max(struct vdev *d) { return d->ops->queue_max(d); }
bool vdev_queue_live(struct vdev *d) { return d->ops->queue_live(d); }
void vdev_feature_select(struct vdev *d, uint32_t sel) { d->ops->feature_select(d, sel); }
uint32_t vdev_feature_word(struct vdev *d) { return d->ops->feature_word(d); }

void vdev_irq_mask(struct vdev *d, bool masked)
{
    if (d->irq_mode == VDEV_IRQ_MSIX) {
        uint16_t c = vpci_msix_ctrl(d);
        vpci_msix_ctrl_write(d, masked ? c | PCI_MSIX_MASKALL : c & (uint16_t)~PCI_MSIX_MASKALL);
    } else if (masked) {
        ioapic_mask(d->gsi);
    } else {
        ioapic_unmask(d->gsi);
    }
}

/* ---- bring-up ---- */

static void set_status(struct vdev *d, uint8_t s)
{
    d->status = s;
    d->ops->set_status(d, s);
}

void vdev_reset(struct vdev *d)
{
    set_status(d, 0);
    /* The reset is complete when Status reads 0 (4.2.3.1, 4.1.4.3.2). */
    for (unsigned i = 0; i < 1000 && vdev_status(d) != 0; i++)
        sleep_ns(1000 * 1000);
    d->features = 0;
    for (unsigned q = 0; q < VDEV_MAX_QUEUES; q++) {
        memset(&d->vq[q], 0, sizeof(d->vq[q]));
        d->vq[q].dev = d;
        d->vq[q].index = q;
    }
}

void vdev_begin(struct vdev *d)
{
    vdev_reset(d);
    set_status(d, VIRTIO_S_ACKNOWLEDGE);
    set_status(d, VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
    if (d->ops->begin)
        d->ops->begin(d);
    d->offered = d->ops->device_features(d);
}

bool vdev_set_features(struct vdev *d, uint64_t f)
{
    d->ops->driver_features(d, f);
    d->features = f;
    if (vdev_legacy(d)) /* no FEATURES_OK handshake in the legacy interface */
        return true;
    set_status(d, d->status | VIRTIO_S_FEATURES_OK);
    if (!(vdev_status(d) & VIRTIO_S_FEATURES_OK)) {
        d->status &= (uint8_t)~VIRTIO_S_FEATURES_OK;
        return false;
    }
    return true;
}

bool vq_setup(struct vdev *d, unsigned q, uint16_t num)
{
    if (q >= VDEV_MAX_QUEUES)
        return false;
    d->ops->queue_select(d, q);
    uint32_t max = d->ops->queue_max(d);
    if (max == 0) {
        printf("# virtio: queue %u: maximum size 0 (no such queue)\n", q);
        return false;
    }
    if (!vdev_legacy(d) && d->ops->queue_live(d)) {
        printf("# virtio: queue %u: already enabled\n", q);
        return false;
    }
    if (num == 0)
        num = (uint16_t)(max < VQ_MAX_SIZE ? max : VQ_MAX_SIZE);
    if (num > max || num > VQ_MAX_SIZE || (num & (num - 1))) {
        printf("# virtio: queue %u: size %u invalid (max %u)\n", q, num, max);
        return false;
    }
    /* One block for both layouts: descriptors, avail ring (+ used_event), then the used ring
     * (+ avail_event) at the next VQ_RING_ALIGN boundary (the legacy rule). Fresh memory from
     * the allocator is zero. */
    size_t avail_off = 16u * num, used_off = ALIGN_UP(avail_off + 6 + 2u * num, (size_t)VQ_RING_ALIGN);
    size_t total = ALIGN_UP(used_off + 6 + 8u * num, (size_t)PAGE_SIZE);
    uint8_t *mem = alloc_aligned(total, VQ_RING_ALIGN);
    if (!mem) {
        printf("# virtio: out of memory for a %u-entry queue\n", num);
        return false;
    }
    struct virtq *vq = &d->vq[q];
    memset(vq, 0, sizeof(*vq));
    vq->dev = d;
    vq->index = q;
    vq->num = num;
    vq->desc = (struct vring_desc *)mem;
    vq->avail = (struct vring_avail *)(mem + avail_off);
    vq->used = (struct vring_used *)(mem + used_off);
    vq->event_idx = d->features & BIT64(VIRTIO_F_EVENT_IDX);
    vq->indirect_ok = d->features & BIT64(VIRTIO_F_INDIRECT_DESC);
    for (uint16_t i = 0; i < num; i++)
        vq->desc[i].next = (uint16_t)(i + 1);
    vq->free_head = 0;
    vq->num_free = num;
    if (!d->ops->queue_activate(d, vq)) {
        vq->num = 0;
        return false;
    }
    return true;
}

void vdev_driver_ok(struct vdev *d) { set_status(d, d->status | VIRTIO_S_DRIVER_OK); }

bool vdev_up(struct vdev *d, uint64_t want, uint16_t num)
{
    vdev_begin(d);
    uint64_t f = d->offered & (want | BIT64(VIRTIO_F_VERSION_1));
    if (!vdev_set_features(d, f)) {
        printf("# virtio: %s: features 0x%lx refused (offered 0x%lx)\n", virtio_dev_name(d->device_id), f,
               d->offered);
        set_status(d, d->status | VIRTIO_S_FAILED);
        return false;
    }
    for (unsigned q = 0; q < d->nqueues; q++)
        if (!vq_setup(d, q, num)) {
            set_status(d, d->status | VIRTIO_S_FAILED);
            return false;
        }
    vdev_driver_ok(d);
    return true;
}

/* ---- split virtqueue ---- */

int vq_alloc_desc(struct virtq *vq)
{
    if (!vq->num_free)
        return -1;
    uint16_t i = vq->free_head;
    vq->free_head = vq->desc[i].next;
    vq->num_free--;
    vq->ndesc[i] = 1;
    return i;
}

void vq_publish(struct virtq *vq, uint16_t head)
{
    vq->avail->ring[vq->avail_idx & (vq->num - 1)] = head;
    barrier(); /* x86 keeps stores in order: the entry is visible before the index */
    vq->avail_idx++;
    WRITE_ONCE(vq->avail->idx, vq->avail_idx);
}

int vq_add(struct virtq *vq, const struct vbuf *b, unsigned nout, unsigned nin, void *token, bool indirect)
{
    unsigned n = nout + nin;
    if (n == 0 || !vq->num)
        return -1;
    uint16_t head;
    if (indirect) {
        if (n > VQ_MAX_INDIRECT || !vq->num_free)
            return -1;
        if (!vq->indirect) {
            vq->indirect = alloc_aligned((size_t)vq->num * VQ_MAX_INDIRECT * sizeof(struct vring_desc), 16);
            if (!vq->indirect)
                return -1;
        }
        head = vq->free_head;
        struct vring_desc *t = vq->indirect + (size_t)head * VQ_MAX_INDIRECT;
        for (unsigned i = 0; i < n; i++)
            t[i] = (struct vring_desc){b[i].addr, b[i].len,
                                       (uint16_t)((i >= nout ? VRING_DESC_F_WRITE : 0) |
                                                  (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
                                       (uint16_t)(i + 1 < n ? i + 1 : 0)};
        vq->desc[head].addr = virt_to_phys(t);
        vq->desc[head].len = n * (uint32_t)sizeof(struct vring_desc);
        vq->desc[head].flags = VRING_DESC_F_INDIRECT;
        vq->free_head = vq->desc[head].next;
        vq->num_free--;
        vq->ndesc[head] = 1;
    } else {
        if (n > vq->num_free)
            return -1;
        head = vq->free_head;
        uint16_t i = head, last = head;
        for (unsigned k = 0; k < n; k++) {
            last = i;
            vq->desc[i].addr = b[k].addr;
            vq->desc[i].len = b[k].len;
            vq->desc[i].flags = (uint16_t)((k >= nout ? VRING_DESC_F_WRITE : 0) |
                                           (k + 1 < n ? VRING_DESC_F_NEXT : 0));
            i = vq->desc[i].next; /* the free list's order is the chain's order */
        }
        vq->free_head = vq->desc[last].next;
        vq->num_free = (uint16_t)(vq->num_free - n);
        vq->ndesc[head] = (uint16_t)n;
    }
    vq->token[head] = token;
    vq_publish(vq, head);
    return head;
}

void vq_notify(struct virtq *vq)
{
    vq->kicks++;
    vq->dev->ops->notify(vq);
}

bool vq_kick(struct virtq *vq)
{
    /* Our avail->idx store must be visible before we read the device's suppression state. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t old = vq->kicked_idx, new_idx = vq->avail_idx;
    vq->kicked_idx = new_idx;
    bool need = vq->event_idx ? vring_need_event(READ_ONCE(*vq_avail_event(vq)), new_idx, old)
                              : !(READ_ONCE(vq->used->flags) & VRING_USED_F_NO_NOTIFY);
    if (need)
        vq_notify(vq);
    else
        vq->kicks_suppressed++;
    return need;
}

bool vq_pop(struct virtq *vq, void **token, uint32_t *len)
{
    if (!vq->num || vq_used_idx(vq) == vq->last_used)
        return false;
    barrier(); /* x86 keeps loads in order: the element is read after the index */
    struct vring_used_elem e = vq->used->ring[vq->last_used & (vq->num - 1)];
    if (e.id >= vq->num || !vq->ndesc[e.id]) {
        printf("# virtio: queue %u: used id %u is not an outstanding head\n", vq->index, e.id);
        return false;
    }
    uint16_t head = (uint16_t)e.id, n = vq->ndesc[head], last = head;
    for (uint16_t k = 1; k < n; k++)
        last = vq->desc[last].next;
    vq->desc[last].next = vq->free_head;
    vq->free_head = head;
    vq->num_free = (uint16_t)(vq->num_free + n);
    vq->ndesc[head] = 0;
    if (token)
        *token = vq->token[head];
    vq->token[head] = NULL;
    if (len)
        *len = e.len;
    vq->last_used++;
    if (vq->event_idx && !vq->manual_used_event)
        WRITE_ONCE(*vq_used_event(vq), vq->last_used); /* interrupt on the next one */
    return true;
}

struct used_wait {
    struct virtq *vq;
    uint16_t n;
};

static bool used_ready(void *arg)
{
    struct used_wait *w = arg;
    return (uint16_t)(vq_used_idx(w->vq) - w->vq->last_used) >= w->n;
}

bool vq_wait_used(struct virtq *vq, uint16_t n, uint64_t timeout_ns)
{
    struct used_wait w = {vq, n};
    return wait_until(used_ready, &w, timeout_ns);
}

bool poll_until(bool (*cond)(void *), void *arg, uint64_t timeout_ns, uint64_t step_ns)
{
    uint64_t start = rdtsc(), limit = ns_to_cycles(timeout_ns);
    for (;;) {
        if (wait_until(cond, arg, step_ns))
            return true;
        if (rdtsc() - start >= limit)
            return false;
    }
}
