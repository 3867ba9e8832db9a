#include "vmm/kvm_stats.h"

#include <ctype.h>
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Bounds a sane layout stays within (6.x: ~50 descriptors of 48-byte names, <1 KiB of data). */
#define MAX_DESCS 4096
#define MAX_NAME_SIZE 256
#define MAX_DATA_SIZE (1u << 20)

#define COUNTER_FLAGS (KVM_STATS_TYPE_CUMULATIVE | KVM_STATS_UNIT_NONE | KVM_STATS_BASE_POW10)
#define FLAGS_MASK (KVM_STATS_TYPE_MASK | KVM_STATS_UNIT_MASK | KVM_STATS_BASE_MASK)

int kvm_stats_open(struct kvm_stats *s, int vm_fd, int vcpu_fd)
{
	int fd;

	memset(s, 0, sizeof(*s));
	if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) <= 0)
		return -ENOTSUP;
	fd = ioctl(vcpu_fd, KVM_GET_STATS_FD, 0);
	if (fd < 0)
		return -errno;
	return kvm_stats_parse(s, fd);
}

/* A name safe to print as a JSON key as it is: a C identifier, as the kernel's are. */
static bool name_ok(const char *name, size_t size)
{
	size_t len = strnlen(name, size);

	if (len == 0 || len == size)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '_')
			return false;
	return true;
}

/* Keeps the descriptors that are plain counters of events. */
static int pick_counters(struct kvm_stats *s, const struct kvm_stats_header *h)
{
	size_t stride = sizeof(struct kvm_stats_desc) + h->name_size;

	for (uint32_t i = 0; i < h->num_desc && s->ncounters < KVM_STATS_MAX_COUNTERS; i++) {
		const struct kvm_stats_desc *d = (const void *)(s->names + i * stride);

		if ((d->flags & FLAGS_MASK) != COUNTER_FLAGS || d->exponent != 0 || d->size != 1 ||
		    d->offset % sizeof(uint64_t) || d->offset >= MAX_DATA_SIZE ||
		    !name_ok(d->name, h->name_size))
			continue;
		s->counters[s->ncounters++] = (struct kvm_stats_counter){
			.name = d->name, .index = d->offset / sizeof(uint64_t) };
		if (d->offset + sizeof(uint64_t) > s->data_size)
			s->data_size = d->offset + sizeof(uint64_t);
	}
	return s->ncounters ? 0 : -EPROTO;
}

int kvm_stats_parse(struct kvm_stats *s, int fd)
{
	struct kvm_stats_header h;
	size_t stride, size;
	int err = -EPROTO;

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		goto fail;
	if (h.num_desc == 0 || h.num_desc > MAX_DESCS || h.name_size == 0 ||
	    h.name_size > MAX_NAME_SIZE)
		goto fail;
	/* The descriptors are read whole, names and all (the counters point into them). */
	stride = sizeof(struct kvm_stats_desc) + h.name_size;
	size = h.num_desc * stride;
	s->names = malloc(size);
	s->counters = calloc(KVM_STATS_MAX_COUNTERS, sizeof(*s->counters));
	if (!s->names || !s->counters) {
		err = -ENOMEM;
		goto fail;
	}
	if (pread(fd, s->names, size, h.desc_offset) != (ssize_t)size)
		goto fail;
	err = pick_counters(s, &h);
	if (err)
		goto fail;
	s->data_offset = h.data_offset;
	s->data = malloc(s->data_size);
	if (!s->data) {
		err = -ENOMEM;
		goto fail;
	}
	s->ok = true;
	return 0;
fail:
	close(fd);
	kvm_stats_close(s);
	return err;
}

void kvm_stats_close(struct kvm_stats *s)
{
	if (s->ok)
		close(s->fd);
	free(s->counters);
	free(s->names);
	free(s->data);
	memset(s, 0, sizeof(*s));
}

int kvm_stats_add(struct kvm_stats *s, struct kvm_stats_total *t)
{
	if (!s->ok)
		return -ENOENT;
	if (pread(s->fd, s->data, s->data_size, s->data_offset) != (ssize_t)s->data_size)
		return -EIO;
	for (int i = 0; i < s->ncounters; i++) {
		const struct kvm_stats_counter *c = &s->counters[i];
		int k = 0;

		while (k < t->n && strcmp(t->v[k].name, c->name))
			k++;
		if (k == t->n) {
			if (t->n == KVM_STATS_MAX_COUNTERS)
				continue;
			t->v[t->n].name = c->name;
			t->v[t->n++].value = 0;
		}
		t->v[k].value += s->data[c->index];
	}
	return 0;
}
