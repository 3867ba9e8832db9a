#include "cmd/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <termios.h>
#include <unistd.h>

#include "boot/boot.h"
#include "devices/virtio/fs.h"
#include "sandbox/initramfs.h"
#include "sandbox/job.h"
#include "sandbox/kmod.h"
#include "sandbox/milestones.h"
#include "vmm/log.h"
#include "vmm/vm.h"

/* The caller's variables that name something of the host's session the guest cannot reach (a
 * socket, a display, a runtime directory that is a tmpfs of the host's): left out of CMD's
 * environment. */
static const char *const dropped_env[] = {
	"DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR",
	"SSH_AUTH_SOCK", "SSH_AGENT_PID", "GPG_AGENT_INFO", "TMUX", "TMUX_PANE", "STY", "WINDOWID",
	"SESSION_MANAGER", "NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
	"INVOCATION_ID", "JOURNAL_STREAM", NULL,
};

static bool env_dropped(const char *entry)
{
	size_t n = strcspn(entry, "=");

	for (int i = 0; dropped_env[i]; i++)
		if (strlen(dropped_env[i]) == n && !strncmp(entry, dropped_env[i], n))
			return true;
	return false;
}

/* --kernel, else the kernel scripts/get-linux-guest fetched beside mica's binary
 * (build/linux/vmlinuz next to build/mica), else the host's own. */
static int find_kernel(const struct sandbox_opts *o, struct sandbox_run *r, struct err *e)
{
	char exe[PATH_MAX], host[PATH_MAX];
	struct utsname u;
	ssize_t n;

	if (o->kernel) {
		snprintf(r->kernel, sizeof(r->kernel), "%s", o->kernel);
		if (access(o->kernel, R_OK) < 0)
			return err_set(e, -errno, "--kernel %s: %s; give a Linux bzImage", o->kernel,
				       strerror(errno));
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		snprintf(r->kernel, sizeof(r->kernel), "%s/linux/vmlinuz", exe);
		if (access(r->kernel, R_OK) == 0)
			return 0;
	}
	uname(&u);
	snprintf(host, sizeof(host), "/boot/vmlinuz-%s", u.release);
	if (access(host, R_OK) == 0) {
		snprintf(r->kernel, sizeof(r->kernel), "%s", host);
		return 0;
	}
	return err_set(e, -ENOENT, "no kernel found: looked for %s and %s; run "
		       "scripts/get-linux-guest or pass --kernel PATH", r->kernel, host);
}

/* A kernel that is not a bzImage is said to be one, before its modules are looked for. */
static int check_kernel(struct sandbox_run *r, struct err *e)
{
	struct boot_file f = { 0 };
	enum kernel_kind kind;
	int err = boot_file_open(&f, r->kernel, e);

	if (!err && !(err = boot_detect(&f, &kind, e)) && kind != KERNEL_BZIMAGE)
		err = err_set(e, -ENOEXEC, "not a Linux bzImage");
	boot_file_close(&f);
	return err ? err_prefix(e, err, "--kernel %s", r->kernel) : 0;
}

static int check_rw(const struct sandbox_opts *o, struct sandbox_run *r, struct err *e)
{
	for (int i = 0; i < o->nrw; i++) {
		struct stat st;

		if (!realpath(o->rw[i], r->real_rw[i]))
			return err_set(e, -errno, "--rw %s: %s; give an existing directory", o->rw[i],
				       strerror(errno));
		if (stat(r->real_rw[i], &st) < 0 || !S_ISDIR(st.st_mode))
			return err_set(e, -ENOTDIR, "--rw %s: not a directory; give a directory (files "
				       "under it become writable)", o->rw[i]);
		if (!strcmp(r->real_rw[i], "/"))
			return err_set(e, -EINVAL, "--rw /: the whole host writable is not offered; give "
				       "the directories CMD must write to");
	}
	return 0;
}

/* The caller's environment, minus dropped_env, into a new NULL-terminated array of borrowed
 * strings. */
static char **job_env(uint32_t *n)
{
	extern char **environ;
	size_t all = 0;
	char **env;

	while (environ[all])
		all++;
	env = calloc(all + 1, sizeof(*env));
	if (!env)
		return NULL;
	*n = 0;
	for (size_t i = 0; i < all; i++)
		if (!env_dropped(environ[i]))
			env[(*n)++] = environ[i];
	return env;
}

