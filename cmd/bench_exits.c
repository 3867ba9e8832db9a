/* `mica bench exits`: the exit-cost lab. The test guest (tests=bench) times each kind of exit
 * with rdtsc; it runs twice, side by side on this host: under mica with its devices, and under
 * the floor, a raw KVM loop in this file that answers the same exits with no bus, no device
 * model and no locks. The table shows both and their ratio, plus mica's own userspace time per
 * handled exit; JSON goes to build/bench/exits.json. */
#include "cmd/bench_exits.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <linux/kvm.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "boot/boot.h"
#include "vmm/kvm.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/outfile.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define FLOOR_PCI_NOTIFY (PCI_MMIO32_START + 0x3000)
/* Defaults, next to the mica binary (build/mica): build/guest/..., build/bench/... */
#define DEFAULT_GUEST "guest/mica-testguest"
#define DEFAULT_JSON_DIR "bench"
#define DEFAULT_JSON "bench/exits.json"

static const struct {
	const char *name;
	const char *what;
} mechanisms[] = {
	{ "empty", "empty loop (baseline)" },
	{ "pio_out", "PIO write, mica userspace" },
	{ "pio_in", "PIO read, mica userspace" },
	{ "mmio_write", "MMIO write, mica userspace" },
	{ "mmio_read", "MMIO read, mica userspace" },
	{ "mmio_notify", "virtio-mmio QueueNotify (ioeventfd)" },
	{ "pci_notify", "virtio-pci notify (fast MMIO)" },
	{ "pio_eventfd", "PIO ioeventfd" },
	{ "cpuid", "cpuid (in kernel)" },
	{ "vmcall", "vmcall (in kernel)" },
};
#define NMECH (sizeof(mechanisms) / sizeof(mechanisms[0]))

/* ---- the floor: a raw KVM loop ---- */

static int add_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, bool pio, bool match0)
{
	struct kvm_ioeventfd io = { .addr = addr, .len = len };
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	io.fd = fd;
	io.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) | (match0 ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0);
	/* Nobody reads it: the kernel just adds to its counter, which is the floor's cost. */
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

static int floor_loop(struct vcpu *v, FILE *out)
{
	struct kvm_run *run = v->run;

	for (;;) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return EXIT_CRASH;
		}
		if (run->exit_reason == KVM_EXIT_IO) {
			uint8_t *d = (uint8_t *)run + run->io.data_offset;

			if (run->io.direction == KVM_EXIT_IO_OUT) {
				if (run->io.port == UART_COM1_PORT)
					fputc(*d, out);
				else if (run->io.port == DEBUG_EXIT_PORT)
					return *d;
			} else {
				/* The UART's line status says "transmitter empty"; all else reads 0. */
				memset(d, 0, (size_t)run->io.size * run->io.count);
				if (run->io.port == UART_COM1_PORT + 5)
					*d = 0x60;
			}
		} else if (run->exit_reason == KVM_EXIT_MMIO) {
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0, sizeof(run->mmio.data));
		} else if (run->exit_reason != KVM_EXIT_INTR) {
			fprintf(stderr, "mica bench floor: exit reason %u\n", run->exit_reason);
			return EXIT_CRASH;
		}
	}
}

