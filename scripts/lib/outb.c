/*
 * outb PORT VALUE — write one byte to an x86 I/O port from user space (root only).
 *
 * Used by the get-linux-guest initramfs to hit mica's debug-exit port (0x501): Debian's cloud
 * kernel has no /dev/port (CONFIG_DEVPORT unset), but it does have ioperm(2). Freestanding
 * (no libc) so the binary is tiny and static:
 *   gcc -Os -static -nostdlib -ffreestanding -fno-stack-protector -fno-pie -no-pie outb.c
 * Exit status: 0 written (if the VM did not end), 1 ioperm failed, 2 bad usage.
 */

#define SYS_exit 60
#define SYS_ioperm 173

static long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static __attribute__((noreturn)) void quit(int status)
{
    for (;;)
        sys3(SYS_exit, status, 0, 0);
}

/* Parse decimal, or hex with a 0x prefix. Returns -1 on junk. */
static long parse(const char *s)
{
    long v = 0, base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!*s)
        return -1;
    for (; *s; s++) {
        int d;
        if (*s >= '0' && *s <= '9') d = *s - '0';
        else if (base == 16 && *s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
        else if (base == 16 && *s >= 'A' && *s <= 'F') d = *s - 'A' + 10;
        else return -1;
        v = v * base + d;
        if (v > 0xffff)
            return -1;
    }
    return v;
}

__attribute__((used)) void cmain(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    long port, val;

    if (argc != 3 || (port = parse(argv[1])) < 0 || (val = parse(argv[2])) < 0 || val > 0xff)
        quit(2);
    if (sys3(SYS_ioperm, port, 1, 1) != 0)
        quit(1);
    __asm__ volatile("outb %b0, %w1" : : "a"(val), "Nd"(port));
    quit(0);
}

/* Entry: the kernel leaves argc/argv on the stack; hand the stack pointer to cmain. */
__asm__(".globl _start\n"
        "_start:\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call cmain\n"
        "  hlt\n");
