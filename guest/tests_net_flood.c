/* net_flood *D*: a guest flooding virtio-net's transmit queue must not stop the VMM's other
 * devices. mica serves every queue from one event loop; the net device stops at its work
 * budget, and its backend (libslirp) takes frames into a bounded ring and makes the device
 * wait when it is full, so blk and the console keep their turns.
 *
 * The flood: UDP datagrams (18 to 1417 bytes of payload) to 10.0.2.2 on a port nobody listens
 * on (net_flood_port=PORT, default 9), as many at once as the transmit ring holds, one kick per
 * batch, refilled as soon as the device gives a buffer back, for at least FLOOD_FRAMES frames.
 * Meanwhile, from the same vCPU between refills: virtio-blk rounds (write a pattern over the
 * first FLOOD_SECTORS sectors, read it back and check it; every request must complete within
 * 20 s) and, with a virtio-console, a line through its transmitq every 200 ms (each must come
 * back used within 20 s; mica prints it). At the end every frame must have come back used (none
 * lost while the device waited for its backend), the device must not need a reset, and a
 * ping to 10.0.2.2 must still work. Received frames (slirp answers datagrams to a closed port
 * with ICMP errors) are not taken during the flood: mica holds some and drops the rest, counted.
 *
 * mica: --net user --disk IMG [--console virtio]; the sector pattern is sector k: "net_flood
 * sector %08u" (k), then byte i = (k * 11 + i * 5 + round) & 0xff. The last line reports the
 * frames this driver sent in all (flood, DHCP, ARP, ping): the device's tx_packets must match.
 * tests/integration/guest_net_flood.sh runs it. */
#include "blk.h"
#include "net_wire.h"

#define S (1000 * MS)

#define GATEWAY          IP4(10, 0, 2, 2)
#define FLOOD_FRAMES     50000u
#define FLOOD_BUFS       256u              /* transmit buffers: a whole ring of mica's size */
#define FLOOD_BUF_SIZE   2048u
#define FLOOD_SPORT      40123
#define FLOOD_TIMEOUT_NS (20 * S)          /* a blk request, a console line, the final drain */
#define FLOOD_SECTORS    (4u << 11)        /* 4 MiB per blk round */
#define FLOOD_REQ        64u               /* sectors per blk request (32 KiB) */
#define FLOOD_DEPTH      4u                /* blk requests in flight */
#define CON_EVERY_NS     (200 * MS)
#define PRINT_EVERY_NS   (1000 * MS)
#define PAT_HEAD         25                /* "net_flood sector %08u" */

static struct net nt;

static struct {
    struct virtq *q;
    bool one_desc;               /* VERSION_1: header and frame in one buffer */
    bool stop;                   /* no more frames: only take back the used ones */
    uint8_t *free[FLOOD_BUFS];
    unsigned nfree;
    uint64_t sent, used, bytes;
    uint8_t gw[6];
    uint16_t dport;
    /* virtio-console, when present */
    struct vdev *con;
    uint8_t *con_buf;
    bool con_on, con_busy;
    unsigned con_lines, con_used;
    uint64_t con_t0, con_next, next_print;
    /* blk progress, for the printed lines */
    unsigned blk_rounds, blk_requests;
    bool failed;
    char err[160];
} fl;

static bool flood_fail(const char *what, unsigned k)
{
    if (!fl.failed)
        snprintf(fl.err, sizeof(fl.err), "%s %u", what, k);
    fl.failed = true;
    return false;
}

/* Frame number seq (after the virtio-net header at b): Ethernet, IPv4, UDP, payload. Returns
 * the frame's length. */
