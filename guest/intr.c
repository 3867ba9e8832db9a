/* IDT (one per cpu, each built by its own cpu: no start-up ordering between vCPUs), IRQ
 * dispatch, LAPIC (xAPIC MMIO) and IOAPIC helpers. */
#include "guest.h"

struct idt_gate {
    uint16_t off_lo, sel;
    uint8_t ist, type;
    uint16_t off_mid;
    uint32_t off_hi, zero;
};

static struct idt_gate idt[MAX_CPUS][256] __attribute__((aligned(4096)));
static struct {
    irq_handler_t fn;
    void *ctx;
} handlers[256];
static int next_vector = VEC_FIRST_DYN;
extern const char isr_stubs[];
void exception_fatal(struct trap_frame *f); /* main.c */

void idt_init_this_cpu(void)
{
    struct idt_gate *g = idt[this_cpu()];
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    for (unsigned v = 0; v < 256; v++) {
        uintptr_t a = (uintptr_t)isr_stubs + 16 * v;
        g[v] = (struct idt_gate){(uint16_t)a, cs, 0, 0x8e, (uint16_t)(a >> 16), (uint32_t)(a >> 32), 0};
    }
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } idtr = {sizeof(idt[0]) - 1, (uintptr_t)g};
    __asm__ volatile("lidt %0" ::"m"(idtr));
}

void irq_register(unsigned vector, irq_handler_t fn, void *ctx)
{
    handlers[vector & 0xff].ctx = ctx;
    __atomic_store_n(&handlers[vector & 0xff].fn, fn, __ATOMIC_RELEASE);
}

void irq_unregister(unsigned vector) { __atomic_store_n(&handlers[vector & 0xff].fn, NULL, __ATOMIC_RELEASE); }

int irq_alloc_vector(void)
{
    int v;
    do
        v = __atomic_fetch_add(&next_vector, 1, __ATOMIC_RELAXED);
    while (v == VEC_UART);
    return v < VEC_TIMER ? v : -1;
}

void trap_dispatch(struct trap_frame *f)
{
    unsigned v = (unsigned)f->vector;
    if (v < 32)
        exception_fatal(f);
    irq_handler_t fn = __atomic_load_n(&handlers[v].fn, __ATOMIC_ACQUIRE);
    if (fn)
        fn(v, handlers[v].ctx);
    if (v != VEC_SPURIOUS)
        lapic_eoi();
}

/* ---- LAPIC ---- */
uint64_t lapic_timer_hz = 1000000000; /* KVM's default APIC bus: 1 tick per ns */

void lapic_init_this_cpu(void)
{
    lapic_write(LAPIC_SVR, 0x100 | VEC_SPURIOUS); /* software-enable */
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_LVT0, 1u << 16);            /* mask LINT0: no 8259 ExtINT */
    lapic_write(LAPIC_LVT_TMR, (1u << 16) | VEC_TIMER);
    lapic_write(LAPIC_TMR_DCR, 0xb);              /* divide by 1 */
}

uint32_t lapic_id(void) { return lapic_read(LAPIC_ID) >> 24; }

void lapic_send_ipi(uint32_t apic_id, uint8_t vector)
{
    uint64_t f = save_flags();
    cli();
    lapic_write(LAPIC_ICR_HI, apic_id << 24);
    lapic_write(LAPIC_ICR_LO, (1u << 14) | vector); /* fixed, physical, assert */
    restore_flags(f);
}

static void lapic_timer_arm(uint64_t ns, uint32_t mode)
{
    uint64_t ticks = ns * (lapic_timer_hz / 1000000) / 1000;
    if (ticks == 0)
        ticks = 1;
    if (ticks > 0xffffffff)
        ticks = 0xffffffff;
    lapic_write(LAPIC_LVT_TMR, mode | VEC_TIMER); /* unmasked */
    lapic_write(LAPIC_TMR_ICR, (uint32_t)ticks);
}

void lapic_timer_oneshot(uint64_t ns) { lapic_timer_arm(ns, 0); }

void lapic_timer_periodic(uint64_t ns) { lapic_timer_arm(ns, 1u << 17); }

void lapic_timer_stop(void) { lapic_write(LAPIC_TMR_ICR, 0); }

/* ---- IOAPIC ---- */
static uint32_t ioapic_read(uint32_t reg)
{
    mmio_write32(IOAPIC_BASE, reg);
    return mmio_read32(IOAPIC_BASE + 0x10);
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(IOAPIC_BASE, reg);
    mmio_write32(IOAPIC_BASE + 0x10, v);
}

static spinlock_t ioapic_lock;

unsigned ioapic_pins(void)
{
    spin_lock(&ioapic_lock);
    unsigned n = ((ioapic_read(1) >> 16) & 0xff) + 1;
    spin_unlock(&ioapic_lock);
    return n;
}

void ioapic_route(unsigned gsi, uint8_t vector, uint32_t dest, uint32_t flags)
{
    spin_lock(&ioapic_lock);
    ioapic_write(0x10 + 2 * gsi, IOAPIC_MASKED | vector); /* mask while changing */
    ioapic_write(0x11 + 2 * gsi, dest << 24);
    ioapic_write(0x10 + 2 * gsi, flags | vector);       /* fixed delivery, physical dest */
    spin_unlock(&ioapic_lock);
}

static void ioapic_set_mask(unsigned gsi, bool masked)
{
    spin_lock(&ioapic_lock);
    uint32_t lo = ioapic_read(0x10 + 2 * gsi);
    ioapic_write(0x10 + 2 * gsi, masked ? lo | IOAPIC_MASKED : lo & ~IOAPIC_MASKED);
    spin_unlock(&ioapic_lock);
}

void ioapic_mask(unsigned gsi) { ioapic_set_mask(gsi, true); }
void ioapic_unmask(unsigned gsi) { ioapic_set_mask(gsi, false); }

uint64_t ioapic_read_entry(unsigned gsi)
{
    spin_lock(&ioapic_lock);
    uint64_t v = ioapic_read(0x10 + 2 * gsi) | (uint64_t)ioapic_read(0x11 + 2 * gsi) << 32;
    spin_unlock(&ioapic_lock);
    return v;
}
