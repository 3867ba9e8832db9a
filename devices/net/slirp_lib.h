/* libslirp, loaded when a VM first asks for user networking rather than linked into mica:
 * libslirp brings GLib, libm and PCRE2, about 1 MiB of resident mappings that a VM without
 * --net user should not carry. The entry points keep the types <slirp/libslirp.h> declares. */
#ifndef MICA_SLIRP_LIB_H
#define MICA_SLIRP_LIB_H

#include <slirp/libslirp.h>
#include <stddef.h>

#include "vmm/err.h"

#define SLIRP_LIB_SONAME "libslirp.so.0"

struct slirp_lib {
	void *handle;
	__typeof__(&slirp_new) new_;
	__typeof__(&slirp_cleanup) cleanup;
	__typeof__(&slirp_input) input;
	__typeof__(&slirp_pollfds_fill) pollfds_fill;
	__typeof__(&slirp_pollfds_poll) pollfds_poll;
	__typeof__(&slirp_handle_timer) handle_timer;
	__typeof__(&slirp_add_hostfwd) add_hostfwd;
};

/* Loads the library and every entry point; 0, or -ENOENT with why (dlerror's message). */
int slirp_lib_open(struct slirp_lib *lib, struct err *e);
/* Unloads it (a no-op for a lib that failed to open). */
void slirp_lib_close(struct slirp_lib *lib);

#endif
