/* tests=bench: the guest side of the exit-cost lab (docs/boot-contract.md; the host side is
 * `mica bench exits`, vmm/bench_exits.c). Destructive-style: never part of tests=all.
 *
 * For each mechanism, N operations (iters=N, default 2000) are timed with the TSC, K times
 * (reps=K, default 5), interrupts off; the best run's cycles per operation is reported as
 * `# bench NAME cycles=C` (the loop's own cost included: `empty` is the bare loop). The probes
 * come from the FDT's "mica,bench" node; the notify mechanisms use either the bare addresses the
 * floor VM lists (mica,mmio-notify / mica,pci-notify) or, under mica, the queue-0 notification of
 * an rng device on that transport, brought to DRIVER_OK by the guest's virtio driver with no
 * buffers (notifications of an empty queue are valid; the device finds nothing to do). */
#include "guest.h"
#include "virtio.h"

#define DEFAULT_ITERS 2000
#define DEFAULT_REPS  5
#define KVM_ENOSYS    1000

struct bench {
    uintptr_t mmio;          /* the probe page (userspace MMIO) */
    uint16_t pio, efd;       /* userspace port, PIO ioeventfd port */
    uintptr_t notify;        /* the floor's bare notify address, for the current mechanism */
    struct virtq *vq;        /* or the virtqueue whose notification is timed */
    bool amd;                /* vmmcall rather than vmcall */
    uint64_t vmcall_ret;     /* rax after the last hypercall */
};

static inline uint64_t tsc_begin(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
    return (uint64_t)hi << 32 | lo;
}

static inline uint64_t tsc_end(void)
{
    uint32_t lo, hi;
    if (have_rdtscp)
        __asm__ volatile("rdtscp; lfence" : "=a"(lo), "=d"(hi)::"ecx", "memory");
    else
        __asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
    return (uint64_t)hi << 32 | lo;
}

/* ---- the loops: one operation per iteration ---- */
typedef void (*loop_fn)(struct bench *b, uint64_t n);

static void __attribute__((noinline)) loop_empty(struct bench *b, uint64_t n)
{
    (void)b;
    for (uint64_t i = 0; i < n; i++)
        __asm__ volatile("" ::: "memory");
}

static void __attribute__((noinline)) loop_pio_out(struct bench *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        outl(b->pio, (uint32_t)i);
}

static void __attribute__((noinline)) loop_pio_in(struct bench *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        (void)inl(b->pio);
}

static void __attribute__((noinline)) loop_mmio_write(struct bench *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        mmio_write32(b->mmio, (uint32_t)i);
}

static void __attribute__((noinline)) loop_mmio_read(struct bench *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        (void)mmio_read32(b->mmio);
}

static void __attribute__((noinline)) loop_bare_mmio_notify(struct bench *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        mmio_write32(b->notify, 0);
}

static void __attribute__((noinline)) loop_bare_pci_notify(struct bench *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        mmio_write16(b->notify, 0);
}

static void __attribute__((noinline)) loop_vq_notify(struct bench *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        vq_notify(b->vq);
}

static void __attribute__((noinline)) loop_pio_eventfd(struct bench *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        outl(b->efd, 0);
}

static void __attribute__((noinline)) loop_cpuid(struct bench *b, uint64_t n)
{
    (void)b;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t r[4];
        cpuid(0, 0, r);
    }
}

/* An unknown KVM hypercall (0xffff): KVM answers -KVM_ENOSYS in rax, in the kernel. */
static void __attribute__((noinline)) loop_vmcall(struct bench *b, uint64_t n)
{
    uint64_t rax = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (b->amd)
            __asm__ volatile("vmmcall" : "=a"(rax) : "a"(0xffffUL), "b"(0UL), "c"(0UL), "d"(0UL), "S"(0UL) : "memory");
        else
            __asm__ volatile("vmcall" : "=a"(rax) : "a"(0xffffUL), "b"(0UL), "c"(0UL), "d"(0UL), "S"(0UL) : "memory");
    }
    b->vmcall_ret = rax;
}

/* Best of reps runs of n operations, in hundredths of a cycle per operation. */
static uint64_t measure(loop_fn fn, struct bench *b, uint64_t n, unsigned reps)
{
    uint64_t best = ~0ULL;
    uint64_t flags = save_flags();
    cli();
    fn(b, n < 16 ? n : 16); /* warm up: code, TLB, the device's first-access paths */
    for (unsigned r = 0; r < reps; r++) {
        uint64_t t0 = tsc_begin();
        fn(b, n);
        uint64_t t1 = tsc_end();
        if (t1 - t0 < best)
            best = t1 - t0;
    }
    restore_flags(flags);
    return best * 100 / n;
}

static void report(const char *name, uint64_t c100)
{
    uint64_t ns100 = cycles_to_ns(c100); /* hundredths of a ns: 0 if the TSC rate is unknown */
    if (ns100)
        printf("# bench %s cycles=%lu.%02lu (%lu.%02lu ns)\n", name, c100 / 100, c100 % 100, ns100 / 100,
               ns100 % 100);
    else
        printf("# bench %s cycles=%lu.%02lu\n", name, c100 / 100, c100 % 100);
}

