#include "vmm/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/log.h"

int bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
	pthread_rwlock_init(&bus->lock, NULL);
	pthread_mutex_init(&bus->logged_lock, NULL);
	return 0;
}

void bus_destroy(struct bus *bus)
{
	free(bus->ranges);
	bus->ranges = NULL;
	bus->n = bus->cap = 0;
	pthread_rwlock_destroy(&bus->lock);
	pthread_mutex_destroy(&bus->logged_lock);
}

/* Index of the first range whose base is greater than addr. */
static size_t upper_bound(const struct bus *bus, uint64_t addr)
{
	size_t lo = 0, hi = bus->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (bus->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque, const char *name)
{
	size_t i;
	int err = 0;

	if (!len || base + len - 1 < base)
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	i = upper_bound(bus, base);
	if ((i > 0 && bus->ranges[i - 1].base + bus->ranges[i - 1].len > base) ||
	    (i < bus->n && bus->ranges[i].base <= base + len - 1)) {
		err = -EEXIST;
		goto out;
	}
	if (bus->n == bus->cap) {
		size_t cap = bus->cap ? bus->cap * 2 : 16;
		struct bus_range *r = realloc(bus->ranges, cap * sizeof(*r));

		if (!r) {
			err = -ENOMEM;
			goto out;
		}
		bus->ranges = r;
		bus->cap = cap;
	}
	memmove(&bus->ranges[i + 1], &bus->ranges[i], (bus->n - i) * sizeof(bus->ranges[0]));
	bus->ranges[i] = (struct bus_range){ base, len, ops, opaque, name };
	bus->n++;
out:
	pthread_rwlock_unlock(&bus->lock);
	return err;
}

int bus_unregister(struct bus *bus, uint64_t base, void *opaque)
{
	int err = -ENOENT;

	pthread_rwlock_wrlock(&bus->lock);
	for (size_t i = 0; i < bus->n; i++) {
		if (bus->ranges[i].base == base && bus->ranges[i].opaque == opaque) {
			memmove(&bus->ranges[i], &bus->ranges[i + 1],
				(bus->n - i - 1) * sizeof(bus->ranges[0]));
			bus->n--;
			err = 0;
			break;
		}
	}
	pthread_rwlock_unlock(&bus->lock);
	return err;
}

/* Finds the range holding [addr, addr + len). An access straddling a range's end is unclaimed. */
static bool bus_find(struct bus *bus, uint64_t addr, uint32_t len, struct bus_range *out)
{
	bool found = false;
	size_t i;

	pthread_rwlock_rdlock(&bus->lock);
	i = upper_bound(bus, addr);
	if (i > 0) {
		const struct bus_range *r = &bus->ranges[i - 1];

		if (addr - r->base < r->len && len <= r->len - (addr - r->base)) {
			*out = *r;
			found = true;
		}
	}
	pthread_rwlock_unlock(&bus->lock);
	return found;
}

static void log_unclaimed(struct bus *bus, uint64_t addr, uint32_t len, bool write)
{
	bool first = true;

	if (log_get_level() < LOG_DEBUG)
		return;
	pthread_mutex_lock(&bus->logged_lock);
	for (unsigned i = 0; i < bus->nlogged && i < BUS_LOGGED_MAX; i++)
		if (bus->logged[i] == addr)
			first = false;
	if (first && bus->nlogged < BUS_LOGGED_MAX)
		bus->logged[bus->nlogged] = addr;
	if (first)
		bus->nlogged++;
	pthread_mutex_unlock(&bus->logged_lock);
	if (first && bus->nlogged <= BUS_LOGGED_MAX)
		pr_debug("unclaimed %s %s at 0x%llx, %u bytes", bus->name, write ? "write" : "read",
			 (unsigned long long)addr, len);
	else if (first && bus->nlogged == BUS_LOGGED_MAX + 1)
		pr_debug("more unclaimed %s addresses: no longer logged", bus->name);
}

bool bus_read(struct bus *bus, uint64_t addr, void *data, uint32_t len)
{
	struct bus_range r;

	if (bus_find(bus, addr, len, &r) && r.ops->read) {
		r.ops->read(r.opaque, addr - r.base, data, len);
		return true;
	}
	memset(data, 0xff, len);
	atomic_fetch_add_explicit(&bus->unclaimed_reads, 1, memory_order_relaxed);
	log_unclaimed(bus, addr, len, false);
	return false;
}

bool bus_write(struct bus *bus, uint64_t addr, const void *data, uint32_t len)
{
	struct bus_range r;

	if (bus_find(bus, addr, len, &r)) {
		if (r.ops->write)
			r.ops->write(r.opaque, addr - r.base, data, len);
		return true;
	}
	atomic_fetch_add_explicit(&bus->unclaimed_writes, 1, memory_order_relaxed);
	log_unclaimed(bus, addr, len, true);
	return false;
}
