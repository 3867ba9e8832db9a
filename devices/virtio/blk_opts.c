/* --disk PATH[,ro][,cache=writeback|writethrough|none][,serial=STR] */
#include <errno.h>
#include <string.h>

#include "devices/virtio/blk.h"
#include "vmm/optstr.h"

int blk_parse_opts(const char *spec, struct blk_opts *o, struct err *e)
{
	const char *p = spec ? spec : "";
	struct optstr_kv kv;
	int n;

	memset(o, 0, sizeof(*o));
	o->cache = BLK_CACHE_WRITEBACK;
	n = optstr_path(&p, o->path, sizeof(o->path));
	if (n < 0)
		return err_set(e, -EINVAL, "image path too long");
	if (!n)
		return err_set(e, -EINVAL, "empty image path (give PATH[,ro][,cache=MODE]"
			       "[,serial=STR])");
	while (optstr_next(&p, &kv)) {
		const char *val = kv.val;
		int vlen = kv.vlen;

		if (!kv.len)
			return err_set(e, -EINVAL, "empty option (a stray comma?)");
		if (optstr_is(&kv, "ro", false)) {
			o->ro = true;
		} else if (optstr_is(&kv, "cache", true)) {
			if (vlen == 9 && !memcmp(val, "writeback", 9))
				o->cache = BLK_CACHE_WRITEBACK;
			else if (vlen == 12 && !memcmp(val, "writethrough", 12))
				o->cache = BLK_CACHE_WRITETHROUGH;
			else if (vlen == 4 && !memcmp(val, "none", 4))
				o->cache = BLK_CACHE_NONE;
			else
				return err_set(e, -EINVAL, "bad cache mode '%.*s' (give writeback, "
					       "writethrough or none)", vlen, val);
		} else if (optstr_is(&kv, "serial", true)) {
			if (vlen > VIRTIO_BLK_ID_BYTES)
				return err_set(e, -EINVAL, "serial '%.*s' is longer than %d bytes",
					       vlen, val, VIRTIO_BLK_ID_BYTES);
			memcpy(o->serial, val, (size_t)vlen);
			o->serial[vlen] = '\0';
		} else {
			return err_set(e, -EINVAL, "unknown option '%.*s' (give ro, cache=MODE or "
				       "serial=STR)", kv.len, kv.opt);
		}
	}
	return 0;
}
