/* virtio front end for the test guest: transports (virtio-mmio version 2 and legacy version 1,
 * virtio-pci modern and legacy/transitional) behind one ops table, split virtqueues, device
 * discovery (FDT, PCI), negotiation, interrupts and reset.
 * The guest is freestanding: the few spec definitions it needs are spelled out here. */
#ifndef GUEST_VIRTIO_H
#define GUEST_VIRTIO_H

#include "guest.h"

/* ---- virtio-mmio registers (OASIS virtio 1.1, 4.2.2; legacy 4.2.4) ---- */
#define VIRTIO_MMIO_MAGIC_VALUE         0x000 /* "virt" */
#define VIRTIO_MMIO_VERSION             0x004 /* 2 modern, 1 legacy */
#define VIRTIO_MMIO_DEVICE_ID           0x008
#define VIRTIO_MMIO_VENDOR_ID           0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES     0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES     0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_GUEST_PAGE_SIZE     0x028 /* legacy */
#define VIRTIO_MMIO_QUEUE_SEL           0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX       0x034
#define VIRTIO_MMIO_QUEUE_NUM           0x038
#define VIRTIO_MMIO_QUEUE_ALIGN         0x03c /* legacy */
#define VIRTIO_MMIO_QUEUE_PFN           0x040 /* legacy */
#define VIRTIO_MMIO_QUEUE_READY         0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY        0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS    0x060
#define VIRTIO_MMIO_INTERRUPT_ACK       0x064
#define VIRTIO_MMIO_STATUS              0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW      0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW    0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH   0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW    0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH   0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION   0x0fc
#define VIRTIO_MMIO_CONFIG              0x100

#define VIRTIO_MMIO_MAGIC 0x74726976u

#define VIRTIO_INT_USED   0x1 /* InterruptStatus: used buffer notification */
#define VIRTIO_INT_CONFIG 0x2 /* configuration change (also: DEVICE_NEEDS_RESET) */

/* Device status bits */
#define VIRTIO_S_ACKNOWLEDGE 0x01
#define VIRTIO_S_DRIVER      0x02
#define VIRTIO_S_DRIVER_OK   0x04
#define VIRTIO_S_FEATURES_OK 0x08
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED      0x80

/* Feature bits */
#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX    29
#define VIRTIO_F_VERSION_1    32
#define BIT64(n) (1ULL << (n))

/* Device IDs (virtio 1.1, 5): the types this guest has a driver for (virtio_dev_known).
 * Discovery reads the ID of a device of any other type, prints it and leaves the device alone:
 * none of its registers written, no interrupt routed, not returned by virtio_find / virtio_get. */
#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG     4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_FS      26

/* ---- split virtqueue layout (virtio 1.1, 2.6) ---- */
#define VRING_DESC_F_NEXT     1
#define VRING_DESC_F_WRITE    2
#define VRING_DESC_F_INDIRECT 4
#define VRING_USED_F_NO_NOTIFY     1
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
struct vring_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[]; /* [num], then used_event */
};
struct vring_used_elem {
    uint32_t id;
    uint32_t len;
};
struct vring_used {
    uint16_t flags;
    uint16_t idx;
    struct vring_used_elem ring[]; /* [num], then avail_event (u16) */
};

/* Is the index "event" in (old, new]? (both sides' notification suppression) */
static inline bool vring_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
    return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

#define VQ_MAX_SIZE      256
#define VQ_MAX_INDIRECT  16  /* descriptors per indirect table */
#define VQ_RING_ALIGN    4096

struct vdev;

struct virtq {
    struct vdev *dev;
    unsigned index;
    uint16_t num;                 /* 0: not set up */
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    struct vring_desc *indirect;  /* num tables of VQ_MAX_INDIRECT, allocated on first use */
    uint16_t free_head, num_free;
    uint16_t avail_idx;           /* our shadow of avail->idx */
    uint16_t kicked_idx;          /* avail_idx at the last notification decision */
    uint16_t last_used;           /* next used entry to pop */
    bool event_idx, indirect_ok;
    bool manual_used_event;       /* tests set used_event themselves */
    uintptr_t notify_addr;        /* modern PCI: this queue's notify address */
    unsigned kicks, kicks_suppressed;
    uint16_t ndesc[VQ_MAX_SIZE];  /* descriptors held by the chain at this head */
    void *token[VQ_MAX_SIZE];
};

