#include "vmm/optstr.h"

#include <errno.h>
#include <string.h>

int optstr_path(const char **p, char *out, size_t size)
{
	const char *s = *p;
	size_t n = 0;

	while (*s) {
		if (*s == ',') {
			if (s[1] != ',')
				break;
			s++;
		}
		if (n + 1 >= size)
			return -ENAMETOOLONG;
		out[n++] = *s++;
	}
	out[n] = '\0';
	*p = s;
	return (int)n;
}

bool optstr_next(const char **p, struct optstr_kv *kv)
{
	const char *opt, *end, *eq;

	if (**p != ',')
		return false;
	opt = *p + 1;
	end = strchrnul(opt, ',');
	eq = memchr(opt, '=', (size_t)(end - opt));
	kv->opt = opt;
	kv->len = (int)(end - opt);
	kv->klen = (int)((eq ? eq : end) - opt);
	kv->has_val = eq != NULL;
	kv->val = eq ? eq + 1 : end;
	kv->vlen = (int)(end - kv->val);
	*p = end;
	return true;
}

bool optstr_is(const struct optstr_kv *kv, const char *key, bool with_val)
{
	size_t n = strlen(key);

	return kv->has_val == with_val && (size_t)kv->klen == n && !memcmp(kv->opt, key, n);
}
