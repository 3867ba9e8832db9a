#include "devices/uart.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot.h"
#include "vmm/bus.h"
#include "vmm/err.h"
#include "vmm/log.h"
#include "vmm/machine.h"
#include "vmm/outq.h"
#include "vmm/util.h"

enum {
	REG_RBR_THR_DLL = 0, REG_IER_DLM = 1, REG_IIR_FCR = 2, REG_LCR = 3,
	REG_MCR = 4, REG_LSR = 5, REG_MSR = 6, REG_SCR = 7,
};

#define IER_RDA  0x01
#define IER_THRE 0x02
#define IER_RLS  0x04
#define IER_MSI  0x08

#define IIR_NONE 0x01
#define IIR_MSI  0x00
#define IIR_THRE 0x02
#define IIR_RDA  0x04
#define IIR_RLS  0x06
#define IIR_FIFO 0xc0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80

#define FIFO_SIZE 16

struct uart {
	struct machine *machine;
	struct term *term;
	pthread_mutex_t lock;
	uint16_t port;
	uint32_t gsi;
	struct outq *tx;            /* mica's stdout; set up once */
	atomic_ulong output_bytes;  /* transmitted and taken by tx */
	atomic_ulong output_dropped; /* transmitted while tx was full: lost */
	uint8_t ier, lcr, mcr, lsr_oe, msr, scr, fcr, dll, dlm;
	bool thre_pending;  /* THR emptied and the THRE interrupt not yet acknowledged */
	int irq_level;
	uint8_t fifo[FIFO_SIZE];
	unsigned head, count;
};

/* The interrupt the UART reports in IIR, by 16550 priority. Called with the lock held. */
static uint8_t uart_iir(const struct uart *u)
{
	if ((u->ier & IER_RLS) && u->lsr_oe)
		return IIR_RLS;
	if ((u->ier & IER_RDA) && u->count)
		return IIR_RDA;
	if ((u->ier & IER_THRE) && u->thre_pending)
		return IIR_THRE;
	if ((u->ier & IER_MSI) && (u->msr & 0x0f))
		return IIR_MSI;
	return IIR_NONE;
}

/* Drives the IRQ line to match the pending interrupts. Called with the lock held, so line
 * changes reach KVM in the order the state changed. */
static void uart_update_irq(struct uart *u)
{
	int level = uart_iir(u) != IIR_NONE;

	if (level != u->irq_level) {
		u->irq_level = level;
		machine_set_irq_line(u->machine, u->gsi, level);
	}
}

static uint8_t modem_status(const struct uart *u)
{
	uint8_t msr = u->msr & 0x0f;

	if (u->mcr & MCR_LOOP) {
		/* Loopback wires the modem-control outputs back to the status inputs. */
		if (u->mcr & MCR_RTS) msr |= MSR_CTS;
		if (u->mcr & MCR_DTR) msr |= MSR_DSR;
		if (u->mcr & MCR_OUT1) msr |= MSR_RI;
		if (u->mcr & MCR_OUT2) msr |= MSR_DCD;
		return msr;
	}
	return msr | MSR_DCD | MSR_DSR | MSR_CTS;
}

static bool fifo_push(struct uart *u, uint8_t b)
{
	if (u->count == FIFO_SIZE) {
		u->lsr_oe = LSR_OE;
		return false;
	}
	u->fifo[(u->head + u->count++) % FIFO_SIZE] = b;
	return true;
}

static void uart_transmit(struct uart *u, uint8_t b)
{
	if (u->mcr & MCR_LOOP) {
		fifo_push(u, b);
	} else if (u->tx) {
		/* Transmission is instantaneous: THR and the shift register are empty again, whether
		 * the byte found room or not (see uart.h). */
		if (outq_write(u->tx, &b, 1))
			atomic_fetch_add_explicit(&u->output_bytes, 1, memory_order_relaxed);
		else
			atomic_fetch_add_explicit(&u->output_dropped, 1, memory_order_relaxed);
	}
	u->thre_pending = true;
}

