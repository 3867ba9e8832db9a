#include "vmm/stats.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/resource.h>

#include "vmm/json.h"
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

int stats_add_device(struct stats_devices *s, stats_fn fn, void *obj)
{
	if (s->n == STATS_MAX_DEVICES)
		return -ENOSPC;
	s->dev[s->n].fn = fn;
	s->dev[s->n++].obj = obj;
	return 0;
}

static bool is_exit_counter(const char *name)
{
	size_t len = strlen(name);

	return len > 6 && !strcmp(name + len - 6, "_exits");
}

void stats_write_kvm(const struct kvm_stats_total *t, FILE *f)
{
	bool first = true;

	if (!t) {
		fprintf(f, "  \"kvm_exits\": null,\n  \"kvm_vcpu_stats\": null,\n");
		return;
	}
	fprintf(f, "  \"kvm_exits\": {");
	for (int i = 0; i < t->n; i++) {
		if (!strcmp(t->v[i].name, "exits")) {
			fprintf(f, " \"total\": %llu", (unsigned long long)t->v[i].value);
			first = false;
		}
	}
	for (int i = 0; i < t->n; i++) {
		if (is_exit_counter(t->v[i].name)) {
			fprintf(f, "%s \"%s\": %llu", first ? "" : ",", t->v[i].name,
				(unsigned long long)t->v[i].value);
			first = false;
		}
	}
	fprintf(f, " },\n  \"kvm_vcpu_stats\": {");
	first = true;
	for (int i = 0; i < t->n; i++) {
		if (strcmp(t->v[i].name, "exits") && !is_exit_counter(t->v[i].name)) {
			fprintf(f, "%s \"%s\": %llu", first ? "" : ",", t->v[i].name,
				(unsigned long long)t->v[i].value);
			first = false;
		}
	}
	fprintf(f, " },\n");
}

/* KVM's counters summed over the vCPUs; false when a vCPU has none. */
static bool kvm_total(const struct vm *vm, struct kvm_stats_total *t)
{
	t->n = 0;
	for (int i = 0; i < vm->ncpus; i++)
		if (kvm_stats_add(&vm->vcpus[i].kvm_stats, t))
			return false;
	return vm->ncpus > 0;
}

int stats_write_json(const struct vm *vm, const struct stats_devices *devs,
		     const struct run_times *t, const struct stats_members *more, FILE *f)
{
	struct vcpu_stats sum = { 0 };
	struct kvm_stats_total kvm;
	unsigned long rss, guest_rss;
	struct rusage ru;

	for (int i = 0; i < vm->ncpus; i++) {
		sum.pio += vm->vcpus[i].stats.pio;
		sum.mmio += vm->vcpus[i].stats.mmio;
		sum.other += vm->vcpus[i].stats.other;
		sum.handle_cycles += vm->vcpus[i].stats.handle_cycles;
	}
	rss_kib(vm, &rss, &guest_rss);
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "{\n  \"version\": %d,\n  \"status\": %d,\n  \"reason\": ", STATS_JSON_VERSION,
		vm->exit_status);
	json_cstring(f, vm->exit_reason ? vm->exit_reason : "unknown");
	fprintf(f, ",\n  \"mica_status\": %d,\n", t->mica_status);
	if (more && more->write)
		more->write(more->opaque, f);
	fprintf(f, "  \"seconds\": { \"setup\": %.6f, \"run\": %.6f, \"user\": %.6f, \"system\": %.6f },\n",
		(t->first_run_ns - t->start_ns) / 1e9, (t->end_ns - t->first_run_ns) / 1e9,
		ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
	if (t->nmarks) {
		fprintf(f, "  \"since_start\": {");
		for (int i = 0; i < t->nmarks; i++) {
			fprintf(f, "%s \"%s\": ", i ? "," : "", t->marks[i].name);
			if (t->marks[i].ns)
				fprintf(f, "%.6f", (t->marks[i].ns - t->start_ns) / 1e9);
			else
				fprintf(f, "null");
		}
		fprintf(f, " },\n");
	}
	fprintf(f, "  \"memory_kib\": { \"rss\": %lu, \"guest_ram_rss\": %lu, \"vmm_rss\": %lu },\n",
		rss, guest_rss, rss - guest_rss);
	fprintf(f, "  \"userspace_exits\": { \"pio\": %llu, \"mmio\": %llu, \"other\": %llu, "
		   "\"handling_cycles\": %llu },\n",
		(unsigned long long)sum.pio, (unsigned long long)sum.mmio,
		(unsigned long long)sum.other, (unsigned long long)sum.handle_cycles);
	stats_write_kvm(kvm_total(vm, &kvm) ? &kvm : NULL, f);
	fprintf(f, "  \"tsc_khz\": %d,\n",
		vm->ncpus ? ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0) : 0);
	fprintf(f, "  \"unclaimed\": { \"pio_reads\": %lu, \"pio_writes\": %lu, \"mmio_reads\": %lu, "
		   "\"mmio_writes\": %lu },\n",
		atomic_load(&vm->pio.unclaimed_reads), atomic_load(&vm->pio.unclaimed_writes),
		atomic_load(&vm->mmio.unclaimed_reads), atomic_load(&vm->mmio.unclaimed_writes));
	fprintf(f, "  \"devices\": [");
	for (int i = 0; i < devs->n; i++) {
		struct stat_value v[STATS_MAX_VALUES];
		int n = devs->dev[i].fn(devs->dev[i].obj, v, STATS_MAX_VALUES);

		fprintf(f, "%s\n    {", i ? "," : "");
		for (int k = 0; k < n; k++) {
			fprintf(f, "%s \"%s\": ", k ? "," : "", v[k].name);
			if (v[k].str)
				json_cstring(f, v[k].str);
			else
				fprintf(f, "%llu", (unsigned long long)v[k].num);
		}
		fprintf(f, " }");
	}
	fprintf(f, "%s]\n}\n", devs->n ? "\n  " : "");
	return ferror(f) ? -EIO : 0;
}
