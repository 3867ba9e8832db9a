/* The machine's basic devices: serial, rtc, cpus, bus; destructive: triplefault, spin. */
#include "guest.h"


/* ---- serial: COM1 as a 16550A ---- */
#define THR 0
#define RBR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define SCR 7

static volatile unsigned uart_irqs;
static volatile uint8_t uart_iir;

static void uart_irq(unsigned vector, void *ctx)
{
    (void)vector, (void)ctx;
    uint8_t iir = inb(COM1 + IIR); /* reading IIR acknowledges a THRE interrupt */
    if (!(iir & 1)) {
        uart_iir = iir;
        uart_irqs++;
    }
}

static bool got_uart_irq(void *arg)
{
    (void)arg;
    return uart_irqs > 0;
}

static enum test_result serial_loopback(void)
{
    static const uint8_t bytes[] = {'#', 'L', '\n'}; /* a TAP comment if it leaked out */
    uint8_t mcr = inb(COM1 + MCR);
    for (unsigned i = 0; i < 32 && (inb(COM1 + LSR) & 1); i++)
        inb(COM1 + RBR);
    outb(COM1 + MCR, mcr | 0x10);
    for (unsigned i = 0; i < sizeof(bytes); i++) {
        outb(COM1 + THR, bytes[i]);
        unsigned k;
        for (k = 0; k < 1000 && !(inb(COM1 + LSR) & 1); k++)
            ;
        uint8_t got = inb(COM1 + RBR);
        if (k == 1000 || got != bytes[i]) {
            outb(COM1 + MCR, mcr);
            return test_fail("loopback (MCR bit 4): wrote 0x%x, %s 0x%x", bytes[i],
                             k == 1000 ? "LSR.DR never set, RBR" : "read back", got);
        }
    }
    outb(COM1 + MCR, mcr);
    return TEST_PASS;
}

static enum test_result test_serial(void)
{
    static const uint8_t pat[] = {0x5a, 0xa5, 0xff, 0x00};
    for (unsigned i = 0; i < sizeof(pat); i++) {
        outb(COM1 + SCR, pat[i]);
        uint8_t v = inb(COM1 + SCR);
        CHECK(v == pat[i], "scratch register: wrote 0x%x, read 0x%x", pat[i], v);
    }
    uint8_t lsr = inb(COM1 + LSR);
    CHECK((lsr & 0x60) == 0x60, "LSR 0x%x: THRE/TEMT not set when idle", lsr);
    outb(COM1 + IER, 0x05);
    uint8_t ier = inb(COM1 + IER);
    outb(COM1 + IER, 0);
    CHECK(ier == 0x05, "IER: wrote 0x05, read 0x%x", ier);
    uint8_t iir = inb(COM1 + IIR);
    CHECK((iir & 0x0f) == 0x01, "IIR 0x%x with IER=0: expected no interrupt pending", iir);
    uint8_t lcr = inb(COM1 + LCR);
    outb(COM1 + LCR, 0x80 | lcr); /* DLAB: divisor latch round trip */
    uint8_t dll = inb(COM1 + DLL), dlm = inb(COM1 + DLM);
    outb(COM1 + DLL, 0x0c);
    outb(COM1 + DLM, 0x00);
    uint8_t dll2 = inb(COM1 + DLL), dlm2 = inb(COM1 + DLM);
    outb(COM1 + DLL, dll);
    outb(COM1 + DLM, dlm);
    outb(COM1 + LCR, lcr);
    CHECK(dll2 == 0x0c && dlm2 == 0, "divisor latch: wrote 0x000c, read 0x%02x%02x", dlm2, dll2);
    uint8_t lcr2 = inb(COM1 + LCR);
    CHECK(lcr2 == lcr, "LCR: wrote 0x%x, read 0x%x", lcr, lcr2);

