/* Entry (docs/boot-contract.md): long mode, paging on, IF=0, rdi = FDT, rsi = vCPU index,
 * rsp = 0. Every vCPU arrives here at once; each takes guest_stacks[rsi] (this_cpu() derives
 * the index back from rsp). Nothing is zeroed: the loader zero-fills .bss. Under QEMU the boot
 * CPU comes from the PVH entry (pvh.S) instead, in the same state with rdi = 0 (no FDT). */
#define MAX_CPUS   64
#define STACK_SIZE (16 * 1024)

    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    cli
    cld
    cmp $MAX_CPUS, %rsi
    jae 2f
    mov %rsi, %rax
    inc %rax
    shl $14, %rax                   /* (index + 1) * STACK_SIZE */
    lea guest_stacks(%rip), %rsp
    add %rax, %rsp
    xor %ebp, %ebp
    test %rsi, %rsi
    jnz 1f
    call kmain                      /* kmain(fdt, 0) */
    jmp 2f
1:  mov %rsi, %rdi
    call ap_main                    /* ap_main(index) */
2:  cli
    hlt
    jmp 2b
    .size _start, . - _start

/* 256 interrupt stubs, 16 bytes apart (intr.c computes isr_stubs + 16 * vector). Each pushes a
 * dummy error code where the CPU pushes none, then the vector, and joins isr_common. */
    .text
    .align 16
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .align 16
    .if !(vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 || vec == 30)
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr
    .align 16
    .globl isr_stubs_end
isr_stubs_end:                      /* guest.ld asserts 256 * 16 bytes */

/* Same-privilege interrupts: no stack switch; the CPU aligned rsp to 16 before pushing its
 * 5-quadword frame, and 2 + 15 more quadwords keep it 16-aligned for the call. */
isr_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call trap_dispatch
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq

    .section .note.GNU-stack, "", @progbits
