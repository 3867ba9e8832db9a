/* A file mica writes at exit (--stats-json, `mica bench exits --json`), opened before the VM
 * starts and kept open to the end: a path mica cannot write is reported before any work is
 * done, and nothing needs opening at exit, when the confinement no longer allows it.
 *
 * An existing file is opened without truncating it, so a run that fails before it has results
 * leaves it as it was; a file this run created is removed again by out_file_abandon(). The
 * content replaces the old one only at out_file_commit(). */
#ifndef MICA_OUTFILE_H
#define MICA_OUTFILE_H

#include <stdbool.h>
#include <stdio.h>

#include "vmm/err.h"

struct out_file {
	const char *path;   /* NULL: no file asked for; the functions below then do nothing */
	int fd;
	bool created;       /* this run created the file (abandon removes it) */
};

/* Opens (or creates) path for writing. opt names the option in the message ("--stats-json").
 * Returns 0, or -errno with e saying what is wrong; f is then closed. */
int out_file_open(struct out_file *f, const char *path, const char *opt, struct err *e);
/* Empties the file and returns a stream on it for the content; out_file_commit() closes it. */
FILE *out_file_stream(struct out_file *f);
/* Empties the file now and keeps it whatever follows (a log written while the run goes on,
 * through f->fd; out_file_abandon() then only closes it). */
void out_file_keep(struct out_file *f);
/* Flushes and closes the stream from out_file_stream(). Returns 0 or -errno. */
int out_file_commit(struct out_file *f, FILE *stream);
/* The run ends without results: closes the file, and removes it if this run created it. */
void out_file_abandon(struct out_file *f);

#endif
