/* `mica check`, the command: its options, the probes in order, the report on stdout (or stderr
 * with --json -) and in --json, the exit status. See cmd/check.h; cmd/check_internal.h says
 * which file holds which part.
 *
 * "no" is kept for what stops mica from running VMs at all (the verdict names the first one);
 * "warn" for what makes it slower, less confined or in need of an option. The probes are mica's
 * own where it has them, so that what check says is what `mica run` would meet. */
#include "cmd/check.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/check_internal.h"
#include "vmm/outfile.h"
#include "vmm/vm.h"

static void usage(FILE *f)
{
	fputs("usage: mica check [--json PATH]\n"
	      "\n"
	      "Says whether this host can run mica's VMs and how fast, one line per thing mica\n"
	      "needs: /dev/kvm and which KVM it is (hardware, nested, PVM), the KVM capabilities\n"
	      "mica needs or uses, what a VM exit costs, io_uring, Landlock, seccomp and\n"
	      "transparent huge pages. Each line starts with ok, warn (mica runs, but slower or\n"
	      "less confined) or no (mica cannot run VMs), and says what to do; the last line\n"
	      "is the verdict.\n"
	      "\n"
	      "  --json PATH   also write the facts as JSON (\"version\": 1) to PATH; with -, the\n"
	      "                JSON goes to stdout and the lines to stderr\n"
	      "  -h, --help    this text\n"
	      "\n"
	      "Exit status: 0 when mica can run VMs here, 1 when it cannot, 2 for a usage error,\n"
	      "125 when the JSON cannot be written.\n", f);
}

int check_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct report r; /* static: some 36 KiB of lines */
	struct out_file out = { 0 };
	const char *json = NULL;
	struct err e = { "" };
	bool json_stdout;
	FILE *j;
	int opt;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = optarg; break;
		case 'h': usage(stdout); return 0;
		case ':':
			fprintf(stderr, "mica: check: %s needs a value (see mica check --help)\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		default:
			if (optopt)
				fprintf(stderr, "mica: check: unknown option -%c (see mica check --help)\n",
					optopt);
			else
				fprintf(stderr, "mica: check: unknown option %s (see mica check --help)\n",
					argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mica: check: unexpected argument '%s' (see mica check --help)\n",
			argv[optind]);
		return EXIT_USAGE;
	}
	json_stdout = json && !strcmp(json, "-");
	if (json && !json_stdout && out_file_open(&out, json, "--json", &e)) {
		fprintf(stderr, "mica: check: %s\n", e.msg);
		return EXIT_USAGE;
	}

	report_init(&r);
	check_kvm(&r);
	check_io_uring(&r);
	check_landlock(&r);
	check_thp(&r);
	check_seccomp(&r);

	print_text(json_stdout ? stderr : stdout, &r);
	if (json_stdout) {
		print_json(stdout, &r);
		if (fflush(stdout)) {
			fprintf(stderr, "mica: check: cannot write the JSON to stdout\n");
			return EXIT_CRASH;
		}
	} else if (json) {
		j = out_file_stream(&out);
		if (j)
			print_json(j, &r);
		if (!j || out_file_commit(&out, j)) {
			fprintf(stderr, "mica: check: cannot write --json %s\n", json);
			return EXIT_CRASH;
		}
	}
	return blocked(&r) ? 1 : 0;
}
