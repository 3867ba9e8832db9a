/* The snapshot file: a streaming writer and a checking reader (the format is in snapshot.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot/snapshot.h"
#include "vmm/util.h"

#define DATA_START 4096          /* the first section's offset: the header's page is its own */
#define STATE_ALIGN 8

_Static_assert(sizeof(struct snap_header) <= DATA_START, "the header fits its page");
_Static_assert(sizeof(struct snap_section_entry) == 64, "a table entry is 64 bytes");

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* ---- writing ---- */

struct snap_writer {
	int fd;
	char *path;                  /* where finish renames the file */
	char *tmp;                   /* the file being written */
	struct snap_header hdr;
	uint64_t end;                /* the file's size so far (sections written) */
	struct snap_section_entry *table;
	uint32_t n, cap;
	bool open;                   /* a section is begun and buffered in buf */
	uint8_t *buf;
	size_t len, bufcap;
	int err;                     /* sticky: the first failure */
};

static int pwrite_all(int fd, const void *data, size_t len, uint64_t off)
{
	const uint8_t *p = data;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

int snap_writer_create(const char *path, const char *identity, struct snap_writer **out,
		       struct err *e)
{
	struct snap_writer *w;

	if (strlen(identity) >= SNAP_IDENTITY_MAX)
		return err_set(e, -ENAMETOOLONG, "snapshot identity too long");
	w = calloc(1, sizeof(*w));
	if (!w || !(w->path = strdup(path)) || asprintf(&w->tmp, "%s.tmp.%d", path, getpid()) < 0) {
		if (w)
			free(w->path);
		free(w);
		return err_set(e, -ENOMEM, "out of memory");
	}
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		int err = -errno;

		free(w->tmp);
		free(w->path);
		free(w);
		return err_set(e, err, "cannot write the snapshot %s: %s", path, strerror(-err));
	}
	memcpy(w->hdr.magic, SNAP_MAGIC, sizeof(w->hdr.magic));
	w->hdr.format_version = SNAP_FORMAT_VERSION;
	w->hdr.header_size = sizeof(w->hdr);
	snprintf(w->hdr.mica_version, sizeof(w->hdr.mica_version), "%s", MICA_VERSION);
	snprintf(w->hdr.identity, sizeof(w->hdr.identity), "%s", identity);
	w->end = DATA_START;
	*out = w;
	return 0;
}

static bool name_taken(const struct snap_writer *w, const char *name)
{
	for (uint32_t i = 0; i < w->n; i++)
		if (!strcmp(w->table[i].name, name))
			return true;
	return false;
}

/* A new table entry named name at the current end (aligned to align), or NULL (w->err set). */
static struct snap_section_entry *add_entry(struct snap_writer *w, const char *name,
					    uint64_t align)
{
	struct snap_section_entry *s;

	if (strlen(name) == 0 || strlen(name) >= SNAP_NAME_MAX || name_taken(w, name)) {
		w->err = -EINVAL;
		return NULL;
	}
	if (w->n == SNAP_MAX_SECTIONS) {
		w->err = -ENOSPC;
		return NULL;
	}
	if (w->n == w->cap) {
		uint32_t cap = w->cap ? w->cap * 2 : 32;
		void *t = realloc(w->table, cap * sizeof(*w->table));

		if (!t) {
			w->err = -ENOMEM;
			return NULL;
		}
		w->table = t;
		w->cap = cap;
	}
	s = &w->table[w->n++];
	memset(s, 0, sizeof(*s));
	memcpy(s->name, name, strlen(name));
	s->offset = align_up(w->end, align);
	return s;
}

void snap_begin(struct snap_writer *w, const char *name, uint32_t version)
{
	struct snap_section_entry *s;

	if (w->open)
		w->err = w->err ? w->err : -EINVAL;
	if (w->err)
		return;
	s = add_entry(w, name, STATE_ALIGN);
	if (!s)
		return;
	s->version = version;
	w->open = true;
	w->len = 0;
}

void snap_put(struct snap_writer *w, const void *data, size_t len)
{
	if (w->err || !len)
		return;
	if (!w->open) {
		w->err = -EINVAL;
		return;
	}
	if (len > w->bufcap - w->len) {
		size_t cap = MAX(w->bufcap * 2, w->len + len);
		uint8_t *b = cap < w->len ? NULL : realloc(w->buf, cap);

		if (!b) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = b;
		w->bufcap = cap;
	}
	memcpy(w->buf + w->len, data, len);
	w->len += len;
}

