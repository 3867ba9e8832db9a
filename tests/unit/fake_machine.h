/* A machine without KVM, for unit tests and fuzz targets of the devices that plug into one (the
 * UART, PCI, MSI-X, the virtio transports): real buses, guest RAM and an event loop, and a fake
 * interrupt controller that records what the devices ask of it. Header-only.
 *
 *   fm.irq_level[gsi]       the level each legacy line was last driven to
 *   fm.irqfds[]             eventfds tied to GSIs; fm_irqfd_count(gsi) reads (and clears) how
 *                           many times the device signalled one
 *   fm.ioeventfds[]         notification addresses registered (and not deregistered)
 *   fm.msi[gsi]             MSI routes (address, data)
 *   fm.exit_status / reason the first exit request
 *   fm.states[]             owners of snapshot state (obj, ops), in registration order
 *
 * Thread-safe as the real one is: every op takes fm.lock, a leaf. */
#ifndef MICA_TEST_FAKE_MACHINE_H
#define MICA_TEST_FAKE_MACHINE_H

#include <errno.h>
#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "vmm/bus.h"
#include "vmm/evloop.h"
#include "vmm/layout.h"
#include "vmm/machine.h"
#include "vmm/memory.h"
#include "vmm/util.h"

#define FM_GSIS      256
#define FM_FDS       128
#define FM_OWNED     64

struct fm_ioeventfd {
	struct machine_ioeventfd io;
	bool live;
};

struct fake_machine {
	struct machine m;
	struct bus pio, mmio;
	struct guest_mem mem;
	struct evloop loop;
	pthread_mutex_t lock;
	int irq_level[FM_GSIS];
	unsigned long irq_raises[FM_GSIS];   /* 0 -> 1 transitions of each line */
	struct { int fd; uint32_t gsi; } irqfds[FM_FDS];
	int nirqfds;
	struct fm_ioeventfd ioeventfds[FM_FDS];
	int nioeventfds;
	int next_msi;
	struct { uint64_t addr; uint32_t data; bool set; } msi[FM_GSIS];
	int exit_status;
	const char *exit_reason;           /* NULL: no exit requested */
	struct { void *obj; void (*destroy)(void *obj); } owned[FM_OWNED];
	int nowned;
	struct { void *obj; const struct snap_ops *ops; } states[FM_OWNED];
	int nstates;
};

static struct fake_machine *fm_of(struct machine *m)
{
	return container_of(m, struct fake_machine, m);
}

