/* The test guest's virtio-blk driver (device ID 2): bring-up, one request, and a job that keeps
 * up to a given number of requests in flight on one queue. Shared by the tests (tests_blk.c)
 * and the benchmark (bench_blk.c). */
#ifndef GUEST_BLK_H
#define GUEST_BLK_H

#include "virtio.h"

#define BLK_F_SIZE_MAX     1
#define BLK_F_SEG_MAX      2
#define BLK_F_RO           5
#define BLK_F_BLK_SIZE     6
#define BLK_F_FLUSH        9
#define BLK_F_MQ           12
#define BLK_F_DISCARD      13
#define BLK_F_WRITE_ZEROES 14

#define BLK_T_IN           0
#define BLK_T_OUT          1
#define BLK_T_FLUSH        4
#define BLK_T_GET_ID       8
#define BLK_T_DISCARD      11
#define BLK_T_WRITE_ZEROES 13

#define BLK_S_OK     0
#define BLK_S_IOERR  1
#define BLK_S_UNSUPP 2

/* struct virtio_blk_config offsets */
#define BCFG_CAPACITY        0
#define BCFG_SIZE_MAX        8
#define BCFG_SEG_MAX         12
#define BCFG_BLK_SIZE        20
#define BCFG_NUM_QUEUES      34
#define BCFG_DISCARD_ALIGN   44
#define BCFG_WZ_MAY_UNMAP    56

#define BLK_WZ_FLAG_UNMAP    1

#define SECTOR 512u
#define BLK_IO_TIMEOUT_NS (5000 * 1000000UL)
#define BLK_JOB_MAX_DEPTH 64

struct blk_hdr {
    uint32_t type;
    uint32_t ioprio;
    uint64_t sector;
};

/* One request's memory: header and status byte (device-visible), a data buffer, and what the
 * request in flight covers. */
struct blk_slot {
    struct blk_hdr *hdr;
    volatile uint8_t *status;
    uint8_t *buf;
    uint64_t sector;
    uint32_t nsec;
};

struct vdev *blk_find(void);                          /* the first virtio-blk, or NULL */
/* Reset, features offered & (want | VERSION_1), queues 0 .. nq-1 at their maximum size,
 * DRIVER_OK. */
bool blk_up(struct vdev *d, uint64_t want, unsigned nq);
uint64_t blk_capacity(struct vdev *d);                /* sectors, read consistently */
static inline bool blk_ro(const struct vdev *d) { return d->offered & BIT64(BLK_F_RO); }

/* n slots: headers and status bytes in one page (n <= 64), buffers of buf_bytes each in one
 * contiguous block (never reused memory: zero, not yet touched). */
bool blk_slots_alloc(struct blk_slot *slots, unsigned n, size_t buf_bytes);

/* Queues one request in slot s: header, optional device-readable data, optional
 * device-writable data, status byte. No notification. */
bool blk_add(struct virtq *vq, struct blk_slot *s, uint32_t type, uint64_t sector, const void *out,
             uint32_t out_len, void *in, uint32_t in_len);
/* Waits for a used entry: interrupts reach the BSP only, so an AP re-checks every 200 us. */
bool blk_wait_used(struct virtq *vq, uint64_t timeout_ns);

/* Whole-sector reads or writes on one queue, up to depth requests in flight: next() describes
 * the next request in a free slot (sector, nsec; the data of a write) and returns its type,
 * BLK_T_IN or BLK_T_OUT, or -1 when there are no more; each completion is checked (status OK,
 * used length) and handed to done() (NULL: nothing more to check), which may fail the job.
 * Requests added together get one vq_kick. Failures go to err; nothing is printed, so any CPU
 * may run a job. */
struct blk_job {
    struct virtq *vq;
    struct blk_slot *slots;
    unsigned depth;                /* <= BLK_JOB_MAX_DEPTH */
    int (*next)(struct blk_job *j, struct blk_slot *s);
    bool (*done)(struct blk_job *j, struct blk_slot *s);
    bool (*wait)(struct virtq *vq, uint64_t timeout_ns); /* NULL: blk_wait_used */
    uint64_t t0, t1;               /* TSC at start and end */
    unsigned requests;             /* added (accumulates over runs) */
    bool ok;
    char err[160];
};

bool blk_job_run(struct blk_job *j);

#endif