#define VDEV_MAX_QUEUES 4 /* console 2, balloon 3 (with stats), blk up to 4 */
#define VDEV_MAX_VECTORS (VDEV_MAX_QUEUES + 1) /* MSI-X: entry 0 config, 1 + q queue q */

/* ---- virtio-pci (virtio 1.1, 4.1) ---- */
#define VIRTIO_PCI_VENDOR        0x1af4
#define VIRTIO_PCI_CAP_COMMON    1
#define VIRTIO_PCI_CAP_NOTIFY    2
#define VIRTIO_PCI_CAP_ISR       3
#define VIRTIO_PCI_CAP_DEVICE    4
#define VIRTIO_PCI_CAP_PCI_CFG   5
/* struct virtio_pci_cap: cap_vndr, cap_next, cap_len, cfg_type, bar, padding[3], offset, length */
#define VIRTIO_PCI_CAP_TYPE      3
#define VIRTIO_PCI_CAP_BAR       4
#define VIRTIO_PCI_CAP_OFFSET    8
#define VIRTIO_PCI_CAP_LENGTH    12
#define VIRTIO_PCI_NOTIFY_MULT   16 /* notify cap: notify_off_multiplier */
#define VIRTIO_PCI_CFG_DATA      16 /* pci_cfg cap: pci_cfg_data */
/* common configuration */
#define VPCI_DFSELECT      0x00
#define VPCI_DF            0x04
#define VPCI_GFSELECT      0x08
#define VPCI_GF            0x0c
#define VPCI_MSIX_CONFIG   0x10
#define VPCI_NUM_QUEUES    0x12
#define VPCI_STATUS        0x14
#define VPCI_CFG_GEN       0x15
#define VPCI_Q_SELECT      0x16
#define VPCI_Q_SIZE        0x18
#define VPCI_Q_MSIX        0x1a
#define VPCI_Q_ENABLE      0x1c
#define VPCI_Q_NOTIFY_OFF  0x1e
#define VPCI_Q_DESC        0x20
#define VPCI_Q_AVAIL       0x28
#define VPCI_Q_USED        0x30
/* legacy (0.9.5) I/O BAR 0 */
#define VPCI_L_HOST_FEATURES  0
#define VPCI_L_GUEST_FEATURES 4
#define VPCI_L_QUEUE_PFN      8
#define VPCI_L_QUEUE_NUM      12
#define VPCI_L_QUEUE_SEL      14
#define VPCI_L_QUEUE_NOTIFY   16
#define VPCI_L_STATUS         18
#define VPCI_L_ISR            19
#define VPCI_L_MSIX_CONFIG    20 /* only while MSI-X is enabled */
#define VPCI_L_MSIX_QUEUE     22
#define VPCI_L_CONFIG(msix)   ((msix) ? 24 : 20)
#define VIRTIO_MSI_NO_VECTOR  0xffff

enum vdev_kind { VDEV_MMIO, VDEV_MMIO_LEGACY, VDEV_PCI, VDEV_PCI_LEGACY };
enum vdev_irq_mode { VDEV_IRQ_PIN, VDEV_IRQ_MSIX, VDEV_IRQ_INTX }; /* PIN: virtio-mmio's GSI */

