/* The Landlock rules of `mica run` (confine/landlock.h). Files mica opened during setup stay
 * usable whatever the rules say; the rules decide what may be opened again, or for the first
 * time, afterwards. Anything an option names that mica might open late is allowed here, and
 * nothing else: a guest that takes over a device model finds every other file refused. */
#include "cmd/landlock_rules.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "cmd/config.h"

#include "confine/landlock.h"
#include "vmm/confine.h"
#include "vmm/log.h"

/* A path that may be missing on this host (no tap support, no resolv.conf) just gets no rule. */
static int allow_if_present(struct landlock *ll, const char *path, unsigned use, struct err *e)
{
	int err = landlock_allow(ll, path, use, e);

	if (err == -ENOENT) {
		e->msg[0] = '\0';
		return 0;
	}
	return err;
}

static int add_rules(struct landlock *ll, const struct mica_config *c, struct err *e)
{
	int err = landlock_allow(ll, "/dev/kvm", LL_READ | LL_WRITE | LL_IOCTL, e);

	for (int i = 0; !err && i < c->ndisks; i++)
		err = landlock_allow(ll, c->disks[i].path, LL_READ | (c->disks[i].ro ? 0 : LL_WRITE),
				     e);
	for (int i = 0; !err && i < c->nnets; i++) {
		if (c->nets[i].kind == NET_TAP)
			err = landlock_allow(ll, "/dev/net/tun", LL_READ | LL_WRITE | LL_IOCTL, e);
		else if (c->nets[i].kind == NET_USER)
			/* libslirp reads it when the guest first asks its DNS address (10.0.2.3). */
			err = allow_if_present(ll, "/etc/resolv.conf", LL_READ, e);
	}
	for (int i = 0; !err && i < c->nshares; i++)
		err = landlock_allow(ll, c->shares[i].path, LL_READ | LL_LIST |
				     (c->shares[i].ro ? 0 : LL_WRITE | LL_CREATE), e);
	/* hostfs reads the mount table again when a new mount turns up inside a share. */
	if (!err && c->nshares)
		err = landlock_allow(ll, "/proc/self/mountinfo", LL_READ, e);
	/* `snapshot NAME` writes DIR/NAME.tmp.PID and renames it to DIR/NAME (removed on a
	 * failure). */
	if (!err && c->snapshot_dir)
		err = landlock_allow(ll, c->snapshot_dir, LL_READ | LL_WRITE | LL_CREATE | LL_UNLINK, e);
	/* --stats-json was opened before the run (vmm/outfile.h) and is written through that fd;
	 * its "memory" section reads mica's own smaps at exit. */
	if (!err && c->stats_path)
		err = landlock_allow(ll, "/proc/self/smaps", LL_READ, e);
	/* The --control socket is bound already; clients connecting need no rule. Removing it at
	 * exit would need LL_UNLINK on its whole directory tree: it stays, and the next run on
	 * that path replaces it (vmm/control.c). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* Sanitizer builds only: their runtimes read /proc/self/maps, list /proc/self/task (LSan)
	 * and read mica's binary and libraries (symbolizing a report) after setup. */
	if (!err)
		err = landlock_allow(ll, "/proc", LL_READ | LL_LIST, e);
	if (!err)
		err = landlock_allow(ll, "/proc/self/exe", LL_READ, e);
	if (!err)
		err = allow_if_present(ll, "/usr", LL_READ | LL_EXEC | LL_LIST, e);
#endif
	return err;
}

int landlock_confine(const struct mica_config *c, struct landlock **out, struct err *e)
{
	struct landlock *ll;
	int err;

	*out = NULL;
	if (!c->landlock) {
		pr_info("landlock: off (--landlock off): mica may open any file its user may");
		return 0;
	}
	err = landlock_open(&ll, 0, e);
	if (err == -EOPNOTSUPP) {
		pr_info("landlock: not available (%s): mica runs without it", e->msg);
		e->msg[0] = '\0';
		return 0;
	}
	if (err)
		return err;
	err = add_rules(ll, c, e);
	if (!err)
		err = landlock_apply(ll, e);
	if (!err)
		err = confine_add(landlock_confine_thread);
	if (!err)
		pr_info("landlock: on (ABI %u): after setup mica opens only the files its options "
			"named", landlock_abi(ll));
	if (err) {
		landlock_close(ll);
		return err;
	}
	*out = ll;
	return 0;
}
