# The benchmark helpers, built on the host before `make bench` enters scripts/with-kvm (where
# compiling is slow). Included by the top-level Makefile (which defines CC, BUILD, CPPFLAGS,
# CFLAGS and CORE_OBJS); without it scripts/bench builds the standalone ones itself. Flags match
# bench/lib.sh's bench_build_tools. blkhost links the VMM's objects (as the unit tests do), so
# make builds it: bench/sections/blkhost.sh runs `make BENCH_BIN_DIR=... PATH/blkhost`.
BENCH_BIN_DIR := $(BUILD)/bench/bin
BENCH_TOOLS := $(BENCH_BIN_DIR)/benchrun $(BENCH_BIN_DIR)/firstrun.so $(BENCH_BIN_DIR)/minilaunch \
	$(BENCH_BIN_DIR)/netsink $(BENCH_BIN_DIR)/blkhost $(BENCH_BIN_DIR)/vmwatch
BENCH_CFLAGS := -std=c11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE -I.

# The sandbox section writes mica's sandbox initramfs for QEMU with this unit test's helper.
bench: $(BENCH_TOOLS) $(OBJDIR)/tests/test_sandbox_initramfs

$(BENCH_BIN_DIR)/benchrun: bench/benchrun.c bench/firstrun.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

$(BENCH_BIN_DIR)/firstrun.so: bench/firstrun.c bench/firstrun.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -shared -fPIC -o $@ $<

$(BENCH_BIN_DIR)/minilaunch: bench/minilaunch.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lfdt

$(BENCH_BIN_DIR)/netsink: bench/netsink.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

$(BENCH_BIN_DIR)/vmwatch: bench/vmwatch.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

$(BENCH_BIN_DIR)/blkhost: bench/blkhost.c tests/unit/vring_driver.h $(CORE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(CORE_OBJS) $(LDLIBS)
