#include "vmm/confine.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/vm.h"

#define CONFINE_MAX_STEPS 4

static int (*steps[CONFINE_MAX_STEPS])(void);
/* Published with release after the step is stored; read with acquire by late threads. */
static atomic_uint nsteps;

int confine_add(int (*step)(void))
{
	unsigned n = atomic_load_explicit(&nsteps, memory_order_relaxed);

	if (n == CONFINE_MAX_STEPS)
		return -ENOSPC;
	steps[n] = step;
	atomic_store_explicit(&nsteps, n + 1, memory_order_release);
	return 0;
}

void confine_late_thread(unsigned *done)
{
	unsigned n = atomic_load_explicit(&nsteps, memory_order_acquire);

	for (; *done < n; (*done)++) {
		int err = steps[*done]();

		if (err) {
			pr_err("cannot confine an I/O thread: %s", strerror(-err));
			_exit(EXIT_CRASH);
		}
	}
}
