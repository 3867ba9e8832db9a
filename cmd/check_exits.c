/* `mica check`, what a VM exit costs here, timed on the VM cmd/check_kvm.c built.
 *
 * A real-mode loop at TIME_CODE_GPA, each pass one exit to mica (out to TIME_PORT_USER) and n
 * writes to TIME_PORT_KERNEL, a port ioeventfd that KVM completes in the kernel:
 *   1000: out 0x80, al;  mov cx, n;  1005: out 0x81, al;  dec cx;  jnz 1005;  jmp 1000
 * One KVM_RUN is one pass. Timing passes with n = 1 and n = TIME_N_KERNEL gives both costs. */
#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <unistd.h>

#include "cmd/check_internal.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define TIME_CODE_GPA 0x1000
#define TIME_PORT_USER 0x80
#define TIME_PORT_KERNEL 0x81
#define TIME_N_KERNEL 21
#define TIME_SAMPLES 300

static const uint8_t time_code[] = {
	0xe6, TIME_PORT_USER,     /* 1000: out 0x80, al */
	0xb9, 0x01, 0x00,         /* 1002: mov cx, n (patched) */
	0xe6, TIME_PORT_KERNEL,   /* 1005: out 0x81, al */
	0x49,                     /* 1007: dec cx */
	0x75, 0xfb,               /* 1008: jnz 1005 */
	0xeb, 0xf4,               /* 100a: jmp 1000 */
};

static unsigned exit_reason_seen;

static void on_alarm(int sig)
{
	(void)sig; /* only there to make KVM_RUN return EINTR */
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The median time of one pass with n kernel exits, in ns; or -errno (-EPROTO: an exit that is
 * not the loop's, in exit_reason_seen). */
static int64_t time_passes(struct vcpu *v, uint8_t *code, unsigned n)
{
	static int64_t ns[TIME_SAMPLES];

	code[3] = (uint8_t)n;
	code[4] = (uint8_t)(n >> 8);
	for (int i = -1; i < TIME_SAMPLES; i++) { /* pass -1 warms up */
		int64_t t0 = (int64_t)now_ns();

		if (ioctl(v->fd, KVM_RUN, 0) < 0)
			return -errno;
		if (v->run->exit_reason != KVM_EXIT_IO || v->run->io.port != TIME_PORT_USER) {
			exit_reason_seen = v->run->exit_reason;
			return -EPROTO;
		}
		if (i >= 0)
			ns[i] = (int64_t)now_ns() - t0;
	}
	qsort(ns, TIME_SAMPLES, sizeof(ns[0]), cmp_i64);
	return ns[TIME_SAMPLES / 2];
}

static int time_exits(struct report *r, struct vm *vm)
{
	struct vcpu *v = &vm->vcpus[0];
	uint8_t *code = gpa_range(&vm->mem, TIME_CODE_GPA, sizeof(time_code));
	struct machine_ioeventfd io = { .addr = TIME_PORT_KERNEL, .len = 1, .pio = true };
	struct kvm_regs regs = { .rip = TIME_CODE_GPA, .rflags = 2 };
	/* A hung KVM_RUN (a KVM that cannot run real mode) is interrupted every 2 s, from 5 s on. */
	struct itimerval guard = { .it_value = { 5, 0 }, .it_interval = { 2, 0 } }, off = { 0 };
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct kvm_sregs s;
	int64_t one, many;
	int err = 0;

	memcpy(code, time_code, sizeof(time_code));
	io.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (io.fd < 0)
		return -errno;
	err = machine_ioeventfd(&vm->machine, &io, true);
	if (!err && ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		err = -errno;
	if (!err) {
		s.cs.base = 0;
		s.cs.selector = 0;
		if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0 || ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
			err = -errno;
	}
	if (err)
		goto out;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &old);
	setitimer(ITIMER_REAL, &guard, NULL);
	one = time_passes(v, code, 1);
	many = one < 0 ? one : time_passes(v, code, TIME_N_KERNEL);
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	if (many < 0) {
		err = (int)many;
		goto out;
	}
	r->kernel_exit_us = MAX(0, many - one) / 1e3 / (TIME_N_KERNEL - 1);
	r->user_exit_us = MAX(0, one / 1e3 - r->kernel_exit_us);
out:
	close(io.fd);
	return err;
}

void check_exit_cost(struct report *r, struct vm *vm)
{
	struct item *it;
	int err = time_exits(r, vm);

	if (!err) {
		add(r, "kvm_exit_cost", ST_OK, "a VM exit costs %.1f us to mica and back (a device "
		    "register), %.1f us handled in the kernel (an ioeventfd notify)",
		    r->user_exit_us, r->kernel_exit_us);
		return;
	}
	if (err == -EPROTO)
		it = add(r, "kvm_exit_cost", ST_WARN, "cannot time a VM exit (unexpected KVM exit "
			 "reason %u)", exit_reason_seen);
	else if (err == -EINTR)
		it = add(r, "kvm_exit_cost", ST_WARN, "cannot time a VM exit (the vCPU did not "
			 "return from KVM_RUN within 5 s)");
	else
		it = add(r, "kvm_exit_cost", ST_WARN, "cannot time a VM exit (%s)", strerror(-err));
	act(it, "KVM runs mica's VM set-up but not this real-mode loop; mica's guests may run all "
	    "the same");
}
