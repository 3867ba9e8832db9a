/* PID 1 of `mica sandbox`'s guest (the steps: sandbox/init/init.h). */
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/init/init.h"
#include "sandbox/milestones.h"

static void early_mount(const char *type, const char *dir)
{
	if (mount(type, dir, type, MS_NOSUID | (strcmp(type, "devtmpfs") ? MS_NODEV | MS_NOEXEC : 0),
		  NULL) < 0)
		die(errno, "mounting %s on %s", type, dir);
}

/* lo up (the kernel gives it 127.0.0.1 and ::1 then); without it, the command just has no
 * loopback, so a failure is only noted. */
static void loopback_up(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) < 0))
		note("bringing up lo: %s", strerror(errno));
	if (s >= 0)
		close(s);
}

int main(void)
{
	struct sandbox_job job;
	int fds[3], tty;

	milestone(SANDBOX_MILESTONE_INIT);
	early_mount("proc", "/proc");
	early_mount("sysfs", "/sys");
	early_mount("devtmpfs", "/dev");
	load_modules();
	/* Nothing of the job read or mounted yet: a warm sandbox's snapshot is taken here. */
	milestone(SANDBOX_MILESTONE_READY);
	read_job(&job);
	stdio_open(&job, fds, &tty);
	note_modules(); /* on CMD's stderr, with the other steps */
	root_setup(&job);
	if (job.hostname[0] && sethostname(job.hostname, strlen(job.hostname)) < 0)
		die(errno, "setting the hostname to %s", job.hostname);
	loopback_up();
	finish(run_command(&job, fds, tty));
}
