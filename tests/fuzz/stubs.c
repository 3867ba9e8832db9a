/* Link stubs for the fuzz targets. The device models reference symbols from files the
 * harnesses deliberately leave out (vmm/term.c the host terminal; vmm/control.c a listening
 * socket; devices/net/ libslirp and tap devices):
 *   term_input_space() - never reached: the harness attaches no terminal to virtio-console;
 *   control_register() - keeps the commands, which the harness runs with fuzz_control_run()
 *                        as the control socket would (a later registration of a name
 *                        replaces the earlier one: each input creates its device anew);
 *   net_slirp_create(), net_tap_create() - never reached: the harness plugs its own backend.
 * Nothing else is stubbed: virtq.c, virtio.c, the device models and log.c are the real ones. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/net/backend.h"
#include "tests/fuzz/fuzz_dev.h"
#include "vmm/console.h"
#include "vmm/control.h"

static struct {
	const char *name;
	control_fn fn;
	void *opaque;
} commands[8];
static int ncommands;

void term_input_space(struct term *t)
{
	(void)t;
	abort();
}

int net_slirp_create(struct evloop *loop, const struct net_opts *o, struct net_backend **out,
		     struct err *e)
{
	(void)loop, (void)o, (void)out, (void)e;
	abort();
}

int net_tap_create(struct evloop *loop, const char *ifname, struct net_backend **out,
		   struct err *e)
{
	(void)loop, (void)ifname, (void)out, (void)e;
	abort();
}

int control_register(struct control *c, const char *name, const char *help, control_fn fn,
		     void *opaque)
{
	int i = 0;

	(void)c, (void)help;
	while (i < ncommands && strcmp(commands[i].name, name))
		i++;
	if (i == (int)(sizeof(commands) / sizeof(commands[0])))
		return -ENOSPC;
	if (i == ncommands)
		ncommands++;
	commands[i].name = name;
	commands[i].fn = fn;
	commands[i].opaque = opaque;
	return 0;
}

int fuzz_control_run(const char *name, const char *args, char *out, size_t len)
{
	for (int i = 0; i < ncommands; i++)
		if (!strcmp(commands[i].name, name))
			return commands[i].fn(commands[i].opaque, args, out, len);
	abort();
}
