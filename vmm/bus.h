/* The address-space bus: devices claim PIO or MMIO ranges; vCPU exits are dispatched by address.
 *
 * Ranges are kept sorted and found by binary search. Registration may happen while vCPUs run
 * (PCI BARs move), so lookups take a read lock; callbacks run without the bus lock held and
 * must do their own locking against other threads. */
#ifndef MICA_BUS_H
#define MICA_BUS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct bus_ops {
	/* off is relative to the range's base; len is 1, 2, 4 or 8; data is little-endian. */
	void (*read)(void *opaque, uint64_t off, void *data, uint32_t len);
	void (*write)(void *opaque, uint64_t off, const void *data, uint32_t len);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
	const char *name;
};

#define BUS_LOGGED_MAX 64

struct bus {
	const char *name;          /* "pio" or "mmio", for messages */
	pthread_rwlock_t lock;
	struct bus_range *ranges;
	size_t n, cap;
	atomic_ulong unclaimed_reads;
	atomic_ulong unclaimed_writes;
	/* Addresses already reported at debug level, so each is logged once. */
	pthread_mutex_t logged_lock;
	uint64_t logged[BUS_LOGGED_MAX];
	unsigned nlogged;
};

int bus_init(struct bus *bus, const char *name);
void bus_destroy(struct bus *bus);
/* -EEXIST if the range overlaps one already registered, -EINVAL if empty or wrapping. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque, const char *name);
int bus_unregister(struct bus *bus, uint64_t base, void *opaque);

/* Dispatch one access. An access no device claims reads as all-ones and is dropped on write.
 * Returns true when a device claimed it. */
bool bus_read(struct bus *bus, uint64_t addr, void *data, uint32_t len);
bool bus_write(struct bus *bus, uint64_t addr, const void *data, uint32_t len);

#endif
