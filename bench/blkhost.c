/* blkhost: virtio-blk's device model on the host, without KVM, against the raw file I/O floor
 * (issue #5). One run of one workload in one mode; key=value lines on stdout.
 *
 *   blkhost --file PATH --op read|write --pattern seq|rand --bs BYTES --qd N
 *           --cache writeback|none --mode raw|device [--backend io_uring|threads]
 *           [--seconds S] [--count-syscalls]
 *
 * device: devices/virtio/blk.c + blk_io.c as mica links them, with simulated guest RAM and
 * the driver side of the split virtqueue (tests/unit/vring_driver.h). This process is both
 * the guest driver and mica's event-loop thread: the driver posts requests (header, one data
 * buffer, status; EVENT_IDX as Linux negotiates it) and kicks through the queue's kick eventfd
 * (what KVM's ioeventfd signals) only when avail_event asks for it; the loop runs epoll_wait
 * and the ready handlers as evloop_run() does; the device interrupts through an eventfd write
 * (what an irqfd costs mica). Whenever requests complete the driver posts as many new ones,
 * keeping qd in flight.
 * raw: the same requests on the same file straight from this process: pread/pwrite at qd 1;
 * at a deeper qd, io_uring kept qd deep (one io_uring_enter submits the refills and waits).
 * cache=none opens the file O_DIRECT in both modes (the device with its own cache=none).
 * Buffers live in the same (pre-faulted) guest RAM in both modes.
 *
 * Requests are issued for --seconds, then those in flight are completed; rates count them all.
 * Output: ops, bytes, wall_ns, cpu_ns (user+sys of every thread over the timed part),
 * mib_s, iops, cpu_ns_per_op; device mode also kicks, interrupts, batches (backend
 * submissions) and backend. --count-syscalls counts syscalls with perf tracepoint counters
 * (raw_syscalls/sys_enter and a few syscalls:sys_enter_*; needs tracefs and root) and prints
 * sys_*_per_op; the device's figures exclude the driver's kick writes. Counting slows every
 * syscall: use the timing of a run without it. Exit status 0 when every request succeeded. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/perf_event.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/virtio.h"
#include "tests/unit/vring_driver.h"
#include "vmm/log.h"
#include "vmm/util.h"
#include "vmm/evloop.h"
#include "vmm/memory.h"

#define QSIZE      256
#define MAX_QD     64
#define HDRS       0x200000ULL  /* request headers, 32 bytes apart */
#define STATUSES   0x210000ULL  /* status bytes, 1 apart */
#define DATA       0x400000ULL  /* data buffers, bs apart */
#define LOOP_WAIT_MS 10000      /* a device that stays silent this long is broken */

struct params {
	const char *file;
	bool write, rand, direct, device, threads, count;
	uint32_t bs;
	unsigned qd;
	double seconds;
};

struct result {
	uint64_t ops, wall_ns, cpu_ns;
	uint64_t kicks, irqs;
};

static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ULL +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ULL;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("blkhost: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ---- request offsets: the same sequence in both modes ---- */

struct offsets {
	bool rand;
	uint64_t next, blocks, bs, state;
};

static uint64_t next_offset(struct offsets *o)
{
	uint64_t b;

	if (o->rand) {
		o->state ^= o->state << 13; /* xorshift64 */
		o->state ^= o->state >> 7;
		o->state ^= o->state << 17;
		b = o->state % o->blocks;
	} else {
		b = o->next;
		o->next = (o->next + 1) % o->blocks;
	}
	return b * o->bs;
}

/* ---- syscall counters ---- */

static const char *const tracepoints[] = {
	"raw_syscalls/sys_enter", "syscalls/sys_enter_io_uring_enter",
	"syscalls/sys_enter_epoll_wait", "syscalls/sys_enter_read", "syscalls/sys_enter_write",
	"syscalls/sys_enter_pread64", "syscalls/sys_enter_pwrite64", "syscalls/sys_enter_futex",
};
#define NTP (sizeof(tracepoints) / sizeof(tracepoints[0]))
static const char *const tp_keys[NTP] = {
	"sys_all", "sys_io_uring_enter", "sys_epoll_wait", "sys_read", "sys_write", "sys_pread64",
	"sys_pwrite64", "sys_futex",
};

static int tp_open(const char *name)
{
	static const char *const roots[] = { "/sys/kernel/tracing/events",
					     "/sys/kernel/debug/tracing/events" };

	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		char path[256];
		unsigned long long id;
		FILE *f;
		int ok;

		snprintf(path, sizeof(path), "%s/%s/id", roots[i], name);
		f = fopen(path, "r");
		if (!f)
			continue;
		ok = fscanf(f, "%llu", &id) == 1;
		fclose(f);
		if (ok) {
			struct perf_event_attr a = {
				.type = PERF_TYPE_TRACEPOINT, .size = sizeof(a), .config = id,
				.inherit = 1, /* the backend's worker threads too */
			};

			return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1,
					    PERF_FLAG_FD_CLOEXEC);
		}
	}
	return -1;
}

