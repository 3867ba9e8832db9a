/* benchrun: runs one VMM once and reports, as key=value lines on stdout, what it cost.
 *
 *   benchrun [--out FILE] [--err FILE] [--preload SO] [--timeout S]
 *            [--sample-at TEXT [--then-send LINE]] -- CMD [ARGS...]
 *
 * Timing (always): the forked child reads CLOCK_MONOTONIC and its CPU clock immediately before
 * execve() and leaves them in a shared page; the LD_PRELOAD shim (--preload, firstrun.so) reads
 * the same clocks at the first KVM_RUN; wait4() gives the CPU time (user+sys, all threads) at
 * exit and the moment it returns ends the wall time. The CPU the child spent before execve (a
 * few microseconds) is subtracted, so both figures count from the exec on.
 *   wall_run_us, cpu_run_us     exec -> first KVM_RUN issued
 *   wall_exit_us, cpu_exit_us   exec -> exit (reaped); also utime_us, stime_us (tick-sampled
 *                               split of cpu_exit_us: only the sum is exact)
 *   ioctls_before_run, exit (status) or signal
 * Memory (--sample-at): when TEXT appears on the child's stdout (the guest waits there),
 * /proc/PID/smaps is read; the VMAs holding the guest RAM the shim saw being registered with
 * KVM_SET_USER_MEMORY_REGION are separated from the rest:
 *   rss_total_kb, rss_guest_kb, rss_vmm_kb (= total - guest), pss_vmm_kb, private_vmm_kb,
 *   private_dirty_vmm_kb, anon_vmm_kb, file_vmm_kb, guest_exact (1: those VMAs are exactly
 *   the registered ranges), threads, and top_vma lines: the largest other mappings.
 * Then LINE is written to the child's stdin (--then-send), or else it gets SIGTERM.
 * The child's stdin is /dev/null unless --sample-at is given (then a pipe).
 * Exit status: 0 when measured (whatever the child's status, which is reported), 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/firstrun.h"

struct pre_exec {
	int64_t mono_ns, cpu_ns;
};

static int64_t ts_ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr, "usage: benchrun [--out FILE] [--err FILE] [--preload SO] [--timeout S] "
			"[--sample-at TEXT [--then-send LINE]] -- CMD [ARGS...]\n");
	exit(1);
}

#define TOP_VMAS 4

struct vma_info {
	unsigned long rss, thp;
	char desc[160]; /* the smaps header: range, perms, ..., path */
};

struct smaps_sum {
	unsigned long rss, pss, priv, priv_dirty, anon, file, guest_rss, guest_vma_kb;
	int guest_exact;
	struct vma_info top[TOP_VMAS]; /* the largest VMAs by Rss outside guest RAM */
};

static void keep_top(struct smaps_sum *s, const struct vma_info *v)
{
	int i = TOP_VMAS;

	while (i > 0 && s->top[i - 1].rss < v->rss) {
		if (i < TOP_VMAS)
			s->top[i] = s->top[i - 1];
		i--;
	}
	if (i < TOP_VMAS)
		s->top[i] = *v;
}

