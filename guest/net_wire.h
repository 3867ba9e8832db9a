/* Internal to the test guest's network stack (net.c: the virtio-net driver; net_ip.c: ARP,
 * IPv4, ICMP, UDP; net_dhcp.c; net_tcp.c): wire formats, checksums, what the files share.
 * Every multi-byte field on the wire is big-endian: net16/net32 convert. */
#ifndef GUEST_NET_WIRE_H
#define GUEST_NET_WIRE_H

#include "net.h"

#define RETRY_NS (500 * MS)   /* a request unanswered this long is sent again ... */
#define TRIES    6            /* ... this many times in all */

#define ETH_HLEN      14
#define ETH_P_IP      0x0800
#define ETH_P_ARP     0x0806
#define ETH_FRAME_MAX 1514
#define IP_HLEN       20
#define IP_ICMP       1
#define IP_TCP        6
#define IP_UDP        17
#define IP_BROADCAST  0xffffffffu

struct eth_hdr {
    uint8_t dst[6], src[6];
    uint16_t type;
} __attribute__((packed));

struct arp_pkt {
    uint16_t htype, ptype;
    uint8_t hlen, plen;
    uint16_t op;
    uint8_t sha[6];
    uint32_t spa;
    uint8_t tha[6];
    uint32_t tpa;
} __attribute__((packed));

struct ip_hdr {
    uint8_t vihl, tos;
    uint16_t len, id, frag;
    uint8_t ttl, proto;
    uint16_t csum;
    uint32_t src, dst;
} __attribute__((packed));

struct icmp_echo {
    uint8_t type, code;
    uint16_t csum, id, seq;
} __attribute__((packed));

struct udp_hdr {
    uint16_t sport, dport, len, csum;
} __attribute__((packed));

struct tcp_hdr {
    uint16_t sport, dport;
    uint32_t seq, ack;
    uint8_t off, flags;
    uint16_t win, csum, urg;
} __attribute__((packed));

static inline uint16_t net16(uint16_t v) { return __builtin_bswap16(v); }
static inline uint32_t net32(uint32_t v) { return __builtin_bswap32(v); }

/* ---- checksums (RFC 1071), over big-endian 16-bit words ---- */

static inline uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (; len > 1; p += 2, len -= 2)
        sum += (uint32_t)p[0] << 8 | p[1];
    if (len)
        sum += (uint32_t)p[0] << 8;
    return sum;
}

static inline uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static inline uint32_t pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, uint32_t len)
{
    return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}

/* Records why (n->err) and returns false. */
bool net_fail(struct net *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* IPv4 to dst: the L4 payload area of a transmit slot, or NULL (no MAC known yet: an ARP
 * request went out instead; no slot); then the header and the frame go out. */
uint8_t *net_ip_begin(struct net *n, uint32_t dst);
bool net_ip_commit(struct net *n, uint8_t *l4, uint8_t proto, uint32_t dst, size_t l4_len);
bool net_resolve(struct net *n, uint32_t dst);  /* waits for dst's next hop's MAC if unknown */
void net_rx_frame(struct net *n, const uint8_t *f, uint32_t len);                     /* net_ip.c */
void net_tcp_input(struct net *n, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t len); /* net_tcp.c */

#endif
