/* CRC-32 in the two reflected forms mica meets, slice by 8 (about a byte per cycle): IEEE
 * (polynomial 0xedb88320: a bzImage's checksum, boot/bzimage.c) and Castagnoli (0x82f63b78:
 * snapshot sections, snapshot/crc32c.c). Raw: no inversion on the way in or out; each caller
 * applies its format's convention. */
#ifndef MICA_CRC32_H
#define MICA_CRC32_H

#include <stddef.h>
#include <stdint.h>

struct crc32_table {
	uint32_t t[8][256];
};

const struct crc32_table *crc32_ieee(void);
const struct crc32_table *crc32_castagnoli(void);
uint32_t crc32_raw(const struct crc32_table *tab, uint32_t crc, const void *data, size_t len);

#endif
