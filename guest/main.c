/* kmain: bring-up on the BSP, then the TAP test runner, the exit status and fatal paths. */
#include "guest.h"

void smp_init_bsp(void); /* smp.c */

extern const struct test __tests_start[], __tests_end[];

uint32_t bsp_apic_id;
static char reason[160];
static const char *cur_name;
static unsigned cur_num;

noreturn void guest_exit(unsigned status)
{
    outb(DEBUG_EXIT_PORT, (uint8_t)status);
    for (;;)
        __asm__ volatile("cli; hlt");
}

noreturn void fatal(const char *fmt, ...)
{
    char buf[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    printf("Bail out! %s\n", buf);
    guest_exit(1);
}

static const char *const exc_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#MF(9)", "#TS", "#NP", "#SS",
    "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25",
    "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

void exception_fatal(struct trap_frame *f)
{
    static int in_fatal = -1;
    int me = (int)this_cpu(), prev = -1;
    if (!__atomic_compare_exchange_n(&in_fatal, &prev, me, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        if (prev == me) /* faulted while reporting: just end */
            guest_exit(1);
        for (;;) /* another cpu is reporting and will end the VM */
            __asm__ volatile("cli; hlt");
    }
    unsigned v = (unsigned)f->vector;
    printf("# exception %u %s on cpu %d: error 0x%lx rip 0x%lx cr2 0x%lx rsp 0x%lx rflags 0x%lx\n", v,
           exc_names[v], me, f->error, f->rip, read_cr2(), f->rsp, f->rflags);
    if (cur_name)
        printf("not ok %u - %s # exception %u %s at rip 0x%lx\n", cur_num, cur_name, v, exc_names[v], f->rip);
    printf("Bail out! exception %u %s at rip 0x%lx\n", v, exc_names[v], f->rip);
    guest_exit(1);
}

static enum test_result set_reason(enum test_result r, const char *fmt, va_list ap)
{
    vsnprintf(reason, sizeof(reason), fmt, ap);
    for (char *p = reason; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return r;
}

enum test_result test_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum test_result r = set_reason(TEST_FAIL, fmt, ap);
    va_end(ap);
    return r;
}

enum test_result test_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum test_result r = set_reason(TEST_SKIP, fmt, ap);
    va_end(ap);
    return r;
}

/* Is name in the comma-separated list? */
static bool listed(const char *list, const char *name, size_t nlen)
{
    for (const char *p = list; *p;) {
        size_t l = 0;
        while (p[l] && p[l] != ',')
            l++;
        if (l == nlen && !strncmp(p, name, l))
            return true;
        p += l;
        if (*p == ',')
            p++;
    }
    return false;
}

#define MAX_SELECTED 128

void kmain(const void *fdt, unsigned cpu)
{
    (void)cpu;
    idt_init_this_cpu();
    console_init();
    printf("TAP version 13\n");
    if (!bootinfo_init(fdt))
        fatal("no valid boot info: no device tree at %p and no PVH start_info", fdt);
    cmdline_init(boot_cmdline());
    mem_init();
    /* Mask the 8259s before LINT0: nothing may arrive as ExtINT (IRQs go via the IOAPIC). */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    lapic_init_this_cpu();
    bsp_apic_id = lapic_id();
    smp_init_bsp();
    time_init();
    printf("# mica-testguest: %u cpu(s), %lu MiB RAM (%lu MiB free), tsc %lu kHz (%s)\n", smp_fdt_cpus(),
           mem_total() >> 20, mem_free() >> 20, tsc_hz / 1000, tsc_source);
    printf("# cmdline: %s\n", cmdline_raw());

    /* Select: the registry's order; "all" = every non-destructive test; unknown names fail. */
    const char *sel = cmdline_get("tests");
    if (!sel || !*sel)
        sel = "all";
    bool all = listed(sel, "all", 3);
    const struct test *run[MAX_SELECTED];
    unsigned n = 0;
    for (const struct test *t = __tests_start; t < __tests_end && n < MAX_SELECTED; t++)
        if ((all && !t->destructive) || listed(sel, t->name, strlen(t->name)))
            run[n++] = t;
    const char *unknown[16];
    size_t unknown_len[16];
    unsigned nunknown = 0;
    for (const char *p = sel; *p && nunknown < ARRAY_SIZE(unknown);) {
        size_t l = 0;
        while (p[l] && p[l] != ',')
            l++;
        bool known = l == 0 || (l == 3 && !strncmp(p, "all", 3));
        for (const struct test *t = __tests_start; t < __tests_end && !known; t++)
            known = strlen(t->name) == l && !strncmp(p, t->name, l);
        if (!known) {
            unknown[nunknown] = p;
            unknown_len[nunknown++] = l;
        }
        p += l;
        if (*p == ',')
            p++;
    }

    printf("1..%u\n", n + nunknown);
    unsigned passed = 0, failed = 0, skipped = 0;
    for (unsigned i = 0; i < n; i++) {
        reason[0] = '\0';
        cur_num = i + 1;
        cur_name = run[i]->name;
        enum test_result r = run[i]->fn();
        cli();
        cur_name = NULL;
        if (r == TEST_PASS) {
            passed++;
            printf("ok %u - %s\n", i + 1, run[i]->name);
        } else if (r == TEST_SKIP) {
            skipped++;
            printf("ok %u - %s # SKIP %s\n", i + 1, run[i]->name, reason);
        } else {
            failed++;
            printf("not ok %u - %s # %s\n", i + 1, run[i]->name, reason[0] ? reason : "failed");
        }
    }
    for (unsigned i = 0; i < nunknown; i++) {
        failed++;
        printf("not ok %u - %.*s # unknown test\n", n + i + 1, (int)unknown_len[i], unknown[i]);
    }

    unsigned status = failed ? 1 : 0;
    if (cmdline_get("status")) {
        status = (unsigned)cmdline_get_u64("status", 1) & 0xff;
        printf("# status overridden: %u\n", status);
    }
    if (skipped)
        printf("# mica-testguest: %u passed, %u failed (%u skipped)\n", passed, failed, skipped);
    else
        printf("# mica-testguest: %u passed, %u failed\n", passed, failed);
    guest_exit(status);
}