/* How CMD's streams reach it: a terminal stays one (the console port, /dev/hvc0, as CMD's
 * controlling terminal) when stdin and stdout both are one, stderr too if it is; everything
 * else is a byte stream on its own named port. A terminal on stdin alone is read as a plain
 * stream (cooked by the host's terminal: Ctrl-D ends it), so what CMD prints into a pipe never
 * carries the terminal's echo. */
static bool job_stdio(struct sandbox_job *j)
{
	bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	struct winsize ws;

	j->stdio[0] = j->stdio[1] = tty ? JOB_STDIO_TTY : JOB_STDIO_PORT;
	j->stdio[2] = tty && isatty(STDERR_FILENO) ? JOB_STDIO_TTY : JOB_STDIO_PORT;
	if (tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
		j->rows = ws.ws_row;
		j->cols = ws.ws_col;
	}
	return tty;
}

/* The job, encoded into r->job. */
static int build_job(const struct sandbox_opts *o, struct sandbox_run *r, bool *tty,
		     struct err *e)
{
	struct job_share rw[SANDBOX_MAX_RW];
	char tags[SANDBOX_MAX_RW][24];   /* "mica-rw" and any unsigned */
	struct sandbox_job j = { 0 };
	mode_t mask = umask(0);
	int n, err;

	umask(mask);
	j.argv = o->argv;
	j.argc = (uint32_t)o->argc;
	j.cwd = r->cwd;
	j.uid = getuid();
	j.gid = getgid();
	j.umask = mask;
	j.root_tag = SANDBOX_ROOT_TAG;
	j.hostname = "mica-sandbox";
	j.flags = o->verbosity ? JOB_VERBOSE : 0;
	*tty = job_stdio(&j);
	for (int i = 0; i < o->nrw; i++) {
		snprintf(tags[i], sizeof(tags[i]), SANDBOX_RW_TAG_FMT, (unsigned)i);
		rw[i] = (struct job_share){ .tag = tags[i], .path = r->real_rw[i] };
	}
	j.rw = rw;
	j.nrw = (uint32_t)o->nrw;
	n = getgroups(0, NULL);
	j.groups = calloc(n > 0 ? n : 1, sizeof(gid_t));
	j.envp = job_env(&j.envc);
	if (!j.groups || !j.envp) {
		err = err_set(e, -ENOMEM, "the sandbox's job: %s", strerror(ENOMEM));
		goto out;
	}
	n = getgroups(n, (gid_t *)j.groups);
	j.ngroups = n > 0 ? (uint32_t)n : 0;
	err = job_encode(&j, &r->job, &r->job_len);
	if (err == -EINVAL)
		err_set(e, err, "the sandbox's job cannot be encoded: a relative path, an empty tag "
			"or a value out of range (is the environment or CMD larger than %u MiB?)",
			JOB_MAX_BYTES >> 20);
	else if (err)
		err_set(e, err, "the sandbox's job: %s", strerror(-err));
out:
	free(j.groups);
	free(j.envp);
	return err;
}

/* The initramfs with the modules the kernel needs. */
static int build_initramfs(const struct sandbox_opts *o, struct sandbox_run *r, struct err *e)
{
	struct kmod_set mods = { 0 };
	struct initramfs ar;
	int err;

	err = kmod_find(r->kernel, o->modules, NULL, &mods, e);
	if (!err)
		err = initramfs_build_sandbox(&mods, &ar, e);
	if (!err) {
		r->initramfs = ar.data;
		r->initramfs_size = ar.len;
	}
	kmod_set_free(&mods);
	return err;
}

/* The largest pipe an unprivileged process may ask for; 1 MiB if the kernel does not say. */
static size_t pipe_max_size(void)
{
	FILE *f = fopen("/proc/sys/fs/pipe-max-size", "re");
	unsigned long v = 0;

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v ? (size_t)v : 1u << 20;
}