static bool fdt_prop_u64(int node, const char *name, uint64_t *out)
{
    int len;
    const void *p = fdt_prop(node, name, &len);
    if (!p || len != 8)
        return false;
    *out = be64(p);
    return true;
}

/* The first rng on this transport ("mmio" also matches "mmio-legacy", "pci" "pci-legacy"), at
 * DRIVER_OK with queue 0 set up and empty. */
static struct vdev *rng_on(const char *transport, char *why, size_t whylen)
{
    size_t tl = strlen(transport);
    for (unsigned i = 0;; i++) {
        struct vdev *d = virtio_find(VIRTIO_ID_RNG, i);
        if (!d)
            break;
        const char *t = vdev_transport_name(d);
        if (strncmp(t, transport, tl) || (t[tl] != '\0' && t[tl] != '-'))
            continue;
        if (!vdev_up(d, 0, 0)) {
            snprintf(why, whylen, "the virtio-rng on %s did not come up", transport);
            return NULL;
        }
        return d;
    }
    snprintf(why, whylen, "no virtio-rng on %s (mica --rng=%s)", transport, transport);
    return NULL;
}

static enum test_result test_bench(void)
{
    int node = fdt_find_compatible(-1, "mica,bench");
    if (node < 0)
        return test_skip("no exit-cost lab devices (mica --bench-devices)");
    struct bench b = {0};
    uint64_t size, addr;
    uint32_t pio, efd;
    CHECK(fdt_reg(node, 0, &addr, &size) && size >= 4, "bench node: no usable reg");
    CHECK(fdt_prop_u32(node, "mica,pio-port", &pio) && pio <= 0xfffc, "bench node: no mica,pio-port");
    CHECK(fdt_prop_u32(node, "mica,eventfd-port", &efd) && efd <= 0xfffc, "bench node: no mica,eventfd-port");
    b.mmio = (uintptr_t)addr;
    b.pio = (uint16_t)pio;
    b.efd = (uint16_t)efd;
    uint32_t r[4];
    cpuid(0, 0, r);
    b.amd = (r[1] == 0x68747541 && r[3] == 0x69746e65 && r[2] == 0x444d4163) /* AuthenticAMD */
            || (r[1] == 0x6f677948 && r[3] == 0x6e65476e && r[2] == 0x656e6975); /* HygonGenuine */

    uint64_t n = cmdline_get_u64("iters", DEFAULT_ITERS);
    unsigned reps = (unsigned)cmdline_get_u64("reps", DEFAULT_REPS);
    if (n == 0)
        n = 1;
    if (reps == 0)
        reps = 1;
    printf("# bench: %lu operations x %u runs per mechanism (best run reported), tsc %lu kHz, %s\n", n, reps,
           tsc_hz / 1000, b.amd ? "vmmcall" : "vmcall");

    unsigned measured = 0, skipped = 0;
    report("empty", measure(loop_empty, &b, n, reps));
    report("pio_out", measure(loop_pio_out, &b, n, reps));
    report("pio_in", measure(loop_pio_in, &b, n, reps));
    report("mmio_write", measure(loop_mmio_write, &b, n, reps));
    report("mmio_read", measure(loop_mmio_read, &b, n, reps));
    measured += 5;

    static const struct {
        const char *name, *prop, *transport;
        loop_fn bare;
    } notifies[] = {
        {"mmio_notify", "mica,mmio-notify", "mmio", loop_bare_mmio_notify},
        {"pci_notify", "mica,pci-notify", "pci", loop_bare_pci_notify},
    };
    for (unsigned i = 0; i < ARRAY_SIZE(notifies); i++) {
        uint64_t a;
        if (fdt_prop_u64(node, notifies[i].prop, &a)) { /* the floor VM */
            b.notify = (uintptr_t)a;
            report(notifies[i].name, measure(notifies[i].bare, &b, n, reps));
            measured++;
            continue;
        }
        char why[96];
        struct vdev *d = rng_on(notifies[i].transport, why, sizeof(why));
        if (!d) {
            printf("# bench %s: skipped: %s\n", notifies[i].name, why);
            skipped++;
            continue;
        }
        b.vq = &d->vq[0];
        unsigned kicks0 = b.vq->kicks;
        report(notifies[i].name, measure(loop_vq_notify, &b, n, reps));
        measured++;
        unsigned kicks = b.vq->kicks - kicks0;
        uint8_t st = vdev_status(d);
        uint16_t used = vq_used_idx(b.vq);
        vdev_reset(d);
        CHECK(!(st & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED)) && used == 0,
              "%s: after %u notifications of an empty queue: status 0x%x, used idx %u", notifies[i].name, kicks,
              st, used);
    }

    report("pio_eventfd", measure(loop_pio_eventfd, &b, n, reps));
    report("cpuid", measure(loop_cpuid, &b, n, reps));
    report("vmcall", measure(loop_vmcall, &b, n, reps));
    measured += 3;
    CHECK(b.vmcall_ret == (uint64_t)-KVM_ENOSYS, "hypercall 0xffff returned rax 0x%lx, expected -KVM_ENOSYS",
          b.vmcall_ret);
    printf("# bench: %u mechanisms measured, %u skipped\n", measured, skipped);
    return TEST_PASS;
}
TEST_DESTRUCTIVE(bench, test_bench);
