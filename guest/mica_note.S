/* An ELF note saying "this kernel follows mica's entry contract" (docs/boot-contract.md): mica
 * enters such an ELF at e_entry in 64-bit mode with rdi = the boot-info FDT. An ELF without it
 * is taken for a Linux vmlinux (PVH note, or the 64-bit boot protocol). */
    .section .note.mica, "a"
    .balign 4
    .long 5            /* namesz: "MICA" and its NUL */
    .long 4            /* descsz */
    .long 1            /* type: the entry contract */
    .asciz "MICA"
    .balign 4
    .long 1            /* contract version */
