/* Linux bzImage, per the x86 boot protocol (Documentation/arch/x86/boot.rst), entered at its
 * 64-bit entry point (protected-mode kernel + 0x200) with boot_params in rsi. */
#include <asm/bootparam.h>
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "boot/boot.h"
#include "vmm/crc32.h"
#include "vmm/layout.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define SETUP_HEADER_OFFSET 0x1f1
#define BZ_MAGIC_OFFSET     0x202  /* "HdrS" */
#define BZ_MIN_VERSION      0x020c /* 2.12: xloadflags and the 64-bit entry */
#define BZ_ENTRY64_OFFSET   0x200
#define KERNEL_LOAD_ADDR    HIGH_MEM_START

static const struct setup_header *bz_header(const struct boot_file *f)
{
	return (const void *)(f->data + SETUP_HEADER_OFFSET);
}

/* ---- integrity: what the boot protocol lets a loader check without decompressing ---- */

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

/* The kernel's build appended a CRC-32 of everything before it (Documentation/arch/x86/
 * boot.rst, "The Image Checksum", protocol 2.08 on) until Linux 6.15 dropped it. Signing the
 * image for Secure Boot rewrites two fields of its PE header (the checksum and the certificate
 * table entry, both 0 at build time) and appends the signature after the image: with those two
 * fields read as 0, a signed kernel's CRC still matches. Returns false only on a mismatch. */
static bool crc_matches(const uint8_t *d, uint64_t image_end)
{
	static const uint8_t zeros[8];
	uint64_t skip[2][2] = { { 0, 0 }, { 0, 0 } }; /* [offset, length] read as zeros */
	uint32_t pe = le32_at(d + 0x3c), crc = 0xffffffffu;
	uint64_t at = 0, end = image_end - 4;

	const struct crc32_table *ieee = crc32_ieee();
	/* PE32+: the optional header follows the 24-byte COFF header; CheckSum at 64, the data
	 * directories at 112, the certificate table is the fifth (8 bytes each). */
	if (d[0] == 'M' && d[1] == 'Z' && pe >= 0x40 && (uint64_t)pe + 24 + 152 <= end &&
	    !memcmp(d + pe, "PE\0\0", 4) && d[pe + 24] == 0x0b && d[pe + 25] == 0x02) {
		skip[0][0] = pe + 24 + 64;
		skip[0][1] = 4;
		skip[1][0] = pe + 24 + 112 + 4 * 8;
		skip[1][1] = 8;
	}
	for (int i = 0; i < 2; i++) {
		if (!skip[i][1])
			continue;
		crc = crc32_raw(ieee, crc, d + at, skip[i][0] - at);
		crc = crc32_raw(ieee, crc, zeros, skip[i][1]);
		at = skip[i][0] + skip[i][1];
	}
	crc = crc32_raw(ieee, crc, d + at, end - at);
	return crc == le32_at(d + end);
}

/* Whether the kernel's version string (the header's kernel_version, in the setup code) says
 * Linux before 6.15, whose images carry the CRC. Unknown: false (nothing to check against). */
static bool has_crc(const struct boot_file *f, const struct setup_header *h, uint64_t setup_size)
{
	uint64_t at = (uint64_t)h->kernel_version + 0x200;
	unsigned major, minor;
	char v[16] = "";

	if (!h->kernel_version || at + sizeof(v) > setup_size)
		return false;
	memcpy(v, f->data + at, sizeof(v) - 1);
	if (sscanf(v, "%u.%u", &major, &minor) != 2)
		return false;
	return major < 6 || (major == 6 && minor < 15);
}

/* The compressed kernel's format, from its first bytes (the formats Linux builds with), or an
 * uncompressed ELF (CONFIG_KERNEL_UNCOMPRESSED). */
static const char *payload_format(const uint8_t *p, uint64_t len)
{
	static const struct {
		const char *name;
		const char *magic;
		size_t len;
	} fmts[] = {
		{ "gzip", "\x1f\x8b", 2 },           { "bzip2", "BZh", 3 },
		{ "lzma", "\x5d\x00\x00", 3 },       { "xz", "\xfd" "7zXZ\x00", 6 },
		{ "lzo", "\x89LZO", 4 },             { "lz4", "\x02\x21\x4c\x18", 4 },
		{ "zstd", "\x28\xb5\x2f\xfd", 4 },   { "ELF", "\x7f" "ELF", 4 },
	};

	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++)
		if (len >= fmts[i].len && !memcmp(p, fmts[i].magic, fmts[i].len))
			return fmts[i].name;
	return NULL;
}

#define CORRUPT "truncated or corrupt kernel image: "

