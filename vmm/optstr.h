/* Option strings of the form PATH[,KEY[=VALUE]]... (--disk, --share): the path runs to the
 * first single comma (",," stands for a comma of the path), then comma-separated options. The
 * parsers of each option (devices/virtio/blk_opts.c, fs_opts.c) walk them with these two. */
#ifndef MICA_OPTSTR_H
#define MICA_OPTSTR_H

#include <stdbool.h>
#include <stddef.h>

/* Copies the path at *p into out (size bytes, NUL-terminated) and leaves *p at the comma that
 * ends it (or the end). Returns its length, or -ENAMETOOLONG. */
int optstr_path(const char **p, char *out, size_t size);

/* One option: key[=value], not NUL-terminated. */
struct optstr_kv {
	const char *opt, *val;      /* the whole option; its value (after '=') */
	int len, klen, vlen;        /* lengths of the option, its key, its value */
	bool has_val;               /* there was an '=' */
};

/* Takes the next option if *p is at a comma; false at the end. An empty option (",,"
 * after the path, a trailing comma) is returned with len 0 for the caller to refuse. */
bool optstr_next(const char **p, struct optstr_kv *kv);
/* Whether the option's key is key (and has a value if with_val, none otherwise). */
bool optstr_is(const struct optstr_kv *kv, const char *key, bool with_val);

#endif
