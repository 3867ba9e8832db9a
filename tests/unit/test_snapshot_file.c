/* snapshot/file.c: what a writer puts in, a reader gets back; a damaged, truncated or foreign
 * file is refused with one line, whatever byte is wrong. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/snapshot.h"
#include "tests/unit/snap_tmp.h"
#include "tests/unit/test.h"

#define RAM_SIZE (64 * 1024)


static void *read_file(const char *p, size_t *len)
{
	int fd = open(p, O_RDONLY);
	struct stat st;
	void *buf;

	if (fd < 0 || fstat(fd, &st) < 0)
		abort();
	buf = malloc(st.st_size + 1);
	if (!buf || read(fd, buf, st.st_size) != st.st_size)
		abort();
	close(fd);
	*len = st.st_size;
	return buf;
}

static void write_file(const char *p, const void *buf, size_t len)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		abort();
	close(fd);
}

/* The RAM image: a pattern on some pages, zeros (holes in the file) on the rest. */
static uint8_t *make_ram(void)
{
	uint8_t *ram = aligned_alloc(4096, RAM_SIZE);

	memset(ram, 0, RAM_SIZE);
	for (size_t i = 4096; i < 3 * 4096; i++)
		ram[i] = (uint8_t)(i * 7 + 1);
	ram[RAM_SIZE - 1] = 0x5a;
	return ram;
}

/* Writes the reference snapshot: two state sections and a RAM section. */
static int write_snapshot(const uint8_t *ram)
{
	struct snap_writer *w;
	struct err e = { "" };
	int err = snap_writer_create(snap_tmp_path, "cpu=test mem=64K", &w, &e);

	if (err)
		return err;
	snap_begin(w, "uart.0", 3);
	snap_put_u8(w, 0x11);
	snap_put_u32(w, 0xdeadbeef);
	snap_put_u64(w, 0x0123456789abcdefULL);
	CHECK_EQ(snap_end(w), 0);
	snap_begin(w, "empty.0", 1);
	CHECK_EQ(snap_end(w), 0);
	CHECK_EQ(snap_put_ram(w, "ram", ram, RAM_SIZE), 0);
	return snap_writer_finish(w, &e);
}

