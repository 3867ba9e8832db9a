#include "vmm/json.h"

#include <stdint.h>
#include <string.h>

#include "vmm/utf8.h"

void json_string(FILE *f, const void *str, size_t len)
{
	const unsigned char *s = str;

	putc('"', f);
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n, bad;

		if (c == '"' || c == '\\') {
			putc('\\', f);
			putc(c, f);
		} else if (c == '\n') {
			fputs("\\n", f);
		} else if (c == '\t') {
			fputs("\\t", f);
		} else if (c == '\r') {
			fputs("\\r", f);
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
		} else if (c < 0x80) {
			putc(c, f);
		} else if ((n = utf8_seq(s + i, len - i, &bad))) {
			fwrite(s + i, 1, n, f);
			i += n;
			continue;
		} else {
			fputs("\\ufffd", f);
			i += bad;
			continue;
		}
		i++;
	}
	putc('"', f);
}

void json_cstring(FILE *f, const char *s)
{
	if (s)
		json_string(f, s, strlen(s));
	else
		fputs("null", f);
}