/* A transport: every register access of the core goes through one of these. */
struct vdev_ops {
    const char *name;               /* vdev_transport_name() */
    bool legacy;                    /* no FEATURES_OK, no VERSION_1, no config generation */
    uint8_t (*get_status)(struct vdev *d);
    void (*set_status)(struct vdev *d, uint8_t s);
    uint64_t (*device_features)(struct vdev *d);     /* all words (legacy: 32 bits) */
    void (*driver_features)(struct vdev *d, uint64_t f);
    void (*feature_select)(struct vdev *d, uint32_t sel); /* device and driver selectors; raw */
    uint32_t (*feature_word)(struct vdev *d);        /* device features at the current selector */
    void (*queue_select)(struct vdev *d, uint32_t q);
    uint32_t (*queue_max)(struct vdev *d);           /* of the selected queue; 0: none */
    bool (*queue_live)(struct vdev *d);              /* selected queue: ready / PFN set */
    /* Selected queue: size, vector, addresses, enable (ready or PFN). */
    bool (*queue_activate)(struct vdev *d, struct virtq *vq);
    void (*notify)(struct virtq *vq);
    uint32_t (*generation)(struct vdev *d);          /* NULL: none */
    uint32_t (*config_read)(struct vdev *d, unsigned off, unsigned width);
    void (*config_write)(struct vdev *d, unsigned off, unsigned width, uint32_t v);
    uint32_t (*isr)(struct vdev *d);                 /* PCI: reading clears (and lowers INTx) */
    void (*isr_ack)(struct vdev *d, uint32_t bits);  /* NULL: the read acked */
    void (*begin)(struct vdev *d);                   /* NULL or: after DRIVER (config vector) */
};

struct pci_func;

struct vdev {
    enum vdev_kind kind;
    const struct vdev_ops *ops;
    uintptr_t base;               /* virtio-mmio registers */
    uint32_t gsi;                 /* mmio: the FDT's; PCI: INTx (Interrupt Line) */
    int vector;                   /* mmio: its vector; PCI: the INTx vector (-1 if none) */
    uint32_t version;             /* mmio: 2 modern, 1 legacy; PCI: 1 modern, 0 legacy */
    uint32_t device_id;
    uint64_t offered;             /* DeviceFeatures */
    uint64_t features;            /* what we acked (accepted once FEATURES_OK stuck) */
    uint8_t status;               /* our shadow of what we last wrote */
    unsigned nqueues;
    struct virtq vq[VDEV_MAX_QUEUES];
    /* Interrupt bookkeeping: the handlers count here. With MSI-X, a queue vector only counts
     * (no register access); the config vector and the INTx/mmio handlers read the interrupt
     * status (and ack it) and OR it into isr_seen. */
    volatile unsigned irqs, used_irqs, config_irqs, spurious_irqs;
    volatile uint32_t isr_seen;
    volatile unsigned vec_irqs[VDEV_MAX_VECTORS]; /* MSI-X interrupts per table entry */
    volatile unsigned irq_cpu;    /* PCI: the cpu index that took the last interrupt */
    /* virtio-pci */
    struct pci_func *pci;
    bool transitional;            /* has the legacy I/O BAR 0 */
    uintptr_t common, isr_addr, devcfg, notify_base; /* BAR 4 structures (modern) */
    uint32_t notify_mult, devcfg_len;
    uint16_t io;                  /* legacy I/O BAR 0 base */
    uint16_t hw_queues;           /* num_queues (modern) or queues with QUEUE_NUM != 0 */
    enum vdev_irq_mode irq_mode;
    uintptr_t msix_table, msix_pba;
    uint16_t msix_nvec;           /* table size */
    int msix_vec[VDEV_MAX_VECTORS]; /* CPU vector of table entry i */
};

/* Buffers for vq_add: device-readable ones first (nout), then device-writable (nin). */
struct vbuf {
    uint64_t addr;
    uint32_t len;
};

/* virtio-mmio register access (mmio transports only). */
static inline uint32_t vdev_read(const struct vdev *d, unsigned off) { return mmio_read32(d->base + off); }
static inline void vdev_write(const struct vdev *d, unsigned off, uint32_t v) { mmio_write32(d->base + off, v); }
static inline bool vdev_legacy(const struct vdev *d) { return d->ops->legacy; }
static inline bool vdev_is_pci(const struct vdev *d) { return d->kind == VDEV_PCI || d->kind == VDEV_PCI_LEGACY; }
/* "mmio", "mmio-legacy", "pci", "pci-legacy" */
const char *vdev_transport_name(const struct vdev *d);
const char *virtio_dev_name(uint32_t id);             /* "?" for a type virtio_dev_known() denies */
bool virtio_dev_known(uint32_t id);

