/* virtio-net (device ID 1) through the guest's own driver and IPv4 stack (net.h), against
 * libslirp (mica --net user; QEMU -netdev user): guest 10.0.2.15, gateway and host loopback
 * 10.0.2.2, DNS 10.0.2.3. A missing device SKIPs; so does a test whose host-side peer is not
 * named on the command line. tests/integration/kvm.sh runs them all over each transport, with
 * host peers (guest_peers.py).
 *
 * virtio_net: bring-up, the MAC (net_mac=XX:..:XX when mica was given mac=, else a 52:54:00
 *   address), link up, a DHCP lease (10.0.2.15, router 10.0.2.2, DNS 10.0.2.3, /24), ARP of
 *   10.0.2.2, ICMP echo to 10.0.2.2 (several sizes up to the MTU) and 10.0.2.3.
 * virtio_net_udp (net_udp=PORT: an echo server on the host's loopback, guest_peers.py): datagrams
 *   to 10.0.2.2:PORT come back as "echo " + datagram.
 * virtio_net_tcp (net_tcp=PORT: tcpserve.py): connect to 10.0.2.2:PORT, send a line, receive
 *   "pong-from-host\n" and the FIN, close. With MRG_RXBUF (small buffers).
 * virtio_net_tcp_server *D* (net_listen=PORT, reached through hostfwd): accept, send a line,
 *   receive the peer's FIN, close.
 * virtio_net_norx: ARP requests sent before any receive buffer is posted; nothing arrives in
 *   the used ring; once buffers are posted and queue 0 kicked, the held replies arrive in
 *   order. Then, from an address slirp has not seen, a full-size echo: slirp must ask for our
 *   MAC (we answer) and the reply spans several 256-byte mergeable buffers. */
#include "net.h"

#define S  (1000 * MS)

#define GATEWAY IP4(10, 0, 2, 2)
#define DNS     IP4(10, 0, 2, 3)
#define LEASE   IP4(10, 0, 2, 15)

static struct net nt;

#define TRY(expr)                                  \
    do {                                           \
        enum test_result try_r_ = (expr);          \
        if (try_r_ != TEST_PASS)                   \
            return try_r_;                         \
    } while (0)

static uint16_t cmdline_port(const char *key)
{
    uint64_t p = cmdline_get_u64(key, 0);
    return p <= 65535 ? (uint16_t)p : 0;
}

/* DHCP, with slirp's well-known answer. */
static enum test_result lease(const char *name)
{
    CHECK(net_dhcp(&nt), "DHCP: %s", nt.err);
    printf("# %s: lease %u.%u.%u.%u mask %u.%u.%u.%u router %u.%u.%u.%u dns %u.%u.%u.%u from %u.%u.%u.%u for %u s\n",
           name, IP4_ARGS(nt.ip), IP4_ARGS(nt.mask), IP4_ARGS(nt.router), IP4_ARGS(nt.dns),
           IP4_ARGS(nt.dhcp_server), nt.lease_s);
    CHECK(nt.ip == LEASE, "leased %u.%u.%u.%u, slirp gives 10.0.2.15", IP4_ARGS(nt.ip));
    CHECK(nt.mask == IP4(255, 255, 255, 0) && nt.router == GATEWAY && nt.dns == DNS,
          "lease options: mask %u.%u.%u.%u router %u.%u.%u.%u dns %u.%u.%u.%u", IP4_ARGS(nt.mask),
          IP4_ARGS(nt.router), IP4_ARGS(nt.dns));
    return TEST_PASS;
}

struct opening {
    struct vdev *d;
    uint16_t port;   /* the host-side peer's, from the command line */
    unsigned irqs0;  /* used-buffer interrupts before the test */
};

/* How every test opens: the device (else SKIP); the port port_key names on the command line,
 * when the test has a host-side peer (else SKIP, saying what the port is for: peer); the
 * device up, with receive buffers of small_buf bytes if MRG_RXBUF is offered and small_buf is
 * not 0 (else full-size ones), posted at once if post_rx; slirp's DHCP lease if dhcp. */
