/* The test guest's virtio-net driver (net.c) and a minimal IPv4 stack (net_ip.c: Ethernet,
 * ARP requests, replies and answers for our address, IPv4, ICMP echo, UDP; net_dhcp.c: a DHCP
 * client; net_tcp.c: one TCP connection at a time, client or server, stop-and-wait with a
 * simple retry). net_wire.h is what those files share.
 *
 * Single-threaded and polled: every wait (net_wait) processes received frames and reclaims
 * transmitted ones; the device's interrupts only wake the wait. Addresses are in host byte
 * order in the API and in struct net. */
#ifndef GUEST_NET_H
#define GUEST_NET_H

#include "virtio.h"

/* Feature bits and configuration layout (virtio 1.1, 5.1.3, 5.1.4) */
#define VIRTIO_NET_F_MTU       3
#define VIRTIO_NET_F_MAC       5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS    16
#define VNET_CFG_MAC    0
#define VNET_CFG_STATUS 6
#define VNET_CFG_MTU    10
#define VIRTIO_NET_S_LINK_UP 1

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))
#define IP4_ARGS(ip) (unsigned)((ip) >> 24), (unsigned)((ip) >> 16 & 0xff), (unsigned)((ip) >> 8 & 0xff), \
    (unsigned)((ip) & 0xff)                                     /* for printf("%u.%u.%u.%u") */
#define MAC_FMT "%02x:%02x:%02x:%02x:%02x:%02x"
#define MAC_ARGS(m) (m)[0], (m)[1], (m)[2], (m)[3], (m)[4], (m)[5]

#define NET_RX_BUFS    64
#define NET_RX_BUF_MAX 2048
#define NET_TX_SLOTS   32
#define NET_ARP_CACHE  8
#define NET_ARP_LOG    8
#define NET_UDP_MAX    1500
#define NET_TCP_RX_MAX 4096

struct net_opts {
    bool mrg;              /* negotiate VIRTIO_NET_F_MRG_RXBUF when offered */
    uint32_t rx_buf_size;  /* bytes per receive buffer (with MRG_RXBUF, frames may span several) */
    bool post_rx;          /* post the receive buffers at once (else net_post_rx later) */
};

struct net_stats {
    unsigned rx_frames, rx_merged, rx_max_bufs, tx_frames;
    unsigned rx_bad;       /* short, bad checksum, bad num_buffers */
    unsigned rx_ignored;   /* not for us, or nobody waiting */
    unsigned arp_requests_answered, arp_replies;
};

enum tcp_state { TCP_CLOSED, TCP_LISTEN, TCP_SYN_SENT, TCP_SYN_RCVD, TCP_ESTABLISHED };

struct tcp_conn {
    enum tcp_state state;
    uint16_t lport, rport;
    uint32_t rip;
    uint32_t snd_una, snd_nxt, rcv_nxt;
    bool fin_rcvd, reset;
    uint8_t rx[NET_TCP_RX_MAX];
    uint32_t rx_len;
};

struct net {
    struct vdev *d;
    struct virtq *rx, *tx;
    uint8_t mac[6];
    unsigned hdr_len;      /* virtio-net header: 12 (VERSION_1 or MRG_RXBUF) or 10 */
    bool mrg;
    uint32_t rx_buf_size;
    uint32_t ip, mask, router, dns, dhcp_server, lease_s;
    struct { uint32_t ip; uint8_t mac[6]; } arp[NET_ARP_CACHE];
    uint32_t arp_log[NET_ARP_LOG]; /* senders of the ARP replies received, in order */
    unsigned narp_log;
    /* ping: the reply awaited */
    uint16_t ping_id, ping_seq;
    bool ping_got;
    uint32_t ping_len;
    uint8_t ping_data[NET_UDP_MAX];
    /* UDP: one bound port, a one-datagram mailbox */
    uint16_t udp_port;
    bool udp_full;
    uint32_t udp_src, udp_len;
    uint16_t udp_sport;
    uint8_t udp_data[NET_UDP_MAX];
    struct tcp_conn tcp;
    struct net_stats st;
    bool rx_on;            /* receive buffers are posted (and re-posted once used) */
    uint8_t *rx_free[NET_RX_BUFS], *tx_free[NET_TX_SLOTS];
    unsigned nrx_bufs, nrx_free, ntx_free;
    uint8_t *tx_cur;       /* the slot net_tx_begin handed out */
    char err[160];         /* why the last call failed */
};

/* Resets and brings the device up: features (MAC, STATUS, MTU, VERSION_1, MRG_RXBUF as asked),
 * queues 0 (receive) and 1 (transmit), DRIVER_OK, the MAC from the configuration. */
bool net_init(struct net *n, struct vdev *d, const struct net_opts *o);
void net_post_rx(struct net *n);          /* posts every free receive buffer and kicks */
void net_poll(struct net *n);             /* handles what arrived, reclaims sent slots */
/* Polls until cond(n, arg) or the timeout; interrupts wake it, it re-checks every 50 ms. */
bool net_wait(struct net *n, bool (*cond)(struct net *, void *), void *arg, uint64_t timeout_ns);

/* Raw frames: a payload area after the Ethernet header, then the frame goes out. */
uint8_t *net_tx_begin(struct net *n, const uint8_t dst[6], uint16_t ethertype);
bool net_tx_commit(struct net *n, size_t payload_len);

bool net_arp_request(struct net *n, uint32_t ip);                /* sends one */
bool net_arp_resolve(struct net *n, uint32_t ip, uint8_t mac[6]); /* asks until a reply */
bool net_dhcp(struct net *n);
/* Echo request of len payload bytes; true when the reply with the same payload came back. */
bool net_ping(struct net *n, uint32_t dst, uint16_t seq, uint32_t len);

void net_udp_bind(struct net *n, uint16_t port);
bool net_udp_send(struct net *n, uint32_t dst, uint16_t sport, uint16_t dport, const void *data, size_t len);
bool net_udp_wait(struct net *n, uint64_t timeout_ns); /* a datagram in the mailbox */

bool net_tcp_connect(struct net *n, uint32_t dst, uint16_t dport, uint16_t sport);
void net_tcp_listen(struct net *n, uint16_t port);
bool net_tcp_accept(struct net *n, uint64_t timeout_ns);
bool net_tcp_send(struct net *n, const void *data, size_t len); /* waits for the ACK */
bool net_tcp_wait_fin(struct net *n, uint64_t timeout_ns);     /* data is in n->tcp.rx */
bool net_tcp_close(struct net *n);                              /* our FIN, acknowledged */

#endif
