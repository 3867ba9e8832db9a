/* The host terminal: raw mode while the guest runs (always restored), stdin routed to the guest
 * console, and the Ctrl-A escape (Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-A h helps). */
#ifndef MICA_TERM_H
#define MICA_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <termios.h>

#include "vmm/console.h"
#include "vmm/evloop.h"

struct vm;

struct term {
	struct vm *vm;
	struct ev_handler h;
	struct console_sink sink;
	struct ev_handler space_h;  /* a device has room for input again */
	int space_fd;
	struct ev_handler winch_h;  /* the terminal was resized */
	int winch_fd;
	pthread_mutex_t lock;
	bool is_tty;        /* stdin is a terminal: raw mode and the Ctrl-A escape apply */
	bool raw_set;
	bool watching;      /* stdin is in the event loop */
	bool eof;
	bool escape;        /* the previous byte was Ctrl-A */
	struct termios saved;
	uint8_t buf[4096];  /* read from stdin, not yet taken by the guest */
	size_t start, len;
};

/* Starts routing stdin to sink. Never fails fatally: without usable stdin the guest gets no
 * input. */
void term_start(struct term *t, struct vm *vm, struct console_sink sink);
/* Restores the terminal; safe to call more than once and from a signal handler. */
void term_restore(struct term *t);
/* Restores the terminal and releases what term_start() took. */
void term_stop(struct term *t);
/* Tells the console device the terminal's current size. */
void term_report_size(struct term *t);

#endif
