/* The 16550A model through its registers, as a guest driver sees it, on a fake machine that
 * records the IRQ line. */
#include <unistd.h>

#include "devices/uart.h"
#include "tests/unit/test.h"
#include "vmm/bus.h"
#include "tests/unit/fake_machine.h"

#define BASE 0x3f8

static struct fake_machine vm;
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

static struct uart *setup(void)
{
	struct uart *u;

	fm_init(&vm, 0);
	if (pipe(out) < 0 || uart_create(&vm.m, BASE, 4, out[1], &u))
		abort();
	return u;
}

static void teardown(void)
{
	fm_destroy(&vm);
	close(out[0]);
	close(out[1]);
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

TEST_MAIN("uart", T(transmit_reaches_output), T(scratch_and_divisor), T(thre_interrupt),
	  T(receive_and_priority), T(loopback))
