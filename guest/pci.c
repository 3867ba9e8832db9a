/* PCI bus 0: configuration mechanism #1 and ECAM, enumeration, BAR sizing, capabilities, and
 * page-table entries for BARs above the 4 GiB the boot page tables cover.
 *
 * BARs: the guest keeps the addresses the VMM pre-assigned (as firmware would; the documented
 * choice, docs/boot-contract.md "PCI") and only sizes them. Sizing follows the hardware
 * protocol: decode off in the command register, all-ones written, read back, original restored,
 * decode back on, interrupts off around it (a handler must not touch a BAR mid-sizing). */
#include "pci.h"

#define CF8 0xcf8
#define CFC 0xcfc

#define PTE_P   (1ULL << 0)
#define PTE_RW  (1ULL << 1)
#define PTE_PWT (1ULL << 3)
#define PTE_PCD (1ULL << 4)
#define PTE_PS  (1ULL << 7)
#define PTE_ADDR 0x000ffffffffff000ULL

static struct pci_func funcs[PCI_MAX_FUNCS];
static unsigned nfuncs;
static bool probed;
static uint64_t ecam;    /* 0: none */
static spinlock_t cf8_lock;

/* ---- config mechanism #1 ---- */

static uint32_t cf8_addr(unsigned bus, unsigned slot, unsigned fn, unsigned off)
{
    return 0x80000000u | (bus & 0xff) << 16 | (slot & 0x1f) << 11 | (fn & 7) << 8 | (off & 0xfc);
}

uint32_t pci_cf8_read32(unsigned bus, unsigned slot, unsigned fn, unsigned off)
{
    spin_lock(&cf8_lock);
    outl(CF8, cf8_addr(bus, slot, fn, off));
    uint32_t v = inl(CFC);
    spin_unlock(&cf8_lock);
    return v;
}

void pci_cf8_write32(unsigned bus, unsigned slot, unsigned fn, unsigned off, uint32_t v)
{
    spin_lock(&cf8_lock);
    outl(CF8, cf8_addr(bus, slot, fn, off));
    outl(CFC, v);
    spin_unlock(&cf8_lock);
}

static uint32_t cf8_read(unsigned bus, unsigned slot, unsigned fn, unsigned off, unsigned len)
{
    spin_lock(&cf8_lock);
    outl(CF8, cf8_addr(bus, slot, fn, off));
    uint16_t port = (uint16_t)(CFC + (off & 3));
    uint32_t v = in_w(port, len);
    spin_unlock(&cf8_lock);
    return v;
}

static void cf8_write(unsigned bus, unsigned slot, unsigned fn, unsigned off, unsigned len, uint32_t v)
{
    spin_lock(&cf8_lock);
    outl(CF8, cf8_addr(bus, slot, fn, off));
    uint16_t port = (uint16_t)(CFC + (off & 3));
    out_w(port, len, v);
    spin_unlock(&cf8_lock);
}

/* ---- ECAM ---- */

static uintptr_t ecam_addr(unsigned bus, unsigned slot, unsigned fn, unsigned off)
{
    return (uintptr_t)(ecam + ((uint64_t)(bus & 0xff) << 20 | (slot & 0x1f) << 15 | (fn & 7) << 12 | (off & 0xfff)));
}

uint32_t pci_ecam_read32(unsigned bus, unsigned slot, unsigned fn, unsigned off)
{
    return ecam ? mmio_read32(ecam_addr(bus, slot, fn, off & ~3u)) : 0xffffffffu;
}

void pci_ecam_write32(unsigned bus, unsigned slot, unsigned fn, unsigned off, uint32_t v)
{
    if (ecam)
        mmio_write32(ecam_addr(bus, slot, fn, off & ~3u), v);
}

bool pci_have_ecam(void) { return ecam != 0; }
uint64_t pci_ecam_base(void) { return ecam; }

/* ---- per-function access ---- */

static uint32_t cfg_read(const struct pci_func *f, unsigned off, unsigned len)
{
    if (!ecam)
        return cf8_read(f->bus, f->slot, f->fn, off, len);
    uintptr_t a = ecam_addr(f->bus, f->slot, f->fn, off);
    return mmio_read_w(a, len);
}

static void cfg_write(const struct pci_func *f, unsigned off, unsigned len, uint32_t v)
{
    if (!ecam) {
        cf8_write(f->bus, f->slot, f->fn, off, len, v);
        return;
    }
    mmio_write_w(ecam_addr(f->bus, f->slot, f->fn, off), len, v);
}

