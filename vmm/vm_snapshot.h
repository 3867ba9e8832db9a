/* A whole VM saved to, and brought back from, a snapshot file (snapshot/snapshot.h).
 *
 * Sections: "kvm.vm" (the in-kernel PIC, IOAPIC, PIT and clock), "vcpu.N", "ram.N" (each RAM
 * region, mapped back MAP_PRIVATE), and one per owner of device state, "<ops->name>.<n>", in
 * the order the owners registered (machine_add_state). The header's identity names what a
 * restore needs: mica's version, the host CPU and KVM, the RAM size and the vCPU count. */
#ifndef MICA_VM_SNAPSHOT_H
#define MICA_VM_SNAPSHOT_H

#include <stdint.h>

#include "vmm/err.h"

struct vm;
struct snap_file;

struct vm_snapshot_result {
	uint64_t ram_bytes;      /* guest RAM saved */
	uint64_t file_bytes;     /* the file's size (zero pages are holes: less on disk) */
	uint64_t paused_ns;      /* how long the vCPUs stood still */
};

/* Pauses the VM, saves it to path and lets it go on. Event-loop thread, vCPUs running.
 * -errno with e filled on failure (the VM goes on; no file is left at path but an older one). */
int vm_snapshot(struct vm *vm, const char *path, struct vm_snapshot_result *res, struct err *e);

/* Makes a VM just created (devices plugged, no vCPU run yet) the one in f. -errno with e
 * filled: the snapshot does not fit this host or this VM's options, or it is damaged. The VM
 * must then be destroyed, not run. */
int vm_restore(struct vm *vm, struct snap_file *f, struct err *e);

#endif
