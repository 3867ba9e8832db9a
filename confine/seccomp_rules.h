/* The allow-lists of the seccomp filters as data: seccomp_lists.c writes them, seccomp.c turns
 * them into BPF. Private to confine/. */
#ifndef MICA_SANDBOX_SECCOMP_RULES_H
#define MICA_SANDBOX_SECCOMP_RULES_H

#include <stdint.h>

#include "confine/seccomp.h"

#define SC_MAX_VALUES 24

enum sc_check {
	SC_ANY,      /* the call, whatever its arguments */
	SC_IN,       /* argument arg (its low 32 bits: every argument checked is an int or an
		      * unsigned int in the kernel) is one of values[] */
	SC_CLEAR,    /* argument arg has none of the bits of values[0] */
};

/* Allows call nr when its check passes. Several rules for one call: any one suffices. */
struct sc_rule {
	int nr;
	enum sc_check check;
	int arg;
	int nvalues;
	uint32_t values[SC_MAX_VALUES];
};

/* The rules of one kind under o, most frequent calls first (the BPF tests them in this
 * order); returns how many were stored in out (at most max), or -ENOSPC. */
int sc_rules(enum seccomp_kind kind, const struct seccomp_opts *o, struct sc_rule *out, int max);

#endif