int snap_end(struct snap_writer *w)
{
	struct snap_section_entry *s;
	int err;

	if (w->err)
		return w->err;
	if (!w->open)
		return w->err = -EINVAL;
	w->open = false;
	s = &w->table[w->n - 1];
	s->size = w->len;
	s->crc = snap_crc32c(0, w->buf, w->len);
	err = pwrite_all(w->fd, w->buf, w->len, s->offset);
	if (err)
		return w->err = err;
	w->end = s->offset + s->size;
	return 0;
}

static bool page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[SNAP_RAM_ALIGN];

	return !memcmp(p, zero, SNAP_RAM_ALIGN);
}

/* Pages of zeros are not written: they stay holes in a sparse file, cost no disk and read back
 * as zeros (the file's size covers them). */
int snap_put_ram(struct snap_writer *w, const char *name, const void *data, size_t len)
{
	const uint8_t *p = data;
	struct snap_section_entry *s;

	if (!w->err && (w->open || len % SNAP_RAM_ALIGN))
		w->err = -EINVAL;
	if (w->err)
		return w->err;
	s = add_entry(w, name, SNAP_RAM_ALIGN);
	if (!s)
		return w->err;
	s->flags = SNAP_SECTION_RAM;
	s->size = len;
	s->crc = snap_crc32c(0, data, len);
	for (size_t off = 0; off < len;) {
		size_t run;
		int err;

		if (page_is_zero(p + off)) {
			off += SNAP_RAM_ALIGN;
			continue;
		}
		for (run = SNAP_RAM_ALIGN; off + run < len && !page_is_zero(p + off + run);)
			run += SNAP_RAM_ALIGN;
		err = pwrite_all(w->fd, p + off, run, s->offset + off);
		if (err)
			return w->err = err;
		off += run;
	}
	w->end = s->offset + len;
	return 0;
}

static void writer_free(struct snap_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->table);
	free(w->buf);
	free(w->tmp);
	free(w->path);
	free(w);
}

void snap_writer_abort(struct snap_writer *w)
{
	unlink(w->tmp);
	writer_free(w);
}

int snap_writer_finish(struct snap_writer *w, struct err *e)
{
	size_t tsize = (size_t)w->n * sizeof(*w->table);
	int err = w->open ? -EINVAL : w->err;

	w->hdr.table_offset = align_up(w->end, STATE_ALIGN);
	w->hdr.nsections = w->n;
	w->hdr.table_crc = snap_crc32c(0, w->table, tsize);
	w->hdr.header_crc = snap_crc32c(0, &w->hdr, offsetof(struct snap_header, header_crc));
	/* The header last, after the data it describes; then sync before the rename, so the
	 * name never points at a file whose blocks are not all on disk. */
	if (!err)
		err = pwrite_all(w->fd, w->table, tsize, w->hdr.table_offset);
	if (!err && ftruncate(w->fd, w->hdr.table_offset + tsize) < 0)
		err = -errno;
	if (!err)
		err = pwrite_all(w->fd, &w->hdr, sizeof(w->hdr), 0);
	if (!err && fdatasync(w->fd) < 0)
		err = -errno;
	if (!err && rename(w->tmp, w->path) < 0)
		err = -errno;
	if (err) {
		err_set(e, err, "cannot write the snapshot %s: %s", w->path, strerror(-err));
		snap_writer_abort(w);
		return err;
	}
	writer_free(w);
	return 0;
}

/* ---- reading ---- */

struct snap_file {
	int fd;                      /* -1: parsed from memory */
	const uint8_t *data;
	size_t size;
	bool mapped;                 /* data is our mmap of fd */
	const struct snap_header *hdr;
	const struct snap_section_entry *table;
	bool *used;
};

static int bad(struct err *e, const char *why, const char *name)
{
	if (name)
		return err_set(e, -EBADMSG, "not a usable snapshot: section '%s' %s", name, why);
	return err_set(e, -EBADMSG, "not a usable snapshot: %s", why);
}

