/* XML text for reports built from a guest's output: the one escaping function every string
 * of a report goes through, whatever its bytes. */
#ifndef MICA_CI_XML_H
#define MICA_CI_XML_H

#include <stddef.h>
#include <stdio.h>

/* Writes len bytes of s (any bytes, NULs included) to f as XML 1.0 character data, fit for
 * element text and for attribute values in either kind of quotes:
 *   - & < > " ' become entities (so "]]>" can never close anything);
 *   - CR becomes &#13; (a parser would turn a literal one into LF); TAB and LF stay literal
 *     (an attribute's parser turns them into spaces, which a one-line message can spare);
 *   - well-formed UTF-8 passes through, but for U+FFFE and U+FFFF;
 *   - what XML 1.0 cannot carry becomes U+FFFD: C0 controls other than TAB/LF/CR, U+FFFE,
 *     U+FFFF, and each maximal ill-formed subsequence of the UTF-8 (stray continuation bytes,
 *     overlongs, surrogates, code points above U+10FFFF, sequences cut short).
 * Write errors are left in f's error indicator (ferror). */
void xml_write_text(FILE *f, const void *s, size_t len);

#endif