uint32_t pci_read32(const struct pci_func *f, unsigned off) { return cfg_read(f, off, 4); }
uint16_t pci_read16(const struct pci_func *f, unsigned off) { return (uint16_t)cfg_read(f, off, 2); }
uint8_t pci_read8(const struct pci_func *f, unsigned off) { return (uint8_t)cfg_read(f, off, 1); }
void pci_write32(const struct pci_func *f, unsigned off, uint32_t v) { cfg_write(f, off, 4, v); }
void pci_write16(const struct pci_func *f, unsigned off, uint16_t v) { cfg_write(f, off, 2, v); }
void pci_write8(const struct pci_func *f, unsigned off, uint8_t v) { cfg_write(f, off, 1, v); }

uint8_t pci_find_cap(const struct pci_func *f, uint8_t id, uint8_t from)
{
    if (!(pci_read16(f, PCI_STATUS) & PCI_STATUS_CAPS))
        return 0;
    uint8_t at = from ? pci_read8(f, from + 1u) : pci_read8(f, PCI_CAP_PTR);
    for (unsigned n = 0; n < 48 && at >= 0x40; n++) {
        at &= 0xfc;
        if (pci_read8(f, at) == id)
            return at;
        at = pci_read8(f, at + 1u);
    }
    return 0;
}

/* ---- BARs ---- */

uint64_t pci_size_bar(const struct pci_func *f, unsigned i, uint32_t *lo_ones, uint32_t *hi_ones)
{
    unsigned reg = PCI_BAR0 + 4 * i;
    uint64_t flags = save_flags();
    cli();
    uint16_t cmd = pci_read16(f, PCI_COMMAND);
    pci_write16(f, PCI_COMMAND, cmd & (uint16_t)~(PCI_CMD_IO | PCI_CMD_MEM));
    uint32_t lo = pci_read32(f, reg), hi = 0, los, his = 0;
    bool is64 = !(lo & PCI_BAR_IO) && (lo & 6) == PCI_BAR_MEM64 && i < 5;
    pci_write32(f, reg, 0xffffffffu);
    los = pci_read32(f, reg);
    if (is64) {
        hi = pci_read32(f, reg + 4);
        pci_write32(f, reg + 4, 0xffffffffu);
        his = pci_read32(f, reg + 4);
    }
    pci_write32(f, reg, lo);
    if (is64)
        pci_write32(f, reg + 4, hi);
    pci_write16(f, PCI_COMMAND, cmd);
    restore_flags(flags);
    if (lo_ones)
        *lo_ones = los;
    if (hi_ones)
        *hi_ones = his;
    if (!los)
        return 0;
    if (los & PCI_BAR_IO) {
        /* 16-bit I/O decode (PC compatible): the upper 16 bits may read 0, as Linux assumes. */
        uint32_t m = los & 0xfffc;
        return m ? (~m & 0xffff) + 1 : 0;
    }
    uint64_t mask = (uint64_t)(is64 ? his : 0xffffffffu) << 32 | (los & ~0xfu);
    return mask == 0xffffffff00000000ULL ? 0 : ~mask + 1;
}

/* ---- page tables ---- */

static inline uint64_t read_cr3(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
    return v;
}

static uint64_t *table_at(uint64_t *entry)
{
    if (!(*entry & PTE_P)) {
        uint64_t *t = alloc_pages(1);
        if (!t)
            return NULL;
        memset(t, 0, PAGE_SIZE);
        *entry = virt_to_phys(t) | PTE_P | PTE_RW;
    }
    return (uint64_t *)(uintptr_t)(*entry & PTE_ADDR);
}

bool pci_map_mmio(uint64_t pa, uint64_t size)
{
    uint64_t *pml4 = (uint64_t *)(uintptr_t)(read_cr3() & PTE_ADDR);
    uint64_t end = ALIGN_UP(pa + size, 1ULL << 21);
    for (uint64_t a = pa & ~((1ULL << 21) - 1); a < end; a += 1ULL << 21) {
        uint64_t *pdpt = table_at(&pml4[(a >> 39) & 511]);
        if (!pdpt)
            return false;
        uint64_t *pdpte = &pdpt[(a >> 30) & 511];
        if ((*pdpte & (PTE_P | PTE_PS)) == (PTE_P | PTE_PS))
            continue; /* already a 1 GiB page */
        uint64_t *pd = table_at(pdpte);
        if (!pd)
            return false;
        uint64_t *pde = &pd[(a >> 21) & 511];
        if (!(*pde & PTE_P))
            *pde = a | PTE_P | PTE_RW | PTE_PS | PTE_PCD | PTE_PWT;
    }
    __asm__ volatile("mov %0, %%cr3" ::"r"(read_cr3()) : "memory"); /* flush */
    return true;
}

