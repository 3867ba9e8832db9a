/* CRC-32C of snapshot sections: the shared slice-by-8 CRC (vmm/crc32.c), Castagnoli, with the
 * usual inversion in and out. */
#include "snapshot/snapshot.h"
#include "vmm/crc32.h"

uint32_t snap_crc32c(uint32_t crc, const void *data, size_t len)
{
	return ~crc32_raw(crc32_castagnoli(), ~crc, data, len);
}
