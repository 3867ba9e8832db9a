/* --disk PATH[,ro][,cache=writeback|writethrough|none][,serial=STR] */
#include <errno.h>
#include <string.h>

#include "devices/virtio/blk.h"

int blk_parse_opts(const char *spec, struct blk_opts *o, struct err *e)
{
	const char *p = spec ? spec : "";
	size_t n = 0;

	memset(o, 0, sizeof(*o));
	o->cache = BLK_CACHE_WRITEBACK;
	/* The path runs to the first single comma; ",," is a comma of the path. */
	while (*p) {
		if (*p == ',') {
			if (p[1] != ',')
				break;
			p++;
		}
		if (n + 1 >= sizeof(o->path))
			return err_set(e, -EINVAL, "image path too long");
		o->path[n++] = *p++;
	}
	o->path[n] = '\0';
	if (!n)
		return err_set(e, -EINVAL, "empty image path (give PATH[,ro][,cache=MODE]"
			       "[,serial=STR])");
	while (*p == ',') {
		const char *opt = ++p, *end = strchrnul(opt, ',');
		const char *eq = memchr(opt, '=', (size_t)(end - opt));
		int klen = (int)((eq ? eq : end) - opt), len = (int)(end - opt);
		const char *val = eq ? eq + 1 : end;
		int vlen = (int)(end - val);

		if (!len)
			return err_set(e, -EINVAL, "empty option (a stray comma?)");
		if (!eq && klen == 2 && !memcmp(opt, "ro", 2)) {
			o->ro = true;
		} else if (eq && klen == 5 && !memcmp(opt, "cache", 5)) {
			if (vlen == 9 && !memcmp(val, "writeback", 9))
				o->cache = BLK_CACHE_WRITEBACK;
			else if (vlen == 12 && !memcmp(val, "writethrough", 12))
				o->cache = BLK_CACHE_WRITETHROUGH;
			else if (vlen == 4 && !memcmp(val, "none", 4))
				o->cache = BLK_CACHE_NONE;
			else
				return err_set(e, -EINVAL, "bad cache mode '%.*s' (give writeback, "
					       "writethrough or none)", vlen, val);
		} else if (eq && klen == 6 && !memcmp(opt, "serial", 6)) {
			if (vlen > VIRTIO_BLK_ID_BYTES)
				return err_set(e, -EINVAL, "serial '%.*s' is longer than %d bytes",
					       vlen, val, VIRTIO_BLK_ID_BYTES);
			memcpy(o->serial, val, (size_t)vlen);
			o->serial[vlen] = '\0';
		} else {
			return err_set(e, -EINVAL, "unknown option '%.*s' (give ro, cache=MODE or "
				       "serial=STR)", len, opt);
		}
		p = end;
	}
	return 0;
}