/* ---- enumeration ---- */

static void add_func(unsigned slot, unsigned fn)
{
    if (nfuncs == PCI_MAX_FUNCS)
        return;
    struct pci_func *f = &funcs[nfuncs];
    memset(f, 0, sizeof(*f));
    f->bus = 0;
    f->slot = (uint8_t)slot;
    f->fn = (uint8_t)fn;
    uint32_t id = pci_read32(f, PCI_VENDOR_ID);
    f->vendor = (uint16_t)id;
    f->device = (uint16_t)(id >> 16);
    uint32_t cr = pci_read32(f, PCI_REVISION);
    f->revision = (uint8_t)cr;
    f->class_code = cr >> 8;
    f->header_type = pci_read8(f, PCI_HEADER_TYPE);
    f->subsys_id = pci_read16(f, PCI_SUBSYS_ID);
    f->irq_line = pci_read8(f, PCI_INTERRUPT_LINE);
    f->irq_pin = pci_read8(f, PCI_INTERRUPT_PIN);
    f->msix_cap = pci_find_cap(f, PCI_CAP_MSIX, 0);
    if ((f->header_type & 0x7f) == 0) {
        for (unsigned i = 0; i < 6; i++) {
            uint32_t lo = pci_read32(f, PCI_BAR0 + 4 * i);
            struct pci_bar_info *b = &f->bar[i];
            b->size = pci_size_bar(f, i, NULL, NULL);
            b->io = lo & PCI_BAR_IO;
            b->is64 = !b->io && (lo & 6) == PCI_BAR_MEM64;
            b->addr = b->io ? lo & ~3u : lo & ~0xfu;
            if (b->is64 && i < 5) {
                b->addr |= (uint64_t)pci_read32(f, PCI_BAR0 + 4 * (i + 1)) << 32;
                i++; /* the high half */
            }
        }
        for (unsigned i = 0; i < 6; i++) {
            struct pci_bar_info *b = &f->bar[i];
            if (b->size && !b->io && b->addr + b->size + PAGE_SIZE > 0x100000000ULL &&
                !pci_map_mmio(b->addr, b->size + PAGE_SIZE))
                printf("# pci: %02x.%u: cannot map BAR %u at 0x%lx\n", slot, fn, i, b->addr);
        }
    }
    printf("# pci: 00:%02x.%u %04x:%04x rev %u class %06x irq pin %u line %u", slot, fn, f->vendor, f->device,
           f->revision, f->class_code, f->irq_pin, f->irq_line);
    for (unsigned i = 0; i < 6; i++)
        if (f->bar[i].size)
            printf(" BAR%u %s 0x%lx+0x%lx", i, f->bar[i].io ? "io" : f->bar[i].is64 ? "mem64" : "mem32",
                   f->bar[i].addr, f->bar[i].size);
    printf("\n");
    nfuncs++;
}

unsigned pci_probe(void)
{
    if (probed)
        return nfuncs;
    probed = true;
    int n = fdt_find_compatible(-1, "pci-host-ecam-generic");
    uint64_t base, size;
    if (n >= 0 && fdt_reg(n, 0, &base, &size) && base + size <= 0x100000000ULL)
        ecam = base;
    else
        printf("# pci: no ECAM window in the FDT: mechanism #1 only\n");
    for (unsigned slot = 0; slot < 32; slot++) {
        uint32_t id = ecam ? pci_ecam_read32(0, slot, 0, 0) : pci_cf8_read32(0, slot, 0, 0);
        if ((id & 0xffff) == 0xffff)
            continue;
        add_func(slot, 0);
        uint8_t ht = funcs[nfuncs - 1].header_type;
        for (unsigned fn = 1; fn < 8 && (ht & 0x80); fn++) {
            id = ecam ? pci_ecam_read32(0, slot, fn, 0) : pci_cf8_read32(0, slot, fn, 0);
            if ((id & 0xffff) != 0xffff)
                add_func(slot, fn);
        }
    }
    return nfuncs;
}

struct pci_func *pci_func_get(unsigned i)
{
    pci_probe();
    return i < nfuncs ? &funcs[i] : NULL;
}
