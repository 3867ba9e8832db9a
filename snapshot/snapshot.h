/* Snapshots: the file format, and how each owner of guest-visible state saves and restores it.
 *
 * The file (all integers little-endian):
 *
 *   offset 0      struct snap_header (magic, format version, the table's place and checksum,
 *                 mica's version, the identity string, the header's own checksum)
 *   ...           the sections' bytes, each at an offset aligned to 8 (RAM sections: to
 *                 SNAP_RAM_ALIGN, so a restore can map them into guest RAM MAP_PRIVATE)
 *   table_offset  nsections struct snap_section_entry: name, section version, flags, offset,
 *                 size, CRC-32C of the bytes
 *
 * A writer streams sections in order and writes the table and then the header last, into a
 * temporary file renamed over the destination on success: a reader never sees a half-written
 * snapshot, and a failed snapshot leaves an older one intact.
 *
 * A reader (snap_open / snap_parse) refuses, with one line in struct err, anything that is not
 * exactly a well-formed snapshot of this format: a short file, a bad magic, another format
 * version, a header or table whose checksum fails, sections that overlap each other, the
 * header or the table, or run past the end, duplicate or unterminated names, and (for every
 * section but RAM) a section whose bytes fail their checksum. RAM sections are checksummed when
 * written, but a restore does not read them to check (that would touch every page and undo the
 * point of mapping them on demand); snap_verify() checks them too.
 *
 * Section contents are a flat stream read through a cursor. Errors are sticky: a put on a
 * failed writer does nothing, a get past the end of a section returns zeros and marks the
 * cursor failed, and the owner checks once at the end (snap_end / snap_cursor_end). Every
 * value read from a snapshot is as hostile as one from the guest: an owner validates it before
 * use exactly as it validates the guest's own writes.
 *
 * Owners of state (devices, the vCPUs, the irqchip) implement struct snap_ops and register it
 * with the machine (machine_add_state in vmm/machine.h); the VM names each owner's section
 * "<ops->name>.<n>" (n counts owners of that name in creation order), so a restore into a VM
 * built with another device set finds a section missing, or one left over, and is refused. */
#ifndef MICA_SNAPSHOT_H
#define MICA_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/err.h"

#define SNAP_MAGIC          "MICASNAP"   /* 8 bytes, no NUL */
#define SNAP_FORMAT_VERSION 1
#define SNAP_NAME_MAX       32           /* a section's name, NUL included */
#define SNAP_IDENTITY_MAX   256          /* the identity string, NUL included */
#define SNAP_MAX_SECTIONS   1024
#define SNAP_RAM_ALIGN      4096         /* a RAM section's offset and size: whole pages */

#define SNAP_SECTION_RAM    0x1          /* entry flag: guest RAM, mapped rather than read */

struct snap_header {
	char magic[8];
	uint32_t format_version;
	uint32_t header_size;        /* sizeof(struct snap_header) */
	uint64_t table_offset;
	uint32_t nsections;
	uint32_t table_crc;          /* CRC-32C of the table */
	char mica_version[32];       /* NUL-terminated, informational */
	char identity[SNAP_IDENTITY_MAX]; /* NUL-terminated: what the snapshot needs to be restored
					   * (set by the VM: CPU, memory, vCPUs, device set) */
	uint32_t reserved;
	uint32_t header_crc;         /* CRC-32C of every byte above */
};

struct snap_section_entry {
	char name[SNAP_NAME_MAX];    /* NUL-terminated, NUL-padded */
	uint32_t version;            /* the owner's own format version for this section */
	uint32_t flags;              /* SNAP_SECTION_* */
	uint64_t offset;
	uint64_t size;
	uint32_t crc;                /* CRC-32C of the section's bytes */
	uint32_t reserved;
};

/* CRC-32C (Castagnoli), continuing from crc (0 to start). */
uint32_t snap_crc32c(uint32_t crc, const void *data, size_t len);

/* ---- writing ---- */

struct snap_writer;

/* Starts a snapshot to be renamed to path by snap_writer_finish(). identity is stored in the
 * header (truncated to SNAP_IDENTITY_MAX - 1 bytes is an error: -ENAMETOOLONG). */
int snap_writer_create(const char *path, const char *identity, struct snap_writer **out,
		       struct err *e);
/* A section: begin, any number of puts, end. Names must be unique, shorter than
 * SNAP_NAME_MAX. */
