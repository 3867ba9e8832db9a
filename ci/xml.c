/* XML character data from arbitrary bytes (see xml.h). Runs of bytes that need nothing are
 * written with one fwrite each. */
#include "ci/xml.h"

#include <stdint.h>

#include "vmm/utf8.h"

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

void xml_write_text(FILE *f, const void *data, size_t len)
{
	const uint8_t *s = data;
	size_t run = 0; /* s[run_start, i) needs no change */
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		const char *rep = NULL;
		size_t n = 1, bad = 0;

		switch (c) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		case '\r': rep = "&#13;"; break;
		case '\t':
		case '\n':
			break;
		default:
			if (c < 0x20) {
				rep = replacement;
			} else if (c >= 0x80) {
				n = utf8_seq(s + i, len - i, &bad);
				if (!n) {
					rep = replacement;
					n = bad;
				} else if (n == 3 && c == 0xef && s[i + 1] == 0xbf && s[i + 2] >= 0xbe) {
					rep = replacement; /* U+FFFE, U+FFFF: not XML characters */
				}
			}
		}
		if (rep) {
			if (i > run)
				fwrite(s + run, 1, i - run, f);
			fputs(rep, f);
			run = i + n;
		}
		i += n;
	}
	if (len > run)
		fwrite(s + run, 1, len - run, f);
}
