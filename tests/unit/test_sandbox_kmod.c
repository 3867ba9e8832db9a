/* Finding the guest kernel's modules (sandbox/kmod.h): the real set for build/linux's kernel,
 * and fake trees (a modules.dep in a temp dir) for the order, the built-ins and the errors. */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/kmod.h"
#include "tests/unit/test.h"

#define KERNEL "build/linux/vmlinuz"

static char tmp[64];

static int rm_one(const char *p, const struct stat *s, int flag, struct FTW *f)
{
	(void)s, (void)flag, (void)f;
	return remove(p);
}

static void tmp_make(void)
{
	strcpy(tmp, "/tmp/mica-test-kmod.XXXXXX");
	if (!mkdtemp(tmp))
		abort();
}

static void tmp_remove(void)
{
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes tmp/REL with mkdir -p of its directories. */
static void put(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	for (char *p = path + strlen(tmp) + 1; (p = strchr(p, '/')); p++) {
		*p = 0;
		mkdir(path, 0755);
		*p = '/';
	}
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f))
		abort();
}

static int pos(const struct kmod_set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->files[i].name, name))
			return (int)i;
	return -1;
}

static int count(const struct kmod_set *s, const char *name)
{
	int n = 0;

	for (size_t i = 0; i < s->n; i++)
		n += !strcmp(s->files[i].name, name);
	return n;
}

/* A minimal bzImage: the setup header's magic, and the version string kernel_version points
 * at (relative to 0x200). */
static void fake_bzimage(const char *rel, const char *version)
{
	uint8_t img[0x1000] = { 0 };
	uint16_t at = 0x400;
	char path[512];
	FILE *f;

	memcpy(img + 0x202, "HdrS", 4);
	img[0x1f1] = 7; /* setup_sects */
	memcpy(img + 0x20e, &at, 2);
	memcpy(img + 0x200 + at, version, strlen(version));
	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	f = fopen(path, "w");
	if (!f || fwrite(img, 1, sizeof(img), f) != sizeof(img) || fclose(f))
		abort();
}

/* ---- the real kernel ---- */

static void real_kernel_release(void)
{
	char release[KMOD_RELEASE_MAX], cmd[600];
	struct err e = { "" };

	if (access(KERNEL, R_OK))
		TEST_SKIP("no build/linux/vmlinuz yet (scripts/get-linux-guest fetches it)");
	CHECK_EQ(kmod_kernel_release(KERNEL, release, sizeof(release), &e), 0);
	printf("# release %s\n", release);
	CHECK(strlen(release) > 4 && strchr(release, '.') && !strchr(release, ' '));
	/* The package unpacked next to it has exactly this release's tree. */
	snprintf(cmd, sizeof(cmd), "ls -d build/linux/pkg/*/lib/modules/%s >/dev/null 2>&1",
		 release);
	CHECK(system(cmd) == 0);
}

static void real_kernel_modules(void)
{
	static const char *const want[] = { "virtio_ring.ko", "virtio.ko", "virtio_pci_modern_dev.ko",
		"virtio_pci_legacy_dev.ko", "virtio_pci.ko", "virtio_mmio.ko", "virtio_console.ko",
		"fuse.ko", "virtiofs.ko", "overlay.ko" };
	struct err e = { "" };
	struct kmod_set s;

	if (access(KERNEL, R_OK))
		TEST_SKIP("no build/linux/vmlinuz yet (scripts/get-linux-guest fetches it)");
	CHECK_EQ(kmod_find(KERNEL, NULL, NULL, &s, &e), 0);
	if (e.msg[0])
		printf("#   %s\n", e.msg);
	for (size_t i = 0; i < s.n; i++)
		printf("# %zu %s\n", i, s.files[i].name);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CHECK_EQ(count(&s, want[i]), 1);
	CHECK_EQ(s.n, sizeof(want) / sizeof(want[0]));
	/* Each module after what it needs (modules.dep of 6.1). */
	CHECK(pos(&s, "virtio_ring.ko") < pos(&s, "virtio.ko"));
	CHECK(pos(&s, "virtio.ko") < pos(&s, "virtio_pci.ko"));
	CHECK(pos(&s, "virtio_pci_modern_dev.ko") < pos(&s, "virtio_pci.ko"));
	CHECK(pos(&s, "virtio_pci_legacy_dev.ko") < pos(&s, "virtio_pci.ko"));
	CHECK(pos(&s, "virtio.ko") < pos(&s, "virtio_console.ko"));
	CHECK(pos(&s, "fuse.ko") < pos(&s, "virtiofs.ko"));
	CHECK(pos(&s, "virtio.ko") < pos(&s, "virtiofs.ko"));
	CHECK(s.dir && strstr(s.dir, "build/linux/pkg/"));
	for (size_t i = 0; i < s.n; i++)
		CHECK(access(s.files[i].path, R_OK) == 0);
	kmod_set_free(&s);
	CHECK(s.n == 0 && s.files == NULL);
}

