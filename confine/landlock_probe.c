#include "confine/landlock_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "vmm/bus.h"
#include "vmm/log.h"

static void try_open(const char *path, int flags, const char *how)
{
	int fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		pr_warn("landlock probe: open %s for %s: %s", path, how, strerror(errno));
		return;
	}
	close(fd);
	pr_warn("landlock probe: open %s for %s: ok", path, how);
}

static void probe_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	(void)off, (void)data, (void)len;
	try_open(opaque, O_RDONLY, "reading");
	try_open(opaque, O_WRONLY, "writing");
}

static void probe_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque, (void)off;
	memset(data, 0xff, len);
}

static const struct bus_ops probe_ops = { .read = probe_read, .write = probe_write };

int landlock_probe_create(struct machine *m, const char *path)
{
	return bus_register(m->pio, LANDLOCK_PROBE_PORT, 1, &probe_ops, (void *)path,
			    "landlock-probe");
}
