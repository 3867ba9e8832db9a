/* TCP for the test guest's network stack: one connection at a time, client (net_tcp_connect)
 * or server (net_tcp_listen, net_tcp_accept); one segment in flight, resent until acknowledged;
 * data received in order only (anything else is answered with the ACK we are at). Enough
 * against slirp, a reliable peer. */
#include "net_wire.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_MSS 1460

static bool tcp_output(struct net *n, uint8_t flags, const void *data, uint32_t len, uint32_t seq)
{
    struct tcp_conn *c = &n->tcp;
    uint8_t *p = net_ip_begin(n, c->rip);
    if (!p)
        return false;
    uint32_t hl = sizeof(struct tcp_hdr) + (flags & TCP_SYN ? 4 : 0);
    struct tcp_hdr *t = (struct tcp_hdr *)p;
    *t = (struct tcp_hdr){net16(c->lport), net16(c->rport), net32(seq), net32(flags & TCP_ACK ? c->rcv_nxt : 0),
                          (uint8_t)(hl / 4 << 4), flags, net16((uint16_t)(sizeof(c->rx) - c->rx_len)), 0, 0};
    if (flags & TCP_SYN) {
        static const uint8_t mss[4] = {2, 4, TCP_MSS >> 8, TCP_MSS & 0xff};
        memcpy(p + sizeof(*t), mss, 4);
    }
    if (len)
        memcpy(p + hl, data, len);
    t->csum = net16(csum_fold(csum_add(pseudo_sum(n->ip, c->rip, IP_TCP, hl + len), p, hl + len)));
    return net_ip_commit(n, p, IP_TCP, c->rip, hl + len);
}

static void tcp_ack_now(struct net *n) { tcp_output(n, TCP_ACK, NULL, 0, n->tcp.snd_nxt); }

static bool seq_after(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }

void net_tcp_input(struct net *n, uint32_t src, uint32_t dst, const uint8_t *p, uint32_t len)
{
    struct tcp_conn *c = &n->tcp;
    const struct tcp_hdr *t = (const struct tcp_hdr *)p;
    uint32_t hl = len >= sizeof(*t) ? (uint32_t)(t->off >> 4) * 4 : 0;
    if (hl < sizeof(*t) || hl > len || csum_fold(csum_add(pseudo_sum(src, dst, IP_TCP, len), p, len))) {
        n->st.rx_bad++;
        return;
    }
    uint32_t seq = net32(t->seq), ack = net32(t->ack), dlen = len - hl;
    uint8_t fl = t->flags;
    if (c->state == TCP_CLOSED || net16(t->dport) != c->lport ||
        (c->state != TCP_LISTEN && (src != c->rip || net16(t->sport) != c->rport))) {
        n->st.rx_ignored++;
        return;
    }
    if (fl & TCP_RST) {
        if (c->state != TCP_LISTEN)
            c->reset = true;
        return;
    }
    switch (c->state) {
    case TCP_LISTEN:
        if (!(fl & TCP_SYN) || (fl & TCP_ACK)) {
            n->st.rx_ignored++;
            return;
        }
        c->rip = src;
        c->rport = net16(t->sport);
        c->rcv_nxt = seq + 1;
        c->snd_una = (uint32_t)rdtsc();
        c->snd_nxt = c->snd_una + 1;
        c->state = TCP_SYN_RCVD;
        tcp_output(n, TCP_SYN | TCP_ACK, NULL, 0, c->snd_una);
        return;
    case TCP_SYN_RCVD:
        if (fl & TCP_SYN) { /* the peer resends its SYN: our SYN-ACK was lost */
            tcp_output(n, TCP_SYN | TCP_ACK, NULL, 0, c->snd_una);
            return;
        }
        if (!(fl & TCP_ACK) || ack != c->snd_nxt)
            return;
        c->snd_una = ack;
        c->state = TCP_ESTABLISHED;
        break;
    case TCP_SYN_SENT:
        if ((fl & (TCP_SYN | TCP_ACK)) != (TCP_SYN | TCP_ACK) || ack != c->snd_nxt) {
            n->st.rx_ignored++;
            return;
        }
        c->rcv_nxt = seq + 1;
        c->snd_una = ack;
        c->state = TCP_ESTABLISHED;
        tcp_ack_now(n);
        return;
    default:
        if (fl & TCP_SYN) { /* a resent SYN-ACK: our ACK was lost */
            tcp_ack_now(n);
            return;
        }
        break;
    }
    if ((fl & TCP_ACK) && seq_after(ack, c->snd_una) && !seq_after(ack, c->snd_nxt))
        c->snd_una = ack;
    if (dlen || (fl & TCP_FIN)) {
        /* In order only: anything else is answered with the ACK we are at, and resent. */
        if (seq == c->rcv_nxt && !c->fin_rcvd) {
            uint32_t take = dlen < sizeof(c->rx) - c->rx_len ? dlen : (uint32_t)sizeof(c->rx) - c->rx_len;
            memcpy(c->rx + c->rx_len, p + hl, take);
            c->rx_len += take;
            c->rcv_nxt += take;
            if ((fl & TCP_FIN) && take == dlen) {
                c->rcv_nxt++;
                c->fin_rcvd = true;
            }
        }
        tcp_ack_now(n);
    }
}

