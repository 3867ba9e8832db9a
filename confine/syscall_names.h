/* x86-64 system call numbers to names. Async-signal-safe (a lookup in a constant table): the
 * SIGSYS handler uses it. */
#ifndef MICA_SANDBOX_SYSCALL_NAMES_H
#define MICA_SANDBOX_SYSCALL_NAMES_H

/* The call's name, or NULL for a number this table does not know. */
const char *syscall_name(unsigned long nr);

#endif
