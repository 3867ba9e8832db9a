/* See slirp_lib.h. */
#include "devices/net/slirp_lib.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int slirp_lib_open(struct slirp_lib *lib, struct err *e)
{
	memset(lib, 0, sizeof(*lib));
	lib->handle = dlopen(SLIRP_LIB_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib->handle)
		return err_set(e, -ENOENT, "net user: cannot load %s (Debian package libslirp0): %s",
			       SLIRP_LIB_SONAME, dlerror());
	/* dlsym's object pointer becomes a function pointer of the declared type: POSIX
	 * guarantees the conversion works. */
#define LOAD(field, sym)                                                                  \
	do {                                                                              \
		*(void **)&lib->field = dlsym(lib->handle, #sym);                         \
		if (!lib->field) {                                                        \
			slirp_lib_close(lib);                                             \
			return err_set(e, -ENOENT, "net user: %s has no %s",              \
				       SLIRP_LIB_SONAME, #sym);                           \
		}                                                                         \
	} while (0)
	LOAD(new_, slirp_new);
	LOAD(cleanup, slirp_cleanup);
	LOAD(input, slirp_input);
	LOAD(pollfds_fill, slirp_pollfds_fill);
	LOAD(pollfds_poll, slirp_pollfds_poll);
	LOAD(handle_timer, slirp_handle_timer);
	LOAD(add_hostfwd, slirp_add_hostfwd);
#undef LOAD
	return 0;
}

void slirp_lib_close(struct slirp_lib *lib)
{
	if (lib->handle)
		dlclose(lib->handle);
	memset(lib, 0, sizeof(*lib));
}
