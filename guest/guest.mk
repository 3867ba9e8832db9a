# mica-testguest: the bundled freestanding x86_64 test kernel (included by the top-level
# Makefile, which defines CC and BUILD). Sources: every guest/*.c and guest/*.S; the registry
# runs tests in link order, i.e. sorted by file name, then in declaration order within a file.
# One ELF boots on both VMMs: mica starts every vCPU at e_entry (64-bit, rdi = FDT); QEMU's
# `-kernel` starts the boot CPU at the PVH note's 32-bit entry (pvh.S; scripts/qemu-testguest).

GUEST_BIN := $(BUILD)/guest/mica-testguest
GUEST_OBJDIR := $(BUILD)/guest/obj
GUEST_SRCS := $(sort $(wildcard guest/*.c) $(wildcard guest/*.S))
GUEST_OBJS := $(patsubst guest/%,$(GUEST_OBJDIR)/%.o,$(GUEST_SRCS))

GUEST_CFLAGS := -std=c11 -Wall -Wextra -Werror -ffreestanding -nostdlib -nostdinc \
	-isystem $(shell $(CC) -print-file-name=include) \
	-mno-red-zone -fno-pic -no-pie -mgeneral-regs-only -fno-stack-protector \
	-fcf-protection=none -fno-builtin -O2 -static -mcmodel=small \
	-fno-tree-loop-distribute-patterns -fno-toplevel-reorder \
	-fno-asynchronous-unwind-tables -fno-unwind-tables -fno-omit-frame-pointer -g0 \
	-MMD -MP
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,guest/guest.ld -Wl,--build-id=none \
	-Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments

$(GUEST_BIN): $(GUEST_OBJS) guest/guest.ld
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(GUEST_OBJS)

$(GUEST_OBJDIR)/%.c.o: guest/%.c guest/guest.mk
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OBJDIR)/%.S.o: guest/%.S guest/guest.mk
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -c -o $@ $<

-include $(GUEST_OBJS:.o=.d)
