/* landlock_probe (only when named): writes mica's Landlock probe port, which makes mica try to
 * open the file given by --debug-landlock-probe and print the result (confine/landlock_probe.h).
 * The verdict is on mica's stderr; the guest only checks that it got through. */
#include "guest.h"

#define LANDLOCK_PROBE_PORT 0x502 /* confine/landlock_probe.h */

static enum test_result test_landlock_probe(void)
{
    outb(LANDLOCK_PROBE_PORT, 1);
    return TEST_PASS;
}
TEST_DESTRUCTIVE(landlock_probe, test_landlock_probe);
