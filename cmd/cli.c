#include "cmd/cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/util.h"

#define MAX_MEM     (1024 * GiB)
#define MIN_MEM     (4 * MiB)
#define MAX_CPUS    64
#define DEFAULT_MEM (256 * MiB)

void cli_usage(FILE *out)
{
	fputs("usage: mica run --kernel PATH [options]\n"
	      "       mica sandbox [options] [--] [CMD [ARGS...]]   (see mica sandbox --help)\n"
	      "       mica bench exits [--kernel PATH] [--iterations N] [--json PATH]\n"
	      "       mica check [--json PATH]\n"
	      "       mica --help | --version\n"
	      "\n"
	      "Runs a VM on KVM. The kernel is an ELF64 kernel (such as mica's test guest,\n"
	      "build/guest/mica-testguest) or a Linux bzImage.\n"
	      "\n"
	      "run options:\n"
	      "  --kernel PATH      kernel to boot (required, unless --restore)\n"
	      "  --initrd PATH      initial ramdisk (Linux only)\n"
	      "  --cmdline STR      kernel command line (Linux default: console=ttyS0)\n"
	      "  --mem SIZE         guest RAM, with K/M/G suffixes (default 256M)\n"
	      "  --cpus N           vCPUs, 1 to 64 (default 1)\n"
	      "  --timeout SECONDS  stop the guest after this long and exit 124\n"
	      "  --rng[=TRANSPORT]  add a virtio-rng device (entropy from getrandom), on the\n"
	      "                     VM's transport or the one given; repeatable (up to 4)\n"
	      "  --console KIND     serial (default) or virtio: which console the terminal's\n"
	      "                     input goes to; both consoles' output goes to stdout\n"
	      "  --transport KIND   virtio transport: mmio (default), mmio-legacy, pci,\n"
	      "                     pci-transitional\n"
	      "  --disk PATH[,ro][,cache=writeback|writethrough|none][,serial=STR]\n"
	      "                     a virtio-blk disk on a raw image; repeatable\n"
	      "  --net user[,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...[,mac=MAC]\n"
	      "  --net tap,ifname=NAME[,mac=MAC] | --net none\n"
	      "                     a virtio-net device: libslirp user networking (no root\n"
	      "                     needed; DHCP gives the guest 10.0.2.15, the host is\n"
	      "                     10.0.2.2) or a tap interface; repeatable. HOSTPORT 0:\n"
	      "                     a free port, reported on stderr (mica: hostfwd tcp\n"
	      "                     ADDR:PORT -> guest ADDR:PORT) and in --stats-json\n"
	      "  --share PATH[,tag=TAG][,ro][,timeout=SECONDS]\n"
	      "                     share a host directory over virtio-fs (the guest mounts\n"
	      "                     it with mount -t virtiofs TAG DIR; default tag mica);\n"
	      "                     confined beneath PATH; repeatable (up to 8)\n"
	      "  --acpi on|off      ACPI tables for Linux guests (default on): MADT for SMP,\n"
	      "                     DSDT with the devices, poweroff and reset\n"
	      "  --balloon          add a virtio-balloon device (target set through --control)\n"
	      "  --control PATH     a UNIX socket taking commands for the running VM, one a line\n"
	      "                     (help, balloon MIB, balloon-stats, snapshot NAME [stop])\n"
	      "  --snapshot-dir DIR where the control command `snapshot NAME` saves the whole\n"
	      "                     VM (as DIR/NAME; the VM goes on, or ends with stop)\n"
	      "  --restore FILE     start the VM saved in FILE instead of booting: give the\n"
	      "                     options it was taken with (--mem, --cpus, devices, the\n"
	      "                     same disk images), no --kernel\n"
	      "  --bench-devices    add the exit-cost lab's probes (port 0x510, MMIO page at\n"
	      "                     0xdf000000, PIO ioeventfd port 0x514)\n"
	      "  --time-exits       time mica's handling of each userspace exit (for\n"
	      "                     --stats-json)\n"
	      "  --json PATH        at exit, write how the run ended and was judged, exit\n"
	      "                     counts, virtio counters and mica's memory use to PATH as\n"
	      "                     JSON (schema in the README; --stats-json is the same)\n"
	      "  --landlock on|off  after setup, mica may open only the files its options\n"
	      "                     named (default on, where the kernel has Landlock)\n"
	      "  --seccomp on|off   confine each thread to the system calls it needs (default\n"
	      "                     on; a forbidden call ends mica with status 125)\n"
	      "  -v, --verbose      more diagnostics on stderr (twice for debug)\n"
	      "\n"
	      "CI options (also for mica sandbox):\n", out);
	cli_ci_usage(out);
	fputs("\n"
	      "debug options (for mica's own tests):\n"
	      "  --debug-seccomp-probe loop|vcpu|io|fs\n"
	      "                     that kind of thread makes one forbidden system call\n"
	      "                     (personality) once its filter is on; io needs a --disk\n"
	      "                     served by worker threads (MICA_BLK_NO_URING=1)\n"
	      "\n"
	      "Exit status: the status the guest reports through the debug-exit port (0x501);\n"
	      "0 on guest power-off or reset; 124 on --timeout; 125 if the guest crashed\n"
	      "(triple fault, KVM failure); 123 if a --fail-on pattern matched; 122 if an\n"
	      "--expect pattern never appeared (and the guest ended with 0); 2 for a usage\n"
	      "error. In the terminal, Ctrl-A x quits.\n",
	      out);
}