static uint64_t tp_read(int fd)
{
	uint64_t v = 0;

	if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* ---- raw: the floor ---- */

static int open_file(const struct params *p)
{
	int fd = open(p->file, (p->write ? O_RDWR : O_RDONLY) | (p->direct ? O_DIRECT : 0));

	if (fd < 0)
		die("cannot open %s: %s", p->file, strerror(errno));
	return fd;
}

static void raw_sync(const struct params *p, int fd, uint8_t *buf, struct offsets *o,
		     struct result *r)
{
	uint64_t end = now_ns() + (uint64_t)(p->seconds * 1e9);

	while (now_ns() < end) {
		uint64_t off = next_offset(o);
		ssize_t n = p->write ? pwrite(fd, buf, p->bs, (off_t)off)
				     : pread(fd, buf, p->bs, (off_t)off);

		if (n != (ssize_t)p->bs)
			die("%s at %" PRIu64 ": %s", p->write ? "pwrite" : "pread", off,
			    n < 0 ? strerror(errno) : "short transfer");
		r->ops++;
	}
}

static void raw_uring_prep(struct io_uring *ring, const struct params *p, int fd, uint8_t *buf,
			   unsigned slot, struct offsets *o)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	uint8_t *b = buf + (uint64_t)slot * p->bs;

	if (p->write)
		io_uring_prep_write(sqe, fd, b, p->bs, next_offset(o));
	else
		io_uring_prep_read(sqe, fd, b, p->bs, next_offset(o));
	io_uring_sqe_set_data64(sqe, slot);
}

static void raw_uring(const struct params *p, int fd, uint8_t *buf, struct offsets *o,
		      struct result *r)
{
	struct io_uring ring;
	unsigned inflight = 0;
	uint64_t end;
	int err = io_uring_queue_init(p->qd, &ring, 0);

	if (err < 0)
		die("io_uring_queue_init: %s", strerror(-err));
	end = now_ns() + (uint64_t)(p->seconds * 1e9);
	for (unsigned i = 0; i < p->qd; i++, inflight++)
		raw_uring_prep(&ring, p, fd, buf, i, o);
	while (inflight) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		bool more = now_ns() < end;

		err = io_uring_submit_and_wait(&ring, 1);
		if (err < 0 && err != -EINTR)
			die("io_uring_submit_and_wait: %s", strerror(-err));
		io_uring_for_each_cqe(&ring, head, cqe) {
			if (cqe->res != (int)p->bs)
				die("io_uring %s: %s", p->write ? "write" : "read",
				    cqe->res < 0 ? strerror(-cqe->res) : "short transfer");
			seen++;
			r->ops++;
			if (more)
				raw_uring_prep(&ring, p, fd, buf, (unsigned)cqe->user_data, o);
			else
				inflight--;
		}
		io_uring_cq_advance(&ring, seen);
	}
	io_uring_queue_exit(&ring);
}

/* ---- device: the driver side and the loop ---- */

/* Guest RAM and the event loop: what a VM gives a device model. */
static struct {
	struct guest_mem mem;
	struct evloop loop;
	struct virtio_env env;
} vm;
static int kick_fd = -1;  /* queue 0's kick eventfd, which KVM would signal */
static struct drv q;
static int irqfd = -1;
static uint64_t irqs;

