/* The Linux command line mica writes (boot/linux.c): the user's, plus acpi=off when there are
 * no ACPI tables (unless the user chose acpi=...), and the refusal of virtio-mmio devices
 * without ACPI (a Linux kernel finds them only in ACPI tables). */
#include <errno.h>
#include <string.h>

#include "boot/boot.h"
#include "tests/unit/test.h"
#include "vmm/layout.h"
#include "vmm/memory.h"
#include "vmm/vm.h"

#define RAM (4 * 1024 * 1024ULL)

static struct vm v;

/* Writes the command line for (cmdline, acpi); returns the status, *out the line written. */
static int put_cmdline(const char *cmdline, bool acpi, const char **out, struct err *e)
{
	struct boot_config bc = { .cmdline = cmdline, .acpi = acpi };
	char *dst = gpa_range(&v.mem, CMDLINE_ADDR, 1);

	memset(dst, 'x', 256);
	*out = dst;
	return linux_write_cmdline(&v, &bc, 2047, e);
}

static void setup(void)
{
	memset(&v, 0, sizeof(v));
	if (guest_mem_init(&v.mem, RAM) < 0)
		abort();
}

static void test_acpi_off_appended(void)
{
	static const struct { const char *user; bool acpi; const char *want; } cases[] = {
		{ "console=ttyS0 quiet", false, "console=ttyS0 quiet acpi=off" },
		{ NULL, false, "acpi=off" },
		{ "", false, "acpi=off" },
		{ "console=ttyS0 quiet", true, "console=ttyS0 quiet" },
		{ NULL, true, "" },
		/* The user's own acpi= wins, first word or not. */
		{ "acpi=force console=ttyS0", false, "acpi=force console=ttyS0" },
		{ "quiet acpi=noirq", false, "quiet acpi=noirq" },
		{ "quiet\tacpi=noirq", false, "quiet\tacpi=noirq" },
		/* Words that only contain "acpi=" are not the acpi= option. */
		{ "pnpacpi=off", false, "pnpacpi=off acpi=off" },
		{ "x.noacpi=1 quiet", false, "x.noacpi=1 quiet acpi=off" },
	};
	struct err e = { "" };
	const char *got;

	setup();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_EQ(put_cmdline(cases[i].user, cases[i].acpi, &got, &e), 0);
		if (strcmp(got, cases[i].want)) {
			printf("#   '%s' (acpi %d): wrote '%s', want '%s'\n",
			       cases[i].user ? cases[i].user : "(null)", cases[i].acpi, got,
			       cases[i].want);
			CHECK(!"the command line");
		}
	}
	guest_mem_destroy(&v.mem);
}

/* The limit holds with acpi=off counted in. */
static void test_length_limit(void)
{
	struct boot_config bc = { .acpi = false };
	char user[200];
	struct err e = { "" };

	setup();
	memset(user, 'a', sizeof(user) - 1);
	user[sizeof(user) - 1] = 0;
	bc.cmdline = user;
	CHECK_EQ(linux_write_cmdline(&v, &bc, sizeof(user) - 1 + 9, &e), 0);
	CHECK_EQ(linux_write_cmdline(&v, &bc, sizeof(user) - 1 + 8, &e), -E2BIG);
	bc.acpi = true;
	CHECK_EQ(linux_write_cmdline(&v, &bc, sizeof(user) - 1, &e), 0);
	guest_mem_destroy(&v.mem);
}

static void test_mmio_without_acpi_refused(void)
{
	struct machine_platform_dev mmio = { "virtio,mmio", VIRTIO_MMIO_BASE,
					     VIRTIO_MMIO_SLOT_SIZE, 5 };
	struct machine_platform_dev other = { "mica,bench", BENCH_MMIO_ADDR, 4096, 0 };
	struct err e = { "" };
	const char *got;

	setup();
	/* Another kind of platform device is no reason to refuse. */
	v.machine.platform_devs[v.machine.nplatform_devs++] = other;
	CHECK_EQ(put_cmdline("quiet", false, &got, &e), 0);
	v.machine.platform_devs[v.machine.nplatform_devs++] = mmio;
	CHECK_EQ(put_cmdline("quiet", true, &got, &e), 0);
	CHECK(!strcmp(got, "quiet"));
	e.msg[0] = 0;
	CHECK_EQ(put_cmdline("quiet", false, &got, &e), -EINVAL);
	CHECK(!strcmp(e.msg, "--acpi off: Linux finds virtio-mmio devices only through ACPI tables; "
		  "use --transport pci or leave ACPI on"));
	guest_mem_destroy(&v.mem);
}

TEST_MAIN("linux_cmdline",
	  { "acpi_off_appended", test_acpi_off_appended },
	  { "length_limit", test_length_limit },
	  { "mmio_without_acpi_refused", test_mmio_without_acpi_refused })
