/* vmwatch: runs a VMM (or a helper process of one) once and reports, as key=value lines in a
 * file, what it cost by the time it exited.
 *
 *   vmwatch --out FILE [--kvm] [--timeout S] -- CMD [ARGS...]
 *
 * The child inherits stdin, stdout and stderr; it gets SIGKILL if vmwatch dies, and SIGTERM or
 * SIGINT sent to vmwatch is passed on to it. FILE gets, as soon as each is known:
 *   pid=N              the child's process id
 *   kvm_dir=PID-FD     (--kvm) its VM's directory under /sys/kernel/debug/kvm, once the child
 *                      holds a KVM VM descriptor (KVM names the directory after both)
 * and after the child has been reaped:
 *   exit=N or signal=N the child's end; timeout=1 when --timeout S expired (then SIGKILL)
 *   wall_us            fork -> reaped (CLOCK_MONOTONIC)
 *   maxrss_kb          wait4's ru_maxrss: the child's peak resident set size
 *   utime_us, stime_us the child's CPU time (all its threads)
 *   NAME=VALUE         (--kvm) every counter in the VM's debugfs directory: KVM's VM-wide sums
 *                      of its vCPUs' counters (exits, io_exits, halt_exits, ...) over the
 *                      VM's whole life, read after the child has exited
 *
 * How a VM's counters outlive its VMM: while the child runs, its descriptors are looked at
 * every millisecond (/proc/PID/fd) until one is "anon_inode:kvm-vm"; a duplicate of it is
 * taken with pidfd_getfd(2) (Linux >= 5.6; needs ptrace access to the child: root, or the same
 * user where Yama allows). The duplicate keeps the VM -- and its debugfs directory with the
 * final counts -- alive after the VMM has exited, until they have been read; it is closed only
 * then, so KVM's teardown of the VM happens after wall_us was taken (for every VMM alike).
 * Exit status: 0 when measured (whatever the child's own status), 1 otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

#define KVM_DEBUGFS "/sys/kernel/debug/kvm"

static volatile sig_atomic_t child_pid;

static int64_t mono_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

static void pass_on(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static void usage(void)
{
	fprintf(stderr, "usage: vmwatch --out FILE [--kvm] [--timeout S] -- CMD [ARGS...]\n");
	exit(1);
}

/* The number of pid's descriptor that is a KVM VM, or -1. */
static int find_vm_fd(pid_t pid)
{
	char dir[64], target[64];
	struct dirent *d;
	int found = -1;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	dp = opendir(dir);
	if (!dp)
		return -1;
	while (found < 0 && (d = readdir(dp))) {
		ssize_t n;

		if (d->d_name[0] == '.')
			continue;
		n = readlinkat(dirfd(dp), d->d_name, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!strcmp(target, "anon_inode:kvm-vm"))
			found = atoi(d->d_name);
	}
	closedir(dp);
	return found;
}

/* Every file of the VM's debugfs directory that holds one unsigned number, as NAME=VALUE. */
static void dump_kvm_stats(int out, const char *dirname)
{
	char path[512], buf[64];
	unsigned long long v;
	struct dirent *d;
	DIR *dp;

	snprintf(path, sizeof(path), KVM_DEBUGFS "/%s", dirname);
	dp = opendir(path);
	if (!dp) {
		dprintf(out, "kvm_stats_error=%s\n", strerror(errno));
		return;
	}
	while ((d = readdir(dp))) {
		char *end;
		ssize_t n;
		int fd;

		if (d->d_name[0] == '.' || strchr(d->d_name, '='))
			continue;
		fd = openat(dirfd(dp), d->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue; /* directories of the vCPUs and the like open too: read() sorts out */
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		errno = 0;
		v = strtoull(buf, &end, 10);
		if (errno || end == buf || (*end && *end != '\n'))
			continue;
		dprintf(out, "%s=%llu\n", d->d_name, v);
	}
	closedir(dp);
}

int main(int argc, char **argv)
{
	const char *out_path = NULL;
	double timeout_s = 0;
	int want_kvm = 0, i, out, pidfd, vm = -1, status, timed_out = 0;
	char kvm_dir[64] = "";
	struct sigaction sa = { .sa_handler = pass_on };
	struct rusage ru;
	int64_t t0, t1, deadline = 0;
	pid_t pid;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--out") && i + 1 < argc)
			out_path = argv[++i];
		else if (!strcmp(argv[i], "--kvm"))
			want_kvm = 1;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout_s = atof(argv[++i]);
		else if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else
			usage();
	}
	if (!out_path || i >= argc)
		usage();
	out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		fprintf(stderr, "vmwatch: %s: %s\n", out_path, strerror(errno));
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	t0 = mono_us();
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "vmwatch: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		execvp(argv[i], argv + i);
		fprintf(stderr, "vmwatch: %s: %s\n", argv[i], strerror(errno));
		_exit(127);
	}
	child_pid = pid;
	dprintf(out, "pid=%d\n", (int)pid);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		fprintf(stderr, "vmwatch: pidfd_open: %s\n", strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return 1;
	}
	if (timeout_s > 0)
		deadline = t0 + (int64_t)(timeout_s * 1e6);

	/* Until the child exits: every millisecond, its VM descriptor if not yet held. */
	for (;;) {
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int wait_ms = want_kvm && vm < 0 ? 1 : 1000;
		int r;

		if (deadline) {
			int64_t left = deadline - mono_us();

			if (left <= 0) {
				kill(pid, SIGKILL);
				timed_out = 1;
				break;
			}
			if (left / 1000 < wait_ms)
				wait_ms = (int)(left / 1000) + 1;
		}
		r = poll(&p, 1, wait_ms);
		if (r > 0)
			break; /* exited */
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "vmwatch: poll: %s\n", strerror(errno));
			break;
		}
		if (want_kvm && vm < 0) {
			int target = find_vm_fd(pid);

			if (target >= 0) {
				vm = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
				if (vm < 0) {
					fprintf(stderr, "vmwatch: pidfd_getfd: %s: no KVM statistics\n",
						strerror(errno));
					want_kvm = 0;
				} else {
					snprintf(kvm_dir, sizeof(kvm_dir), "%d-%d", (int)pid, target);
					dprintf(out, "kvm_dir=%s\n", kvm_dir);
				}
			}
		}
	}
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "vmwatch: wait4: %s\n", strerror(errno));
			return 1;
		}
	}
	t1 = mono_us();
	child_pid = 0;
	if (WIFEXITED(status))
		dprintf(out, "exit=%d\n", WEXITSTATUS(status));
	else
		dprintf(out, "signal=%d\n", WTERMSIG(status));
	if (timed_out)
		dprintf(out, "timeout=1\n");
	dprintf(out, "wall_us=%" PRId64 "\nmaxrss_kb=%ld\nutime_us=%lld\nstime_us=%lld\n", t1 - t0,
		ru.ru_maxrss, (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
		(long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	if (vm >= 0) {
		dump_kvm_stats(out, kvm_dir);
		close(vm);
	} else if (want_kvm) {
		dprintf(out, "kvm_stats_error=no KVM VM descriptor seen in the child\n");
	}
	close(out);
	return 0;
}
