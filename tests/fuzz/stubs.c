/* Link stubs for the fuzz targets. The device models reference symbols from files the
 * harnesses deliberately leave out (vmm/vm.c drags in KVM, vCPUs and the event loop;
 * vmm/term.c the host terminal; vmm/control.c a listening socket; devices/net/ libslirp and
 * tap devices):
 *   vm_add_device()    - same bookkeeping as vm.c: the harness destroys the devices itself;
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
#include "vmm/vm.h"

static struct {
	const char *name;
	control_fn fn;
	void *opaque;
} commands[8];
static int ncommands;

int vm_add_device(struct vm *vm, void *dev, void (*destroy)(void *dev))
{
	if (vm->ndevices == (int)(sizeof(vm->devices) / sizeof(vm->devices[0])))
		return -ENOSPC;
	vm->devices[vm->ndevices++] = (struct vm_device){ dev, destroy };
	return 0;
}

void term_input_space(struct term *t)
{
	(void)t;
	abort();
}

struct net_backend *net_slirp_create(struct evloop *loop, const struct net_opts *o,
				     const char **why)
{
	(void)loop, (void)o, (void)why;
	abort();
}

struct net_backend *net_tap_create(struct evloop *loop, const char *ifname, const char **why)
{
	(void)loop, (void)ifname, (void)why;
	abort();
}

int control_register(struct vm *vm, const char *name, const char *help, control_fn fn,
		     void *opaque)
{
	int i = 0;

	(void)vm, (void)help;
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