/* Sums /proc/PID/smaps, splitting off the VMAs inside the guest-RAM ranges in rec. */
static int read_smaps(pid_t pid, const struct firstrun_rec *rec, struct smaps_sum *s)
{
	char path[64], line[512];
	unsigned long long start = 0, end = 0, slot_kb = 0;
	int guest = 0, file_backed = 0, partial = 0;
	struct vma_info cur = { 0 };
	FILE *f;

	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long v;
		char name[32];

		if (sscanf(line, "%llx-%llx ", &start, &end) == 2) {
			unsigned long long off, inode = 0;
			char perms[8], dev[16];

			sscanf(line, "%llx-%llx %7s %llx %15s %llu", &start, &end, perms, &off, dev,
			       &inode);
			file_backed = inode != 0;
			guest = 0;
			memset(&cur, 0, sizeof(cur));
			snprintf(cur.desc, sizeof(cur.desc), "%.*s", (int)strcspn(line, "\n"), line);
			for (uint32_t i = 0; i < rec->nslots; i++) {
				uint64_t a = rec->slots[i].hva, b = a + rec->slots[i].size;

				if (start < b && end > a) {
					guest = 1;
					if (start < a || end > b)
						partial = 1;
				}
			}
			if (guest)
				s->guest_vma_kb += (end - start) / 1024;
			continue;
		}
		if (!strncmp(line, "VmFlags:", 8)) { /* the last line of a VMA's block */
			if (!guest && cur.rss)
				keep_top(s, &cur);
			continue;
		}
		if (sscanf(line, "%31[^:]: %lu kB", name, &v) != 2)
			continue;
		if (!strcmp(name, "AnonHugePages"))
			cur.thp = v;
		if (!strcmp(name, "Rss")) {
			cur.rss = v;
			s->rss += v;
			if (guest)
				s->guest_rss += v;
			else if (file_backed)
				s->file += v;
		}
		if (guest)
			continue;
		if (!strcmp(name, "Pss"))
			s->pss += v;
		else if (!strcmp(name, "Private_Clean"))
			s->priv += v;
		else if (!strcmp(name, "Private_Dirty")) {
			s->priv += v;
			s->priv_dirty += v;
		} else if (!strcmp(name, "Anonymous"))
			s->anon += v;
	}
	fclose(f);
	for (uint32_t i = 0; i < rec->nslots; i++)
		slot_kb += rec->slots[i].size / 1024;
	s->guest_exact = !partial && rec->nslots > 0 && slot_kb == s->guest_vma_kb;
	return 0;
}

