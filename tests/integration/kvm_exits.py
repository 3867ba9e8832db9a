#!/usr/bin/env python3
"""kvm_exits.py JSON[=pio]...: checks --stats-json's "kvm_exits" (KVM's own exit counters) against
mica's userspace exits and the virtio devices' notifies; one line per file:
  PATH ok SUMMARY | PATH bad: WHY SUMMARY | PATH skip: WHY
- every exit that reached mica was an exit first: total >= pio + mmio + other;
- each notify mica served through an ioeventfd (notifies - notifies_userspace) was an exit KVM
  handled without mica: total - (pio + mmio + other) >= those notifies, and there were some;
- JSON=pio (the guest notified through port I/O: virtio-pci's legacy interface): io_exits counts
  every port I/O exit, so io_exits - pio covers those notifies too;
- halt_exits, io_exits, irq_exits... each count some of the exits: none exceeds total.
A kernel without binary statistics (kvm_exits null, Linux < 5.14) is a skip."""
import json
import sys


def check(path, pio_notifies):
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        return "bad: unreadable (%s)" % e
    k, u = d.get("kvm_exits", "missing"), d.get("userspace_exits", {})
    if k is None:
        return "skip: no KVM binary statistics on this kernel"
    if not isinstance(k, dict) or not isinstance(k.get("total"), int):
        return "bad: kvm_exits has no total: %r" % (k,)
    if not isinstance(d.get("kvm_vcpu_stats"), dict):
        return "bad: kvm_vcpu_stats missing"
    total = k["total"]
    userspace = u.get("pio", 0) + u.get("mmio", 0) + u.get("other", 0)
    kernel_notifies = sum(dev["notifies"] - dev["notifies_userspace"]
                          for dev in d.get("devices", []) if "notifies_userspace" in dev)
    summary = "total %d, userspace %d, notifies in the kernel %d; %s" % (
        total, userspace, kernel_notifies,
        " ".join("%s %d" % (n, v) for n, v in k.items() if n != "total"))
    if total < userspace:
        return "bad: fewer KVM exits than userspace exits: " + summary
    if kernel_notifies <= 0:
        return "bad: no notify was served in the kernel: " + summary
    if total - userspace < kernel_notifies:
        return "bad: KVM exits without userspace exits do not cover the notifies: " + summary
    if pio_notifies and k.get("io_exits", 0) - u.get("pio", 0) < kernel_notifies:
        return "bad: port I/O exits without userspace exits do not cover the notifies: " + summary
    over = [n for n, v in k.items() if not isinstance(v, int) or v > total]
    if over:
        return "bad: counters above the total (%s): %s" % (" ".join(over), summary)
    return "ok " + summary


for arg in sys.argv[1:]:
    p, _, kind = arg.partition("=")
    print("%s %s" % (p, check(p, kind == "pio")))
