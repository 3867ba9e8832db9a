#include "devices/msix.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/pci.h"
#include "snapshot/snapshot.h"
#include "vmm/err.h"
#include "vmm/log.h"
#include "vmm/machine.h"

#define MSIX_CAP_LEN 12

int msix_init(struct msix *m, struct pci_dev *pdev, struct machine *mach, uint16_t nvec, int bar,
	      uint32_t table_off, uint32_t pba_off)
{
	uint16_t ctrl = nvec - 1;
	uint32_t table = table_off | bar, pba = pba_off | bar;

	memset(m, 0, sizeof(*m));
	for (int v = 0; v < MSIX_MAX_VECTORS; v++)
		m->irqfd[v] = -1;
	if (!nvec || nvec > MSIX_MAX_VECTORS)
		return -EINVAL;
	m->machine = mach;
	m->pdev = pdev;
	m->nvec = nvec;
	pthread_mutex_init(&m->lock, NULL);
	m->cap = pci_add_cap(pdev, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
	if (!m->cap)
		return -ENOSPC;
	memcpy(&pdev->cfg[m->cap + PCI_MSIX_FLAGS], &ctrl, 2);
	memcpy(&pdev->cfg[m->cap + PCI_MSIX_TABLE], &table, 4);
	memcpy(&pdev->cfg[m->cap + PCI_MSIX_PBA], &pba, 4);
	/* Only Enable and Function Mask are writable. */
	pdev->wmask[m->cap + PCI_MSIX_FLAGS + 1] = (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL) >> 8;
	for (int v = 0; v < nvec; v++) {
		int err;

		m->table[v].ctrl = PCI_MSIX_ENTRY_CTRL_MASKBIT; /* masked at reset, per the spec */
		m->gsi[v] = machine_msi_alloc(mach);
		if (m->gsi[v] < 0)
			return m->gsi[v];
		m->irqfd[v] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (m->irqfd[v] < 0)
			return -errno;
		err = machine_irqfd(mach, m->irqfd[v], m->gsi[v], true);
		if (err)
			return err;
	}
	return 0;
}

void msix_destroy(struct msix *m)
{
	for (int v = 0; v < MSIX_MAX_VECTORS; v++)
		if (m->irqfd[v] >= 0)
			close(m->irqfd[v]);
	if (m->nvec)
		pthread_mutex_destroy(&m->lock);
}

static bool masked(const struct msix *m, int v)
{
	return !m->enabled || m->fmask || (m->table[v].ctrl & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

/* Points the vector's GSI at its table entry; with the lock held. */
static void route(struct msix *m, int v)
{
	uint64_t addr = (uint64_t)m->table[v].addr_hi << 32 | m->table[v].addr_lo;
	int err;

	if (m->routed[v])
		return;
	err = machine_msi_route(m->machine, m->gsi[v], addr, m->table[v].data);
	if (err)
		pr_warn("msix: cannot route vector %d: %s", v, strerror(-err));
	m->routed[v] = true;
}

static void fire(struct msix *m, int v)
{
	uint64_t one = 1;

	route(m, v);
	if (write(m->irqfd[v], &one, sizeof(one)) < 0)
		pr_debug("msix: irqfd write failed: %s", strerror(errno));
}

/* Delivers what became unmasked; with the lock held. */
static void deliver_pending(struct msix *m)
{
	for (int v = 0; v < m->nvec; v++) {
		if ((m->pba & (1ULL << v)) && !masked(m, v)) {
			m->pba &= ~(1ULL << v);
			fire(m, v);
		}
	}
}

void msix_cfg_written(struct msix *m, uint32_t off, uint32_t len)
{
	uint16_t ctrl;

	uint32_t flags = m->cap + PCI_MSIX_FLAGS;

	if (off + len <= flags || off >= flags + 2)
		return;
	memcpy(&ctrl, &m->pdev->cfg[m->cap + PCI_MSIX_FLAGS], 2);
	pthread_mutex_lock(&m->lock);
	m->enabled = ctrl & PCI_MSIX_FLAGS_ENABLE;
	m->fmask = ctrl & PCI_MSIX_FLAGS_MASKALL;
	deliver_pending(m);
	pthread_mutex_unlock(&m->lock);
}

bool msix_enabled(struct msix *m)
{
	bool e;

	pthread_mutex_lock(&m->lock);
	e = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return e;
}

void msix_table_read(struct msix *m, uint64_t off, void *data, uint32_t len)
{
	uint64_t v = 0;

	/* 32-bit accesses to one field, or a 64-bit access to an aligned pair. */
	if (off < (uint64_t)m->nvec * MSIX_ENTRY_SIZE && (len == 4 || len == 8) && !(off % len)) {
		pthread_mutex_lock(&m->lock);
		memcpy(&v, (uint8_t *)m->table + off, len);
		pthread_mutex_unlock(&m->lock);
	}
	memcpy(data, &v, len);
}

void msix_table_write(struct msix *m, uint64_t off, const void *data, uint32_t len)
{
	int v = off / MSIX_ENTRY_SIZE;

	if (off >= (uint64_t)m->nvec * MSIX_ENTRY_SIZE || (len != 4 && len != 8) || (off % len))
		return;
	pthread_mutex_lock(&m->lock);
	memcpy((uint8_t *)m->table + off, data, len);
	m->table[v].ctrl &= PCI_MSIX_ENTRY_CTRL_MASKBIT; /* the other bits are reserved */
	if (off % MSIX_ENTRY_SIZE < PCI_MSIX_ENTRY_VECTOR_CTRL)
		m->routed[v] = false; /* address or data changed: re-route before the next fire */
	deliver_pending(m);
	pthread_mutex_unlock(&m->lock);
}

void msix_pba_read(struct msix *m, uint64_t off, void *data, uint32_t len)
{
	uint64_t v = 0;

	if (off < 8 && off + len <= 8) {
		pthread_mutex_lock(&m->lock);
		v = m->pba >> (8 * off);
		pthread_mutex_unlock(&m->lock);
	}
	memcpy(data, &v, len);
}

void msix_notify(struct msix *m, uint16_t v)
{
	if (v >= m->nvec)
		return;
	pthread_mutex_lock(&m->lock);
	if (masked(m, v))
		m->pba |= 1ULL << v;
	else
		fire(m, v);
	pthread_mutex_unlock(&m->lock);
}

/* ---- snapshots ---- */

void msix_save(struct msix *m, struct snap_writer *w)
{
	pthread_mutex_lock(&m->lock);
	snap_put_u16(w, m->nvec);
	for (int v = 0; v < m->nvec; v++) {
		snap_put_u32(w, m->table[v].addr_lo);
		snap_put_u32(w, m->table[v].addr_hi);
		snap_put_u32(w, m->table[v].data);
		snap_put_u32(w, m->table[v].ctrl);
	}
	snap_put_u64(w, m->pba);
	pthread_mutex_unlock(&m->lock);
}

int msix_restore(struct msix *m, struct snap_cursor *c, const char *who, struct err *e)
{
	struct msix_entry table[MSIX_MAX_VECTORS];
	uint16_t nvec = snap_get_u16(c), ctrl;
	uint64_t pba;

	if (c->err)
		return err_set(e, -EBADMSG, "snapshot: %s: MSI-X section truncated", who);
	if (nvec != m->nvec)
		return err_set(e, -EINVAL, "snapshot: %s: MSI-X table of %u vectors, this one has %u",
			       who, nvec, m->nvec);
	for (int v = 0; v < nvec; v++) {
		table[v].addr_lo = snap_get_u32(c);
		table[v].addr_hi = snap_get_u32(c);
		table[v].data = snap_get_u32(c);
		/* The other bits are reserved: dropped, as from a guest write. */
		table[v].ctrl = snap_get_u32(c) & PCI_MSIX_ENTRY_CTRL_MASKBIT;
	}
	pba = snap_get_u64(c);
	if (c->err)
		return err_set(e, -EBADMSG, "snapshot: %s: MSI-X section truncated", who);
	if (nvec < 64 && (pba >> nvec))
		return err_set(e, -EINVAL, "snapshot: %s: MSI-X pending bit beyond the table", who);

	memcpy(&ctrl, &m->pdev->cfg[m->cap + PCI_MSIX_FLAGS], 2);
	pthread_mutex_lock(&m->lock);
	memcpy(m->table, table, nvec * sizeof(table[0]));
	m->pba = pba;
	m->enabled = ctrl & PCI_MSIX_FLAGS_ENABLE;
	m->fmask = ctrl & PCI_MSIX_FLAGS_MASKALL;
	for (int v = 0; v < nvec; v++) {
		m->routed[v] = false;
		if (!masked(m, v))
			route(m, v);
	}
	deliver_pending(m);
	pthread_mutex_unlock(&m->lock);
	return 0;
}