static bool tcp_acked(struct net *n, void *arg)
{
    (void)arg;
    return n->tcp.snd_una == n->tcp.snd_nxt || n->tcp.reset;
}

/* Sends one segment (SYN, data, FIN) and resends it until it is acknowledged. */
static bool tcp_push(struct net *n, uint8_t flags, const void *data, uint32_t len)
{
    struct tcp_conn *c = &n->tcp;
    c->snd_nxt = c->snd_una + len + !!(flags & TCP_SYN) + !!(flags & TCP_FIN);
    for (unsigned t = 0; t < TRIES; t++) {
        tcp_output(n, flags, data, len, c->snd_una); /* if it could not go out, the next try resends it */
        if (net_wait(n, tcp_acked, NULL, RETRY_NS))
            break;
    }
    if (c->reset)
        return net_fail(n, "connection reset by %u.%u.%u.%u:%u", IP4_ARGS(c->rip), c->rport);
    return c->snd_una == c->snd_nxt ||
           net_fail(n, "segment (flags 0x%x, %u bytes) not acknowledged after %u tries", flags, len, TRIES);
}

bool net_tcp_connect(struct net *n, uint32_t dst, uint16_t dport, uint16_t sport)
{
    struct tcp_conn *c = &n->tcp;
    memset(c, 0, sizeof(*c));
    c->state = TCP_SYN_SENT;
    c->lport = sport;
    c->rport = dport;
    c->rip = dst;
    c->snd_una = (uint32_t)rdtsc();
    if (!net_resolve(n, dst) || !tcp_push(n, TCP_SYN, NULL, 0))
        return false;
    return c->state == TCP_ESTABLISHED || net_fail(n, "SYN acknowledged without a SYN-ACK");
}

void net_tcp_listen(struct net *n, uint16_t port)
{
    memset(&n->tcp, 0, sizeof(n->tcp));
    n->tcp.state = TCP_LISTEN;
    n->tcp.lport = port;
}

static bool tcp_established(struct net *n, void *arg)
{
    (void)arg;
    return n->tcp.state == TCP_ESTABLISHED || n->tcp.reset;
}

bool net_tcp_accept(struct net *n, uint64_t timeout_ns)
{
    if (!net_wait(n, tcp_established, NULL, timeout_ns))
        return net_fail(n, "no connection on TCP port %u within %lu s (state %u)", n->tcp.lport,
                        (unsigned long)(timeout_ns / (1000 * MS)), n->tcp.state);
    return !n->tcp.reset || net_fail(n, "connection reset during the handshake");
}

bool net_tcp_send(struct net *n, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        uint32_t k = len < TCP_MSS ? (uint32_t)len : TCP_MSS;
        if (!tcp_push(n, TCP_ACK | TCP_PSH, p, k))
            return false;
        p += k;
        len -= k;
    }
    return true;
}

static bool tcp_fin_or_reset(struct net *n, void *arg)
{
    (void)arg;
    return n->tcp.fin_rcvd || n->tcp.reset;
}

bool net_tcp_wait_fin(struct net *n, uint64_t timeout_ns)
{
    if (!net_wait(n, tcp_fin_or_reset, NULL, timeout_ns))
        return net_fail(n, "no FIN within %lu s (%u bytes received)", (unsigned long)(timeout_ns / (1000 * MS)),
                        n->tcp.rx_len);
    return !n->tcp.reset || net_fail(n, "connection reset (%u bytes received)", n->tcp.rx_len);
}

bool net_tcp_close(struct net *n)
{
    return tcp_push(n, TCP_FIN | TCP_ACK, NULL, 0);
}
