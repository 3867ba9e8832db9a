/* What mica may open once its setup is done, collected from its options in one place. */
#ifndef MICA_CMD_LANDLOCK_RULES_H
#define MICA_CMD_LANDLOCK_RULES_H

#include "confine/landlock.h"
#include "vmm/err.h"

struct mica_config;

/* Builds the Landlock ruleset for c and confines mica with it (the calling thread, the threads
 * it starts later, and the I/O threads started during setup as they next work: vmm/confine.h).
 * Call once every device exists, --control listens and the kernel is loaded. Where the kernel
 * has no Landlock, or with --landlock off, says so at -v and returns 0. *out is what to
 * landlock_close() at exit (the paths' fds: landlock.h), or NULL. */
int landlock_confine(const struct mica_config *c, struct landlock **out, struct err *e);

#endif
