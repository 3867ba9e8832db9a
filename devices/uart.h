/* 16550A UART: PIO registers, a 16-byte receive FIFO, THRE/RDA/RLS/MSI interrupts on a GSI. */
#ifndef MICA_UART_H
#define MICA_UART_H

#include <stdint.h>

#include "vmm/console.h"

struct machine;
struct uart;

/* Plugs a UART into m (which owns it); out_fd receives what the guest transmits. */
int uart_create(struct machine *m, uint16_t port, uint32_t gsi, int out_fd, struct uart **out);
/* The sink that feeds the guest's receiver. */
struct console_sink uart_console_sink(struct uart *u);
/* Who to tell when the receive FIFO has room again. */
void uart_set_term(struct uart *u, struct term *t);

#endif