/* ---- fake trees ---- */

#define DEP "kernel/a.ko: kernel/sub/b.ko kernel/c.ko\n" \
	    "kernel/sub/b.ko: kernel/c.ko\n" \
	    "kernel/c.ko:\n" \
	    "kernel/d-e.ko:\n" \
	    "kernel/z.ko.xz: kernel/c.ko\n" \
	    "kernel/loop1.ko: kernel/loop2.ko\n" \
	    "kernel/loop2.ko: kernel/loop1.ko\n" \
	    "kernel/gone.ko:\n" \
	    "kernel/needs-unlisted.ko: kernel/nowhere.ko\n"

static void fake_tree(const char *root)
{
	char rel[256];
	const char *files[] = { "a.ko", "sub/b.ko", "c.ko", "d-e.ko", "z.ko.xz", "loop1.ko",
				"loop2.ko", "needs-unlisted.ko" };

	snprintf(rel, sizeof(rel), "%s/modules.dep", root);
	put(rel, DEP);
	snprintf(rel, sizeof(rel), "%s/modules.builtin", root);
	put(rel, "kernel/fs/inside.ko\nkernel/drivers/also-inside.ko\n");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(rel, sizeof(rel), "%s/kernel/%s", root, files[i]);
		put(rel, "\x7f" "ELF");
	}
}

static void dependency_order(void)
{
	const char *names[] = { "a", "d_e", "inside", "also_inside", "c", "z", NULL };
	struct err e = { "" };
	struct kmod_set s = { 0 };
	char dir[128];

	tmp_make();
	fake_tree("9.9.9");
	snprintf(dir, sizeof(dir), "%s/9.9.9", tmp);
	CHECK_EQ(kmod_resolve(dir, names, &s, &e), 0);
	/* c, then b (needs c), then a; d-e by its name with '_'; the built-ins skipped; c and
	 * the compressed z (needs c) once each. */
	CHECK_EQ(s.n, 5);
	if (s.n == 5) {
		CHECK(!strcmp(s.files[0].name, "c.ko"));
		CHECK(!strcmp(s.files[1].name, "b.ko"));
		CHECK(!strcmp(s.files[2].name, "a.ko"));
		CHECK(!strcmp(s.files[3].name, "d-e.ko"));
		CHECK(!strcmp(s.files[4].name, "z.ko.xz"));
		CHECK(strstr(s.files[1].path, "/9.9.9/kernel/sub/b.ko") != NULL);
	}
	kmod_set_free(&s);
	tmp_remove();
}

static void resolve_errors(void)
{
	struct err e = { "" };
	struct kmod_set s = { 0 };
	char dir[128];

	tmp_make();
	fake_tree("r");
	snprintf(dir, sizeof(dir), "%s/r", tmp);

	CHECK_EQ(kmod_resolve(dir, (const char *[]){ "a", "nosuch", NULL }, &s, &e), -ENOENT);
	CHECK(strstr(e.msg, "nosuch") && strstr(e.msg, dir) && strstr(e.msg, "--modules"));
	CHECK(s.n == 0 && s.files == NULL);

	CHECK_EQ(kmod_resolve(dir, (const char *[]){ "gone", NULL }, &s, &e), -ENOENT);
	CHECK(strstr(e.msg, "kernel/gone.ko is missing"));

	CHECK_EQ(kmod_resolve(dir, (const char *[]){ "loop1", NULL }, &s, &e), -ELOOP);
	CHECK(strstr(e.msg, "cycle"));

	CHECK_EQ(kmod_resolve(dir, (const char *[]){ "needs_unlisted", NULL }, &s, &e), -ENOENT);
	CHECK(strstr(e.msg, "kernel/nowhere.ko"));

	snprintf(dir, sizeof(dir), "%s/none", tmp);
	CHECK_EQ(kmod_resolve(dir, NULL, &s, &e), -ENOENT);
	CHECK(strstr(e.msg, "modules.dep") && strstr(e.msg, "--modules"));
	tmp_remove();
}

