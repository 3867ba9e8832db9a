/* ARP, IPv4, ICMP echo and UDP for the test guest's network stack (net.h): a small ARP cache
 * filled by replies only (and by requests for our address), frames received checked (lengths,
 * checksums) and handed to whoever waits: the ARP log, the ping, the UDP mailbox, TCP. */
#include "net_wire.h"

static const uint8_t mac_broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t mac_zero[6];
static uint16_t ip_id;

/* ---- ARP cache ---- */

static const uint8_t *arp_lookup(struct net *n, uint32_t ip)
{
    for (unsigned i = 0; i < NET_ARP_CACHE; i++)
        if (n->arp[i].ip == ip && ip)
            return n->arp[i].mac;
    return NULL;
}

/* Into ip's entry, else a free one, else the first. */
static void arp_learn(struct net *n, uint32_t ip, const uint8_t mac[6])
{
    unsigned slot = NET_ARP_CACHE;
    for (unsigned i = 0; i < NET_ARP_CACHE; i++)
        if (n->arp[i].ip == ip)
            slot = i;
    for (unsigned i = 0; i < NET_ARP_CACHE && slot == NET_ARP_CACHE; i++)
        if (!n->arp[i].ip)
            slot = i;
    slot %= NET_ARP_CACHE;
    n->arp[slot].ip = ip;
    memcpy(n->arp[slot].mac, mac, 6);
}

static bool arp_send(struct net *n, uint16_t op, const uint8_t dst[6], const uint8_t tha[6], uint32_t tip)
{
    struct arp_pkt *a = (struct arp_pkt *)net_tx_begin(n, dst, ETH_P_ARP);
    if (!a)
        return false;
    *a = (struct arp_pkt){net16(1), net16(ETH_P_IP), 6, 4, net16(op), {0}, net32(n->ip), {0}, net32(tip)};
    memcpy(a->sha, n->mac, 6);
    memcpy(a->tha, tha, 6);
    return net_tx_commit(n, sizeof(*a));
}

bool net_arp_request(struct net *n, uint32_t ip) { return arp_send(n, 1, mac_broadcast, mac_zero, ip); }

static uint32_t next_hop(struct net *n, uint32_t dst)
{
    bool off_link = n->mask && n->router && (dst & n->mask) != (n->ip & n->mask);
    return off_link ? n->router : dst;
}

uint8_t *net_ip_begin(struct net *n, uint32_t dst)
{
    const uint8_t *mac = mac_broadcast;
    if (dst != IP_BROADCAST) {
        uint32_t hop = next_hop(n, dst);
        mac = arp_lookup(n, hop);
        if (!mac) {
            net_arp_request(n, hop);
            net_fail(n, "no MAC address known for %u.%u.%u.%u", IP4_ARGS(hop));
            return NULL;
        }
    }
    uint8_t *p = net_tx_begin(n, mac, ETH_P_IP);
    return p ? p + IP_HLEN : NULL;
}

bool net_ip_commit(struct net *n, uint8_t *l4, uint8_t proto, uint32_t dst, size_t l4_len)
{
    struct ip_hdr *h = (struct ip_hdr *)(l4 - IP_HLEN);
    *h = (struct ip_hdr){0x45, 0, net16((uint16_t)(IP_HLEN + l4_len)), net16(ip_id++), 0, 64, proto, 0,
                         net32(n->ip), net32(dst)};
    h->csum = net16(csum_fold(csum_add(0, h, IP_HLEN)));
    return net_tx_commit(n, IP_HLEN + l4_len);
}

/* ---- receive ---- */

static void rx_arp(struct net *n, const uint8_t *p, uint32_t len)
{
    const struct arp_pkt *a = (const struct arp_pkt *)p;
    if (len < sizeof(*a)) {
        n->st.rx_bad++;
        return;
    }
    uint32_t sip = net32(a->spa), tip = net32(a->tpa);
    if (net16(a->htype) != 1 || net16(a->ptype) != ETH_P_IP || a->hlen != 6 || a->plen != 4) {
        n->st.rx_ignored++;
    } else if (net16(a->op) == 2) {
        arp_learn(n, sip, a->sha);
        n->arp_log[n->narp_log++ % NET_ARP_LOG] = sip;
        n->st.arp_replies++;
    } else if (net16(a->op) == 1 && n->ip && tip == n->ip) {
        if (sip)
            arp_learn(n, sip, a->sha);
        if (arp_send(n, 2, a->sha, a->sha, sip))
            n->st.arp_requests_answered++;
    } else {
        n->st.rx_ignored++;
    }
}

