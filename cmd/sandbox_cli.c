#include "cmd/sandbox_cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "vmm/util.h"

#define SANDBOX_DEFAULT_MEM (512 * MiB)

void sandbox_usage(FILE *out)
{
	fputs("usage: mica sandbox [options] [--] [CMD [ARGS...]]\n"
	      "\n"
	      "Runs CMD in a fresh Linux VM whose root file system is the host's / (read-only,\n"
	      "with a throwaway overlay: writes succeed and vanish at exit), in the current\n"
	      "directory, with the caller's environment, user, groups and umask. CMD's stdin,\n"
	      "stdout and stderr are this command's own (separate streams, byte-exact); a\n"
	      "terminal stays a terminal. Without CMD: an interactive shell.\n"
	      "\n"
	      "options:\n"
	      "  --rw DIR           DIR is writable at the same path; writes land on the host\n"
	      "                     (repeatable, up to 7)\n"
	      "  --kernel PATH      the Linux bzImage (default: build/linux/vmlinuz beside mica,\n"
	      "                     as scripts/get-linux-guest fetches it, else the host's\n"
	      "                     /boot/vmlinuz-RELEASE)\n"
	      "  --modules DIR      where the kernel's modules are (default: /lib/modules/RELEASE,\n"
	      "                     or the tree scripts/get-linux-guest unpacks)\n"
	      "  --mem SIZE         guest RAM (default 512M; the overlay's writes live in it)\n"
	      "  --cpus N           vCPUs (default 1)\n"
	      "  --timeout SECONDS  stop CMD after this long and exit 124\n"
	      "  --log FILE         write the kernel's messages to FILE\n"
	      "  --append ARGS      more kernel command-line arguments (e.g. a debug option)\n"
	      "  --json FILE        at exit, how it ended, CMD's status, times and VM exits\n"
	      "  --cache DIR        where warm starts keep their snapshots (default\n"
	      "                     $XDG_CACHE_HOME/mica, else ~/.cache/mica): the first run\n"
	      "                     boots and saves the VM once its modules are loaded; later\n"
	      "                     runs with the same kernel, modules and options restore it\n"
	      "  --cold             boot, without using or making a snapshot\n"
	      "  --landlock on|off, --seccomp on|off   mica's own confinement (default on)\n"
	      "  -v, --verbose      the kernel's messages and the init's steps on stderr\n"
	      "\n"
	      "CI options (as for mica run):\n", out);
	cli_ci_usage(out);
	fputs("\n"
	      "debug options (for mica's own tests):\n"
	      "  --debug-no-shares  the VM gets no virtio-fs device: the init fails at\n"
	      "                     mounting the host's / (status 125, one line)\n"
	      "\n"
	      "Exit status: CMD's own; 128+N if it died of signal N; 124 on --timeout; 125 if\n"
	      "the guest kernel panicked or mica failed; 123 if a --fail-on pattern matched;\n"
	      "122 if an --expect pattern never appeared (and CMD ended with 0); 2 for a\n"
	      "usage error.\n", out);
}