static int threads_of(pid_t pid)
{
	char path[64], line[256];
	int n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	const char *out_path = NULL, *err_path = "/dev/null", *preload = NULL, *sample_at = NULL;
	const char *then_send = NULL;
	double timeout_s = 120;
	int i, outp[2], inp[2] = { -1, -1 }, memfd, out_fd = -1, err_fd, status;
	struct pre_exec *pre;
	struct firstrun_rec rec;
	struct smaps_sum sm;
	int sampled = 0, timed_out = 0, threads = -1;
	static char buf[1 << 20];
	size_t len = 0;
	struct rusage ru;
	int64_t deadline, t_end;
	pid_t pid;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (i + 1 >= argc)
			usage();
		if (!strcmp(argv[i], "--out"))
			out_path = argv[++i];
		else if (!strcmp(argv[i], "--err"))
			err_path = argv[++i];
		else if (!strcmp(argv[i], "--preload"))
			preload = argv[++i];
		else if (!strcmp(argv[i], "--timeout"))
			timeout_s = atof(argv[++i]);
		else if (!strcmp(argv[i], "--sample-at"))
			sample_at = argv[++i];
		else if (!strcmp(argv[i], "--then-send"))
			then_send = argv[++i];
		else
			usage();
	}
	if (i + 1 >= argc)
		usage();
	argv += i + 1;

	memfd = memfd_create("firstrun", 0); /* inherited: the shim writes into it */
	pre = mmap(NULL, sizeof(*pre), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (memfd < 0 || ftruncate(memfd, sizeof(rec)) < 0 || pre == MAP_FAILED ||
	    pipe2(outp, O_CLOEXEC) < 0 || (sample_at && pipe2(inp, O_CLOEXEC) < 0)) {
		perror("benchrun: setup");
		return 1;
	}
	if (out_path && (out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
		perror(out_path);
		return 1;
	}
	err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (err_fd < 0) {
		perror(err_path);
		return 1;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("benchrun: fork");
		return 1;
	}
	if (pid == 0) {
		char fdnum[16];
		int in = sample_at ? inp[0] : open("/dev/null", O_RDONLY);

		snprintf(fdnum, sizeof(fdnum), "%d", memfd);
		setenv("FIRSTRUN_FD", fdnum, 1);
		if (preload)
			setenv("LD_PRELOAD", preload, 1);
		if (in < 0 || dup2(in, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(err_fd, 2) < 0)
			_exit(127);
		pre->cpu_ns = ts_ns(CLOCK_PROCESS_CPUTIME_ID);
		pre->mono_ns = ts_ns(CLOCK_MONOTONIC);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(outp[1]);
	close(err_fd);
	if (inp[0] >= 0)
		close(inp[0]);

	/* Drain the child's stdout until EOF (it exited), sampling memory on the way. */
	deadline = ts_ns(CLOCK_MONOTONIC) + (int64_t)(timeout_s * 1e9);
	for (;;) {
		struct pollfd p = { .fd = outp[0], .events = POLLIN };
		int64_t left = deadline - ts_ns(CLOCK_MONOTONIC);
		ssize_t n;

		if (left <= 0 && !timed_out) {
			timed_out = 1;
			kill(pid, SIGKILL);
		}
		if (poll(&p, 1, left > 0 ? (int)(left / 1000000 + 1) : 1000) < 0 && errno != EINTR)
			break;
		if (!p.revents)
			continue;
		n = read(outp[0], buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out_fd >= 0 && write(out_fd, buf + len, n) != n)
			perror("benchrun: --out");
		len += n;
		buf[len] = 0;
		if (len == sizeof(buf) - 1)
			len = 0; /* keep draining; only the marker search loses context */
		if (sample_at && !sampled && strstr(buf, sample_at)) {
			sampled = 1;
			if (pread(memfd, &rec, sizeof(rec), 0) != (ssize_t)sizeof(rec) ||
			    read_smaps(pid, &rec, &sm) < 0) {
				fprintf(stderr, "benchrun: cannot read the child's smaps or record\n");
				sampled = -1;
			}
			threads = threads_of(pid);
			if (then_send) {
				char line[512];
				int l = snprintf(line, sizeof(line), "%s\n", then_send);

				if (write(inp[1], line, l) != l)
					perror("benchrun: --then-send");
			} else {
				kill(pid, SIGTERM);
			}
		}
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("benchrun: wait4");
		return 1;
	}
	t_end = ts_ns(CLOCK_MONOTONIC);
	if (inp[1] >= 0)
		close(inp[1]);
	if (pread(memfd, &rec, sizeof(rec), 0) != (ssize_t)sizeof(rec))
		memset(&rec, 0, sizeof(rec));

	if (WIFEXITED(status))
		printf("exit=%d\n", WEXITSTATUS(status));
	else
		printf("signal=%d\n", WTERMSIG(status));
	if (timed_out)
		printf("timeout=1\n");
	{
		int64_t cpu_us = ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec +
				 ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;

		printf("wall_exit_us=%" PRId64 "\n", (t_end - pre->mono_ns) / 1000);
		printf("cpu_exit_us=%" PRId64 "\n", cpu_us - pre->cpu_ns / 1000);
		printf("utime_us=%ld\nstime_us=%ld\n",
		       (long)(ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec),
		       (long)(ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec));
		printf("maxrss_kb=%ld\n", ru.ru_maxrss);
	}
	if (rec.magic == FIRSTRUN_MAGIC) {
		printf("wall_run_us=%" PRId64 "\n", (rec.run_mono_ns - pre->mono_ns) / 1000);
		printf("cpu_run_us=%" PRId64 "\n", (rec.run_cpu_ns - pre->cpu_ns) / 1000);
		printf("ioctls_before_run=%" PRIu64 "\n", rec.ioctls_before);
	}
	if (sampled == 1) {
		printf("rss_total_kb=%lu\nrss_guest_kb=%lu\nrss_vmm_kb=%lu\npss_vmm_kb=%lu\n", sm.rss,
		       sm.guest_rss, sm.rss - sm.guest_rss, sm.pss);
		printf("private_vmm_kb=%lu\nprivate_dirty_vmm_kb=%lu\nanon_vmm_kb=%lu\nfile_vmm_kb=%lu\n",
		       sm.priv, sm.priv_dirty, sm.anon, sm.file);
		printf("guest_vma_kb=%lu\nguest_exact=%d\nthreads=%d\n", sm.guest_vma_kb,
		       sm.guest_exact, threads);
		for (int k = 0; k < TOP_VMAS && sm.top[k].rss; k++) {
			char *d = sm.top[k].desc;

			for (char *q = d; *q; q++) /* one line, no quoting trouble downstream */
				if (*q == '"' || *q == '\\' || *q == '\t')
					*q = ' ';
			printf("top_vma=%lu kB (THP %lu kB) %s\n", sm.top[k].rss, sm.top[k].thp, d);
		}
	}
	if (timed_out || (preload && rec.magic != FIRSTRUN_MAGIC) || (sample_at && sampled != 1)) {
		fprintf(stderr, "benchrun: %s\n", timed_out ? "timed out"
				: sample_at && sampled != 1 ? "no memory sample (marker not seen?)"
							    : "the shim recorded no KVM_RUN");
		return 1;
	}
	return 0;
}