static int fm_set_irq_line(struct machine *m, uint32_t gsi, int level)
{
	struct fake_machine *f = fm_of(m);

	if (gsi >= FM_GSIS)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	if (level && !f->irq_level[gsi])
		f->irq_raises[gsi]++;
	f->irq_level[gsi] = level;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static int fm_irqfd(struct machine *m, int fd, uint32_t gsi, bool assign)
{
	struct fake_machine *f = fm_of(m);
	int err = 0;

	pthread_mutex_lock(&f->lock);
	if (!assign || f->nirqfds == FM_FDS)
		err = assign ? -ENOSPC : 0;
	else
		f->irqfds[f->nirqfds].fd = fd, f->irqfds[f->nirqfds++].gsi = gsi;
	pthread_mutex_unlock(&f->lock);
	return err;
}

static int fm_ioeventfd(struct machine *m, const struct machine_ioeventfd *io, bool assign)
{
	struct fake_machine *f = fm_of(m);
	int err = assign ? -ENOSPC : -ENOENT;

	pthread_mutex_lock(&f->lock);
	for (int i = 0; i < f->nioeventfds && !assign; i++) {
		struct fm_ioeventfd *e = &f->ioeventfds[i];

		if (e->live && e->io.fd == io->fd && e->io.addr == io->addr && e->io.pio == io->pio) {
			e->live = false;
			err = 0;
		}
	}
	for (int i = 0; i < f->nioeventfds && assign && err; i++) {
		if (!f->ioeventfds[i].live) {   /* a deassigned one's slot: reused */
			f->ioeventfds[i] = (struct fm_ioeventfd){ *io, true };
			err = 0;
		}
	}
	if (assign && err && f->nioeventfds < FM_FDS) {
		f->ioeventfds[f->nioeventfds++] = (struct fm_ioeventfd){ *io, true };
		err = 0;
	}
	pthread_mutex_unlock(&f->lock);
	return err;
}

static int fm_msi_alloc(struct machine *m)
{
	struct fake_machine *f = fm_of(m);
	int gsi;

	pthread_mutex_lock(&f->lock);
	gsi = f->next_msi < FM_GSIS ? f->next_msi++ : -ENOSPC;
	pthread_mutex_unlock(&f->lock);
	return gsi;
}

static int fm_msi_route(struct machine *m, uint32_t gsi, uint64_t addr, uint32_t data)
{
	struct fake_machine *f = fm_of(m);

	if (gsi >= FM_GSIS)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	f->msi[gsi].addr = addr;
	f->msi[gsi].data = data;
	f->msi[gsi].set = true;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void fm_request_exit(struct machine *m, int status, const char *reason)
{
	struct fake_machine *f = fm_of(m);

	pthread_mutex_lock(&f->lock);
	if (!f->exit_reason) {
		f->exit_status = status;
		f->exit_reason = reason;
	}
	pthread_mutex_unlock(&f->lock);
}

static int fm_own(struct machine *m, void *obj, void (*destroy)(void *obj))
{
	struct fake_machine *f = fm_of(m);

	if (f->nowned == FM_OWNED)
		return -ENOSPC;
	f->owned[f->nowned].obj = obj;
	f->owned[f->nowned++].destroy = destroy;
	return 0;
}

static int fm_add_state(struct machine *m, void *obj, const struct snap_ops *ops)
{
	struct fake_machine *f = fm_of(m);

	if (f->nstates == FM_OWNED)
		return -ENOSPC;
	f->states[f->nstates].obj = obj;
	f->states[f->nstates++].ops = ops;
	return 0;
}

static const struct machine_ops fm_ops = {
	.set_irq_line = fm_set_irq_line,
	.irqfd = fm_irqfd,
	.ioeventfd = fm_ioeventfd,
	.msi_alloc = fm_msi_alloc,
	.msi_route = fm_msi_route,
	.request_exit = fm_request_exit,
	.own = fm_own,
	.add_state = fm_add_state,
};

/* A machine with ram bytes of guest RAM (0: none), as a KVM VM with in-kernel irqchip looks to
 * its devices: MSI GSIs start after the 24 IOAPIC pins. */
static inline void fm_init(struct fake_machine *f, uint64_t ram)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	bus_init(&f->pio, "pio");
	bus_init(&f->mmio, "mmio");
	if ((ram && guest_mem_init(&f->mem, ram) < 0) || evloop_init(&f->loop) < 0)
		abort();
	f->next_msi = 24;
	f->m = (struct machine){ .ops = &fm_ops, .pio = &f->pio, .mmio = &f->mmio, .mem = &f->mem,
				 .loop = &f->loop, .ioeventfd_no_length = true };
}

static inline void fm_destroy(struct fake_machine *f)
{
	while (f->nowned) {
		f->nowned--;
		f->owned[f->nowned].destroy(f->owned[f->nowned].obj);
	}
	evloop_destroy(&f->loop);
	if (f->mem.map)
		guest_mem_destroy(&f->mem);
	bus_destroy(&f->pio);
	bus_destroy(&f->mmio);
	pthread_mutex_destroy(&f->lock);
}

/* How many times the device signalled the irqfd tied to gsi since the last call (0 if none). */
static inline uint64_t fm_irqfd_count(struct fake_machine *f, uint32_t gsi)
{
	uint64_t total = 0, n;

	for (int i = 0; i < f->nirqfds; i++)
		if (f->irqfds[i].gsi == gsi && read(f->irqfds[i].fd, &n, sizeof(n)) == sizeof(n))
			total += n;
	return total;
}

/* The live ioeventfd at addr (pio or MMIO), or NULL. */
static inline const struct machine_ioeventfd *fm_ioeventfd_at(struct fake_machine *f,
							     uint64_t addr, bool pio)
{
	for (int i = 0; i < f->nioeventfds; i++)
		if (f->ioeventfds[i].live && f->ioeventfds[i].io.addr == addr &&
		    f->ioeventfds[i].io.pio == pio)
			return &f->ioeventfds[i].io;
	return NULL;
}

/* The level gsi was last driven to, read under the machine's lock (for tests that race). */
static inline int fm_line(struct fake_machine *f, uint32_t gsi)
{
	int level;

	pthread_mutex_lock(&f->lock);
	level = f->irq_level[gsi];
	pthread_mutex_unlock(&f->lock);
	return level;
}

/* A guest write as KVM handles it: a live ioeventfd that matches (address; length unless it
 * is a zero-length MMIO one; data if datamatch) is signalled instead of exiting to the device.
 * Returns true when an ioeventfd took the write. */
static inline bool fm_guest_write(struct fake_machine *f, bool pio, uint64_t addr,
				  const void *data, uint32_t len)
{
	uint64_t one = 1, v = 0;
	int fd = -1;

	memcpy(&v, data, len < 8 ? len : 8);
	pthread_mutex_lock(&f->lock);
	for (int i = 0; i < f->nioeventfds && fd < 0; i++) {
		const struct machine_ioeventfd *io = &f->ioeventfds[i].io;

		if (!f->ioeventfds[i].live || io->pio != pio || io->addr != addr ||
		    (io->len && io->len != len))
			continue;
		if (io->datamatch && (io->len < 8 ? v & ((1ULL << (8 * io->len)) - 1) : v) != io->data)
			continue;
		fd = io->fd;
	}
	pthread_mutex_unlock(&f->lock);
	if (fd >= 0)
		return write(fd, &one, sizeof(one)) == sizeof(one);
	bus_write(pio ? &f->pio : &f->mmio, addr, data, len);
	return false;
}

/* Runs the event loop's handlers that are ready now, as its thread would, until none is (at
 * most `rounds` waits). Returns how many handlers ran. */
static inline int fm_run_ready(struct fake_machine *f, int rounds)
{
	int ran = 0;

	while (rounds-- > 0) {
		struct epoll_event evs[16];
		int n = epoll_wait(f->loop.epfd, evs, 16, 0);

		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			struct ev_handler *h = evs[i].data.ptr;

			h->fn(h, evs[i].events);
		}
		ran += n;
	}
	return ran;
}

