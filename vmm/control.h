/* The control socket (--control PATH): a UNIX stream socket on which a person or a script sends
 * one-line commands to a running VM and gets one line back, e.g.
 *     $ echo 'balloon 64' | nc -U /tmp/vm.sock      -> ok target 64 MiB
 * Devices register their commands; `help` lists them. */
#ifndef MICA_CONTROL_H
#define MICA_CONTROL_H

#include <stddef.h>

#include "vmm/err.h"

struct control;
struct evloop;

/* A command handler writes one reply line (without "\n") into out. Returns 0, or -errno
 * with the reason in out. Runs on the event-loop thread. */
typedef int (*control_fn)(void *opaque, const char *args, char *out, size_t outlen);

/* A control object on loop (its caller owns it: control_destroy). */
int control_create(struct evloop *loop, struct control **out);
void control_destroy(void *c);
/* Adds a command (set-up time, before the loop runs). */
int control_register(struct control *c, const char *name, const char *help, control_fn fn,
		     void *opaque);
/* Starts listening at path (replacing a stale socket file). */
int control_listen(struct control *c, const char *path, struct err *e);

#endif
