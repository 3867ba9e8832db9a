/* The job's wire format (sandbox/job.h). Plain C and libc only: also built into the static init. */
#include "sandbox/job.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_BYTES 12   /* magic, version, flags */
#define TAG_MAX      36   /* virtio-fs: the tag field of the device's config space */
#define HOSTNAME_MAX 64   /* HOST_NAME_MAX */

/* ---- encoding: the size first, then one buffer written front to back ---- */

struct writer {
	uint8_t *p;
};

static void put_u32(struct writer *w, uint32_t v)
{
	v = htole32(v);
	memcpy(w->p, &v, 4);
	w->p += 4;
}

static void put_u16(struct writer *w, uint16_t v)
{
	v = htole16(v);
	memcpy(w->p, &v, 2);
	w->p += 2;
}

static void put_str(struct writer *w, const char *s)
{
	size_t n = strlen(s);

	put_u32(w, (uint32_t)n);
	memcpy(w->p, s, n);
	w->p += n;
}

/* Adds 4 + strlen(s) to *size, refusing what could not fit the record. */
static int size_str(size_t *size, const char *s)
{
	size_t n;

	if (!s)
		return -EINVAL;
	n = strlen(s);
	if (n > JOB_MAX_BYTES || *size > JOB_MAX_BYTES)
		return -EINVAL;
	*size += 4 + n;
	return 0;
}

static bool valid_tag(const char *t)
{
	return t && t[0] && strlen(t) <= TAG_MAX;
}

static bool valid_path(const char *p)
{
	return p && p[0] == '/';
}

/* The rules the decoder enforces on what it decoded, checked on the host side too. */
static int check_job(const struct sandbox_job *j)
{
	for (int i = 0; i < 3; i++)
		if (j->stdio[i] > JOB_STDIO_TTY)
			return -EINVAL;
	if ((j->flags & ~JOB_VERBOSE) || j->umask > 0777 || j->ngroups > JOB_MAX_GROUPS ||
	    j->nrw > JOB_MAX_SHARES || (j->ngroups && !j->groups) || (j->nrw && !j->rw) ||
	    (j->argc && !j->argv) || (j->envc && !j->envp))
		return -EINVAL;
	if (!valid_path(j->cwd) || !valid_tag(j->root_tag) || !j->hostname ||
	    strlen(j->hostname) > HOSTNAME_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < j->nrw; i++)
		if (!valid_tag(j->rw[i].tag) || !valid_path(j->rw[i].path))
			return -EINVAL;
	return 0;
}

int job_encode(const struct sandbox_job *j, uint8_t **buf, size_t *len)
{
	size_t size = HEADER_BYTES + 16 + 4 * (size_t)j->ngroups + 8 + 12;
	struct writer w;
	int err;

	*buf = NULL;
	*len = 0;
	if ((err = check_job(j)))
		return err;
	err = size_str(&size, j->cwd);
	if (!err)
		err = size_str(&size, j->root_tag);
	if (!err)
		err = size_str(&size, j->hostname);
	for (uint32_t i = 0; !err && i < j->argc; i++)
		err = size_str(&size, j->argv[i]);
	for (uint32_t i = 0; !err && i < j->envc; i++)
		err = size_str(&size, j->envp[i]);
	for (uint32_t i = 0; !err && i < j->nrw; i++)
		if (!(err = size_str(&size, j->rw[i].tag)))
			err = size_str(&size, j->rw[i].path);
	if (err || size > JOB_MAX_BYTES)
		return -EINVAL;

	w.p = *buf = malloc(size);
	if (!w.p)
		return -ENOMEM;
	memcpy(w.p, JOB_MAGIC, 4);
	w.p += 4;
	put_u32(&w, JOB_VERSION);
	put_u32(&w, j->flags);
	put_u32(&w, j->uid);
	put_u32(&w, j->gid);
	put_u32(&w, j->umask);
	put_u32(&w, j->ngroups);
	for (uint32_t i = 0; i < j->ngroups; i++)
		put_u32(&w, j->groups[i]);
	memcpy(w.p, j->stdio, 3);
	w.p[3] = 0;
	w.p += 4;
	put_u16(&w, j->rows);
	put_u16(&w, j->cols);
	put_str(&w, j->cwd);
	put_str(&w, j->root_tag);
	put_str(&w, j->hostname);
	put_u32(&w, j->argc);
	for (uint32_t i = 0; i < j->argc; i++)
		put_str(&w, j->argv[i]);
	put_u32(&w, j->envc);
	for (uint32_t i = 0; i < j->envc; i++)
		put_str(&w, j->envp[i]);
	put_u32(&w, j->nrw);
	for (uint32_t i = 0; i < j->nrw; i++) {
		put_str(&w, j->rw[i].tag);
		put_str(&w, j->rw[i].path);
	}
	*len = size;
	return 0;
}

