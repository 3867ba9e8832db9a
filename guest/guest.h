/* mica-testguest: a freestanding x86_64 test kernel for mica (see docs/boot-contract.md).
 * One header for the whole guest: port/MMIO access, console, FDT, command line, memory,
 * time, interrupts (IDT, LAPIC, IOAPIC), SMP and the test registry. */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_CPUS        64
#define STACK_SIZE      (16 * 1024)
#define PAGE_SIZE       4096UL

#define COM1            0x3f8
#define COM1_GSI        4
#define RTC_INDEX       0x70
#define RTC_DATA        0x71
#define DEBUG_EXIT_PORT 0x501
#define IOAPIC_BASE     0xfec00000UL
#define LAPIC_BASE      0xfee00000UL
#define MMIO_HOLE_START 0xc0000000UL

/* Interrupt vectors used by the core; irq_alloc_vector() hands out others from 0x30. */
#define VEC_FIRST_DYN   0x30
#define VEC_UART        0x40
#define VEC_TIMER       0xec /* LAPIC timer: wakes bounded waits */
#define VEC_WAKE        0xed /* IPI: "look at your mailbox" / "your call completed" */
#define VEC_SPURIOUS    0xff

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define barrier() __asm__ volatile("" ::: "memory")
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#define noreturn _Noreturn

/* ---- port and MMIO access ---- */
static inline void outb(uint16_t p, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outw(uint16_t p, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(p)); }
static inline void outl(uint16_t p, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(p)); }
static inline uint8_t inb(uint16_t p) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline uint16_t inw(uint16_t p) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(p)); return v; }
static inline uint32_t inl(uint16_t p) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(p)); return v; }

