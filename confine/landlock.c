/* Landlock through its raw system calls (<linux/landlock.h>, no library). See landlock.h. */
#include "confine/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Rights newer than the uapi header mica may be built with (Debian 12's knows ABI 2). */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

/* The rights that apply to a file itself; the others exist only on directories. */
#define FILE_RIGHTS (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
		     LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | \
		     LANDLOCK_ACCESS_FS_IOCTL_DEV)

struct landlock {
	unsigned abi;
	uint64_t handled;
	int ruleset_fd;
	int *fds;                 /* the allowed paths, open until landlock_close() */
	int nfds, cap;
};

/* The applied ruleset, for threads that were already running (landlock_confine_thread()).
 * Written once, by landlock_apply(), before the guest can make any thread work. */
static atomic_int applied_fd = -1;

/* Every filesystem right ABI 1..abi knows, as the kernel's sample computes it. */
static uint64_t rights_of_abi(unsigned abi)
{
	uint64_t r = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0 to 12 */

	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return r;
}

static uint64_t rights_of_use(unsigned use)
{
	uint64_t r = 0;

	if (use & LL_READ)
		r |= LANDLOCK_ACCESS_FS_READ_FILE;
	if (use & LL_WRITE)
		r |= LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE;
	if (use & LL_EXEC)
		r |= LANDLOCK_ACCESS_FS_EXECUTE;
	if (use & LL_IOCTL)
		r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (use & LL_LIST)
		r |= LANDLOCK_ACCESS_FS_READ_DIR;
	if (use & LL_CREATE)
		r |= LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_DIR |
		     LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_MAKE_FIFO |
		     LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_REMOVE_FILE |
		     LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REFER;
	if (use & LL_UNLINK)
		r |= LANDLOCK_ACCESS_FS_REMOVE_FILE;
	return r;
}

int landlock_open(struct landlock **out, unsigned abi_cap, struct err *e)
{
	struct landlock_ruleset_attr attr = { 0 };
	struct landlock *ll;
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	if (abi < 0) {
		if (errno == ENOSYS)
			return err_set(e, -EOPNOTSUPP, "this kernel is built without Landlock");
		if (errno == EOPNOTSUPP)
			return err_set(e, -EOPNOTSUPP, "Landlock is disabled in this kernel (it is "
				       "not in the lsm= boot parameter)");
		return err_set(e, -errno, "cannot ask for the Landlock ABI: %s", strerror(errno));
	}
	if (abi_cap && abi > abi_cap)
		abi = abi_cap;
	ll = calloc(1, sizeof(*ll));
	if (!ll)
		return err_set(e, -ENOMEM, "out of memory");
	ll->abi = (unsigned)abi;
	ll->handled = rights_of_abi(ll->abi);
	attr.handled_access_fs = ll->handled;
	ll->ruleset_fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (ll->ruleset_fd < 0) {
		int err = err_set(e, -errno, "cannot create a Landlock ruleset (ABI %u): %s",
				  ll->abi, strerror(errno));

		free(ll);
		return err;
	}
	*out = ll;
	return 0;
}

unsigned landlock_abi(const struct landlock *ll)
{
	return ll->abi;
}

uint64_t landlock_handled(const struct landlock *ll)
{
	return ll->handled;
}

static int keep_fd(struct landlock *ll, int fd)
{
	if (ll->nfds == ll->cap) {
		int cap = ll->cap ? 2 * ll->cap : 16;
		int *fds = realloc(ll->fds, cap * sizeof(*fds));

		if (!fds)
			return -ENOMEM;
		ll->fds = fds;
		ll->cap = cap;
	}
	ll->fds[ll->nfds++] = fd;
	return 0;
}

/* Adds the rule for fd (which ll now owns, closed on failure). */
static int add_rule(struct landlock *ll, int fd, const char *what, unsigned use, struct err *e)
{
	struct landlock_path_beneath_attr pb = { .parent_fd = fd };
	struct stat st;
	int err;

	if (fstat(fd, &st) < 0) {
		err = err_set(e, -errno, "landlock: cannot stat %s: %s", what, strerror(errno));
		close(fd);
		return err;
	}
	pb.allowed_access = rights_of_use(use) & ll->handled;
	if (!S_ISDIR(st.st_mode))
		pb.allowed_access &= FILE_RIGHTS;
	if (!pb.allowed_access) { /* nothing this ABI restricts: no rule needed */
		close(fd);
		return 0;
	}
	if (syscall(SYS_landlock_add_rule, ll->ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0)) {
		err = err_set(e, -errno, "landlock: cannot add a rule for %s: %s", what,
			      strerror(errno));
		close(fd);
		return err;
	}
	if (keep_fd(ll, fd)) {
		close(fd);
		return err_set(e, -ENOMEM, "out of memory");
	}
	return 0;
}

int landlock_allow(struct landlock *ll, const char *path, unsigned use, struct err *e)
{
	int fd = open(path, O_PATH | O_CLOEXEC);

	if (fd < 0)
		return err_set(e, -errno, "landlock: cannot open %s to allow it: %s", path,
			       strerror(errno));
	return add_rule(ll, fd, path, use, e);
}

static int restrict_self(int ruleset_fd)
{
	/* Required of an unprivileged process, so that no exec can regain privileges. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	if (syscall(SYS_landlock_restrict_self, ruleset_fd, 0) < 0)
		return -errno;
	return 0;
}

int landlock_apply(struct landlock *ll, struct err *e)
{
	/* Kept open, never closed, for the threads started before now. */
	int keep = fcntl(ll->ruleset_fd, F_DUPFD_CLOEXEC, 3);
	int err;

	if (keep < 0)
		return err_set(e, -errno, "cannot keep the Landlock ruleset: %s", strerror(errno));
	err = restrict_self(ll->ruleset_fd);
	if (err) {
		close(keep);
		return err_set(e, err, "cannot apply the Landlock ruleset: %s", strerror(-err));
	}
	atomic_store(&applied_fd, keep);
	return 0;
}

int landlock_confine_thread(void)
{
	int fd = atomic_load(&applied_fd);

	if (fd < 0)
		return 0;
	/* A blk worker runs under its seccomp filter by now, which set no_new_privs and allows
	 * landlock_restrict_self but not prctl. */
	if (syscall(SYS_landlock_restrict_self, fd, 0) == 0)
		return 0;
	return errno == EPERM ? restrict_self(fd) : -errno;
}

void landlock_close(struct landlock *ll)
{
	if (!ll)
		return;
	for (int i = 0; i < ll->nfds; i++)
		close(ll->fds[i]);
	free(ll->fds);
	close(ll->ruleset_fd);
	free(ll);
}
