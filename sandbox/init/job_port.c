/* The job, read from the host's port SANDBOX_PORT_JOB (sandbox/job.h): its bytes, then the end
 * of the host's input. Read only after SANDBOX_MILESTONE_READY: a warm sandbox's snapshot,
 * taken there, holds nothing of any job, and the mica that restores it sends its own. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "sandbox/init/init.h"

#define CHUNK (64u << 10)

void read_job(struct sandbox_job *j)
{
	int fd = open_port_wait(SANDBOX_PORT_JOB, O_RDONLY);
	size_t len = 0, cap = 0;
	uint8_t *buf = NULL;
	ssize_t n;
	int err;

	for (;;) {
		if (len == cap) {
			uint8_t *nb;

			if (cap > JOB_MAX_BYTES)
				die(EFBIG, "reading the job from the port " SANDBOX_PORT_JOB);
			cap += CHUNK;
			nb = realloc(buf, cap);
			if (!nb)
				die(ENOMEM, "reading the job from the port " SANDBOX_PORT_JOB);
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(errno, "reading the job from the port " SANDBOX_PORT_JOB);
		if (n == 0)
			break; /* the host's end of input: the whole job is here */
		len += (size_t)n;
	}
	close(fd);
	if ((err = job_decode(buf, len, j)))
		die(-err, "decoding the job (%zu bytes from the port " SANDBOX_PORT_JOB "; a mica "
		    "of another version?)", len);
	free(buf);
	verbose = j->flags & JOB_VERBOSE;
}
