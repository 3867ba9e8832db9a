/* mica: set up the VM from the command line, run it, and turn how it ended into an exit status.
 * User errors end here, reported once, with exit status 2. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "boot/boot.h"
#include "ci/monitor.h"
#include "ci/verdict.h"
#include "cmd/bench_exits.h"
#include "cmd/check.h"
#include "cmd/cli.h"
#include "cmd/landlock_rules.h"
#include "cmd/sandbox.h"
#include "cmd/sandbox_warm.h"
#include "cmd/snapshot_cmd.h"
#include "devices/legacy.h"
#include "devices/pci.h"
#include "devices/uart.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/blk_image.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/fs.h"
#include "devices/virtio/net.h"
#include "devices/virtio/virtio.h"
#include "confine/landlock_probe.h"
#include "confine/seccomp.h"
#include "sandbox/milestones.h"
#include "snapshot/snapshot.h"
#include "vmm/control.h"
#include "vmm/host_mem.h"
#include "vmm/json.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/outfile.h"
#include "vmm/outq.h"
#include "vmm/stats.h"
#include "vmm/term.h"
#include "vmm/util.h"
#include "vmm/vm.h"
#include "vmm/vm_snapshot.h"

#ifndef MICA_VERSION
#define MICA_VERSION "0.1.0"
#endif

#define LINUX_DEFAULT_CMDLINE "console=ttyS0"

/* What run() keeps of the machine create_devices() built (the VM owns all of it). */
struct parts {
	struct outq *out;              /* stdout, shared by the UART and virtio-console */
	struct outq *serial;           /* the UART's output: out, or its own (--log, mica sandbox) */
	struct milestones milestones;  /* what the guest reported on the milestone port */
	struct console_sink console;   /* where the terminal's input goes */
	struct uart *uart;
	struct virtio_dev *vcon;       /* virtio-console, if the terminal is on it */
	struct virtio_dev *vports;     /* virtio-console with the named ports (mica sandbox) */
	struct control *control;
	struct pci_bus *pci;
	struct stats_devices stats;    /* --stats-json's devices */
	struct monitor *monitor;       /* the CI options' watcher of the output, or NULL */
};

/* Everything of the command line that lives outside mica: opened (or checked) before KVM is
 * touched, so that a wrong path or size is reported as such even on a host without /dev/kvm,
 * and before any guest work is done. */
struct inputs {
	struct boot_file kernel, initrd;
	bool initrd_borrowed;                     /* initrd is c->initrd_data, not a mapping */
	struct blk_image disks[CONFIG_MAX_DISKS]; /* create_devices() hands each to its device */
	int ndisks;                               /* opened so far */
	struct out_file stats;                    /* --json */
	struct out_file junit;                    /* --junit */
	struct out_file serial_log;               /* --serial-log: kept once the VM runs */
	struct snap_file *snapshot;               /* --restore */
};

/* What a caller of run() adds to it (mica sandbox's warm start). */
struct run_hooks {
	/* The VM is built and booted or restored, not yet running. */
	int (*start)(void *opaque, struct vm *vm, struct milestones *ms);
	void (*json)(void *opaque, FILE *f);   /* more members for --json */
	void *opaque;
	struct err restore_err;                /* why, when run() returns RUN_RESTORE_FAILED */
};

/* run()'s status when c->restore_fallback is set and the snapshot cannot be restored: nothing
 * of the guest ran, and the caller may boot instead. */
#define RUN_RESTORE_FAILED (-1)

/* --json's members beyond the statistics: the verdict's, how the VM started, the caller's. */
struct json_members {
	struct verdict_json *vj;
	const struct mica_config *c;
	const struct run_hooks *hooks;
	uint64_t restore_ns;
};

static void write_members(void *opaque, FILE *f)
{
	const struct json_members *jm = opaque;

	verdict_write_json(jm->vj, f);
	fprintf(f, "  \"start\": { \"kind\": \"%s\", \"snapshot\": ",
		jm->c->restore_path ? "restore" : "boot");
	json_cstring(f, jm->c->restore_path);
	fputs(", \"restore_seconds\": ", f);
	if (jm->c->restore_path)
		fprintf(f, "%.6f", jm->restore_ns / 1e9);
	else
		fputs("null", f);
	fputs(" },\n", f);
	if (jm->hooks && jm->hooks->json)
		jm->hooks->json(jm->hooks->opaque, f);
}