static uint32_t build_frame(uint8_t *f, uint64_t seq)
{
    uint32_t plen = 18 + (uint32_t)(seq * 97 % 1400), ulen = (uint32_t)sizeof(struct udp_hdr) + plen;
    struct eth_hdr *eh = (struct eth_hdr *)f;
    struct ip_hdr *ip = (struct ip_hdr *)(f + ETH_HLEN);
    struct udp_hdr *u = (struct udp_hdr *)(ip + 1);
    uint8_t *p = (uint8_t *)(u + 1);

    memcpy(eh->dst, fl.gw, 6);
    memcpy(eh->src, nt.mac, 6);
    eh->type = net16(ETH_P_IP);
    *ip = (struct ip_hdr){0x45, 0, net16((uint16_t)(IP_HLEN + ulen)), net16((uint16_t)seq), 0, 64, IP_UDP, 0,
                          net32(nt.ip), net32(GATEWAY)};
    ip->csum = net16(csum_fold(csum_add(0, ip, IP_HLEN)));
    *u = (struct udp_hdr){net16(FLOOD_SPORT), net16(fl.dport), net16((uint16_t)ulen), 0}; /* no checksum */
    int head = snprintf((char *)p, plen, "net_flood %lu", (unsigned long)seq);
    for (uint32_t i = (uint32_t)head; i < plen; i++)
        p[i] = (uint8_t)(seq + i);
    fl.bytes += plen;
    return ETH_HLEN + IP_HLEN + ulen;
}

/* The console: the next line when the previous one came back and its time has come. */
static void console_step(uint64_t now)
{
    struct virtq *vq = fl.con ? &fl.con->vq[1] : NULL;
    void *tok;

    if (!vq)
        return;
    if (fl.con_busy) {
        if (vq_pop(vq, &tok, NULL)) {
            fl.con_busy = false;
            fl.con_used++;
        } else if (now - fl.con_t0 > ns_to_cycles(FLOOD_TIMEOUT_NS)) {
            flood_fail("virtio-console: no used buffer within 20 s for line", fl.con_lines - 1);
            return;
        }
    }
    if (fl.con_busy || !fl.con_on || now < fl.con_next)
        return;
    int n = snprintf((char *)fl.con_buf, 128, "net_flood: console line %u, %lu frames sent\n", fl.con_lines,
                     (unsigned long)fl.sent);
    struct vbuf b = {virt_to_phys(fl.con_buf), (uint32_t)n};
    if (vq_add(vq, &b, 1, 0, fl.con_buf, false) < 0) {
        flood_fail("virtio-console: no room in the transmitq for line", fl.con_lines);
        return;
    }
    vq_kick(vq);
    fl.con_busy = true;
    fl.con_t0 = now;
    fl.con_next = now + ns_to_cycles(CON_EVERY_NS);
    fl.con_lines++;
}

/* One pass: take back the used transmit buffers, refill the ring (one kick), the console, a
 * progress line now and then. */
static void flood_step(void)
{
    void *tok;
    unsigned added = 0;
    uint64_t now;

    while (vq_pop(fl.q, &tok, NULL)) {
        fl.free[fl.nfree++] = tok;
        fl.used++;
    }
    while (!fl.stop && fl.nfree && fl.q->num_free >= (fl.one_desc ? 1 : 2)) {
        uint8_t *b = fl.free[fl.nfree - 1];
        uint32_t len = build_frame(b + nt.hdr_len, fl.sent);
        struct vbuf v[2] = {{virt_to_phys(b), nt.hdr_len + len}};
        unsigned nb = 1;
        if (!fl.one_desc) {
            v[0].len = nt.hdr_len;
            v[1] = (struct vbuf){virt_to_phys(b + nt.hdr_len), len};
            nb = 2;
        }
        if (vq_add(fl.q, v, nb, 0, b, false) < 0)
            break;
        fl.nfree--;
        fl.sent++;
        added++;
    }
    if (added)
        vq_kick(fl.q);
    now = rdtsc();
    console_step(now);
    if (now >= fl.next_print) {
        printf("# net_flood: %lu frames sent, %lu used; blk round %u, %u requests; console %u lines\n",
               (unsigned long)fl.sent, (unsigned long)fl.used, fl.blk_rounds, fl.blk_requests, fl.con_used);
        fl.next_print = now + ns_to_cycles(PRINT_EVERY_NS);
    }
}

