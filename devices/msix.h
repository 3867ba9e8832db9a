/* MSI-X for an emulated PCI device: the capability, the vector table and the pending-bit array
 * (served from one of the device's BARs), one GSI with an MSI route and an irqfd per vector.
 * Masked vectors (per entry, or the function mask) collect a pending bit instead of firing, and
 * fire when unmasked. */
#ifndef MICA_MSIX_H
#define MICA_MSIX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct machine;
struct pci_dev;

#define MSIX_MAX_VECTORS 64
#define MSIX_ENTRY_SIZE 16

struct msix_entry {
	uint32_t addr_lo, addr_hi, data, ctrl;
};

/* lock guards the table, the PBA, enable and function mask: a leaf below the device's lock
 * (vectors fire with it held) and the PCI bus lock (the control word is config space). */
struct msix {
	struct machine *machine;
	struct pci_dev *pdev;
	pthread_mutex_t lock;
	uint16_t nvec;
	uint8_t cap;                /* config-space offset of the capability */
	bool enabled, fmask;
	struct msix_entry table[MSIX_MAX_VECTORS];
	uint64_t pba;               /* one bit per vector */
	int gsi[MSIX_MAX_VECTORS];
	int irqfd[MSIX_MAX_VECTORS];
	bool routed[MSIX_MAX_VECTORS]; /* the GSI's route matches the table entry */
};

/* Adds the capability (table at table_off, PBA at pba_off, both in BAR `bar`) and sets up one
 * GSI and irqfd per vector. */
int msix_init(struct msix *m, struct pci_dev *pdev, struct machine *mach, uint16_t nvec, int bar,
	      uint32_t table_off, uint32_t pba_off);
void msix_destroy(struct msix *m);
/* The PCI device's config hook: the capability's control word was written. */
void msix_cfg_written(struct msix *m, uint32_t off, uint32_t len);
/* Table and PBA accesses; off is relative to the table (or PBA) start. */
void msix_table_read(struct msix *m, uint64_t off, void *data, uint32_t len);
void msix_table_write(struct msix *m, uint64_t off, const void *data, uint32_t len);
void msix_pba_read(struct msix *m, uint64_t off, void *data, uint32_t len);
bool msix_enabled(struct msix *m);
/* Signals vector v: delivered now, or left pending while masked. Out-of-range vectors are
 * ignored. */
void msix_notify(struct msix *m, uint16_t v);

/* Snapshots: the vector table and the PBA (lock taken inside). A restore runs after the PCI
 * function's config space was restored (pci_dev_restore): enable and function mask are read
 * from its control word there. It checks the table size, drops reserved control bits as a
 * guest write does, refuses pending bits beyond the table, routes each unmasked vector's GSI to
 * its entry (as a guest's unmask and first interrupt would) and delivers what is pending and
 * unmasked. who names the device in e's message. */
struct snap_writer;
struct snap_cursor;
struct err;
void msix_save(struct msix *m, struct snap_writer *w);
int msix_restore(struct msix *m, struct snap_cursor *c, const char *who, struct err *e);

#endif
