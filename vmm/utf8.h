/* UTF-8 well-formedness, for the escapers of mica's output formats (vmm/json.c, ci/xml.c): both
 * replace an ill-formed sequence by U+FFFD the same way. */
#ifndef MICA_UTF8_H
#define MICA_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length of the well-formed UTF-8 sequence at s[0..len) (1 to 4; len >= 1), or 0 when it is
 * ill-formed; then *bad is the length of its maximal ill-formed subpart (at least 1), which
 * becomes one U+FFFD (the Unicode standard's recommended practice, section 3.9). */
size_t utf8_seq(const uint8_t *s, size_t len, size_t *bad);

#endif
