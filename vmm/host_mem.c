#include "vmm/host_mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vmm/util.h"

/* A --mem value, as the option would spell it: whole GiB or MiB. */
static void fmt_size(char *buf, size_t len, uint64_t bytes)
{
	if (bytes >= GiB && !(bytes % GiB))
		snprintf(buf, len, "%lluG", (unsigned long long)(bytes / GiB));
	else
		snprintf(buf, len, "%lluM", (unsigned long long)(bytes / MiB));
}

/* An amount for a person: GiB with one decimal, or MiB. */
static void fmt_amount(char *buf, size_t len, uint64_t bytes)
{
	if (bytes >= GiB)
		snprintf(buf, len, "%.1f GiB", (double)bytes / GiB);
	else
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes / MiB));
}

/* The largest --mem not above limit: mica rounds --mem up to 2 MiB, so round down to whole GiB
 * above 1 GiB, else to 2 MiB. */
static uint64_t largest_mem(uint64_t limit)
{
	return limit >= GiB ? limit / GiB * GiB : limit / (2 * MiB) * (2 * MiB);
}

static uint64_t meminfo_kib(const char *text, const char *key)
{
	const char *p = text;
	size_t klen = strlen(key);

	while (p && *p) {
		if (!strncmp(p, key, klen) && p[klen] == ':')
			return strtoull(p + klen + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

uint64_t host_mem_meminfo_total(const char *meminfo)
{
	return (meminfo_kib(meminfo, "MemTotal") + meminfo_kib(meminfo, "SwapTotal")) * KiB;
}

/* Reads a small text file (procfs and sysfs report no size) into buf; false if it cannot. */
static bool read_text(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n > 0;
}

/* A cgroup limit file: a number of bytes, or "max" (no limit: UINT64_MAX). */
static uint64_t cgroup_value(const char *dir, const char *file)
{
	char path[4096 + 64], buf[64], *end;
	unsigned long long v;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (!read_text(path, buf, sizeof(buf)))
		return UINT64_MAX;
	v = strtoull(buf, &end, 10);
	return end == buf ? UINT64_MAX : v;
}

/* The memory + swap limit of mica's cgroup (UINT64_MAX: none found). v2: memory.max plus
 * memory.swap.max; v1: memory.memsw.limit_in_bytes (RAM and swap) or memory.limit_in_bytes.
 * The cgroup's path is looked up under /sys/fs/cgroup as /proc/self/cgroup names it; where
 * that path is not visible (a cgroup namespace), the mount's root is the cgroup itself. */
static uint64_t cgroup_limit(const char **which)
{
	char cg[4096], dir[4096 + 64], *line, *save = NULL;
	uint64_t lim = UINT64_MAX;

	if (!read_text("/proc/self/cgroup", cg, sizeof(cg)))
		return lim;
	for (line = strtok_r(cg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *path = strchr(line, ':');

		path = path ? strchr(path + 1, ':') : NULL;
		if (!path)
			continue;
		*path++ = '\0';
		if (!strcmp(line, "0:")) {
			uint64_t mem, swap;

			snprintf(dir, sizeof(dir), "/sys/fs/cgroup%s", path);
			mem = cgroup_value(dir, "memory.max");
			if (mem == UINT64_MAX) {
				snprintf(dir, sizeof(dir), "/sys/fs/cgroup");
				mem = cgroup_value(dir, "memory.max");
			}
			swap = cgroup_value(dir, "memory.swap.max");
			if (mem != UINT64_MAX && mem + (swap == UINT64_MAX ? 0 : swap) < lim) {
				lim = mem + (swap == UINT64_MAX ? 0 : swap);
				*which = "memory.max + memory.swap.max";
			}
		} else if (strstr(line, ":memory")) {
			uint64_t v;

			snprintf(dir, sizeof(dir), "/sys/fs/cgroup/memory%s", path);
			if (cgroup_value(dir, "memory.limit_in_bytes") == UINT64_MAX)
				snprintf(dir, sizeof(dir), "/sys/fs/cgroup/memory");
			v = cgroup_value(dir, "memory.memsw.limit_in_bytes");
			if (v == UINT64_MAX)
				v = cgroup_value(dir, "memory.limit_in_bytes");
			/* v1 says "no limit" with a huge page-aligned number. */
			if (v < (1ULL << 62) && v < lim) {
				lim = v;
				*which = "memory.limit_in_bytes";
			}
		}
	}
	return lim;
}

int host_mem_check(uint64_t size, struct err *e)
{
	char want[32], most[32], amount[32], text[8192];
	const char *which = "";
	uint64_t total, cg;
	void *p;

	fmt_size(want, sizeof(want), size);
	/* What this process may map: the address-space limit and strict overcommit
	 * (vm.overcommit_memory=2 ignores MAP_NORESERVE) refuse it here as they would later. The
	 * 2 MiB are guest_mem_init()'s alignment slack. */
	p = mmap(NULL, size + 2 * MiB, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return err_set(e, -ENOMEM, "--mem %s: this process cannot map that much guest RAM "
			       "(%s; see ulimit -v and vm.overcommit_memory); give a smaller --mem",
			       want, strerror(errno));
	munmap(p, size + 2 * MiB);
	total = read_text("/proc/meminfo", text, sizeof(text)) ? host_mem_meminfo_total(text) : 0;
	if (total && size > total) {
		fmt_size(most, sizeof(most), largest_mem(total));
		fmt_amount(amount, sizeof(amount), total);
		return err_set(e, -ENOMEM, "--mem %s: this host has %s of RAM and swap, the most a "
			       "guest could ever get; give at most --mem %s", want, amount, most);
	}
	cg = cgroup_limit(&which);
	if (size > cg) {
		fmt_size(most, sizeof(most), largest_mem(cg));
		fmt_amount(amount, sizeof(amount), cg);
		return err_set(e, -ENOMEM, "--mem %s: mica's cgroup allows %s of memory (%s); give "
			       "at most --mem %s", want, amount, which, most);
	}
	return 0;
}