static int floor_main(const char *kernel_path, const char *cmdline)
{
	struct vm_config cfg = { .mem_size = 64 * MiB, .ncpus = 1 };
	struct boot_config bc = {
		.cmdline = cmdline, .acpi = true, .bench_probes = true,
		/* The floor's bare notify addresses, which the test guest times. */
		.bench_mmio_notify = VIRTIO_MMIO_BASE + VIRTIO_MMIO_QUEUE_NOTIFY,
		.bench_pci_notify = FLOOR_PCI_NOTIFY,
	};
	struct boot_file kernel;
	struct boot_entry entry;
	struct err e = { "" };
	struct vm vm;
	int err, status;

	if (boot_file_open(&kernel, kernel_path, &e)) {
		pr_err("cannot use kernel '%s': %s", kernel_path, e.msg);
		return EXIT_USAGE;
	}
	err = vm_create(&vm, &cfg, &e);
	if (err) {
		pr_err("%s", e.msg);
		vm_destroy(&vm);
		boot_file_close(&kernel);
		return EXIT_USAGE;
	}
	err = add_ioeventfd(&vm, BENCH_EVENTFD_PORT, 4, true, false);
	if (!err)
		err = add_ioeventfd(&vm, bc.bench_mmio_notify, 4, false, true);
	if (!err)
		err = vm.caps.ioeventfd_no_length ? add_ioeventfd(&vm, FLOOR_PCI_NOTIFY, 0, false, false)
						  : add_ioeventfd(&vm, FLOOR_PCI_NOTIFY, 2, false, true);
	if (err)
		err_set(&e, err, "cannot add the floor's ioeventfds: %s", strerror(-err));
	if (!err)
		err = boot_load_kernel(&vm, &bc, &kernel, NULL, &entry, &e);
	if (!err && (err = boot_setup_vcpus(&vm, &entry)))
		err_set(&e, err, "cannot set up the vCPU: %s", strerror(-err));
	boot_file_close(&kernel);
	if (err) {
		pr_err("floor VM set-up failed: %s", e.msg);
		vm_destroy(&vm);
		return EXIT_CRASH;
	}
	status = floor_loop(&vm.vcpus[0], stdout);
	fflush(stdout);
	vm_destroy(&vm);
	return status;
}

/* ---- running both and comparing ---- */

struct result {
	double cycles[NMECH];
	bool have[NMECH];
	unsigned long tsc_khz;
	int status;
};