/* Exactly one access of the given width (no merging/splitting by the compiler). */
static inline uint8_t mmio_read8(uintptr_t a) { uint8_t v; __asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(a) : "memory"); return v; }
static inline uint16_t mmio_read16(uintptr_t a) { uint16_t v; __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
static inline uint32_t mmio_read32(uintptr_t a) { uint32_t v; __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
static inline uint64_t mmio_read64(uintptr_t a) { uint64_t v; __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
static inline void mmio_write8(uintptr_t a, uint8_t v) { __asm__ volatile("movb %0, (%1)" ::"q"(v), "r"(a) : "memory"); }
static inline void mmio_write16(uintptr_t a, uint16_t v) { __asm__ volatile("movw %0, (%1)" ::"r"(v), "r"(a) : "memory"); }
static inline void mmio_write32(uintptr_t a, uint32_t v) { __asm__ volatile("movl %0, (%1)" ::"r"(v), "r"(a) : "memory"); }
static inline void mmio_write64(uintptr_t a, uint64_t v) { __asm__ volatile("movq %0, (%1)" ::"r"(v), "r"(a) : "memory"); }

/* One access of width 1, 2 or 4 bytes (device configuration fields). */
static inline uint32_t mmio_read_w(uintptr_t a, unsigned w) { return w == 1 ? mmio_read8(a) : w == 2 ? mmio_read16(a) : mmio_read32(a); }
static inline void mmio_write_w(uintptr_t a, unsigned w, uint32_t v)
{
    if (w == 1)
        mmio_write8(a, (uint8_t)v);
    else if (w == 2)
        mmio_write16(a, (uint16_t)v);
    else
        mmio_write32(a, v);
}
static inline uint32_t in_w(uint16_t p, unsigned w) { return w == 1 ? inb(p) : w == 2 ? inw(p) : inl(p); }
static inline void out_w(uint16_t p, unsigned w, uint32_t v)
{
    if (w == 1)
        outb(p, (uint8_t)v);
    else if (w == 2)
        outw(p, (uint16_t)v);
    else
        outl(p, v);
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline uint64_t save_flags(void) { uint64_t f; __asm__ volatile("pushfq; popq %0" : "=r"(f)::"memory"); return f; }
static inline void restore_flags(uint64_t f) { __asm__ volatile("pushq %0; popfq" ::"r"(f) : "memory", "cc"); }
static inline uint64_t read_cr2(void) { uint64_t v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }

/* ---- lib.c ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
/* Parses decimal or 0x-hex; returns false unless the whole [s, s+len) is a number. */
bool parse_u64(const char *s, size_t len, uint64_t *out);

typedef struct { volatile uint32_t v; } spinlock_t;
void spin_lock(spinlock_t *l);
void spin_unlock(spinlock_t *l);

/* ---- console.c: COM1 16550, polled output ---- */
void console_init(void);
void console_write(const char *s, size_t n);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
int snprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t n, const char *fmt, va_list ap);
void console_force_unlock(void); /* fatal paths only */

/* ---- fdt.c: read-only flattened device tree ---- */
bool fdt_init(const void *blob);
int fdt_path(const char *path);                 /* node offset or -1; "/" is the root */
int fdt_first_child(int node);                  /* -1 if none */
int fdt_next_sibling(int node);                 /* -1 if none */
int fdt_next_node(int node, int *depth);        /* depth-first walk; -1 at the end */
int fdt_parent(int node);
const char *fdt_name(int node);                 /* "cpu@1" */
const void *fdt_prop(int node, const char *name, int *len);
bool fdt_prop_u32(int node, const char *name, uint32_t *out);
const char *fdt_prop_str(int node, const char *name); /* NUL-terminated or NULL */
bool fdt_is_compatible(int node, const char *compat);
int fdt_find_compatible(int after, const char *compat); /* after = -1 to start */
/* idx-th (address, size) of node's "reg", using the parent's #address-cells/#size-cells. */
bool fdt_reg(int node, int idx, uint64_t *addr, uint64_t *size);
static inline uint32_t be32(const void *p)
{
    const uint8_t *b = p;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static inline uint64_t be64(const void *p) { return (uint64_t)be32(p) << 32 | be32((const uint8_t *)p + 4); }

/* ---- cmdline.c: bootargs as space-separated key=value words ---- */
void cmdline_init(const char *bootargs);
const char *cmdline_raw(void);
const char *cmdline_get(const char *key);       /* value, "" for a bare word, NULL if absent */
uint64_t cmdline_get_u64(const char *key, uint64_t def);

/* ---- mem.c: bump allocator over FDT RAM above the image; memory is never reused, so
 * it is as the VMM left it (zero): nothing is zeroed here. ---- */
void mem_init(void);
void *alloc_aligned(size_t size, size_t align);
void *alloc_pages(size_t n);
uint64_t mem_total(void);                       /* bytes of RAM listed in the FDT */
uint64_t mem_free(void);                        /* bytes left for the allocator */
static inline uint64_t virt_to_phys(const void *p) { return (uintptr_t)p; }

/* ---- time.c ---- */
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}
static inline uint64_t rdtscp(uint32_t *aux)
{
    uint32_t lo, hi, c;
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(c));
    if (aux)
        *aux = c;
    return (uint64_t)hi << 32 | lo;
}
void time_init(void);                 /* BSP, after LAPIC and IDT */
extern uint64_t tsc_hz;               /* 0 if unknown */
extern const char *tsc_source;
extern bool have_rdtscp;
#define MS 1000000UL                  /* nanoseconds in a millisecond */
uint64_t cycles_to_ns(uint64_t c);    /* 0 if the TSC frequency is unknown */
uint64_t ns_to_cycles(uint64_t ns);   /* uses a 3 GHz guess if unknown (only for timeouts) */
/* hlt (with the LAPIC timer as a wake-up) until cond(arg) or timeout; true if cond. */
bool wait_until(bool (*cond)(void *), void *arg, uint64_t timeout_ns);
/* Waits (halting, so pending interrupts come in) until *counter differs from `from`. */
bool wait_count(volatile unsigned *counter, unsigned from, uint64_t timeout_ns);
void sleep_ns(uint64_t ns);

/* ---- intr.c: IDT, LAPIC, IOAPIC ---- */
struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error, rip, cs, rflags, rsp, ss;
};
typedef void (*irq_handler_t)(unsigned vector, void *ctx);
void idt_init_this_cpu(void);
void irq_register(unsigned vector, irq_handler_t fn, void *ctx);
void irq_unregister(unsigned vector);
int irq_alloc_vector(void);           /* -1 if exhausted */

#define LAPIC_ID      0x020
#define LAPIC_VER     0x030
#define LAPIC_TPR     0x080
#define LAPIC_EOI     0x0b0
#define LAPIC_SVR     0x0f0
#define LAPIC_ICR_LO  0x300
#define LAPIC_ICR_HI  0x310
#define LAPIC_LVT_TMR 0x320
#define LAPIC_LVT0    0x350
#define LAPIC_LVT1    0x360
#define LAPIC_LVT_ERR 0x370
#define LAPIC_TMR_ICR 0x380
#define LAPIC_TMR_CCR 0x390
#define LAPIC_TMR_DCR 0x3e0
static inline uint32_t lapic_read(unsigned reg) { return mmio_read32(LAPIC_BASE + reg); }
static inline void lapic_write(unsigned reg, uint32_t v) { mmio_write32(LAPIC_BASE + reg, v); }
static inline void lapic_eoi(void) { lapic_write(LAPIC_EOI, 0); }
void lapic_init_this_cpu(void);       /* enable via SVR, mask LINT0 (no PIC ExtINT) */
uint32_t lapic_id(void);
void lapic_send_ipi(uint32_t apic_id, uint8_t vector);
void lapic_timer_oneshot(uint64_t ns);
/* Fires every ns until stopped: a wait that hlts survives a lost timer interrupt. */
void lapic_timer_periodic(uint64_t ns);
void lapic_timer_stop(void);
extern uint64_t lapic_timer_hz;       /* 1 GHz (KVM's APIC bus) unless CPUID says otherwise */

#define IOAPIC_EDGE       0
#define IOAPIC_LEVEL      (1u << 15)
#define IOAPIC_ACTIVE_LOW (1u << 13)
#define IOAPIC_MASKED     (1u << 16)
unsigned ioapic_pins(void);
/* Programs pin gsi -> vector on the CPU with APIC ID dest; flags: IOAPIC_EDGE/LEVEL, ACTIVE_LOW,
 * MASKED. */
void ioapic_route(unsigned gsi, uint8_t vector, uint32_t dest, uint32_t flags);
void ioapic_mask(unsigned gsi);
void ioapic_unmask(unsigned gsi);
uint64_t ioapic_read_entry(unsigned gsi);

/* ---- smp.c ---- */
struct percpu {
    volatile uint32_t apic_id;
    volatile uint32_t arrived;
    void (*volatile fn)(void *);
    void *volatile arg;
    volatile uint32_t req_seq, done_seq;
    volatile uint32_t caller_apic;
} __attribute__((aligned(64)));
extern struct percpu percpu[MAX_CPUS];
extern uint8_t guest_stacks[MAX_CPUS][STACK_SIZE];
static inline unsigned this_cpu(void)
{
    uintptr_t sp;
    __asm__ volatile("mov %%rsp, %0" : "=r"(sp));
    return (unsigned)((sp - (uintptr_t)guest_stacks) / STACK_SIZE);
}
unsigned smp_fdt_cpus(void);          /* cpus listed in the FDT (>= 1) */
bool smp_fdt_apic_id(unsigned cpu, uint32_t *apic_id);
bool smp_wait_arrived(unsigned cpu, uint64_t timeout_ns);
/* Run fn(arg) on cpu (an AP) and wait for it; false on timeout. */
bool smp_call(unsigned cpu, void (*fn)(void *), void *arg, uint64_t timeout_ns);
/* Start fn(arg) on cpu without waiting; pair with smp_call_wait. */
bool smp_call_async(unsigned cpu, void (*fn)(void *), void *arg);
bool smp_call_wait(unsigned cpu, uint64_t timeout_ns);

/* ---- main.c: the test registry and runner ---- */
enum test_result { TEST_PASS, TEST_FAIL, TEST_SKIP };
struct test {
    const char *name;
    enum test_result (*fn)(void);
    bool destructive; /* never part of tests=all */
};
/* TEST(name, fn): run in declaration order (files in link order, which is sorted by name). */
#define TEST_DECLARE(n, f, d)                                                                \
    static const struct test test_desc_##n __attribute__((used, section(".guest_tests"),   \
                                                           aligned(8))) = {#n, f, d}
#define TEST(n, f) TEST_DECLARE(n, f, false)
#define TEST_DESTRUCTIVE(n, f) TEST_DECLARE(n, f, true)
/* Record a reason (shown after '#' on the TAP line) and return the result. */
enum test_result test_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
enum test_result test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define CHECK(cond, ...)                  \
    do {                                  \
        if (!(cond))                      \
            return test_fail(__VA_ARGS__); \
    } while (0)

extern uint32_t bsp_apic_id;
noreturn void guest_exit(unsigned status);
noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kmain(const void *fdt, unsigned cpu);
noreturn void ap_main(unsigned cpu);

/* ---- bootinfo.c: what the guest was started with, from either source ---- */
enum boot_source {
    BOOT_FDT, /* mica: 64-bit entry, rdi = flattened device tree (docs/boot-contract.md) */
    BOOT_PVH, /* QEMU -kernel: 32-bit PVH entry (pvh.S), hvm_start_info; no FDT, one cpu */
};
bool bootinfo_init(const void *fdt);  /* false if neither source is valid */
enum boot_source boot_source(void);
const char *boot_cmdline(void);       /* NULL if none */
bool boot_mem_range(unsigned idx, uint64_t *base, uint64_t *size); /* idx-th RAM range */
unsigned boot_cpus(void);             /* >= 1 */
bool boot_cpu_apic_id(unsigned cpu, uint32_t *apic_id); /* PVH: cpu 0 only, after bsp_apic_id */
uint64_t boot_rsdp(void);             /* PVH: the ACPI RSDP's address, else 0 */

#endif