/* Has the CI monitor (if any) watch q's bytes as the stream name. */
static int watch(struct parts *p, struct outq *q, const char *name)
{
	struct monitor_stream *s;
	int err;

	if (!p->monitor)
		return 0;
	err = monitor_stream(p->monitor, name, &s);
	if (!err)
		outq_set_tap(q, monitor_tap, s);
	return err;
}

/* Attaches a freshly created virtio device (freeing it if that fails) and lists it for
 * --stats-json. */
static int plug(struct vm *vm, struct parts *p, struct virtio_dev *dev,
		enum virtio_transport_kind kind)
{
	int err = virtio_attach(&vm->machine, p->pci, dev, kind);

	if (err) {
		virtio_dev_free(dev);
		return err;
	}
	return stats_add_device(&p->stats, virtio_dev_stats, dev);
}

/* The consoles: a virtio-console for the terminal (port 0 on stdout's queue), and one with the
 * named ports (mica sandbox's streams), each output port with its own queue. Two devices, so
 * that the terminal's console is a single-port one whose size Linux follows through the config
 * space (a multiport device's resize message has its two fields in an order that depends on
 * the kernel: older Linux, 6.1 among them, reads rows first, the spec and newer kernels cols). */
static int create_consoles(struct vm *vm, const struct mica_config *c, struct parts *p,
			   const struct virtio_env *env)
{
	struct console_port ports[CONFIG_MAX_PORTS];
	struct virtio_dev *dev;
	int err;

	if (c->console == CONSOLE_VIRTIO) {
		err = virtio_console_create(env, p->out, &dev);
		if (err || (err = plug(vm, p, dev, c->transport)))
			return err;
		p->vcon = dev;
	}
	if (!c->nports)
		return 0;
	for (int i = 0; i < c->nports; i++) {
		ports[i] = (struct console_port){ c->ports[i].name, c->ports[i].in_fd, NULL };
		if (c->ports[i].out_fd < 0)
			continue;
		err = outq_create_named(&vm->loop, c->ports[i].out_fd, OUTQ_SIZE, c->ports[i].name,
					&ports[i].out);
		if (!err && (err = vm_own(vm, ports[i].out, outq_destroy)))
			outq_destroy(ports[i].out);
		if (!err)
			err = stats_add_device(&p->stats, outq_stats, ports[i].out);
		if (!err)
			err = watch(p, ports[i].out, c->ports[i].name);
		if (err)
			return err;
	}
	/* Its port 0 is nobody's: what the guest writes there is dropped and counted. */
	err = virtio_console_create_ports(env, NULL, ports, c->nports, &dev);
	if (err || (err = plug(vm, p, dev, c->transport)))
		return err;
	p->vports = dev;
	return 0;
}

/* The devices of the machine, in the fixed order that decides their slots (see
 * docs/boot-contract.md). Fills e only for what the user can mend (an image, a network);
 * anything else is mica's own failure. */
static int create_devices(struct vm *vm, const struct mica_config *c, struct inputs *in,
			  struct parts *p, struct err *e)
{
	struct machine *m = &vm->machine;
	struct virtio_env env = { .mem = &vm->mem, .loop = &vm->loop };
	struct virtio_dev *dev;
	int err;

