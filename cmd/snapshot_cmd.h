/* The control socket's `snapshot NAME [stop]` (--snapshot-dir DIR): saves the VM as DIR/NAME. */
#ifndef MICA_SNAPSHOT_CMD_H
#define MICA_SNAPSHOT_CMD_H

struct control;
struct vm;

/* Registers the command; dir NULL: the command says how to enable it. */
int snapshot_cmd_register(struct control *ctl, struct vm *vm, const char *dir);

#endif