int bzimage_check(const struct boot_file *f, struct err *e)
{
	const struct setup_header *h;
	uint64_t setup_size, image_end, payload;
	const char *fmt;

	if (f->size < 0x300 || memcmp(f->data + BZ_MAGIC_OFFSET, "HdrS", 4) != 0)
		return err_set(e, -ENOEXEC, "neither an ELF64 x86_64 kernel nor a Linux bzImage");
	h = bz_header(f);
	if (h->boot_flag != 0xaa55)
		return err_set(e, -ENOEXEC, "a Linux boot header without the 0xAA55 boot flag: not "
			       "a bzImage");
	if (h->version < BZ_MIN_VERSION || !(h->xloadflags & XLF_KERNEL_64) ||
	    !(h->loadflags & LOADED_HIGH))
		return err_set(e, -ENOEXEC, "a Linux kernel without a 64-bit entry point (boot "
			       "protocol 2.12+, x86_64): use a 64-bit bzImage");
	/* From here on, protocol 2.12: syssize, payload_offset/length and init_size are there.
	 * The file is the setup code, then syssize 16-byte units of protected-mode code (whose
	 * last 4 bytes are the CRC before 6.15), then perhaps a Secure Boot signature. */
	setup_size = ((uint64_t)(h->setup_sects ? h->setup_sects : 4) + 1) * 512;
	image_end = setup_size + (uint64_t)h->syssize * 16;
	if (!h->syssize || image_end > f->size || setup_size + BZ_ENTRY64_OFFSET >= image_end)
		return err_set(e, -ENOEXEC, CORRUPT "its header says %llu bytes (setup %llu, "
			       "kernel %llu), the file has %llu; use an intact copy",
			       (unsigned long long)image_end, (unsigned long long)setup_size,
			       (unsigned long long)h->syssize * 16, (unsigned long long)f->size);
	/* The compressed kernel lies inside the protected-mode code; its last 4 bytes are its
	 * uncompressed size (gzip's ISIZE, or appended by the build for the other formats), which
	 * the kernel's own init_size must cover. */
	payload = setup_size + h->payload_offset;
	fmt = payload < image_end && h->payload_length >= 8 &&
	      h->payload_length <= image_end - payload ?
		      payload_format(f->data + payload, h->payload_length) : NULL;
	if (!fmt)
		return err_set(e, -ENOEXEC, CORRUPT "no compressed kernel where its header puts it "
			       "(offset %u, %u bytes); use an intact copy", h->payload_offset,
			       h->payload_length);
	if (strcmp(fmt, "ELF")) {
		uint32_t out = le32_at(f->data + payload + h->payload_length - 4);

		if (!out || out >= h->init_size)
			return err_set(e, -ENOEXEC, CORRUPT "its %s kernel claims %u bytes "
				       "uncompressed, more than the %u it reserves; use an intact copy",
				       fmt, out, h->init_size);
	}
	if (has_crc(f, h, setup_size) && !crc_matches(f->data, image_end))
		return err_set(e, -ENOEXEC, CORRUPT "its CRC-32 does not match (a damaged copy, or "
			       "a kernel edited after its build); use an intact copy");
	return 0;
}

int bzimage_load(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
		 const struct boot_config *bc, struct boot_entry *entry, struct err *e)
{
	const struct setup_header *h = bz_header(kernel);
	uint64_t setup_size = ((uint64_t)(h->setup_sects ? h->setup_sects : 4) + 1) * 512;
	uint64_t payload = kernel->size - setup_size;
	/* The kernel decompresses and relocates itself: it needs init_size bytes from its run
	 * address, which is at least pref_address (LOAD_PHYSICAL_ADDR, 16 MiB on x86_64). */
	uint64_t kernel_end = MAX(KERNEL_LOAD_ADDR + payload,
				  MAX(h->pref_address, KERNEL_LOAD_ADDR) + h->init_size);
	uint64_t hdr_len = BZ_MAGIC_OFFSET + kernel->data[0x201] - SETUP_HEADER_OFFSET;
	uint8_t *dst;
	int err;

	if (kernel_end > guest_mem_low_end(&vm->mem) ||
	    !(dst = gpa_range(&vm->mem, KERNEL_LOAD_ADDR, payload)))
		return err_set(e, -ENOMEM, "the kernel needs more guest RAM than --mem gives it: "
			       "give more --mem");
	memcpy(dst, kernel->data + setup_size, payload);
	err = linux_boot_params(vm, h, hdr_len, initrd, bc, kernel_end, e);
	if (err)
		return err;
	entry->kind = KERNEL_BZIMAGE;
	entry->rip = KERNEL_LOAD_ADDR + BZ_ENTRY64_OFFSET;
	entry->rsi = ZERO_PAGE_ADDR;
	entry->all_vcpus = 0;
	entry->image_end = kernel_end;
	return 0;
}
