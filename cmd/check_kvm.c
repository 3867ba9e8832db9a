/* `mica check`, KVM: is there a /dev/kvm, which KVM it is (hardware, nested, PVM) or what this
 * host offers instead, the capabilities mica needs and those it uses when present, and whether a
 * VM as `mica run` builds it works here. The VM is mica's own: vm_create() (which runs
 * kvm_open()) and the machine_* calls devices make; kvm_is_pvm() is boot/'s PVM test. */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/check_internal.h"
#include "vmm/kvm.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

const struct cap optional_caps[] = {
	{ KVM_CAP_IOEVENTFD_NO_LENGTH, "KVM_CAP_IOEVENTFD_NO_LENGTH",
	  "zero-length MMIO ioeventfds: virtio-pci notifies take KVM's fast MMIO path",
	  "virtio-pci notifies use 2-byte ioeventfds, each decoded by KVM's instruction emulator "
	  "(slower notifies); a newer host kernel has it" },
	{ KVM_CAP_BINARY_STATS_FD, "KVM_CAP_BINARY_STATS_FD",
	  "KVM's own exit counters for --stats-json (kvm_exits)",
	  "--stats-json says null for kvm_exits (Linux 5.14 has it)" },
	{ KVM_CAP_GET_TSC_KHZ, "KVM_CAP_GET_TSC_KHZ",
	  "the TSC frequency for guests (CPUID leaf 0x40000010)",
	  "guests calibrate their TSC at boot (slower, less exact)" },
};
_Static_assert(ARRAY_SIZE(optional_caps) == NOPT, "NOPT must count optional_caps");

/* ---- the host: bare metal or a VM, which KVM module ---- */

/* Facts only, no line: check_kind() says what they mean once /dev/kvm is looked at. */
static void host_facts(struct report *r)
{
	static const struct { const char *sig, *name; } hypervisors[] = {
		{ "KVMKVMKVM", "KVM" }, { "TCGTCGTCGTCG", "QEMU TCG (software emulation)" },
		{ "Microsoft Hv", "Hyper-V" }, { "VMwareVMware", "VMware" },
		{ "XenVMMXenVMM", "Xen" }, { "bhyve bhyve ", "bhyve" },
		{ "VBoxVBoxVBox", "VirtualBox" }, { " lrpepyh  vr", "Parallels" },
	};
	unsigned a, b, c, d;
	char sig[13] = "";

	if (__get_cpuid(1, &a, &b, &c, &d)) {
		r->host_is_vm = c & (1u << 31);
		if (c & (1u << 5))
			r->cpu_virt = "vmx";
	}
	if (__get_cpuid(0x80000001, &a, &b, &c, &d) && (c & (1u << 2)))
		r->cpu_virt = "svm";
	if (r->host_is_vm) {
		/* The hypervisor leaves exist wherever the hypervisor bit is set. */
		__cpuid(0x40000000, a, b, c, d);
		memcpy(sig, &b, 4);
		memcpy(sig + 4, &c, 4);
		memcpy(sig + 8, &d, 4);
		snprintf(r->hypervisor, sizeof(r->hypervisor), "%s", sig[0] ? sig : "unknown");
		for (size_t i = 0; i < ARRAY_SIZE(hypervisors); i++)
			if (!strcmp(sig, hypervisors[i].sig))
				snprintf(r->hypervisor, sizeof(r->hypervisor), "%s", hypervisors[i].name);
		ascii_safe(r->hypervisor);
	}
	if (kvm_is_pvm())
		r->module = "kvm_pvm";
	else if (access("/sys/module/kvm_intel", F_OK) == 0)
		r->module = "kvm_intel";
	else if (access("/sys/module/kvm_amd", F_OK) == 0)
		r->module = "kvm_amd";
}

/* Which KVM /dev/kvm is (from the module loaded and whether this host is a VM), or, where
 * there is none, what this host offers. */