/* blk_job's wait: the flood goes on until a blk request completes (or 20 s pass). */
static bool flood_wait(struct virtq *blkq, uint64_t timeout_ns)
{
    uint64_t start = rdtsc(), limit = ns_to_cycles(FLOOD_TIMEOUT_NS);

    (void)timeout_ns;
    do {
        flood_step();
        if (fl.failed)
            return false;
        if (vq_has_used(blkq))
            return true;
    } while (rdtsc() - start < limit);
    return false;
}

/* ---- blk rounds: the pattern written, then read back and checked ---- */

struct round {
    struct blk_job job;
    bool write;
    uint32_t seed;
    uint64_t count, next;
};

static void fill_sector(uint8_t *p, uint64_t k, uint32_t seed)
{
    snprintf((char *)p, PAT_HEAD + 1, "net_flood sector %08u", (unsigned)k);
    for (unsigned i = PAT_HEAD; i < SECTOR; i++)
        p[i] = (uint8_t)(k * 11 + i * 5 + seed);
}

static int round_next(struct blk_job *j, struct blk_slot *s)
{
    struct round *r = (struct round *)j;
    if (r->next >= r->count)
        return -1;
    s->sector = r->next;
    s->nsec = (uint32_t)(r->count - r->next < FLOOD_REQ ? r->count - r->next : FLOOD_REQ);
    if (r->write)
        for (uint32_t k = 0; k < s->nsec; k++)
            fill_sector(s->buf + k * SECTOR, s->sector + k, r->seed);
    r->next += s->nsec;
    fl.blk_requests++;
    return r->write ? BLK_T_OUT : BLK_T_IN;
}

static bool round_check(struct blk_job *j, struct blk_slot *s)
{
    struct round *r = (struct round *)j;
    uint8_t want[SECTOR];
    if (r->write)
        return true;
    for (uint32_t k = 0; k < s->nsec; k++) {
        fill_sector(want, s->sector + k, r->seed);
        if (memcmp(s->buf + k * SECTOR, want, SECTOR)) {
            snprintf(j->err, sizeof(j->err), "sector %lu read back is not the pattern written",
                     (unsigned long)(s->sector + k));
            return false;
        }
    }
    return true;
}

static bool blk_round(struct virtq *vq, struct blk_slot *slots, uint64_t sectors, uint32_t seed, char *err,
                      size_t errlen)
{
    for (int w = 1; w >= 0; w--) {
        struct round r = {.job = {.vq = vq, .slots = slots, .depth = FLOOD_DEPTH, .next = round_next,
                                  .done = round_check, .wait = flood_wait},
                          .write = w, .seed = seed, .count = sectors};
        if (!blk_job_run(&r.job)) {
            snprintf(err, errlen, "%s: %s", w ? "write" : "read back",
                     fl.failed ? fl.err : r.job.err);
            return false;
        }
    }
    return true;
}

/* ---- the test ---- */

static bool tx_all_used(struct net *n, void *arg)
{
    (void)arg;
    return vq_used_idx(n->tx) == n->tx->avail_idx;
}

static bool drained(void *arg)
{
    (void)arg;
    flood_step();
    return fl.used == fl.sent && (!fl.con_busy || fl.failed);
}

static enum test_result test_net_flood(void)
{
    static struct blk_slot slots[FLOOD_DEPTH];
    static uint8_t *pool;
    struct vdev *nd = virtio_find(VIRTIO_ID_NET, 0), *bd = blk_find();
    char err[200];

    if (!nd)
        return test_skip("no virtio-net device (mica --net user)");
    if (!bd)
        return test_skip("no virtio-blk device (mica --disk IMG)");
    if (blk_ro(bd))
        return test_skip("the disk is read-only");
    memset(&fl, 0, sizeof(fl));
    fl.con = virtio_find(VIRTIO_ID_CONSOLE, 0);
    if (!pool) {
        pool = alloc_pages(FLOOD_BUFS * FLOOD_BUF_SIZE / PAGE_SIZE);
        CHECK(pool && blk_slots_alloc(slots, FLOOD_DEPTH, FLOOD_REQ * SECTOR), "out of memory");
    }
    fl.con_buf = pool; /* the first buffer: the console's; the others the flood's */
    for (unsigned i = 1; i < FLOOD_BUFS; i++)
        fl.free[fl.nfree++] = pool + (size_t)i * FLOOD_BUF_SIZE;
    fl.dport = (uint16_t)cmdline_get_u64("net_flood_port", 9);

