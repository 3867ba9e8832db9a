#include "vmm/vm_snapshot.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "snapshot/snapshot.h"
#include "vmm/kvm_state.h"
#include "vmm/log.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define KVM_VM_SECTION_VERSION 1
#define VCPU_SECTION_VERSION   1

/* "mica=VERSION cpu=HOST mem=BYTES cpus=N": what a restore needs of mica, the host and the
 * VM's options. */
static int vm_identity(struct vm *vm, char *out, size_t len)
{
	char cpu[160];
	int err = kvm_state_identity(vm->kvm_fd, cpu, sizeof(cpu));

	if (err)
		return err;
	if ((size_t)snprintf(out, len, "mica=%s cpu=%s mem=%llu cpus=%d", MICA_VERSION, cpu,
			     (unsigned long long)vm->mem.ram_size, vm->ncpus) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* The section of owner i: "<name>.<n>", n counting the owners of that name before it. */
static void owner_section(const struct vm *vm, int i, char *out, size_t len)
{
	int n = 0;

	for (int k = 0; k < i; k++)
		if (!strcmp(vm->states[k].ops->name, vm->states[i].ops->name))
			n++;
	snprintf(out, len, "%s.%d", vm->states[i].ops->name, n);
}

static int save_all(struct vm *vm, struct snap_writer *w, struct err *e)
{
	char name[SNAP_NAME_MAX];
	int err;

	snap_begin(w, "kvm.vm", KVM_VM_SECTION_VERSION);
	err = kvm_vm_save(vm->vm_fd, w, e);
	if (!err)
		err = snap_end(w);
	for (int i = 0; !err && i < vm->ncpus; i++) {
		snprintf(name, sizeof(name), "vcpu.%d", i);
		snap_begin(w, name, VCPU_SECTION_VERSION);
		err = kvm_vcpu_save(vm->kvm_fd, vm->vcpus[i].fd, w, e);
		if (!err)
			err = snap_end(w);
	}
	for (int i = 0; !err && i < vm->nstates; i++) {
		const struct snap_ops *ops = vm->states[i].ops;

		owner_section(vm, i, name, sizeof(name));
		snap_begin(w, name, ops->version);
		err = ops->save(vm->states[i].obj, w, e);
		if (!err)
			err = snap_end(w);
	}
	for (int i = 0; !err && i < vm->mem.nregions; i++) {
		snprintf(name, sizeof(name), "ram.%d", i);
		err = snap_put_ram(w, name, vm->mem.regions[i].hva, vm->mem.regions[i].size);
	}
	if (err && !e->msg[0])
		err_set(e, err, "cannot save the VM: %s", strerror(-err));
	return err;
}

int vm_snapshot(struct vm *vm, const char *path, struct vm_snapshot_result *res, struct err *e)
{
	char identity[SNAP_IDENTITY_MAX];
	struct snap_writer *w;
	uint64_t t0;
	struct stat st;
	int err;

	memset(res, 0, sizeof(*res));
	err = vm_identity(vm, identity, sizeof(identity));
	if (err)
		return err_set(e, err, "cannot describe this host for the snapshot: %s",
			       strerror(-err));
	err = snap_writer_create(path, identity, &w, e);
	if (err)
		return err;
	t0 = now_ns();
	err = vm_pause(vm);
	if (err) {
		snap_writer_abort(w);
		return err_set(e, err, "the VM is ending");
	}
	err = save_all(vm, w, e);
	if (err)
		snap_writer_abort(w);
	else
		err = snap_writer_finish(w, e);
	vm_resume(vm);
	res->paused_ns = now_ns() - t0;
	if (err)
		return err;
	res->ram_bytes = vm->mem.ram_size;
	if (stat(path, &st) == 0)
		res->file_bytes = st.st_size;
	return 0;
}

/* The identity's field key ("mem=") in s, as a string up to the next space, into out. */
static void identity_field(const char *s, const char *key, char *out, size_t len)
{
	const char *p = strstr(s, key);
	size_t n;

	out[0] = '\0';
	if (!p)
		return;
	p += strlen(key);
	n = strcspn(p, " ");
	snprintf(out, len, "%.*s", (int)MIN(n, len - 1), p);
}

/* Refuses a snapshot this mica, this host or this VM's options cannot take, naming which. */
static int check_identity(struct vm *vm, struct snap_file *f, struct err *e)
{
	char mine[SNAP_IDENTITY_MAX], a[160], b[160];
	const char *theirs = snap_identity(f);
	static const struct {
		const char *key, *what, *fix;
	} fields[] = {
		{ "mica=", "mica version", "take the snapshot again with this mica" },
		{ "cpu=", "host CPU or KVM", "take the snapshot again on this host" },
		{ "mem=", "RAM size", "restore with the --mem it was taken with" },
		{ "cpus=", "vCPU count", "restore with the --cpus it was taken with" },
	};
	int err = vm_identity(vm, mine, sizeof(mine));

	if (err)
		return err_set(e, err, "cannot describe this host: %s", strerror(-err));
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		identity_field(theirs, fields[i].key, a, sizeof(a));
		identity_field(mine, fields[i].key, b, sizeof(b));
		if (strcmp(a, b) && !strcmp(fields[i].key, "mem=")) {
			snprintf(a + strlen(a), sizeof(a) - strlen(a), " bytes (%llu MiB)",
				 strtoull(a, NULL, 10) >> 20);
			snprintf(b + strlen(b), sizeof(b) - strlen(b), " bytes (%llu MiB)",
				 strtoull(b, NULL, 10) >> 20);
		}
		if (strcmp(a, b))
			return err_set(e, -EINVAL, "the snapshot's %s is %s, this one's %s: %s",
				       fields[i].what, a[0] ? a : "missing", b, fields[i].fix);
	}
	return 0;
}

/* Reads section name with restore(), which must consume it all. */
static int restore_section(struct snap_file *f, const char *name, uint32_t max_version,
			   int (*restore)(void *obj, struct snap_cursor *c, struct err *e),
			   void *obj, struct err *e)
{
	struct snap_cursor c;
	int err = snap_section(f, name, &c);

	if (err)
		return err_set(e, -EINVAL, "the snapshot has no section '%s': it was taken of a VM "
			       "with other devices; restore with the options it was taken with", name);
	if (c.version > max_version)
		return err_set(e, -EINVAL, "the snapshot's section '%s' has version %u; this mica "
			       "reads up to %u", name, c.version, max_version);
	err = restore(obj, &c, e);
	if (!err && snap_cursor_end(&c))
		err = err_set(e, -EBADMSG, "the snapshot's section '%s' is damaged (%s)", name,
			      c.err ? "too short" : "bytes left over");
	if (err && !e->msg[0])
		err_set(e, err, "cannot restore '%s': %s", name, strerror(-err));
	return err;
}

struct vcpu_ctx {
	int kvm_fd;
	int fd;
	uint64_t advance_ns; /* how far kvmclock moved on: the TSC moves as far */
};

static int restore_vcpu(void *obj, struct snap_cursor *c, struct err *e)
{
	struct vcpu_ctx *v = obj;

	return kvm_vcpu_restore(v->kvm_fd, v->fd, v->advance_ns, c, e);
}

struct kvm_vm_ctx {
	int vm_fd;
	uint64_t advance_ns;
};

static int restore_kvm_vm(void *obj, struct snap_cursor *c, struct err *e)
{
	struct kvm_vm_ctx *v = obj;

	return kvm_vm_restore(v->vm_fd, c, &v->advance_ns, e);
}

int vm_restore(struct vm *vm, struct snap_file *f, struct err *e)
{
	char name[SNAP_NAME_MAX];
	const char *left;
	struct kvm_vm_ctx kv = { vm->vm_fd, 0 };
	int err = check_identity(vm, f, e);

	for (int i = 0; !err && i < vm->mem.nregions; i++) {
		snprintf(name, sizeof(name), "ram.%d", i);
		err = snap_map_ram(f, name, vm->mem.regions[i].hva, vm->mem.regions[i].size, e);
	}
	/* The interrupt controllers and the clock first: the vCPUs' LAPICs and the devices'
	 * interrupt lines are restored into them. */
	if (!err)
		err = restore_section(f, "kvm.vm", KVM_VM_SECTION_VERSION, restore_kvm_vm, &kv, e);
	for (int i = 0; !err && i < vm->ncpus; i++) {
		struct vcpu_ctx v = { vm->kvm_fd, vm->vcpus[i].fd, kv.advance_ns };

		snprintf(name, sizeof(name), "vcpu.%d", i);
		err = restore_section(f, name, VCPU_SECTION_VERSION, restore_vcpu, &v, e);
	}
	for (int i = 0; !err && i < vm->nstates; i++) {
		owner_section(vm, i, name, sizeof(name));
		err = restore_section(f, name, vm->states[i].ops->version, vm->states[i].ops->restore,
				      vm->states[i].obj, e);
	}
	if (!err && (left = snap_unused_section(f)))
		err = err_set(e, -EINVAL, "the snapshot holds '%s', which this VM has no device for: "
			      "restore with the options it was taken with", left);
	/* The guest's clocks jumped by the time the snapshot lay saved: tell each vCPU's
	 * kvmclock that the host stopped it (PVCLOCK_GUEST_STOPPED), so that Linux's soft-lockup,
	 * RCU-stall and hung-task detectors take the jump for a pause rather than a CPU stuck
	 * that long (as QEMU does on every resume). A guest without kvmclock (EINVAL) has none
	 * of them to mislead. */
	for (int i = 0; !err && i < vm->ncpus; i++)
		if (ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL)
			pr_debug("vCPU %d: KVM_KVMCLOCK_CTRL: %s", i, strerror(errno));
	return err;
}