/* Runs `mica ARGS...` (this same binary) and collects what it prints. */
static int run_capture(char *const argv[], char **out)
{
	size_t len = 0, cap = 65536;
	int fds[2], status;
	pid_t pid;

	*out = malloc(cap);
	if (!*out || pipe(fds) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		ssize_t n;

		if (len + 4096 > cap && !(*out = realloc(*out, cap *= 2)))
			return -1;
		n = read(fds[0], *out + len, cap - len - 1);
		if (n <= 0)
			break;
		len += n;
	}
	(*out)[len] = 0;
	close(fds[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void parse(const char *out, struct result *r)
{
	const char *p;

	if ((p = strstr(out, " tsc ")))
		r->tsc_khz = strtoul(p + 5, NULL, 10);
	for (size_t i = 0; i < NMECH; i++) {
		char key[64];

		snprintf(key, sizeof(key), "# bench %s cycles=", mechanisms[i].name);
		if ((p = strstr(out, key))) {
			r->cycles[i] = strtod(p + strlen(key), NULL);
			r->have[i] = true;
		}
	}
}

static unsigned long long json_number(const char *json, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\": ", key);
	p = strstr(json, k);
	return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

static unsigned long long json_sum(const char *json, const char *key)
{
	char k[64];
	unsigned long long sum = 0;
	const char *p = json;

	snprintf(k, sizeof(k), "\"%s\": ", key);
	while ((p = strstr(p, k))) {
		p += strlen(k);
		sum += strtoull(p, NULL, 10);
	}
	return sum;
}

static void cpu_model(char *buf, size_t len, bool *nested)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f = fopen("/proc/cpuinfo", "re");

	snprintf(buf, len, "unknown CPU");
	*nested = false;
	if (!f)
		return;
	/* getline: the flags line is longer than any fixed buffer worth having. */
	while (getline(&line, &cap, f) > 0) {
		char *colon = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && colon) {
			snprintf(buf, len, "%s", colon + 2);
			buf[strcspn(buf, "\n")] = 0;
		}
		if (!strncmp(line, "flags", 5) && strstr(line, " hypervisor"))
			*nested = true;
	}
	free(line);
	fclose(f);
}

static int exits_main(const char *kernel, unsigned long iters, struct out_file *json)
{
	char cmdline[64], iters_s[32], stats_path[] = "/tmp/mica-bench-XXXXXX";
	char cpu[128], *out_mica = NULL, *out_floor = NULL, *stats = NULL;
	struct result mica = { 0 }, fl = { 0 };
	struct utsname u;
	size_t stats_len = 0;
	bool nested;
	int fd;
	FILE *j;
	const char *json_path = json->path;

	snprintf(cmdline, sizeof(cmdline), "tests=bench iters=%lu", iters);
	snprintf(iters_s, sizeof(iters_s), "%lu", iters);
	fd = mkstemp(stats_path);
	if (fd < 0) {
		pr_err("cannot create a temporary file: %s", strerror(errno));
		out_file_abandon(json);
		return EXIT_CRASH;
	}
	close(fd);
	{
		char *argv[] = { "mica", "bench", "floor", "--kernel", (char *)kernel, "--cmdline",
				 cmdline, NULL };

		fl.status = run_capture(argv, &out_floor);
	}
	{
		char *argv[] = { "mica", "run", "--kernel", (char *)kernel, "--mem", "64M",
				 "--bench-devices", "--rng=mmio", "--rng=pci", "--time-exits",
				 "--stats-json", stats_path, "--cmdline", cmdline, NULL };

		mica.status = run_capture(argv, &out_mica);
	}
	if (fl.status || mica.status) {
		pr_err("bench exits: the guest failed (floor status %d, mica status %d); its output:",
		       fl.status, mica.status);
		fprintf(stderr, "--- floor\n%s--- mica\n%s", out_floor ? out_floor : "",
			out_mica ? out_mica : "");
		unlink(stats_path);
		out_file_abandon(json);
		return EXIT_CRASH;
	}
	parse(out_floor, &fl);
	parse(out_mica, &mica);
	read_file(stats_path, 1 << 20, (void **)&stats, &stats_len);
	unlink(stats_path);
	stats = stats ? realloc(stats, stats_len + 1) : NULL;
	if (stats)
		stats[stats_len] = 0;

	cpu_model(cpu, sizeof(cpu), &nested);
	uname(&u);
	printf("mica exit-cost lab: %lu iterations per mechanism, guest-side rdtsc\n", iters);
	printf("host: %s, Linux %s, TSC %lu kHz%s\n", cpu, u.release, mica.tsc_khz,
	       nested ? "; this host is itself a virtual machine (nested KVM): exits cost far more "
			"than on bare metal" : "; bare metal");
	printf("\n%-38s %12s %10s %12s %10s %8s\n", "mechanism", "mica cyc", "mica ns", "floor cyc",
	       "floor ns", "ratio");
	for (size_t i = 0; i < NMECH; i++) {
		double kh = mica.tsc_khz ? mica.tsc_khz : 1;

		if (!mica.have[i] && !fl.have[i])
			continue;
		printf("%-38s %12.0f %10.0f %12.0f %10.0f %8.2f\n", mechanisms[i].what, mica.cycles[i],
		       mica.cycles[i] * 1e6 / kh, fl.cycles[i], fl.cycles[i] * 1e6 / kh,
		       fl.cycles[i] > 0 ? mica.cycles[i] / fl.cycles[i] : 0);
	}
	if (stats) {
		unsigned long long exits = json_number(stats, "pio") + json_number(stats, "mmio");
		unsigned long long cyc = json_number(stats, "handling_cycles");
		unsigned long long khz = json_number(stats, "tsc_khz");

		printf("\nmica's userspace time per PIO/MMIO exit (dispatch + device): %.0f ns over %llu exits\n",
		       exits && khz ? (double)cyc / exits * 1e6 / khz : 0, exits);
		printf("virtqueue notifications that reached mica's userspace: %llu (of %llu handled)\n",
		       json_sum(stats, "notifies_userspace"), json_sum(stats, "notifies"));
	}

	j = out_file_stream(json);
	if (j) {
		fprintf(j, "{\n  \"host_cpu\": \"%s\",\n  \"kernel\": \"%s\",\n  \"nested\": %s,\n"
			   "  \"tsc_khz\": %lu,\n  \"iterations\": %lu,\n  \"mechanisms\": [",
			cpu, u.release, nested ? "true" : "false", mica.tsc_khz, iters);
		for (size_t i = 0, n = 0; i < NMECH; i++) {
			if (!mica.have[i] && !fl.have[i])
				continue;
			fprintf(j, "%s\n    { \"name\": \"%s\", \"mica_cycles\": %.1f, \"floor_cycles\": %.1f }",
				n++ ? "," : "", mechanisms[i].name, mica.cycles[i], fl.cycles[i]);
		}
		fprintf(j, "\n  ],\n  \"mica_stats\": %s\n}\n", stats ? stats : "null");
	}
	if (out_file_commit(json, j))
		pr_err("cannot write --json %s", json_path);
	else
		printf("\nJSON: %s\n", json_path);
	free(stats);
	free(out_mica);
	free(out_floor);
	return 0;
}

/* path, or NAME next to the mica binary (/proc/self/exe), so that the defaults work from any
 * directory. */
static const char *beside_binary(char *buf, size_t len, const char *name)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n <= 0)
		return name;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (!slash || (size_t)(slash + 1 - buf) + strlen(name) >= len)
		return name;
	strcpy(slash + 1, name);
	return buf;
}

