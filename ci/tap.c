/* The streaming TAP/KTAP reader (see tap.h for the grammar and the bounds).
 *
 * State per nesting level (struct level): whether the level is open (a header with its
 * nesting prefix since the last result above it), that prefix, its plan and how many results it had, when its previous
 * result or header came (a result's time) and the first line after it (a failure's excerpt),
 * and `mark`: the index just past the last kept result at this depth or above, so that the
 * results from mark to the end of the array are the ones deeper than this level still waiting
 * for their parent. Results are kept in arrival order, descendants before their parent. */
#include "ci/tap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct level {
	bool active;            /* open: a header here since the last result above (level 0 is
				 * always open; its flag only says a header came) */
	bool planned;
	bool has_subtest;       /* subtest names the next result one level up (KTAP) */
	uint64_t plan, seen, last_number;
	uint64_t t0;            /* ns of the previous result or header at this level */
	uint64_t since;         /* number of the first line after it */
	uint32_t mark;
	uint32_t subtest_len;
	uint8_t prefix_len;     /* the nesting prefix of its lines (level 0: none) */
	char prefix[TAP_PREFIX_MAX];
	char subtest[TAP_NAME_MAX];
};

struct ring_line {
	size_t full_len;        /* as printed (after the printk prefix and CRs) */
	uint32_t len;           /* kept: at most TAP_LINE_KEEP */
	char text[TAP_LINE_KEEP];
};

struct tap {
	struct tap_result *res;
	uint32_t nres, cap;
	struct tap_dropped dropped;
	size_t text_used;       /* bytes of names, reasons and excerpts kept */
	uint64_t seq;           /* lines read; line n sits in ring[n % TAP_RING_LINES] */
	bool found, done;
	uint32_t skip_all_len;
	bool skip_all;
	char skip_reason[TAP_NAME_MAX];
	struct level lv[TAP_MAX_DEPTH];
	struct ring_line ring[TAP_RING_LINES];
	char scratch[TAP_EXCERPT_MAX + 64];
};

#define S(lit) lit, sizeof(lit) - 1

static const char budget_note[] = "(excerpt not kept: the report's excerpts reached their limit)";

int tap_create(struct tap **out)
{
	struct tap *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	*out = t;
	return 0;
}

void tap_free(struct tap *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; i < t->nres; i++)
		free((void *)t->res[i].name);
	free(t->res);
	free(t);
}

