/* 16550A UART: PIO registers, a 16-byte receive FIFO, THRE/RDA/RLS/MSI interrupts on a GSI. */
#ifndef MICA_UART_H
#define MICA_UART_H

#include <stdint.h>

#include "vmm/console.h"
#include "vmm/stats.h"

struct machine;
struct outq;
struct uart;

/* Plugs a UART into m (which owns it); what the guest transmits goes to tx (NULL: nowhere).
 *
 * Transmission never waits: a byte the output queue has no room for (stdout's reader is slower
 * than the guest, or stopped) is dropped and counted ("output_dropped"); THR is empty again at
 * once, as always. Waiting for room instead would hold the vCPU inside its OUT (and the guest
 * inside its printk, spinlocks held) for as long as the reader likes; a dropped byte costs
 * less, and the counter says what was lost. virtio-console, whose protocol has room for it,
 * applies backpressure instead. */
int uart_create(struct machine *m, uint16_t port, uint32_t gsi, struct outq *tx, struct uart **out);
/* The sink that feeds the guest's receiver. */
struct console_sink uart_console_sink(struct uart *u);
/* Who to tell when the receive FIFO has room again. */
void uart_set_term(struct uart *u, struct term *t);
/* --stats-json's "uart" entry (a stats_fn): bytes transmitted, bytes dropped. */
int uart_stats(void *u, struct stat_value *out, int max);

#endif
