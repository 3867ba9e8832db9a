/* The test guest's virtio-net driver (see net.h): bring-up, the receive and transmit rings,
 * polling. The protocols are in net_ip.c, net_dhcp.c and net_tcp.c.
 *
 * Transmit: each frame is a chain of two device-readable buffers, the virtio-net header (all
 * zero: no checksum or segmentation offload) and the Ethernet frame, from one of NET_TX_SLOTS
 * slots. Receive: without MRG_RXBUF each buffer is a chain of two device-writable descriptors,
 * the header and room for a whole frame (legacy devices without ANY_LAYOUT want the header on
 * its own); with it, single descriptors of rx_buf_size bytes, a frame spanning num_buffers of
 * them. Every frame is copied out of its buffers, which go straight back to the device. */
#include "net_wire.h"

#define WAIT_STEP     (50 * MS)
#define TX_FRAME_OFF  16             /* the frame's offset in a transmit slot, after the header */
#define REASM_MAX     (NET_RX_BUFS * NET_RX_BUF_MAX)
#define HDR_NUM_BUFFERS 10           /* le16 in the 12-byte header: buffers the frame spans */

/* Allocated once: the allocator never reuses memory. */
static uint8_t *rx_pool, *tx_pool, *reasm;

bool net_fail(struct net *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(n->err, sizeof(n->err), fmt, ap);
    va_end(ap);
    return false;
}

/* ---- bring-up ---- */

bool net_init(struct net *n, struct vdev *d, const struct net_opts *o)
{
    if (!rx_pool) {
        rx_pool = alloc_pages(NET_RX_BUFS * NET_RX_BUF_MAX / PAGE_SIZE);
        tx_pool = alloc_pages(NET_TX_SLOTS * NET_RX_BUF_MAX / PAGE_SIZE);
        reasm = alloc_pages(REASM_MAX / PAGE_SIZE);
    }
    memset(n, 0, sizeof(*n));
    n->d = d;
    if (!rx_pool || !tx_pool || !reasm)
        return net_fail(n, "out of memory for the buffers");
    vdev_begin(d);
    uint64_t want = BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_NET_F_MAC) | BIT64(VIRTIO_NET_F_STATUS) |
                    BIT64(VIRTIO_NET_F_MTU) | (o->mrg ? BIT64(VIRTIO_NET_F_MRG_RXBUF) : 0);
    if (!vdev_set_features(d, d->offered & want))
        return net_fail(n, "features 0x%lx refused (offered 0x%lx)", d->offered & want, d->offered);
    n->mrg = d->features & BIT64(VIRTIO_NET_F_MRG_RXBUF);
    /* virtio 1.1, 5.1.6: the 10-byte legacy header lacks num_buffers (5.1.6.1 legacy) */
    n->hdr_len = (d->features & BIT64(VIRTIO_F_VERSION_1)) || n->mrg ? 12 : 10;
    n->rx_buf_size = o->rx_buf_size;
    if (n->rx_buf_size > NET_RX_BUF_MAX || n->rx_buf_size < n->hdr_len + (n->mrg ? 1 : ETH_FRAME_MAX))
        return net_fail(n, "receive buffers of %u bytes cannot work here", n->rx_buf_size);
    if (!vq_setup(d, 0, 0) || !vq_setup(d, 1, 0))
        return net_fail(n, "queue setup failed");
    vdev_driver_ok(d);
    uint8_t st = vdev_status(d);
    if (st & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED))
        return net_fail(n, "Status 0x%x after DRIVER_OK", st);
    n->rx = &d->vq[0];
    n->tx = &d->vq[1];
    if (d->features & BIT64(VIRTIO_NET_F_MAC)) {
        uint32_t gen;
        do { /* a multi-byte field is read within one configuration generation */
            gen = vdev_generation(d);
            for (unsigned i = 0; i < 6; i++)
                n->mac[i] = (uint8_t)vdev_config_read(d, VNET_CFG_MAC + i, 1);
        } while (gen != vdev_generation(d));
    } else {
        static const uint8_t local[6] = {0x02, 0x6d, 0x69, 0x63, 0x61, 0x01}; /* locally administered */
        memcpy(n->mac, local, 6);
    }
    unsigned nrx = n->rx->num / (n->mrg ? 1 : 2); /* descriptors per buffer */
    nrx = nrx < NET_RX_BUFS ? nrx : NET_RX_BUFS;
    for (unsigned i = 0; i < nrx; i++)
        n->rx_free[n->nrx_free++] = rx_pool + (size_t)i * NET_RX_BUF_MAX;
    n->nrx_bufs = nrx;
    unsigned ntx = n->tx->num / 2 < NET_TX_SLOTS ? n->tx->num / 2 : NET_TX_SLOTS;
    for (unsigned i = 0; i < ntx; i++)
        n->tx_free[n->ntx_free++] = tx_pool + (size_t)i * NET_RX_BUF_MAX;
    if (o->post_rx)
        net_post_rx(n);
    return true;
}