int sandbox_job_pipe(struct sandbox_run *r, struct err *e)
{
	size_t max = pipe_max_size();
	int size;

	if (r->job_len > max)
		return err_set(e, -E2BIG, "the job (CMD, its environment and options) is %zu KiB, "
			       "more than a pipe takes (%zu KiB, /proc/sys/fs/pipe-max-size): shorten "
			       "the environment", (r->job_len + 1023) >> 10, max >> 10);
	if (pipe2(r->job_fd, O_CLOEXEC) < 0) {
		r->job_fd[0] = r->job_fd[1] = -1;
		return err_set(e, -errno, "the job's pipe: %s", strerror(errno));
	}
	/* Ours alone: non-blocking, so that a write that did not fit fails instead of waiting
	 * for the guest. */
	if (fcntl(r->job_fd[1], F_SETFL, O_NONBLOCK) < 0)
		return err_set(e, -errno, "the job's pipe: %s", strerror(errno));
	size = fcntl(r->job_fd[1], F_GETPIPE_SZ);
	/* The kernel rounds the size up to a power of two pages. */
	if ((size < 0 || (size_t)size < r->job_len) &&
	    fcntl(r->job_fd[1], F_SETPIPE_SZ, (int)r->job_len) < 0)
		return err_set(e, -errno, "the job (CMD, its environment and options) is %zu KiB, "
			       "more than a pipe may take now (%s): shorten the environment",
			       (r->job_len + 1023) >> 10, strerror(errno));
	return 0;
}

int sandbox_send_job(struct sandbox_run *r)
{
	size_t done = 0;
	int err = 0;

	if (r->job_fd[1] < 0)
		return -EBADF;
	while (done < r->job_len) {
		ssize_t n = write(r->job_fd[1], r->job + done, r->job_len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)n;
	}
	/* Closed even after a failure: the guest sees the end, and refuses a truncated job. */
	close(r->job_fd[1]);
	r->job_fd[1] = -1;
	return err;
}

/* Whether the kernel prints all its messages: for -v, --log, and for a run whose output is
 * logged or judged (--serial-log, patterns), which must see them; otherwise it prints only a
 * panic and the init's own failures (SANDBOX_KERNEL_QUIET). */
static bool kernel_verbose(const struct sandbox_opts *o)
{
	return o->verbosity || o->log_path || o->ci.serial_log || o->ci.npatterns;
}

/* The serial console: the kernel's messages to --log FILE, or to stderr with -v or when it
 * prints only the serious ones; only to the CI monitor when it prints them all for that. */
static int open_log(const struct sandbox_opts *o, struct sandbox_run *r, struct err *e)
{
	const char *path = o->log_path ? o->log_path : "/dev/null";

	if (!o->log_path && (o->verbosity || !kernel_verbose(o)))
		return STDERR_FILENO;
	r->log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (r->log_fd < 0)
		return err_set(e, -errno, "--log %s: %s; give a file mica can write", path,
			       strerror(errno));
	return r->log_fd;
}

/* "mica sandbox CMD ARGS...", cut to fit (the shell without CMD). */
static void run_name(const struct sandbox_opts *o, struct sandbox_run *r)
{
	size_t n = (size_t)snprintf(r->name, sizeof(r->name), "mica sandbox%s",
				    o->argc ? "" : " (shell)");

	for (int i = 0; i < o->argc && n < sizeof(r->name); i++)
		n += (size_t)snprintf(r->name + n, sizeof(r->name) - n, " %s", o->argv[i]);
}

int sandbox_prepare(const struct sandbox_opts *o, struct mica_config *c, struct sandbox_run *r,
		    struct err *e)
{
	bool tty;
	int err, fd;

	r->log_fd = -1;
	r->job_fd[0] = r->job_fd[1] = -1;
	if ((err = find_kernel(o, r, e)) || (err = check_kernel(r, e)) || (err = check_rw(o, r, e)))
		return err;
	r->cwd = getcwd(NULL, 0);
	if (!r->cwd)
		return err_set(e, -errno, "cannot tell the current directory (%s): cd to one that "
			       "exists", strerror(errno));
	if ((err = build_job(o, r, &tty, e)) || (err = sandbox_job_pipe(r, e)) ||
	    (err = build_initramfs(o, r, e)))
		return err;
	if ((fd = open_log(o, r, e)) < 0)
		return fd;
	snprintf(r->cmdline, sizeof(r->cmdline), "%s%s%s%s", SANDBOX_KERNEL_CMDLINE,
		 kernel_verbose(o) ? "" : SANDBOX_KERNEL_QUIET, o->append ? " " : "",
		 o->append ? o->append : "");
	run_name(o, r);

