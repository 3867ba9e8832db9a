/* A guest console device (the UART, later virtio-console) as the host terminal sees it. The
 * terminal pushes input with receive(); the device calls console_input_space() when its
 * buffer has room again, and the terminal pushes what it still holds. */
#ifndef MICA_CONSOLE_H
#define MICA_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

struct console_sink {
	/* Accepts up to len bytes of input for the guest; returns how many it took. */
	size_t (*receive)(void *dev, const uint8_t *buf, size_t len);
	/* Optional: the terminal's size changed. */
	void (*resize)(void *dev, uint16_t cols, uint16_t rows);
	void *dev;
};

struct term;
/* Called by a device, from any thread, when it can take input again. */
void term_input_space(struct term *t);

#endif
