/* confine/landlock.c against the running kernel's Landlock (each confinement in a child
 * process): what a rule allows opens, everything else is refused with EACCES; older ABIs are
 * masked, not refused; a thread started before the ruleset is applied confines itself through
 * vmm/confine.h. Skipped where the kernel has no Landlock. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine/landlock.h"
#include "tests/unit/test.h"
#include "vmm/confine.h"

/* Landlock's filesystem rights, by ABI (the uapi header may predate some). */
#define FS_REFER    (1ULL << 13)
#define FS_TRUNCATE (1ULL << 14)
#define FS_IOCTL    (1ULL << 15)

static char dir[64];
static char allowed[96], neighbour[96];

static unsigned kernel_abi(void)
{
	struct landlock *ll;
	struct err e;
	unsigned abi;

	if (landlock_open(&ll, 0, &e))
		return 0;
	abi = landlock_abi(ll);
	landlock_close(ll);
	return abi;
}

static void make_files(void)
{
	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "/tmp/mica-test-landlock.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(allowed, sizeof(allowed), "%s/allowed", dir);
	snprintf(neighbour, sizeof(neighbour), "%s/neighbour", dir);
	for (const char *p = allowed; p; p = p == allowed ? neighbour : NULL) {
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0 || write(fd, "x", 1) != 1)
			abort();
		close(fd);
	}
}

/* errno of open(path, flags) (0 when it opened). */
static int open_errno(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* Runs fn in a child; CHECKs inside it count there, so the child exits 1 on any failure. */
static int in_child(void (*fn)(void))
{
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		test_failed_checks = 0; /* the child's own */
		fn();
		fflush(stdout);
		_exit(test_failed_checks ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void confine_read_only(unsigned abi_cap)
{
	struct landlock *ll;
	struct err e = { "" };

	CHECK_EQ(landlock_open(&ll, abi_cap, &e), 0);
	CHECK_EQ(landlock_allow(ll, allowed, LL_READ, &e), 0);
	CHECK_EQ(landlock_apply(ll, &e), 0);
	landlock_close(ll); /* the confinement stays */
}

static void child_refuses_what_no_rule_names(void)
{
	confine_read_only(0);
	CHECK_EQ(open_errno(allowed, O_RDONLY), 0);
	CHECK_EQ(open_errno(allowed, O_WRONLY), EACCES);
	CHECK_EQ(open_errno(neighbour, O_RDONLY), EACCES);
	CHECK_EQ(open_errno(neighbour, O_WRONLY), EACCES);
	CHECK_EQ(open_errno(dir, O_RDONLY | O_DIRECTORY), EACCES);
	CHECK_EQ(open_errno("/etc/hostname", O_RDONLY), EACCES);
	CHECK_EQ(mkdir("/tmp/mica-test-landlock-nope", 0700) < 0 ? errno : 0, EACCES);
}

static void test_refuses_what_no_rule_names(void)
{
	if (!kernel_abi())
		TEST_SKIP("this kernel has no Landlock");
	make_files();
	CHECK_EQ(in_child(child_refuses_what_no_rule_names), 0);
}

/* Every ABI from 1 to the kernel's: only the rights it knows are handled, and rules asking for
 * more (LL_CREATE's refer, LL_WRITE's truncate, LL_IOCTL) are masked, not refused. */
static void test_abi_masks(void)
{
	unsigned top = kernel_abi();

	if (!top)
		TEST_SKIP("this kernel has no Landlock");
	make_files();
	for (unsigned abi = 1; abi <= top; abi++) {
		struct landlock *ll;
		struct err e = { "" };
		uint64_t h;

		CHECK_EQ(landlock_open(&ll, abi, &e), 0);
		if (!ll)
			continue;
		h = landlock_handled(ll);
		CHECK_EQ(landlock_abi(ll), abi);
		CHECK_EQ(!!(h & FS_REFER), abi >= 2);
		CHECK_EQ(!!(h & FS_TRUNCATE), abi >= 3);
		CHECK_EQ(!!(h & FS_IOCTL), abi >= 5);
		CHECK_EQ(h & 0x1fff, 0x1fff); /* ABI 1: execute, read, write, make_*, remove_* */
		CHECK_EQ(landlock_allow(ll, dir, LL_READ | LL_WRITE | LL_LIST | LL_CREATE | LL_UNLINK,
					&e), 0);
		/* Directory rights on a file are dropped, not an error. */
		CHECK_EQ(landlock_allow(ll, allowed, LL_READ | LL_WRITE | LL_IOCTL | LL_LIST |
					LL_CREATE, &e), 0);
		CHECK_EQ(landlock_allow(ll, "/nonexistent/mica", LL_READ, &e), -ENOENT);
		landlock_close(ll);
	}
}

static void child_abi1(void)
{
	confine_read_only(1);
	CHECK_EQ(open_errno(allowed, O_RDONLY), 0);
	CHECK_EQ(open_errno(allowed, O_WRONLY), EACCES);
	CHECK_EQ(open_errno(neighbour, O_RDONLY), EACCES);
}

static void test_abi1_still_confines(void)
{
	if (!kernel_abi())
		TEST_SKIP("this kernel has no Landlock");
	make_files();
	CHECK_EQ(in_child(child_abi1), 0);
}

/* A thread started before the ruleset (a blk pool worker) is unconfined until it runs
 * confine_late_thread(), and confined after. */
static sem_t go, done;
static int before_errno, after_errno;

static void *late_thread(void *arg)
{
	unsigned confined = 0;

	(void)arg;
	sem_wait(&go);
	before_errno = open_errno(neighbour, O_RDONLY);
	confine_late_thread(&confined);
	after_errno = open_errno(neighbour, O_RDONLY);
	sem_post(&done);
	return NULL;
}

static void child_late_thread(void)
{
	pthread_t t;

	sem_init(&go, 0, 0);
	sem_init(&done, 0, 0);
	CHECK_EQ(pthread_create(&t, NULL, late_thread, NULL), 0);
	confine_read_only(0);
	CHECK_EQ(confine_add(landlock_confine_thread), 0);
	CHECK_EQ(open_errno(neighbour, O_RDONLY), EACCES); /* the main thread */
	sem_post(&go);
	sem_wait(&done);
	pthread_join(t, NULL);
	CHECK_EQ(before_errno, 0);
	CHECK_EQ(after_errno, EACCES);
}

static void test_late_thread_confines_itself(void)
{
	if (!kernel_abi())
		TEST_SKIP("this kernel has no Landlock");
	make_files();
	CHECK_EQ(in_child(child_late_thread), 0);
}

static void test_cleanup(void)
{
	if (dir[0]) {
		unlink(allowed);
		unlink(neighbour);
		CHECK_EQ(rmdir(dir), 0);
	}
}

TEST_MAIN("landlock",
	T(test_refuses_what_no_rule_names),
	T(test_abi_masks),
	T(test_abi1_still_confines),
	T(test_late_thread_confines_itself),
	T(test_cleanup))