static bool starts(const char *p, size_t n, const char *word)
{
	size_t l = strlen(word);

	return n >= l && !memcmp(p, word, l);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static void skip_spaces(const char **p, size_t *n)
{
	while (*n && is_space(**p)) {
		(*p)++;
		(*n)--;
	}
}

static void trim_end(const char *p, size_t *n)
{
	while (*n && is_space(p[*n - 1]))
		(*n)--;
}

/* Digits at *p as a number (saturating); false when there is none. */
static bool number(const char **p, size_t *n, uint64_t *v)
{
	bool any = false;

	*v = 0;
	while (*n && **p >= '0' && **p <= '9') {
		unsigned d = (unsigned)(**p - '0');

		*v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
		(*p)++;
		(*n)--;
		any = true;
	}
	return any;
}

/* The length of a printk time prefix "[    1.234567] " (with an optional caller id
 * "[    T1]" after it) at the start of p, or 0. */
static size_t printk_prefix(const char *p, size_t n)
{
	size_t i = 1, d;

	if (!n || p[0] != '[')
		return 0;
	while (i < n && p[i] == ' ')
		i++;
	for (d = i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
		;
	if (i == d || i >= n || p[i] != '.')
		return 0;
	for (d = ++i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
		;
	if (i == d || i >= n || p[i] != ']')
		return 0;
	i++;
	if (i < n && p[i] == '[') {
		size_t j = i + 1;

		while (j < n && j - i <= 16 && p[j] != ']')
			j++;
		if (j < n && p[j] == ']')
			i = j + 1;
	}
	if (i < n && p[i] == ' ')
		i++;
	return i;
}

/* How many bytes of a name or reason of len bytes to keep. */
static uint32_t keep_len(const struct tap *t, size_t len)
{
	size_t max = t->text_used < TAP_TEXT_BUDGET ? TAP_NAME_MAX : TAP_NAME_MIN;

	return (uint32_t)(len > max ? max : len);
}

/* The lines [from, upto) as far as the ring still has them, newest first until
 * TAP_EXCERPT_MAX bytes, into t->scratch; returns the length. */
static size_t excerpt(struct tap *t, uint64_t from, uint64_t upto)
{
	uint64_t oldest = t->seq > TAP_RING_LINES ? t->seq - TAP_RING_LINES : 0, s = upto;
	size_t total = 0, len = 0;

	while (s > from && s > oldest) {
		const struct ring_line *l = &t->ring[(s - 1) % TAP_RING_LINES];
		size_t need = l->len + 1 + (l->full_len > l->len ? 40 : 0);

		if (total + need > TAP_EXCERPT_MAX)
			break;
		total += need;
		s--;
	}
	if (s > from)
		len += (size_t)snprintf(t->scratch, sizeof(t->scratch),
					"[... %llu earlier lines not kept]\n",
					(unsigned long long)(s - from));
	for (; s < upto; s++) {
		const struct ring_line *l = &t->ring[s % TAP_RING_LINES];

		memcpy(t->scratch + len, l->text, l->len);
		len += l->len;
		if (l->full_len > l->len)
			len += (size_t)snprintf(t->scratch + len, sizeof(t->scratch) - len,
						" [... %zu more bytes]", l->full_len - l->len);
		t->scratch[len++] = '\n';
	}
	return len;
}

static void drop(struct tap *t, enum tap_status st, uint64_t n)
{
	t->dropped.results += n;
	if (st == TAP_FAIL)
		t->dropped.failures += n;
	else if (st == TAP_ERROR)
		t->dropped.errors += n;
	else if (st == TAP_SKIP || st == TAP_TODO)
		t->dropped.skipped += n;
}

/* Records a result at depth d (its line, or one that never came) and makes the results
 * waiting below d its descendants. The excerpt of a failure or error is the lines from the
 * previous result or header at its level up to line `upto` (excluded). */
static void append(struct tap *t, unsigned d, enum tap_status st, uint64_t num,
		   const char *name, size_t name_len, const char *reason, size_t reason_len,
		   uint64_t ns, uint64_t upto)
{
	struct level *lv = &t->lv[d];
	uint64_t time = ns >= lv->t0 ? ns - lv->t0 : 0;
	uint64_t since = lv->since;
	struct tap_result *r;
	size_t ex_len = 0;
	const char *ex = NULL;
	uint32_t i = t->nres, nl, rl;
	char *block;

	lv->t0 = ns;
	lv->since = t->seq;
	lv->seen++;
	lv->last_number = num;
	if (d + 1 < TAP_MAX_DEPTH)
		t->lv[d + 1].has_subtest = false;
	if (i >= TAP_MAX_RESULTS) {
		drop(t, st, 1);
		return;
	}
	if (i == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 64;
		struct tap_result *n;

		if (cap > TAP_MAX_RESULTS)
			cap = TAP_MAX_RESULTS;
		n = realloc(t->res, cap * sizeof(*n));
		if (!n) {
			drop(t, st, 1);
			return;
		}
		t->res = n;
		t->cap = cap;
	}
	if (st == TAP_FAIL || st == TAP_ERROR) {
		if (t->text_used < TAP_TEXT_BUDGET) {
			ex_len = excerpt(t, since, upto);
			ex = t->scratch;
		} else {
			ex = budget_note;
			ex_len = sizeof(budget_note) - 1;
		}
	}
	nl = keep_len(t, name_len);
	rl = keep_len(t, reason_len);
	block = malloc((size_t)nl + rl + (ex == t->scratch ? ex_len : 0) + 1);
	if (!block) {
		drop(t, st, 1);
		return;
	}
	r = &t->res[i];
	memset(r, 0, sizeof(*r));
	memcpy(block, name, nl);
	memcpy(block + nl, reason, rl);
	r->name = block;
	r->name_len = nl;
	r->reason = block + nl;
	r->reason_len = rl;
	if (ex == t->scratch) {
		memcpy(block + nl + rl, ex, ex_len);
		r->excerpt = block + nl + rl;
		t->text_used += ex_len;
	} else {
		r->excerpt = ex;
	}
	r->excerpt_len = (uint32_t)ex_len;
	t->text_used += nl + rl;
	r->parent = TAP_NONE;
	r->first = lv->mark;
	r->depth = (uint8_t)d;
	r->status = (uint8_t)st;
	r->number = num;
	r->time_ns = time;
	/* Each result is scanned once per ancestor: at most TAP_MAX_DEPTH times. */
	for (uint32_t j = r->first; j < i; j++) {
		struct tap_result *c = &t->res[j];

		if (c->parent == TAP_NONE)
			c->parent = i;
		if (c->status == TAP_FAIL || c->status == TAP_ERROR)
			r->bad_below = true;
	}
	t->nres = i + 1;
	for (unsigned k = d; k < TAP_MAX_DEPTH; k++)
		t->lv[k].mark = i + 1;
}

/* `count` results at depth d that never came, as errors saying why. */
static void missing(struct tap *t, unsigned d, uint64_t count, const char *why, size_t why_len,
		    uint64_t ns, uint64_t upto)
{
	struct level *lv = &t->lv[d];
	const struct level *below = d + 1 < TAP_MAX_DEPTH ? &t->lv[d + 1] : NULL;

	while (count && t->nres < TAP_MAX_RESULTS) {
		bool named = below && below->has_subtest;

		append(t, d, TAP_ERROR, lv->last_number + 1, named ? below->subtest : "",
		       named ? below->subtest_len : 0, why, why_len, ns, upto);
		count--;
	}
	if (count) {
		drop(t, TAP_ERROR, count);
		lv->seen += count;
		lv->last_number += count;
	}
}

/* Closes the levels d and deeper: what their plans promised and never came, and a parent for
 * results left without one, become errors (deepest first, so each adopts what is below). */
static void close_from(struct tap *t, unsigned d, const char *why, size_t why_len, uint64_t ns,
		       uint64_t upto)
{
	for (unsigned k = TAP_MAX_DEPTH; k-- > d;) {
		struct level *lv = &t->lv[k];
		uint64_t n = 0;

		if ((k == 0 || lv->active) && lv->planned && lv->plan > lv->seen)
			n = lv->plan - lv->seen;
		if (!n && k + 1 < TAP_MAX_DEPTH && lv->mark < t->nres)
			n = 1;
		if (n)
			missing(t, k, n, why, why_len, ns, upto);
		if (k > 0)
			lv->active = false;
		lv->planned = false;
	}
}

static void reset_level(struct level *lv)
{
	lv->seen = 0;
	lv->last_number = 0;
	lv->planned = false;
	lv->has_subtest = false;
}

enum header { H_VERSION, H_PLAN, H_SUBTEST };

/* The open level whose nesting prefix is pre, or -1. Level 0 (no prefix) is always open. */
static int level_of(const struct tap *t, const char *pre, size_t m)
{
	for (unsigned k = 0; k < TAP_MAX_DEPTH; k++) {
		const struct level *lv = &t->lv[k];

		if (k > 0 && !lv->active)
			break;
		if (lv->prefix_len == m && !memcmp(lv->prefix, pre, m))
			return (int)k;
	}
	return -1;
}

/* A header with nesting prefix pre: at the open level with that prefix, or opening the level
 * below the deepest open one whose prefix it extends (closing what was open below that). */
static void header(struct tap *t, const char *pre, size_t m, enum header h, const char *arg,
		   size_t len, uint64_t plan, bool skip, uint64_t ns)
{
	int k = level_of(t, pre, m);
	struct level *lv;
	unsigned d;

	if (k >= 0) {
		d = (unsigned)k;
		lv = &t->lv[d];
		if (h == H_VERSION) {
			close_from(t, d, S("no result before the next version line"), ns, t->seq - 1);
			reset_level(lv);
		}
	} else {
		for (d = 1; d < TAP_MAX_DEPTH && t->lv[d].active &&
		     t->lv[d].prefix_len < m && !memcmp(t->lv[d].prefix, pre, t->lv[d].prefix_len); d++)
			;
		if (d >= TAP_MAX_DEPTH)
			return; /* deeper than we read: text */
		close_from(t, d, S("no result before the next version line"), ns, t->seq - 1);
		lv = &t->lv[d];
		reset_level(lv);
		memcpy(lv->prefix, pre, m);
		lv->prefix_len = (uint8_t)m;
	}
	lv->active = true;
	lv->t0 = ns;
	lv->since = t->seq;
	if (h == H_PLAN) {
		lv->planned = true;
		lv->plan = plan;
		if (d == 0 && plan == 0 && skip) {
			t->skip_all = true;
			t->skip_all_len = (uint32_t)(len < TAP_NAME_MAX ? len : TAP_NAME_MAX);
			memcpy(t->skip_reason, arg, t->skip_all_len);
		}
	} else if (h == H_SUBTEST) {
		lv->has_subtest = true;
		lv->subtest_len = (uint32_t)(len < TAP_NAME_MAX ? len : TAP_NAME_MAX);
		memcpy(lv->subtest, arg, lv->subtest_len);
	}
}

/* A directive keyword at the start of a comment: SKIP (also "skipped", any case), TODO,
 * XFAIL; returns its length or 0. */
static size_t directive(const char *p, size_t n, enum tap_status *st)
{
	static const struct { const char *word; enum tap_status st; bool prefix; } dirs[] = {
		{ "skip", TAP_SKIP, true }, { "todo", TAP_TODO, false }, { "xfail", TAP_XFAIL, false },
	};

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		size_t l = strlen(dirs[i].word), e;

		if (n < l || strncasecmp(p, dirs[i].word, l))
			continue;
		for (e = l; dirs[i].prefix && e < n && !is_space(p[e]) && p[e] != ':'; e++)
			;
		if (e < n && !is_space(p[e]) && p[e] != ':')
			continue;
		*st = dirs[i].st;
		return e;
	}
	return 0;
}

/* What follows a '#' in a result or a plan: the directive (*st; returns its length, 0 for
 * none) and the reason, moved past the directive and an optional ':' and trimmed. */
static size_t directive_reason(const char **p, size_t *n, enum tap_status *st)
{
	size_t kw;

	skip_spaces(p, n);
	kw = directive(*p, *n, st);
	if (kw) {
		*p += kw;
		*n -= kw;
		if (*n && **p == ':') {
			(*p)++;
			(*n)--;
		}
		skip_spaces(p, n);
	}
	trim_end(*p, n);
	return kw;
}

/* "ok"/"not ok" [number] ["-"] [description] ["#" [directive] reason] at depth d. */
static void result(struct tap *t, unsigned d, bool ok, const char *p, size_t n, uint64_t ns)
{
	const char *desc, *reason = "";
	size_t dlen, rlen = 0;
	enum tap_status st = ok ? TAP_PASS : TAP_FAIL;
	uint64_t num;

	t->found = true;
	if (d + 1 < TAP_MAX_DEPTH)
		close_from(t, d + 1, S("no result before its parent's"), ns, t->seq - 1);
	skip_spaces(&p, &n);
	if (!number(&p, &n, &num))
		num = t->lv[d].last_number + 1;
	skip_spaces(&p, &n);
	if (n && *p == '-' && (n == 1 || is_space(p[1]))) {
		p++;
		n--;
		skip_spaces(&p, &n);
	}
	desc = p;
	dlen = n;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '#' && (i == 0 || is_space(p[i - 1]))) {
			enum tap_status dir;
			size_t kw;

			dlen = i;
			reason = p + i + 1;
			rlen = n - i - 1;
			kw = directive_reason(&reason, &rlen, &dir);
			/* "ok # TODO": a bonus pass, still a pass */
			if (kw && (dir != TAP_TODO || !ok))
				st = dir;
			break;
		}
	}
	trim_end(desc, &dlen);
	append(t, d, st, num, desc, dlen, reason, rlen, ns, t->seq - 1);
}

