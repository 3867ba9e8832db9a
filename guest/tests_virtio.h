/* What the virtio device tests (tests_virtio.c) and the hostile-driver tests
 * (tests_virtio_hostile.c) share: the devices they drive, a page pool, and one request that
 * shows a device works.
 *
 * The tests drive only virtio-rng and virtio-console, the first of each found (virtio-mmio slots
 * before virtio-pci functions), on any transport; a test whose device is missing SKIPs. Other
 * devices (blk, net, balloon, or a type this guest does not know) may sit next to them: no test
 * here touches them. */
#ifndef GUEST_TESTS_VIRTIO_H
#define GUEST_TESTS_VIRTIO_H

#include "virtio.h"

#define IO_TIMEOUT (2000 * MS)

#define STD_FEATURES (BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_F_INDIRECT_DESC) | BIT64(VIRTIO_F_EVENT_IDX))

/* Pool pages: 0..63 batches of requests, PG_MISC.. (8) single / indirect / hostile requests,
 * PG_CON.. (8) the console. */
#define PG_MISC 64
#define PG_CON  72
uint8_t *vtest_page(unsigned i);   /* NULL when out of memory */
static inline uint64_t pa(const void *p) { return virt_to_phys(p); }

struct vdev *vtest_rng(void);      /* the first virtio-rng, or NULL */
struct vdev *vtest_con(void);      /* the first virtio-console, or NULL */
/* One request on an rng or console that is up (rng: 64 bytes; console: a line on transmitq0),
 * completed with a used-buffer interrupt. */
enum test_result vtest_works(struct vdev *d, const char *what);

#endif