/* Where kmod_find looks: --modules (either form), then the pkg tree next to the kernel. */
static void find_dirs(void)
{
	const char *names[] = { "a", NULL };
	char kernel[128], mods[128], want[128];
	struct err e = { "" };
	struct kmod_set s;

	tmp_make();
	snprintf(kernel, sizeof(kernel), "%s/k/vmlinuz", tmp);
	put("k/.keep", "");
	fake_bzimage("k/vmlinuz", "9.9.9-test (someone@example) #1 SMP");

	/* Nothing anywhere: the error lists the places and the option. */
	CHECK_EQ(kmod_find(kernel, NULL, names, &s, &e), -ENOENT);
	CHECK(strstr(e.msg, "/lib/modules/9.9.9-test") && strstr(e.msg, "/k/pkg/*/lib/modules/"
	      "9.9.9-test") && strstr(e.msg, "pass --modules DIR"));

	/* The unpacked package next to the kernel. */
	fake_tree("k/pkg/linux-image-x/lib/modules/9.9.9-test");
	CHECK_EQ(kmod_find(kernel, NULL, names, &s, &e), 0);
	CHECK(!strcmp(s.release, "9.9.9-test"));
	snprintf(want, sizeof(want), "%s/k/pkg/linux-image-x/lib/modules/9.9.9-test", tmp);
	CHECK(s.dir && !strcmp(s.dir, want));
	CHECK_EQ(s.n, 3);
	kmod_set_free(&s);

	/* --modules DIR holding modules.dep. */
	fake_tree("m/9.9.9-test");
	snprintf(mods, sizeof(mods), "%s/m/9.9.9-test", tmp);
	CHECK_EQ(kmod_find(kernel, mods, names, &s, &e), 0);
	CHECK(s.dir && !strcmp(s.dir, mods));
	kmod_set_free(&s);
	/* --modules DIR holding RELEASE/. */
	snprintf(mods, sizeof(mods), "%s/m", tmp);
	CHECK_EQ(kmod_find(kernel, mods, names, &s, &e), 0);
	CHECK(s.dir && strstr(s.dir, "/m/9.9.9-test"));
	kmod_set_free(&s);
	/* --modules DIR with neither: no fallback to the package. */
	snprintf(mods, sizeof(mods), "%s/k", tmp);
	CHECK_EQ(kmod_find(kernel, mods, names, &s, &e), -ENOENT);
	CHECK(strstr(e.msg, "--modules") && strstr(e.msg, "9.9.9-test/modules.dep"));

	/* Not a bzImage: only a --modules DIR with modules.dep can do. */
	put("k/notbz", "just text, no setup header, but long enough ........................");
	snprintf(kernel, sizeof(kernel), "%s/k/notbz", tmp);
	CHECK_EQ(kmod_find(kernel, NULL, names, &s, &e), -ENOEXEC);
	CHECK(strstr(e.msg, "release") && strstr(e.msg, "--modules"));
	snprintf(mods, sizeof(mods), "%s/m/9.9.9-test", tmp);
	CHECK_EQ(kmod_find(kernel, mods, names, &s, &e), 0);
	kmod_set_free(&s);
	tmp_remove();
}

static void release_parsing(void)
{
	uint8_t img[0x1000] = { 0 };
	uint16_t at = 0x300;
	char r[KMOD_RELEASE_MAX];

	CHECK_EQ(kmod_release_from_image(img, sizeof(img), r, sizeof(r)), -ENOEXEC); /* no HdrS */
	memcpy(img + 0x202, "HdrS", 4);
	CHECK_EQ(kmod_release_from_image(img, sizeof(img), r, sizeof(r)), -ENOEXEC); /* no pointer */
	memcpy(img + 0x20e, &at, 2);
	memcpy(img + 0x500, "6.1.0-57-cloud-amd64 (debian-kernel@lists.debian.org) #1", 57);
	CHECK_EQ(kmod_release_from_image(img, sizeof(img), r, sizeof(r)), 0);
	CHECK(!strcmp(r, "6.1.0-57-cloud-amd64"));
	CHECK_EQ(kmod_release_from_image(img, sizeof(img), r, 8), -ENOEXEC); /* too long for r */
	/* A release that would climb out of /lib/modules is not one. */
	memcpy(img + 0x500, "../../etc x", 11);
	CHECK_EQ(kmod_release_from_image(img, sizeof(img), r, sizeof(r)), -ENOEXEC);
	memcpy(img + 0x500, "6.1/evil x", 10);
	CHECK_EQ(kmod_release_from_image(img, sizeof(img), r, sizeof(r)), -ENOEXEC);
	/* A pointer past the file. */
	at = 0x2000;
	memcpy(img + 0x20e, &at, 2);
	CHECK_EQ(kmod_release_from_image(img, sizeof(img), r, sizeof(r)), -ENOEXEC);
	CHECK_EQ(kmod_release_from_image(img, 0x200, r, sizeof(r)), -ENOEXEC);
}

TEST_MAIN("sandbox-kmod", T(real_kernel_release), T(real_kernel_modules), T(dependency_order),
	  T(resolve_errors), T(find_dirs), T(release_parsing))