	/* First, so that the VM destroys it last: the consoles write to it to the end. */
	err = outq_create(&vm->loop, STDOUT_FILENO, OUTQ_SIZE, &p->out);
	if (!err && (err = vm_own(vm, p->out, outq_destroy)))
		outq_destroy(p->out);
	p->serial = p->out;
	if (!err && c->serial_fd >= 0) {
		err = outq_create(&vm->loop, c->serial_fd, OUTQ_SIZE, &p->serial);
		if (!err && (err = vm_own(vm, p->serial, outq_destroy)))
			outq_destroy(p->serial);
	}
	if (!err)
		err = watch(p, p->out, "console");
	if (!err && p->serial != p->out)
		err = watch(p, p->serial, "serial");
	if (!err)
		err = control_create(&vm->loop, &p->control);
	if (!err && (err = vm_own(vm, p->control, control_destroy)))
		control_destroy(p->control);
	if (!err)
		err = uart_create(m, UART_COM1_PORT, UART_COM1_IRQ, p->serial, &p->uart);
	if (!err)
		err = stats_add_device(&p->stats, uart_stats, p->uart);
	if (!err)
		err = pci_bus_create(m, &p->pci);
	if (!err)
		err = rtc_create(m);
	if (!err)
		err = i8042_create(m);
	if (!err)
		err = debug_exit_create(m);
	if (!err)
		err = milestone_create(m, &p->milestones);
	if (!err)
		err = acpi_pm_create(m);
	if (err)
		return err;
	p->console = uart_console_sink(p->uart);
	if ((err = create_consoles(vm, c, p, &env)))
		return err;
	if (p->vcon)
		p->console = virtio_console_sink(p->vcon);
	for (int i = 0; i < c->ndisks; i++) {
		err = virtio_blk_create_on(&env, &c->disks[i], &in->disks[i], &dev, e);
		if (err || (err = plug(vm, p, dev, c->transport)))
			return err;
	}
	for (int i = 0; i < c->nnets; i++) {
		if (c->nets[i].kind == NET_NONE)
			continue;
		err = virtio_net_create(&env, &c->nets[i], &dev, e);
		if (err || (err = plug(vm, p, dev, c->transport)))
			return err;
	}
	for (int i = 0; i < c->nrng; i++) {
		err = virtio_rng_create(&env, &dev);
		if (err || (err = plug(vm, p, dev, c->rng_transport[i])))
			return err;
	}
	for (int i = 0; i < c->nshares; i++) {
		err = virtio_fs_create(&env, &c->shares[i], &dev, e);
		if (err || (err = plug(vm, p, dev, c->transport)))
			return err;
		/* Owned after the device, so stopped before it: its thread raises interrupts
		 * through the transport, which the device's own teardown frees first. */
		if ((err = vm_own(vm, dev, virtio_fs_stop)))
			return err;
	}
	if (c->balloon) {
		err = virtio_balloon_create(&env, p->control, &dev);
		if (err || (err = plug(vm, p, dev, c->transport)))
			return err;
	}
	if (c->bench_devices && (err = bench_devices_create(m)))
		return err;
	if (c->landlock_probe && (err = landlock_probe_create(m, c->landlock_probe)))
		return err;
	return stats_add_device(&p->stats, outq_stats, p->out);
}

/* A path mica will create a socket at: its directory must exist, and the path must be free or
 * a stale socket (control_listen() replaces only those). */
static int check_socket_path(const char *opt, const char *path, struct err *e)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;

	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return err_set(e, -EEXIST, "%s %s: the file exists and is not a socket: give another "
			       "path", opt, path);
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
		 slash ? path : ".");
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return err_set(e, -ENOENT, "%s %s: no directory %s to create the socket in", opt,
			       path, dir);
	return 0;
}

