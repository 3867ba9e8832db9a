#include "vmm/crc32.h"

#include <endian.h>
#include <pthread.h>
#include <string.h>

static struct crc32_table ieee, castagnoli;

static void build(struct crc32_table *tab, uint32_t poly)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ poly : c >> 1;
		tab->t[0][i] = c;
	}
	for (int t = 1; t < 8; t++)
		for (int i = 0; i < 256; i++)
			tab->t[t][i] = (tab->t[t - 1][i] >> 8) ^ tab->t[0][tab->t[t - 1][i] & 0xff];
}

static void build_ieee(void) { build(&ieee, 0xedb88320u); }
static void build_castagnoli(void) { build(&castagnoli, 0x82f63b78u); }

const struct crc32_table *crc32_ieee(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, build_ieee);
	return &ieee;
}

const struct crc32_table *crc32_castagnoli(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, build_castagnoli);
	return &castagnoli;
}

uint32_t crc32_raw(const struct crc32_table *tab, uint32_t crc, const void *data, size_t len)
{
	const uint32_t (*t)[256] = tab->t;
	const uint8_t *p = data;

	for (; len >= 8; p += 8, len -= 8) {
		uint32_t lo, hi;

		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
		lo = le32toh(lo) ^ crc;
		hi = le32toh(hi);
		crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^
		      t[4][lo >> 24] ^ t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
		      t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
	}
	while (len--)
		crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}