    /* THRE interrupt: IRQ 4 -> IOAPIC GSI 4 (edge) -> VEC_UART on the BSP. */
    uart_irqs = 0;
    irq_register(VEC_UART, uart_irq, NULL);
    ioapic_route(COM1_GSI, VEC_UART, bsp_apic_id, IOAPIC_EDGE);
    outb(COM1 + IER, 0x02);
    bool got = wait_until(got_uart_irq, NULL, 1000 * MS);
    uint8_t first_iir = uart_iir;
    /* Printing refills THR: once it drains, THRE must interrupt again (the VMM lowered the
     * line when IIR was read, so this is a new edge). */
    uart_irqs = 0;
    if (got)
        printf("# serial: THRE interrupt on vector 0x%x, IIR 0x%x\n", VEC_UART, first_iir);
    bool again = got && wait_until(got_uart_irq, NULL, 1000 * MS);
    outb(COM1 + IER, 0);
    ioapic_mask(COM1_GSI);
    irq_unregister(VEC_UART);
    inb(COM1 + IIR);
    CHECK(got, "no THRE interrupt within 1 s (IER=0x02, GSI 4 -> vector 0x%x, IOAPIC entry 0x%lx)",
          VEC_UART, ioapic_read_entry(COM1_GSI));
    CHECK((first_iir & 0x0f) == 0x02, "interrupt arrived but IIR 0x%x does not report THRE", first_iir);
    CHECK(again, "no second THRE interrupt after transmitting (IRQ line not lowered on IIR read?)");
    return serial_loopback();
}
TEST(serial, test_serial);

/* ---- serial_input: bytes the VMM reads from its stdin arrive through RBR with RDA interrupts.
 * Not part of tests=all: it needs someone to type (the integration test pipes a line). ---- */
static char rx_line[128];
static volatile unsigned rx_len;
static volatile bool rx_done;

static void uart_rx_irq(unsigned vector, void *ctx)
{
    (void)vector, (void)ctx;
    while (inb(COM1 + LSR) & 1) {
        char c = (char)inb(COM1 + RBR);
        if (c == '\n' || c == '\r' || rx_len == sizeof(rx_line) - 1)
            rx_done = rx_len > 0 || rx_done;
        else if (!rx_done)
            rx_line[rx_len++] = c;
    }
}

static bool got_line(void *arg)
{
    (void)arg;
    return rx_done;
}

static enum test_result test_serial_input(void)
{
    rx_len = 0;
    rx_done = false;
    irq_register(VEC_UART, uart_rx_irq, NULL);
    ioapic_route(COM1_GSI, VEC_UART, bsp_apic_id, IOAPIC_EDGE);
    outb(COM1 + IER, 0x01); /* RDA only */
    printf("# serial_input: waiting for a line\n");
    bool got = wait_until(got_line, NULL, 20000 * MS);
    outb(COM1 + IER, 0);
    ioapic_mask(COM1_GSI);
    irq_unregister(VEC_UART);
    rx_line[rx_len] = 0;
    CHECK(got, "no input line within 20 s (%u bytes so far)", rx_len);
    printf("# received: %s\n", rx_line);
    return TEST_PASS;
}
TEST_DESTRUCTIVE(serial_input, test_serial_input);

/* ---- rtc: CMOS clock ---- */
static uint8_t cmos(uint8_t reg)
{
    outb(RTC_INDEX, reg);
    return inb(RTC_DATA);
}

struct rtc_time {
    unsigned sec, min, hour, day, mon, year;
};

static unsigned bcd(uint8_t v, bool is_bcd) { return is_bcd ? (v >> 4) * 10 + (v & 0xf) : v; }

static bool rtc_read(struct rtc_time *t)
{
    uint8_t r[6], again[6];
    static const uint8_t regs[6] = {0x00, 0x02, 0x04, 0x07, 0x08, 0x09};
    /* Retry until two reads agree and no update was in progress (bounded). */
    for (unsigned tries = 0; tries < 100; tries++) {
        if (cmos(0x0a) & 0x80)
            continue;
        for (int i = 0; i < 6; i++)
            r[i] = cmos(regs[i]);
        for (int i = 0; i < 6; i++)
            again[i] = cmos(regs[i]);
        if (!memcmp(r, again, sizeof(r)))
            break;
        if (tries == 99)
            return false;
    }
    uint8_t b = cmos(0x0b);
    bool is_bcd = !(b & 0x04), h24 = b & 0x02;
    t->sec = bcd(r[0], is_bcd);
    t->min = bcd(r[1], is_bcd);
    t->hour = bcd(r[2] & 0x7f, is_bcd);
    if (!h24) {
        t->hour %= 12;
        if (r[2] & 0x80)
            t->hour += 12;
    }
    t->day = bcd(r[3], is_bcd);
    t->mon = bcd(r[4], is_bcd);
    t->year = 2000 + bcd(r[5], is_bcd);
    return true;
}

