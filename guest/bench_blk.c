/* tests=bench_blk: the guest side of the virtio-blk benchmark (bench/sections/blk.sh), on the
 * test guest's own driver (blk.c). Destructive-style: never part of tests=all. Any VMM, any
 * transport: mica --disk IMG, QEMU -device virtio-blk-pci.
 *
 * Workloads, each a blk_job on queue 0 (features: FLUSH, SEG_MAX, SIZE_MAX, BLK_SIZE and, unless
 * blk_event_idx=0, EVENT_IDX, as Linux negotiates them):
 *   1 seqread       1 MiB reads, blk_seq_qd in flight (default 4), blk_seq_mib MiB (default
 *                   512), sector 0 onwards, wrapping at the end of the disk
 *   2 seqwrite      the same with writes (a FLUSH follows, untimed)
 *   3 randread_qd1  blk_rand1_n 4 KiB reads (default 2000) at 4 KiB-aligned offsets from a
 *                   fixed xorshift sequence (the same on every VMM), one in flight
 *   4 randread_qd32 blk_rand32_n of them (default 16000), 32 in flight
 * Each is preceded by an untimed warm-up of the same kind (2 x depth requests). Buffers are
 * touched before anything is timed. During a workload interrupts are enabled (as in an OS): the
 * device's interrupts are taken as they come, counted by the virtio handlers; waits hlt, with
 * the LAPIC timer re-armed only once a second as a safety net (a wait of blk.c's tests re-arms
 * it each time, two exits that would be counted against the device).
 *
 * Result lines, one per workload (key=value words):
 *   # bench_blk: result window=W workload=NAME qd=D req_bytes=B requests=N bytes=T cycles=C tsc_khz=K
 *     us=U mib_s=M iops=I irqs=Q kicks=K kicks_suppressed=S halts=H
 * cycles are TSC cycles from the first request added to the last completion (clock: the TSC;
 * its rate from CPUID, else tsc_khz=N on the command line; us, mib_s and iops are 0 if neither
 * gives it); irqs are used-buffer interrupts taken, kicks the notifications written.
 *
 * With blk_sync=1 every workload (and an empty window 0 before them, the handshake's own cost)
 * is bracketed by "# bench_blk: mark start W" and "# bench_blk: mark end W" (W = its number, so
 * every mark costs the same); after each mark the guest waits (up to 60 s, hlt) for one byte
 * 'g' on COM1, which the host sends once it has read KVM's counters. */
#include "blk.h"

#define SYNC_TIMEOUT (60000 * MS)
#define SAFETY_TIMER_NS (1000 * MS)
#define SEQ_REQ_BYTES (1u << 20)
#define RAND_REQ_BYTES 4096u
#define RAND_QD 32
#define MAX_SEQ_QD 16
#define COM1_RBR 0
#define COM1_IER 1
#define COM1_LSR 5

enum workload { W_IDLE, W_SEQREAD, W_SEQWRITE, W_RAND1, W_RAND32, W_COUNT };
static const char *const workload_names[W_COUNT] = {"idle", "seqread", "seqwrite", "randread_qd1",
                                                    "randread_qd32"};

/* ---- the host handshake ---- */

static volatile unsigned host_acks;
static bool sync_host;

static void uart_rx(unsigned vector, void *ctx)
{
    (void)vector, (void)ctx;
    while (inb(COM1 + COM1_LSR) & 1)
        if (inb(COM1 + COM1_RBR) == 'g')
            host_acks++;
}

static bool mark(const char *what, enum workload w)
{
    unsigned from = host_acks;
    printf("# bench_blk: mark %s %u\n", what, (unsigned)w);
    return !sync_host || wait_count(&host_acks, from, SYNC_TIMEOUT);
}

/* ---- waiting with interrupts on ---- */

static uint64_t timer_until; /* TSC by which the armed safety timer has fired; 0: arm it */
static unsigned halts;

static bool wait_used_hlt(struct virtq *vq, uint64_t timeout_ns)
{
    uint64_t flags = save_flags(), start = rdtsc(), limit = ns_to_cycles(timeout_ns);
    bool ok;
    for (;;) {
        cli();
        if ((ok = vq_has_used(vq)))
            break;
        uint64_t now = rdtsc();
        if (now - start >= limit)
            break;
        if (now >= timer_until) {
            lapic_timer_oneshot(SAFETY_TIMER_NS);
            timer_until = now + ns_to_cycles(SAFETY_TIMER_NS);
        }
        halts++;
        __asm__ volatile("sti; hlt" ::: "memory");
    }
    restore_flags(flags);
    return ok;
}

/* ---- workloads ---- */

struct load {
    struct blk_job job;
    int type;                 /* BLK_T_IN or BLK_T_OUT */
    bool random;
    uint32_t nsec;            /* per request */
    uint64_t left;            /* requests still to add */
    uint64_t seq_next;        /* sequential: next sector */
    uint64_t span;            /* sectors usable: a multiple of nsec */
    uint64_t rng;             /* xorshift64 state */
};