static void bench_interrupt(struct virtio_dev *dev, int queue)
{
	uint64_t one = 1;

	(void)dev;
	(void)queue;
	irqs++;
	if (write(irqfd, &one, sizeof(one)) < 0)
		die("irqfd write: %s", strerror(errno));
}

static const struct virtio_transport_ops bench_transport = { .interrupt = bench_interrupt };

static struct virtio_dev *device_create(const struct params *p)
{
	uint64_t f = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_BLK_F_SIZE_MAX) |
		     (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
		     (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_RING_F_EVENT_IDX);
	uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	char spec[PATH_MAX + 32];
	struct err e;
	struct blk_opts o;
	struct virtio_dev *dev;

	if (p->threads)
		setenv("MICA_BLK_NO_URING", "1", 1);
	else
		unsetenv("MICA_BLK_NO_URING");
	snprintf(spec, sizeof(spec), "%s,cache=%s", p->file, p->direct ? "none" : "writeback");
	if (blk_parse_opts(spec, &o, &e) < 0)
		die("--file: %s", e.msg);
	o.num_queues = 1;
	if (virtio_blk_create(&vm.env, &o, &dev, &e))
		die("virtio_blk_create: %s", e.msg);
	if (strcmp(virtio_blk_backend(dev), p->threads ? "threads" : "io_uring"))
		die("the device runs the %s backend", virtio_blk_backend(dev));
	dev->transport = &bench_transport;
	drv_set_status(dev, s);
	drv_set_features_word(dev, 0, (uint32_t)f);
	drv_set_features_word(dev, 1, (uint32_t)(f >> 32));
	drv_set_status(dev, s |= VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(drv_get_status(dev) & VIRTIO_CONFIG_S_FEATURES_OK))
		die("the device refused the features");
	drv_attach_queue(dev, &q, &vm.mem, 0, QSIZE);
	drv_set_status(dev, s | VIRTIO_CONFIG_S_DRIVER_OK);
	kick_fd = virtio_kick_fd(dev, 0);
	irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (irqfd < 0)
		die("eventfd: %s", strerror(errno));
	return dev;
}

/* Slot i: descriptors 3i..3i+2 (header, data, status), its header, status byte and buffer. */
static void post(const struct params *p, unsigned slot, uint64_t off)
{
	uint16_t d = (uint16_t)(3 * slot);
	uint64_t hdr = HDRS + 32ULL * slot, st = STATUSES + slot;
	struct virtio_blk_outhdr h = {
		.type = p->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, .sector = off / 512,
	};

	memcpy(g2h(&vm.mem, hdr, sizeof(h)), &h, sizeof(h));
	*(uint8_t *)g2h(&vm.mem, st, 1) = 0xff;
	drv_desc(&q, d, hdr, sizeof(h), VRING_DESC_F_NEXT, (uint16_t)(d + 1));
	drv_desc(&q, (uint16_t)(d + 1), DATA + (uint64_t)slot * p->bs, p->bs,
		 (p->write ? 0 : VRING_DESC_F_WRITE) | VRING_DESC_F_NEXT, (uint16_t)(d + 2));
	drv_desc(&q, (uint16_t)(d + 2), st, 1, VRING_DESC_F_WRITE, 0);
	drv_post(&q, d);
}

/* After posting avail entries [old, q.avail_idx): the kick Linux would send (EVENT_IDX). */
static void maybe_kick(uint16_t old, struct result *r)
{
	uint64_t one = 1;

	barrier_full();
	if (!vring_need_event(__atomic_load_n(drv_avail_event(&q), __ATOMIC_ACQUIRE), q.avail_idx,
			      old))
		return;
	r->kicks++;
	if (write(kick_fd, &one, sizeof(one)) < 0)
		die("kick: %s", strerror(errno));
}