static enum test_result test_rtc(void)
{
    struct rtc_time t, u;
    CHECK(rtc_read(&t), "RTC registers never stable (UIP stuck?)");
    uint8_t b = cmos(0x0b);
    printf("# rtc: %04u-%02u-%02u %02u:%02u:%02u (status B 0x%x: %s, %s)\n", t.year, t.mon, t.day, t.hour,
           t.min, t.sec, b, b & 4 ? "binary" : "BCD", b & 2 ? "24h" : "12h");
    CHECK(t.year >= 2024 && t.year < 2100, "year %u", t.year);
    CHECK(t.mon >= 1 && t.mon <= 12, "month %u", t.mon);
    CHECK(t.day >= 1 && t.day <= 31, "day %u", t.day);
    CHECK(t.hour < 24 && t.min < 60 && t.sec < 60, "time %u:%u:%u", t.hour, t.min, t.sec);
    uint8_t unk = cmos(0x5a);
    CHECK(unk == 0, "unknown CMOS register 0x5a reads 0x%x, expected 0", unk);
    /* The seconds must advance: poll every 100 ms for up to 2.5 s. */
    uint64_t t0 = rdtsc();
    for (unsigned i = 0; i < 25; i++) {
        sleep_ns(100 * MS);
        CHECK(rtc_read(&u), "RTC registers never stable (UIP stuck?)");
        if (u.sec != t.sec) {
            printf("# rtc: seconds advanced %u -> %u after %lu ms\n", t.sec, u.sec,
                   tsc_hz ? cycles_to_ns(rdtsc() - t0) / MS : (uint64_t)(i + 1) * 100);
            return TEST_PASS;
        }
    }
    return test_fail("seconds stuck at %u for 2.5 s", t.sec);
}
TEST(rtc, test_rtc);

/* ---- cpus: every vCPU in the FDT reports in ---- */
struct whoami {
    uint32_t apic_id;
    unsigned cpu;
};

static void whoami(void *arg)
{
    struct whoami *w = arg;
    w->apic_id = lapic_id();
    w->cpu = this_cpu();
}

static enum test_result test_cpus(void)
{
    unsigned n = smp_fdt_cpus();
    CHECK(n <= MAX_CPUS, "FDT lists %u cpus, the guest supports %u", n, MAX_CPUS);
    for (unsigned i = 0; i < n; i++) {
        uint32_t want;
        CHECK(smp_fdt_apic_id(i, &want), "FDT /cpus: no reg for cpu %u", i);
        CHECK(smp_wait_arrived(i, 2000 * MS), "cpu %u (apic-id %u in the FDT) did not arrive within 2 s", i, want);
        uint32_t got = percpu[i].apic_id;
        printf("# cpu %u apic-id %u\n", i, got);
        CHECK(got == want, "cpu %u: LAPIC ID %u, the FDT says %u", i, got, want);
        for (unsigned j = 0; j < i; j++)
            CHECK(percpu[j].apic_id != got, "cpus %u and %u share APIC ID %u", j, i, got);
        if (i == 0)
            continue;
        /* mailbox + IPI round trip */
        struct whoami w = {~0u, ~0u};
        CHECK(smp_call(i, whoami, &w, 1000 * MS), "cpu %u did not run a mailbox call within 1 s", i);
        CHECK(w.cpu == i && w.apic_id == want, "mailbox call for cpu %u ran on cpu %u (apic-id %u)", i, w.cpu,
              w.apic_id);
    }
    for (unsigned i = n; i < MAX_CPUS; i++)
        CHECK(!percpu[i].arrived, "cpu %u (apic-id %u) started but is not in the FDT", i, percpu[i].apic_id);
    return TEST_PASS;
}
TEST(cpus, test_cpus);

