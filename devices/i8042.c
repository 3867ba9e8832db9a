/* i8042 keyboard controller at 0x60/0x64, modelled far enough for Linux to probe it quickly
 * (self-test, command byte, no AUX port, a keyboard that ACKs) and for the classic reboot: a
 * pulse on the reset line (command 0xfe, or output-port bit 0 cleared) ends the VM. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "devices/legacy.h"
#include "snapshot/snapshot.h"
#include "vmm/bus.h"
#include "vmm/err.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/machine.h"

#define STR_OBF   0x01 /* output buffer full */
#define STR_SYS   0x04 /* system flag: self-test passed */
#define STR_CMD   0x08 /* last write was a command */
#define STR_KEYLOCK 0x10 /* set: the keyboard is not locked */
#define STR_AUXDATA 0x20

#define CTR_KBDINT 0x01
#define CTR_SYS    0x04
#define CTR_XLATE  0x40

enum {
	CMD_READ_CTR = 0x20, CMD_WRITE_CTR = 0x60, CMD_AUX_DISABLE = 0xa7, CMD_AUX_ENABLE = 0xa8,
	CMD_AUX_TEST = 0xa9, CMD_SELF_TEST = 0xaa, CMD_KBD_TEST = 0xab, CMD_KBD_DISABLE = 0xad,
	CMD_KBD_ENABLE = 0xae, CMD_READ_OUTPUT = 0xd0, CMD_WRITE_OUTPUT = 0xd1,
	CMD_WRITE_KBD_OUT = 0xd2, CMD_WRITE_AUX_OUT = 0xd3, CMD_WRITE_AUX = 0xd4,
	CMD_PULSE_RESET = 0xfe,
};

#define KBD_IRQ 1
#define OUTBUF_SIZE 16

struct i8042 {
	struct machine *machine;
	pthread_mutex_t lock;
	uint8_t ctr;
	uint8_t status;
	uint8_t pending_cmd;  /* a command waiting for its data byte, or 0 */
	uint8_t outbuf[OUTBUF_SIZE];
	unsigned head, count;
	int irq_level;
};

static void push(struct i8042 *k, uint8_t b)
{
	if (k->count < OUTBUF_SIZE)
		k->outbuf[(k->head + k->count++) % OUTBUF_SIZE] = b;
}

static void update_irq(struct i8042 *k)
{
	int level = k->count && (k->ctr & CTR_KBDINT);

	if (level != k->irq_level) {
		k->irq_level = level;
		machine_set_irq_line(k->machine, KBD_IRQ, level);
	}
}

static void reset_vm(struct i8042 *k)
{
	pr_info("guest reset through the i8042 keyboard controller");
	machine_request_exit(k->machine, 0, "reset");
}

static void keyboard_byte(struct i8042 *k, uint8_t b)
{
	push(k, 0xfa); /* ACK */
	if (b == 0xff) {
		push(k, 0xaa); /* reset: self-test passed */
	} else if (b == 0xf2) {
		push(k, 0xab); /* identify: MF2 keyboard */
		push(k, 0x83);
	}
}

static void data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending_cmd;

	k->pending_cmd = 0;
	switch (cmd) {
	case CMD_WRITE_CTR:
		k->ctr = v;
		break;
	case CMD_WRITE_OUTPUT:
		if (!(v & 1))
			reset_vm(k);
		break;
	case CMD_WRITE_KBD_OUT:
		push(k, v);
		break;
	case CMD_WRITE_AUX_OUT:
	case CMD_WRITE_AUX:
		break; /* there is no AUX device */
	default:
		keyboard_byte(k, v);
		break;
	}
}

static void command_write(struct i8042 *k, uint8_t v)
{
	switch (v) {
	case CMD_READ_CTR:
		push(k, k->ctr);
		break;
	case CMD_WRITE_CTR: case CMD_WRITE_OUTPUT: case CMD_WRITE_KBD_OUT:
	case CMD_WRITE_AUX_OUT: case CMD_WRITE_AUX:
		k->pending_cmd = v;
		break;
	case CMD_AUX_TEST:
		push(k, 0x01); /* "clock line stuck low": tells Linux there is no AUX port */
		break;
	case CMD_SELF_TEST:
		push(k, 0x55);
		k->status |= STR_SYS;
		break;
	case CMD_KBD_TEST:
		push(k, 0x00);
		break;
	case CMD_READ_OUTPUT:
		push(k, 0x01 | (k->count ? 0x10 : 0)); /* reset line high; OBF mirrors status */
		break;
	case CMD_PULSE_RESET:
		reset_vm(k);
		break;
	default: /* enable/disable ports and the rest: accepted, nothing to do */
		break;
	}
}

