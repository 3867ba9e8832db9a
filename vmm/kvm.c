#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* vm_create() and vmm/irq.c use the last two without asking KVM again
 * (KVM_SET_IDENTITY_MAP_ADDR; KVM_SET_GSI_ROUTING for virtio-pci's MSI-X). */
const struct kvm_cap_name kvm_required_caps[] = {
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
	{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR" },
	{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
	{ 0, NULL },
};

int kvm_open(int *kvm_fd, struct kvm_caps *caps, struct err *e)
{
	const struct kvm_cap_name *required = kvm_required_caps;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return err_set(e, -errno, "/dev/kvm does not exist: load kvm_intel or kvm_amd "
				       "(modprobe kvm_amd), enable virtualization in the firmware, or "
				       "run mica under scripts/with-kvm");
		if (errno == EACCES || errno == EPERM)
			return err_set(e, -errno, "no permission to open /dev/kvm: add your user to "
				       "group kvm (usermod -aG kvm $USER, then log in again) or run "
				       "as root");
		return err_set(e, -errno, "cannot open /dev/kvm: %s", strerror(errno));
	}
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		close(fd);
		return err_set(e, -ENOTSUP, "/dev/kvm speaks an unexpected KVM API version (mica "
			       "needs 12): update the host kernel");
	}
	for (size_t i = 0; required[i].name; i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, required[i].cap) <= 0) {
			close(fd);
			return err_set(e, -ENOTSUP, "the host's KVM lacks %s, which mica needs: use "
				       "a newer host kernel", required[i].name);
		}
	}
	memset(caps, 0, sizeof(*caps));
	caps->max_vcpus = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (caps->max_vcpus <= 0)
		caps->max_vcpus = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (caps->max_vcpus <= 0)
		caps->max_vcpus = 4;
	caps->ioeventfd_no_length = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_NO_LENGTH) > 0;
	caps->immediate_exit = 1;
	*kvm_fd = fd;
	return 0;
}

bool kvm_is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}
