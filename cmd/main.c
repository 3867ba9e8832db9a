/* mica: set up the VM from the command line, run it, and turn how it ended into an exit status.
 * User errors end here, reported once, with exit status 2. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "boot/boot.h"
#include "cmd/bench_exits.h"
#include "cmd/cli.h"
#include "devices/legacy.h"
#include "devices/pci.h"
#include "devices/uart.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/net.h"
#include "vmm/control.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/stats.h"
#include "vmm/term.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#ifndef MICA_VERSION
#define MICA_VERSION "0.1.0"
#endif

#define LINUX_DEFAULT_CMDLINE "console=ttyS0"

/* The devices of the machine, in the fixed order that decides their slots (see
 * docs/boot-contract.md). *console gets the sink the terminal's input goes to. */
static int create_devices(struct vm *vm, struct console_sink *console, struct uart **uart,
			  struct virtio_dev **vcon, const char **why)
{
	struct virtio_dev *rng;
	int err;

	*uart = uart_create(vm, UART_COM1_PORT, UART_COM1_IRQ, STDOUT_FILENO);
	if (!*uart)
		return -ENOMEM;
	*console = uart_console_sink(*uart);
	err = pci_init(vm);
	if (!err)
		err = rtc_create(vm);
	if (!err)
		err = i8042_create(vm);
	if (!err)
		err = debug_exit_create(vm);
	if (!err)
		err = acpi_pm_create(vm);
	if (err)
		return err;
	*vcon = NULL;
	if (vm->cfg.console == CONSOLE_VIRTIO) {
		*vcon = virtio_console_create(vm, STDOUT_FILENO);
		if (!*vcon)
			return -ENOMEM;
		err = virtio_attach(vm, *vcon);
		if (err)
			return err;
		*console = virtio_console_sink(*vcon);
	}
	for (int i = 0; i < vm->cfg.ndisks && !err; i++) {
		struct blk_opts o;
		char e[256];
		struct virtio_dev *disk;

		if (blk_parse_opts(vm->cfg.disks[i], &o, e, sizeof(e)))
			return -EINVAL; /* checked by the command line already */
		disk = virtio_blk_create(vm, &o, why);
		if (!disk)
			return -EINVAL;
		err = virtio_attach(vm, disk);
	}
	for (int i = 0; i < vm->cfg.nnets && !err; i++) {
		struct net_opts o;
		char e[256];
		struct virtio_dev *nic;

		if (net_parse_opts(vm->cfg.nets[i], &o, e, sizeof(e)))
			return -EINVAL; /* checked by the command line already */
		if (o.kind == NET_NONE)
			continue;
		o.index = i;
		nic = virtio_net_create(vm, &o, why);
		if (!nic)
			return -EINVAL;
		err = virtio_attach(vm, nic);
	}
	for (int i = 0; i < vm->cfg.nrng && !err; i++) {
		rng = virtio_rng_create(vm);
		if (!rng)
			return -ENOMEM;
		err = virtio_attach_to(vm, rng, vm->cfg.rng_transport_set[i] ? vm->cfg.rng_transport[i]
									 : vm->cfg.transport);
	}
	if (!err && vm->cfg.balloon) {
		struct virtio_dev *balloon = virtio_balloon_create(vm);

		err = balloon ? virtio_attach(vm, balloon) : -ENOMEM;
	}
	if (!err && vm->cfg.bench_devices)
		err = bench_devices_create(vm);
	return err;
}