static int open_inputs(struct mica_config *c, struct inputs *in, struct err *e)
{
	enum kernel_kind kind = KERNEL_ELF;
	int err;

	if (c->restore_path) {
		if ((err = snap_open(c->restore_path, &in->snapshot, e)))
			return err_prefix(e, err, "--restore");
	} else if (boot_file_open(&in->kernel, c->kernel, e) || boot_detect(&in->kernel, &kind, e)) {
		return err_prefix(e, -EINVAL, "cannot use kernel '%s'", c->kernel);
	}
	if (c->initrd && boot_file_open(&in->initrd, c->initrd, e))
		return err_prefix(e, -EINVAL, "cannot use initrd '%s'", c->initrd);
	if (c->initrd_data) {
		in->initrd = (struct boot_file){ .path = "the initramfs built in memory",
						 .data = c->initrd_data, .size = c->initrd_size };
		in->initrd_borrowed = true;
	}
	if (c->initrd && kind == KERNEL_ELF)
		return err_set(e, -EINVAL, "--initrd is only for Linux kernels (bzImage, vmlinux); "
			       "'%s' is an ELF kernel for mica", c->kernel);
	if (in->initrd.size >= c->vm.mem_size)
		return err_set(e, -EINVAL, "initrd '%s' (%llu MiB) is larger than the guest's RAM "
			       "(--mem %llu MiB): give more --mem", in->initrd.path,
			       (unsigned long long)(in->initrd.size >> 20),
			       (unsigned long long)(c->vm.mem_size >> 20));
	if ((err = host_mem_check(c->vm.mem_size, e)))
		return err;
	for (; in->ndisks < c->ndisks; in->ndisks++) {
		err = blk_image_open(&in->disks[in->ndisks], &c->disks[in->ndisks], e);
		if (err)
			return err;
	}
	for (int i = 0; i < c->nshares; i++) {
		struct stat st;

		if (stat(c->shares[i].path, &st) < 0)
			return err_set(e, -errno, "--share %s: %s; give an existing directory",
				       c->shares[i].path, strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return err_set(e, -ENOTDIR, "--share %s: not a directory; share a directory",
				       c->shares[i].path);
	}
	/* The log, too, is emptied only when the VM is about to run (out_file_keep): a run that
	 * fails before keeps an old one as it was, and leaves no new one behind. */
	if ((err = out_file_open(&in->stats, c->stats_path, c->stats_opt, e)) ||
	    (err = out_file_open(&in->junit, c->ci.junit, "--junit", e)) ||
	    (err = out_file_open(&in->serial_log, c->ci.serial_log, "--serial-log", e)))
		return err;
	if (c->control_path && (err = check_socket_path("--control", c->control_path, e)))
		return err;
	if (c->snapshot_dir) {
		struct stat st;

		if (stat(c->snapshot_dir, &st) < 0 || !S_ISDIR(st.st_mode))
			return err_set(e, -ENOTDIR, "--snapshot-dir %s: not a directory; create it "
				       "first", c->snapshot_dir);
	}
	if (!c->boot.cmdline && kind == KERNEL_BZIMAGE)
		c->boot.cmdline = LINUX_DEFAULT_CMDLINE;
	c->boot.bench_probes = c->bench_devices;
	return 0;
}

/* Closes what the run did not hand over: the boot files, disks no device took, and the
 * --stats-json file if the run ends without statistics (removed if this run created it). */
static void close_inputs(struct inputs *in)
{
	boot_file_close(&in->kernel);
	if (!in->initrd_borrowed)
		boot_file_close(&in->initrd);
	for (int i = 0; i < in->ndisks; i++)
		blk_image_close(&in->disks[i]);
	out_file_abandon(&in->stats);
	out_file_abandon(&in->junit);
	out_file_abandon(&in->serial_log);
	snap_close(in->snapshot);
	in->snapshot = NULL;
}

/* How the monitor ends a run (on the loop thread). */
static void stop_on_pattern(void *vm, enum ci_pattern_kind kind)
{
	if (kind == CI_FAIL_ON)
		vm_request_exit(vm, EXIT_FAIL_PATTERN, "fail-on");
	else
		vm_request_exit(vm, 0, "end-on");
}

/* The CI options' watcher of the guest's output, when one is asked for; its patterns are the
 * user's to mend (e). */
static int start_monitor(const struct mica_config *c, const struct inputs *in, struct vm *vm,
			 struct monitor **out, struct err *e)
{
	struct monitor_opts o = {
		.ci = &c->ci, .log_fd = in->serial_log.fd, .stop = stop_on_pattern, .opaque = vm,
	};

	*out = NULL;
	if (!ci_watching(&c->ci))
		return 0;
	o.start_ns = now_ns();
	return monitor_create(&o, out, e);
}

/* --json and --junit, at exit through the files opened before the run (vmm/outfile.h). */
static void write_reports(const struct mica_config *c, struct inputs *in, const struct vm *vm,
			  const struct parts *p, const struct run_times *t,
			  const struct stats_members *members)
{
	const struct verdict_json *vj = ((const struct json_members *)members->opaque)->vj;
	FILE *f;
	int err;

	if (c->stats_path) {
		f = out_file_stream(&in->stats);
		err = f ? stats_write_json(vm, &p->stats, t, members, f) : -ENOMEM;
		if (out_file_commit(&in->stats, f) && !err)
			err = -EIO;
		if (err)
			pr_err("cannot write %s %s: %s", c->stats_opt, c->stats_path,
			       strerror(-err));
	}
	if (c->ci.junit) {
		f = out_file_stream(&in->junit);
		err = f ? verdict_write_junit(vj->v, vj->r, p->monitor, f) : -ENOMEM;
		if (out_file_commit(&in->junit, f) && !err)
			err = -EIO;
		if (err)
			pr_err("cannot write --junit %s: %s", c->ci.junit, strerror(-err));
	}
}

/* The filters, with what the other options imply (confine/seccomp.h). */
static int start_seccomp(struct mica_config *c)
{
	struct seccomp_opts *o = &c->seccomp;

	o->exit_writes_file = c->stats_path || c->ci.junit;
	o->control_socket = c->control_path != NULL;
	o->snapshots = c->snapshot_dir != NULL;
	for (int i = 0; i < c->nports; i++)
		o->port_input |= c->ports[i].in_fd >= 0;
	for (int i = 0; i < c->nnets; i++) {
		o->tap |= c->nets[i].kind == NET_TAP;
		o->slirp |= c->nets[i].kind == NET_USER;
	}
	return seccomp_setup(o);
}

static int run(struct mica_config *c, struct run_hooks *hooks)
{
	struct inputs in = { 0 };
	struct boot_entry entry;
	struct parts parts = { 0 };
	struct landlock *landlock = NULL;
	struct term term;
	bool use_term;
	struct vm vm;
	struct run_times times = { .start_ns = now_ns() };
	struct err e = { "" };
	char name[PATH_MAX + 16], host[256] = "localhost";
	struct verdict verdict;
	struct verdict_run vrun = {
		.ci = &c->ci, .name = c->run_name, .subject = c->sandbox ? "CMD" : "the guest",
		.start_ns = times.start_ns, .timeout_s = c->vm.timeout_s,
		.start_time = (long long)time(NULL), .hostname = host,
	};
	struct verdict_json vjson = { &verdict, &vrun, NULL };
	struct json_members jm = { &vjson, c, hooks, 0 };
	struct stats_members members = { write_members, &jm };
	int err, status;

	for (int i = 0; i < CONFIG_MAX_DISKS; i++)
		in.disks[i].fd = in.disks[i].fd_buffered = -1;
	in.stats.fd = in.junit.fd = in.serial_log.fd = -1;
	gethostname(host, sizeof(host) - 1);
	if (!vrun.name) {
		snprintf(name, sizeof(name), "mica run %s", c->kernel ? c->kernel : c->restore_path);
		vrun.name = name;
	}
	if (open_inputs(c, &in, &e) || start_monitor(c, &in, &vm, &parts.monitor, &e)) {
		close_inputs(&in);
		if (c->restore_path && !in.snapshot && c->restore_fallback) {
			hooks->restore_err = e;
			return RUN_RESTORE_FAILED;
		}
		pr_err("%s", e.msg);
		return EXIT_USAGE;
	}
	vjson.m = parts.monitor;
	/* Before the devices: the blk pool's workers enter their filter as they start. */
	if ((err = start_seccomp(c))) {
		if (err == -EINVAL)
			pr_err("this kernel has no seccomp filters: run with --seccomp off");
		else
			pr_err("cannot prepare the seccomp filters: %s", strerror(-err));
		close_inputs(&in);
		return err == -EINVAL ? EXIT_USAGE : EXIT_CRASH;
	}
	c->vm.kvm_stats = c->stats_path != NULL;
	err = vm_create(&vm, &c->vm, &e);
	if (err) {
		/* No usable KVM, too many vCPUs, too much RAM: this host cannot run that VM. */
		pr_err("%s", e.msg);
		status = EXIT_USAGE;
		goto out_vm;
	}
	err = create_devices(&vm, c, &in, &parts, &e);
	if (err) {
		/* A device's own message (an image that is locked, unreadable...) is the user's
		 * problem; anything else is ours. */
		if (e.msg[0])
			pr_err("%s", e.msg);
		else
			pr_err("cannot create the devices: %s", strerror(-err));
		status = e.msg[0] ? EXIT_USAGE : EXIT_CRASH;
		goto out_vm;
	}
	if (c->control_path && (err = control_listen(parts.control, c->control_path, &e))) {
		pr_err("--control %s: %s", c->control_path, e.msg);
		status = EXIT_USAGE;
		goto out_vm;
	}
	if (parts.control && (err = snapshot_cmd_register(parts.control, &vm, c->snapshot_dir))) {
		pr_err("cannot set up snapshots: %s", strerror(-err));
		status = EXIT_CRASH;
		goto out_vm;
	}
	if (in.snapshot) {
		uint64_t t0 = now_ns();

		/* A snapshot that does not fit this VM is refused before any vCPU runs. */
		err = vm_restore(&vm, in.snapshot, &e);
		jm.restore_ns = now_ns() - t0;
		if (err && c->restore_fallback) {
			hooks->restore_err = e;
			status = RUN_RESTORE_FAILED;
			goto out_vm;
		}
		if (err) {
			pr_err("--restore %s: %s", c->restore_path, e.msg);
			status = EXIT_USAGE;
			goto out_vm;
		}
	} else {
		err = boot_load_kernel(&vm, &c->boot, &in.kernel, &in.initrd, &entry, &e);
		if (err) {
			pr_err("cannot load kernel '%s': %s", c->kernel, e.msg);
			status = EXIT_USAGE;
			goto out_vm;
		}
		/* The images are in guest RAM now; drop the mappings before the guest runs. */
		boot_file_close(&in.kernel);
		if (!in.initrd_borrowed)
			boot_file_close(&in.initrd);
		err = boot_setup_vcpus(&vm, &entry);
		if (err) {
			pr_err("cannot set up the vCPUs' boot state: %s", strerror(-err));
			status = EXIT_CRASH;
			goto out_vm;
		}
	}
	if (hooks && hooks->start && (err = hooks->start(hooks->opaque, &vm, &parts.milestones))) {
		pr_err("cannot start the run: %s", strerror(-err));
		status = EXIT_CRASH;
		goto out_vm;
	}
	/* The VM is ready: the log starts empty now, and stays. */
	out_file_keep(&in.serial_log);
	/* From here on, mica opens only what its options named. */
	err = landlock_confine(c, &landlock, &e);
	if (err) {
		pr_err("%s", e.msg);
		status = EXIT_CRASH;
		goto out_vm;
	}
	/* mica sandbox's stdin, when it is not a terminal, is a console port's, not the
	 * terminal's. */
	use_term = !c->sandbox || c->console == CONSOLE_VIRTIO;
	if (use_term) {
		term_start(&term, &vm, parts.console);
		if (c->console == CONSOLE_VIRTIO)
			virtio_console_set_term(parts.vcon, &term);
		else
			uart_set_term(parts.uart, &term);
	}
	if (parts.monitor && (err = monitor_attach(parts.monitor, &vm.loop))) {
		pr_err("cannot watch the guest's output: %s", strerror(-err));
		status = EXIT_CRASH;
		goto out_vm;
	}
	times.first_run_ns = now_ns();
	status = vm_run(&vm);
	times.end_ns = now_ns();
	if (c->sandbox)
		status = sandbox_exit_status(vm.exit_status, vm.exit_reason, c->vm.timeout_s);
	if (c->sandbox) {
		times.marks[0].name = "init";
		times.marks[0].ns = atomic_load(&parts.milestones.ns[SANDBOX_MILESTONE_INIT]);
		times.marks[1].name = "cmd_start";
		times.marks[1].ns = atomic_load(&parts.milestones.ns[SANDBOX_MILESTONE_CMD]);
		times.marks[2].name = "end";
		times.marks[2].ns = times.end_ns;
		times.nmarks = 3;
	}
	/* The guest's last words (a test's final TAP lines) reach a reader that is merely slow;
	 * one that takes nothing for a while is not waited for. */
	/* Everything CMD wrote reaches its reader, however slow (mica sandbox). */
	if (parts.vports)
		virtio_console_drain(parts.vports, -1);
	if (parts.vcon)
		virtio_console_drain(parts.vcon, c->sandbox ? -1 : OUTQ_FLUSH_IDLE_MS);
	outq_flush(parts.out, OUTQ_FLUSH_IDLE_MS);
	if (parts.serial != parts.out)
		outq_flush(parts.serial, OUTQ_FLUSH_IDLE_MS);
	if (use_term)
		term_stop(&term);
	/* Judged on everything the guest wrote, its last partial lines too. */
	if (parts.monitor)
		monitor_finish(parts.monitor, times.end_ns);
	vrun.end_ns = times.end_ns;
	verdict_decide(&verdict, &vrun, parts.monitor, status, vm.exit_reason);
	verdict_report(&verdict, parts.monitor);
	status = times.mica_status = verdict.status;
	write_reports(c, &in, &vm, &parts, &times, &members);
out_vm:
	vm_destroy(&vm);
	monitor_destroy(parts.monitor);
	landlock_close(landlock);
	close_inputs(&in);
	return status;
}

static int warm_start(void *opaque, struct vm *vm, struct milestones *ms)
{
	return sandbox_warm_start(opaque, vm, ms);
}

/* mica sandbox: the VM its options describe (cmd/sandbox.c), run as mica run runs one; warm
 * from a cached snapshot where it can (cmd/sandbox_warm.h). */
static int sandbox_main(int argc, char **argv)
{
	struct sandbox_opts o;
	struct sandbox_run r = { .log_fd = -1 };
	struct sandbox_warm w;
	struct run_hooks hooks = { .start = warm_start, .json = sandbox_warm_json, .opaque = &w };
	struct cli cli;
	struct err e = { "" };
	bool help;
	int status;

	if (sandbox_parse(argc, argv, &o, &help, &e)) {
		fprintf(stderr, "mica: %s\n", e.msg);
		return EXIT_USAGE;
	}
	if (help) {
		sandbox_usage(stdout);
		return 0;
	}
	cli_defaults(&cli);
	if (sandbox_prepare(&o, &cli.cfg, &r, &e) || sandbox_warm_prepare(&o, &cli.cfg, &r, &w, &e)) {
		fprintf(stderr, "mica: %s\n", e.msg);
		sandbox_release(&r);
		return EXIT_USAGE;
	}
	log_set_level(cli.cfg.verbosity >= 2 ? LOG_DEBUG
		      : cli.cfg.verbosity == 1 ? LOG_INFO : LOG_WARN);
	status = run(&cli.cfg, &hooks);
	if (status == RUN_RESTORE_FAILED) {
		sandbox_warm_fall_back(&w, &cli.cfg, hooks.restore_err.msg);
		status = run(&cli.cfg, &hooks);
	}
	sandbox_warm_release(&w);
	sandbox_release(&r);
	return status;
}

/* Standard streams that are closed get /dev/null, so that no file mica opens later (the KVM
 * fd, a disk image) lands on fd 1 and receives the guest's output. */
static void fill_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			int n = open("/dev/null", fd ? O_WRONLY : O_RDONLY);

			if (n >= 0 && n != fd) /* open() takes the lowest free fd: this one */
				close(n);
		}
	}
}

int main(int argc, char **argv)
{
	struct cli cli;
	struct err e = { "" };

	/* A reader that goes away (`mica run ... | head -1`, a --control client that hangs up)
	 * is an error on that write, never a reason to die: every write checks its result. */
	signal(SIGPIPE, SIG_IGN);
	fill_std_fds();

	if (argc >= 2 && !strcmp(argv[1], "bench"))
		return bench_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "check"))
		return check_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "sandbox"))
		return sandbox_main(argc - 1, argv + 1);
	if (cli_parse(argc, argv, &cli, &e)) {
		fprintf(stderr, "mica: %s\n", e.msg);
		return EXIT_USAGE;
	}
	switch (cli.action) {
	case CLI_HELP:
		cli_usage(stdout);
		return 0;
	case CLI_VERSION:
		printf("mica %s\n", MICA_VERSION);
		return 0;
	case CLI_RUN:
		break;
	}
	log_set_level(cli.cfg.verbosity >= 2 ? LOG_DEBUG
		      : cli.cfg.verbosity == 1 ? LOG_INFO : LOG_WARN);
	return run(&cli.cfg, NULL);
}