/* The kernel must be mica's test guest (it runs tests=bench): checked before anything runs. */
static int check_guest(const char *path)
{
	struct boot_file f;
	struct err e = { "" };
	enum kernel_kind kind;
	int err = boot_file_open(&f, path, &e);

	if (!err && !(err = boot_detect(&f, &kind, &e)) && kind != KERNEL_ELF)
		err = err_set(&e, -EINVAL, "a %s kernel, not mica's test guest: give --kernel "
			      "build/guest/mica-testguest", kind == KERNEL_PVH ? "PVH" : "Linux");
	boot_file_close(&f);
	if (err)
		pr_err("bench exits: cannot use kernel '%s': %s", path, e.msg);
	return err;
}

int bench_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "iterations", required_argument, NULL, 'i' },
		{ "json", required_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	char kernel_buf[PATH_MAX], json_buf[PATH_MAX], dir_buf[PATH_MAX];
	const char *kernel = NULL, *cmdline = "tests=bench", *json = NULL;
	struct out_file out;
	struct err e = { "" };
	unsigned long iters = 2000;
	int opt;

	if (argc < 2 || (strcmp(argv[1], "exits") && strcmp(argv[1], "floor"))) {
		fprintf(stderr, "mica: usage: mica bench exits [--kernel PATH] [--iterations N] "
				"[--json PATH]\n");
		return EXIT_USAGE;
	}
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc - 1, argv + 1, ":", opts, NULL)) != -1) {
		char *end;

		switch (opt) {
		case 'k': kernel = optarg; break;
		case 'c': cmdline = optarg; break;
		case 'j': json = optarg; break;
		case 'i':
			errno = 0;
			iters = strtoul(optarg, &end, 10);
			if (errno || *end || !iters || iters > 100000000 || optarg[0] == '-') {
				fprintf(stderr, "mica: --iterations %s: give a whole number from 1 to 1e8\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case ':':
			fprintf(stderr, "mica: bench: %s needs a value\n", argv[optind]);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "mica: bench: unknown option %s\n", argv[optind]);
			return EXIT_USAGE;
		}
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "mica: bench: unexpected argument '%s'\n", argv[optind + 1]);
		return EXIT_USAGE;
	}
	if (!kernel)
		kernel = beside_binary(kernel_buf, sizeof(kernel_buf), DEFAULT_GUEST);
	if (!strcmp(argv[1], "floor"))
		return floor_main(kernel, cmdline);
	if (check_guest(kernel))
		return EXIT_USAGE;
	if (!json) {
		mkdir(beside_binary(dir_buf, sizeof(dir_buf), DEFAULT_JSON_DIR), 0755);
		json = beside_binary(json_buf, sizeof(json_buf), DEFAULT_JSON);
	}
	if (out_file_open(&out, json, "--json", &e)) {
		fprintf(stderr, "mica: bench exits: %s\n", e.msg);
		return EXIT_USAGE;
	}
	/* Both runs need KVM: say so once, here, rather than once per run. */
	{
		struct kvm_caps caps;
		int kvm_fd;

		if (kvm_open(&kvm_fd, &caps, &e)) {
			fprintf(stderr, "mica: bench exits: %s\n", e.msg);
			out_file_abandon(&out);
			return EXIT_USAGE;
		}
		close(kvm_fd);
	}
	return exits_main(kernel, iters, &out);
}