static int cmp_offset(const void *a, const void *b)
{
	const struct snap_section_entry *x = *(const struct snap_section_entry *const *)a;
	const struct snap_section_entry *y = *(const struct snap_section_entry *const *)b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static bool terminated(const char *s, size_t max)
{
	return memchr(s, '\0', max) != NULL;
}

/* Every check of the top of snapshot.h but the RAM sections' checksums. */
static int check_file(struct snap_file *f, struct err *e)
{
	const struct snap_header *h = (const void *)f->data;
	const struct snap_section_entry **order;
	uint64_t tsize;
	int err = 0;

	if (f->size < DATA_START)
		return bad(e, "the file is too short for a header", NULL);
	if (memcmp(h->magic, SNAP_MAGIC, sizeof(h->magic)))
		return bad(e, "it does not start with mica's snapshot magic", NULL);
	if (h->format_version != SNAP_FORMAT_VERSION)
		return err_set(e, -EBADMSG, "the snapshot has format version %u; this mica reads "
			       "version %u: take the snapshot again", h->format_version,
			       SNAP_FORMAT_VERSION);
	if (h->header_size != sizeof(*h) ||
	    h->header_crc != snap_crc32c(0, h, offsetof(struct snap_header, header_crc)))
		return bad(e, "its header fails its checksum", NULL);
	if (!terminated(h->mica_version, sizeof(h->mica_version)) ||
	    !terminated(h->identity, sizeof(h->identity)))
		return bad(e, "its header holds an unterminated string", NULL);
	if (h->nsections > SNAP_MAX_SECTIONS)
		return bad(e, "it lists too many sections", NULL);
	tsize = (uint64_t)h->nsections * sizeof(struct snap_section_entry);
	if (h->table_offset < DATA_START || h->table_offset % STATE_ALIGN ||
	    h->table_offset > f->size || tsize > f->size - h->table_offset)
		return bad(e, "it is truncated (its section table is missing)", NULL);
	f->hdr = h;
	f->table = (const void *)(f->data + h->table_offset);
	if (h->table_crc != snap_crc32c(0, f->table, tsize))
		return bad(e, "its section table fails its checksum", NULL);

	order = calloc(h->nsections + 1, sizeof(*order));
	f->used = calloc(h->nsections + 1, sizeof(*f->used));
	if (!order || !f->used) {
		free(order);
		return err_set(e, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < h->nsections && !err; i++) {
		const struct snap_section_entry *s = &f->table[i];

		order[i] = s;
		if (!terminated(s->name, sizeof(s->name)) || !s->name[0])
			err = bad(e, "a section has no proper name", NULL);
		else if (s->flags & ~SNAP_SECTION_RAM)
			err = bad(e, "has unknown flags", s->name);
		else if (s->offset < DATA_START || s->offset > h->table_offset ||
			 s->size > h->table_offset - s->offset)
			err = bad(e, "lies outside the file's data", s->name);
		else if ((s->flags & SNAP_SECTION_RAM) &&
			 (s->offset % SNAP_RAM_ALIGN || s->size % SNAP_RAM_ALIGN))
			err = bad(e, "is RAM but not page-aligned", s->name);
		else if (!(s->flags & SNAP_SECTION_RAM) &&
			 s->crc != snap_crc32c(0, f->data + s->offset, s->size))
			err = bad(e, "fails its checksum (the file is damaged)", s->name);
		for (uint32_t j = 0; j < i && !err; j++)
			if (!strcmp(f->table[j].name, s->name))
				err = bad(e, "appears twice", s->name);
	}
	if (!err && h->nsections > 1) {
		qsort(order, h->nsections, sizeof(*order), cmp_offset);
		for (uint32_t i = 1; i < h->nsections && !err; i++)
			if (order[i - 1]->offset + order[i - 1]->size > order[i]->offset)
				err = bad(e, "overlaps another", order[i]->name);
	}
	free(order);
	return err;
}

int snap_parse(const void *buf, size_t len, struct snap_file **out, struct err *e)
{
	struct snap_file *f = calloc(1, sizeof(*f));
	int err;

	if (!f)
		return err_set(e, -ENOMEM, "out of memory");
	f->fd = -1;
	f->data = buf;
	f->size = len;
	err = check_file(f, e);
	if (err) {
		snap_close(f);
		return err;
	}
	*out = f;
	return 0;
}

int snap_open(const char *path, struct snap_file **out, struct err *e)
{
	struct snap_file *f = calloc(1, sizeof(*f));
	struct stat st;
	int err;

	if (!f)
		return err_set(e, -ENOMEM, "out of memory");
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0 || fstat(f->fd, &st) < 0) {
		err = err_set(e, -errno, "cannot read the snapshot %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		err = err_set(e, -EINVAL, "the snapshot %s is not a regular file", path);
		goto fail;
	}
	f->size = st.st_size;
	if (f->size < DATA_START) {
		err = err_prefix(e, bad(e, "the file is too short for a header", NULL), "%s", path);
		goto fail;
	}
	/* Read-only and private: a reader never changes the file, and nothing is read until
	 * touched (the RAM sections are never touched here). A snapshot is replaced by rename,
	 * never rewritten in place, so the mapping cannot shrink under us. */
	f->data = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
	if (f->data == MAP_FAILED) {
		f->data = NULL;
		err = err_set(e, -errno, "cannot map the snapshot %s: %s", path, strerror(errno));
		goto fail;
	}
	f->mapped = true;
	err = check_file(f, e);
	if (err) {
		err_prefix(e, err, "%s", path);
		goto fail;
	}
	*out = f;
	return 0;
fail:
	snap_close(f);
	return err;
}

void snap_close(struct snap_file *f)
{
	if (!f)
		return;
	if (f->mapped)
		munmap((void *)f->data, f->size);
	if (f->fd >= 0)
		close(f->fd);
	free(f->used);
	free(f);
}

const char *snap_identity(const struct snap_file *f)
{
	return f->hdr->identity;
}

const char *snap_mica_version(const struct snap_file *f)
{
	return f->hdr->mica_version;
}

static int find(const struct snap_file *f, const char *name)
{
	for (uint32_t i = 0; i < f->hdr->nsections; i++)
		if (!strcmp(f->table[i].name, name))
			return (int)i;
	return -ENOENT;
}

int snap_verify(struct snap_file *f, struct err *e)
{
	for (uint32_t i = 0; i < f->hdr->nsections; i++) {
		const struct snap_section_entry *s = &f->table[i];

		if (s->crc != snap_crc32c(0, f->data + s->offset, s->size))
			return bad(e, "fails its checksum (the file is damaged)", s->name);
	}
	return 0;
}

int snap_section(struct snap_file *f, const char *name, struct snap_cursor *c)
{
	int i = find(f, name);

	memset(c, 0, sizeof(*c));
	if (i < 0 || (f->table[i].flags & SNAP_SECTION_RAM))
		return -ENOENT;
	f->used[i] = true;
	c->data = f->data + f->table[i].offset;
	c->size = f->table[i].size;
	c->version = f->table[i].version;
	snprintf(c->name, sizeof(c->name), "%s", name);
	return 0;
}

void snap_get(struct snap_cursor *c, void *data, size_t len)
{
	if (c->err || len > c->size - c->off) {
		c->err = -EBADMSG;
		memset(data, 0, len);
		return;
	}
	memcpy(data, c->data + c->off, len);
	c->off += len;
}

int snap_cursor_end(const struct snap_cursor *c)
{
	return c->err || c->off != c->size ? -EBADMSG : 0;
}

int snap_map_ram(struct snap_file *f, const char *name, void *addr, size_t len, struct err *e)
{
	int i = find(f, name);
	const struct snap_section_entry *s;

	if (i < 0 || !(f->table[i].flags & SNAP_SECTION_RAM))
		return err_set(e, -ENOENT, "the snapshot holds no RAM section '%s'", name);
	s = &f->table[i];
	if (s->size != len)
		return err_set(e, -EINVAL, "the snapshot's RAM section '%s' is %llu MiB; this VM's is "
			       "%llu MiB: restore with the --mem the snapshot was taken with", name,
			       (unsigned long long)(s->size >> 20), (unsigned long long)(len >> 20));
	f->used[i] = true;
	if (f->fd < 0) {
		memcpy(addr, f->data + s->offset, len);
		return 0;
	}
	if (mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, f->fd, s->offset) ==
	    MAP_FAILED)
		return err_set(e, -errno, "cannot map the snapshot's RAM: %s", strerror(errno));
	return 0;
}

const char *snap_unused_section(const struct snap_file *f)
{
	for (uint32_t i = 0; i < f->hdr->nsections; i++)
		if (!f->used[i])
			return f->table[i].name;
	return NULL;
}