static void rx_icmp(struct net *n, const uint8_t *p, uint32_t len)
{
    const struct icmp_echo *e = (const struct icmp_echo *)p;
    if (len < sizeof(*e) || csum_fold(csum_add(0, p, len))) {
        n->st.rx_bad++;
        return;
    }
    uint32_t plen = len - sizeof(*e);
    if (e->type != 0 || net16(e->id) != n->ping_id || net16(e->seq) != n->ping_seq || n->ping_got ||
        plen > sizeof(n->ping_data)) {
        n->st.rx_ignored++;
        return;
    }
    memcpy(n->ping_data, p + sizeof(*e), plen);
    n->ping_len = plen;
    n->ping_got = true;
}

static void rx_udp(struct net *n, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t len)
{
    const struct udp_hdr *u = (const struct udp_hdr *)p;
    uint32_t ulen = len >= sizeof(*u) ? net16(u->len) : 0;
    if (ulen < sizeof(*u) || ulen > len ||
        (u->csum && csum_fold(csum_add(pseudo_sum(src, dst, IP_UDP, ulen), p, ulen)))) {
        n->st.rx_bad++;
        return;
    }
    uint32_t dlen = ulen - sizeof(*u);
    if (!n->udp_port || net16(u->dport) != n->udp_port || n->udp_full || dlen > sizeof(n->udp_data)) {
        n->st.rx_ignored++;
        return;
    }
    memcpy(n->udp_data, p + sizeof(*u), dlen);
    n->udp_len = dlen;
    n->udp_src = src;
    n->udp_sport = net16(u->sport);
    n->udp_full = true;
}

static void rx_ip(struct net *n, const uint8_t *p, uint32_t len)
{
    const struct ip_hdr *h = (const struct ip_hdr *)p;
    uint32_t ihl = len >= IP_HLEN ? (h->vihl & 0xfu) * 4 : 0, tot = ihl ? net16(h->len) : 0;
    if (ihl < IP_HLEN || (h->vihl >> 4) != 4 || tot < ihl || tot > len || csum_fold(csum_add(0, p, ihl))) {
        n->st.rx_bad++;
        return;
    }
    uint32_t src = net32(h->src), dst = net32(h->dst);
    if ((net16(h->frag) & 0x3fff) || (n->ip && dst != n->ip && dst != IP_BROADCAST)) {
        n->st.rx_ignored++; /* fragments; not for us */
        return;
    }
    switch (h->proto) {
    case IP_ICMP: rx_icmp(n, p + ihl, tot - ihl); break;
    case IP_UDP: rx_udp(n, src, dst, p + ihl, tot - ihl); break;
    case IP_TCP: net_tcp_input(n, src, dst, p + ihl, tot - ihl); break;
    default: n->st.rx_ignored++; break;
    }
}

void net_rx_frame(struct net *n, const uint8_t *f, uint32_t len)
{
    const struct eth_hdr *eh = (const struct eth_hdr *)f;
    if (len < ETH_HLEN) {
        n->st.rx_bad++;
        return;
    }
    if (memcmp(eh->dst, n->mac, 6) && memcmp(eh->dst, mac_broadcast, 6)) {
        n->st.rx_ignored++;
        return;
    }
    if (net16(eh->type) == ETH_P_ARP)
        rx_arp(n, f + ETH_HLEN, len - ETH_HLEN);
    else if (net16(eh->type) == ETH_P_IP)
        rx_ip(n, f + ETH_HLEN, len - ETH_HLEN);
    else
        n->st.rx_ignored++;
}

/* ---- address resolution, echo, UDP ---- */

struct arp_wait {
    uint32_t ip;
    unsigned from;
};

static bool arp_replied(struct net *n, void *arg)
{
    struct arp_wait *w = arg;
    for (unsigned i = w->from; i != n->narp_log; i++)
        if (n->arp_log[i % NET_ARP_LOG] == w->ip)
            return true;
    return false;
}

