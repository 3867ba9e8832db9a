/* firstrun.so: an LD_PRELOAD shim that notes when a VMM issues its first KVM_RUN.
 *
 * It wraps ioctl(). At the first KVM_RUN it reads CLOCK_MONOTONIC and the process's CPU clock
 * (all threads) *before* the ioctl enters the kernel, and stores them in the memfd whose number
 * is in FIRSTRUN_FD (struct firstrun_rec, at offset 0). It also records the guest-RAM ranges
 * given to KVM_SET_USER_MEMORY_REGION, so benchrun can exclude exactly those mappings from the
 * VMM's resident memory. Nothing else is touched: no constructor, no allocation, no dlsym (the
 * real ioctl is the raw system call, which is all glibc's x86_64 ioctl() is), so the shim costs
 * a counter increment per ioctl and two clock reads plus one pwrite() once.
 */
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench/firstrun.h"

static struct firstrun_rec rec;
static unsigned long ncalls;
static int done;

static int out_fd(void)
{
	const char *s = getenv("FIRSTRUN_FD");

	return s ? atoi(s) : -1;
}

static void save(void)
{
	int fd = out_fd();

	if (fd >= 0 && pwrite(fd, &rec, sizeof(rec), 0) != (ssize_t)sizeof(rec))
		_exit(126); /* the measurement would silently be missing: make it loud */
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);

	if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		if (req == KVM_RUN && !__atomic_exchange_n(&done, 1, __ATOMIC_ACQ_REL)) {
			struct timespec mono, cpu;

			clock_gettime(CLOCK_MONOTONIC, &mono);
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
			rec.magic = FIRSTRUN_MAGIC;
			rec.run_mono_ns = mono.tv_sec * 1000000000LL + mono.tv_nsec;
			rec.run_cpu_ns = cpu.tv_sec * 1000000000LL + cpu.tv_nsec;
			rec.ioctls_before = __atomic_load_n(&ncalls, __ATOMIC_RELAXED);
			save();
		} else {
			__atomic_fetch_add(&ncalls, 1, __ATOMIC_RELAXED);
			if (req == KVM_SET_USER_MEMORY_REGION && arg) {
				const struct kvm_userspace_memory_region *r = arg;

				if (r->memory_size && rec.nslots < FIRSTRUN_MAX_SLOTS) {
					rec.slots[rec.nslots].hva = r->userspace_addr;
					rec.slots[rec.nslots].size = r->memory_size;
					rec.nslots++;
					save();
				}
			}
		}
	}
	return (int)syscall(SYS_ioctl, fd, req, arg);
}