static int load_next(struct blk_job *j, struct blk_slot *s)
{
    struct load *l = (struct load *)j;
    if (!l->left)
        return -1;
    l->left--;
    if (l->random) {
        l->rng ^= l->rng << 13;
        l->rng ^= l->rng >> 7;
        l->rng ^= l->rng << 17;
        s->sector = l->rng % (l->span / l->nsec) * l->nsec;
    } else {
        if (l->seq_next >= l->span)
            l->seq_next = 0;
        s->sector = l->seq_next;
        l->seq_next += l->nsec;
    }
    s->nsec = l->nsec;
    return l->type;
}

struct bench_blk {
    struct vdev *d;
    struct virtq *vq;
    uint64_t cap;
    uint64_t tsc_khz;
    unsigned seq_qd;
    uint64_t seq_requests, rand1_requests, rand32_requests;
    struct blk_slot seq[MAX_SEQ_QD], rnd[RAND_QD];
};

static bool sequential(enum workload w) { return w == W_SEQREAD || w == W_SEQWRITE; }

static unsigned depth_of(const struct bench_blk *b, enum workload w)
{
    return sequential(w) ? b->seq_qd : w == W_RAND1 ? 1 : RAND_QD;
}

static void load_init(struct load *l, struct bench_blk *b, enum workload w, uint64_t requests)
{
    bool seq = sequential(w);
    uint32_t nsec = (seq ? SEQ_REQ_BYTES : RAND_REQ_BYTES) / SECTOR;
    *l = (struct load){
        .job = {.vq = b->vq, .slots = seq ? b->seq : b->rnd, .depth = depth_of(b, w), .next = load_next,
                .wait = wait_used_hlt},
        .type = w == W_SEQWRITE ? BLK_T_OUT : BLK_T_IN, .random = !seq, .nsec = nsec, .left = requests,
        .span = b->cap / nsec * nsec, .rng = 0x9e3779b97f4a7c15ULL,
    };
}

static uint64_t per_second(uint64_t n, uint64_t cycles, uint64_t tsc_khz)
{
    return cycles ? n * tsc_khz * 1000 / cycles : 0;
}

static bool flush(struct virtq *vq, struct blk_slot *s)
{
    if (!blk_add(vq, s, BLK_T_FLUSH, 0, NULL, 0, NULL, 0))
        return false;
    vq_kick(vq);
    return blk_wait_used(vq, BLK_IO_TIMEOUT_NS) && vq_pop(vq, NULL, NULL) && *s->status == BLK_S_OK;
}

static bool run_workload(struct bench_blk *b, enum workload w, uint64_t requests, char *err, size_t errlen)
{
    static struct load l;
    struct vdev *d = b->d;
    struct virtq *vq = b->vq;
    if (w != W_IDLE) { /* warm-up: the same kind of requests, untimed */
        load_init(&l, b, w, 2 * depth_of(b, w));
        if (!blk_job_run(&l.job)) {
            snprintf(err, errlen, "%s warm-up: %s", workload_names[w], l.job.err);
            return false;
        }
    }
    load_init(&l, b, w, requests);
    if (!mark("start", w)) {
        snprintf(err, errlen, "%s: the host never answered the start mark", workload_names[w]);
        return false;
    }
    unsigned irq0 = d->used_irqs, kicks0 = vq->kicks, sup0 = vq->kicks_suppressed, halts0 = halts;
    bool ok = true;
    if (w != W_IDLE) {
        uint64_t flags = save_flags();
        timer_until = 0;
        sti();
        ok = blk_job_run(&l.job);
        restore_flags(flags);
    }
    unsigned irqs = d->used_irqs - irq0, kicks = vq->kicks - kicks0, sup = vq->kicks_suppressed - sup0;
    unsigned nhalts = halts - halts0;
    if (!mark("end", w)) {
        snprintf(err, errlen, "%s: the host never answered the end mark", workload_names[w]);
        return false;
    }
    if (!ok) {
        snprintf(err, errlen, "%s: %s", workload_names[w], l.job.err);
        return false;
    }
    if (w == W_IDLE)
        return true;
    uint64_t cycles = l.job.t1 - l.job.t0, bytes = (uint64_t)l.job.requests * l.nsec * SECTOR;
    uint64_t us = b->tsc_khz ? cycles * 1000 / b->tsc_khz : 0;
    uint64_t mib100 = per_second(bytes * 100 >> 20, cycles, b->tsc_khz);
    printf("# bench_blk: result window=%u workload=%s qd=%u req_bytes=%u requests=%u bytes=%lu cycles=%lu "
           "tsc_khz=%lu us=%lu mib_s=%lu.%02lu iops=%lu irqs=%u kicks=%u kicks_suppressed=%u halts=%u\n", (unsigned)w,
           workload_names[w], l.job.depth, l.nsec * SECTOR, l.job.requests, bytes, cycles, b->tsc_khz, us,
           mib100 / 100, mib100 % 100, per_second(l.job.requests, cycles, b->tsc_khz), irqs, kicks, sup, nhalts);
    if (w == W_SEQWRITE && (d->features & BIT64(BLK_F_FLUSH)) && !flush(vq, &b->rnd[0])) {
        snprintf(err, errlen, "the FLUSH after seqwrite failed");
        return false;
    }
    return true;
}