/* Transport-independent register access (for tests). */
uint32_t vdev_config_read(struct vdev *d, unsigned off, unsigned width); /* device config */
void vdev_config_write(struct vdev *d, unsigned off, unsigned width, uint32_t v);
bool vdev_has_generation(const struct vdev *d);
uint32_t vdev_generation(struct vdev *d);            /* 0 without one */
uint32_t vdev_isr(struct vdev *d);                   /* PCI: the read clears it */
void vdev_queue_select(struct vdev *d, uint32_t q);
uint32_t vdev_queue_max(struct vdev *d);             /* selected queue */
bool vdev_queue_live(struct vdev *d);                /* selected queue */
void vdev_feature_select(struct vdev *d, uint32_t sel);
uint32_t vdev_feature_word(struct vdev *d);
/* Holds back the device's interrupts (mmio/INTx: the IOAPIC pin; MSI-X: the function mask). */
void vdev_irq_mask(struct vdev *d, bool masked);

/* Discovery (first call probes the FDT's virtio-mmio slots, routing each GSI, then the PCI
 * bus, setting up MSI-X): the idx-th device with this ID (mmio ones first), or NULL. */
struct vdev *virtio_find(uint32_t device_id, unsigned idx);
unsigned virtio_count(void);                          /* devices found (of known types) */
struct vdev *virtio_get(unsigned i);                  /* the i-th device found (mmio ones first), or NULL */

/* Bring-up in steps (for tests that break the rules between them) ... */
void vdev_reset(struct vdev *d);                      /* Status 0, read back; forget the queues */
void vdev_begin(struct vdev *d);                      /* reset, ACKNOWLEDGE, DRIVER, read features */
bool vdev_set_features(struct vdev *d, uint64_t f);   /* ack f; modern: FEATURES_OK must stick */
bool vq_setup(struct vdev *d, unsigned q, uint16_t num); /* num 0 = QueueNumMax */
void vdev_driver_ok(struct vdev *d);
/* ... or all at once: features = offered & want (VERSION_1 always when offered). */
bool vdev_up(struct vdev *d, uint64_t want, uint16_t num);
uint8_t vdev_status(const struct vdev *d);            /* reads the Status register */

/* Virtqueue operations. vq_add returns the head or -1 (no room); with indirect, the chain
 * goes into this head's indirect table (at most VQ_MAX_INDIRECT buffers). */
int vq_add(struct virtq *vq, const struct vbuf *b, unsigned nout, unsigned nin, void *token, bool indirect);
/* Notifies the device if it wants to hear (EVENT_IDX avail_event, or USED_F_NO_NOTIFY);
 * returns whether it did. vq_notify always does. */
bool vq_kick(struct virtq *vq);
void vq_notify(struct virtq *vq);
static inline uint16_t vq_used_idx(const struct virtq *vq) { return READ_ONCE(vq->used->idx); }
static inline bool vq_has_used(const struct virtq *vq) { return vq_used_idx(vq) != vq->last_used; }
/* Pops one used chain: token and written length; false if none. */
bool vq_pop(struct virtq *vq, void **token, uint32_t *len);
static inline volatile uint16_t *vq_used_event(struct virtq *vq) { return &vq->avail->ring[vq->num]; }
static inline volatile uint16_t *vq_avail_event(struct virtq *vq) { return (volatile uint16_t *)&vq->used->ring[vq->num]; }
/* Low level, for hostile tests: take a free descriptor index (-1 if none); publish a head. */
int vq_alloc_desc(struct virtq *vq);
void vq_publish(struct virtq *vq, uint16_t head);

/* Waits for n used chains beyond last_used on vq (interrupt driven, bounded). */
bool vq_wait_used(struct virtq *vq, uint16_t n, uint64_t timeout_ns);
/* Like wait_until, but re-checks cond every step_ns even without an interrupt. */
bool poll_until(bool (*cond)(void *), void *arg, uint64_t timeout_ns, uint64_t step_ns);

/* virtio_pci.c */
void virtio_pci_probe(struct vdev *devs, unsigned *ndevs, unsigned max); /* appends PCI devices */
/* PCI only, with the device reset: MSI-X (true) or INTx through the IOAPIC (false). */
bool vdev_pci_use_msix(struct vdev *d, bool msix);
uint16_t vpci_msix_ctrl(struct vdev *d);
void vpci_msix_ctrl_write(struct vdev *d, uint16_t v);

#endif
