/* The warm start of `mica sandbox`: a snapshot per kernel, modules and options in a cache
 * directory, taken by the first run once the guest's init has loaded its modules (milestone
 * SANDBOX_MILESTONE_READY: nothing of the job read, no share mounted), restored by every later
 * run, which then hands the init its job (sandbox_send_job) and goes on from there.
 *
 * The cache entry's name is a hash of everything the snapshot depends on: mica's binary, the
 * kernel file, the initramfs (the modules, byte for byte), the kernel command line, --mem,
 * --cpus and the device set (console kind, ports, shares' tags and flags). A change to any of
 * them is another entry; an entry that cannot be used (damaged, another host CPU) is replaced
 * by a cold run, never used. Several runs may restore one entry at once: it is only read, and
 * its RAM mapped private; one written meanwhile replaces it by rename. At most
 * WARM_MAX_ENTRIES entries are kept, the least recently used removed first. */
#ifndef MICA_CMD_SANDBOX_WARM_H
#define MICA_CMD_SANDBOX_WARM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cmd/config.h"
#include "cmd/sandbox.h"
#include "cmd/sandbox_cli.h"
#include "vmm/err.h"
#include "vmm/evloop.h"

#define WARM_MAX_ENTRIES 8

struct vm;
struct milestones;

enum warm_mode {
	WARM_COLD,      /* boot; make no snapshot (--cold, or no cache directory) */
	WARM_CREATE,    /* boot, and save the VM at the READY milestone */
	WARM_RESTORE,   /* restore the cached snapshot */
};

struct sandbox_warm {
	enum warm_mode mode;
	bool restored;            /* the run did start from the snapshot */
	bool made;                /* the run saved a snapshot */
	const char *why_cold;     /* why a run that could have been warm was not */
	char dir[PATH_MAX];
	char path[PATH_MAX + 32]; /* the cache entry */
	uint64_t save_ns;         /* how long the VM stood still to be saved */
	/* What a restore replaces, for a fall back to booting. */
	const char *kernel;
	const uint8_t *initrd_data;
	size_t initrd_size;
	const char *cmdline;
	/* While the VM runs (WARM_CREATE): the READY milestone, from a vCPU to the loop. */
	struct sandbox_run *run;
	struct vm *vm;
	struct ev_handler ready;
};

/* Picks the mode for o and the prepared c, r, and sets c up for it (WARM_RESTORE: --restore
 * the entry; WARM_CREATE: --snapshot-dir the cache). Fails only for a --cache DIR mica cannot
 * use (a user error); without --cache, any trouble with the default directory means a cold
 * run. */
int sandbox_warm_prepare(const struct sandbox_opts *o, struct mica_config *c,
			 struct sandbox_run *r, struct sandbox_warm *w, struct err *e);
/* The VM is built (and restored, or loaded): hand the init its job now (WARM_COLD,
 * WARM_RESTORE) or once the snapshot is saved (WARM_CREATE). */
int sandbox_warm_start(struct sandbox_warm *w, struct vm *vm, struct milestones *ms);
/* The restore failed (why): boot instead, replacing the entry. */
void sandbox_warm_fall_back(struct sandbox_warm *w, struct mica_config *c, const char *why);
/* --json's "warm" member. */
void sandbox_warm_json(void *opaque, FILE *f);
void sandbox_warm_release(struct sandbox_warm *w);

#endif
