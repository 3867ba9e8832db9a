# shellcheck shell=bash
# kvm_usable: whether /dev/kvm here runs what this project runs, Linux guests included, so that
# no scripts/with-kvm VM is needed. Not PVM's /dev/kvm (module kvm_pvm, offered inside some
# cloud VMs, this project's development machines among them): it runs the freestanding test
# guest but only PVM-aware Linux kernels; Debian's hangs in early boot under it (QEMU's too).
# Sourced by scripts/with-kvm and scripts/bench.
kvm_usable() { [[ -r /dev/kvm && -w /dev/kvm && ! -d /sys/module/kvm_pvm ]]; }
