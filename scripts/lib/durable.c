/*
 * durable: both halves of the kill -9 durability test (tests/integration/guest_durability.sh).
 *
 * In the guest (the get-linux-guest initramfs runs it for mica.durable=MODE,SEED):
 *   durable MODE SEED [DEVICE]
 * writes numbered 4 KiB blocks to DEVICE (default /dev/vda) with O_DIRECT: block N at byte
 * N * 4096, filled with pattern(SEED, N), so that nothing an earlier run left can pass. Two
 * worker processes take batches of BATCH blocks in turn, each batch's writes in flight at once
 * (Linux AIO), so that there are writes in flight and completed writes not yet flushed when
 * the host kills mica. Once a block is durable by the device's promise it prints one line,
 * "durable N HASH" (HASH ties the line to SEED and N: a line cut short by the kill, or mangled
 * by a console message, does not parse). MODE:
 *   sync   writes, fdatasync (a virtio FLUSH in writeback), then prints the batch;
 *   write  prints each block as soon as its write completes: for devices without a write cache
 *          (writethrough), where a completed write is already a durability promise;
 *   wce    turns the device's write cache off first (/sys/block/vda/cache_type = "write
 *          through", which virtio_blk does through CONFIG_WCE), then as write.
 * MODE+dz: every fourth block (N % 4 == 3) is zeroed instead of written, in turn by BLKZEROOUT
 * (write-zeroes), fallocate(PUNCH_HOLE) (write-zeroes that may unmap) and BLKDISCARD; the host
 * prefilled those blocks with non-zero bytes. Printed as "zeroed N HASH" once durable, or for a
 * discard "discarded N HASH": a discard promises no zeros (mica punches a hole where the image's
 * file system can, and says UNSUPP where it cannot, which Linux's BLKDISCARD ignores), so the
 * checker takes zeros or the prefill there, and counts the latter apart.
 * Lines starting "durable:" tell the setup (cache type, queue limits), the end of the disk, or
 * an error. At the end of the disk it prints "durable: done" and waits (for the host's kill).
 *
 * On the host:
 *   durable check IMAGE OUTPUT SEED
 * checks every complete, well-formed line of OUTPUT (mica's stdout) against IMAGE and prints
 * "checked C lost L kept K" (and each lost block; K: discarded blocks that kept the prefill);
 * exit status 0 when nothing was lost and at least one block was checked, 1 otherwise, 2 on bad
 * usage or unreadable files.
 *
 * Static (glibc) so that it runs in the initramfs:  gcc -O2 -static -s -o durable durable.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCK    4096
#define BATCH    8
#define WORKERS  2
#define PREFILL  0x5a  /* the byte the host fills the image with */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void pattern(uint64_t seed, uint64_t n, void *buf)
{
	uint64_t *w = buf, k = mix(seed ^ mix(n));

	for (size_t i = 0; i < BLOCK / 8; i++)
		w[i] = mix(k + i);
}

enum kind { WRITTEN, ZEROED, DISCARDED };
static const char *const kind_name[] = { "durable", "zeroed", "discarded" };

/* What ties a printed line to its run and block. */
static uint32_t line_hash(uint64_t seed, uint64_t n, enum kind kind)
{
	return (uint32_t)mix(mix(seed + 1) ^ (n * 4 + (uint64_t)kind));
}

/* One line, one write(2): lines of the two workers never interleave on the tty. */
static void say(const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (len > (int)sizeof(line) - 1)
		len = sizeof(line) - 1;
	if (write(STDOUT_FILENO, line, (size_t)len) < 0)
		_exit(3);
}

static void __attribute__((noreturn)) die(const char *what)
{
	say("durable: error: %s: %s\n", what, strerror(errno));
	_exit(1);
}

/* ---- the guest side ---- */

struct run {
	int fd;
	uint64_t seed, nblocks;
	int sync, dz;
};

static void announce(uint64_t seed, uint64_t n, enum kind kind)
{
	say("%s %llu %08x\n", kind_name[kind], (unsigned long long)n, line_hash(seed, n, kind));
}

/* How block n is zeroed: by the method its number picks. */
static enum kind zero_kind(uint64_t n)
{
	return (n / 4) % 3 == 2 ? DISCARDED : ZEROED;
}

