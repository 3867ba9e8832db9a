/* --share PATH[,tag=TAG][,ro][,timeout=SECONDS][,xattr=on|off][,max_inodes=N][,max_fds=N] */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/fs.h"
#include "hostfs/hostfs.h"
#include "vmm/optstr.h"

static bool tag_ok(const char *t, int len)
{
	if (len < 1 || len > FS_TAG_MAX)
		return false;
	for (int i = 0; i < len; i++)
		if (t[i] <= ' ' || t[i] > '~' || t[i] == ',')
			return false;
	return true;
}

/* A whole number of at most 9 digits, at most max. */
static int parse_u32(const char *val, int vlen, uint32_t max, uint32_t *out)
{
	unsigned long v = 0;

	if (vlen < 1 || vlen > 9)
		return -EINVAL;
	for (int i = 0; i < vlen; i++) {
		if (val[i] < '0' || val[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(val[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* One of hostfs's bounds: 1 to HOSTFS_MAX_BOUND. */
static int parse_bound(const struct fs_opts *o, const struct optstr_kv *kv, const char *key,
		       uint32_t *out, struct err *e)
{
	if (parse_u32(kv->val, kv->vlen, HOSTFS_MAX_BOUND, out) < 0 || *out == 0)
		return err_set(e, -EINVAL, "--share %s: %s '%.*s': give a number from 1 to %u",
			       o->path, key, kv->vlen, kv->val, HOSTFS_MAX_BOUND);
	return 0;
}

int fs_parse_opts(const char *spec, struct fs_opts *o, struct err *e)
{
	const char *p = spec ? spec : "";
	struct optstr_kv kv;
	int n;

	memset(o, 0, sizeof(*o));
	strcpy(o->tag, FS_DEFAULT_TAG);
	n = optstr_path(&p, o->path, sizeof(o->path));
	if (n < 0)
		return err_set(e, -EINVAL, "--share: the directory's path is too long");
	if (!n)
		return err_set(e, -EINVAL, "--share: give a directory: PATH[,tag=TAG][,ro]"
			       "[,timeout=SECONDS][,xattr=on|off][,max_inodes=N][,max_fds=N]");
	while (optstr_next(&p, &kv)) {
		if (!kv.len)
			return err_set(e, -EINVAL, "--share %s: empty option (a stray comma?)",
				       o->path);
		if (optstr_is(&kv, "ro", false)) {
			o->ro = true;
		} else if (optstr_is(&kv, "tag", true)) {
			if (!tag_ok(kv.val, kv.vlen))
				return err_set(e, -EINVAL, "--share %s: tag '%.*s': give 1 to %d "
					       "printable characters, no spaces or commas", o->path,
					       kv.vlen, kv.val, FS_TAG_MAX);
			memcpy(o->tag, kv.val, (size_t)kv.vlen);
			o->tag[kv.vlen] = '\0';
		} else if (optstr_is(&kv, "timeout", true)) {
			if (parse_u32(kv.val, kv.vlen, FS_TIMEOUT_MAX, &o->timeout) < 0)
				return err_set(e, -EINVAL, "--share %s: timeout '%.*s': give whole "
					       "seconds, 0 to %d", o->path, kv.vlen, kv.val,
					       FS_TIMEOUT_MAX);
			o->timeout_set = true;
		} else if (optstr_is(&kv, "xattr", true)) {
			if (kv.vlen == 2 && !memcmp(kv.val, "on", 2))
				o->no_xattr = false;
			else if (kv.vlen == 3 && !memcmp(kv.val, "off", 3))
				o->no_xattr = true;
			else
				return err_set(e, -EINVAL, "--share %s: xattr '%.*s': give on or off",
					       o->path, kv.vlen, kv.val);
		} else if (optstr_is(&kv, "max_inodes", true)) {
			if (parse_bound(o, &kv, "max_inodes", &o->max_inodes, e) < 0)
				return -EINVAL;
		} else if (optstr_is(&kv, "max_fds", true)) {
			if (parse_bound(o, &kv, "max_fds", &o->max_fds, e) < 0)
				return -EINVAL;
		} else {
			return err_set(e, -EINVAL, "--share %s: unknown option '%.*s' (give "
				       "tag=TAG, ro, timeout=SECONDS, xattr=on|off, max_inodes=N or "
				       "max_fds=N)",
				       o->path, kv.len, kv.opt);
		}
	}
	return 0;
}

uint32_t fs_opts_timeout(const struct fs_opts *o)
{
	if (o->timeout_set)
		return o->timeout;
	return o->ro ? FS_TIMEOUT_RO : FS_TIMEOUT_RW;
}
