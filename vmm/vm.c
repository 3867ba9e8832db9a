#include "vmm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "confine/seccomp.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"

static int get_supported_cpuid(struct vm *vm)
{
	for (int nent = 64; nent <= 1024; nent *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));

		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			vm->cpuid = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			return -errno;
	}
	return -E2BIG;
}

static int set_memory_regions(struct vm *vm)
{
	for (int i = 0; i < vm->mem.nregions; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = i,
			.guest_phys_addr = vm->mem.regions[i].gpa,
			.memory_size = vm->mem.regions[i].size,
			.userspace_addr = (uintptr_t)vm->mem.regions[i].hva,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return -errno;
	}
	return 0;
}

/* ---- the machine as devices see it: KVM behind struct machine_ops ---- */

static struct vm *vm_of(struct machine *m)
{
	return container_of(m, struct vm, machine);
}

static int m_set_irq_line(struct machine *m, uint32_t gsi, int level)
{
	return vm_set_irq_line(vm_of(m), gsi, level);
}

static int m_irqfd(struct machine *m, int fd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd irqfd = { .fd = fd, .gsi = gsi,
				   .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };

	return ioctl(vm_of(m)->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

static int m_ioeventfd(struct machine *m, const struct machine_ioeventfd *io, bool assign)
{
	struct kvm_ioeventfd k = {
		.datamatch = io->data, .addr = io->addr, .len = io->len, .fd = io->fd,
		.flags = (io->datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
			 (io->pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(vm_of(m)->vm_fd, KVM_IOEVENTFD, &k) < 0 ? -errno : 0;
}

static int m_msi_alloc(struct machine *m)
{
	return irq_alloc_msi_gsi(vm_of(m));
}

static int m_msi_route(struct machine *m, uint32_t gsi, uint64_t addr, uint32_t data)
{
	return irq_set_msi_route(vm_of(m), gsi, addr, data);
}

static void m_request_exit(struct machine *m, int status, const char *reason)
{
	vm_request_exit(vm_of(m), status, reason);
}

static int m_own(struct machine *m, void *obj, void (*destroy)(void *obj))
{
	return vm_own(vm_of(m), obj, destroy);
}

static int m_add_state(struct machine *m, void *obj, const struct snap_ops *ops)
{
	struct vm *vm = vm_of(m);

	if (vm->nstates == VM_MAX_DEVICES)
		return -ENOSPC;
	vm->states[vm->nstates++] = (struct vm_state_owner){ obj, ops };
	return 0;
}

static const struct machine_ops kvm_machine_ops = {
	.set_irq_line = m_set_irq_line,
	.irqfd = m_irqfd,
	.ioeventfd = m_ioeventfd,
	.msi_alloc = m_msi_alloc,
	.msi_route = m_msi_route,
	.request_exit = m_request_exit,
	.own = m_own,
	.add_state = m_add_state,
};

/* ---- life cycle ---- */

int vm_create(struct vm *vm, const struct vm_config *cfg, struct err *e)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t identity = KVM_IDENTITY_MAP_ADDR;
	int err;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = -1;
	vm->loop.epfd = vm->loop.stop_fd = -1;
	pthread_mutex_init(&vm->exit_lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");

	err = kvm_open(&vm->kvm_fd, &vm->caps, e);
	if (err)
		return err;
	if (cfg->ncpus > vm->caps.max_vcpus)
		return err_set(e, -EINVAL, "--cpus %d is more than this host's KVM supports (%d)",
			       cfg->ncpus, vm->caps.max_vcpus);
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return err_set(e, -errno, "KVM_CREATE_VM failed: %s", strerror(errno));
	err = guest_mem_init(&vm->mem, cfg->mem_size);
	if (err)
		return err_set(e, err, "cannot map %llu MiB of guest RAM (%s): try a smaller --mem",
			       (unsigned long long)(cfg->mem_size >> 20), strerror(-err));
	err = set_memory_regions(vm);
	if (err)
		return err_set(e, err, "KVM_SET_USER_MEMORY_REGION failed: %s", strerror(-err));
	/* Needed on Intel (real-mode emulation and EPT identity map), harmless on AMD. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		return err_set(e, -errno, "KVM_SET_TSS_ADDR / KVM_SET_IDENTITY_MAP_ADDR failed: %s",
			       strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return err_set(e, -errno, "KVM_CREATE_IRQCHIP failed: %s", strerror(errno));
	err = irq_routing_init(vm);
	if (err)
		return err_set(e, err, "out of memory");
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return err_set(e, -errno, "KVM_CREATE_PIT2 failed: %s", strerror(errno));
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((long)vm->run_size <= 0)
		return err_set(e, -EINVAL, "KVM_GET_VCPU_MMAP_SIZE failed");
	err = get_supported_cpuid(vm);
	if (err)
		return err_set(e, err, "KVM_GET_SUPPORTED_CPUID failed: %s", strerror(-err));
	err = evloop_init(&vm->loop);
	if (err)
		return err_set(e, err, "cannot create the event loop (epoll): %s", strerror(-err));
	vm->vcpus = calloc(cfg->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return err_set(e, -ENOMEM, "out of memory");
	vm->ncpus = cfg->ncpus;
	for (int i = 0; i < vm->ncpus; i++) {
		err = vcpu_create(vm, &vm->vcpus[i], i);
		if (err)
			return err_set(e, err, "cannot create vCPU %d: %s", i, strerror(-err));
	}
	vm->machine = (struct machine){
		.ops = &kvm_machine_ops,
		.pio = &vm->pio,
		.mmio = &vm->mmio,
		.mem = &vm->mem,
		.loop = &vm->loop,
		.ioeventfd_no_length = vm->caps.ioeventfd_no_length,
	};
	return 0;
}

int vm_own(struct vm *vm, void *dev, void (*destroy)(void *dev))
{
	if (vm->ndevices == VM_MAX_DEVICES)
		return -ENOSPC;
	vm->devices[vm->ndevices++] = (struct vm_device){ dev, destroy };
	return 0;
}

void vm_destroy(struct vm *vm)
{
	for (int i = 0; i < vm->ncpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	while (vm->ndevices > 0) {
		struct vm_device *d = &vm->devices[--vm->ndevices];

		d->destroy(d->dev);
	}
	evloop_destroy(&vm->loop);
	if (vm->irq.table)
		irq_routing_destroy(vm);
	free(vm->cpuid);
	vm->cpuid = NULL;
	guest_mem_destroy(&vm->mem);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
	pthread_mutex_destroy(&vm->exit_lock);
	pthread_mutex_destroy(&vm->pause_lock);
	pthread_cond_destroy(&vm->pause_cond);
}

void vm_request_exit(struct vm *vm, int status, const char *reason)
{
	pthread_mutex_lock(&vm->exit_lock);
	if (!vm->exit_requested) {
		vm->exit_status = status;
		vm->exit_reason = reason;
		atomic_store(&vm->exit_requested, true);
	}
	pthread_mutex_unlock(&vm->exit_lock);
	/* Parked vCPUs (and a vm_pause() waiting for them) must see the end. */
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	evloop_stop(&vm->loop);
}

int vm_pause(struct vm *vm)
{
	int running = 0, err = 0;

	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_requested = true;
	pthread_mutex_unlock(&vm->pause_lock);
	for (int i = 0; i < vm->ncpus; i++) {
		if (!vm->vcpus[i].started)
			continue;
		running++;
		vcpu_kick(&vm->vcpus[i]);
	}
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->parked < running && !atomic_load(&vm->exit_requested))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	if (vm->parked < running)
		err = -ECANCELED;
	pthread_mutex_unlock(&vm->pause_lock);
	if (err)
		vm_resume(vm);
	return err;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_requested = false;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

int vm_set_irq_line(struct vm *vm, uint32_t gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

/* SIGINT, SIGTERM and SIGHUP end the VM as they would end any program: status 128 + signal. */
struct signal_watch {
	struct ev_handler h;
	struct vm *vm;
};

static void on_signal(struct ev_handler *h, uint32_t events)
{
	struct signal_watch *w = container_of(h, struct signal_watch, h);
	struct signalfd_siginfo si;

	(void)events;
	if (read(h->fd, &si, sizeof(si)) != sizeof(si))
		return;
	pr_info("received %s: stopping the VM", strsignal(si.ssi_signo));
	vm_request_exit(w->vm, 128 + si.ssi_signo, "signal");
}

struct timeout_watch {
	struct ev_handler h;
	struct vm *vm;
};

static void on_timeout(struct ev_handler *h, uint32_t events)
{
	struct timeout_watch *w = container_of(h, struct timeout_watch, h);
	uint64_t n;

	(void)events;
	if (read(h->fd, &n, sizeof(n)) != sizeof(n))
		return;
	pr_err("the guest did not finish within --timeout %g s: stopping it", w->vm->cfg.timeout_s);
	vm_request_exit(w->vm, EXIT_TIMEOUT, "timeout");
}

static void sigusr1_noop(int sig) { (void)sig; }

int vm_run(struct vm *vm)
{
	struct signal_watch sigw = { .h.fn = on_signal, .vm = vm };
	struct timeout_watch tw = { .h.fn = on_timeout, .vm = vm };
	struct sigaction sa = { .sa_handler = sigusr1_noop };
	sigset_t stop_sigs;
	int sfd = -1, tfd = -1, err, started = 0;

	/* SIGUSR1 kicks a vCPU out of KVM_RUN; no SA_RESTART, so the ioctl returns EINTR. */
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGHUP);
	/* Blocked before the vCPU threads exist, so they inherit the mask and only signalfd sees
	 * these signals. */
	pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
	sfd = signalfd(-1, &stop_sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || evloop_add(&vm->loop, sfd, EPOLLIN, &sigw.h) < 0) {
		pr_err("cannot watch for signals: %s", strerror(errno));
		err = EXIT_CRASH;
		goto out;
	}
	if (vm->cfg.timeout_s > 0) {
		struct itimerspec its = { 0 };
		uint64_t ns = (uint64_t)(vm->cfg.timeout_s * 1e9);

		its.it_value.tv_sec = ns / 1000000000ULL;
		its.it_value.tv_nsec = ns % 1000000000ULL;
		tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) < 0 ||
		    evloop_add(&vm->loop, tfd, EPOLLIN, &tw.h) < 0) {
			pr_err("cannot arm the --timeout timer: %s", strerror(errno));
			err = EXIT_CRASH;
			goto out;
		}
	}
	for (started = 0; started < vm->ncpus; started++) {
		err = vcpu_start(&vm->vcpus[started]);
		if (err) {
			pr_err("cannot start vCPU %d: %s", started, strerror(-err));
			vm_request_exit(vm, EXIT_CRASH, "vmm-error");
			break;
		}
	}
	/* Every thread exists now: the main thread's filter is for the loop and the teardown. */
	seccomp_enter(SECCOMP_LOOP, -1);
	err = evloop_run(&vm->loop);
	if (err) {
		pr_err("event loop failed: %s", strerror(-err));
		vm_request_exit(vm, EXIT_CRASH, "vmm-error");
	}
	/* The event loop only returns once an exit was requested. */
	for (int i = 0; i < started; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (int i = 0; i < started; i++)
		vcpu_join(&vm->vcpus[i]);
	err = vm->exit_status;
	/* A guest that did not finish in time: say where each vCPU was waiting. */
	if (!strcmp(vm->exit_reason, "timeout"))
		for (int i = 0; i < started; i++)
			vcpu_describe(&vm->vcpus[i]);
out:
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	pthread_sigmask(SIG_UNBLOCK, &stop_sigs, NULL);
	return err;
}
