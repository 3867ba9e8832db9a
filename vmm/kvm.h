/* Opening /dev/kvm and checking that it can run a mica VM. */
#ifndef MICA_KVM_H
#define MICA_KVM_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/err.h"

struct kvm_caps {
	int max_vcpus;
	int ioeventfd_no_length; /* KVM_CAP_IOEVENTFD_NO_LENGTH: zero-length (fast MMIO) ioeventfds */
	int immediate_exit;
};

struct kvm_cap_name {
	int cap;
	const char *name;
};
/* The capabilities mica cannot run without, ending with { 0, NULL } (kvm_open() checks each;
 * mica check lists them). */
extern const struct kvm_cap_name kvm_required_caps[];

/* Opens /dev/kvm and checks the API version and the capabilities mica needs. Returns 0, or
 * -errno with e saying what is wrong and what to do. */
int kvm_open(int *kvm_fd, struct kvm_caps *caps, struct err *e);
/* Whether /dev/kvm is PVM's (module kvm_pvm, found inside some cloud VMs): a KVM without
 * hardware virtualisation that runs simple guests but only PVM-aware Linux kernels. */
bool kvm_is_pvm(void);

#endif