static void check_kind(struct report *r)
{
	bool present = r->kvm_device;
	struct item *it;

	if (r->module && !strcmp(r->module, "kvm_pvm")) {
		r->kind = "pvm";
		if (!present) {
			it = add(r, "kvm_kind", ST_NO, "KVM: PVM's module (kvm_pvm) is loaded, but there "
				 "is no /dev/kvm");
			act(it, "even with one, PVM boots only PVM-aware Linux kernels: use "
			    "scripts/with-kvm");
			return;
		}
		it = add(r, "kvm_kind", ST_WARN, "KVM: PVM (module kvm_pvm)%s%s",
			 r->host_is_vm ? ", inside a virtual machine under " : "",
			 r->host_is_vm ? r->hypervisor : "");
		act(it, "PVM runs guests without hardware virtualisation: mica's test guest and "
		    "PVM-aware Linux kernels run, an unmodified Linux kernel (mica run --kernel "
		    "bzImage, mica sandbox) hangs early; for those, use scripts/with-kvm");
		return;
	}
	if (present && r->host_is_vm) {
		r->kind = "nested";
		it = add(r, "kvm_kind", ST_WARN, "KVM: nested (%s, inside a virtual machine under %s)",
			 r->module ? r->module : "KVM", r->hypervisor);
		act(it, "every VM exit goes through the outer hypervisor and costs tens of "
		    "microseconds, against a few on bare metal: fine for tests, slow for "
		    "exit-heavy guests and meaningless for benchmarks");
		return;
	}
	if (present) {
		r->kind = "hardware";
		add(r, "kvm_kind", ST_OK, "KVM: hardware (%s, bare metal)",
		    r->module ? r->module : "KVM");
		return;
	}
	r->kind = "none";
	it = add(r, "kvm_kind", ST_NO, "KVM: none here (host: %s%s; CPU virtualisation: %s; "
		 "module: %s)", r->host_is_vm ? "a virtual machine under " : "bare metal",
		 r->host_is_vm ? r->hypervisor : "", r->cpu_virt ? r->cpu_virt : "not offered",
		 r->module ? r->module : "none loaded");
	if (!r->cpu_virt && r->host_is_vm)
		act(it, "this virtual machine is not given hardware virtualisation: enable nested "
		    "virtualisation on its host, or use scripts/with-kvm (software emulation)");
	else if (!r->cpu_virt)
		act(it, "enable virtualisation (VT-x or AMD-V) in the firmware settings");
	else if (!r->module)
		act(it, "load KVM: modprobe %s", !strcmp(r->cpu_virt, "vmx") ? "kvm_intel" : "kvm_amd");
}

/* ---- /dev/kvm, its API and capabilities ---- */

static void check_device(struct report *r)
{
	struct stat st;
	struct item *it;
	int fd;

	if (stat("/dev/kvm", &st) < 0 || !S_ISCHR(st.st_mode)) {
		it = add(r, "kvm_device", ST_NO, "/dev/kvm %s", errno == ENOENT ? "does not exist" :
			 "is not a character device");
		act(it, "this host cannot run VMs; run mica inside scripts/with-kvm, or on a host "
		    "with KVM (modprobe kvm_intel or kvm_amd; in a container, pass /dev/kvm in)");
		return;
	}
	r->kvm_device = true;
	add(r, "kvm_device", ST_OK, "/dev/kvm exists");
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		it = add(r, "kvm_open", ST_NO, "/dev/kvm cannot be opened for reading and writing (%s)",
			 strerror(errno));
		if (errno == EACCES || errno == EPERM)
			act(it, "add yourself to group kvm (usermod -aG kvm $USER, then log in again), "
			    "run mica as root, or inside scripts/with-kvm");
		return;
	}
	r->kvm_rw = true;
	add(r, "kvm_open", ST_OK, "/dev/kvm opens for reading and writing");
	r->api_version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (r->api_version != KVM_API_VERSION) {
		it = add(r, "kvm_api", ST_NO, "KVM API version %d, mica needs %d", r->api_version,
			 KVM_API_VERSION);
		act(it, "use a current host kernel");
		close(fd);
		return;
	}
	add(r, "kvm_api", ST_OK, "KVM API version %d", r->api_version);
	for (size_t i = 0; i < MAX_REQUIRED && kvm_required_caps[i].name; i++)
		r->req[i] = ioctl(fd, KVM_CHECK_EXTENSION, kvm_required_caps[i].cap) > 0;
	for (size_t i = 0; i < NOPT; i++)
		r->opt[i] = ioctl(fd, KVM_CHECK_EXTENSION, optional_caps[i].nr) > 0;
	close(fd);
}