/* ---- decoding: every read checked against what is left ---- */

struct reader {
	const uint8_t *p;
	size_t left;
	int err; /* sticky: the first failure; later reads return zeros */
};

static bool take(struct reader *r, void *out, size_t n)
{
	if (r->err || n > r->left) {
		if (!r->err)
			r->err = -EINVAL;
		memset(out, 0, n);
		return false;
	}
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
	return true;
}

static uint32_t get_u32(struct reader *r)
{
	uint32_t v;

	take(r, &v, 4);
	return le32toh(v);
}

static uint16_t get_u16(struct reader *r)
{
	uint16_t v;

	take(r, &v, 2);
	return le16toh(v);
}

/* A count of items each at least min_bytes long: never more than what is left could hold, so
 * the arrays allocated for it stay within a small multiple of the record's size. */
static uint32_t get_count(struct reader *r, size_t min_bytes, uint32_t max)
{
	uint32_t n = get_u32(r);

	if (!r->err && (n > max || n > r->left / min_bytes))
		r->err = -EINVAL;
	return r->err ? 0 : n;
}

static char *get_str(struct reader *r)
{
	uint32_t n = get_u32(r);
	char *s;

	if (r->err)
		return NULL;
	if (n > r->left || memchr(r->p, 0, n)) {
		r->err = -EINVAL;
		return NULL;
	}
	s = malloc((size_t)n + 1);
	if (!s) {
		r->err = -ENOMEM;
		return NULL;
	}
	memcpy(s, r->p, n);
	s[n] = 0;
	r->p += n;
	r->left -= n;
	return s;
}

/* A NULL-terminated array of n strings. */
static char **get_strv(struct reader *r, uint32_t n)
{
	char **v;

	if (r->err)
		return NULL;
	v = calloc((size_t)n + 1, sizeof(*v));
	if (!v) {
		r->err = -ENOMEM;
		return NULL;
	}
	for (uint32_t i = 0; i < n && !r->err; i++)
		v[i] = get_str(r);
	return v;
}

int job_decode(const uint8_t *buf, size_t len, struct sandbox_job *j)
{
	struct reader r = { .p = buf, .left = len };
	uint8_t pad;

	memset(j, 0, sizeof(*j));
	if (len < HEADER_BYTES || len > JOB_MAX_BYTES || memcmp(buf, JOB_MAGIC, 4))
		return -EINVAL;
	r.p += 4;
	r.left -= 4;
	if (get_u32(&r) != JOB_VERSION)
		return -EINVAL;
	j->flags = get_u32(&r);
	j->uid = get_u32(&r);
	j->gid = get_u32(&r);
	j->umask = get_u32(&r);
	j->ngroups = get_count(&r, 4, JOB_MAX_GROUPS);
	if (!r.err && j->ngroups) {
		j->groups = calloc(j->ngroups, sizeof(*j->groups));
		if (!j->groups)
			return -ENOMEM;
		for (uint32_t i = 0; i < j->ngroups; i++)
			j->groups[i] = get_u32(&r);
	}
	take(&r, j->stdio, 3);
	take(&r, &pad, 1);
	j->rows = get_u16(&r);
	j->cols = get_u16(&r);
	j->cwd = get_str(&r);
	j->root_tag = get_str(&r);
	j->hostname = get_str(&r);
	j->argc = get_count(&r, 4, UINT32_MAX);
	j->argv = get_strv(&r, j->argc);
	j->envc = get_count(&r, 4, UINT32_MAX);
	j->envp = get_strv(&r, j->envc);
	j->nrw = get_count(&r, 8, JOB_MAX_SHARES);
	if (!r.err && j->nrw) {
		j->rw = calloc(j->nrw, sizeof(*j->rw));
		if (!j->rw)
			return -ENOMEM;
		for (uint32_t i = 0; i < j->nrw; i++) {
			j->rw[i].tag = get_str(&r);
			j->rw[i].path = get_str(&r);
		}
	}
	if (r.err)
		return r.err;
	if (r.left || pad)
		return -EINVAL;
	return check_job(j);
}

void job_free(struct sandbox_job *j)
{
	if (j->argv)
		for (uint32_t i = 0; i < j->argc; i++)
			free(j->argv[i]);
	if (j->envp)
		for (uint32_t i = 0; i < j->envc; i++)
			free(j->envp[i]);
	if (j->rw)
		for (uint32_t i = 0; i < j->nrw; i++) {
			free(j->rw[i].tag);
			free(j->rw[i].path);
		}
	free(j->argv);
	free(j->envp);
	free(j->rw);
	free(j->groups);
	free(j->cwd);
	free(j->root_tag);
	free(j->hostname);
	memset(j, 0, sizeof(*j));
}
