#include "vmm/utf8.h"

/* The length of the well-formed UTF-8 sequence at s (1 to 4), or 0 when it is ill-formed; then
 * *bad is the length of its maximal ill-formed subpart (at least 1), which becomes one U+FFFD.
 * Table 3-7 of the Unicode standard: the second byte's range depends on the first. */
size_t utf8_seq(const uint8_t *s, size_t len, size_t *bad)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xbf;
	size_t need;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0;      /* overlong below */
		else if (c == 0xed)
			hi = 0x9f;      /* surrogates above */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90;      /* overlong below */
		else if (c == 0xf4)
			hi = 0x8f;      /* beyond U+10FFFF above */
	} else {
		*bad = 1;               /* a continuation byte, C0/C1 overlong leads, F5..FF */
		return 0;
	}
	for (size_t i = 1; i < need; i++) {
		if (i >= len || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}
