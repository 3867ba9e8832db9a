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

int boot_file_open(struct boot_file *f, const char *path, struct err *e)
{
	struct stat st;
	int fd, err;
	void *p;

	memset(f, 0, sizeof(*f));
	f->path = path;
	/* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever,
	 * before the check below could refuse it; on a regular file the flag changes nothing. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return err_set(e, -errno, "%s", strerror(errno));
	if (fstat(fd, &st) < 0) {
		err = err_set(e, -errno, "%s", strerror(errno));
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode) || st.st_size == 0) {
		close(fd);
		return err_set(e, S_ISREG(st.st_mode) ? -ENOEXEC : -EINVAL, "%s",
			       S_ISREG(st.st_mode) ? "the file is empty" : "not a regular file");
	}
	/* Read, not mapped: one large read beats a page fault per 4 KiB of a file on a network
	 * or 9p file system, and the copy is unmapped as soon as the kernel is in guest RAM. */
	p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		err = err_set(e, -errno, "%s", strerror(errno));
		close(fd);
		return err;
	}
	for (off_t done = 0; done < st.st_size;) {
		ssize_t n = read(fd, (uint8_t *)p + done, st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = err_set(e, n < 0 ? -errno : -EIO, "%s",
				      n < 0 ? strerror(errno) : "the file shrank while being read");
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

int boot_detect(const struct boot_file *kernel, enum kernel_kind *kind, struct err *e)
{
	if (kernel->size >= 4 && memcmp(kernel->data, "\177ELF", 4) == 0)
		return elf_check(kernel, kind, e);
	if (bzimage_check(kernel, e))
		return -ENOEXEC;
	*kind = KERNEL_BZIMAGE;
	return 0;
}

int boot_load_kernel(struct vm *vm, const struct boot_config *bc, const struct boot_file *kernel,
		     const struct boot_file *initrd, struct boot_entry *entry, struct err *e)
{
	enum kernel_kind kind;
	int err = boot_detect(kernel, &kind, e);

	if (err)
		return err;
	if ((kind == KERNEL_BZIMAGE || kind == KERNEL_VMLINUX) && kvm_is_pvm())
		pr_warn("/dev/kvm here is PVM's (kvm_pvm): it boots only PVM-aware Linux kernels, "
			"and "
			"an unmodified one hangs early; use scripts/with-kvm");
	memset(entry, 0, sizeof(*entry));
	switch (kind) {
	case KERNEL_ELF:
		if (initrd && initrd->data)
			return err_set(e, -EINVAL, "--initrd is only for Linux kernels (bzImage, "
				       "vmlinux)");
		err = elf_load(vm, kernel, entry, e);
		if (!err)
			err = fdt_build_bootinfo(vm, bc, e);
		return err;
	case KERNEL_PVH:
		return pvh_load(vm, kernel, initrd, bc, entry, e);
	case KERNEL_VMLINUX:
		return vmlinux_load(vm, kernel, initrd, bc, entry, e);
	case KERNEL_BZIMAGE:
		break;
	}
	return bzimage_load(vm, kernel, initrd, bc, entry, e);
}
