/* The 16550A model through its registers, as a guest driver sees it, on a fake machine that
 * records the IRQ line; its output goes through an output queue (vmm/outq.h) to a pipe. */
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/uart.h"
#include "tests/unit/test.h"
#include "vmm/bus.h"
#include "vmm/outq.h"
#include "tests/unit/fake_machine.h"

#define BASE 0x3f8

static struct fake_machine vm;
static struct outq *tx;
static int out[2];

static uint8_t rd(int reg)
{
	uint8_t v;

	bus_read(&vm.pio, BASE + reg, &v, 1);
	return v;
}

static void wr(int reg, uint8_t v)
{
	bus_write(&vm.pio, BASE + reg, &v, 1);
}

/* A UART whose output queue holds qsize bytes, on a pipe of pipe_size bytes (0: the default). */
static struct uart *setup_with(size_t qsize, int pipe_size)
{
	struct uart *u;

	fm_init(&vm, 0);
	if (pipe(out) < 0 || (pipe_size && fcntl(out[1], F_SETPIPE_SZ, pipe_size) < pipe_size) ||
	    outq_create(&vm.loop, out[1], qsize, &tx) || uart_create(&vm.m, BASE, 4, tx, &u))
		abort();
	return u;
}

static struct uart *setup(void)
{
	return setup_with(OUTQ_SIZE, 0);
}

static void teardown(void)
{
	fm_destroy(&vm);
	outq_destroy(tx);
	close(out[0]);
	close(out[1]);
}

static uint64_t uart_stat(struct uart *u, const char *name)
{
	struct stat_value v[8];
	int n = uart_stats(u, v, 8);

	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return v[i].num;
	return ~0ULL;
}

static void transmit_reaches_output(void)
{
	char buf[4] = { 0 };

	CHECK(setup() != NULL);
	wr(0, 'h');
	wr(0, 'i');
	CHECK_EQ(read(out[0], buf, sizeof(buf)), 2);
	CHECK(!memcmp(buf, "hi", 2));
	CHECK_EQ(rd(5) & 0x60, 0x60); /* THRE and TEMT: transmission is instantaneous */
	teardown();
}

static void scratch_and_divisor(void)
{
	setup();
	wr(7, 0xa5);
	CHECK_EQ(rd(7), 0xa5);
	wr(3, 0x83);           /* DLAB */
	wr(0, 0x01);
	wr(1, 0x00);
	CHECK_EQ(rd(0), 0x01);
	CHECK_EQ(rd(1), 0x00);
	wr(3, 0x03);
	CHECK_EQ(rd(3), 0x03);
	CHECK_EQ(rd(1), 0x00); /* IER, not DLM */
	teardown();
}

static void thre_interrupt(void)
{
	setup();
	CHECK_EQ(rd(2) & 0x0f, 0x01);   /* nothing pending */
	wr(1, 0x02);                     /* enable THRE with THR empty: raised at once */
	CHECK_EQ(rd(2) & 0x0f, 0x02);
	CHECK_EQ(rd(2) & 0x0f, 0x01);   /* reading IIR acknowledged it */
	wr(0, 'x');                      /* THR empties again after the byte */
	CHECK_EQ(rd(2) & 0x0f, 0x02);
	wr(2, 0x07);                     /* FIFO on */
	CHECK_EQ(rd(2) & 0xc0, 0xc0);
	teardown();
}

static void receive_and_priority(void)
{
	struct uart *u = setup();
	struct console_sink sink = uart_console_sink(u);
	uint8_t in[20];

	for (int i = 0; i < 20; i++)
		in[i] = 'a' + i;
	CHECK_EQ(sink.receive(sink.dev, in, 20), 16); /* a 16-byte FIFO takes 16 */
	CHECK_EQ(rd(5) & 1, 1);
	wr(1, 0x03);                                 /* RDA and THRE */
	CHECK_EQ(rd(2) & 0x0f, 0x04);               /* RDA outranks THRE */
	for (int i = 0; i < 16; i++)
		CHECK_EQ(rd(0), 'a' + i);
	CHECK_EQ(rd(5) & 1, 0);
	CHECK_EQ(rd(2) & 0x0f, 0x02);               /* now THRE shows */
	teardown();
}

static void loopback(void)
{
	setup();
	wr(4, 0x10 | 0x03);          /* loop, RTS, DTR */
	wr(0, 0x42);
	CHECK_EQ(rd(5) & 1, 1);
	CHECK_EQ(rd(0), 0x42);
	CHECK_EQ(rd(6) & 0x30, 0x30); /* CTS and DSR mirror RTS and DTR */
	teardown();
}

/* Nobody reads the output: the guest's bytes fill the pipe, then the queue, then are dropped
 * and counted; the UART never waits (THR empty at once, THRE interrupts as usual). Once the
 * reader reads, what was taken arrives in order: the first bytes the guest sent. */
static void transmit_full_drops_and_counts(void)
{
	struct uart *u = setup_with(4096, 4096);
	static uint8_t got[3 * 4096];
	size_t n = 0, accepted;
	const int sent = 3 * 4096;
	int ready;

	wr(1, 0x02);                         /* THRE interrupt on */
	for (int i = 0; i < sent; i++) {
		CHECK_EQ(rd(2) & 0x0f, 0x02);   /* THR empty again after every byte */
		wr(0, (uint8_t)(i * 13));
	}
	CHECK_EQ(rd(5) & 0x60, 0x60);
	accepted = uart_stat(u, "output_bytes");
	CHECK_EQ(accepted + uart_stat(u, "output_dropped"), sent);
	CHECK(uart_stat(u, "output_dropped") > 0);
	CHECK_EQ(outq_queued(tx), 4096);      /* the queue is full... */
	CHECK(ioctl(out[0], FIONREAD, &ready) == 0 && (size_t)ready + 4096 == accepted); /* pipe too */
	/* The reader reads; the loop drains the queue; everything taken arrives. */
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	while (n < sizeof(got)) {
		struct epoll_event ev;
		ssize_t r = read(out[0], got + n, sizeof(got) - n);

		if (r > 0)
			n += r;
		else if (!outq_queued(tx) || epoll_wait(vm.loop.epfd, &ev, 1, 1000) != 1)
			break;
		else
			((struct ev_handler *)ev.data.ptr)->fn(ev.data.ptr, ev.events);
	}
	CHECK_EQ(n, accepted);
	for (size_t i = 0; i < n; i++)
		if (got[i] != (uint8_t)(i * 13)) {
			CHECK_EQ(got[i], (uint8_t)(i * 13));
			break;
		}
	/* Room again: the next byte goes out. */
	wr(0, 'z');
	CHECK_EQ(read(out[0], got, 1), 1);
	CHECK_EQ(got[0], 'z');
	CHECK_EQ(uart_stat(u, "output_bytes"), accepted + 1);
	teardown();
}

TEST_MAIN("uart", T(transmit_reaches_output), T(scratch_and_divisor), T(thre_interrupt),
	  T(receive_and_priority), T(loopback), T(transmit_full_drops_and_counts))