static enum test_result open_net(const char *name, const char *port_key, const char *peer, uint32_t small_buf,
                                 bool post_rx, bool dhcp, struct opening *o)
{
    o->d = virtio_find(VIRTIO_ID_NET, 0);
    if (!o->d)
        return test_skip("no virtio-net device (mica --net user)");
    o->port = port_key ? cmdline_port(port_key) : 0;
    if (port_key && !o->port)
        return test_skip("no %s=PORT (%s)", port_key, peer);
    o->irqs0 = o->d->used_irqs;
    bool mrg = small_buf && (o->d->offered & BIT64(VIRTIO_NET_F_MRG_RXBUF));
    struct net_opts opts = {mrg, mrg ? small_buf : NET_RX_BUF_MAX, post_rx};
    CHECK(net_init(&nt, o->d, &opts), "bring-up: %s", nt.err);
    printf("# %s: %s, features offered 0x%lx acked 0x%lx, header %u bytes, MRG_RXBUF %s, %u rx buffers of %u "
           "bytes, MAC " MAC_FMT "\n", name, vdev_transport_name(o->d), o->d->offered, o->d->features,
           nt.hdr_len, nt.mrg ? "on" : "off", nt.nrx_bufs, nt.rx_buf_size, MAC_ARGS(nt.mac));
    return dhcp ? lease(name) : TEST_PASS;
}

/* Prints what the driver counted (interrupts since irqs0) and checks that no received frame was
 * malformed. */
static enum test_result report(const char *name, struct vdev *d, unsigned irqs0)
{
    struct net_stats *s = &nt.st;
    printf("# %s: rx %u frames (%u merged, at most %u buffers), tx %u, ARP requests answered %u, bad %u, "
           "ignored %u, used-buffer interrupts %u\n", name, s->rx_frames, s->rx_merged, s->rx_max_bufs,
           s->tx_frames, s->arp_requests_answered, s->rx_bad, s->rx_ignored, d->used_irqs - irqs0);
    CHECK(s->rx_bad == 0, "%u received frames were malformed (length, checksum, num_buffers)", s->rx_bad);
    return TEST_PASS;
}


static bool parse_mac(const char *s, uint8_t mac[6])
{
    if (strlen(s) != 17)
        return false;
    for (unsigned i = 0; i < 6; i++) {
        char hex[5] = {'0', 'x', s[3 * i], s[3 * i + 1], 0};
        uint64_t v;
        if ((i < 5 && s[3 * i + 2] != ':') || !parse_u64(hex, 4, &v))
            return false;
        mac[i] = (uint8_t)v;
    }
    return true;
}

static enum test_result test_virtio_net(void)
{
    struct opening o;
    TRY(open_net("virtio_net", NULL, NULL, 0, true, false, &o));
    struct vdev *d = o.d;
    unsigned irqs0 = o.irqs0;
    CHECK(d->features & BIT64(VIRTIO_NET_F_MAC), "VIRTIO_NET_F_MAC not offered (0x%lx)", d->offered);
    const char *want = cmdline_get("net_mac");
    if (want) {
        uint8_t m[6];
        CHECK(parse_mac(want, m), "net_mac=%s is not a MAC address", want);
        CHECK(!memcmp(m, nt.mac, 6), "MAC " MAC_FMT " in the configuration, mica was given %s", MAC_ARGS(nt.mac),
              want);
    } else {
        CHECK(nt.mac[0] == 0x52 && nt.mac[1] == 0x54 && nt.mac[2] == 0x00, "MAC " MAC_FMT " is not a 52:54:00 address",
              MAC_ARGS(nt.mac));
    }
    CHECK(d->features & BIT64(VIRTIO_NET_F_STATUS), "VIRTIO_NET_F_STATUS not offered (0x%lx)", d->offered);
    uint16_t status = (uint16_t)vdev_config_read(d, VNET_CFG_STATUS, 2);
    CHECK(status & VIRTIO_NET_S_LINK_UP, "link down (status 0x%x)", status);
    uint32_t max_ping = 1472;
    if (d->features & BIT64(VIRTIO_NET_F_MTU)) {
        uint16_t mtu = (uint16_t)vdev_config_read(d, VNET_CFG_MTU, 2);
        printf("# virtio_net: link up, MTU %u\n", mtu);
        CHECK(mtu >= 576, "MTU %u", mtu);
        if (mtu < 1500)
            max_ping = mtu - 28u;
    }
    TRY(lease("virtio_net"));

    uint8_t gw[6];
    CHECK(net_arp_resolve(&nt, GATEWAY, gw), "ARP: %s", nt.err);
    printf("# virtio_net: 10.0.2.2 is at " MAC_FMT "\n", MAC_ARGS(gw));
    CHECK(!(gw[0] & 1) && memcmp(gw, nt.mac, 6) && (gw[0] | gw[1] | gw[2] | gw[3] | gw[4] | gw[5]),
          "ARP reply names " MAC_FMT ", not another host's unicast address", MAC_ARGS(gw));