static void zero_block(struct run *r, uint64_t n)
{
	uint64_t range[2] = { n * BLOCK, BLOCK };
	int how = (int)((n / 4) % 3);

	if (how == 0 && ioctl(r->fd, BLKZEROOUT, range) < 0)
		die("BLKZEROOUT");
	if (how == 1 && fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)range[0], (off_t)range[1]) < 0)
		die("fallocate(PUNCH_HOLE)");
	if (how == 2 && ioctl(r->fd, BLKDISCARD, range) < 0)
		die("BLKDISCARD");
}

static int is_zero_block(const struct run *r, uint64_t n)
{
	return r->dz && n % 4 == 3;
}

static void worker(struct run *r, int w)
{
	aio_context_t ctx = 0;
	struct iocb cbs[BATCH], *ptrs[BATCH];
	struct io_event ev[BATCH];
	uint64_t nums[BATCH];
	void *bufs;

	if (syscall(SYS_io_setup, BATCH, &ctx) < 0)
		die("io_setup");
	if (posix_memalign(&bufs, BLOCK, BATCH * BLOCK))
		die("posix_memalign");
	for (uint64_t first = (uint64_t)w * BATCH; first + BATCH <= r->nblocks;
	     first += WORKERS * BATCH) {
		int nw = 0, done = 0;

		for (uint64_t n = first; n < first + BATCH; n++) {
			uint8_t *buf = (uint8_t *)bufs + nw * BLOCK;

			if (is_zero_block(r, n))
				continue;
			pattern(r->seed, n, buf);
			memset(&cbs[nw], 0, sizeof(cbs[nw]));
			cbs[nw].aio_fildes = (uint32_t)r->fd;
			cbs[nw].aio_lio_opcode = IOCB_CMD_PWRITE;
			cbs[nw].aio_buf = (uint64_t)(uintptr_t)buf;
			cbs[nw].aio_nbytes = BLOCK;
			cbs[nw].aio_offset = (int64_t)(n * BLOCK);
			cbs[nw].aio_data = n;
			ptrs[nw] = &cbs[nw];
			nums[nw] = n;
			nw++;
		}
		if (nw && syscall(SYS_io_submit, ctx, (long)nw, ptrs) != nw)
			die("io_submit");
		/* The batch's zeroing runs while its writes are in flight. */
		for (uint64_t n = first; n < first + BATCH; n++) {
			if (!is_zero_block(r, n))
				continue;
			zero_block(r, n);
			if (!r->sync)
				announce(r->seed, n, zero_kind(n));
		}
		while (done < nw) {
			long got = syscall(SYS_io_getevents, ctx, 1L, (long)(nw - done), ev, NULL);

			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0)
				die("io_getevents");
			for (long i = 0; i < got; i++) {
				if (ev[i].res != BLOCK) {
					errno = ev[i].res < 0 ? (int)-ev[i].res : EIO;
					die("write");
				}
				if (!r->sync)
					announce(r->seed, ev[i].data, WRITTEN);
			}
			done += (int)got;
		}
		if (!r->sync)
			continue;
		if (fdatasync(r->fd) < 0)
			die("fdatasync");
		for (int i = 0; i < nw; i++)
			announce(r->seed, nums[i], WRITTEN);
		for (uint64_t n = first; n < first + BATCH; n++)
			if (is_zero_block(r, n))
				announce(r->seed, n, zero_kind(n));
	}
	say("durable: worker %d reached the end of the disk\n", w);
}

/* The first line of a sysfs file, without its newline (empty if unreadable). */
static void read_sysfs(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)len, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

