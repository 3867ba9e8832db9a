/* The job's wire format (sandbox/job.h): what the host encodes, the init decodes the same; a
 * truncated, corrupt or out-of-range record is refused, never read past its end. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox/job.h"
#include "tests/unit/test.h"

static char *argv_[] = { "make", "-j2", "all", NULL };
static char *envp_[] = { "PATH=/usr/bin:/bin", "HOME=/home/u", "EMPTY=", NULL };
static uint32_t groups_[] = { 24, 27, 1000 };
static struct job_share rw_[] = { { "mica-rw0", "/home/u/src" }, { "mica-rw1", "/tmp/out" } };

static struct sandbox_job full_job(void)
{
	return (struct sandbox_job){
		.argv = argv_, .argc = 3, .envp = envp_, .envc = 3, .cwd = "/home/u/src",
		.uid = 1000, .gid = 1001, .groups = groups_, .ngroups = 3, .umask = 022,
		.stdio = { JOB_STDIO_TTY, JOB_STDIO_PORT, JOB_STDIO_TTY }, .rows = 50, .cols = 132,
		.root_tag = SANDBOX_ROOT_TAG, .hostname = "box", .rw = rw_, .nrw = 2,
		.flags = JOB_VERBOSE,
	};
}

/* Decodes from an exact-size heap copy, so a read past the end is an ASan error under SAN=1. */
static int decode_copy(const uint8_t *buf, size_t len, struct sandbox_job *j)
{
	uint8_t *copy = malloc(len ? len : 1);
	int err;

	memcpy(copy, buf, len);
	err = job_decode(copy, len, j);
	free(copy);
	return err;
}

static void round_trip(void)
{
	struct sandbox_job in = full_job(), out;
	uint8_t *buf;
	size_t len;

	CHECK_EQ(job_encode(&in, &buf, &len), 0);
	CHECK(len > 12 && !memcmp(buf, JOB_MAGIC, 4));
	CHECK_EQ(decode_copy(buf, len, &out), 0);
	CHECK_EQ(out.argc, 3);
	for (int i = 0; i < 3; i++)
		CHECK(out.argv && !strcmp(out.argv[i], argv_[i]));
	CHECK(out.argv && out.argv[3] == NULL);
	CHECK_EQ(out.envc, 3);
	for (int i = 0; i < 3; i++)
		CHECK(out.envp && !strcmp(out.envp[i], envp_[i]));
	CHECK(out.envp && out.envp[3] == NULL);
	CHECK(out.cwd && !strcmp(out.cwd, "/home/u/src"));
	CHECK_EQ(out.uid, 1000);
	CHECK_EQ(out.gid, 1001);
	CHECK_EQ(out.ngroups, 3);
	CHECK(out.groups && !memcmp(out.groups, groups_, sizeof(groups_)));
	CHECK_EQ(out.umask, 022);
	CHECK_EQ(out.stdio[0], JOB_STDIO_TTY);
	CHECK_EQ(out.stdio[1], JOB_STDIO_PORT);
	CHECK_EQ(out.stdio[2], JOB_STDIO_TTY);
	CHECK_EQ(out.rows, 50);
	CHECK_EQ(out.cols, 132);
	CHECK(out.root_tag && !strcmp(out.root_tag, "mica-root"));
	CHECK(out.hostname && !strcmp(out.hostname, "box"));
	CHECK_EQ(out.nrw, 2);
	for (int i = 0; i < 2 && out.rw; i++)
		CHECK(!strcmp(out.rw[i].tag, rw_[i].tag) && !strcmp(out.rw[i].path, rw_[i].path));
	CHECK_EQ(out.flags, JOB_VERBOSE);
	job_free(&out);
	CHECK(out.argv == NULL && out.cwd == NULL);
	free(buf);
}

/* No command (an interactive shell), no environment, groups or shares. */
static void round_trip_empty(void)
{
	struct sandbox_job in = { .cwd = "/", .root_tag = "mica-root", .hostname = "" }, out;
	uint8_t *buf;
	size_t len;

	CHECK_EQ(job_encode(&in, &buf, &len), 0);
	CHECK_EQ(decode_copy(buf, len, &out), 0);
	CHECK_EQ(out.argc, 0);
	CHECK(out.argv && out.argv[0] == NULL);
	CHECK_EQ(out.envc, 0);
	CHECK(out.envp && out.envp[0] == NULL);
	CHECK_EQ(out.ngroups, 0);
	CHECK_EQ(out.nrw, 0);
	CHECK(out.hostname && out.hostname[0] == 0);
	CHECK(out.cwd && !strcmp(out.cwd, "/"));
	job_free(&out);
	free(buf);
}

/* Every proper prefix of a valid record is refused. */
static void truncated_rejected(void)
{
	struct sandbox_job in = full_job(), out;
	uint8_t *buf;
	size_t len;
	int accepted = 0;

	CHECK_EQ(job_encode(&in, &buf, &len), 0);
	for (size_t n = 0; n < len; n++) {
		if (decode_copy(buf, n, &out) != -EINVAL)
			accepted++;
		job_free(&out);
	}
	CHECK_EQ(accepted, 0);
	free(buf);
}

/* Offsets in full_job()'s record. */
#define OFF_VERSION 4
#define OFF_FLAGS   8
#define OFF_UMASK   20
#define OFF_NGROUPS 24
#define OFF_STDIO   (28 + 3 * 4)
#define OFF_CWD     (OFF_STDIO + 8)

