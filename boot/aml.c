#include "boot/aml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define AML_NAME_OP     0x08
#define AML_SCOPE_OP    0x10
#define AML_BUFFER_OP   0x11
#define AML_PACKAGE_OP  0x12
#define AML_EXT_PREFIX  0x5b
#define AML_DEVICE_OP   0x82
#define AML_ZERO_OP     0x00
#define AML_ONE_OP      0x01
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_ROOT_CHAR   '\\'
#define AML_DUAL_NAME   0x2e
#define AML_MULTI_NAME  0x2f

enum { OPEN_PLAIN, OPEN_BUFFER };

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->buf);
	a->buf = NULL;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->error)
		return;
	if (a->len + n > a->cap) {
		size_t cap = (a->cap ? a->cap * 2 : 1024) + n;
		uint8_t *b = realloc(a->buf, cap);

		if (!b) {
			a->error = -ENOMEM;
			return;
		}
		a->buf = b;
		a->cap = cap;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void name_seg(struct aml *a, const char *s, size_t n)
{
	char seg[4] = { '_', '_', '_', '_' };

	memcpy(seg, s, n < 4 ? n : 4);
	aml_bytes(a, seg, 4);
}

void aml_name(struct aml *a, const char *name)
{
	const char *segs[8];
	size_t lens[8];
	int n = 0;

	if (*name == AML_ROOT_CHAR) {
		aml_byte(a, AML_ROOT_CHAR);
		name++;
	}
	while (*name && n < 8) {
		size_t l = strcspn(name, ".");

		segs[n] = name;
		lens[n++] = l;
		name += l + (name[l] == '.');
	}
	if (n == 2)
		aml_byte(a, AML_DUAL_NAME);
	else if (n > 2) {
		aml_byte(a, AML_MULTI_NAME);
		aml_byte(a, n);
	}
	for (int i = 0; i < n; i++)
		name_seg(a, segs[i], lens[i]);
	if (n == 0)
		aml_byte(a, 0); /* NullName */
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO_OP);
	} else if (v == 1) {
		aml_byte(a, AML_ONE_OP);
	} else if (v <= 0xff) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_byte(a, v);
	} else if (v <= 0xffff) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_bytes(a, &(uint16_t){ v }, 2);
	} else if (v <= 0xffffffff) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_bytes(a, &(uint32_t){ v }, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_bytes(a, &v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

void aml_eisaid(struct aml *a, const char *id)
{
	/* Three letters, five bits each, then four hex digits; stored big-endian. */
	uint32_t v = ((uint32_t)(id[0] - '@') << 26) | ((uint32_t)(id[1] - '@') << 21) |
		     ((uint32_t)(id[2] - '@') << 16) | (uint32_t)strtoul(id + 3, NULL, 16);

	aml_byte(a, AML_DWORD_PREFIX);
	aml_byte(a, v >> 24);
	aml_byte(a, v >> 16);
	aml_byte(a, v >> 8);
	aml_byte(a, v);
}

void aml_name_decl(struct aml *a, const char *name)
{
	aml_byte(a, AML_NAME_OP);
	aml_name(a, name);
}

static void open_pkg(struct aml *a, int kind)
{
	if (a->depth == AML_MAX_DEPTH) {
		a->error = -E2BIG;
		return;
	}
	a->open_kind[a->depth] = kind;
	a->open[a->depth++] = a->len;
}

void aml_scope(struct aml *a, const char *name)
{
	aml_byte(a, AML_SCOPE_OP);
	open_pkg(a, OPEN_PLAIN);
	aml_name(a, name);
}

void aml_device(struct aml *a, const char *name)
{
	aml_byte(a, AML_EXT_PREFIX);
	aml_byte(a, AML_DEVICE_OP);
	open_pkg(a, OPEN_PLAIN);
	aml_name(a, name);
}

void aml_package(struct aml *a, uint8_t nelems)
{
	aml_byte(a, AML_PACKAGE_OP);
	open_pkg(a, OPEN_PLAIN);
	aml_byte(a, nelems);
}

void aml_resources(struct aml *a)
{
	aml_byte(a, AML_BUFFER_OP);
	open_pkg(a, OPEN_BUFFER);
}

/* PkgLength: 1 byte up to 63, else a lead byte with the count of following bytes and the low
 * nibble, then 8 bits per byte. It counts itself. */
static size_t pkglen_encode(size_t body, uint8_t out[4])
{
	size_t total;

	if (body + 1 <= 0x3f) {
		out[0] = body + 1;
		return 1;
	}
	for (size_t n = 2; n <= 4; n++) {
		total = body + n;
		if (total < (1u << (4 + 8 * (n - 1)))) {
			out[0] = ((n - 1) << 6) | (total & 0xf);
			for (size_t i = 1; i < n; i++)
				out[i] = total >> (4 + 8 * (i - 1));
			return n;
		}
	}
	return 0;
}

void aml_end(struct aml *a)
{
	uint8_t pl[4];
	size_t start, body, n;

	if (a->error || a->depth == 0)
		return;
	start = a->open[--a->depth];
	if (a->open_kind[a->depth] == OPEN_BUFFER) {
		/* The end tag, then the BufferSize integer in front of the descriptors. */
		uint8_t end_tag[2] = { 0x79, 0x00 };
		struct aml size = { 0 };
		size_t descs;

		aml_bytes(a, end_tag, 2);
		descs = a->len - start;
		aml_integer(&size, descs);
		if (size.error) {
			a->error = size.error;
			return;
		}
		aml_bytes(a, size.buf, size.len); /* grow; then shift into place */
		memmove(a->buf + start + size.len, a->buf + start, descs);
		memcpy(a->buf + start, size.buf, size.len);
		aml_free(&size);
	}
	body = a->len - start;
	n = pkglen_encode(body, pl);
	if (!n) {
		a->error = -E2BIG;
		return;
	}
	aml_bytes(a, pl, n);
	if (a->error)
		return;
	memmove(a->buf + start + n, a->buf + start, body);
	memcpy(a->buf + start, pl, n);
}

/* ---- resource descriptors ---- */

void aml_res_memory32_fixed(struct aml *a, uint32_t base, uint32_t len)
{
	uint8_t d[12] = { 0x86, 9, 0, 1 /* read-write */ };

	memcpy(d + 4, &base, 4);
	memcpy(d + 8, &len, 4);
	aml_bytes(a, d, sizeof(d));
}

void aml_res_interrupt(struct aml *a, uint32_t gsi, int edge, int active_low)
{
	/* Extended Interrupt: consumer, exclusive, one interrupt. */
	uint8_t d[9] = { 0x89, 6, 0, 0x01 | (edge ? 0x02 : 0) | (active_low ? 0x04 : 0), 1 };

	memcpy(d + 5, &gsi, 4);
	aml_bytes(a, d, sizeof(d));
}

void aml_res_io(struct aml *a, uint16_t base, uint8_t len)
{
	uint8_t d[8] = { 0x47, 1 /* 16-bit decode */, base, base >> 8, base, base >> 8, 1, len };

	aml_bytes(a, d, sizeof(d));
}

void aml_res_irq_noflags(struct aml *a, unsigned irq)
{
	uint16_t mask = 1u << irq;
	uint8_t d[3] = { 0x22, mask, mask >> 8 };

	aml_bytes(a, d, sizeof(d));
}

/* Word Address Space descriptor (bus numbers or I/O). */
static void word_space(struct aml *a, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
	uint16_t f[5] = { 0, min, max, 0, (uint16_t)(max - min + 1) };
	uint8_t d[6] = { 0x88, 0x0d, 0, type, 0x0c /* min and max fixed */, tflags };

	aml_bytes(a, d, sizeof(d));
	aml_bytes(a, f, sizeof(f));
}

void aml_res_bus_numbers(struct aml *a, uint16_t first, uint16_t last)
{
	word_space(a, 2, 0, first, last);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	word_space(a, 1, 3 /* ISA and non-ISA ranges */, min, max);
}

void aml_res_dword_memory(struct aml *a, uint32_t min, uint32_t max)
{
	uint32_t f[5] = { 0, min, max, 0, max - min + 1 };
	uint8_t d[6] = { 0x87, 0x17, 0, 0, 0x0c, 0x01 /* read-write, non-cacheable */ };

	aml_bytes(a, d, sizeof(d));
	aml_bytes(a, f, sizeof(f));
}

void aml_res_qword_memory(struct aml *a, uint64_t min, uint64_t max)
{
	uint64_t f[5] = { 0, min, max, 0, max - min + 1 };
	uint8_t d[6] = { 0x8a, 0x2b, 0, 0, 0x0c, 0x01 };

	aml_bytes(a, d, sizeof(d));
	aml_bytes(a, f, sizeof(f));
}
