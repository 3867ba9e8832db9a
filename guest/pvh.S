/* PVH entry (QEMU `-kernel build/guest/mica-testguest`, Xen's x86/HVM direct boot ABI): the
 * loader finds the 32-bit entry in the XEN_ELFNOTE_PHYS32_ENTRY note and starts the boot CPU
 * there in 32-bit protected mode, paging off, interrupts off, flat segments, no stack, with
 * ebx = the physical address of struct hvm_start_info (bootinfo.c reads it). This path builds
 * what mica's loader gives the 64-bit entry: page tables identity-mapping the first 4 GiB with
 * 2 MiB pages (here, in the guest's own .bss, not at mica's 0x9000), a GDT with the same
 * selectors (0x10 code, 0x18 data), long mode; then it joins _start as vCPU 0 with rdi = 0 (no
 * device tree). mica's entry (e_entry, 64-bit, rdi = FDT) is untouched: it never runs this. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define PTE_P   0x001
#define PTE_RW  0x002
#define PTE_PS  0x080
#define CR0_PE  0x00000001
#define CR0_PG  0x80000000
#define CR4_PAE 0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LME 0x00000100

/* An ELF note "Xen", type 18, with the entry's physical address as an 8-byte value (what Linux
 * emits on x86_64, and what QEMU reads for an ELF64 kernel). guest.ld puts .note.Xen in a
 * PT_NOTE segment (inside the read-only PT_LOAD). */
    .section .note.Xen, "a", @note
    .balign 4
    .long 2f - 1f                       /* namesz */
    .long 4f - 3f                       /* descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY
1:  .asciz "Xen"
2:  .balign 4
3:  .quad pvh_start32
4:  .balign 4

    .section .text.pvh, "ax"
    .code32
    .globl pvh_start32
    .type pvh_start32, @function
pvh_start32:
    cli
    cld
    movl %ebx, pvh_start_info

    /* PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 512 2 MiB pages each. */
    movl $(pvh_pdpt + PTE_P + PTE_RW), pvh_pml4
    movl $0, pvh_pml4 + 4
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $12, %eax
    addl $(pvh_pd + PTE_P + PTE_RW), %eax
    movl %eax, pvh_pdpt(, %ecx, 8)
    movl $0, pvh_pdpt + 4(, %ecx, 8)
    incl %ecx
    cmpl $4, %ecx
    jb 1b
    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $21, %eax
    orl $(PTE_P + PTE_RW + PTE_PS), %eax
    movl %eax, pvh_pd(, %ecx, 8)
    movl $0, pvh_pd + 4(, %ecx, 8)
    incl %ecx
    cmpl $2048, %ecx
    jb 2b

    lgdt pvh_gdt_desc
    movl %cr4, %eax
    orl $CR4_PAE, %eax
    movl %eax, %cr4
    movl $pvh_pml4, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl %cr0, %eax
    orl $(CR0_PG + CR0_PE), %eax
    movl %eax, %cr0
    ljmp $0x10, $pvh_start64

    .code64
pvh_start64:
    movl $0x18, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    xorl %edi, %edi                     /* no device tree: bootinfo.c uses pvh_start_info */
    xorl %esi, %esi                     /* vCPU index 0: only the boot CPU enters here */
    xorl %esp, %esp
    jmp _start
    .size pvh_start32, . - pvh_start32

    .section .rodata.pvh, "a"
    .balign 16
pvh_gdt:
    .quad 0
    .quad 0
    .quad 0x00af9a000000ffff            /* 0x10: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff            /* 0x18: data, flat */
pvh_gdt_end:
    .balign 8
pvh_gdt_desc:
    .word pvh_gdt_end - pvh_gdt - 1
    .long pvh_gdt                       /* loaded in 32-bit mode: a 32-bit base */

    .data
    .balign 4
    .globl pvh_start_info
pvh_start_info:                         /* 0 unless started through the PVH entry */
    .long 0

    .section .bss.pvh, "aw", @nobits
    .balign 4096
pvh_pml4:
    .skip 4096
pvh_pdpt:
    .skip 4096
pvh_pd:
    .skip 4 * 4096

    .section .note.GNU-stack, "", @progbits