	c->kernel = r->kernel;
	c->initrd_data = r->initramfs;
	c->initrd_size = r->initramfs_size;
	c->boot.cmdline = r->cmdline;
	c->vm.mem_size = o->mem_size;
	c->vm.ncpus = o->ncpus;
	c->vm.timeout_s = o->timeout_s;
	c->transport = TRANSPORT_PCI;
	c->console = tty ? CONSOLE_VIRTIO : CONSOLE_SERIAL;
	c->serial_fd = fd;
	c->stats_path = o->json_path;
	c->stats_opt = "--json";
	c->ci = o->ci;
	c->run_name = r->name;
	c->landlock = o->landlock;
	c->seccomp.on = o->seccomp;
	c->verbosity = o->verbosity > 1 ? o->verbosity - 1 : 0;
	c->sandbox = true;
	/* The host's / read-only, each --rw directory writable at its own path. */
	c->nshares = 0;
	snprintf(c->shares[0].path, sizeof(c->shares[0].path), "/");
	snprintf(c->shares[0].tag, sizeof(c->shares[0].tag), SANDBOX_ROOT_TAG);
	c->shares[0].ro = true;
	/* The overlay on top asks for trusted.overlay.origin of every directory it meets: without
	 * xattrs (as virtiofsd's default) the guest asks once, and find /usr makes 18% fewer
	 * requests. --rw shares keep theirs. */
	c->shares[0].no_xattr = true;
	c->nshares = 1;
	for (int i = 0; i < o->nrw; i++, c->nshares++) {
		struct fs_opts *s = &c->shares[c->nshares];

		snprintf(s->path, sizeof(s->path), "%s", r->real_rw[i]);
		snprintf(s->tag, sizeof(s->tag), SANDBOX_RW_TAG_FMT, (unsigned)i);
	}
	for (int i = 0; i < c->nshares; i++)
		c->shares[i].nshares = (uint32_t)c->nshares;
	if (o->debug_no_shares)
		c->nshares = 0;
	/* The job's port first, in every mode: the set of ports is the same for every job (a warm
	 * sandbox's snapshot holds it). Then CMD's streams that are not the terminal, each on its
	 * own port. */
	c->nports = 0;
	c->ports[c->nports++] = (struct config_port){ SANDBOX_PORT_JOB, r->job_fd[0], -1 };
	if (!tty) {
		c->ports[c->nports++] = (struct config_port){ SANDBOX_PORT_STDIN, STDIN_FILENO, -1 };
		c->ports[c->nports++] = (struct config_port){ SANDBOX_PORT_STDOUT, -1, STDOUT_FILENO };
	}
	if (!tty || !isatty(STDERR_FILENO))
		c->ports[c->nports++] = (struct config_port){ SANDBOX_PORT_STDERR, -1, STDERR_FILENO };
	return 0;
}

int sandbox_exit_status(int guest_status, const char *reason, double timeout_s)
{
	if (reason && (!strcmp(reason, "guest-status") || !strcmp(reason, "fail-on") ||
		       !strcmp(reason, "end-on")))
		return guest_status;
	if (reason && !strcmp(reason, "timeout")) {
		pr_err("mica sandbox: --timeout %g s expired: CMD was stopped", timeout_s);
		return EXIT_TIMEOUT;
	}
	pr_err("mica sandbox: the guest stopped before CMD ended (%s: the kernel panicked or "
	       "powered off); run with -v or --log FILE to see its messages",
	       reason ? reason : "unknown");
	return EXIT_CRASH;
}

void sandbox_release(struct sandbox_run *r)
{
	for (int i = 0; i < 2; i++) {
		if (r->job_fd[i] >= 0)
			close(r->job_fd[i]);
		r->job_fd[i] = -1;
	}
	free(r->job);
	r->job = NULL;
	r->job_len = 0;
	free(r->initramfs);
	free(r->cwd);
	if (r->log_fd >= 0)
		close(r->log_fd);
	r->initramfs = NULL;
	r->cwd = NULL;
	r->log_fd = -1;
}
