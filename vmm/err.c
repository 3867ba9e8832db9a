#include "vmm/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int neg(int errnum)
{
	return errnum > 0 ? -errnum : errnum;
}

int err_set(struct err *e, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (e) {
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return neg(errnum);
}

int err_prefix(struct err *e, int errnum, const char *fmt, ...)
{
	char old[ERR_MSG_MAX];
	va_list ap;
	int n;

	if (!e)
		return neg(errnum);
	memcpy(old, e->msg, sizeof(old));
	va_start(ap, fmt);
	n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(e->msg))
		snprintf(e->msg + n, sizeof(e->msg) - n, ": %s", old);
	return neg(errnum);
}