/* ---- what a guest sees: accesses as a vCPU makes them ---- */

static inline uint64_t fm_read(struct fake_machine *f, bool pio, uint64_t addr, uint32_t len)
{
	uint64_t v = 0;

	bus_read(pio ? &f->pio : &f->mmio, addr, &v, len);
	return v;
}

static inline void fm_write(struct fake_machine *f, bool pio, uint64_t addr, uint64_t v,
			    uint32_t len)
{
	bus_write(pio ? &f->pio : &f->mmio, addr, &v, len);
}

/* Config space of bus 0, function 0 of slot, through the ECAM window. */
static inline uint64_t fm_ecam(int slot, uint32_t off)
{
	return PCI_ECAM_BASE + ((uint64_t)slot << 15) + off;
}

static inline uint32_t fm_cfg_read(struct fake_machine *f, int slot, uint32_t off, uint32_t len)
{
	return (uint32_t)fm_read(f, false, fm_ecam(slot, off), len);
}

static inline void fm_cfg_write(struct fake_machine *f, int slot, uint32_t off, uint32_t v,
				uint32_t len)
{
	fm_write(f, false, fm_ecam(slot, off), v, len);
}

/* Where config space says BAR bar is (I/O or memory, 32 or 64 bits). */
static inline uint64_t fm_bar_addr(struct fake_machine *f, int slot, int bar)
{
	uint32_t lo = fm_cfg_read(f, slot, PCI_BASE_ADDRESS_0 + 4 * bar, 4);

	if (lo & PCI_BASE_ADDRESS_SPACE_IO)
		return lo & ~3u;
	if ((lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64)
		return (lo & ~0xfu) |
		       (uint64_t)fm_cfg_read(f, slot, PCI_BASE_ADDRESS_0 + 4 * bar + 4, 4) << 32;
	return lo & ~0xfu;
}

/* The offset of capability id in slot's list (for a vendor capability, the one whose byte 3,
 * virtio's cfg_type, is type; type < 0: any), or 0. */
static inline uint8_t fm_find_cap(struct fake_machine *f, int slot, uint8_t id, int type)
{
	int n = 0;

	for (uint8_t c = fm_cfg_read(f, slot, PCI_CAPABILITY_LIST, 1); c && n < 48;
	     c = fm_cfg_read(f, slot, c + 1, 1), n++)
		if (fm_cfg_read(f, slot, c, 1) == id &&
		    (type < 0 || (int)fm_cfg_read(f, slot, c + 3, 1) == type))
			return c;
	return 0;
}

#endif
