/* Small helpers shared by every part of mica. */
#ifndef MICA_UTIL_H
#define MICA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* A full memory barrier (x86: mfence) against a party that shares memory with us but runs
 * outside this process's threads: the guest driving a virtqueue, the kernel filling an io_uring.
 * Not a C11 fence: ThreadSanitizer supports none, and cannot see that party anyway. */
static inline void barrier_full(void)
{
	__asm__ __volatile__("mfence" ::: "memory");
}

/* True when [base, base + len) lies inside [lo, hi) without wrapping. */
static inline bool range_inside(uint64_t base, uint64_t len, uint64_t lo, uint64_t hi)
{
	return base >= lo && base <= hi && len <= hi - base;
}

/* Parses "16", "64K", "256M", "2G" (case-insensitive, optional trailing "iB"/"B").
 * Returns 0 and the byte count, or -EINVAL / -ERANGE. */
int parse_size(const char *s, uint64_t *out);

/* Reads a whole regular file of at most max bytes into a malloc'd buffer, NUL-terminated after
 * its *len bytes. Returns 0 or -errno (-EISDIR: not a regular file; -EFBIG: larger than max).
 * libc only: `mica sandbox`'s guest init is built with it too. */
int read_file(const char *path, size_t max, void **buf, size_t *len);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

#endif