    const uint32_t sizes[] = {0, 56, 1000, max_ping};
    for (unsigned i = 0; i < ARRAY_SIZE(sizes); i++)
        CHECK(net_ping(&nt, GATEWAY, (uint16_t)(i + 1), sizes[i]), "ping 10.0.2.2 with %u bytes: %s", sizes[i],
              nt.err);
    CHECK(net_ping(&nt, DNS, 100, 56), "ping 10.0.2.3: %s", nt.err);
    printf("# virtio_net: %u echo replies from 10.0.2.2 (0 to %u bytes), 1 from 10.0.2.3\n",
           (unsigned)ARRAY_SIZE(sizes), max_ping);
    TRY(report("virtio_net", d, irqs0));
    /* interrupts are taken only while a wait halts: one may still be pending */
    CHECK(wait_count(&d->used_irqs, irqs0, 5 * S), "frames arrived but no used-buffer interrupt did");
    return TEST_PASS;
}
TEST(virtio_net, test_virtio_net);

static enum test_result test_virtio_net_udp(void)
{
    struct opening o;
    TRY(open_net("virtio_net_udp", "net_udp", "a UDP echo server on the host's loopback: tests/integration/guest_peers.py",
                 0, true, true, &o));
    struct vdev *d = o.d;
    uint16_t port = o.port;
    const uint16_t lport = 40007;
    static uint8_t msg[1400];
    unsigned count = 8;
    net_udp_bind(&nt, lport);
    for (unsigned k = 0; k < count; k++) {
        uint32_t len = 40 + k * 180;
        int head = snprintf((char *)msg, sizeof(msg), "mica-udp %s %u\n", vdev_transport_name(d), k);
        for (uint32_t i = (uint32_t)head; i < len; i++)
            msg[i] = (uint8_t)('a' + (i + k) % 26);
        nt.udp_full = false;
        CHECK(net_udp_send(&nt, GATEWAY, lport, port, msg, len), "send %u: %s", k, nt.err);
        CHECK(net_udp_wait(&nt, 5 * S), "datagram %u (%u bytes) to 10.0.2.2:%u: %s", k, len, port, nt.err);
        CHECK(nt.udp_src == GATEWAY && nt.udp_sport == port, "reply %u from %u.%u.%u.%u:%u", k,
              IP4_ARGS(nt.udp_src), nt.udp_sport);
        CHECK(nt.udp_len == len + 5 && !memcmp(nt.udp_data, "echo ", 5) && !memcmp(nt.udp_data + 5, msg, len),
              "reply %u: %u bytes, not \"echo \" and the %u bytes sent", k, nt.udp_len, len);
    }
    printf("# virtio_net_udp: %u datagrams (40 to %u bytes) echoed by 10.0.2.2:%u\n", count, 40 + (count - 1) * 180,
           port);
    TRY(report("virtio_net_udp", d, o.irqs0));
    return TEST_PASS;
}
TEST(virtio_net_udp, test_virtio_net_udp);

static enum test_result test_virtio_net_tcp(void)
{
    struct opening o;
    TRY(open_net("virtio_net_tcp", "net_tcp", "a TCP server on the host's loopback: tests/integration/tcpserve.py",
                 1024, true, true, &o));
    struct vdev *d = o.d;
    uint16_t port = o.port;
    CHECK(net_tcp_connect(&nt, GATEWAY, port, 41007), "connect to 10.0.2.2:%u: %s", port, nt.err);
    char line[64];
    int len = snprintf(line, sizeof(line), "mica-tcp %s\n", vdev_transport_name(d));
    CHECK(net_tcp_send(&nt, line, (size_t)len), "send: %s", nt.err);
    CHECK(net_tcp_wait_fin(&nt, 20 * S), "%s", nt.err);
    static const char pong[] = "pong-from-host\n";
    CHECK(nt.tcp.rx_len == sizeof(pong) - 1 && !memcmp(nt.tcp.rx, pong, sizeof(pong) - 1),
          "received %u bytes, not \"pong-from-host\\n\"", nt.tcp.rx_len);
    CHECK(net_tcp_close(&nt), "close: %s", nt.err);
    printf("# virtio_net_tcp: sent \"mica-tcp %s\" to 10.0.2.2:%u, received \"pong-from-host\" and FIN, closed\n",
           vdev_transport_name(d), port);
    TRY(report("virtio_net_tcp", d, o.irqs0));
    return TEST_PASS;
}
TEST(virtio_net_tcp, test_virtio_net_tcp);