/* One iteration of evloop_run(): wait, run the ready handlers. */
static void loop_once(void)
{
	struct epoll_event evs[32];
	int n = epoll_wait(vm.loop.epfd, evs, 32, LOOP_WAIT_MS);

	if (n < 0 && errno != EINTR)
		die("epoll_wait: %s", strerror(errno));
	if (n == 0)
		die("the device completed nothing for %d ms", LOOP_WAIT_MS);
	for (int i = 0; i < n; i++) {
		struct ev_handler *h = evs[i].data.ptr;

		h->fn(h, evs[i].events);
	}
}

static void device_run(const struct params *p, struct offsets *o, struct result *r)
{
	uint16_t last_used = 0, old;
	unsigned inflight = 0, freed[MAX_QD];
	uint64_t end = now_ns() + (uint64_t)(p->seconds * 1e9);

	old = q.avail_idx;
	for (unsigned i = 0; i < p->qd; i++, inflight++)
		post(p, i, next_offset(o));
	maybe_kick(old, r);
	while (inflight) {
		unsigned nfreed = 0;

		loop_once();
		while (last_used != __atomic_load_n(&q.used->idx, __ATOMIC_ACQUIRE)) {
			struct vring_used_elem e = q.used->ring[last_used % QSIZE];
			unsigned slot = e.id / 3;

			if (e.id % 3 || slot >= p->qd)
				die("used entry for descriptor %u", e.id);
			if (*(uint8_t *)g2h(&vm.mem, STATUSES + slot, 1) != VIRTIO_BLK_S_OK)
				die("request failed: status %u",
				    *(uint8_t *)g2h(&vm.mem, STATUSES + slot, 1));
			freed[nfreed++] = slot;
			last_used++;
			r->ops++;
		}
		*drv_used_event(&q) = last_used; /* an interrupt for every completion, as Linux */
		if (!nfreed)
			continue;
		if (now_ns() >= end) {
			inflight -= nfreed;
			continue;
		}
		old = q.avail_idx;
		for (unsigned i = 0; i < nfreed; i++)
			post(p, freed[i], next_offset(o));
		maybe_kick(old, r);
	}
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr, "usage: blkhost --file PATH --op read|write --pattern seq|rand --bs BYTES "
			"--qd N --cache writeback|none --mode raw|device "
			"[--backend io_uring|threads] [--seconds S] [--count-syscalls]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct params *p)
{
	*p = (struct params){ .bs = 4096, .qd = 1, .seconds = 1 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--count-syscalls")) {
			p->count = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--file"))
			p->file = v;
		else if (!strcmp(a, "--op") && (!strcmp(v, "read") || !strcmp(v, "write")))
			p->write = !strcmp(v, "write");
		else if (!strcmp(a, "--pattern") && (!strcmp(v, "seq") || !strcmp(v, "rand")))
			p->rand = !strcmp(v, "rand");
		else if (!strcmp(a, "--bs"))
			p->bs = (uint32_t)strtoul(v, NULL, 0);
		else if (!strcmp(a, "--qd"))
			p->qd = (unsigned)strtoul(v, NULL, 0);
		else if (!strcmp(a, "--cache") && (!strcmp(v, "writeback") || !strcmp(v, "none")))
			p->direct = !strcmp(v, "none");
		else if (!strcmp(a, "--mode") && (!strcmp(v, "raw") || !strcmp(v, "device")))
			p->device = !strcmp(v, "device");
		else if (!strcmp(a, "--backend") && (!strcmp(v, "io_uring") || !strcmp(v, "threads")))
			p->threads = !strcmp(v, "threads");
		else if (!strcmp(a, "--seconds"))
			p->seconds = strtod(v, NULL);
		else
			usage();
	}
	if (!p->file || !p->bs || p->bs % 4096 || p->bs > (1U << 20) || !p->qd ||
	    p->qd > MAX_QD || !(p->seconds > 0))
		usage();
}

int main(int argc, char **argv)
{
	struct params p;
	struct result r = { 0 };
	struct offsets o = { .state = 0x9e3779b97f4a7c15ULL };
	struct virtio_dev *dev = NULL;
	struct stat st;
	int tp[NTP], fd = -1;
	uint64_t tp0[NTP], t0, c0;
	uint8_t *buf;

	parse(argc, argv, &p);
	if (stat(p.file, &st) < 0)
		die("%s: %s", p.file, strerror(errno));
	o.rand = p.rand;
	o.bs = p.bs;
	o.blocks = (uint64_t)st.st_size / p.bs;
	if (o.blocks < p.qd)
		die("%s is too small for %u requests of %u bytes", p.file, p.qd, p.bs);

	/* Counters first, so that they inherit into every thread created afterwards. */
	for (size_t i = 0; i < NTP; i++)
		tp[i] = p.count ? tp_open(tracepoints[i]) : -1;
	if (p.count && tp[0] < 0)
		die("cannot count syscalls (perf tracepoint %s: %s; mount tracefs, run as root)",
		    tracepoints[0], strerror(errno));

	log_set_level(LOG_WARN);
	if (guest_mem_init(&vm.mem, DATA + (uint64_t)p.qd * p.bs + 2 * MiB) < 0 ||
	    evloop_init(&vm.loop) < 0)
		die("cannot set up guest RAM and the event loop");
	vm.env = (struct virtio_env){ .mem = &vm.mem, .loop = &vm.loop };
	buf = g2h(&vm.mem, DATA, (uint64_t)p.qd * p.bs);
	for (uint64_t i = 0; i < (uint64_t)p.qd * p.bs; i++)
		buf[i] = (uint8_t)(i * 7 + (i >> 12)); /* faulted in, and not zero */
	if (p.device)
		dev = device_create(&p);
	else
		fd = open_file(&p);

	for (size_t i = 0; i < NTP; i++)
		tp0[i] = tp_read(tp[i]);
	c0 = cpu_ns();
	t0 = now_ns();
	if (p.device)
		device_run(&p, &o, &r);
	else if (p.qd == 1)
		raw_sync(&p, fd, buf, &o, &r);
	else
		raw_uring(&p, fd, buf, &o, &r);
	r.wall_ns = now_ns() - t0;
	r.cpu_ns = cpu_ns() - c0;
	r.irqs = irqs;

	printf("mode=%s\nbackend=%s\nops=%" PRIu64 "\nbytes=%" PRIu64 "\nwall_ns=%" PRIu64
	       "\ncpu_ns=%" PRIu64 "\n", p.device ? "device" : "raw",
	       p.device ? virtio_blk_backend(dev) : p.qd == 1 ? "sync" : "io_uring", r.ops,
	       r.ops * p.bs, r.wall_ns, r.cpu_ns);
	printf("mib_s=%.2f\niops=%.0f\ncpu_ns_per_op=%.0f\n",
	       (double)r.ops * p.bs / 1048576.0 / ((double)r.wall_ns / 1e9),
	       (double)r.ops / ((double)r.wall_ns / 1e9), (double)r.cpu_ns / (double)r.ops);
	if (p.device) {
		const struct virtio_blk_stats *s = virtio_blk_stats(dev);

		printf("kicks=%" PRIu64 "\ninterrupts=%" PRIu64 "\nbatches=%lu\n", r.kicks, r.irqs,
		       atomic_load(&s->batches));
		printf("kicks_per_op=%.3f\ninterrupts_per_op=%.3f\nbatches_per_op=%.3f\n",
		       (double)r.kicks / (double)r.ops, (double)r.irqs / (double)r.ops,
		       (double)atomic_load(&s->batches) / (double)r.ops);
		if (atomic_load(&s->io_errors))
			die("%lu I/O errors", atomic_load(&s->io_errors));
	}
	for (size_t i = 0; i < NTP; i++) {
		uint64_t n;

		if (tp[i] < 0)
			continue;
		n = tp_read(tp[i]) - tp0[i];
		/* The driver's kicks are the guest's (KVM's ioeventfd), not the device's. */
		if (p.device && (i == 0 || !strcmp(tp_keys[i], "sys_write")))
			n -= r.kicks;
		printf("%s_per_op=%.3f\n", tp_keys[i], (double)n / (double)r.ops);
	}
	if (dev)
		virtio_dev_free(dev);
	return 0;
}
