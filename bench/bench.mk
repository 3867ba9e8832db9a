# The benchmark helpers, built on the host before `make bench` enters scripts/with-kvm (where
# compiling is slow). Included by the top-level Makefile (which defines CC and BUILD); without
# it scripts/bench builds them itself. Flags match bench/lib.sh's bench_build_tools.
BENCH_BIN_DIR := $(BUILD)/bench/bin
BENCH_TOOLS := $(BENCH_BIN_DIR)/benchrun $(BENCH_BIN_DIR)/firstrun.so $(BENCH_BIN_DIR)/minilaunch
BENCH_CFLAGS := -std=c11 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE -Ibench

bench: $(BENCH_TOOLS)

$(BENCH_BIN_DIR)/benchrun: bench/benchrun.c bench/firstrun.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $<

$(BENCH_BIN_DIR)/firstrun.so: bench/firstrun.c bench/firstrun.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -shared -fPIC -o $@ $<

$(BENCH_BIN_DIR)/minilaunch: bench/minilaunch.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lfdt