static enum test_result test_virtio_net_tcp_server(void)
{
    struct opening o;
    TRY(open_net("virtio_net_tcp_server", "net_listen",
                 "the guest port of a hostfwd rule: mica --net user,hostfwd=tcp::HOSTPORT-:PORT", 0, true, true, &o));
    struct vdev *d = o.d;
    uint16_t port = o.port;
    uint8_t gw[6];
    CHECK(net_arp_resolve(&nt, GATEWAY, gw), "ARP: %s", nt.err); /* forwarded connections come from there */
    net_tcp_listen(&nt, port);
    printf("# virtio_net_tcp_server: listening on 10.0.2.15:%u\n", port);
    CHECK(net_tcp_accept(&nt, 60 * S), "%s", nt.err);
    printf("# virtio_net_tcp_server: connection from %u.%u.%u.%u:%u\n", IP4_ARGS(nt.tcp.rip), nt.tcp.rport);
    char line[64];
    int len = snprintf(line, sizeof(line), "mica-tcp-server %s %u\n", vdev_transport_name(d), port);
    CHECK(net_tcp_send(&nt, line, (size_t)len), "send: %s", nt.err);
    CHECK(net_tcp_wait_fin(&nt, 30 * S), "%s", nt.err);
    CHECK(net_tcp_close(&nt), "close: %s", nt.err);
    printf("# virtio_net_tcp_server: sent \"mica-tcp-server %s %u\", received %u bytes and FIN, closed\n",
           vdev_transport_name(d), port, nt.tcp.rx_len);
    TRY(report("virtio_net_tcp_server", d, o.irqs0));
    return TEST_PASS;
}
TEST_DESTRUCTIVE(virtio_net_tcp_server, test_virtio_net_tcp_server);

static bool tx_all_used(struct net *n, void *arg)
{
    (void)arg;
    return vq_used_idx(n->tx) == n->tx->avail_idx;
}

static bool two_arp_replies(struct net *n, void *arg)
{
    (void)arg;
    return n->narp_log >= 2;
}

static enum test_result test_virtio_net_norx(void)
{
    static unsigned runs;
    struct opening o;
    TRY(open_net("virtio_net_norx", NULL, NULL, 256, false, false, &o));
    struct vdev *d = o.d;
    unsigned irqs0 = o.irqs0;

    /* From 0.0.0.0, so that slirp does not learn our MAC from them (it learns only from ARP and DHCP). */
    CHECK(net_arp_request(&nt, GATEWAY) && net_arp_request(&nt, DNS), "send: %s", nt.err);
    CHECK(net_wait(&nt, tx_all_used, NULL, 5 * S), "the device used %u of %u transmit chains within 5 s",
          vq_used_idx(nt.tx), nt.tx->avail_idx);
    sleep_ns(500 * MS);
    uint16_t early = vq_used_idx(nt.rx);
    CHECK(early == 0, "used idx of the receive queue is %u with no buffer posted", early);
    net_post_rx(&nt);
    CHECK(net_wait(&nt, two_arp_replies, NULL, 5 * S), "%u of 2 ARP replies after posting the buffers",
          nt.narp_log);
    CHECK(nt.arp_log[0] == GATEWAY && nt.arp_log[1] == DNS, "ARP replies from %u.%u.%u.%u then %u.%u.%u.%u",
          IP4_ARGS(nt.arp_log[0]), IP4_ARGS(nt.arp_log[1]));
    printf("# virtio_net_norx: 2 ARP replies held while no receive buffer was posted, delivered in order after "
           "the kick (%u frames)\n", nt.st.rx_frames);

    /* A fresh address: slirp must ask who has it before it can send the echo reply. */
    nt.ip = IP4(10, 0, 2, 200 + runs++ % 50);
    CHECK(net_ping(&nt, GATEWAY, 7, 1472), "ping 10.0.2.2 with 1472 bytes from %u.%u.%u.%u: %s", IP4_ARGS(nt.ip),
          nt.err);
    CHECK(nt.st.arp_requests_answered >= 1, "echo reply without an ARP request for %u.%u.%u.%u",
          IP4_ARGS(nt.ip));
    if (nt.mrg)
        CHECK(nt.st.rx_max_bufs >= 2, "a 1514-byte frame in 256-byte mergeable buffers used %u buffer(s)",
              nt.st.rx_max_bufs);
    printf("# virtio_net_norx: ARP request for %u.%u.%u.%u answered; 1472-byte echo reply in %u buffer(s)\n",
           IP4_ARGS(nt.ip), nt.st.rx_max_bufs);
    TRY(report("virtio_net_norx", d, irqs0));
    return TEST_PASS;
}
TEST(virtio_net_norx, test_virtio_net_norx);