static void test_round_trip(void)
{
	uint8_t *ram = make_ram();
	/* Its own mapping, not the heap's: snap_map_ram maps the file over it. */
	uint8_t *back = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
	struct snap_file *f;
	struct snap_cursor c;
	struct err e = { "" };
	struct stat st;

	CHECK_EQ(write_snapshot(ram), 0);
	CHECK_EQ(snap_open(snap_tmp_path, &f, &e), 0);
	if (!f)
		return;
	CHECK(!strcmp(snap_identity(f), "cpu=test mem=64K"));
	/* Whatever the writer's object was built as (not this file's MICA_VERSION: an
	 * incremental build may not have rebuilt both). */
	CHECK(snap_mica_version(f)[0] != '\0');
	CHECK(snap_unused_section(f) != NULL);
	CHECK_EQ(snap_section(f, "uart.0", &c), 0);
	CHECK_EQ(c.version, 3);
	CHECK_EQ(snap_get_u8(&c), 0x11);
	CHECK_EQ(snap_get_u32(&c), 0xdeadbeef);
	CHECK_EQ(snap_get_u64(&c), 0x0123456789abcdefULL);
	CHECK_EQ(snap_cursor_end(&c), 0);
	/* One byte more than written: zeros and a failed cursor. */
	CHECK_EQ(snap_get_u8(&c), 0);
	CHECK_EQ(snap_cursor_end(&c), -EBADMSG);
	CHECK_EQ(snap_section(f, "empty.0", &c), 0);
	CHECK_EQ(snap_cursor_end(&c), 0);
	CHECK_EQ(snap_section(f, "nothing.0", &c), -ENOENT);
	CHECK_EQ(snap_section(f, "ram", &c), -ENOENT);   /* RAM is mapped, not read */
	/* Mapped over memory of the right size: the pattern, private to us. */
	memset(back, 0xee, RAM_SIZE);
	CHECK_EQ(snap_map_ram(f, "ram", back, RAM_SIZE, &e), 0);
	CHECK(!memcmp(back, ram, RAM_SIZE));
	back[0] = 1;
	CHECK(snap_unused_section(f) == NULL);
	CHECK_EQ(snap_verify(f, &e), 0);
	snap_close(f);
	/* The private write did not reach the file; zero pages are holes. */
	CHECK_EQ(snap_open(snap_tmp_path, &f, &e), 0);
	CHECK_EQ(snap_verify(f, &e), 0);
	snap_close(f);
	CHECK_EQ(stat(snap_tmp_path, &st), 0);
	CHECK((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size);
	free(ram);
	munmap(back, RAM_SIZE);
}

static void test_wrong_ram_size(void)
{
	uint8_t *ram = make_ram();
	void *small = aligned_alloc(4096, RAM_SIZE / 2);
	struct snap_file *f;
	struct err e = { "" };

	CHECK_EQ(write_snapshot(ram), 0);
	CHECK_EQ(snap_open(snap_tmp_path, &f, &e), 0);
	CHECK_EQ(snap_map_ram(f, "ram", small, RAM_SIZE / 2, &e), -EINVAL);
	CHECK(strstr(e.msg, "--mem") != NULL);
	snap_close(f);
	free(small);
	free(ram);
}

/* Whether byte i of the snapshot in buf is one a reader looks at: the header, the table, a
 * section's bytes (padding between them is not). */
static bool read_by_parser(const uint8_t *buf, size_t i)
{
	const struct snap_header *h = (const void *)buf;
	const struct snap_section_entry *t = (const void *)(buf + h->table_offset);

	if (i < sizeof(*h) || i >= h->table_offset)
		return true;
	for (uint32_t k = 0; k < h->nsections; k++)
		if (i >= t[k].offset && i < t[k].offset + t[k].size)
			return true;
	return false;
}

/* Every single-byte change of the header, the state sections and the table is refused (RAM
 * sections only by snap_verify). */
static void test_every_byte_matters(void)
{
	uint8_t *ram = make_ram(), *buf;
	size_t len;
	int refused = 0, tried = 0, verify_caught = 0;
	struct snap_file *f;
	struct err e;

	CHECK_EQ(write_snapshot(ram), 0);
	buf = read_file(snap_tmp_path, &len);
	for (size_t i = 0; i < len; i++) {
		bool in_ram = i >= 8192 && i < 8192 + RAM_SIZE;  /* sections at 4096; RAM aligned */

		if (!read_by_parser(buf, i))
			continue;   /* padding nobody reads */
		if (in_ram && i % 509)
			continue;   /* a sample of RAM bytes */
		buf[i] ^= 0x40;
		e.msg[0] = '\0';
		tried++;
		if (snap_parse(buf, len, &f, &e) == 0) {
			if (in_ram && snap_verify(f, &e) == -EBADMSG)
				verify_caught++;
			else
				printf("#   byte %zu changed: not refused\n", i);
			snap_close(f);
		} else if (e.msg[0]) {
			refused++;
		}
		buf[i] ^= 0x40;
	}
	CHECK(tried > 100);
	CHECK_EQ(refused + verify_caught, tried);
	CHECK(verify_caught > 0);
	free(buf);
	free(ram);
}

static void test_truncated_and_foreign(void)
{
	uint8_t *ram = make_ram(), *buf;
	size_t len;
	struct snap_file *f;
	struct err e;
	char other[sizeof(snap_tmp_path) + 8];

	CHECK_EQ(write_snapshot(ram), 0);
	buf = read_file(snap_tmp_path, &len);
	snprintf(other, sizeof(other), "%s.cut", snap_tmp_path);
	for (size_t cut = 0; cut < len; cut += cut < 8192 ? 97 : 4096) {
		e.msg[0] = '\0';
		write_file(other, buf, cut);
		CHECK_EQ(snap_open(other, &f, &e), -EBADMSG);
		CHECK(strstr(e.msg, other) != NULL);
	}
	/* Another format version: named as such. */
	((struct snap_header *)buf)->format_version = 2;
	CHECK_EQ(snap_parse(buf, len, &f, &e), -EBADMSG);
	CHECK(strstr(e.msg, "format version 2") != NULL);
	/* Not a file, not there. */
	CHECK_EQ(snap_open(snap_tmp_dir, &f, &e), -EINVAL);
	CHECK_EQ(snap_open("/nonexistent/snap", &f, &e), -ENOENT);
	unlink(other);
	free(buf);
	free(ram);
}

/* A section table entry that points into another section, or at the header: refused even when
 * its checksums are made right (a crafted file). */
static void test_crafted_overlap(void)
{
	uint8_t *ram = make_ram(), *buf;
	size_t len;
	struct snap_file *f;
	struct err e;
	struct snap_header *h;
	struct snap_section_entry *t;

	CHECK_EQ(write_snapshot(ram), 0);
	buf = read_file(snap_tmp_path, &len);
	h = (void *)buf;
	t = (void *)(buf + h->table_offset);
	t[1].offset = t[0].offset;        /* empty.0 onto uart.0 (size 0 still overlaps nothing) */
	t[1].size = 1;
	t[1].crc = snap_crc32c(0, buf + t[1].offset, 1);
	h->table_crc = snap_crc32c(0, t, h->nsections * sizeof(*t));
	h->header_crc = snap_crc32c(0, h, offsetof(struct snap_header, header_crc));
	CHECK_EQ(snap_parse(buf, len, &f, &e), -EBADMSG);
	CHECK(strstr(e.msg, "overlaps") != NULL);
	t[1].offset = 0;                  /* onto the header */
	t[1].crc = snap_crc32c(0, buf, 1);
	h->table_crc = snap_crc32c(0, t, h->nsections * sizeof(*t));
	h->header_crc = snap_crc32c(0, h, offsetof(struct snap_header, header_crc));
	CHECK_EQ(snap_parse(buf, len, &f, &e), -EBADMSG);
	memcpy(t[1].name, "uart.0", 7);   /* a duplicate name */
	t[1].offset = t[0].offset + t[0].size;
	t[1].size = 0;
	t[1].crc = 0;
	h->table_crc = snap_crc32c(0, t, h->nsections * sizeof(*t));
	h->header_crc = snap_crc32c(0, h, offsetof(struct snap_header, header_crc));
	CHECK_EQ(snap_parse(buf, len, &f, &e), -EBADMSG);
	CHECK(strstr(e.msg, "twice") != NULL);
	free(buf);
	free(ram);
}

static void test_writer_misuse(void)
{
	struct snap_writer *w;
	struct err e = { "" };
	uint8_t page[4096] = { 1 };

	CHECK_EQ(snap_writer_create(snap_tmp_path, "x", &w, &e), 0);
	snap_put_u32(w, 1);                         /* outside a section */
	CHECK_EQ(snap_end(w), -EINVAL);
	CHECK_EQ(snap_writer_finish(w, &e), -EINVAL);
	CHECK_EQ(snap_writer_create(snap_tmp_path, "x", &w, &e), 0);
	snap_begin(w, "a", 1);
	snap_end(w);
	snap_begin(w, "a", 1);                      /* twice */
	CHECK_EQ(snap_end(w), -EINVAL);
	snap_writer_abort(w);
	CHECK_EQ(snap_writer_create(snap_tmp_path, "x", &w, &e), 0);
	CHECK_EQ(snap_put_ram(w, "ram", page, 100), -EINVAL);  /* not whole pages */
	snap_writer_abort(w);
	CHECK_EQ(snap_writer_create("/nonexistent/snap_tmp_dir/snap", "x", &w, &e), -ENOENT);
	CHECK(strstr(e.msg, "/nonexistent/snap_tmp_dir/snap") != NULL);
}

/* Known answer (RFC 3720's test vector): the table is the Castagnoli one. */
static void test_crc32c(void)
{
	uint8_t zeros[32] = { 0 };

	CHECK_EQ(snap_crc32c(0, "123456789", 9), 0xe3069283);
	CHECK_EQ(snap_crc32c(0, zeros, 32), 0x8a9136aa);
	CHECK_EQ(snap_crc32c(snap_crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
}

TEST_MAIN("snapshot-file", T(snap_tmp_setup), T(test_crc32c), T(test_round_trip),
	  T(test_wrong_ram_size), T(test_every_byte_matters), T(test_truncated_and_foreign),
	  T(test_crafted_overlap), T(test_writer_misuse), T(snap_tmp_cleanup))
