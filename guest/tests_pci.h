/* What the virtio-pci tests share (tests_pci.c: enumeration, BARs, capabilities, MSI-X, INTx;
 * tests_pci_hostile.c: drivers that break the transport's rules): which device a test drives,
 * and one request on it.
 *
 * A test sends requests only to a type it knows a harmless request for: virtio-rng (64 random
 * bytes on the requestq) or virtio-console (a line on transmitq0), rng preferred; without one on
 * PCI it SKIPs. The other virtio-pci functions (blk, net, balloon) are looked at only through
 * their PCI header, BARs and capabilities; a function of a type this guest does not know
 * (virtio_dev_known) is never touched after discovery. */
#ifndef GUEST_TESTS_PCI_H
#define GUEST_TESTS_PCI_H

#include "pci.h"
#include "virtio.h"

#define IO_TIMEOUT (2000 * MS)
#define VERSION_1 BIT64(VIRTIO_F_VERSION_1)

/* Page i (0..3) of a block allocated on first use. */
uint8_t *pcitest_buf(unsigned i);

/* rng or console: the types pcitest_request can drive. */
bool pcitest_drivable(const struct vdev *d);
/* The first virtio-pci device with this ID, or NULL. */
struct vdev *pcitest_find(uint32_t id);
/* The device a test drives: the virtio-pci rng, else the virtio-pci console; NULL: none. */
struct vdev *pcitest_dev(void);
enum test_result pcitest_no_device(void);
/* The virtio device at PCI function f, or NULL (discovery leaves out the types this guest does
 * not know). */
struct vdev *pcitest_vdev_of(const struct pci_func *f);

/* The queue a request goes to: rng's requestq (0), the console's transmitq0 (1). */
unsigned pcitest_queue(const struct vdev *d);
/* One request on a pcitest_drivable device that is up (rng: 64 random bytes; console: a line),
 * its completion seen by polling the used ring; the caller checks the interrupt side. */
enum test_result pcitest_request(struct vdev *d, const char *what);
/* A request whose completion must also come with an interrupt on *counter. */
enum test_result pcitest_request_irq(struct vdev *d, volatile unsigned *counter, const char *what);
/* vdev_up (VERSION_1 only), then pcitest_request. */
enum test_result pcitest_up_and_request(struct vdev *d, const char *what);
/* Interrupts are taken only while a wait hlts: lets those still on their way from earlier
 * (polled) requests arrive before a test counts. */
void pcitest_settle(void);

#endif