static int guest(const char *mode, const char *seed_s, const char *dev)
{
	const char *name = strrchr(dev, '/') ? strrchr(dev, '/') + 1 : dev;
	struct run r = { 0 };
	char path[128], cache[64], dmax[32], zmax[32];
	uint64_t bytes;
	int wce = 0, status = 0;

	r.dz = strstr(mode, "+dz") != NULL;
	if (!strncmp(mode, "sync", 4))
		r.sync = 1;
	else if (!strncmp(mode, "wce", 3))
		wce = 1;
	else if (strncmp(mode, "write", 5))
		return say("durable: error: unknown mode '%s'\n", mode), 2;
	r.seed = strtoull(seed_s, NULL, 0);

	snprintf(path, sizeof(path), "/sys/block/%s/cache_type", name);
	read_sysfs(path, cache, sizeof(cache));
	if (wce) {
		char after[64];
		FILE *f = fopen(path, "w");

		if (!f || fputs("write through", f) < 0 || fclose(f))
			die("setting cache_type");
		read_sysfs(path, after, sizeof(after));
		say("durable: cache_type %s -> %s\n", cache, after);
	} else {
		say("durable: cache_type %s\n", cache);
	}
	if (r.dz) {
		snprintf(path, sizeof(path), "/sys/block/%s/queue/discard_max_bytes", name);
		read_sysfs(path, dmax, sizeof(dmax));
		snprintf(path, sizeof(path), "/sys/block/%s/queue/write_zeroes_max_bytes", name);
		read_sysfs(path, zmax, sizeof(zmax));
		say("durable: discard_max_bytes %s write_zeroes_max_bytes %s\n", dmax, zmax);
	}

	r.fd = open(dev, O_RDWR | O_DIRECT);
	if (r.fd < 0)
		die(dev);
	if (ioctl(r.fd, BLKGETSIZE64, &bytes) < 0) {
		off_t end = lseek(r.fd, 0, SEEK_END); /* a file: trying it out on a host */

		if (end < 0)
			die("sizing the device");
		bytes = (uint64_t)end;
	}
	r.nblocks = bytes / BLOCK;
	say("durable: start, %llu blocks, mode %s\n", (unsigned long long)r.nblocks, mode);
	for (int w = 0; w < WORKERS; w++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork");
		if (pid == 0) {
			worker(&r, w);
			_exit(0);
		}
	}
	for (int w = 0; w < WORKERS; w++) {
		int st;

		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			status = 1;
	}
	say("durable: done\n");
	if (status)
		return status;
	for (;;)
		pause(); /* the host kills the VM: a run that ended must not look like a kill */
}

/* ---- the host side ---- */

static int check(const char *image, const char *output, const char *seed_s)
{
	uint64_t seed = strtoull(seed_s, NULL, 0), checked = 0, lost = 0, kept = 0;
	static uint8_t want[BLOCK], got[BLOCK];
	static const uint8_t zeros[BLOCK];
	char line[256];
	FILE *out = fopen(output, "r");
	int fd = open(image, O_RDONLY);

	if (!out || fd < 0) {
		fprintf(stderr, "durable check: cannot open %s: %s\n", !out ? output : image,
			strerror(errno));
		return 2;
	}
	while (fgets(line, sizeof(line), out)) {
		char kind_s[16];
		unsigned long long n;
		unsigned hash;
		int end = 0, kind = -1;
		size_t len = strlen(line);
		ssize_t rd;

		if (!len || line[len - 1] != '\n')
			continue; /* cut short by the kill (or too long to be ours) */
		line[--len] = '\0';
		if (len && line[len - 1] == '\r')
			line[--len] = '\0';
		if (sscanf(line, "%15s %llu %8x%n", kind_s, &n, &hash, &end) != 3 ||
		    (size_t)end != len)
			continue;
		for (int k = WRITTEN; k <= DISCARDED; k++)
			if (!strcmp(kind_s, kind_name[k]))
				kind = k;
		if (kind < 0 || hash != line_hash(seed, n, kind))
			continue;
		checked++;
		if (kind == WRITTEN)
			pattern(seed, n, want);
		else
			memset(want, 0, sizeof(want));
		rd = n <= (uint64_t)INT64_MAX / BLOCK ? pread(fd, got, BLOCK, (off_t)(n * BLOCK)) : -1;
		if (rd == BLOCK && !memcmp(got, want, BLOCK))
			continue;
		memset(want, PREFILL, sizeof(want));
		if (kind == DISCARDED && rd == BLOCK && !memcmp(got, want, BLOCK)) {
			kept++;
			continue;
		}
		lost++;
		if (lost <= 10)
			printf("lost %s block %llu: the image holds %s\n", kind_name[kind], n,
			       rd != BLOCK ? "nothing (beyond its end)" :
			       !memcmp(got, zeros, BLOCK) ? "zeros" :
			       !memcmp(got, want, BLOCK) ? "the prefill" :
			       "other bytes");
	}
	fclose(out);
	close(fd);
	printf("checked %llu lost %llu kept %llu\n", (unsigned long long)checked,
	       (unsigned long long)lost, (unsigned long long)kept);
	return checked && !lost ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "check"))
		return check(argv[2], argv[3], argv[4]);
	if (argc == 3 || argc == 4)
		return guest(argv[1], argv[2], argc == 4 ? argv[3] : "/dev/vda");
	fprintf(stderr, "usage: durable sync|write|wce[+dz] SEED [DEVICE]\n"
			"       durable check IMAGE OUTPUT SEED\n");
	return 2;
}
