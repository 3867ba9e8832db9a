/* Pseudo file systems: which mounts are never served. A node is on one when its mount (statx's
 * mount ID) has a pseudo type in /proc/self/mountinfo, read when the share is opened and again
 * when a mount ID not seen before turns up, or when statfs's f_type is a pseudo magic. Both are
 * needed: devtmpfs says TMPFS_MAGIC, and a kernel without STATX_MNT_ID has only f_type. */
#include <errno.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "hostfs/internal.h"

#ifndef CONFIGFS_MAGIC
#define CONFIGFS_MAGIC 0x62656570
#endif
#ifndef FUSECTL_SUPER_MAGIC
#define FUSECTL_SUPER_MAGIC 0x65735543
#endif
#ifndef MQUEUE_MAGIC
#define MQUEUE_MAGIC 0x19800202
#endif

static const char *const pseudo_types[] = {
	"proc", "sysfs", "devtmpfs", "devpts", "debugfs", "tracefs", "securityfs", "cgroup",
	"cgroup2", "pstore", "bpf", "configfs", "efivarfs", "fusectl", "binfmt_misc", "mqueue",
	"hugetlbfs", "selinuxfs", "autofs", "nsfs", "smackfs", "apparmorfs", "binder", "resctrl",
	"rpc_pipefs", "nfsd",
};

static const unsigned long pseudo_magics[] = {
	PROC_SUPER_MAGIC, SYSFS_MAGIC, DEVPTS_SUPER_MAGIC, DEBUGFS_MAGIC, TRACEFS_MAGIC,
	SECURITYFS_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, PSTOREFS_MAGIC, BPF_FS_MAGIC,
	CONFIGFS_MAGIC, EFIVARFS_MAGIC, FUSECTL_SUPER_MAGIC, BINFMTFS_MAGIC, MQUEUE_MAGIC,
	HUGETLBFS_MAGIC, SELINUX_MAGIC, AUTOFS_SUPER_MAGIC, NSFS_MAGIC, SMACK_MAGIC, AAFS_MAGIC,
	BINDERFS_SUPER_MAGIC, RDTGROUP_SUPER_MAGIC, USBDEVICE_SUPER_MAGIC,
};

static bool pseudo_type(const char *t, size_t len)
{
	for (size_t i = 0; i < sizeof(pseudo_types) / sizeof(pseudo_types[0]); i++)
		if (strlen(pseudo_types[i]) == len && !memcmp(pseudo_types[i], t, len))
			return true;
	return false;
}

static int cmp_mount(const void *a, const void *b)
{
	const struct hostfs_mount *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* The whole of /proc/self/mountinfo, NUL-terminated, malloc'ed. */
static char *read_mountinfo(struct hostfs *fs)
{
	size_t cap = 16384, len = 0;
	char *buf = malloc(cap);
	int fd = openat(fs->selffd, "mountinfo", O_RDONLY | O_CLOEXEC);

	if (!buf || fd < 0)
		goto fail;
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = 0;
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

int hostfs_mounts_load(struct hostfs *fs)
{
	char *text = read_mountinfo(fs), *line, *save = NULL;
	struct hostfs_mount *m;
	size_t lines = 0, n = 0;

	if (!text)
		return -EIO;
	for (const char *p = text; *p; p++)
		lines += *p == '\n';
	m = malloc((lines + 1) * sizeof(*m));
	if (!m) {
		free(text);
		return -ENOMEM;
	}
	/* "ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER" */
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *end, *sep = strstr(line, " - ");
		unsigned long long id = strtoull(line, &end, 10);

		if (end == line || !sep)
			continue;
		sep += 3;
		m[n].id = id;
		m[n].pseudo = pseudo_type(sep, strcspn(sep, " "));
		n++;
	}
	free(text);
	qsort(m, n, sizeof(*m), cmp_mount);
	free(fs->mounts);
	fs->mounts = m;
	fs->nmounts = n;
	return 0;
}

static const struct hostfs_mount *find_mount(const struct hostfs *fs, uint64_t id)
{
	struct hostfs_mount key = { .id = id };

	return bsearch(&key, fs->mounts, fs->nmounts, sizeof(key), cmp_mount);
}

bool hostfs_is_pseudo(struct hostfs *fs, int fd, uint64_t mnt_id)
{
	const struct hostfs_mount *m = NULL;
	struct statfs sf;

	if (mnt_id) {
		m = find_mount(fs, mnt_id);
		/* A mount made since the table was read. One the table still lacks after a
		 * reread (a detached mount) is not reread for again: f_type decides alone. */
		if (!m && mnt_id != fs->mnt_unlisted) {
			if (hostfs_mounts_load(fs) == 0)
				m = find_mount(fs, mnt_id);
			if (!m)
				fs->mnt_unlisted = mnt_id;
		}
		if (m && m->pseudo)
			return true;
	}
	if (fstatfs(fd, &sf) < 0)
		return true;     /* what cannot be told apart is not served */
	for (size_t i = 0; i < sizeof(pseudo_magics) / sizeof(pseudo_magics[0]); i++)
		if ((unsigned long)sf.f_type == pseudo_magics[i])
			return true;
	return false;
}
