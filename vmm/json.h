/* JSON strings from any bytes: the one escaping function of mica's JSON output (--json,
 * --stats-json, mica check). What it writes is always valid JSON and valid UTF-8, whatever the
 * bytes: a guest's output, a user's pattern, a path. */
#ifndef MICA_JSON_H
#define MICA_JSON_H

#include <stddef.h>
#include <stdio.h>

/* Writes s[0..len) as a quoted JSON string: '"' and '\' escaped, control characters (and DEL)
 * as \u00XX (\n, \t, \r as themselves), valid UTF-8 as it is, and an ill-formed sequence
 * (overlong, surrogate, above U+10FFFF, truncated) as U+FFFD, one per maximal ill-formed
 * subpart (vmm/utf8.h). */
void json_string(FILE *f, const void *s, size_t len);
/* The same for a C string; NULL writes null. */
void json_cstring(FILE *f, const char *s);

#endif
