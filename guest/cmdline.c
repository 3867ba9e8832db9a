/* bootargs: space-separated words, each "key=value" or a bare "flag". A private copy is split in
 * place; lookups return the last occurrence (a later word overrides an earlier one). */
#include "guest.h"

#define CMDLINE_MAX 1024
#define MAX_WORDS   64

static char raw[CMDLINE_MAX];
static char buf[CMDLINE_MAX];
static const char *keys[MAX_WORDS], *vals[MAX_WORDS];
static unsigned nwords;

void cmdline_init(const char *bootargs)
{
    size_t n = bootargs ? strlen(bootargs) : 0;
    if (n >= CMDLINE_MAX)
        n = CMDLINE_MAX - 1;
    memcpy(raw, bootargs, n);
    memcpy(buf, bootargs, n);
    for (char *p = buf; *p && nwords < MAX_WORDS;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            *p++ = '\0';
        if (!*p)
            break;
        keys[nwords] = p;
        vals[nwords] = "";
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
            if (*p == '=' && !*vals[nwords]) {
                *p = '\0';
                vals[nwords] = p + 1;
            }
            p++;
        }
        nwords++;
    }
}

const char *cmdline_raw(void) { return raw; }

const char *cmdline_get(const char *key)
{
    for (unsigned i = nwords; i-- > 0;)
        if (!strcmp(keys[i], key))
            return vals[i];
    return NULL;
}

uint64_t cmdline_get_u64(const char *key, uint64_t def)
{
    const char *v = cmdline_get(key);
    uint64_t r;
    return v && parse_u64(v, strlen(v), &r) ? r : def;
}
