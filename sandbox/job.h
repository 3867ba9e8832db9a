/* The job of `mica sandbox`: what the guest's init (sandbox/init/) needs to run the caller's
 * command as the caller would have run it on the host.
 *
 * The host fills a struct sandbox_job, job_encode() turns it into bytes that mica feeds to the
 * guest on the virtio-console port SANDBOX_PORT_JOB, ending them with the port's end of input
 * (PORT_OPEN 0); the init reads them to that end, only after SANDBOX_MILESTONE_READY
 * (sandbox/milestones.h), and decodes them with job_decode(). Nothing of the job is in the
 * initramfs, so a guest snapshotted at that milestone can run any job. This one file is
 * compiled into both mica and the static init.
 *
 * Wire format, version 1 (all integers little-endian):
 *     "MJOB" u32 version u32 flags
 *     u32 uid  u32 gid  u32 umask  u32 ngroups  ngroups * u32 group
 *     u8 stdin-mode  u8 stdout-mode  u8 stderr-mode  u8 0  u16 rows  u16 cols
 *     str cwd  str root-tag  str hostname
 *     u32 argc  argc * str     u32 envc  envc * str     u32 nrw  nrw * (str tag, str path)
 * where str is u32 length + that many bytes (no NUL inside, none after). The record ends
 * exactly where the buffer does. The decoder takes its input as untrusted: every length and
 * count is checked against what is left, nothing is read past the end, and anything out of
 * place (unknown version, flag or mode, a NUL inside a string, a relative cwd or share path,
 * trailing bytes) is refused with -EINVAL. */
#ifndef MICA_SANDBOX_JOB_H
#define MICA_SANDBOX_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_MAGIC   "MJOB"
#define JOB_VERSION 1

/* The names both sides agree on (the host's virtio-fs and virtio-console devices, the init). */
#define SANDBOX_ROOT_TAG   "mica-root"  /* the host's /, read-only */
#define SANDBOX_RW_TAG_FMT "mica-rw%u"  /* the Nth --rw share (0, 1, ...) */
#define SANDBOX_PORT_STDIN  "mica.stdin"
#define SANDBOX_PORT_STDOUT "mica.stdout"
#define SANDBOX_PORT_STDERR "mica.stderr"
#define SANDBOX_PORT_JOB    "mica.job"  /* the encoded job, then the end of input */
#define SANDBOX_TTY "/dev/hvc0"        /* the virtio console's console port */

/* Limits the decoder enforces (and the encoder, so the host fails first). */
#define JOB_MAX_BYTES  (16u << 20) /* the whole record */
#define JOB_MAX_GROUPS 65536       /* NGROUPS_MAX */
#define JOB_MAX_SHARES 64

/* How the init connects one of the command's standard streams. */
enum job_stdio {
	/* The virtio-console port named mica.stdin / mica.stdout / mica.stderr (found through
	 * /sys/class/virtio-ports/vportNpM/name, opened as /dev/vportNpM): a plain byte stream, for
	 * a host stream that is a pipe or a file. */
	JOB_STDIO_PORT = 0,
	/* /dev/hvc0, the console port, as the command's controlling terminal (rows x cols): for a
	 * host stream that is a terminal. */
	JOB_STDIO_TTY = 1,
};

#define JOB_VERBOSE 0x1u /* flags: the init says what it does, step by step, on stderr */

struct job_share {
	char *tag;  /* the virtio-fs tag, e.g. "mica-rw0" */
	char *path; /* absolute: where it is mounted, the same path as on the host */
};

/* On the host, the pointers are the caller's (job_encode only reads them); from job_decode,
 * everything is allocated and job_free() releases it. */
struct sandbox_job {
	char **argv;        /* argc strings and a NULL; argc 0: an interactive shell ($SHELL -i) */
	uint32_t argc;
	char **envp;        /* envc "NAME=value" strings and a NULL: the command's whole environment */
	uint32_t envc;
	char *cwd;          /* absolute */
	uint32_t uid, gid;  /* the command's; 0 stays root */
	uint32_t *groups;   /* supplementary groups */
	uint32_t ngroups;
	uint32_t umask;     /* 0 to 0777 */
	uint8_t stdio[3];   /* enum job_stdio for stdin, stdout, stderr */
	uint16_t rows, cols; /* the terminal's size for JOB_STDIO_TTY (0: leave the default) */
	char *root_tag;     /* the read-only share of the host's / (SANDBOX_ROOT_TAG) */
	char *hostname;     /* "" keeps the kernel's */
	struct job_share *rw; /* writable shares, mounted over the read-only view */
	uint32_t nrw;
	uint32_t flags;     /* JOB_VERBOSE */
};

/* Encodes j into a new malloc'd buffer (*buf, *len; the caller frees it). Returns 0, or
 * -EINVAL if j breaks a rule the decoder would refuse it for, -ENOMEM. */
int job_encode(const struct sandbox_job *j, uint8_t **buf, size_t *len);

/* Decodes buf into j (all zero first; job_free() it even after a failure). Returns 0, or
 * -EINVAL for a record that is truncated, corrupt or of another version, -ENOMEM. */
int job_decode(const uint8_t *buf, size_t len, struct sandbox_job *j);

/* Frees what job_decode allocated and zeroes j. */
void job_free(struct sandbox_job *j);

#endif
