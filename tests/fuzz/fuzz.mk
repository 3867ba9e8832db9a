# libFuzzer harnesses (clang only), included by the top-level Makefile.
#   make fuzz                 build every target in build/fuzz/ and run each FUZZ_SECONDS (60)
#   make fuzz FUZZ_SECONDS=600
#   make fuzz-smoke           the same, 10 s each (part of `make test`)
#   make fuzz-build           only build
# Each target starts from the seeds tests/fuzz/mkseeds.c writes to build/fuzz/seeds/NAME/ and
# keeps what it finds in build/fuzz/corpus/NAME/; crashes are written to
# build/fuzz/crash-NAME-*. Reproduce one with: build/fuzz/NAME build/fuzz/crash-NAME-...
# The sources are compiled with clang here, not taken from the gcc objects; the targets link
# only what they exercise (tests/fuzz/stubs.c stands in for the symbols from vm.c, term.c
# and control.c that the device models reference). fuzz_virtio_dev covers every device model
# (rng, console, blk, net, balloon; one fuzz_dev_*.c each) and wraps a few functions at link
# time to watch the devices (see tests/fuzz/fuzz_dev.h).

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_CFLAGS  := -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_CPPFLAGS := -I.
FUZZ_HDRS    := $(wildcard vmm/*.h devices/*.h devices/virtio/*.h devices/net/*.h hostfs/*.h \
		tests/fuzz/*.h tests/unit/*.h)

FUZZ_TARGETS := fuzz_virtq fuzz_virtio_dev fuzz_transport fuzz_pci fuzz_fuse fuzz_tap fuzz_snapshot \
		fuzz_snapshot_devices
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)

FUZZ_SRCS_fuzz_virtq      := tests/fuzz/fuzz_virtq.c devices/virtio/virtq.c
# Every virtio device and transport saves and restores itself through the snapshot file's
# writer and cursor (snapshot/snapshot.h).
FUZZ_SNAPSHOT_SRCS  := snapshot/file.c snapshot/crc32c.c vmm/crc32.c
FUZZ_SNAPSHOT_FLAGS := -DMICA_VERSION='"fuzz"'
FUZZ_SRCS_fuzz_virtio_dev := tests/fuzz/fuzz_virtio_dev.c tests/fuzz/fuzz_track.c \
			     tests/fuzz/fuzz_dev_blk.c tests/fuzz/fuzz_dev_net.c \
			     tests/fuzz/fuzz_dev_balloon.c tests/fuzz/stubs.c \
			     devices/virtio/virtq.c devices/virtio/virtio.c devices/virtio/rng.c \
			     devices/virtio/console.c devices/virtio/console_ctrl.c \
			     devices/virtio/console_input.c devices/virtio/blk.c devices/virtio/blk_opts.c \
			     devices/virtio/blk_image.c devices/virtio/blk_wz.c devices/virtio/blk_io.c \
			     devices/virtio/blk_snap.c \
			     devices/virtio/net.c devices/virtio/balloon.c vmm/log.c vmm/evloop.c vmm/err.c \
			     vmm/outq.c vmm/util.c vmm/optstr.c vmm/confine.c confine/seccomp.c \
			     confine/seccomp_lists.c confine/syscall_names.c $(FUZZ_SNAPSHOT_SRCS)
FUZZ_LIBS_fuzz_virtio_dev := $(FUZZ_SNAPSHOT_FLAGS) -luring -Wl,--wrap=virtq_pop,--wrap=virtq_push,--wrap=madvise \
			     -Wl,--wrap=blk_io_queue,--wrap=blk_io_reap,--wrap=blk_io_submit_reap,--wrap=blk_io_drain
# The transports and the PCI bus on the fake machine of the unit tests (tests/unit/fake_machine.h).
FUZZ_MACHINE_SRCS := vmm/bus.c vmm/evloop.c vmm/memory.c vmm/machine.c vmm/log.c vmm/err.c \
		     $(FUZZ_SNAPSHOT_SRCS)
FUZZ_SRCS_fuzz_transport := tests/fuzz/fuzz_transport.c devices/virtio/mmio.c devices/virtio/pci.c \
			    devices/virtio/pci_common.c devices/virtio/pci_legacy.c \
			    devices/virtio/virtio.c devices/virtio/virtq.c devices/virtio/rng.c \
			    devices/pci.c devices/msix.c $(FUZZ_MACHINE_SRCS)
FUZZ_LIBS_fuzz_transport := $(FUZZ_SNAPSHOT_FLAGS) -Wl,--wrap=virtq_pop,--wrap=virtq_push,--wrap=virtq_enable_kicks
FUZZ_SRCS_fuzz_pci := tests/fuzz/fuzz_pci.c devices/pci.c devices/msix.c devices/virtio/pci.c \
		      devices/virtio/pci_common.c devices/virtio/pci_legacy.c devices/virtio/virtio.c \
		      devices/virtio/virtq.c devices/virtio/rng.c $(FUZZ_MACHINE_SRCS)
FUZZ_LIBS_fuzz_pci := $(FUZZ_SNAPSHOT_FLAGS)
# The FUSE server over hostfs on a scratch share; FALLOCATE wrapped to 1 MiB (see the target).
FUZZ_SRCS_fuzz_fuse := tests/fuzz/fuzz_fuse.c devices/virtio/fuse.c $(wildcard hostfs/*.c) vmm/err.c
FUZZ_LIBS_fuzz_fuse := -Wl,--wrap=hostfs_fallocate
# The TAP/KTAP reader and the JUnit report on hostile guest output.
FUZZ_SRCS_fuzz_tap := tests/fuzz/fuzz_tap.c ci/tap.c ci/junit.c ci/xml.c vmm/utf8.c
# A lower cap on the results kept: reached often, and a huge plan's errors stay quick to check.
FUZZ_LIBS_fuzz_tap := -DTAP_MAX_RESULTS=3000
FUZZ_SRCS_fuzz_snapshot := tests/fuzz/fuzz_snapshot.c snapshot/file.c snapshot/crc32c.c vmm/crc32.c vmm/err.c
FUZZ_LIBS_fuzz_snapshot := -DMICA_VERSION='"fuzz"'
# The transports, PCI and MSI-X restored from mutations of their own saved sections.
FUZZ_SRCS_fuzz_snapshot_devices := tests/fuzz/fuzz_snapshot_devices.c devices/virtio/attach.c \
			    $(filter-out tests/fuzz/fuzz_transport.c,$(FUZZ_SRCS_fuzz_transport))
FUZZ_LIBS_fuzz_snapshot_devices := $(FUZZ_SNAPSHOT_FLAGS)

.PHONY: fuzz fuzz-smoke fuzz-build
define fuzz_link
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LIBS_$(notdir $@)) -lpthread
endef

$(FUZZ_DIR)/fuzz_virtq: $(FUZZ_SRCS_fuzz_virtq) $(FUZZ_HDRS) tests/fuzz/fuzz.mk
	$(fuzz_link)

$(FUZZ_DIR)/fuzz_virtio_dev: $(FUZZ_SRCS_fuzz_virtio_dev) $(FUZZ_HDRS) tests/fuzz/fuzz.mk
	$(fuzz_link)

$(FUZZ_DIR)/fuzz_transport: $(FUZZ_SRCS_fuzz_transport) $(FUZZ_HDRS) tests/fuzz/fuzz.mk
	$(fuzz_link)

$(FUZZ_DIR)/fuzz_pci: $(FUZZ_SRCS_fuzz_pci) $(FUZZ_HDRS) tests/fuzz/fuzz.mk
	$(fuzz_link)

$(FUZZ_DIR)/fuzz_fuse: $(FUZZ_SRCS_fuzz_fuse) $(FUZZ_HDRS) tests/fuzz/fuzz.mk
	$(fuzz_link)

$(FUZZ_DIR)/fuzz_tap: $(FUZZ_SRCS_fuzz_tap) $(FUZZ_HDRS) $(wildcard ci/*.h) tests/fuzz/fuzz.mk
	$(fuzz_link)

$(FUZZ_DIR)/fuzz_snapshot_devices: $(FUZZ_SRCS_fuzz_snapshot_devices) $(FUZZ_HDRS) snapshot/snapshot.h tests/fuzz/fuzz.mk
	$(fuzz_link)

$(FUZZ_DIR)/fuzz_snapshot: $(FUZZ_SRCS_fuzz_snapshot) $(FUZZ_HDRS) snapshot/snapshot.h tests/fuzz/fuzz.mk
	$(fuzz_link)

# Seed inputs (well-formed rings of each shape, snapshots from the real writer), written by a
# host program.
$(FUZZ_DIR)/mkseeds: tests/fuzz/mkseeds.c snapshot/file.c snapshot/crc32c.c vmm/crc32.c vmm/err.c $(FUZZ_HDRS) snapshot/snapshot.h tests/fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_CPPFLAGS) -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -DMICA_VERSION='"seed"' -Wno-format-truncation -O1 -o $@ $(filter %.c,$^) -lpthread

$(FUZZ_DIR)/seeds/.stamp: $(FUZZ_DIR)/mkseeds
	@rm -rf $(FUZZ_DIR)/seeds
	$(FUZZ_DIR)/mkseeds $(FUZZ_DIR)/seeds
	@# fuzz_snapshot_devices mutates sections it saves itself: a seed per section to start from.
	@mkdir -p $(FUZZ_DIR)/seeds/fuzz_snapshot_devices
	@for i in 0 1 2 3 4 5 6 7; do printf "\\00$$i\\000\\000" \
		>$(FUZZ_DIR)/seeds/fuzz_snapshot_devices/section-$$i; done
	@touch $@

fuzz-build: $(FUZZ_BINS) $(FUZZ_DIR)/seeds/.stamp

# Runs every target for $(1) seconds; stops at the first crash (libFuzzer exits non-zero).
define fuzz_run
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t; \
		echo "fuzz: $$t for $(1) s"; \
		$(FUZZ_DIR)/$$t -max_total_time=$(1) -max_len=16384 -timeout=10 -dict=tests/fuzz/virtq.dict -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_DIR)/crash-$$t- $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/seeds/$$t \
			2>$(FUZZ_DIR)/$$t.log || { tail -n 60 $(FUZZ_DIR)/$$t.log; exit 1; }; \
		grep -E '^#[0-9]+[[:space:]]+DONE|^Done' $(FUZZ_DIR)/$$t.log; \
	done
endef

fuzz: fuzz-build
	$(call fuzz_run,$(FUZZ_SECONDS))

fuzz-smoke: fuzz-build
	$(call fuzz_run,10)
