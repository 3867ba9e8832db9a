/* How much guest RAM this host can back, checked before the VM is built.
 *
 * Guest RAM is mapped MAP_NORESERVE and filled lazily, so mmap() succeeds for sizes no host can
 * hold, and a guest that touches its RAM gets mica OOM-killed (exit 137, nothing said). The
 * rule: --mem must (1) be mappable in this process (RLIMIT_AS, strict overcommit) and (2) not
 * exceed the most the host could ever give it: RAM + swap (MemTotal + SwapTotal), and the memory
 * (+ swap) limit of mica's cgroup when there is one. Below that a guest may still find the host
 * short when other processes hold memory: that depends on the moment, not on the option. */
#ifndef MICA_HOST_MEM_H
#define MICA_HOST_MEM_H

#include <stdint.h>

#include "vmm/err.h"

/* Returns 0 when size bytes of guest RAM can be backed, else -ENOMEM with e saying how much can
 * ("--mem 200G: this host has 23 GiB of RAM and swap; give at most --mem 23G"). */
int host_mem_check(uint64_t size, struct err *e);

/* The sum of MemTotal and SwapTotal in bytes, from the text of /proc/meminfo (0 if absent). */
uint64_t host_mem_meminfo_total(const char *meminfo);

#endif
