/* The guest init of `mica sandbox` (sandbox/init/, built static by sandbox/sandbox.mk), embedded
 * in mica as data: sandbox/initramfs.c puts it into the initramfs as /init. */
#ifdef __CET__
#include <cet.h> /* the IBT/SHSTK property note: without it the linker drops mica's */
#endif

	.section .rodata
	.balign 16
	.globl mica_init_start
	.globl mica_init_end
	.type mica_init_start, @object
	.type mica_init_end, @object
mica_init_start:
	.incbin MICA_INIT_PATH
mica_init_end:
	.size mica_init_start, mica_init_end - mica_init_start

	.section .note.GNU-stack, "", @progbits
