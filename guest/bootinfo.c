/* Boot information from either source, so that the rest of the guest does not care how it was
 * started:
 *  - mica (docs/boot-contract.md): the 64-bit entry with rdi = a flattened device tree
 *    (/chosen bootargs, /memory reg, /cpus/cpu@N reg = APIC ID; devices in the tree too);
 *  - PVH (QEMU -kernel; pvh.S): ebx = struct hvm_start_info (cmdline, an E820-style memory map
 *    in version >= 1, the ACPI RSDP). Only the boot CPU runs (APs would need INIT/SIPI), and
 *    devices are found on PCI; the FDT stays uninitialised, so FDT lookups find nothing. */
#include "guest.h"

#define HVM_START_MAGIC 0x336ec578u
#define HVM_MEMMAP_RAM  1
#define MAX_MEM_RANGES  32

struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;   /* version >= 1 */
    uint32_t memmap_entries; /* version >= 1 */
    uint32_t reserved;
};

struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};

extern uint32_t pvh_start_info; /* pvh.S: ebx at the PVH entry, else 0 */

static enum boot_source source;
static const char *cmdline;
static uint64_t rsdp;
/* PVH: RAM ranges copied out of the loader's memory map at boot. */
static struct {
    uint64_t base, size;
} pvh_ram[MAX_MEM_RANGES];
static unsigned pvh_nram;

static bool pvh_init(uint32_t pa)
{
    const struct hvm_start_info *si = (const void *)(uintptr_t)pa;
    if (si->magic != HVM_START_MAGIC)
        return false;
    source = BOOT_PVH;
    cmdline = si->cmdline_paddr ? (const char *)(uintptr_t)si->cmdline_paddr : NULL;
    rsdp = si->rsdp_paddr;
    if (si->version >= 1 && si->memmap_paddr) {
        const struct hvm_memmap_table_entry *e = (const void *)(uintptr_t)si->memmap_paddr;
        for (uint32_t i = 0; i < si->memmap_entries && pvh_nram < MAX_MEM_RANGES; i++)
            if (e[i].type == HVM_MEMMAP_RAM && e[i].size)
                pvh_ram[pvh_nram].base = e[i].addr, pvh_ram[pvh_nram++].size = e[i].size;
    }
    printf("# boot: PVH, start_info v%u at 0x%x, %u RAM range(s), rsdp 0x%lx\n", si->version, pa, pvh_nram,
           rsdp);
    return true;
}

bool bootinfo_init(const void *fdt)
{
    uint32_t pa = READ_ONCE(pvh_start_info);
    if (pa)
        return pvh_init(pa);
    if (!fdt_init(fdt))
        return false;
    source = BOOT_FDT;
    int chosen = fdt_path("/chosen");
    cmdline = chosen >= 0 ? fdt_prop_str(chosen, "bootargs") : NULL;
    return true;
}

enum boot_source boot_source(void) { return source; }
const char *boot_cmdline(void) { return cmdline; }
uint64_t boot_rsdp(void) { return rsdp; }

bool boot_mem_range(unsigned idx, uint64_t *base, uint64_t *size)
{
    if (source == BOOT_PVH) {
        if (idx >= pvh_nram)
            return false;
        *base = pvh_ram[idx].base;
        *size = pvh_ram[idx].size;
        return true;
    }
    /* FDT: every reg entry of every device_type = "memory" node, in order. */
    for (int n = fdt_next_node(0, NULL); n >= 0; n = fdt_next_node(n, NULL)) {
        const char *dt = fdt_prop_str(n, "device_type");
        if (!dt || strcmp(dt, "memory"))
            continue;
        for (int i = 0; fdt_reg(n, i, base, size); i++)
            if (idx-- == 0)
                return true;
    }
    return false;
}

static int fdt_cpu_node(unsigned idx)
{
    int cpus = fdt_path("/cpus");
    unsigned i = 0;
    for (int n = cpus >= 0 ? fdt_first_child(cpus) : -1; n >= 0; n = fdt_next_sibling(n)) {
        const char *dt = fdt_prop_str(n, "device_type");
        if (!dt || strcmp(dt, "cpu"))
            continue;
        if (i++ == idx)
            return n;
    }
    return -1;
}

unsigned boot_cpus(void)
{
    if (source == BOOT_PVH)
        return 1;
    unsigned n = 0;
    while (fdt_cpu_node(n) >= 0)
        n++;
    return n ? n : 1;
}

bool boot_cpu_apic_id(unsigned cpu, uint32_t *apic_id)
{
    if (source == BOOT_PVH) {
        if (cpu != 0)
            return false;
        *apic_id = bsp_apic_id;
        return true;
    }
    uint64_t a;
    int n = fdt_cpu_node(cpu);
    if (n < 0 || !fdt_reg(n, 0, &a, NULL))
        return false;
    *apic_id = (uint32_t)a;
    return true;
}