static int run(struct cli *cli)
{
	struct boot_file kernel = { 0 }, initrd = { 0 };
	struct boot_entry entry;
	enum kernel_kind kind;
	struct console_sink console;
	struct virtio_dev *vcon;
	struct term term;
	struct uart *uart;
	struct vm vm;
	struct run_times times = { .start_ns = now_ns() };
	const char *why = NULL;
	int err, status;

	/* Everything about the user's files is checked before touching KVM, so a wrong path is
	 * reported as such even on a machine without /dev/kvm. */
	if (boot_file_open(&kernel, cli->vm.kernel, &why)) {
		pr_err("cannot use kernel '%s': %s", cli->vm.kernel, why);
		return EXIT_USAGE;
	}
	if (boot_detect(&kernel, &kind, &why)) {
		pr_err("cannot use kernel '%s': %s", cli->vm.kernel, why);
		boot_file_close(&kernel);
		return EXIT_USAGE;
	}
	if (cli->vm.initrd && boot_file_open(&initrd, cli->vm.initrd, &why)) {
		pr_err("cannot use initrd '%s': %s", cli->vm.initrd, why);
		boot_file_close(&kernel);
		return EXIT_USAGE;
	}
	for (int i = 0; i < cli->vm.ndisks; i++) {
		struct blk_opts o;
		char e[256];

		blk_parse_opts(cli->vm.disks[i], &o, e, sizeof(e));
		if (access(o.path, o.ro ? R_OK : R_OK | W_OK) < 0) {
			pr_err("cannot use disk image '%s': %s", o.path, strerror(errno));
			boot_file_close(&kernel);
			boot_file_close(&initrd);
			return EXIT_USAGE;
		}
	}
	if (!cli->vm.cmdline && kind == KERNEL_BZIMAGE)
		cli->vm.cmdline = LINUX_DEFAULT_CMDLINE;

	err = vm_create(&vm, &cli->vm, &why);
	if (err) {
		pr_err("%s (%s)", why, strerror(-err));
		/* No usable KVM, too many vCPUs, too much RAM: this host cannot run that VM. */
		status = EXIT_USAGE;
		goto out_vm;
	}
	why = NULL;
	err = create_devices(&vm, &console, &uart, &vcon, &why);
	if (err) {
		/* A device's own message (an image that is locked, unreadable...) is the user's
		 * problem; anything else is ours. */
		if (why)
			pr_err("%s", why);
		else
			pr_err("cannot create the devices: %s", strerror(-err));
		status = why ? EXIT_USAGE : EXIT_CRASH;
		goto out_vm;
	}
	if (cli->vm.control_path && (err = control_listen(&vm, cli->vm.control_path, &why))) {
		pr_err("--control %s: %s (%s)", cli->vm.control_path, why, strerror(-err));
		status = EXIT_USAGE;
		goto out_vm;
	}
	err = boot_load_kernel(&vm, &kernel, &initrd, &entry, &why);
	if (err) {
		pr_err("cannot load kernel '%s': %s", cli->vm.kernel, why);
		status = EXIT_USAGE;
		goto out_vm;
	}
	/* The images are in guest RAM now; drop the mappings before the guest runs. */
	boot_file_close(&kernel);
	boot_file_close(&initrd);
	err = boot_setup_vcpus(&vm, &entry);
	if (err) {
		pr_err("cannot set up the vCPUs' boot state: %s", strerror(-err));
		status = EXIT_CRASH;
		goto out_vm;
	}
	term_start(&term, &vm, console);
	if (vcon)
		virtio_console_set_term(vcon, &term);
	else
		uart_set_term(uart, &term);
	times.first_run_ns = now_ns();
	status = vm_run(&vm);
	times.end_ns = now_ns();
	term_stop(&term);
	if (cli->vm.stats_path && (err = stats_write_json(&vm, &times, cli->vm.stats_path)))
		pr_err("cannot write --stats-json %s: %s", cli->vm.stats_path, strerror(-err));
out_vm:
	vm_destroy(&vm);
	boot_file_close(&kernel);
	boot_file_close(&initrd);
	return status;
}

int main(int argc, char **argv)
{
	struct cli cli;
	char msg[512];

	if (argc >= 2 && !strcmp(argv[1], "bench"))
		return bench_main(argc - 1, argv + 1);
	if (cli_parse(argc, argv, &cli, msg, sizeof(msg))) {
		fprintf(stderr, "mica: %s\n", msg);
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
	log_set_level(cli.verbosity >= 2 ? LOG_DEBUG : cli.verbosity == 1 ? LOG_INFO : LOG_WARN);
	return run(&cli);
}
