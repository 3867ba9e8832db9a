/* Everything `mica run` is asked to build, parsed once from the command line (cmd/cli.c) into
 * typed options, and read by the composition root (cmd/main.c), which alone knows every layer. */
#ifndef MICA_CMD_CONFIG_H
#define MICA_CMD_CONFIG_H

#include <stdbool.h>

#include "boot/boot.h"
#include "ci/ci.h"
#include "devices/virtio/attach.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/fs.h"
#include "devices/virtio/net.h"
#include "confine/seccomp.h"
#include "vmm/vm.h"

#define CONFIG_MAX_DISKS 8
#define CONFIG_MAX_NETS  4
#define CONFIG_MAX_RNGS  4
#define CONFIG_MAX_SHARES 8
#define CONFIG_MAX_PORTS 4 /* mica sandbox: its job, stdin, stdout, stderr */

enum console_kind {
	CONSOLE_SERIAL,  /* the terminal is on the 16550A UART */
	CONSOLE_VIRTIO,  /* the terminal is on virtio-console port 0 */
};

/* A named virtio-console port (beside port 0, the console) carrying one of mica's fds. */
struct config_port {
	const char *name;                /* the guest finds it by this name */
	int in_fd;                       /* read by mica, delivered to the guest; -1: none */
	int out_fd;                      /* what the guest writes goes here; -1: none */
};

struct mica_config {
	struct vm_config vm;             /* RAM, vCPUs, --timeout, --time-exits */
	struct boot_config boot;         /* --cmdline, --acpi; the bench probes */
	const char *kernel;
	const char *initrd;
	enum virtio_transport_kind transport;
	enum console_kind console;
	int nrng;                        /* --rng[=TRANSPORT], each on its transport */
	enum virtio_transport_kind rng_transport[CONFIG_MAX_RNGS];
	bool balloon;
	struct blk_opts disks[CONFIG_MAX_DISKS];
	int ndisks;
	struct net_opts nets[CONFIG_MAX_NETS];   /* NET_NONE entries make no device */
	int nnets;
	struct fs_opts shares[CONFIG_MAX_SHARES]; /* --share: virtio-fs devices */
	int nshares;
	const char *control_path;        /* --control */
	const char *restore_path;        /* --restore: start from this snapshot, boot nothing */
	const char *snapshot_dir;        /* --snapshot-dir: where `snapshot NAME` writes */
	bool restore_fallback;           /* a snapshot that cannot be restored is not an error:
					  * run() says why and returns RUN_RESTORE_FAILED (mica
					  * sandbox's cache, which then boots) */
	const char *stats_path;          /* --json (--stats-json) */
	const char *stats_opt;           /* which of the two was given, for messages (mica
					  * sandbox: --json) */
	struct ci_opts ci;               /* --serial-log, --expect, --junit, ... */
	bool bench_devices;              /* --bench-devices: the exit-cost lab's probes */
	bool landlock;                   /* --landlock on|off (on by default) */
	const char *landlock_probe;      /* --debug-landlock-probe (hidden, for the tests) */
	struct seccomp_opts seccomp;     /* --seccomp, --debug-seccomp-probe (cmd/main.c fills
					  * in what the other options imply) */
	int verbosity;

	/* Set by `mica sandbox` (cmd/sandbox.c), not by options of `mica run`: */
	const uint8_t *initrd_data;      /* an initrd built in memory, instead of initrd */
	size_t initrd_size;
	int serial_fd;                   /* where the UART's output goes; -1: stdout */
	struct config_port ports[CONFIG_MAX_PORTS];
	int nports;
	bool sandbox;                    /* exit statuses as `mica sandbox` documents them */
	const char *run_name;            /* the run in reports: "mica sandbox CMD..." (NULL: mica
					  * run KERNEL) */
};

#endif
