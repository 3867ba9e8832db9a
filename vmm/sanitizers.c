/* What the sanitizer builds (make SAN=1, make SAN=thread) must know about mica and cannot see
 * for themselves. Compiled into every build; only the sanitizers' runtimes call these. */
#include "vmm/util.h"

#if defined(__SANITIZE_THREAD__)
const char *__tsan_default_suppressions(void);

/* Guest RAM is the guest's memory, shared with it behind ThreadSanitizer's back. A guest may
 * aim two requests at one buffer: two I/O workers then write it at once (preadv in a blk
 * worker), which is the guest's own race in its own memory, not a race on anything of mica's.
 * Only functions whose sole shared writes go to guest buffers are listed. */
const char *__tsan_default_suppressions(void)
{
	return "race:pool_rw\n";
}
#endif
