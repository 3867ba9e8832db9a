/* The DHCP client of the test guest's network stack (RFC 2131): DISCOVER, OFFER, REQUEST, ACK,
 * broadcast both ways (we cannot receive unicast before we have an address). */
#include "net_wire.h"

#define DHCP_DISCOVER 1
#define DHCP_OFFER    2
#define DHCP_REQUEST  3
#define DHCP_ACK      5
#define DHCP_NAK      6
#define DHCP_MAGIC    0x63825363u

struct dhcp_msg {
    uint8_t op, htype, hlen, hops;
    uint32_t xid;
    uint16_t secs, flags;
    uint32_t ciaddr, yiaddr, siaddr, giaddr;
    uint8_t chaddr[16], sname[64], file[128];
    uint32_t cookie;
    uint8_t options[308];
} __attribute__((packed));

_Static_assert(sizeof(struct dhcp_msg) == 548, "BOOTP message size");

struct dhcp_reply {
    uint8_t type;
    uint32_t yiaddr, server, mask, router, dns, lease;
};

static uint8_t *put_ip_option(uint8_t *o, uint8_t tag, uint32_t ip)
{
    uint32_t v = net32(ip);
    o[0] = tag;
    o[1] = 4;
    memcpy(o + 2, &v, 4);
    return o + 6;
}

static bool dhcp_send(struct net *n, uint32_t xid, uint8_t type, uint32_t req_ip, uint32_t server)
{
    static const uint8_t param_request[] = {55, 3, 1, 3, 6}; /* netmask, router, DNS */
    struct dhcp_msg m;
    memset(&m, 0, sizeof(m));
    m.op = 1;
    m.htype = 1;
    m.hlen = 6;
    m.xid = net32(xid);
    m.flags = net16(0x8000); /* replies broadcast */
    memcpy(m.chaddr, n->mac, 6);
    m.cookie = net32(DHCP_MAGIC);
    uint8_t *o = m.options;
    o[0] = 53, o[1] = 1, o[2] = type;
    o += 3;
    if (req_ip)
        o = put_ip_option(o, 50, req_ip);
    if (server)
        o = put_ip_option(o, 54, server);
    memcpy(o, param_request, sizeof(param_request));
    o[sizeof(param_request)] = 255;
    return net_udp_send(n, IP_BROADCAST, 68, 67, &m, sizeof(m));
}

/* The datagram in the mailbox, if it is a reply to xid for our MAC. */
static bool dhcp_parse(struct net *n, uint32_t xid, struct dhcp_reply *r)
{
    const struct dhcp_msg *m = (const struct dhcp_msg *)n->udp_data;
    uint32_t end = n->udp_len, at = (uint32_t)offsetof(struct dhcp_msg, options);
    if (end < at || m->op != 2 || net32(m->xid) != xid || memcmp(m->chaddr, n->mac, 6) ||
        net32(m->cookie) != DHCP_MAGIC)
        return false;
    memset(r, 0, sizeof(*r));
    r->yiaddr = net32(m->yiaddr);
    const uint8_t *d = n->udp_data;
    while (at < end && d[at] != 255) {
        if (d[at] == 0) {
            at++;
            continue;
        }
        if (at + 2 > end || at + 2 + d[at + 1] > end)
            break;
        uint8_t tag = d[at], len = d[at + 1];
        const uint8_t *v = d + at + 2;
        uint32_t v32 = len >= 4 ? be32(v) : 0;
        if (tag == 53 && len >= 1)
            r->type = v[0];
        else if (tag == 54)
            r->server = v32;
        else if (tag == 1)
            r->mask = v32;
        else if (tag == 3)
            r->router = v32;
        else if (tag == 6)
            r->dns = v32;
        else if (tag == 51)
            r->lease = v32;
        at += 2u + len;
    }
    return true;
}

static bool dhcp_exchange(struct net *n, uint32_t xid, uint8_t type, uint32_t req_ip, uint32_t server, uint8_t want,
                          struct dhcp_reply *r)
{
    for (unsigned t = 0; t < TRIES; t++) {
        n->udp_full = false;
        if (!dhcp_send(n, xid, type, req_ip, server))
            return false;
        for (unsigned k = 0; k < 8 && net_udp_wait(n, 1000 * MS); k++) {
            bool mine = dhcp_parse(n, xid, r);
            n->udp_full = false;
            if (mine && r->type == want)
                return true;
            if (mine && r->type == DHCP_NAK)
                return net_fail(n, "DHCP NAK to message type %u", type);
        }
    }
    return net_fail(n, "no DHCP reply of type %u to type %u after %u tries", want, type, TRIES);
}

bool net_dhcp(struct net *n)
{
    uint32_t xid = (uint32_t)rdtsc();
    struct dhcp_reply offer, ack;
    net_udp_bind(n, 68);
    bool ok = dhcp_exchange(n, xid, DHCP_DISCOVER, 0, 0, DHCP_OFFER, &offer);
    if (ok && (!offer.yiaddr || !offer.server))
        ok = net_fail(n, "DHCP offer of %u.%u.%u.%u without a server identifier", IP4_ARGS(offer.yiaddr));
    if (ok)
        ok = dhcp_exchange(n, xid, DHCP_REQUEST, offer.yiaddr, offer.server, DHCP_ACK, &ack);
    if (ok && ack.yiaddr != offer.yiaddr)
        ok = net_fail(n, "DHCP ACK for %u.%u.%u.%u, offered %u.%u.%u.%u", IP4_ARGS(ack.yiaddr), IP4_ARGS(offer.yiaddr));
    net_udp_bind(n, 0);
    if (!ok)
        return false;
    n->ip = ack.yiaddr;
    n->mask = ack.mask;
    n->router = ack.router;
    n->dns = ack.dns;
    n->dhcp_server = ack.server;
    n->lease_s = ack.lease;
    return true;
}
