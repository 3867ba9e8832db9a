/* CMOS/RTC at 0x70/0x71: the host's current UTC date and time, BCD, 24-hour. The clock is read
 * when the guest reads a time register; the update-in-progress bit is never set, so a guest
 * never waits on it. Other CMOS bytes are plain RAM that reads 0 until written (a register
 * that read 0xff would make Linux poll it thousands of times). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "devices/legacy.h"
#include "snapshot/snapshot.h"
#include "vmm/bus.h"
#include "vmm/err.h"
#include "vmm/layout.h"
#include "vmm/machine.h"

enum {
	CMOS_SECONDS = 0x00, CMOS_MINUTES = 0x02, CMOS_HOURS = 0x04, CMOS_WEEKDAY = 0x06,
	CMOS_DAY = 0x07, CMOS_MONTH = 0x08, CMOS_YEAR = 0x09, CMOS_STATUS_A = 0x0a,
	CMOS_STATUS_B = 0x0b, CMOS_STATUS_C = 0x0c, CMOS_STATUS_D = 0x0d, CMOS_CENTURY = 0x32,
};

#define STATUS_A_DIVIDER 0x26 /* 32.768 kHz time base, 1024 Hz rate: what firmware programs */
#define STATUS_B_24H     0x02
#define STATUS_B_BINARY  0x04
#define STATUS_D_VRT     0x80 /* valid RAM and time */

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t ram[128];
};

static uint8_t to_bcd(int v) { return (uint8_t)(((v / 10) << 4) | (v % 10)); }

static uint8_t rtc_time_reg(const struct rtc *rtc, uint8_t reg)
{
	bool binary = rtc->ram[CMOS_STATUS_B] & STATUS_B_BINARY;
	time_t now = time(NULL);
	struct tm tm;
	int v;

	gmtime_r(&now, &tm);
	switch (reg) {
	case CMOS_SECONDS: v = tm.tm_sec; break;
	case CMOS_MINUTES: v = tm.tm_min; break;
	case CMOS_HOURS: v = tm.tm_hour; break;
	case CMOS_WEEKDAY: v = tm.tm_wday + 1; break;
	case CMOS_DAY: v = tm.tm_mday; break;
	case CMOS_MONTH: v = tm.tm_mon + 1; break;
	case CMOS_YEAR: v = tm.tm_year % 100; break;
	default: v = (tm.tm_year + 1900) / 100; break; /* CMOS_CENTURY */
	}
	return binary ? (uint8_t)v : to_bcd(v);
}

static void rtc_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	struct rtc *rtc = opaque;
	uint8_t v = 0xff;

	(void)len;
	pthread_mutex_lock(&rtc->lock);
	if (off == 1) {
		switch (rtc->index) {
		case CMOS_SECONDS: case CMOS_MINUTES: case CMOS_HOURS: case CMOS_WEEKDAY:
		case CMOS_DAY: case CMOS_MONTH: case CMOS_YEAR: case CMOS_CENTURY:
			v = rtc_time_reg(rtc, rtc->index);
			break;
		case CMOS_STATUS_C:
			v = 0; /* no alarm, periodic or update interrupts are ever flagged */
			break;
		default:
			v = rtc->ram[rtc->index];
			break;
		}
	}
	pthread_mutex_unlock(&rtc->lock);
	*(uint8_t *)data = v;
}

static void rtc_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct rtc *rtc = opaque;
	uint8_t v = *(const uint8_t *)data;

	(void)len;
	pthread_mutex_lock(&rtc->lock);
	if (off == 0) {
		rtc->index = v & 0x7f; /* bit 7 is the NMI mask */
	} else {
		switch (rtc->index) {
		case CMOS_STATUS_A:
			rtc->ram[CMOS_STATUS_A] = v & 0x7f; /* UIP is read-only */
			break;
		case CMOS_STATUS_B:
			rtc->ram[CMOS_STATUS_B] = v;
			break;
		case CMOS_STATUS_C: case CMOS_STATUS_D:
		case CMOS_SECONDS: case CMOS_MINUTES: case CMOS_HOURS: case CMOS_WEEKDAY:
		case CMOS_DAY: case CMOS_MONTH: case CMOS_YEAR: case CMOS_CENTURY:
			break; /* the clock follows the host; setting it is ignored */
		default:
			rtc->ram[rtc->index] = v;
			break;
		}
	}
	pthread_mutex_unlock(&rtc->lock);
}

static const struct bus_ops rtc_ops = { .read = rtc_read, .write = rtc_write };

/* ---- snapshots ----
 *
 * The index register and the CMOS bytes. The time comes from the host clock, not the file;
 * the bytes a guest cannot write (the clock's, status C and D) keep what a new RTC has. */

static bool guest_writable(uint8_t reg)
{
	switch (reg) {
	case CMOS_STATUS_C: case CMOS_STATUS_D:
	case CMOS_SECONDS: case CMOS_MINUTES: case CMOS_HOURS: case CMOS_WEEKDAY:
	case CMOS_DAY: case CMOS_MONTH: case CMOS_YEAR: case CMOS_CENTURY:
		return false;
	}
	return true;
}

static int rtc_save(void *opaque, struct snap_writer *w, struct err *e)
{
	struct rtc *rtc = opaque;

	(void)e;
	pthread_mutex_lock(&rtc->lock);
	snap_put_u8(w, rtc->index);
	snap_put(w, rtc->ram, sizeof(rtc->ram));
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}

static int rtc_restore(void *opaque, struct snap_cursor *c, struct err *e)
{
	struct rtc *rtc = opaque;
	uint8_t index = snap_get_u8(c), ram[sizeof(rtc->ram)];

	snap_get(c, ram, sizeof(ram));
	if (snap_cursor_end(c))
		return err_set(e, -EBADMSG, "snapshot: rtc: section of another length");
	/* As rtc_write leaves them: bit 7 of the index is the NMI mask, UIP is read-only. */
	if (index > 0x7f || (ram[CMOS_STATUS_A] & 0x80))
		return err_set(e, -EINVAL, "snapshot: rtc: index or status A the RTC cannot hold");
	pthread_mutex_lock(&rtc->lock);
	rtc->index = index;
	for (unsigned i = 0; i < sizeof(ram); i++)
		if (guest_writable((uint8_t)i))
			rtc->ram[i] = ram[i];
	pthread_mutex_unlock(&rtc->lock);
	return 0;
}

static const struct snap_ops rtc_snap_ops = {
	.name = "rtc", .version = 1, .save = rtc_save, .restore = rtc_restore,
};

static void rtc_destroy(void *dev)
{
	struct rtc *rtc = dev;

	pthread_mutex_destroy(&rtc->lock);
	free(rtc);
}

int rtc_create(struct machine *m)
{
	struct rtc *rtc = calloc(1, sizeof(*rtc));
	int err;

	if (!rtc)
		return -ENOMEM;
	pthread_mutex_init(&rtc->lock, NULL);
	rtc->ram[CMOS_STATUS_A] = STATUS_A_DIVIDER;
	rtc->ram[CMOS_STATUS_B] = STATUS_B_24H;
	rtc->ram[CMOS_STATUS_D] = STATUS_D_VRT;
	err = machine_own(m, rtc, rtc_destroy);
	if (err) {
		rtc_destroy(rtc);
		return err;
	}
	err = bus_register(m->pio, RTC_PORT, 2, &rtc_ops, rtc, "rtc");
	return err ? err : machine_add_state(m, rtc, &rtc_snap_ops);
}
