/* Loading the modules the initramfs carries, in the order the host resolved (sandbox/kmod.h).
 * They are loaded before the job is read (a warm sandbox's snapshot has them loaded), so
 * whether to say so is known only afterwards: note_modules() says it then. */
#include <errno.h>
#include <fcntl.h>
#include <linux/module.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/init/init.h"

#define LIST "/mica/modules"
#define DIR  "/lib/modules/"

/* The list read from LIST, each name NUL-terminated, kept for note_modules. */
static char *loaded;
static size_t loaded_len;

static bool compressed(const char *name)
{
	size_t n = strlen(name);

	return (n > 3 && !strcmp(name + n - 3, ".xz")) || (n > 4 && !strcmp(name + n - 4, ".zst")) ||
	       (n > 3 && !strcmp(name + n - 3, ".gz"));
}

static void load(const char *name)
{
	char path[256];
	int fd, flags = compressed(name) ? MODULE_INIT_COMPRESSED_FILE : 0;

	if (snprintf(path, sizeof(path), DIR "%s", name) >= (int)sizeof(path))
		die(ENAMETOOLONG, "loading kernel module %s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(errno, "loading kernel module %s", name);
	/* EEXIST: already there (loaded, or built in after all). */
	if (syscall(SYS_finit_module, fd, "", flags) < 0 && errno != EEXIST) {
		if (flags)
			die(errno, "loading kernel module %s (compressed: this kernel may not "
			    "decompress modules; give uncompressed .ko files with --modules)", name);
		die(errno, "loading kernel module %s", name);
	}
	close(fd);
}

void load_modules(void)
{
	char *buf, *line, *next;
	size_t len;
	int err;

	if ((err = read_file(LIST, JOB_MAX_BYTES, (void **)&buf, &len)))
		die(-err, "reading " LIST);
	for (line = buf; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		else
			next = line + strlen(line);
		if (*line)
			load(line);
	}
	loaded = buf;
	loaded_len = len;
}

void note_modules(void)
{
	for (size_t i = 0; i < loaded_len; i += strlen(loaded + i) + 1)
		if (loaded[i])
			note("loaded kernel module %s", loaded + i);
	free(loaded);
	loaded = NULL;
	loaded_len = 0;
}