void snap_begin(struct snap_writer *w, const char *name, uint32_t version);
void snap_put(struct snap_writer *w, const void *data, size_t len);
/* Closes the section begun last; returns the writer's sticky error (0 or -errno). */
int snap_end(struct snap_writer *w);
/* A whole RAM section: len bytes from data (a multiple of SNAP_RAM_ALIGN), written straight to
 * the file at an aligned offset. */
int snap_put_ram(struct snap_writer *w, const char *name, const void *data, size_t len);
/* Writes the table and the header, syncs, renames into place and frees w. On failure the
 * temporary file is removed and e says why. */
int snap_writer_finish(struct snap_writer *w, struct err *e);
/* Drops everything written and frees w. */
void snap_writer_abort(struct snap_writer *w);

static inline void snap_put_u8(struct snap_writer *w, uint8_t v) { snap_put(w, &v, 1); }
static inline void snap_put_u16(struct snap_writer *w, uint16_t v) { snap_put(w, &v, 2); }
static inline void snap_put_u32(struct snap_writer *w, uint32_t v) { snap_put(w, &v, 4); }
static inline void snap_put_u64(struct snap_writer *w, uint64_t v) { snap_put(w, &v, 8); }

/* ---- reading ---- */

struct snap_file;

/* Opens and checks a snapshot file (see the top). The file stays open for snap_map_ram(). */
int snap_open(const char *path, struct snap_file **out, struct err *e);
/* The same checks on a snapshot held in memory (len bytes at buf, which must outlive the
 * result); RAM sections can then only be read, not mapped. */
int snap_parse(const void *buf, size_t len, struct snap_file **out, struct err *e);
void snap_close(struct snap_file *f);

const char *snap_identity(const struct snap_file *f);
const char *snap_mica_version(const struct snap_file *f);
/* Checks the RAM sections' checksums too (reads every byte). */
int snap_verify(struct snap_file *f, struct err *e);

struct snap_cursor {
	const uint8_t *data;
	size_t size;
	size_t off;
	uint32_t version;            /* the section's version, as written */
	int err;                     /* sticky: -EBADMSG once a get ran past the end */
	char name[SNAP_NAME_MAX];
};

/* Opens a non-RAM section for reading and marks it used. -ENOENT if there is none. */
int snap_section(struct snap_file *f, const char *name, struct snap_cursor *c);
/* Copies len bytes out; past the end, fills zeros and fails the cursor. */
void snap_get(struct snap_cursor *c, void *data, size_t len);
/* 0 when every get succeeded and the section was read to its end; -EBADMSG otherwise. */
int snap_cursor_end(const struct snap_cursor *c);

static inline uint8_t snap_get_u8(struct snap_cursor *c) { uint8_t v; snap_get(c, &v, 1); return v; }
static inline uint16_t snap_get_u16(struct snap_cursor *c) { uint16_t v; snap_get(c, &v, 2); return v; }
static inline uint32_t snap_get_u32(struct snap_cursor *c) { uint32_t v; snap_get(c, &v, 4); return v; }
static inline uint64_t snap_get_u64(struct snap_cursor *c) { uint64_t v; snap_get(c, &v, 8); return v; }

/* Maps RAM section name over [addr, addr + len) (MAP_PRIVATE | MAP_FIXED: pages load from the
 * file when the guest first touches them; writes stay private). len must equal the section's
 * size. Marks the section used. */
int snap_map_ram(struct snap_file *f, const char *name, void *addr, size_t len, struct err *e);
/* The first section no snap_section()/snap_map_ram() asked for, or NULL: a restore that
 * leaves one unread was given another device set than the snapshot's. */
const char *snap_unused_section(const struct snap_file *f);

/* ---- owners of state ---- */

/* How one owner of guest-visible state (a device, the UART, a virtio transport with its
 * model) saves and restores it. Both run on the event-loop thread with every vCPU paused
 * outside KVM_RUN and the owner's in-flight work drained (see vm_pause in vmm/vm.h). */
struct snap_ops {
	const char *name;            /* section name prefix, e.g. "uart" or "virtio-mmio" */
	uint32_t version;            /* of this owner's section format */
	/* Writes the state with snap_put*. -errno with e filled when it cannot be saved now
	 * (e.g. -EBUSY: a share is mounted). */
	int (*save)(void *obj, struct snap_writer *w, struct err *e);
	/* Reads back what save wrote (a section of version <= ops->version), validates it and
	 * makes it the owner's state, re-establishing what follows from it (ioeventfds, MSI
	 * routes, interrupt lines). The object was just created from the same options. */
	int (*restore)(void *obj, struct snap_cursor *c, struct err *e);
};

#endif
