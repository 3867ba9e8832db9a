/* The init's messages, and how it ends the VM. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/init/init.h"

#define DEBUG_EXIT_PORT 0x501 /* mica's debug-exit device: a byte written ends the VM with it */
#define MILESTONE_PORT  0x504 /* mica's milestone port: a byte written notes when we got there */

int log_fd = 2;
bool verbose;

static void line(const char *fmt, va_list ap, int err)
{
	char buf[1024];
	int n;

	n = snprintf(buf, sizeof(buf), "mica sandbox: init: ");
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	if (n >= (int)sizeof(buf) - 1)
		n = sizeof(buf) - 2;
	if (err)
		n += snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(err));
	if (n >= (int)sizeof(buf) - 1)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(log_fd, buf, n) < 0) {
		/* nowhere else to say it */
	}
}

void note(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	line(fmt, ap, 0);
	va_end(ap);
}

void die(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line(fmt, ap, err);
	va_end(ap);
	finish(STATUS_INIT_FAILED);
}

void finish(int status)
{
	/* Whatever the command left behind (daemons, a stuck pipeline) goes, and is reaped, so
	 * that no process holds a port any more; its data already written reaches the shares
	 * with the sync. PID 1 survives kill(-1). */
	kill(-1, SIGKILL);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	note("reporting status %d", status);
	stdio_close();
	sync();
	if (!ioperm(DEBUG_EXIT_PORT, 1, 1))
		outb((unsigned char)status, DEBUG_EXIT_PORT);
	/* Not on mica (no debug-exit device): the status is lost, but the VM still ends. */
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

void milestone(unsigned n)
{
	/* One exit each; on another VMM the port is nobody's and the write goes nowhere. */
	if (!ioperm(MILESTONE_PORT, 1, 1))
		outb((unsigned char)n, MILESTONE_PORT);
}
