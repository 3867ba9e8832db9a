/* SMP: APs start with the BSP at the entry. An AP builds its IDT, enables its LAPIC, records its
 * APIC ID and then sleeps (sti; hlt) until an IPI tells it to look at its mailbox. The BSP
 * runs a function on an AP by filling the mailbox and sending VEC_WAKE; the AP answers with
 * VEC_WAKE to the caller when done. Nobody busy-waits: waits are hlt-based (wait_until). */
#include "guest.h"

struct percpu percpu[MAX_CPUS];
uint8_t guest_stacks[MAX_CPUS][STACK_SIZE] __attribute__((aligned(4096)));
static uint32_t bsp_ready; /* bsp_apic_id is valid: arriving APs wake the BSP */

noreturn void ap_main(unsigned cpu)
{
    struct percpu *pc = &percpu[cpu];
    idt_init_this_cpu();
    lapic_init_this_cpu();
    pc->apic_id = lapic_id();
    __atomic_store_n(&pc->arrived, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&bsp_ready, __ATOMIC_SEQ_CST))
        lapic_send_ipi(bsp_apic_id, VEC_WAKE);
    for (;;) {
        cli();
        uint32_t req = __atomic_load_n(&pc->req_seq, __ATOMIC_ACQUIRE);
        if (req != pc->done_seq) {
            void (*fn)(void *) = pc->fn;
            void *arg = pc->arg;
            sti();
            fn(arg);
            cli();
            __atomic_store_n(&pc->done_seq, req, __ATOMIC_SEQ_CST);
            lapic_send_ipi(pc->caller_apic, VEC_WAKE);
            continue;
        }
        __asm__ volatile("sti; hlt" ::: "memory");
    }
}

/* Called by kmain on the BSP once its LAPIC is up. */
void smp_init_bsp(void)
{
    percpu[0].apic_id = bsp_apic_id;
    percpu[0].arrived = 1;
    __atomic_store_n(&bsp_ready, 1, __ATOMIC_SEQ_CST);
}

/* The cpus the boot info lists (FDT /cpus; PVH: the boot CPU only). */
unsigned smp_fdt_cpus(void) { return boot_cpus(); }

bool smp_fdt_apic_id(unsigned cpu, uint32_t *apic_id) { return boot_cpu_apic_id(cpu, apic_id); }

static bool arrived(void *arg) { return __atomic_load_n(&((struct percpu *)arg)->arrived, __ATOMIC_SEQ_CST); }

bool smp_wait_arrived(unsigned cpu, uint64_t timeout_ns)
{
    return cpu < MAX_CPUS && wait_until(arrived, &percpu[cpu], timeout_ns);
}

bool smp_call_async(unsigned cpu, void (*fn)(void *), void *arg)
{
    if (cpu == 0 || cpu >= MAX_CPUS || cpu == this_cpu() || !arrived(&percpu[cpu]))
        return false;
    struct percpu *pc = &percpu[cpu];
    uint32_t req = pc->req_seq;
    if (__atomic_load_n(&pc->done_seq, __ATOMIC_ACQUIRE) != req)
        return false; /* previous call still running */
    pc->fn = fn;
    pc->arg = arg;
    pc->caller_apic = percpu[this_cpu()].apic_id;
    __atomic_store_n(&pc->req_seq, req + 1, __ATOMIC_SEQ_CST);
    lapic_send_ipi(pc->apic_id, VEC_WAKE);
    return true;
}

static bool call_done(void *arg)
{
    struct percpu *pc = arg;
    return __atomic_load_n(&pc->done_seq, __ATOMIC_SEQ_CST) == pc->req_seq;
}

bool smp_call_wait(unsigned cpu, uint64_t timeout_ns)
{
    return cpu < MAX_CPUS && wait_until(call_done, &percpu[cpu], timeout_ns);
}

bool smp_call(unsigned cpu, void (*fn)(void *), void *arg, uint64_t timeout_ns)
{
    return smp_call_async(cpu, fn, arg) && smp_call_wait(cpu, timeout_ns);
}