static void line_at(struct tap *t, const char *pre, size_t m, const char *p, size_t n,
		    uint64_t ns);

void tap_line(struct tap *t, const char *line, size_t len, uint64_t ns)
{
	const char *p = line;
	size_t n = len, pre;
	struct ring_line *rl;

	if (t->done)
		return;
	while (n && p[n - 1] == '\r')
		n--;
	pre = printk_prefix(p, n);
	p += pre;
	n -= pre;

	rl = &t->ring[t->seq % TAP_RING_LINES];
	rl->full_len = n;
	rl->len = (uint32_t)(n < TAP_LINE_KEEP ? n : TAP_LINE_KEEP);
	memcpy(rl->text, p, rl->len);
	t->seq++;

	/* The nesting prefix: blanks and "# " (a "# Subtest:" line is a header, not a prefix). */
	size_t m = 0;

	for (;;) {
		if (m < n && is_space(p[m]))
			m++;
		else if (m + 1 < n && p[m] == '#' && p[m + 1] == ' ' &&
			 !starts(p + m + 2, n - m - 2, "Subtest:"))
			m += 2;
		else
			break;
	}
	if (m > TAP_PREFIX_MAX)
		return; /* deeper than we read: text */
	line_at(t, p, m, p + m, n - m, ns);
}

