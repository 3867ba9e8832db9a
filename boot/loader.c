/* Kernel files: mapping them, telling their kind, and loading the right way. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/boot.h"
#include "vmm/kvm.h"
#include "vmm/log.h"
#include "vmm/vm.h"

int boot_file_open(struct boot_file *f, const char *path, const char **why)
{
	struct stat st;
	int fd, err;
	void *p;

	memset(f, 0, sizeof(*f));
	f->path = path;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		*why = strerror(errno);
		return err;
	}
	if (fstat(fd, &st) < 0) {
		err = -errno;
		*why = strerror(errno);
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		close(fd);
		return -EINVAL;
	}
	if (st.st_size == 0) {
		*why = "the file is empty";
		close(fd);
		return -ENOEXEC;
	}
	/* Read, not mapped: one large read beats a page fault per 4 KiB of a file on a network
	 * or 9p file system, and the copy is unmapped as soon as the kernel is in guest RAM. */
	p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		close(fd);
		*why = strerror(-err);
		return err;
	}
	for (off_t done = 0; done < st.st_size;) {
		ssize_t n = read(fd, (uint8_t *)p + done, st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			*why = n < 0 ? strerror(errno) : "the file shrank while being read";
			munmap(p, st.st_size);
			close(fd);
			return err;
		}
		done += n;
	}
	close(fd);
	f->data = p;
	f->size = st.st_size;
	return 0;
}

void boot_file_close(struct boot_file *f)
{
	if (f->data)
		munmap((void *)f->data, f->size);
	f->data = NULL;
}

int boot_detect(const struct boot_file *kernel, enum kernel_kind *kind, const char **why)
{
	const char *elf_why = NULL, *bz_why = NULL;

	if (kernel->size >= 4 && memcmp(kernel->data, "\177ELF", 4) == 0) {
		if (elf_check(kernel, kind, &elf_why) == 0)
			return 0;
		*why = elf_why;
		return -ENOEXEC;
	}
	if (bzimage_check(kernel, &bz_why) == 0) {
		*kind = KERNEL_BZIMAGE;
		return 0;
	}
	*why = bz_why ? bz_why : "neither an ELF64 x86_64 kernel nor a Linux bzImage";
	return -ENOEXEC;
}

int boot_load_kernel(struct vm *vm, const struct boot_file *kernel, const struct boot_file *initrd,
		     struct boot_entry *entry, const char **why)
{
	enum kernel_kind kind;
	int err = boot_detect(kernel, &kind, why);

	if (err)
		return err;
	if ((kind == KERNEL_BZIMAGE || kind == KERNEL_VMLINUX) && kvm_is_pvm())
		pr_warn("/dev/kvm here is PVM's (kvm_pvm): it boots only PVM-aware Linux kernels, and "
			"an unmodified one hangs early; use scripts/with-kvm");
	memset(entry, 0, sizeof(*entry));
	switch (kind) {
	case KERNEL_ELF:
		if (initrd && initrd->data) {
			*why = "--initrd is only for Linux kernels (bzImage, vmlinux)";
			return -EINVAL;
		}
		err = elf_load(vm, kernel, entry, why);
		if (!err)
			err = fdt_build_bootinfo(vm, vm->cfg.cmdline ? vm->cfg.cmdline : "", why);
		return err;
	case KERNEL_PVH:
		return pvh_load(vm, kernel, initrd, vm->cfg.cmdline ? vm->cfg.cmdline : "", entry, why);
	case KERNEL_VMLINUX:
		return vmlinux_load(vm, kernel, initrd, vm->cfg.cmdline ? vm->cfg.cmdline : "", entry,
				    why);
	case KERNEL_BZIMAGE:
		break;
	}
	return bzimage_load(vm, kernel, initrd, vm->cfg.cmdline, entry, why);
}