bool net_arp_resolve(struct net *n, uint32_t ip, uint8_t mac[6])
{
    for (unsigned t = 0; t < TRIES; t++) {
        struct arp_wait w = {ip, n->narp_log};
        if (!net_arp_request(n, ip))
            return false;
        if (net_wait(n, arp_replied, &w, RETRY_NS)) {
            memcpy(mac, arp_lookup(n, ip), 6);
            return true;
        }
    }
    return net_fail(n, "no ARP reply for %u.%u.%u.%u after %u requests", IP4_ARGS(ip), TRIES);
}

bool net_resolve(struct net *n, uint32_t dst)
{
    uint8_t mac[6];
    return dst == IP_BROADCAST || arp_lookup(n, next_hop(n, dst)) || net_arp_resolve(n, next_hop(n, dst), mac);
}

static uint8_t ping_byte(uint32_t i, uint16_t seq) { return (uint8_t)(i * 7 + seq * 13 + (i >> 8)); }

static bool ping_replied(struct net *n, void *arg)
{
    (void)arg;
    return n->ping_got;
}

bool net_ping(struct net *n, uint32_t dst, uint16_t seq, uint32_t len)
{
    if (len > sizeof(n->ping_data) - IP_HLEN - sizeof(struct icmp_echo))
        return net_fail(n, "ping payload %u too long", len);
    if (!net_resolve(n, dst))
        return false;
    n->ping_id = 0x6d69;
    n->ping_seq = seq;
    n->ping_got = false;
    for (unsigned t = 0; t < TRIES && !n->ping_got; t++) {
        uint8_t *p = net_ip_begin(n, dst);
        if (p) {
            struct icmp_echo *e = (struct icmp_echo *)p;
            *e = (struct icmp_echo){8, 0, 0, net16(n->ping_id), net16(seq)};
            for (uint32_t i = 0; i < len; i++)
                p[sizeof(*e) + i] = ping_byte(i, seq);
            e->csum = net16(csum_fold(csum_add(0, p, sizeof(*e) + len)));
            if (!net_ip_commit(n, p, IP_ICMP, dst, sizeof(*e) + len))
                return false;
        }
        net_wait(n, ping_replied, NULL, RETRY_NS);
    }
    if (!n->ping_got)
        return net_fail(n, "no echo reply from %u.%u.%u.%u to seq %u (%u bytes) after %u tries", IP4_ARGS(dst), seq,
                        len, TRIES);
    if (n->ping_len != len)
        return net_fail(n, "echo reply with %u bytes for %u", n->ping_len, len);
    for (uint32_t i = 0; i < len; i++)
        if (n->ping_data[i] != ping_byte(i, seq))
            return net_fail(n, "echo reply differs at byte %u of %u", i, len);
    return true;
}

void net_udp_bind(struct net *n, uint16_t port)
{
    n->udp_port = port;
    n->udp_full = false;
}

bool net_udp_send(struct net *n, uint32_t dst, uint16_t sport, uint16_t dport, const void *data, size_t len)
{
    if (len > ETH_FRAME_MAX - ETH_HLEN - IP_HLEN - sizeof(struct udp_hdr))
        return net_fail(n, "datagram of %lu bytes too long", (unsigned long)len);
    if (!net_resolve(n, dst))
        return false;
    uint8_t *p = net_ip_begin(n, dst);
    if (!p)
        return false;
    uint32_t ulen = (uint32_t)(sizeof(struct udp_hdr) + len);
    struct udp_hdr *u = (struct udp_hdr *)p;
    *u = (struct udp_hdr){net16(sport), net16(dport), net16((uint16_t)ulen), 0};
    memcpy(p + sizeof(*u), data, len);
    uint16_t c = csum_fold(csum_add(pseudo_sum(n->ip, dst, IP_UDP, ulen), p, ulen));
    u->csum = net16(c ? c : 0xffff); /* 0 would mean "no checksum" */
    return net_ip_commit(n, p, IP_UDP, dst, ulen);
}

static bool udp_arrived(struct net *n, void *arg)
{
    (void)arg;
    return n->udp_full;
}

bool net_udp_wait(struct net *n, uint64_t timeout_ns)
{
    return net_wait(n, udp_arrived, NULL, timeout_ns) ||
           net_fail(n, "no datagram on UDP port %u within %lu ms", n->udp_port, (unsigned long)(timeout_ns / MS));
}
