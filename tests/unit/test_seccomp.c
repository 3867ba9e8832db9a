/* The seccomp filters (confine/seccomp.c) on this machine's kernel, without KVM: each case
 * runs in a forked child that installs one kind's filter and makes calls; an allowed call
 * returns (with whatever error its bogus arguments earn), a forbidden one ends the child with
 * status 125 and one line naming the call and the thread. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine/seccomp.h"
#include "confine/syscall_names.h"
#include "tests/unit/test.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

struct outcome {
	int status;        /* exit status, or 128 + signal */
	char err[256];     /* the child's stderr */
};

/* Runs fn in a child confined as kind (with probe and on as given); fn's return value is the
 * child's exit status. */
static struct outcome confined(enum seccomp_kind kind, bool on, enum seccomp_kind probe,
			       int (*fn)(void))
{
	struct outcome o = { .status = -1 };
	int pipefd[2], ws;
	pid_t pid;
	ssize_t n;

	fflush(stdout);
	if (pipe(pipefd) < 0)
		return o;
	pid = fork();
	if (pid == 0) {
		struct seccomp_opts opts = { .on = on, .probe = probe };

		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		if (seccomp_setup(&opts))
			_exit(99);
		seccomp_enter(kind, kind == SECCOMP_VCPU ? 3 : -1);
		_exit(fn());
	}
	close(pipefd[1]);
	n = read(pipefd[0], o.err, sizeof(o.err) - 1);
	o.err[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	if (pid > 0 && waitpid(pid, &ws, 0) == pid)
		o.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	return o;
}

/* Allowed calls with arguments that make them fail harmlessly: they must return. */
static int vcpu_allowed_calls(void)
{
	if (ioctl(-1, KVM_RUN, 0) != -1 || errno != EBADF)
		return 1;
	if (ioctl(-1, KVM_IRQ_LINE, 0) != -1 || errno != EBADF)
		return 2;
	if (write(-1, "", 0) != -1 || errno != EBADF)
		return 3;
	return 0;
}

static int ioctl_not_kvm(void)
{
	return ioctl(-1, TIOCSTI, "x") == -1 ? 10 : 11; /* a TTY ioctl: forbidden */
}

static int mmap_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? 12 : 13;
}

static int mmap_rw(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? 14 : 0;
}

static int socket_inet(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	return fd >= 0 ? 0 : 15;
}

static int socket_unix(void)
{
	return socket(AF_UNIX, SOCK_STREAM, 0) >= 0 ? 16 : 17;
}

static int open_file(void)
{
	return open("/dev/null", O_RDONLY) >= 0 ? 18 : 19;
}

static int nothing(void)
{
	return 0;
}

static bool said(const struct outcome *o, const char *call, int nr, const char *thread)
{
	char want[128];

	snprintf(want, sizeof(want), "mica: seccomp: forbidden system call %s (%d; arguments ", call,
		 nr);
	return strstr(o->err, want) == o->err && strstr(o->err, thread) &&
	       strchr(o->err, '\n') == o->err + strlen(o->err) - 1;
}

static void test_allowed_calls_return(void)
{
	struct outcome o = confined(SECCOMP_VCPU, true, SECCOMP_NONE, vcpu_allowed_calls);

	CHECK_EQ(o.status, 0);
	CHECK_EQ(o.err[0], 0);
	o = confined(SECCOMP_LOOP, true, SECCOMP_NONE, socket_inet);
	CHECK_EQ(o.status, 0);
	o = confined(SECCOMP_VCPU, true, SECCOMP_NONE, mmap_rw);
	CHECK_EQ(o.status, 0);
}

static void test_forbidden_ioctl_ends_with_125(void)
{
	struct outcome o = confined(SECCOMP_VCPU, true, SECCOMP_NONE, ioctl_not_kvm);

	CHECK_EQ(o.status, SECCOMP_EXIT_STATUS);
	CHECK(said(&o, "ioctl", __NR_ioctl, "on thread vcpu3 (vcpu)"));
	CHECK(strstr(o.err, "; arguments 0xffffffff, 0x5412, ")); /* fd -1, TIOCSTI */
	printf("# %s", o.err);
}