/* ---- bus: unclaimed I/O ports and MMIO read as all-ones, writes are dropped ---- */
#define UNCLAIMED_PORT 0x2f0
#define UNCLAIMED_MMIO 0xd8000000UL

static enum test_result test_bus(void)
{
    /* QEMU (recognised by the PVH boot path) reads unclaimed MMIO as 0, not all-ones: a
     * difference between VMMs, not a fault in either. Its ports are still checked. */
    bool qemu = boot_source() == BOOT_PVH;
    for (int pass = 0; pass < 2; pass++) {
        const char *when = pass ? " after writes" : "";
        uint8_t b = inb(UNCLAIMED_PORT);
        uint16_t w = inw(UNCLAIMED_PORT);
        uint32_t l = inl(UNCLAIMED_PORT);
        CHECK(b == 0xff, "inb 0x%x = 0x%x%s", UNCLAIMED_PORT, b, when);
        CHECK(w == 0xffff, "inw 0x%x = 0x%x%s", UNCLAIMED_PORT, w, when);
        CHECK(l == 0xffffffff, "inl 0x%x = 0x%x%s", UNCLAIMED_PORT, l, when);
        if (qemu) {
            if (pass)
                return test_skip("MMIO part: QEMU (PVH boot) reads unclaimed MMIO as 0; ports passed");
            outb(UNCLAIMED_PORT, 0x12);
            outw(UNCLAIMED_PORT, 0x1234);
            outl(UNCLAIMED_PORT, 0x12345678);
            continue;
        }
        uint8_t mb = mmio_read8(UNCLAIMED_MMIO);
        uint16_t mw = mmio_read16(UNCLAIMED_MMIO + 2);
        uint32_t ml = mmio_read32(UNCLAIMED_MMIO + 4);
        uint64_t mq = mmio_read64(UNCLAIMED_MMIO + 8);
        CHECK(mb == 0xff, "8-bit read of 0x%lx = 0x%x%s", UNCLAIMED_MMIO, mb, when);
        CHECK(mw == 0xffff, "16-bit read of 0x%lx = 0x%x%s", UNCLAIMED_MMIO + 2, mw, when);
        CHECK(ml == 0xffffffff, "32-bit read of 0x%lx = 0x%x%s", UNCLAIMED_MMIO + 4, ml, when);
        CHECK(mq == ~0ULL, "64-bit read of 0x%lx = 0x%lx%s", UNCLAIMED_MMIO + 8, mq, when);
        if (pass)
            break;
        outb(UNCLAIMED_PORT, 0x12);
        outw(UNCLAIMED_PORT, 0x1234);
        outl(UNCLAIMED_PORT, 0x12345678);
        mmio_write8(UNCLAIMED_MMIO, 0x12);
        mmio_write16(UNCLAIMED_MMIO + 2, 0x1234);
        mmio_write32(UNCLAIMED_MMIO + 4, 0x12345678);
        mmio_write64(UNCLAIMED_MMIO + 8, 0x123456789abcdef0ULL);
    }
    return TEST_PASS;
}
TEST(bus, test_bus);

/* ---- destructive modes ---- */
static enum test_result test_triplefault(void)
{
    printf("# triplefault: loading an empty IDT and executing ud2; the VMM must end the VM\n");
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } idtr = {0, 0};
    __asm__ volatile("cli; lidt %0; ud2" ::"m"(idtr));
    return test_fail("still running after a triple fault");
}
TEST_DESTRUCTIVE(triplefault, test_triplefault);

static enum test_result test_spin(void)
{
    printf("# spin: looping forever with interrupts off (for --timeout)\n");
    __asm__ volatile("cli; 1: jmp 1b");
    return test_fail("unreachable");
}
TEST_DESTRUCTIVE(spin, test_spin);

static enum test_result test_exception(void)
{
    printf("# exception: executing ud2; expect a #UD report, Bail out! and status 1\n");
    __asm__ volatile("ud2");
    return test_fail("still running after ud2");
}
TEST_DESTRUCTIVE(exception, test_exception);