static int decode_patched(size_t off, const void *bytes, size_t n)
{
	struct sandbox_job in = full_job(), out;
	uint8_t *buf;
	size_t len;
	int err;

	if (job_encode(&in, &buf, &len))
		return 1;
	memcpy(buf + off, bytes, n);
	err = decode_copy(buf, len, &out);
	job_free(&out);
	free(buf);
	return err;
}

static void corrupt_rejected(void)
{
	uint32_t big = 0xffffffffu, two = 2, one = 1, m = 01000;
	uint8_t mode = 2, pad = 1;
	struct sandbox_job in = full_job(), out;
	uint8_t *buf, *longer;
	size_t len;

	CHECK_EQ(decode_patched(0, "MJOC", 4), -EINVAL);            /* magic */
	CHECK_EQ(decode_patched(OFF_VERSION, &two, 4), -EINVAL);    /* a later version */
	CHECK_EQ(decode_patched(OFF_FLAGS, &two, 4), -EINVAL);      /* an unknown flag */
	CHECK_EQ(decode_patched(OFF_UMASK, &m, 4), -EINVAL);        /* umask beyond 0777 */
	CHECK_EQ(decode_patched(OFF_NGROUPS, &big, 4), -EINVAL);    /* a count past the end */
	CHECK_EQ(decode_patched(OFF_NGROUPS, &one, 4), -EINVAL);    /* groups eat the modes */
	CHECK_EQ(decode_patched(OFF_STDIO + 1, &mode, 1), -EINVAL); /* an unknown stream mode */
	CHECK_EQ(decode_patched(OFF_STDIO + 3, &pad, 1), -EINVAL);  /* padding must be 0 */
	CHECK_EQ(decode_patched(OFF_CWD, &big, 4), -EINVAL);        /* a string past the end */
	CHECK_EQ(decode_patched(OFF_CWD + 4, "h", 1), -EINVAL);     /* cwd "hom..." is relative */
	CHECK_EQ(decode_patched(OFF_CWD + 6, "", 1), -EINVAL);      /* a NUL inside a string */
	CHECK_EQ(decode_patched(OFF_CWD, &(uint32_t){ 0 }, 4), -EINVAL); /* the rest misparsed */

	/* One byte more than the record: refused, not ignored. */
	CHECK_EQ(job_encode(&in, &buf, &len), 0);
	longer = calloc(1, len + 1);
	memcpy(longer, buf, len);
	CHECK_EQ(decode_copy(longer, len + 1, &out), -EINVAL);
	job_free(&out);
	free(longer);
	free(buf);
}

/* The host gets the decoder's refusals first. */
static void encode_refuses_what_decode_would(void)
{
	struct job_share bad_share[] = { { "mica-rw0", "relative/path" } };
	struct job_share long_tag[] = { { "a-tag-longer-than-36-bytes-is-refused", "/x" } };
	struct sandbox_job j;
	uint8_t *buf = (uint8_t *)1;
	size_t len = 1;

	j = full_job();
	j.cwd = "relative";
	CHECK_EQ(job_encode(&j, &buf, &len), -EINVAL);
	CHECK(buf == NULL && len == 0);
	j = full_job();
	j.root_tag = "";
	CHECK_EQ(job_encode(&j, &buf, &len), -EINVAL);
	j = full_job();
	j.rw = bad_share;
	j.nrw = 1;
	CHECK_EQ(job_encode(&j, &buf, &len), -EINVAL);
	j.rw = long_tag;
	CHECK_EQ(job_encode(&j, &buf, &len), -EINVAL);
	j = full_job();
	j.stdio[2] = 2;
	CHECK_EQ(job_encode(&j, &buf, &len), -EINVAL);
	j = full_job();
	j.hostname = NULL;
	CHECK_EQ(job_encode(&j, &buf, &len), -EINVAL);
	j = full_job();
	j.ngroups = JOB_MAX_GROUPS + 1;
	CHECK_EQ(job_encode(&j, &buf, &len), -EINVAL);
}

/* Random corruption: every result is a refusal or a job that obeys the rules; nothing is read
 * out of bounds (SAN=1) and nothing leaks. */
static void random_corruption(void)
{
	struct sandbox_job in = full_job(), out;
	uint32_t seed = 12345;
	uint8_t *buf, *copy;
	size_t len;
	int ok = 0, bad = 0;

	CHECK_EQ(job_encode(&in, &buf, &len), 0);
	copy = malloc(len);
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(copy, buf, len);
		for (int k = 0; k < 1 + iter % 4; k++) {
			seed = seed * 1103515245u + 12345u;
			copy[(seed >> 8) % len] ^= (uint8_t)(1u << ((seed >> 4) % 8));
		}
		seed = seed * 1103515245u + 12345u;
		if (decode_copy(copy, len - (seed >> 16) % 3, &out) == 0) {
			ok++;
			if (out.cwd[0] != '/' || out.stdio[0] > 1 || out.stdio[1] > 1 ||
			    out.stdio[2] > 1 || out.umask > 0777 || out.argv[out.argc] != NULL)
				bad++;
		}
		job_free(&out);
	}
	printf("# %d of 20000 corrupted records still decoded (flips inside strings)\n", ok);
	CHECK_EQ(bad, 0);
	free(copy);
	free(buf);
}

TEST_MAIN("sandbox-job", T(round_trip), T(round_trip_empty), T(truncated_rejected),
	  T(corrupt_rejected), T(encode_refuses_what_decode_would), T(random_corruption))
