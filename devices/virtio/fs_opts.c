/* --share PATH[,tag=TAG][,ro][,timeout=SECONDS] */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/fs.h"

static bool tag_ok(const char *t, int len)
{
	if (len < 1 || len > FS_TAG_MAX)
		return false;
	for (int i = 0; i < len; i++)
		if (t[i] <= ' ' || t[i] > '~' || t[i] == ',')
			return false;
	return true;
}

static int parse_timeout(const char *val, int vlen, uint32_t *out)
{
	unsigned long v = 0;

	if (vlen < 1 || vlen > 9)
		return -EINVAL;
	for (int i = 0; i < vlen; i++) {
		if (val[i] < '0' || val[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(val[i] - '0');
	}
	if (v > FS_TIMEOUT_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int fs_parse_opts(const char *spec, struct fs_opts *o, struct err *e)
{
	const char *p = spec ? spec : "";
	size_t n = 0;

	memset(o, 0, sizeof(*o));
	strcpy(o->tag, FS_DEFAULT_TAG);
	/* The path runs to the first single comma; ",," is a comma of the path. */
	while (*p) {
		if (*p == ',') {
			if (p[1] != ',')
				break;
			p++;
		}
		if (n + 1 >= sizeof(o->path))
			return err_set(e, -EINVAL, "--share: the directory's path is too long");
		o->path[n++] = *p++;
	}
	o->path[n] = '\0';
	if (!n)
		return err_set(e, -EINVAL, "--share: give a directory: PATH[,tag=TAG][,ro]"
			       "[,timeout=SECONDS]");
	while (*p == ',') {
		const char *opt = ++p, *end = strchrnul(opt, ',');
		const char *eq = memchr(opt, '=', (size_t)(end - opt));
		int klen = (int)((eq ? eq : end) - opt), len = (int)(end - opt);
		const char *val = eq ? eq + 1 : end;
		int vlen = (int)(end - val);

		if (!len)
			return err_set(e, -EINVAL, "--share %s: empty option (a stray comma?)", o->path);
		if (!eq && klen == 2 && !memcmp(opt, "ro", 2)) {
			o->ro = true;
		} else if (eq && klen == 3 && !memcmp(opt, "tag", 3)) {
			if (!tag_ok(val, vlen))
				return err_set(e, -EINVAL, "--share %s: tag '%.*s': give 1 to %d "
					       "printable characters, no spaces or commas", o->path,
					       vlen, val, FS_TAG_MAX);
			memcpy(o->tag, val, (size_t)vlen);
			o->tag[vlen] = '\0';
		} else if (eq && klen == 7 && !memcmp(opt, "timeout", 7)) {
			if (parse_timeout(val, vlen, &o->timeout) < 0)
				return err_set(e, -EINVAL, "--share %s: timeout '%.*s': give whole "
					       "seconds, 0 to %d", o->path, vlen, val, FS_TIMEOUT_MAX);
			o->timeout_set = true;
		} else {
			return err_set(e, -EINVAL, "--share %s: unknown option '%.*s' (give tag=TAG, "
				       "ro or timeout=SECONDS)", o->path, len, opt);
		}
		p = end;
	}
	return 0;
}

uint32_t fs_opts_timeout(const struct fs_opts *o)
{
	if (o->timeout_set)
		return o->timeout;
	return o->ro ? FS_TIMEOUT_RO : FS_TIMEOUT_RW;
}