static void i8042_data_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct i8042 *k = opaque;
	uint8_t v = 0;

	(void)off, (void)len;
	pthread_mutex_lock(&k->lock);
	if (k->count) {
		v = k->outbuf[k->head];
		k->head = (k->head + 1) % OUTBUF_SIZE;
		k->count--;
	}
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	*(uint8_t *)data = v;
}

static void i8042_data_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct i8042 *k = opaque;

	(void)off, (void)len;
	pthread_mutex_lock(&k->lock);
	k->status &= ~STR_CMD;
	data_write(k, *(const uint8_t *)data);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static void i8042_status_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct i8042 *k = opaque;

	(void)off, (void)len;
	pthread_mutex_lock(&k->lock);
	*(uint8_t *)data = k->status | (k->count ? STR_OBF : 0);
	pthread_mutex_unlock(&k->lock);
}

static void i8042_command_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct i8042 *k = opaque;

	(void)off, (void)len;
	pthread_mutex_lock(&k->lock);
	k->status |= STR_CMD;
	command_write(k, *(const uint8_t *)data);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static const struct bus_ops data_ops = { .read = i8042_data_read, .write = i8042_data_write };
static const struct bus_ops cmd_ops = { .read = i8042_status_read, .write = i8042_command_write };

/* ---- snapshots ----
 *
 * The command byte, status, a command waiting for its data byte and the output buffer's bytes
 * in order; the IRQ line follows from them. */

static int i8042_save(void *opaque, struct snap_writer *w, struct err *e)
{
	struct i8042 *k = opaque;

	(void)e;
	pthread_mutex_lock(&k->lock);
	snap_put_u8(w, k->ctr);
	snap_put_u8(w, k->status);
	snap_put_u8(w, k->pending_cmd);
	snap_put_u8(w, (uint8_t)k->count);
	for (unsigned i = 0; i < k->count; i++)
		snap_put_u8(w, k->outbuf[(k->head + i) % OUTBUF_SIZE]);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static bool pending_cmd_ok(uint8_t cmd)
{
	return cmd == 0 || cmd == CMD_WRITE_CTR || cmd == CMD_WRITE_OUTPUT ||
	       cmd == CMD_WRITE_KBD_OUT || cmd == CMD_WRITE_AUX_OUT || cmd == CMD_WRITE_AUX;
}

static int i8042_restore(void *opaque, struct snap_cursor *c, struct err *e)
{
	struct i8042 *k = opaque;
	uint8_t ctr = snap_get_u8(c), status = snap_get_u8(c), cmd = snap_get_u8(c);
	uint8_t count = snap_get_u8(c), buf[OUTBUF_SIZE];

	if (c->err)
		return err_set(e, -EBADMSG, "snapshot: i8042: section truncated");
	if (count > OUTBUF_SIZE)
		return err_set(e, -EINVAL, "snapshot: i8042: %u bytes in a buffer of %d", count,
			       OUTBUF_SIZE);
	snap_get(c, buf, count);
	if (snap_cursor_end(c))
		return err_set(e, -EBADMSG, "snapshot: i8042: section of another length");
	if ((status & ~(STR_SYS | STR_CMD | STR_KEYLOCK)) || !pending_cmd_ok(cmd))
		return err_set(e, -EINVAL, "snapshot: i8042: status or pending command the "
			       "controller cannot hold");
	pthread_mutex_lock(&k->lock);
	k->ctr = ctr;
	k->status = status;
	k->pending_cmd = cmd;
	memcpy(k->outbuf, buf, count);
	k->head = 0;
	k->count = count;
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static const struct snap_ops i8042_snap_ops = {
	.name = "i8042", .version = 1, .save = i8042_save, .restore = i8042_restore,
};

static void i8042_destroy(void *dev)
{
	struct i8042 *k = dev;

	pthread_mutex_destroy(&k->lock);
	free(k);
}

int i8042_create(struct machine *m)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	int err;

	if (!k)
		return -ENOMEM;
	k->machine = m;
	k->ctr = CTR_KBDINT | CTR_SYS | CTR_XLATE;
	k->status = STR_SYS | STR_KEYLOCK;
	pthread_mutex_init(&k->lock, NULL);
	err = machine_own(m, k, i8042_destroy);
	if (err) {
		i8042_destroy(k);
		return err;
	}
	err = bus_register(m->pio, I8042_DATA_PORT, 1, &data_ops, k, "i8042-data");
	if (!err)
		err = bus_register(m->pio, I8042_CMD_PORT, 1, &cmd_ops, k, "i8042-cmd");
	if (!err)
		err = machine_add_state(m, k, &i8042_snap_ops);
	return err;
}
