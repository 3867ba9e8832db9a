#include "cmd/snapshot_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/control.h"
#include "vmm/log.h"
#include "vmm/vm.h"
#include "vmm/vm_snapshot.h"

struct snapshot_cmd {
	struct vm *vm;
	const char *dir;
};

/* A plain file name: the command writes beneath --snapshot-dir only, whoever sends it. */
static bool plain_name(const char *s, size_t len)
{
	return len && len < 200 && !memchr(s, '/', len) && strncmp(s, ".", len) &&
	       strncmp(s, "..", len);
}

static int cmd_snapshot(void *opaque, const char *args, char *out, size_t outlen)
{
	struct snapshot_cmd *sc = opaque;
	struct vm_snapshot_result res;
	struct err e = { "" };
	char path[4096];
	size_t n = strcspn(args, " ");
	const char *rest = args + n + strspn(args + n, " ");
	bool stop = !strcmp(rest, "stop");
	int err;

	if (!sc->dir) {
		snprintf(out, outlen, "snapshots are off: start mica with --snapshot-dir DIR");
		return -EPERM;
	}
	if (!plain_name(args, n) || (rest[0] && !stop)) {
		snprintf(out, outlen, "usage: snapshot NAME [stop] (NAME: a file name, saved in %s)",
			 sc->dir);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "%s/%.*s", sc->dir, (int)n, args);
	err = vm_snapshot(sc->vm, path, &res, &e);
	if (err) {
		snprintf(out, outlen, "%s", e.msg);
		return err;
	}
	snprintf(out, outlen, "snapshot %s: %llu MiB of RAM, paused %llu ms%s", path,
		 (unsigned long long)(res.ram_bytes >> 20),
		 (unsigned long long)(res.paused_ns / 1000000), stop ? ", stopping" : "");
	pr_info("snapshot saved to %s (paused %llu ms)", path,
		(unsigned long long)(res.paused_ns / 1000000));
	if (stop)
		vm_request_exit(sc->vm, 0, "snapshot");
	return 0;
}

int snapshot_cmd_register(struct control *ctl, struct vm *vm, const char *dir)
{
	struct snapshot_cmd *sc = calloc(1, sizeof(*sc));
	int err;

	if (!sc)
		return -ENOMEM;
	*sc = (struct snapshot_cmd){ vm, dir };
	err = vm_own(vm, sc, free);
	if (err) {
		free(sc);
		return err;
	}
	return control_register(ctl, "snapshot", "snapshot NAME [stop]: save the VM in "
				"--snapshot-dir (and end it)", cmd_snapshot, sc);
}
