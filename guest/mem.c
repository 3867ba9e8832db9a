/* DMA/page allocator: a bump allocator over the boot RAM ranges (FDT /memory or the PVH memory
 * map: boot_mem_range), above the guest image and
 * 1 MiB and below the MMIO hole (only the first 4 GiB are mapped). Memory is never freed or
 * reused, so it is still as the VMM zeroed it: nothing is touched here (a first touch of a
 * page is expensive under nested virtualization). */
#include "guest.h"

#define MAX_RANGES 16

extern char _end[];

struct range {
    uint64_t next, end;
};
static struct range ranges[MAX_RANGES];
static unsigned nranges;
static uint64_t total;
static spinlock_t mem_lock;

static void add_range(uint64_t base, uint64_t size)
{
    uint64_t end = base + size;
    total += size;
    uint64_t lo = ALIGN_UP((uint64_t)(uintptr_t)_end, PAGE_SIZE);
    if (lo < 0x100000)
        lo = 0x100000;
    if (base < lo)
        base = lo;
    if (end > MMIO_HOLE_START)
        end = MMIO_HOLE_START;
    if (base >= end || nranges == MAX_RANGES)
        return;
    ranges[nranges++] = (struct range){base, end};
}

void mem_init(void)
{
    uint64_t a, s;
    for (unsigned i = 0; boot_mem_range(i, &a, &s); i++)
        add_range(a, s);
}

void *alloc_aligned(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    if (align & (align - 1))
        return NULL;
    void *r = NULL;
    spin_lock(&mem_lock);
    for (unsigned i = 0; i < nranges; i++) {
        uint64_t a = ALIGN_UP(ranges[i].next, (uint64_t)align);
        if (a >= ranges[i].next && a <= ranges[i].end && size <= ranges[i].end - a) {
            ranges[i].next = a + size;
            r = (void *)(uintptr_t)a;
            break;
        }
    }
    spin_unlock(&mem_lock);
    return r;
}

void *alloc_pages(size_t n) { return alloc_aligned(n * PAGE_SIZE, PAGE_SIZE); }

uint64_t mem_total(void) { return total; }

uint64_t mem_free(void)
{
    uint64_t f = 0;
    for (unsigned i = 0; i < nranges; i++)
        f += ranges[i].end - ranges[i].next;
    return f;
}
