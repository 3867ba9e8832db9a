#include "vmm/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int out_file_open(struct out_file *f, const char *path, const char *opt, struct err *e)
{
	/* O_NONBLOCK: a FIFO nobody reads is refused (ENXIO) instead of waited on. */
	int flags = O_WRONLY | O_CLOEXEC | O_NONBLOCK;

	f->path = path;
	f->created = false;
	f->fd = -1;
	if (!path)
		return 0;
	f->fd = open(path, flags | O_CREAT | O_EXCL, 0644);
	if (f->fd >= 0)
		f->created = true;
	else if (errno == EEXIST)
		f->fd = open(path, flags);
	if (f->fd < 0)
		return err_set(e, -errno, "%s %s: cannot write there: %s", opt, path,
			       strerror(errno));
	if (fcntl(f->fd, F_SETFL, 0) < 0) {
		int err = err_set(e, -errno, "%s %s: %s", opt, path, strerror(errno));

		out_file_abandon(f);
		return err;
	}
	return 0;
}

/* A regular file loses its old content now; a pipe or a terminal cannot be truncated. */
static void empty(struct out_file *f)
{
	if (ftruncate(f->fd, 0) == 0)
		lseek(f->fd, 0, SEEK_SET);
}

void out_file_keep(struct out_file *f)
{
	if (f->fd < 0)
		return;
	empty(f);
	f->created = false;
}

FILE *out_file_stream(struct out_file *f)
{
	FILE *s;

	if (f->fd < 0)
		return NULL;
	empty(f);
	s = fdopen(f->fd, "w");
	if (s)
		f->fd = -1; /* the stream owns it */
	return s;
}

int out_file_commit(struct out_file *f, FILE *stream)
{
	int err = 0;

	if (!stream)
		err = -ENOMEM; /* fdopen() failed */
	else if (fclose(stream))
		err = -errno;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	f->created = false;
	return err;
}

void out_file_abandon(struct out_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->created)
		unlink(f->path);
	f->fd = -1;
	f->created = false;
}
