/* Running the command as the caller, and reaping everything as PID 1 must.
 *
 * The child becomes the caller: its own session (with the terminal as its controlling tty when
 * a stream is one), the streams on 0, 1 and 2, supplementary groups, gid, uid (0 stays root),
 * umask, then the caller's cwd: entered as the caller, after setuid. A cwd it cannot enter
 * ends the run with one line and status 125, like any other failure to set up the sandbox:
 * running the command somewhere else instead could do its work (rm, a build) in the wrong
 * place. Then execvp() with the job's environment (the PATH lookup uses the job's PATH). If
 * that fails, as a shell does: "mica sandbox: CMD: REASON" and status 127 when there is no
 * such file, 126 otherwise (not executable, a directory...).
 *
 * An empty argv is an interactive shell: $SHELL -i (the job's SHELL), or /bin/sh -i. */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/init/init.h"
#include "sandbox/milestones.h"

extern char **environ;

static const char *job_env(const struct sandbox_job *j, const char *name)
{
	size_t n = strlen(name);

	for (uint32_t i = 0; i < j->envc; i++)
		if (!strncmp(j->envp[i], name, n) && j->envp[i][n] == '=')
			return j->envp[i] + n + 1;
	return NULL;
}

/* In the child: a line on its stderr, then exit. */
static __attribute__((noreturn)) void child_fail(int status, const char *what, int err)
{
	dprintf(2, "mica sandbox: %s: %s\n", what, strerror(err));
	_exit(status);
}

static __attribute__((noreturn)) void child(const struct sandbox_job *j, const int fds[3],
					    int tty)
{
	const char *shell = job_env(j, "SHELL");
	char *sh_argv[3] = { (char *)(shell && *shell ? shell : "/bin/sh"), "-i", NULL };
	char **argv = j->argc ? j->argv : sh_argv;
	char what[4200];

	setsid();
	if (tty >= 0 && ioctl(tty, TIOCSCTTY, 0) < 0)
		child_fail(STATUS_INIT_FAILED, "init: making " SANDBOX_TTY " the terminal", errno);
	for (int i = 0; i < 3; i++)
		if (dup2(fds[i], i) < 0)
			child_fail(STATUS_INIT_FAILED, "init: setting up the standard streams", errno);
	if (setgroups(j->ngroups, j->groups) < 0)
		child_fail(STATUS_INIT_FAILED, "init: setgroups", errno);
	if (setgid(j->gid) < 0)
		child_fail(STATUS_INIT_FAILED, "init: setgid", errno);
	if (setuid(j->uid) < 0)
		child_fail(STATUS_INIT_FAILED, "init: setuid", errno);
	umask(j->umask);
	if (chdir(j->cwd) < 0) {
		snprintf(what, sizeof(what), "cannot enter %s", j->cwd);
		child_fail(STATUS_INIT_FAILED, what, errno);
	}
	environ = j->envp;
	execvp(argv[0], argv);
	child_fail(errno == ENOENT || errno == ENOTDIR ? 127 : 126, argv[0], errno);
}

int run_command(const struct sandbox_job *j, const int fds[3], int tty)
{
	int st = 0;
	pid_t pid, got;

	note("running %s as %u:%u in %s", j->argc ? j->argv[0] : "a shell", j->uid, j->gid,
	     j->cwd);
	milestone(SANDBOX_MILESTONE_CMD);
	pid = fork();
	if (pid < 0)
		die(errno, "starting the command");
	if (pid == 0)
		child(j, fds, tty);
	/* PID 1 adopts every orphan: reap them all until the command itself ends. */
	do {
		got = wait(&st);
	} while (got != pid && (got >= 0 || errno == EINTR));
	if (got != pid)
		die(errno, "waiting for the command");
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}