/* One line for the required capabilities when all are there, one per missing one otherwise. */
static void check_required_caps(struct report *r)
{
	char list[512] = "";
	size_t len = 0;
	bool all = true;

	for (size_t i = 0; i < MAX_REQUIRED && kvm_required_caps[i].name; i++) {
		const char *name = kvm_required_caps[i].name;

		if (!r->req[i]) {
			struct item *it = add(r, name, ST_NO, "KVM lacks %s, which mica needs", name);

			act(it, "mica cannot run VMs with this KVM: use a newer host kernel");
			all = false;
		} else if (len < sizeof(list)) {
			len += snprintf(list + len, sizeof(list) - len, "%s%s", len ? " " : "",
					name + strlen("KVM_CAP_"));
		}
	}
	if (all)
		add(r, "kvm_caps", ST_OK, "KVM has every capability mica needs: %s", list);
}

static void check_optional_caps(struct report *r)
{
	for (size_t i = 0; i < NOPT; i++) {
		const struct cap *c = &optional_caps[i];
		struct item *it;

		if (r->opt[i]) {
			add(r, c->name, ST_OK, "%s: %s", c->name, c->use);
			continue;
		}
		it = add(r, c->name, ST_WARN, "%s missing", c->name);
		act(it, "%s", c->without);
	}
}

/* ---- a VM as `mica run` builds it ---- */

/* vm_create() (kvm_open(), RAM, irqchip, PIT, a vCPU), then what devices ask of it: a
 * zero-length MMIO ioeventfd (virtio-pci's notify; 2 bytes with datamatch where KVM has no
 * zero-length ones), an irqfd and an MSI route. */
static void check_vm(struct report *r)
{
	struct vm_config cfg = { .mem_size = 2 * MiB, .ncpus = 1 };
	struct err e = { "" };
	struct vm vm;
	struct machine_ioeventfd io = { .addr = PCI_MMIO32_START };
	int efd[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	const char *step;
	struct item *it;
	int err, gsi;

	err = vm_create(&vm, &cfg, &e);
	if (err) {
		it = add(r, "kvm_vm", ST_NO, "KVM cannot create mica's VM");
		act(it, "%s", e.msg);
		goto out;
	}
	r->max_vcpus = vm.caps.max_vcpus;
	if (!vm.caps.ioeventfd_no_length) {
		io.len = 2;
		io.datamatch = true;
	}
	io.fd = efd[0];
	step = "an eventfd";
	err = efd[0] < 0 || efd[1] < 0 ? -errno : 0;
	if (!err) {
		step = "an ioeventfd";
		err = machine_ioeventfd(&vm.machine, &io, true);
	}
	if (!err) {
		step = "an irqfd";
		err = machine_irqfd(&vm.machine, efd[1], 5, true);
	}
	if (!err) {
		step = "an MSI route";
		gsi = machine_msi_alloc(&vm.machine);
		err = gsi < 0 ? gsi : machine_msi_route(&vm.machine, gsi, 0xfee00000, 0x30);
	}
	if (err) {
		it = add(r, "kvm_vm", ST_NO, "KVM refuses %s for mica's VM (%s)", step,
			 strerror(-err));
		act(it, "mica's devices need it: use a current host kernel");
		goto out;
	}
	r->vm_ok = true;
	add(r, "kvm_vm", ST_OK, "a VM as mica builds it: irqchip, PIT, a vCPU (up to %d), an "
	    "ioeventfd (%s), an irqfd and an MSI route", r->max_vcpus,
	    vm.caps.ioeventfd_no_length ? "zero-length MMIO" : "2-byte MMIO");
	check_exit_cost(r, &vm);
out:
	vm_destroy(&vm);
	for (int i = 0; i < 2; i++)
		if (efd[i] >= 0)
			close(efd[i]);
}

void check_kvm(struct report *r)
{
	host_facts(r);
	check_device(r);
	/* Which KVM, right after whether there is one (a VM that then fails says so itself). */
	check_kind(r);
	if (blocked(r))
		return;
	check_required_caps(r);
	if (!blocked(r))
		check_vm(r);
	check_optional_caps(r);
}
