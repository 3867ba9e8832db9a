/* KVM's own counters of a vCPU (VM exits by reason, HLTs, emulated instructions...), read from
 * its binary statistics (KVM_GET_STATS_FD, Linux 5.14+), for --stats-json.
 *
 * The stats fd comes from an ioctl on the vCPU fd and is read with pread(): nothing is opened
 * once the run is confined. Its header and descriptors are read once at setup (where the
 * allocation happens); at the end, one pread per vCPU reads all the values. */
#ifndef MICA_KVM_STATS_H
#define MICA_KVM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* More than any kernel has (about 40 per vCPU in 6.x); further counters are left out. */
#define KVM_STATS_MAX_COUNTERS 128

/* One counter: a cumulative count of events (type CUMULATIVE, unit NONE, base 10, exponent
 * 0), one u64 in the data block. */
struct kvm_stats_counter {
	const char *name;  /* points into kvm_stats.names */
	size_t index;      /* the value's index in kvm_stats.data (u64 units) */
};

/* One vCPU's statistics. All zero: none (not asked for, a kernel without
 * KVM_CAP_BINARY_STATS_FD, or a layout mica does not understand). Owned by its vCPU; read by
 * the thread that writes --stats-json once the vCPUs have stopped. */
struct kvm_stats {
	bool ok;           /* fd, names, counters and data are valid */
	int fd;            /* ours while ok */
	off_t data_offset; /* of the data block in the fd */
	size_t data_size;  /* bytes read at the end: up to the last counter's value */
	int ncounters;
	struct kvm_stats_counter *counters;
	char *names;       /* the descriptors as the kernel gave them (names inside) */
	uint64_t *data;
};

/* Opens vcpu_fd's statistics (vm_fd: for the capability check) and reads their layout. Returns
 * 0, or -errno with s left "none": a missing capability is -ENOTSUP. */
int kvm_stats_open(struct kvm_stats *s, int vm_fd, int vcpu_fd);
/* Reads the layout of an open stats fd, which s then owns (closed on failure too). For
 * kvm_stats_open() and the unit tests. Returns 0 or -errno (-EPROTO: a malformed layout). */
int kvm_stats_parse(struct kvm_stats *s, int fd);
void kvm_stats_close(struct kvm_stats *s);

/* The counters of several vCPUs, summed by name, in the first vCPU's order. */
struct kvm_stats_total {
	int n;
	struct {
		const char *name; /* points into a kvm_stats: valid while it is open */
		uint64_t value;
	} v[KVM_STATS_MAX_COUNTERS];
};

/* Reads s's values now and adds them to t (t->n = 0 before the first vCPU). Returns 0, or
 * -errno (s has no statistics, or the read failed). */
int kvm_stats_add(struct kvm_stats *s, struct kvm_stats_total *t);

#endif