/* The default MAC: 52:54:00 and three bytes of a 32-bit FNV-1a hash of the kernel path (as
 * given on the command line) and the NIC's index. Stable across runs of the same command line
 * (a guest keeps its DHCP lease and its interface name); two VMs booting the same kernel path
 * get the same address, so VMs sharing a bridge need ,mac=. */
static void default_mac(const char *kernel, unsigned index, uint8_t mac[6])
{
	uint32_t h = 2166136261u;

	for (const char *k = kernel ? kernel : ""; *k; k++)
		h = (h ^ (uint8_t)*k) * 16777619u;
	for (int i = 0; i < 4; i++)
		h = (h ^ (uint8_t)(index >> (8 * i))) * 16777619u;
	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

/* Options that may be given more than once; every other one is refused the second time (the
 * first or the last copy winning silently hides a mistake in a long command line). */
static bool repeatable(const char *name)
{
	static const char *const names[] = { "rng", "disk", "net", "share", NULL };

	for (int i = 0; names[i]; i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

/* Refuses a second copy of a non-repeatable option and an empty value (--control "" would
 * silently mean "no socket"); only --cmdline "" means something (an empty command line). */
static int check_once(const char *name, const char *arg, int opt, uint64_t *seen, struct err *e)
{
	uint64_t bit = 1ULL << (opt - 256);

	if (arg && !arg[0] && strcmp(name, "cmdline"))
		return err_set(e, -EINVAL, "--%s: empty value; give one, or leave the option out",
			       name);
	if (repeatable(name))
		return 0;
	if (*seen & bit)
		return err_set(e, -EINVAL, "--%s given twice; give it once%s", name,
			       !strcmp(name, "json") || !strcmp(name, "stats-json") ?
			       " (--json and --stats-json are the same)" : "");
	*seen |= bit;
	return 0;
}

int cli_parse_mem(const char *arg, uint64_t min, uint64_t *out, struct err *e)
{
	uint64_t size;

	if (parse_size(arg, &size))
		return err_set(e, -EINVAL, "--mem %s: not a size; use a number with an optional K, "
			       "M or G suffix, e.g. --mem 256M", arg);
	if (size < min || size > MAX_MEM)
		return err_set(e, -EINVAL, "--mem %s: out of range; give %lluM to 1T", arg,
			       (unsigned long long)(min >> 20));
	*out = ALIGN_UP(size, 2 * MiB);
	return 0;
}

int cli_parse_cpus(const char *arg, int *out, struct err *e)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	if (errno || *end || end == arg || n < 1 || n > MAX_CPUS)
		return err_set(e, -EINVAL, "--cpus %s: give a whole number from 1 to %d", arg,
			       MAX_CPUS);
	*out = (int)n;
	return 0;
}

int cli_parse_timeout(const char *arg, double *out, struct err *e)
{
	char *end;
	double t;

	errno = 0;
	t = strtod(arg, &end);
	if (errno || *end || end == arg || !isfinite(t) || t <= 0 || t > 1e9)
		return err_set(e, -EINVAL, "--timeout %s: give a positive number of seconds", arg);
	*out = t;
	return 0;
}

void cli_ci_usage(FILE *out)
{
	fputs("  --serial-log FILE  also write the guest's output (serial port and consoles;\n"
	      "                     mica sandbox: the kernel's messages and CMD's output) to\n"
	      "                     FILE, line by line, complete even if mica is killed\n"
	      "  --timestamps       start each --serial-log line with [+SECONDS.s] since start\n"
	      "  --expect REGEX     the run passes only if a line of output matched REGEX\n"
	      "                     (POSIX extended regex; repeatable)\n"
	      "  --fail-on REGEX    a line matching REGEX fails the run and ends it (once the\n"
	      "                     guest is quiet for 0.25 s, 2 s at most); --fail-on kernel:\n"
	      "                     a kernel panic, oops, BUG, WARNING, KASAN, UBSAN report,\n"
	      "                     general protection fault or hung task (repeatable)\n"
	      "  --end-on REGEX     a line matching REGEX ends the run, passed unless a fail\n"
	      "                     pattern matched or an --expect is missing (repeatable)\n"
	      "  --junit FILE       a JUnit XML report: a testcase per TAP/KTAP result the\n"
	      "                     guest printed (nested subtests too), else one for the run\n",
	      out);
}

int cli_parse_ci(int opt, const char *arg, struct ci_opts *o, struct err *e)
{
	static const char *const names[] = { "serial-log", "timestamps", "expect", "fail-on",
					     "end-on", "junit" };
	const char *name = names[opt - CLI_CI_OPT_FIRST];
	const char **once = opt == CLI_OPT_SERIAL_LOG ? &o->serial_log
			    : opt == CLI_OPT_JUNIT ? &o->junit : NULL;

	if (arg && !arg[0])
		return err_set(e, -EINVAL, "--%s: empty value; give one, or leave the option out",
			       name);
	if (once) {
		if (*once)
			return err_set(e, -EINVAL, "--%s given twice; give it once", name);
		*once = arg;
		return 0;
	}
	if (opt == CLI_OPT_TIMESTAMPS) {
		o->timestamps = true;
		return 0;
	}
	if (o->npatterns == CI_MAX_PATTERNS)
		return err_set(e, -EINVAL, "--%s: at most %d patterns in all", name, CI_MAX_PATTERNS);
	o->patterns[o->npatterns].kind = opt == CLI_OPT_EXPECT ? CI_EXPECT
					 : opt == CLI_OPT_FAIL_ON ? CI_FAIL_ON : CI_END_ON;
	o->patterns[o->npatterns++].source = arg;
	return 0;
}

int cli_check_ci(const struct ci_opts *o, struct err *e)
{
	if (o->timestamps && !o->serial_log)
		return err_set(e, -EINVAL, "--timestamps stamps the lines of --serial-log: give "
			       "--serial-log FILE too");
	return 0;
}

int cli_parse_on_off(const char *name, const char *arg, bool *out, struct err *e)
{
	if (strcmp(arg, "on") && strcmp(arg, "off"))
		return err_set(e, -EINVAL, "%s %s: give on or off", name, arg);
	*out = !strcmp(arg, "on");
	return 0;
}

static int parse_run(int argc, char **argv, struct cli *cli, struct err *e)
{
	enum { OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_MEM, OPT_CPUS, OPT_TIMEOUT, OPT_RNG,
	       OPT_CONSOLE, OPT_TRANSPORT, OPT_STATS, OPT_BENCH_DEVICES, OPT_TIME_EXITS,
	       OPT_BALLOON, OPT_CONTROL, OPT_ACPI, OPT_DISK, OPT_NET, OPT_LANDLOCK,
	       OPT_LANDLOCK_PROBE, OPT_SECCOMP, OPT_SECCOMP_PROBE, OPT_SHARE, OPT_RESTORE,
	       OPT_SNAPSHOT_DIR };
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "mem", required_argument, NULL, OPT_MEM },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "rng", optional_argument, NULL, OPT_RNG },
		{ "bench-devices", no_argument, NULL, OPT_BENCH_DEVICES },
		{ "balloon", no_argument, NULL, OPT_BALLOON },
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "restore", required_argument, NULL, OPT_RESTORE },
		{ "snapshot-dir", required_argument, NULL, OPT_SNAPSHOT_DIR },
		{ "acpi", required_argument, NULL, OPT_ACPI },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "net", required_argument, NULL, OPT_NET },
		{ "share", required_argument, NULL, OPT_SHARE },
		{ "time-exits", no_argument, NULL, OPT_TIME_EXITS },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "transport", required_argument, NULL, OPT_TRANSPORT },
		{ "stats-json", required_argument, NULL, OPT_STATS },
		{ "json", required_argument, NULL, OPT_STATS },
		CLI_CI_OPTIONS,
		{ "landlock", required_argument, NULL, OPT_LANDLOCK },
		/* Hidden, for tests/integration/guest_landlock.sh (confine/landlock_probe.h). */
		{ "debug-landlock-probe", required_argument, NULL, OPT_LANDLOCK_PROBE },
		{ "seccomp", required_argument, NULL, OPT_SECCOMP },
		{ "debug-seccomp-probe", required_argument, NULL, OPT_SECCOMP_PROBE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mica_config *c = &cli->cfg;
	bool rng_transport_set[CONFIG_MAX_RNGS] = { false };
	uint64_t seen = 0; /* bit (opt - 256): a long option already given */
	int opt, idx;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":vh", opts, &idx)) != -1) {
		if (opt >= 256 && opt < 256 + 64) {
			int err = check_once(opts[idx].name, optarg, opt, &seen, e);

			if (err)
				return err;
		}
		switch (opt) {
		case OPT_KERNEL:
			c->kernel = optarg;
			break;
		case OPT_INITRD:
			c->initrd = optarg;
			break;
		case OPT_CMDLINE:
			c->boot.cmdline = optarg;
			break;
		case OPT_MEM:
			if (cli_parse_mem(optarg, MIN_MEM, &c->vm.mem_size, e))
				return -EINVAL;
			break;
		case OPT_CPUS:
			if (cli_parse_cpus(optarg, &c->vm.ncpus, e))
				return -EINVAL;
			break;
		case OPT_TIMEOUT:
			if (cli_parse_timeout(optarg, &c->vm.timeout_s, e))
				return -EINVAL;
			break;
		case OPT_RNG:
			if (c->nrng == CONFIG_MAX_RNGS)
				return err_set(e, -EINVAL, "--rng: at most %d virtio-rng devices",
					       CONFIG_MAX_RNGS);
			/* Without a value: the VM's --transport, known once every option is read. */
			rng_transport_set[c->nrng] = optarg != NULL;
			if (optarg && virtio_transport_parse(optarg, &c->rng_transport[c->nrng]))
				return err_set(e, -EINVAL, "--rng=%s: give mmio, mmio-legacy, pci or "
					       "pci-transitional", optarg);
			c->nrng++;
			break;
		case OPT_BALLOON:
			c->balloon = true;
			break;
		case OPT_DISK:
			if (c->ndisks == CONFIG_MAX_DISKS)
				return err_set(e, -EINVAL, "--disk: at most %d disks", CONFIG_MAX_DISKS);
			if (blk_parse_opts(optarg, &c->disks[c->ndisks], e))
				return err_prefix(e, -EINVAL, "--disk %s", optarg);
			c->ndisks++;
			break;
		case OPT_NET:
			if (c->nnets == CONFIG_MAX_NETS)
				return err_set(e, -EINVAL, "--net: at most %d network devices",
					       CONFIG_MAX_NETS);
			if (net_parse_opts(optarg, &c->nets[c->nnets], e))
				return -EINVAL;
			c->nnets++;
			break;
		case OPT_SHARE: {
			struct fs_opts *s = &c->shares[c->nshares];

			if (c->nshares == CONFIG_MAX_SHARES)
				return err_set(e, -EINVAL, "--share: at most %d shares", CONFIG_MAX_SHARES);
			if (fs_parse_opts(optarg, s, e))
				return -EINVAL;
			for (int i = 0; i < c->nshares; i++)
				if (!strcmp(c->shares[i].tag, s->tag))
					return err_set(e, -EINVAL, "--share %s: tag %s is already used: give "
						       "each share its own tag=", s->path, s->tag);
			c->nshares++;
			break;
		}
		case OPT_ACPI:
			if (cli_parse_on_off("--acpi", optarg, &c->boot.acpi, e))
				return -EINVAL;
			break;
		case OPT_CONTROL:
			c->control_path = optarg;
			break;
		case OPT_RESTORE:
			c->restore_path = optarg;
			break;
		case OPT_SNAPSHOT_DIR:
			c->snapshot_dir = optarg;
			break;
		case OPT_BENCH_DEVICES:
			c->bench_devices = true;
			break;
		case OPT_TIME_EXITS:
			c->vm.time_exits = true;
			break;
		case OPT_CONSOLE:
			if (!strcmp(optarg, "serial"))
				c->console = CONSOLE_SERIAL;
			else if (!strcmp(optarg, "virtio"))
				c->console = CONSOLE_VIRTIO;
			else
				return err_set(e, -EINVAL, "--console %s: give serial or virtio", optarg);
			break;
		case OPT_TRANSPORT:
			if (virtio_transport_parse(optarg, &c->transport))
				return err_set(e, -EINVAL, "--transport %s: give mmio, mmio-legacy, pci or "
					       "pci-transitional", optarg);
			break;
		case OPT_STATS:
			c->stats_path = optarg;
			c->stats_opt = !strcmp(opts[idx].name, "json") ? "--json" : "--stats-json";
			break;
		case OPT_LANDLOCK:
			if (cli_parse_on_off("--landlock", optarg, &c->landlock, e))
				return -EINVAL;
			break;
		case OPT_LANDLOCK_PROBE:
			c->landlock_probe = optarg;
			break;
		case OPT_SECCOMP:
			if (cli_parse_on_off("--seccomp", optarg, &c->seccomp.on, e))
				return -EINVAL;
			break;
		case OPT_SECCOMP_PROBE:
			if (seccomp_kind_parse(optarg, &c->seccomp.probe))
				return err_set(e, -EINVAL, "--debug-seccomp-probe %s: give loop, vcpu, io or fs",
					       optarg);
			break;
		case 'v':
			c->verbosity++;
			break;
		case 'h':
			cli->action = CLI_HELP;
			return 0;
		case ':':
			return err_set(e, -EINVAL, "%s needs a value; see mica --help", argv[optind - 1]);
		default:
			if (opt >= CLI_CI_OPT_FIRST && opt <= CLI_OPT_JUNIT) {
				if (cli_parse_ci(opt, optarg, &c->ci, e))
					return -EINVAL;
				break;
			}
			return err_set(e, -EINVAL, "unknown option %s; see mica --help", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return err_set(e, -EINVAL, "unexpected argument '%s'; see mica --help", argv[optind]);
	if (cli_check_ci(&c->ci, e))
		return -EINVAL;
	if (c->restore_path && (c->kernel || c->initrd || c->boot.cmdline))
		return err_set(e, -EINVAL, "--restore starts the VM the snapshot holds, booting "
			       "nothing: leave out --%s", c->kernel ? "kernel" : c->initrd ? "initrd" :
			       "cmdline");
	if (!c->kernel && !c->restore_path)
		return err_set(e, -EINVAL, "no kernel given: use mica run --kernel PATH "
			       "(e.g. build/guest/mica-testguest)");
	for (int i = 0; i < c->nrng; i++)
		if (!rng_transport_set[i])
			c->rng_transport[i] = c->transport;
	/* What follows from the VM itself rather than from an option. */
	for (int i = 0; i < c->ndisks; i++)
		c->disks[i].num_queues = c->vm.ncpus;
	for (int i = 0; i < c->nshares; i++)
		c->shares[i].nshares = (uint32_t)c->nshares;
	for (int i = 0; i < c->nnets; i++)
		if (!c->nets[i].mac_set)
			default_mac(c->kernel, i, c->nets[i].mac);
	return 0;
}

void cli_defaults(struct cli *cli)
{
	memset(cli, 0, sizeof(*cli));
	cli->cfg.vm.mem_size = DEFAULT_MEM;
	cli->cfg.vm.ncpus = 1;
	cli->cfg.boot.acpi = true;
	cli->cfg.landlock = true;
	cli->cfg.seccomp.on = true;
	cli->cfg.seccomp.probe = SECCOMP_NONE;
	cli->cfg.serial_fd = -1;
}

int cli_parse(int argc, char **argv, struct cli *cli, struct err *e)
{
	cli_defaults(cli);
	if (argc < 2)
		return err_set(e, -EINVAL, "no command given: use mica run --kernel PATH, or mica --help");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		cli->action = CLI_HELP;
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		cli->action = CLI_VERSION;
		return 0;
	}
	if (strcmp(argv[1], "run"))
		return err_set(e, -EINVAL, "unknown command '%s': use mica run --kernel PATH, or "
			       "mica --help", argv[1]);
	cli->action = CLI_RUN;
	return parse_run(argc - 1, argv + 1, cli, e);
}