void net_post_rx(struct net *n)
{
    bool added = false;
    n->rx_on = true;
    while (n->nrx_free) {
        uint8_t *b = n->rx_free[n->nrx_free - 1];
        struct vbuf v[2] = {{virt_to_phys(b), n->rx_buf_size}};
        unsigned nb = 1;
        if (!n->mrg) {
            v[0].len = n->hdr_len;
            v[1] = (struct vbuf){virt_to_phys(b + n->hdr_len), n->rx_buf_size - n->hdr_len};
            nb = 2;
        }
        if (vq_add(n->rx, v, 0, nb, b, false) < 0)
            break;
        n->nrx_free--;
        added = true;
    }
    if (added)
        vq_kick(n->rx);
}

/* ---- transmit ---- */

static void tx_reclaim(struct net *n)
{
    void *tok;
    while (vq_pop(n->tx, &tok, NULL))
        n->tx_free[n->ntx_free++] = tok;
}

uint8_t *net_tx_begin(struct net *n, const uint8_t dst[6], uint16_t ethertype)
{
    tx_reclaim(n);
    if (!n->ntx_free && vq_wait_used(n->tx, 1, 1000 * MS))
        tx_reclaim(n);
    if (!n->ntx_free) {
        net_fail(n, "no free transmit slot: the device used none of %u frames within 1 s", NET_TX_SLOTS);
        return NULL;
    }
    uint8_t *s = n->tx_free[--n->ntx_free];
    memset(s, 0, n->hdr_len); /* no offloads; num_buffers is 0 on transmit */
    struct eth_hdr *eh = (struct eth_hdr *)(s + TX_FRAME_OFF);
    memcpy(eh->dst, dst, 6);
    memcpy(eh->src, n->mac, 6);
    eh->type = net16(ethertype);
    n->tx_cur = s;
    return s + TX_FRAME_OFF + ETH_HLEN;
}

bool net_tx_commit(struct net *n, size_t payload_len)
{
    uint8_t *s = n->tx_cur;
    n->tx_cur = NULL;
    struct vbuf b[2] = {{virt_to_phys(s), n->hdr_len},
                        {virt_to_phys(s + TX_FRAME_OFF), (uint32_t)(ETH_HLEN + payload_len)}};
    if (vq_add(n->tx, b, 2, 0, s, false) < 0) {
        n->tx_free[n->ntx_free++] = s;
        return net_fail(n, "transmit queue full");
    }
    vq_kick(n->tx);
    n->st.tx_frames++;
    return true;
}

/* ---- receive ---- */

/* Takes every complete frame out of the used ring (a merged frame's buffers may still be on
 * their way: it waits for the next call), handles it, and gives the buffers back. */
static void rx_poll(struct net *n)
{
    struct virtq *vq = n->rx;
    while (vq_has_used(vq)) {
        uint16_t ready = (uint16_t)(vq_used_idx(vq) - vq->last_used);
        barrier();
        struct vring_used_elem e = vq->used->ring[vq->last_used & (vq->num - 1)];
        const uint8_t *first = e.id < vq->num ? vq->token[e.id] : NULL;
        bool bad = !first || e.len < n->hdr_len || e.len > n->rx_buf_size;
        uint16_t nbufs = 1;
        if (!bad && n->mrg) {
            nbufs = (uint16_t)(first[HDR_NUM_BUFFERS] | first[HDR_NUM_BUFFERS + 1] << 8);
            bad = nbufs == 0 || nbufs > NET_RX_BUFS;
        }
        if (bad)
            nbufs = 1;
        else if (nbufs > ready)
            break;
        uint32_t len = 0;
        for (uint16_t k = 0; k < nbufs; k++) {
            void *tok;
            uint32_t l;
            if (!vq_pop(vq, &tok, &l)) {
                bad = true;
                break;
            }
            uint32_t skip = k ? 0 : n->hdr_len;
            if (l < skip || l > n->rx_buf_size) {
                bad = true;
            } else if (!bad) {
                memcpy(reasm + len, (uint8_t *)tok + skip, l - skip);
                len += l - skip;
            }
            n->rx_free[n->nrx_free++] = tok;
        }
        n->st.rx_frames++;
        if (nbufs > 1)
            n->st.rx_merged++;
        if (nbufs > n->st.rx_max_bufs)
            n->st.rx_max_bufs = nbufs;
        if (bad)
            n->st.rx_bad++;
        else
            net_rx_frame(n, reasm, len);
    }
    if (n->rx_on)
        net_post_rx(n);
}

void net_poll(struct net *n)
{
    rx_poll(n);
    tx_reclaim(n);
}

struct wait_ctx {
    struct net *n;
    bool (*cond)(struct net *, void *);
    void *arg;
};

static bool wait_cond(void *p)
{
    struct wait_ctx *w = p;
    net_poll(w->n);
    return w->cond(w->n, w->arg);
}

bool net_wait(struct net *n, bool (*cond)(struct net *, void *), void *arg, uint64_t timeout_ns)
{
    struct wait_ctx w = {n, cond, arg};
    return poll_until(wait_cond, &w, timeout_ns, WAIT_STEP);
}
