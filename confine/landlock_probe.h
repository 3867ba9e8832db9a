/* A debugging aid for the Landlock test (hidden option --debug-landlock-probe PATH): when the
 * guest writes any value to LANDLOCK_PROBE_PORT, mica tries to open PATH for reading and then
 * for writing (never creating or truncating it) on that vCPU's thread, and prints one line per
 * attempt on stderr:
 *     mica: landlock probe: open PATH for reading: Permission denied
 *     mica: landlock probe: open PATH for writing: ok
 * It stands for any guest-driven path that would open a file, which mica does not have yet.
 * The test guest's landlock_probe test writes the port. */
#ifndef MICA_SANDBOX_LANDLOCK_PROBE_H
#define MICA_SANDBOX_LANDLOCK_PROBE_H

#include "vmm/machine.h"

#define LANDLOCK_PROBE_PORT 0x502   /* guest/tests_probe.c has the same number */

/* path must outlive the machine (it is an argv string). */
int landlock_probe_create(struct machine *m, const char *path);

#endif