static void test_executable_memory_refused(void)
{
	struct outcome o = confined(SECCOMP_LOOP, true, SECCOMP_NONE, mmap_exec);

	CHECK_EQ(o.status, SECCOMP_EXIT_STATUS);
	CHECK(said(&o, "mmap", __NR_mmap, "on thread loop (loop)"));
}

static void test_loop_sockets_inet_only(void)
{
	struct outcome o = confined(SECCOMP_LOOP, true, SECCOMP_NONE, socket_unix);

	CHECK_EQ(o.status, SECCOMP_EXIT_STATUS);
	CHECK(said(&o, "socket", __NR_socket, "(loop)"));
	CHECK(strstr(o.err, "; arguments 0x1, ")); /* AF_UNIX */
}

static void test_io_worker_cannot_open(void)
{
	struct outcome o = confined(SECCOMP_IO, true, SECCOMP_NONE, open_file);

	CHECK_EQ(o.status, SECCOMP_EXIT_STATUS);
	CHECK(said(&o, "openat", __NR_openat, "on thread io (io)"));
}

static void test_probe_per_kind(void)
{
	for (int k = 0; k < SECCOMP_NKINDS; k++) {
		struct outcome o = confined(k, true, k, nothing);
		char thread[32];

		snprintf(thread, sizeof(thread), "(%s): stopping", seccomp_kind_name(k));
		CHECK_EQ(o.status, SECCOMP_EXIT_STATUS);
		CHECK(said(&o, "personality", __NR_personality, thread));
		/* Another kind's probe is not this thread's business. */
		o = confined(k, true, (k + 1) % SECCOMP_NKINDS, nothing);
		CHECK_EQ(o.status, 0);
	}
}

static void test_off_lets_the_probe_through(void)
{
	struct outcome o = confined(SECCOMP_VCPU, false, SECCOMP_VCPU, ioctl_not_kvm);

	CHECK_EQ(o.status, 10);
	CHECK_EQ(o.err[0], 0);
}

/* The lists: small, ascending, without the calls that would undo the confinement. */
static void test_lists(void)
{
	static const int never[] = { __NR_execve, __NR_execveat, __NR_ptrace, __NR_personality,
				      __NR_clone, __NR_clone3, __NR_fork, __NR_vfork,
				      __NR_process_vm_writev, __NR_bpf, __NR_seccomp, __NR_prctl,
				      __NR_mount, __NR_kexec_load, __NR_init_module };
	struct seccomp_opts all = { .exit_writes_file = true, .control_socket = true, .tap = true,
				   .slirp = true };
	int nrs[128];

	for (int k = 0; k < SECCOMP_NKINDS; k++) {
		int n = seccomp_allowed(k, &all, nrs, 128);

		printf("# %s: %d calls:", seccomp_kind_name(k), n);
		for (int i = 0; i < n; i++)
			printf(" %s", syscall_name((unsigned long)nrs[i]));
		printf("\n");
		CHECK(n > 10);
		/* Sanitizer builds add up to twelve calls (confine/seccomp_lists.c's
		 * sanitizer_rules: the runtimes' thread hooks and a report's symbolizer). The fs
		 * thread makes hostfs's file calls on top of a loop's. */
		CHECK(n <= (k == SECCOMP_LOOP ? 48 : k == SECCOMP_FS ? 56 : 26) + 12 * SANITIZED);
		for (int i = 0; i < n; i++)
			for (size_t j = 0; j < sizeof(never) / sizeof(never[0]); j++)
				CHECK(nrs[i] != never[j]);
		for (int i = 1; i < n; i++)
			CHECK(nrs[i - 1] < nrs[i]);
	}
}

TEST_MAIN("seccomp", T(test_allowed_calls_return), T(test_forbidden_ioctl_ends_with_125),
	  T(test_executable_memory_refused), T(test_loop_sockets_inet_only),
	  T(test_io_worker_cannot_open), T(test_probe_per_kind), T(test_off_lets_the_probe_through),
	  T(test_lists))
