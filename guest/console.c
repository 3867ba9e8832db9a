/* COM1 console: polled 16550 output and a small printf.
 * With the FIFO enabled (IIR bits 7:6 = 11 after FCR), one LSR.THRE read lets us queue up to
 * 16 bytes, so printing costs ~1 + n/16 reads instead of one read per byte. */
#include "guest.h"

#define UART_THR 0
#define UART_FCR 2
#define UART_IIR 2
#define UART_LSR 5
#define LSR_THRE 0x20

static spinlock_t console_lock;
static volatile int console_owner = -1;
static unsigned tx_burst = 1;

void console_init(void)
{
    outb(COM1 + UART_FCR, 0x07); /* enable and clear the FIFOs */
    if ((inb(COM1 + UART_IIR) & 0xc0) == 0xc0)
        tx_burst = 16;
}

static void uart_write(const char *s, size_t n)
{
    while (n) {
        /* Bounded: a UART that never reports THRE still gets (slow) output, not a hang. */
        for (unsigned i = 0; i < 100000 && !(inb(COM1 + UART_LSR) & LSR_THRE); i++)
            ;
        size_t k = n < tx_burst ? n : tx_burst;
        for (size_t i = 0; i < k; i++)
            outb(COM1 + UART_THR, (uint8_t)s[i]);
        s += k;
        n -= k;
    }
}

/* A fault while printing on the same cpu must not deadlock: the owner re-enters. */
static bool console_acquire(uint64_t *flags)
{
    int me = (int)this_cpu();
    *flags = save_flags();
    cli();
    if (READ_ONCE(console_owner) == me)
        return false;
    spin_lock(&console_lock);
    WRITE_ONCE(console_owner, me);
    return true;
}

static void console_release(bool locked, uint64_t flags)
{
    if (locked) {
        WRITE_ONCE(console_owner, -1);
        spin_unlock(&console_lock);
    }
    restore_flags(flags);
}

void console_force_unlock(void)
{
    WRITE_ONCE(console_owner, -1);
    spin_unlock(&console_lock);
}

void console_write(const char *s, size_t n)
{
    uint64_t f;
    bool locked = console_acquire(&f);
    uart_write(s, n);
    console_release(locked, f);
}

/* ---- formatting ---- */
struct sink {
    char *buf;
    size_t cap, len;  /* len counts every byte produced, even past cap */
    bool console;     /* flush buf to the UART when full */
};

static void sink_put(struct sink *s, char c)
{
    if (s->console && s->len == s->cap) {
        uart_write(s->buf, s->cap);
        s->len = 0;
    }
    if (s->len < s->cap)
        s->buf[s->len] = c;
    s->len++;
}

static void put_str(struct sink *s, const char *str, int prec, int width, bool left)
{
    int n = 0;
    while (str[n] && (prec < 0 || n < prec))
        n++;
    if (!left)
        for (; width > n; width--)
            sink_put(s, ' ');
    for (int i = 0; i < n; i++)
        sink_put(s, str[i]);
    for (; width > n; width--)
        sink_put(s, ' ');
}

static void put_num(struct sink *s, uint64_t v, unsigned base, bool neg, int width, bool zero,
                    bool left, bool upper, const char *prefix)
{
    char tmp[24];
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0, plen = (int)strlen(prefix) + (neg ? 1 : 0);
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    int pad = width - n - plen;
    if (!left && !zero)
        for (; pad > 0; pad--)
            sink_put(s, ' ');
    if (neg)
        sink_put(s, '-');
    while (*prefix)
        sink_put(s, *prefix++);
    if (!left && zero)
        for (; pad > 0; pad--)
            sink_put(s, '0');
    while (n)
        sink_put(s, tmp[--n]);
    if (left)
        for (; pad > 0; pad--)
            sink_put(s, ' ');
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            sink_put(s, *fmt);
            continue;
        }
        bool zero = false, left = false, alt = false;
        int width = 0, lng = 0;
        for (;; fmt++) {
            if (fmt[1] == '0')
                zero = true;
            else if (fmt[1] == '-')
                left = true;
            else if (fmt[1] == '#')
                alt = true;
            else
                break;
        }
        fmt++;
        if (*fmt == '*') {
            width = va_arg(ap, int);
            fmt++;
        }
        for (; *fmt >= '0' && *fmt <= '9'; fmt++)
            width = width * 10 + (*fmt - '0');
        int prec = -1;
        if (*fmt == '.') {
            prec = 0;
            if (*++fmt == '*') {
                prec = va_arg(ap, int);
                fmt++;
            }
            for (; *fmt >= '0' && *fmt <= '9'; fmt++)
                prec = prec * 10 + (*fmt - '0');
        }
        for (; *fmt == 'l' || *fmt == 'z'; fmt++)
            lng++;
        uint64_t u;
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            u = v < 0 ? -(uint64_t)v : (uint64_t)v;
            put_num(s, u, 10, v < 0, width, zero, left, false, "");
            break;
        }
        case 'u':
        case 'x':
        case 'X':
            u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            put_num(s, u, *fmt == 'u' ? 10 : 16, false, width, zero, left, *fmt == 'X',
                    alt && *fmt != 'u' ? "0x" : "");
            break;
        case 'p':
            put_num(s, (uintptr_t)va_arg(ap, void *), 16, false, width, zero, left, false, "0x");
            break;
        case 'c':
            sink_put(s, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *str = va_arg(ap, const char *);
            put_str(s, str ? str : "(null)", prec, width, left);
            break;
        }
        case '%':
            sink_put(s, '%');
            break;
        case '\0':
            return;
        default:
            sink_put(s, '%');
            sink_put(s, *fmt);
        }
    }
}

int vsnprintf(char *buf, size_t n, const char *fmt, va_list ap)
{
    struct sink s = {buf, n ? n - 1 : 0, 0, false};
    format(&s, fmt, ap);
    if (n)
        buf[s.len < n - 1 ? s.len : n - 1] = '\0';
    return (int)s.len;
}

int snprintf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return r;
}

int vprintf(const char *fmt, va_list ap)
{
    char buf[128];
    struct sink s = {buf, sizeof(buf), 0, true};
    uint64_t f;
    bool locked = console_acquire(&f);
    format(&s, fmt, ap);
    uart_write(buf, s.len);
    console_release(locked, f);
    return (int)s.len;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vprintf(fmt, ap);
    va_end(ap);
    return r;
}
