#include "vmm/stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/resource.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/virtio.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/* Resident memory of mica itself: all of it minus what the guest's RAM mapping holds. */
static void rss_kib(const struct vm *vm, unsigned long *total, unsigned long *guest)
{
	char line[256];
	unsigned long lo = (unsigned long)vm->mem.map, hi = lo + vm->mem.map_size;
	bool in_guest = false;
	FILE *f = fopen("/proc/self/smaps", "re");

	*total = *guest = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end, kib;

		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' '))
			in_guest = start >= lo && end <= hi;
		else if (sscanf(line, "Rss: %lu kB", &kib) == 1) {
			*total += kib;
			if (in_guest)
				*guest += kib;
		}
	}
	fclose(f);
}

int stats_write_json(const struct vm *vm, const struct run_times *t, const char *path)
{
	struct vcpu_stats sum = { 0 };
	unsigned long rss, guest_rss;
	struct rusage ru;
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	for (int i = 0; i < vm->ncpus; i++) {
		sum.pio += vm->vcpus[i].stats.pio;
		sum.mmio += vm->vcpus[i].stats.mmio;
		sum.other += vm->vcpus[i].stats.other;
		sum.handle_cycles += vm->vcpus[i].stats.handle_cycles;
	}
	rss_kib(vm, &rss, &guest_rss);
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "{\n  \"status\": %d,\n  \"reason\": \"%s\",\n", vm->exit_status,
		vm->exit_reason ? vm->exit_reason : "unknown");
	fprintf(f, "  \"seconds\": { \"setup\": %.6f, \"run\": %.6f, \"user\": %.6f, \"system\": %.6f },\n",
		(t->first_run_ns - t->start_ns) / 1e9, (t->end_ns - t->first_run_ns) / 1e9,
		ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	fprintf(f, "  \"memory_kib\": { \"rss\": %lu, \"guest_ram_rss\": %lu, \"vmm_rss\": %lu },\n",
		rss, guest_rss, rss - guest_rss);
	fprintf(f, "  \"userspace_exits\": { \"pio\": %llu, \"mmio\": %llu, \"other\": %llu, "
		   "\"handling_cycles\": %llu },\n",
		(unsigned long long)sum.pio, (unsigned long long)sum.mmio,
		(unsigned long long)sum.other, (unsigned long long)sum.handle_cycles);
	fprintf(f, "  \"tsc_khz\": %d,\n",
		vm->ncpus ? ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0) : 0);
	fprintf(f, "  \"unclaimed\": { \"pio_reads\": %lu, \"pio_writes\": %lu, \"mmio_reads\": %lu, "
		   "\"mmio_writes\": %lu },\n",
		atomic_load(&vm->pio.unclaimed_reads), atomic_load(&vm->pio.unclaimed_writes),
		atomic_load(&vm->mmio.unclaimed_reads), atomic_load(&vm->mmio.unclaimed_writes));
	fprintf(f, "  \"virtio\": [");
	for (int i = 0; i < vm->nvirtio; i++) {
		const struct virtio_dev *d = vm->virtio_devs[i];

		fprintf(f, "%s\n    { \"device\": \"%s\", \"notifies\": %lu, \"notifies_ignored\": %lu, "
			   "\"notifies_userspace\": %lu, \"interrupts\": %lu, "
			   "\"interrupts_suppressed\": %lu, \"violations\": %lu }",
			i ? "," : "", d->ops->name, atomic_load(&d->stats.notifies),
			atomic_load(&d->stats.notifies_ignored),
			atomic_load(&d->stats.notifies_userspace), atomic_load(&d->stats.interrupts),
			atomic_load(&d->stats.interrupts_suppressed),
			atomic_load(&d->stats.violations));
	}
	fprintf(f, "%s],\n  \"blk\": [", vm->nvirtio ? "\n  " : "");
	for (int i = 0, n = 0; i < vm->nvirtio; i++) {
		const struct virtio_blk_stats *b = virtio_blk_stats(vm->virtio_devs[i]);

		if (!b)
			continue;
		fprintf(f, "%s\n    { \"backend\": \"%s\", \"reads\": %lu, \"writes\": %lu, "
			   "\"flushes\": %lu, \"bytes_read\": %lu, \"bytes_written\": %lu, "
			   "\"batches\": %lu, \"merged\": %lu, \"errors\": %lu, "
			   "\"unsupported\": %lu }",
			n++ ? "," : "", virtio_blk_backend(vm->virtio_devs[i]), atomic_load(&b->reads),
			atomic_load(&b->writes), atomic_load(&b->flushes), atomic_load(&b->bytes_read),
			atomic_load(&b->bytes_written), atomic_load(&b->batches),
			atomic_load(&b->merged),
			atomic_load(&b->err_header) + atomic_load(&b->err_direction) +
				atomic_load(&b->err_length) + atomic_load(&b->err_range) +
				atomic_load(&b->err_segments) + atomic_load(&b->err_read_only) +
				atomic_load(&b->err_limits) + atomic_load(&b->err_flags),
			atomic_load(&b->unsupported));
	}
	fprintf(f, "\n  ]\n}\n");
	return fclose(f) ? -errno : 0;
}
