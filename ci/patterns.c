#include "ci/patterns.h"

#include <errno.h>
#include <string.h>

const char *pattern_option(enum ci_pattern_kind kind)
{
	switch (kind) {
	case CI_EXPECT:
		return "--expect";
	case CI_FAIL_ON:
		return "--fail-on";
	case CI_END_ON:
		return "--end-on";
	}
	return "?";
}

int patterns_compile(struct patterns *ps, const struct ci_opts *o, struct err *e)
{
	memset(ps, 0, sizeof(*ps));
	for (int i = 0; i < o->npatterns; i++) {
		struct pattern *p = &ps->p[i];
		int rc;

		p->kind = o->patterns[i].kind;
		p->source = p->regex = o->patterns[i].source;
		if (p->kind == CI_FAIL_ON && !strcmp(p->source, "kernel"))
			p->regex = PATTERN_KERNEL_PRESET;
		rc = regcomp(&p->re, p->regex, REG_EXTENDED | REG_NOSUB);
		if (rc) {
			char why[128];

			regerror(rc, &p->re, why, sizeof(why));
			patterns_free(ps);
			return err_set(e, -EINVAL, "%s '%s': %s; give a POSIX extended regular "
				       "expression (regex(7))", pattern_option(o->patterns[i].kind),
				       o->patterns[i].source, why);
		}
		ps->n++;
	}
	return 0;
}

void patterns_free(struct patterns *ps)
{
	for (int i = 0; i < ps->n; i++)
		regfree(&ps->p[i].re);
	ps->n = 0;
}

void patterns_match(struct patterns *ps, const char *line, size_t len, uint64_t ns,
		    struct pattern *first[3])
{
	char buf[4096 + 1];

	first[CI_EXPECT] = first[CI_FAIL_ON] = first[CI_END_ON] = NULL;
	if (!ps->n)
		return;
	len = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
	memcpy(buf, line, len);
	buf[len] = '\0';
	for (int i = 0; i < ps->n; i++) {
		struct pattern *p = &ps->p[i];

		if (p->matched || regexec(&p->re, buf, 0, NULL, 0))
			continue;
		p->matched = true;
		p->ns = ns;
		p->line_len = len < sizeof(p->line) ? len : sizeof(p->line);
		memcpy(p->line, line, p->line_len);
		if (!first[p->kind])
			first[p->kind] = p;
	}
}
