# mica: one Makefile for the VMM, the test guest, the tests and the benchmarks.
#   make            build/mica and build/guest/mica-testguest
#   make test       unit tests, then integration tests through scripts/with-kvm
#   make bench      benchmarks (KVM ones through scripts/with-kvm), JSON in build/bench/
#   make soak       the kill -9 durability test with 201 kills (DURABILITY_ITER per cache mode)
#   make SAN=1 ...  the same with AddressSanitizer and UBSan (objects in build/san/)
#   make SAN=thread ...  the same with ThreadSanitizer (objects in build/tsan/)

CC      ?= gcc
BUILD   := build
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)

ifeq ($(SAN),1)
OBJDIR  := $(BUILD)/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
MICA    := $(BUILD)/mica-san
else ifeq ($(SAN),thread)
OBJDIR  := $(BUILD)/tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
MICA    := $(BUILD)/mica-tsan
else
OBJDIR  := $(BUILD)/obj
SANFLAGS :=
MICA    := $(BUILD)/mica
# Hardening, in the default build only (the sanitizer builds are for finding bugs, not for
# shipping); tests/check-hardening finds each of these in build/mica.
HARDEN_CPPFLAGS := -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3
HARDEN_CFLAGS   := -fstack-protector-strong -fstack-clash-protection -fcf-protection -fPIE
HARDEN_LDFLAGS  := -pie -Wl,-z,relro,-z,now
endif

CPPFLAGS := -D_GNU_SOURCE -DMICA_VERSION='"$(VERSION)"' -I. $(HARDEN_CPPFLAGS)
CFLAGS   := -std=c11 -Wall -Wextra -Werror -O2 -g $(SANFLAGS) $(HARDEN_CFLAGS)
LDFLAGS  := $(SANFLAGS) $(HARDEN_LDFLAGS)
LDLIBS   := -lfdt -luring -lpthread

# The VMM, minus cmd/main.c: also linked into the unit tests.
CORE_SRCS := $(wildcard vmm/*.c devices/*.c devices/virtio/*.c devices/net/*.c boot/*.c confine/*.c cmd/*.c hostfs/*.c sandbox/*.c ci/*.c snapshot/*.c)
CORE_SRCS := $(filter-out cmd/main.c,$(CORE_SRCS))
CORE_OBJS := $(CORE_SRCS:%.c=$(OBJDIR)/%.o)

UNIT_SRCS  := $(wildcard tests/unit/*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(OBJDIR)/tests/%)

.PHONY: all test unit integration bench soak clean
all: $(MICA)

include sandbox/sandbox.mk
include guest/guest.mk
include bench/bench.mk
include tests/fuzz/fuzz.mk
all: $(GUEST_BIN)

$(MICA): $(OBJDIR)/cmd/main.o $(CORE_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# -MMD: a test binary is rebuilt when a header it includes (tests/unit/*.h too) changes.
$(OBJDIR)/tests/%: tests/unit/%.c $(CORE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $@.d $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

unit: $(UNIT_BINS)
	@tests/run-unit $(UNIT_BINS)

# Everything that needs KVM runs in one inner VM when this machine has no /dev/kvm.
test: all $(UNIT_BINS) fuzz-build
	@MICA=$(MICA) tests/run-all $(UNIT_BINS)

# Host-only sections run here, the others through scripts/with-kvm (scripts/bench decides).
bench: all
	@scripts/bench

# The kill -9 durability test at length: 67 kills per cache mode (201), blocks checked and lost.
soak: all
	@scripts/get-linux-guest && DURABILITY_ITER=$${DURABILITY_ITER:-67} scripts/with-kvm \
		tests/integration/guest_durability.sh

clean:
	rm -rf $(BUILD)/obj $(BUILD)/san $(BUILD)/tsan $(BUILD)/fuzz $(BUILD)/mica $(BUILD)/mica-san $(BUILD)/mica-tsan $(BUILD)/guest $(BUILD)/bench

-include $(shell find $(OBJDIR) -name '*.d' 2>/dev/null)
