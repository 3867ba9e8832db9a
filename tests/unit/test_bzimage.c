/* What bzimage_check() can tell about a Linux image without decompressing it: the sizes in its
 * header against the file, the compressed kernel where the header puts it, and the CRC-32 the
 * build appended (kernels before 6.15), also on a Secure Boot-signed image. And the one number
 * host_mem_check() reads from /proc/meminfo. */
#include <asm/bootparam.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "tests/unit/test.h"
#include "vmm/host_mem.h"

#define SETUP   (5 * 512)        /* setup_sects = 4 */
#define PM      (64 * 1024)      /* protected-mode code */
#define PAYLOAD 0x300            /* its compressed kernel, from the start of the PM code */
#define PLEN    (32 * 1024)
#define PE      0x80

static uint8_t img[SETUP + PM + 2048];

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Bit by bit, independent of bzimage.c's table: reflected 0xEDB88320, no final inversion. */
static uint32_t crc_raw(const uint8_t *p, size_t len)
{
	uint32_t c = 0xffffffffu;

	while (len--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
	}
	return c;
}

/* A minimal bzImage: protocol 2.15 header, an xz "kernel" of PLEN bytes claiming 200 KiB
 * uncompressed, init_size 1 MiB, a PE header (as the EFI stub has) and the CRC at the end. */
static struct boot_file make(const char *version)
{
	struct setup_header *h = (void *)(img + 0x1f1);

	memset(img, 0, sizeof(img));
	img[0] = 'M';
	img[1] = 'Z';
	put32(img + 0x3c, PE);
	memcpy(img + PE, "PE\0\0", 4);
	img[PE + 24] = 0x0b;
	img[PE + 25] = 0x02;
	h->setup_sects = 4;
	h->syssize = PM / 16;
	h->boot_flag = 0xaa55;
	memcpy(img + 0x202, "HdrS", 4);
	h->version = 0x020f;
	h->loadflags = LOADED_HIGH;
	h->xloadflags = XLF_KERNEL_64;
	h->payload_offset = PAYLOAD;
	h->payload_length = PLEN;
	h->init_size = 1 << 20;
	h->kernel_version = 0x400 - 0x200;
	strcpy((char *)img + 0x400, version);
	memcpy(img + SETUP + PAYLOAD, "\xfd" "7zXZ\0", 6);
	for (int i = 6; i < PLEN - 4; i++)
		img[SETUP + PAYLOAD + i] = (uint8_t)(i * 7);
	put32(img + SETUP + PAYLOAD + PLEN - 4, 200 * 1024);
	put32(img + SETUP + PM - 4, crc_raw(img, SETUP + PM - 4));
	return (struct boot_file){ .path = "test", .data = img, .size = SETUP + PM };
}

static bool refused(struct boot_file f, const char *what)
{
	struct err e = { "" };

	return bzimage_check(&f, &e) == -ENOEXEC && strstr(e.msg, what);
}

static bool accepted(struct boot_file f)
{
	struct err e = { "" };
	int err = bzimage_check(&f, &e);

	if (err)
		printf("#   refused: %s\n", e.msg);
	return err == 0;
}

static void intact(void)
{
	struct boot_file f = make("6.1.0-test");

	CHECK(accepted(f));
	f.size += 1472; /* a Secure Boot signature after the image changes nothing */
	CHECK(accepted(f));
}

static void truncated(void)
{
	struct boot_file f = make("6.1.0-test");

	f.size = f.size / 3;
	CHECK(refused(f, "truncated or corrupt kernel image: its header says"));
	f.size = SETUP + PM - 1;
	CHECK(refused(f, "truncated or corrupt"));
}

static void setup_sects_wrong(void)
{
	struct boot_file f = make("6.1.0-test");

	img[0x1f1] = 200;
	CHECK(refused(f, "its header says"));
	make("6.1.0-test");
	img[0x1f1] = 5; /* one sector more: inside a signed file, but the payload moved */
	f.size += 1472;
	CHECK(refused(f, "no compressed kernel where its header puts it"));
}

static void payload_damaged(void)
{
	struct boot_file f = make("6.1.0-test");

	memset(img + SETUP + PAYLOAD, 0, 16);
	CHECK(refused(f, "no compressed kernel"));
	make("6.1.0-test");
	put32(img + 0x1f1 + offsetof(struct setup_header, payload_length), PM);
	CHECK(refused(f, "no compressed kernel"));
	make("6.1.0-test");
	put32(img + SETUP + PAYLOAD + PLEN - 4, 2 << 20); /* more than init_size */
	CHECK(refused(f, "claims 2097152 bytes uncompressed"));
	make("6.1.0-test");
	put32(img + SETUP + PAYLOAD + PLEN - 4, 0);
	CHECK(refused(f, "uncompressed"));
}

/* Zeroes in the middle of the compressed kernel: only the CRC tells, where there is one. */
static void crc(void)
{
	struct boot_file f = make("6.1.0-test");

	memset(img + SETUP + PAYLOAD + 4096, 0, 4096);
	CHECK(refused(f, "CRC-32 does not match"));
	f = make("4.19.0-old");
	img[SETUP + 100] ^= 1;
	CHECK(refused(f, "CRC-32"));
	/* 6.15 dropped the CRC: the same damage cannot be seen there. */
	f = make("6.15.0-new");
	memset(img + SETUP + PAYLOAD + 4096, 0, 4096);
	CHECK(accepted(f));
	/* No version string: nothing to check the last 4 bytes against either. */
	f = make("");
	img[SETUP + 100] ^= 1;
	CHECK(accepted(f));
}

/* sbsign/pesign fill in the PE checksum and the certificate table entry after the build. */
static void crc_signed(void)
{
	struct boot_file f = make("6.1.0-test");

	put32(img + PE + 24 + 64, 0x00d8ef72);
	put32(img + PE + 24 + 112 + 32, SETUP + PM);
	put32(img + PE + 24 + 112 + 36, 1472);
	f.size += 1472;
	CHECK(accepted(f));
	img[PE + 24 + 60] ^= 1; /* any other header byte still counts */
	CHECK(refused(f, "CRC-32"));
}

static void meminfo(void)
{
	CHECK_EQ(host_mem_meminfo_total("MemTotal:       24683748 kB\nMemFree: 1 kB\n"
					"SwapTotal:       1048576 kB\n"),
		 (24683748ULL + 1048576) * 1024);
	CHECK_EQ(host_mem_meminfo_total("MemFree: 5 kB\nMemTotal: 2048 kB\n"), 2048ULL * 1024);
	CHECK_EQ(host_mem_meminfo_total(""), 0);
}

TEST_MAIN("bzimage", T(intact), T(truncated), T(setup_sects_wrong), T(payload_damaged), T(crc),
	  T(crc_signed), T(meminfo))
