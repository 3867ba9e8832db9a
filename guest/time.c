/* TSC helpers and bounded waits. The TSC frequency comes from CPUID 0x15 (crystal ratio),
 * 0x40000010 (hypervisor timing leaf: TSC and APIC-bus kHz) or 0x16 (base MHz, approximate);
 * if none, it stays unknown (cycles are reported raw) and timeouts assume 3 GHz. Waits hlt with
 * the LAPIC timer armed as a wake-up, so they cost a few exits rather than a busy loop. */
#include "guest.h"

uint64_t tsc_hz;
const char *tsc_source = "unknown";
bool have_rdtscp;

void time_init(void)
{
    uint32_t r[4];
    cpuid(0, 0, r);
    uint32_t max = r[0];
    if (max >= 0x15) {
        cpuid(0x15, 0, r);
        if (r[0] && r[1] && r[2]) {
            tsc_hz = (uint64_t)r[2] * r[1] / r[0];
            tsc_source = "cpuid 0x15";
        }
    }
    cpuid(1, 0, r);
    if (r[2] & (1u << 31)) { /* hypervisor present */
        cpuid(0x40000000, 0, r);
        if (r[0] >= 0x40000010 && r[0] < 0x40000100) {
            cpuid(0x40000010, 0, r);
            if (!tsc_hz && r[0]) {
                tsc_hz = (uint64_t)r[0] * 1000;
                tsc_source = "cpuid 0x40000010";
            }
            if (r[1])
                lapic_timer_hz = (uint64_t)r[1] * 1000;
        }
    }
    if (!tsc_hz && max >= 0x16) {
        cpuid(0x16, 0, r);
        if (r[0] & 0xffff) {
            tsc_hz = (uint64_t)(r[0] & 0xffff) * 1000000;
            tsc_source = "cpuid 0x16 (base frequency)";
        }
    }
    cpuid(0x80000000, 0, r);
    if (r[0] >= 0x80000001) {
        cpuid(0x80000001, 0, r);
        have_rdtscp = r[3] & (1u << 27);
    }
}

uint64_t cycles_to_ns(uint64_t c)
{
    if (!tsc_hz)
        return 0;
    return c / tsc_hz * 1000000000u + c % tsc_hz * 1000000000u / tsc_hz;
}

uint64_t ns_to_cycles(uint64_t ns)
{
    uint64_t hz = tsc_hz ? tsc_hz : 3000000000u;
    return ns / 1000000000u * hz + ns % 1000000000u * hz / 1000000000u;
}

#define WAIT_TICK_NS (50 * MS)

bool wait_until(bool (*cond)(void *), void *arg, uint64_t timeout_ns)
{
    uint64_t flags = save_flags();
    uint64_t start = rdtsc(), limit = ns_to_cycles(timeout_ns);
    bool ok;
    for (;;) {
        cli();
        if ((ok = cond(arg)))
            break;
        uint64_t el = rdtsc() - start;
        if (el >= limit)
            break;
        /* Wake at the deadline at the latest (an interrupt, IPI or device, wakes us earlier),
         * with a periodic timer of at most WAIT_TICK_NS: under nested KVM a LAPIC timer
         * interrupt is now and then lost (the timer expired, nothing requested, the vCPU
         * still halted), and a one-shot timer would then leave this wait halted for good. */
        uint64_t left = limit - el, ns = tsc_hz ? cycles_to_ns(left) + 1000 : timeout_ns / 8 + 1000;
        lapic_timer_periodic(ns < WAIT_TICK_NS ? ns : WAIT_TICK_NS);
        __asm__ volatile("sti; hlt" ::: "memory");
    }
    lapic_timer_stop();
    restore_flags(flags);
    return ok;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

void sleep_ns(uint64_t ns) { wait_until(never, NULL, ns); }

static bool count_moved(void *arg)
{
    const unsigned *const *w = arg;
    return *(volatile const unsigned *)w[0] != *w[1];
}

bool wait_count(volatile unsigned *counter, unsigned from, uint64_t timeout_ns)
{
    const unsigned *w[2] = {(const unsigned *)counter, &from};
    return wait_until(count_moved, w, timeout_ns);
}
