/* What the sanitizer builds (make SAN=1, make SAN=thread) must know about mica and cannot see
 * for themselves. Compiled into every build; only the sanitizers' runtimes call these. */
#include "vmm/util.h"

#if defined(__SANITIZE_THREAD__)
const char *__tsan_default_suppressions(void);

/* Guest RAM is the guest's memory, shared with it behind ThreadSanitizer's back. A guest may
 * aim two requests at one buffer, or reuse a buffer for requests to two devices: two threads
 * (blk I/O workers, two virtio-fs devices' threads) then touch it at once, with only the
 * guest's own ordering between them, which ThreadSanitizer cannot see. That is the guest's
 * business in its own memory, not a race on anything of mica's. Only functions whose sole
 * shared accesses are to guest buffers are listed: blk's pool_rw (preadv/pwritev into them),
 * the FUSE server's guest_copy_in and guest_put (a request copied out, a reply copied in) and
 * hostfs's file_move_bytes (READ and WRITE straight between the file and them). */
const char *__tsan_default_suppressions(void)
{
	return "race:pool_rw\nrace:guest_copy_in\nrace:guest_put\nrace:file_move_bytes\n";
}
#endif