int sandbox_parse(int argc, char **argv, struct sandbox_opts *o, bool *help, struct err *e)
{
	enum { OPT_KERNEL = 256, OPT_MODULES, OPT_RW, OPT_MEM, OPT_CPUS, OPT_TIMEOUT, OPT_LOG,
	       OPT_JSON, OPT_LANDLOCK, OPT_SECCOMP, OPT_APPEND, OPT_NO_SHARES, OPT_CACHE, OPT_COLD };
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "modules", required_argument, NULL, OPT_MODULES },
		{ "rw", required_argument, NULL, OPT_RW },
		{ "mem", required_argument, NULL, OPT_MEM },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "log", required_argument, NULL, OPT_LOG },
		{ "append", required_argument, NULL, OPT_APPEND },
		{ "json", required_argument, NULL, OPT_JSON },
		{ "landlock", required_argument, NULL, OPT_LANDLOCK },
		{ "seccomp", required_argument, NULL, OPT_SECCOMP },
		{ "debug-no-shares", no_argument, NULL, OPT_NO_SHARES },
		{ "cache", required_argument, NULL, OPT_CACHE },
		{ "cold", no_argument, NULL, OPT_COLD },
		CLI_CI_OPTIONS,
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t seen = 0;
	int opt, idx;

	memset(o, 0, sizeof(*o));
	*help = false;
	o->mem_size = SANDBOX_DEFAULT_MEM;
	o->ncpus = 1;
	o->landlock = o->seccomp = true;
	optind = 1;
	opterr = 0;
	/* "+": options end at the first non-option word, CMD's own options are CMD's. */
	while ((opt = getopt_long(argc, argv, "+:vh", opts, &idx)) != -1) {
		if (opt >= 256 && opt < CLI_CI_OPT_FIRST) {
			if (optarg && !optarg[0])
				return err_set(e, -EINVAL, "--%s: empty value; give one, or leave the "
					       "option out", opts[idx].name);
			if (opt != OPT_RW && (seen & (1ULL << (opt - 256))))
				return err_set(e, -EINVAL, "--%s given twice; give it once",
					       opts[idx].name);
			seen |= 1ULL << (opt - 256);
		}
		switch (opt) {
		case OPT_KERNEL:
			o->kernel = optarg;
			break;
		case OPT_MODULES:
			o->modules = optarg;
			break;
		case OPT_RW:
			if (o->nrw == SANDBOX_MAX_RW)
				return err_set(e, -EINVAL, "--rw: at most %d directories", SANDBOX_MAX_RW);
			o->rw[o->nrw++] = optarg;
			break;
		case OPT_MEM:
			/* The kernel, the initramfs and the overlay's writes. */
			if (cli_parse_mem(optarg, 64 * MiB, &o->mem_size, e))
				return -EINVAL;
			break;
		case OPT_CPUS:
			if (cli_parse_cpus(optarg, &o->ncpus, e))
				return -EINVAL;
			break;
		case OPT_TIMEOUT:
			if (cli_parse_timeout(optarg, &o->timeout_s, e))
				return -EINVAL;
			break;
		case OPT_LOG:
			o->log_path = optarg;
			break;
		case OPT_APPEND:
			if (strlen(optarg) > SANDBOX_MAX_APPEND)
				return err_set(e, -EINVAL, "--append: at most %d characters",
					       SANDBOX_MAX_APPEND);
			o->append = optarg;
			break;
		case OPT_CACHE:
			o->cache_dir = optarg;
			break;
		case OPT_COLD:
			o->cold = true;
			break;
		case OPT_JSON:
			o->json_path = optarg;
			break;
		case OPT_LANDLOCK:
			if (cli_parse_on_off("--landlock", optarg, &o->landlock, e))
				return -EINVAL;
			break;
		case OPT_SECCOMP:
			if (cli_parse_on_off("--seccomp", optarg, &o->seccomp, e))
				return -EINVAL;
			break;
		case OPT_NO_SHARES:
			o->debug_no_shares = true;
			break;
		case 'v':
			o->verbosity++;
			break;
		case 'h':
			*help = true;
			return 0;
		case ':':
			return err_set(e, -EINVAL, "%s needs a value; see mica sandbox --help",
				       argv[optind - 1]);
		default:
			if (opt >= CLI_CI_OPT_FIRST && opt <= CLI_OPT_JUNIT) {
				if (cli_parse_ci(opt, optarg, &o->ci, e))
					return -EINVAL;
				break;
			}
			return err_set(e, -EINVAL, "unknown option %s; see mica sandbox --help (CMD's "
				       "own options go after --)", argv[optind - 1]);
		}
	}
	o->argv = argv + optind;
	o->argc = argc - optind;
	return cli_check_ci(&o->ci, e);
}