static enum test_result test_bench_blk(void)
{
    static struct bench_blk b;
    b.d = blk_find();
    if (!b.d)
        return test_skip("no virtio-blk device (mica --disk IMG, QEMU -device virtio-blk-pci)");
    if (blk_ro(b.d))
        return test_skip("read-only disk: seqwrite needs a writable one");
    struct vdev *d = b.d;
    sync_host = cmdline_get_u64("blk_sync", 0) != 0;
    b.tsc_khz = tsc_hz ? tsc_hz / 1000 : cmdline_get_u64("tsc_khz", 0);
    b.seq_qd = (unsigned)cmdline_get_u64("blk_seq_qd", 4);
    CHECK(b.seq_qd >= 1 && b.seq_qd <= MAX_SEQ_QD, "blk_seq_qd=%u: give 1 to %u", b.seq_qd, MAX_SEQ_QD);
    b.seq_requests = cmdline_get_u64("blk_seq_mib", 512) * (1u << 20) / SEQ_REQ_BYTES;
    b.rand1_requests = cmdline_get_u64("blk_rand1_n", 2000);
    b.rand32_requests = cmdline_get_u64("blk_rand32_n", 16000);
    uint64_t want = BIT64(BLK_F_FLUSH) | BIT64(BLK_F_SEG_MAX) | BIT64(BLK_F_SIZE_MAX) | BIT64(BLK_F_BLK_SIZE);
    if (cmdline_get_u64("blk_event_idx", 1))
        want |= BIT64(VIRTIO_F_EVENT_IDX);

    CHECK(blk_slots_alloc(b.seq, b.seq_qd, SEQ_REQ_BYTES) && blk_slots_alloc(b.rnd, RAND_QD, RAND_REQ_BYTES),
          "out of memory for %u x 1 MiB + %u x 4 KiB buffers", b.seq_qd, RAND_QD);
    for (unsigned i = 0; i < b.seq_qd; i++)
        memset(b.seq[i].buf, 0x5a ^ i, SEQ_REQ_BYTES);
    for (unsigned i = 0; i < RAND_QD; i++)
        memset(b.rnd[i].buf, 0xa5 ^ i, RAND_REQ_BYTES);

    CHECK(blk_up(d, want, 1), "bring-up failed: Status 0x%x", vdev_status(d));
    b.vq = &d->vq[0];
    b.cap = blk_capacity(d);
    CHECK(b.cap >= 2 * SEQ_REQ_BYTES / SECTOR, "capacity %lu sectors: below 2 MiB", b.cap);
    if (d->features & BIT64(BLK_F_SIZE_MAX)) {
        uint32_t sm = vdev_config_read(d, BCFG_SIZE_MAX, 4);
        CHECK(sm >= SEQ_REQ_BYTES, "size_max %u: a 1 MiB request needs one segment of 1 MiB", sm);
    }
    printf("# bench_blk: config transport=%s features=0x%lx queue_size=%u capacity_sectors=%lu event_idx=%u "
           "seq_qd=%u clock=tsc tsc_khz=%lu tsc_source=%s\n", vdev_transport_name(d), d->features, b.vq->num,
           b.cap, (d->features & BIT64(VIRTIO_F_EVENT_IDX)) ? 1 : 0, b.seq_qd, b.tsc_khz,
           tsc_hz ? tsc_source : b.tsc_khz ? "cmdline tsc_khz" : "unknown");

    if (sync_host) {
        irq_register(VEC_UART, uart_rx, NULL);
        ioapic_route(COM1_GSI, VEC_UART, bsp_apic_id, IOAPIC_EDGE);
        outb(COM1 + COM1_IER, 0x01); /* received data available */
    }
    const uint64_t counts[W_COUNT] = {0, b.seq_requests, b.seq_requests, b.rand1_requests, b.rand32_requests};
    char err[200] = "";
    bool ok = true;
    for (enum workload w = W_IDLE; w < W_COUNT && ok; w++)
        if (w == W_IDLE || counts[w])
            ok = run_workload(&b, w, counts[w], err, sizeof(err));
    if (sync_host) {
        outb(COM1 + COM1_IER, 0);
        ioapic_mask(COM1_GSI);
        irq_unregister(VEC_UART);
    }
    CHECK(ok, "%s", err);
    printf("# bench_blk: done\n");
    return TEST_PASS;
}
TEST_DESTRUCTIVE(bench_blk, test_bench_blk);