static void uart_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct uart *u = opaque;
	uint8_t v = 0;
	bool had_space_freed = false;

	(void)len;
	pthread_mutex_lock(&u->lock);
	switch (off) {
	case REG_RBR_THR_DLL:
		if (u->lcr & LCR_DLAB) {
			v = u->dll;
		} else if (u->count) {
			v = u->fifo[u->head];
			u->head = (u->head + 1) % FIFO_SIZE;
			u->count--;
			had_space_freed = u->count == 0;
		}
		break;
	case REG_IER_DLM:
		v = (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
		break;
	case REG_IIR_FCR:
		v = uart_iir(u);
		/* Reading IIR while it reports THRE acknowledges that interrupt. */
		if (v == IIR_THRE)
			u->thre_pending = false;
		if (u->fcr & FCR_ENABLE)
			v |= IIR_FIFO;
		break;
	case REG_LCR:
		v = u->lcr;
		break;
	case REG_MCR:
		v = u->mcr;
		break;
	case REG_LSR:
		v = LSR_THRE | LSR_TEMT | (u->count ? LSR_DR : 0) | u->lsr_oe;
		u->lsr_oe = 0;
		break;
	case REG_MSR:
		v = modem_status(u);
		u->msr &= 0xf0; /* reading clears the delta bits */
		break;
	case REG_SCR:
		v = u->scr;
		break;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	*(uint8_t *)data = v;
	if (had_space_freed && u->term)
		term_input_space(u->term);
}

static void uart_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct uart *u = opaque;
	uint8_t v = *(const uint8_t *)data;

	(void)len;
	pthread_mutex_lock(&u->lock);
	switch (off) {
	case REG_RBR_THR_DLL:
		if (u->lcr & LCR_DLAB)
			u->dll = v;
		else
			uart_transmit(u, v);
		break;
	case REG_IER_DLM:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
		} else {
			/* Enabling the THRE interrupt while THR is empty raises it at once, as on a
			 * real 16550A (Linux's 8250 driver relies on this to start transmitting). */
			if (!(u->ier & IER_THRE) && (v & IER_THRE))
				u->thre_pending = true;
			u->ier = v & 0x0f;
		}
		break;
	case REG_IIR_FCR:
		u->fcr = v & (FCR_ENABLE | 0xc0);
		if (v & FCR_CLEAR_RX)
			u->head = u->count = 0;
		break;
	case REG_LCR:
		u->lcr = v;
		break;
	case REG_MCR:
		u->mcr = v & 0x1f;
		break;
	case REG_SCR:
		u->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

static const struct bus_ops uart_ops = { .read = uart_read, .write = uart_write };

static size_t uart_receive(void *dev, const uint8_t *buf, size_t len)
{
	struct uart *u = dev;
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	/* In loopback the receiver hears only the transmitter. */
	if (!(u->mcr & MCR_LOOP))
		while (n < len && u->count < FIFO_SIZE)
			fifo_push(u, buf[n++]);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

struct console_sink uart_console_sink(struct uart *u)
{
	return (struct console_sink){ .receive = uart_receive, .dev = u };
}

void uart_set_term(struct uart *u, struct term *t)
{
	u->term = t;
}

int uart_stats(void *opaque, struct stat_value *out, int max)
{
	struct uart *u = opaque;
	struct stat_value v[] = {
		{ "device", "uart", 0 },
		{ "output_bytes", NULL, atomic_load(&u->output_bytes) },
		{ "output_dropped", NULL, atomic_load(&u->output_dropped) },
	};
	int n = MIN((int)ARRAY_SIZE(v), max);

	memcpy(out, v, n * sizeof(v[0]));
	return n;
}

/* ---- snapshots ----
 *
 * Every register, the receive FIFO's bytes in order and the pending THRE interrupt; the IRQ
 * line follows from them. What was transmitted is host-side (the output queue): not saved. */

static int uart_save(void *opaque, struct snap_writer *w, struct err *e)
{
	struct uart *u = opaque;

	(void)e;
	pthread_mutex_lock(&u->lock);
	snap_put_u8(w, u->ier);
	snap_put_u8(w, u->lcr);
	snap_put_u8(w, u->mcr);
	snap_put_u8(w, u->lsr_oe);
	snap_put_u8(w, u->msr);
	snap_put_u8(w, u->scr);
	snap_put_u8(w, u->fcr);
	snap_put_u8(w, u->dll);
	snap_put_u8(w, u->dlm);
	snap_put_u8(w, u->thre_pending);
	snap_put_u8(w, (uint8_t)u->count);
	for (unsigned i = 0; i < u->count; i++)
		snap_put_u8(w, u->fifo[(u->head + i) % FIFO_SIZE]);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static int uart_restore(void *opaque, struct snap_cursor *c, struct err *e)
{
	struct uart *u = opaque;
	uint8_t r[10], count, fifo[FIFO_SIZE];

	snap_get(c, r, sizeof(r));
	count = snap_get_u8(c);
	if (c->err)
		return err_set(e, -EBADMSG, "snapshot: uart: section truncated");
	if (count > FIFO_SIZE)
		return err_set(e, -EINVAL, "snapshot: uart: %u bytes in a FIFO of %d", count,
			       FIFO_SIZE);
	snap_get(c, fifo, count);
	if (snap_cursor_end(c))
		return err_set(e, -EBADMSG, "snapshot: uart: section of another length");
	/* Only values the registers' writes and reads can leave (see uart_write/uart_read). */
	if ((r[0] & ~0x0f) || (r[2] & ~0x1f) || (r[3] & ~LSR_OE) || (r[4] & 0x0f) ||
	    (r[6] & ~(FCR_ENABLE | 0xc0)) || r[9] > 1)
		return err_set(e, -EINVAL, "snapshot: uart: register values the UART cannot hold");
	pthread_mutex_lock(&u->lock);
	u->ier = r[0], u->lcr = r[1], u->mcr = r[2], u->lsr_oe = r[3], u->msr = r[4];
	u->scr = r[5], u->fcr = r[6], u->dll = r[7], u->dlm = r[8], u->thre_pending = r[9];
	memcpy(u->fifo, fifo, count);
	u->head = 0;
	u->count = count;
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static const struct snap_ops uart_snap_ops = {
	.name = "uart", .version = 1, .save = uart_save, .restore = uart_restore,
};

static void uart_destroy(void *dev)
{
	struct uart *u = dev;

	pthread_mutex_destroy(&u->lock);
	free(u);
}

int uart_create(struct machine *m, uint16_t port, uint32_t gsi, struct outq *tx, struct uart **out)
{
	struct uart *u = calloc(1, sizeof(*u));
	int err;

	if (!u)
		return -ENOMEM;
	u->machine = m;
	u->port = port;
	u->gsi = gsi;
	u->tx = tx;
	u->lcr = 0x03; /* 8N1 */
	u->mcr = MCR_OUT2;
	u->dll = 0x0c; /* 9600 baud */
	pthread_mutex_init(&u->lock, NULL);
	err = machine_own(m, u, uart_destroy);
	if (err) {
		uart_destroy(u);
		return err;
	}
	err = bus_register(m->pio, port, 8, &uart_ops, u, "uart");
	if (!err)
		err = machine_add_state(m, u, &uart_snap_ops);
	if (!err)
		*out = u;
	return err;
}
