#include "vmm/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The one process-wide setting: diagnostics are per process, not per VM. */
static _Atomic int current_level = LOG_WARN;
static _Atomic bool raw_terminal;

void log_set_raw_terminal(bool raw) { raw_terminal = raw; }

void log_set_level(enum log_level level) { current_level = level; }
enum log_level log_get_level(void) { return current_level; }

void log_msg(enum log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if ((int)level > current_level)
		return;
	n = snprintf(buf, sizeof(buf), "mica: ");
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n - 2, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	/* A terminal in raw mode does not turn "\n" into "\r\n" for us. */
	if (raw_terminal)
		buf[n++] = '\r';
	buf[n++] = '\n';
	/* One write, so lines from several threads do not interleave. */
	if (write(STDERR_FILENO, buf, n) < 0)
		return;
}
