# `mica sandbox`'s guest init (included by the top-level Makefile, which defines CC, BUILD,
# OBJDIR, CPPFLAGS and HARDEN_CFLAGS). sandbox/init/*.c and sandbox/job.c become one static
# binary, build/sandbox/mica-init (glibc's libc.a, -Os, stripped; never with sanitizers: it
# runs as PID 1 in the guest), which sandbox/init_blob.S embeds into mica with .incbin
# (assembled without -g: tests/check-hardening reads every debug unit's compiler switches).
# Every build of mica (default, SAN=1, SAN=thread) embeds the same init.

SANDBOX_INIT := $(BUILD)/sandbox/mica-init
SANDBOX_INIT_SRCS := $(sort $(wildcard sandbox/init/*.c)) sandbox/job.c vmm/util.c
SANDBOX_INIT_CFLAGS := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -I. -Os -static -s \
	-ffunction-sections -fdata-sections -Wl,--gc-sections -Wl,-z,noexecstack
SANDBOX_BLOB := $(OBJDIR)/sandbox/init_blob.o

CORE_OBJS += $(SANDBOX_BLOB)

$(SANDBOX_INIT): $(SANDBOX_INIT_SRCS) $(wildcard sandbox/init/*.h) sandbox/job.h sandbox/milestones.h vmm/util.h sandbox/sandbox.mk
	@mkdir -p $(dir $@)
	$(CC) $(SANDBOX_INIT_CFLAGS) -o $@ $(SANDBOX_INIT_SRCS)

$(SANDBOX_BLOB): sandbox/init_blob.S $(SANDBOX_INIT)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(HARDEN_CFLAGS) -DMICA_INIT_PATH='"$(SANDBOX_INIT)"' -c -o $@ $<

.PHONY: clean-sandbox
clean: clean-sandbox
clean-sandbox:
	rm -rf $(BUILD)/sandbox