/* The statement s of a line whose nesting prefix is pre: a header at an open level's prefix or
 * opening a level under one, a result or "Bail out!" at an open level's prefix; anything else
 * is text (kept in the ring only). */
static void line_at(struct tap *t, const char *pre, size_t m, const char *p, size_t n,
		    uint64_t ns)
{
	int d;

	if (starts(p, n, "TAP version ") || starts(p, n, "KTAP version ")) {
		header(t, pre, m, H_VERSION, NULL, 0, 0, false, ns);
	} else if (starts(p, n, "1..")) {
		const char *q = p + 3;
		size_t qn = n - 3;
		uint64_t plan;
		bool skip = false;

		if (!number(&q, &qn, &plan) || (qn && !is_space(*q) && *q != '#'))
			return;
		skip_spaces(&q, &qn);
		if (qn && *q == '#') {
			enum tap_status st;
			size_t kw;

			q++;
			qn--;
			kw = directive_reason(&q, &qn, &st);
			skip = kw && st == TAP_SKIP;
		}
		header(t, pre, m, H_PLAN, q, skip ? qn : 0, plan, skip, ns);
	} else if (starts(p, n, "# Subtest:")) {
		const char *q = p + 10;
		size_t qn = n - 10;

		skip_spaces(&q, &qn);
		trim_end(q, &qn);
		header(t, pre, m, H_SUBTEST, q, qn, 0, false, ns);
	} else if ((starts(p, n, "ok") && (n == 2 || is_space(p[2]))) ||
		   (starts(p, n, "not ok") && (n == 6 || is_space(p[6])))) {
		bool ok = p[0] == 'o';

		d = level_of(t, pre, m);
		if (d >= 0)
			result(t, (unsigned)d, ok, p + (ok ? 2 : 6), n - (ok ? 2 : 6), ns);
	} else if (starts(p, n, "Bail out!")) {
		char why[TAP_NAME_MIN + 16];
		const char *q = p + 9;
		size_t qn = n - 9;

		d = level_of(t, pre, m);
		if (d < 0)
			return;
		skip_spaces(&q, &qn);
		trim_end(q, &qn);
		if (qn > TAP_NAME_MIN)
			qn = TAP_NAME_MIN;
		memcpy(why, "Bail out! ", 10);
		memcpy(why + 10, q, qn);
		close_from(t, (unsigned)d, why, 10 + qn, ns, t->seq);
		if (d == 0)
			t->done = true;
	}
}

