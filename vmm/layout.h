/* The guest-physical memory map and fixed resources of a mica x86_64 machine.
 *
 *   0x0000_0000 .. 0x0000_0fff   real-mode IVT / BIOS data (left zero)
 *   0x0000_1000                  boot GDT
 *   0x0000_7000                  Linux boot_params ("zero page")
 *   0x0000_9000 .. 0x0000_efff   boot page tables: PML4, PDPT, 4 page directories (4 GiB in 2 MiB pages)
 *   0x0002_0000 .. 0x0002_ffff   kernel command line (Linux)
 *   0x0008_0000 .. 0x0008_ffff   boot-info flattened device tree (ELF guests)
 *   0x0009_fc00 .. 0x000f_ffff   reserved (EBDA, VGA, BIOS area), not RAM in the e820 map
 *   0x0010_0000 ..               kernel image (bzImage at 1 MiB; ELF guests at their p_paddr)
 *   ...         .. MMIO_HOLE     RAM below 4 GiB
 *   0xc000_0000 .. 0xffff_ffff   MMIO hole (1 GiB), holding:
 *       0xc000_0000              PCI 32-bit BAR window (256 MiB)
 *       0xd000_0000              virtio-mmio slots, VIRTIO_MMIO_SLOT_SIZE each (GSIs below)
 *       0xdf00_0000              exit-cost lab MMIO page (--bench-devices)
 *       0xe000_0000              PCI ECAM (MMCONFIG) window, 1 MiB per bus
 *       0xfec0_0000              IOAPIC
 *       0xfee0_0000              LAPIC
 *       0xfffb_c000              KVM identity-map page, 0xfffb_d000 KVM TSS (3 pages)
 *   0x1_0000_0000 ..             RAM above 4 GiB, when --mem exceeds the hole start
 */
#ifndef MICA_LAYOUT_H
#define MICA_LAYOUT_H

#define GDT_ADDR            0x1000ULL
#define ZERO_PAGE_ADDR      0x7000ULL
#define PML4_ADDR           0x9000ULL
#define PDPT_ADDR           0xa000ULL
#define PD_ADDR             0xb000ULL /* 4 pages: 0xb000..0xefff */
#define CMDLINE_ADDR        0x20000ULL
#define CMDLINE_MAX         0x10000ULL
#define BOOTINFO_ADDR       0x80000ULL
#define BOOTINFO_MAX        0x10000ULL
#define EBDA_START          0x9fc00ULL
#define HIGH_MEM_START      0x100000ULL /* 1 MiB */

#define MMIO_HOLE_START     0xc0000000ULL
#define MMIO_HOLE_END       0x100000000ULL
#define PCI_MMIO32_START    0xc0000000ULL
#define PCI_MMIO32_SIZE     0x10000000ULL
#define VIRTIO_MMIO_BASE    0xd0000000ULL
#define VIRTIO_MMIO_SLOT_SIZE 0x1000ULL
/* The GSI of each virtio-mmio slot: ISA lines no legacy device of mica uses (not 0-4, 8 RTC,
 * 12 PS/2 mouse), then IOAPIC pins 20-23 (16-19 carry PCI INTx). */
#define VIRTIO_MMIO_GSIS { 5, 6, 7, 9, 10, 11, 13, 14, 15, 20, 21, 22, 23 }
#define BENCH_MMIO_ADDR     0xdf000000ULL /* exit-cost lab: an MMIO page handled in userspace */
#define PCI_ECAM_BASE       0xe0000000ULL
#define PCI_ECAM_BUS_SIZE   0x100000ULL /* bus 0 only: 32 devices x 8 functions x 4 KiB */
#define IOAPIC_ADDR         0xfec00000ULL
#define LAPIC_ADDR          0xfee00000ULL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL
#define KVM_TSS_ADDR        0xfffbd000ULL

/* Legacy PIO devices and their IRQs. */
#define UART_COM1_PORT      0x3f8
#define UART_COM1_IRQ       4
#define RTC_PORT            0x70
#define I8042_DATA_PORT     0x60
#define I8042_CMD_PORT      0x64
#define DEBUG_EXIT_PORT     0x501 /* 8-bit write of N: the VM ends, mica exits N */
#define MILESTONE_PORT      0x504 /* 8-bit write of N < 8: the guest reached milestone N */
#define BENCH_PIO_PORT      0x510 /* exit-cost lab: a port handled in userspace */
#define BENCH_EVENTFD_PORT  0x514 /* exit-cost lab: a port that is a PIO ioeventfd */

/* Selectors of the boot GDT (the Linux boot protocol's __BOOT_CS / __BOOT_DS). */
#define BOOT_CS             0x10
#define BOOT_DS             0x18

#endif
