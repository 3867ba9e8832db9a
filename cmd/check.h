/* `mica check`: whether this host can run mica's VMs and how fast, in a few lines (issue #13,
 * "mica for CI systems"): /dev/kvm and which KVM it is (hardware, nested, PVM), the KVM
 * capabilities mica needs and those it uses when present, what a VM exit costs here, io_uring,
 * Landlock, seccomp and transparent huge pages, each with what to do where something is missing.
 *
 * Exit status: 0 when mica can run VMs here, 1 when it cannot (a line says "no" and the last
 * line names the first such blocker), 2 for a usage error, 125 when the --json file cannot be
 * written. */
#ifndef MICA_CMD_CHECK_H
#define MICA_CMD_CHECK_H

/* argv[0] is "check". Returns the exit status. */
int check_main(int argc, char **argv);

#endif