    struct net_opts o = {false, NET_RX_BUF_MAX, true};
    CHECK(net_init(&nt, nd, &o), "net bring-up: %s", nt.err);
    CHECK(net_dhcp(&nt), "DHCP: %s", nt.err);
    CHECK(net_arp_resolve(&nt, GATEWAY, fl.gw), "ARP of 10.0.2.2: %s", nt.err);
    CHECK(net_wait(&nt, tx_all_used, NULL, 5 * S), "the device kept transmit buffers: %s", nt.err);
    fl.q = nt.tx;
    fl.one_desc = nd->features & BIT64(VIRTIO_F_VERSION_1);
    CHECK(blk_up(bd, BIT64(BLK_F_FLUSH), 1), "blk bring-up failed: Status 0x%x", vdev_status(bd));
    uint64_t sectors = blk_capacity(bd) < FLOOD_SECTORS ? blk_capacity(bd) : FLOOD_SECTORS;
    CHECK(sectors >= FLOOD_REQ, "a disk of %lu sectors is too small", (unsigned long)sectors);
    if (fl.con)
        CHECK(vdev_up(fl.con, 0, 0), "console bring-up failed: Status 0x%x", vdev_status(fl.con));
    printf("# net_flood: net on %s (%u transmit descriptors, %s), blk %lu sectors per round, console %s, "
           "UDP to 10.0.2.2:%u\n", vdev_transport_name(nd), fl.q->num, fl.one_desc ? "one buffer per frame"
           : "header apart", (unsigned long)sectors, fl.con ? "virtio" : "absent", fl.dport);

    /* The flood first fills the ring, then blk works under it, round after round, until the
     * flood has sent its frames and the console has had its lines. */
    uint64_t t0 = rdtsc();
    fl.con_on = true;
    flood_step();
    bool ok = true;
    while (ok && (fl.sent < FLOOD_FRAMES || (fl.con && fl.con_lines < 3))) {
        ok = blk_round(&bd->vq[0], slots, sectors, fl.blk_rounds + 1, err, sizeof(err));
        if (ok)
            fl.blk_rounds++;
    }
    fl.con_on = false;
    fl.stop = true;
    bool all_back = poll_until(drained, NULL, FLOOD_TIMEOUT_NS, 10 * MS);
    uint64_t ms = cycles_to_ns(rdtsc() - t0) / MS;

    CHECK(!fl.failed, "%s", fl.err);
    CHECK(ok, "blk under the flood, round %u: %s", fl.blk_rounds + 1, err);
    CHECK(all_back, "%lu of %lu frames came back used within 20 s after the flood stopped (used idx %u, "
          "avail idx %u)", (unsigned long)fl.used, (unsigned long)fl.sent, vq_used_idx(fl.q), fl.q->avail_idx);
    CHECK(!(vdev_status(nd) & VIRTIO_S_NEEDS_RESET), "the net device needs a reset: Status 0x%x", vdev_status(nd));
    CHECK(!fl.con || fl.con_used == fl.con_lines, "console: %u of %u lines used", fl.con_used, fl.con_lines);
    printf("# net_flood: %lu frames (%lu payload bytes) sent and used in %lu ms; blk %u rounds of %lu sectors "
           "written and read back; console %u lines\n", (unsigned long)fl.sent, (unsigned long)fl.bytes,
           (unsigned long)ms, fl.blk_rounds, (unsigned long)sectors, fl.con_used);
    CHECK(net_ping(&nt, GATEWAY, 1, 56), "ping 10.0.2.2 after the flood: %s", nt.err);
    CHECK(nt.st.rx_bad == 0, "%u received frames were malformed", nt.st.rx_bad);
    printf("# net_flood: this driver sent %lu frames in all\n", (unsigned long)(fl.sent + nt.st.tx_frames));
    return TEST_PASS;
}
TEST_DESTRUCTIVE(net_flood, test_net_flood);