void tap_end(struct tap *t, uint64_t ns)
{
	if (t->done)
		return;
	close_from(t, 0, S("no result: the run ended"), ns, t->seq);
	t->done = true;
}

bool tap_found(const struct tap *t)
{
	return t && t->found;
}

size_t tap_nresults(const struct tap *t)
{
	return t->nres;
}

const struct tap_result *tap_result(const struct tap *t, size_t i)
{
	return i < t->nres ? &t->res[i] : NULL;
}

enum tap_case tap_case_of(const struct tap *t, size_t i)
{
	const struct tap_result *r = &t->res[i];
	bool leaf = r->first == i;

	switch ((enum tap_status)r->status) {
	case TAP_PASS:
	case TAP_XFAIL:
		return leaf ? TAP_CASE_PASS : TAP_CASE_NONE;
	case TAP_SKIP:
	case TAP_TODO:
		return leaf ? TAP_CASE_SKIP : TAP_CASE_NONE;
	case TAP_FAIL:
		return leaf || !r->bad_below ? TAP_CASE_FAIL : TAP_CASE_NONE;
	case TAP_ERROR:
		return leaf || !r->bad_below ? TAP_CASE_ERROR : TAP_CASE_NONE;
	}
	return TAP_CASE_NONE;
}

void tap_counts(const struct tap *t, struct tap_counts *c)
{
	memset(c, 0, sizeof(*c));
	if (!t)
		return;
	for (size_t i = 0; i < t->nres; i++) {
		switch (tap_case_of(t, i)) {
		case TAP_CASE_NONE:
			continue;
		case TAP_CASE_FAIL:
			c->failures++;
			break;
		case TAP_CASE_ERROR:
			c->errors++;
			break;
		case TAP_CASE_SKIP:
			c->skipped++;
			break;
		case TAP_CASE_PASS:
			break;
		}
		c->tests++;
	}
	/* The results not kept are one testcase, failed when any of them failed. */
	if (t->dropped.results) {
		c->tests++;
		if (t->dropped.failures || t->dropped.errors)
			c->failures++;
	}
}

void tap_dropped(const struct tap *t, struct tap_dropped *d)
{
	*d = t->dropped;
}

const char *tap_skip_all(const struct tap *t, size_t *len)
{
	if (!t || !t->skip_all)
		return NULL;
	*len = t->skip_all_len;
	return t->skip_reason;
}
