/* libFuzzer target: the virtio device models (rng, console, blk, net, balloon) through the real
 * virtio core (status machine, feature negotiation, queue enable/disable, pop/push/notify,
 * DEVICE_NEEDS_RESET, reset), with a fake transport that counts interrupts. Guest RAM contents
 * come from the input as in fuzz_virtq.c; the queues' rings are packed from gpa 0, queue after
 * queue. Each model's own operations and checks are in fuzz_dev_*.c (rng and console here).
 * Build and run with `make fuzz`.
 *
 * Header:
 *   [0]      bit 0: the driver acks every feature the device offers (else the model's
 *            choice); bit 1 INDIRECT_DESC; bit 2 EVENT_IDX; bit 3 a legacy transport;
 *            bits 4-7: queue size 1 << (n % 9)
 *   [1]      bit 0 set: the driver also acks feature bit ([1] >> 1) % 64 (maybe not offered)
 *   [2]      bit 0: "tail" layout: the data ends at the end of the low region and the rings
 *            are packed from FUZZ_TAIL_BASE, so buffers can end right at the end of RAM
 *            (a device writing one byte too many then hits AddressSanitizer's redzone)
 *   [3]      bits 0-2: the device, n % 5: rng, console, blk, net, balloon; bits 3-7: the
 *            model's options (see its file; the console's below)
 *   [4..15]  operations, cycled (see run_op)
 *
 * Checks beyond the sanitizers: a guest violation always leaves DEVICE_NEEDS_RESET set; once
 * it is set nothing is completed, no queue interrupt is raised and the flag stays until a
 * reset (asynchronous completions, delivered in a step of their own, included); the device
 * writes guest RAM only into writable buffers it holds and used rings, and pushes only chains
 * it holds (fuzz_track.c); receive() never claims more than it was given; and each model's
 * own (fuzz_dev_*.c). */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/virtio/devices.h"
#include "tests/fuzz/fuzz_dev.h"
#include "vmm/log.h"
#include "vmm/outq.h"

#define MAX_OPS 48

static struct evloop loop;
static struct virtio_env env;
static bool loop_ready;
static unsigned queue_irqs, config_irqs;
static uint64_t used_gpa[VIRTIO_MAX_QUEUES], avail_gpa[VIRTIO_MAX_QUEUES];
static uint64_t ring_base;
static bool was_reset;                  /* in the current step */
static unsigned long violations_at_reset;

/* virtio-blk allocates about 1 MiB of request slots per device, so per input: a smaller
 * quarantine than AddressSanitizer's 256 MiB keeps the run's memory modest. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=32";
}

static void fake_interrupt(struct virtio_dev *dev, int queue)
{
	FUZZ_ASSERT(queue >= -1 && queue < dev->ops->num_queues);
	if (queue < 0)
		config_irqs++;
	else
		queue_irqs++;
}

static const struct virtio_transport_ops fake_transport = { .interrupt = fake_interrupt };

/* ---- rng and console ---- */

static struct virtio_dev *rng_create(const struct virtio_env *e, uint8_t opt, uint64_t *features)
{
	struct virtio_dev *dev = NULL;

	(void)opt;
	*features = 0;
	FUZZ_ASSERT(virtio_rng_create(e, &dev) == 0);
	return dev;
}

/* The console writes to an output queue of one page on a one-page pipe, so that transmit
 * backpressure (requests held, the transmitq stopped, resumed by the queue's callback) is
 * reached within a few requests. Option bit 0: the pipes' reader reads (in the settle step,
 * which also runs the event loop: the queues' writers, then the kicks they send, and the input
 * port's reads), else it never does. Option bit 1: named ports (VIRTIO_CONSOLE_F_MULTIPORT):
 * port 1 reads a pipe the model writes to, port 2 writes to a second output queue like port
 * 0's. */
#define CON_OUTS 2
static struct outq *con_out[CON_OUTS];
static int con_pipe[CON_OUTS][2] = { { -1, -1 }, { -1, -1 } };
static int con_in[2] = { -1, -1 };
static bool con_reader, con_multi;
static uint64_t con_drained[CON_OUTS], con_fed;

static struct virtio_dev *console_create(const struct virtio_env *e, uint8_t opt,
					 uint64_t *features)
{
	struct virtio_dev *dev = NULL;
	struct console_port ports[2];

	con_reader = opt & 1;
	con_multi = opt & 2;
	*features = 1ULL << 0 | (con_multi ? 1ULL << 1 : 0); /* F_SIZE, F_MULTIPORT */
	con_fed = 0;
	for (int i = 0; i < (con_multi ? CON_OUTS : 1); i++) {
		con_drained[i] = 0;
		FUZZ_ASSERT(pipe2(con_pipe[i], O_CLOEXEC) == 0);
		fcntl(con_pipe[i][0], F_SETFL, O_NONBLOCK);
		fcntl(con_pipe[i][1], F_SETPIPE_SZ, 4096);
		FUZZ_ASSERT(outq_create(e->loop, con_pipe[i][1], 4096, &con_out[i]) == 0);
	}
	if (!con_multi) {
		FUZZ_ASSERT(virtio_console_create(e, con_out[0], &dev) == 0);
		return dev;
	}
	FUZZ_ASSERT(pipe2(con_in, O_CLOEXEC) == 0);
	fcntl(con_in[1], F_SETFL, O_NONBLOCK);
	ports[0] = (struct console_port){ "in", con_in[0], NULL };
	ports[1] = (struct console_port){ "out", -1, con_out[1] };
	FUZZ_ASSERT(virtio_console_create_ports(e, con_out[0], ports, 2, &dev) == 0);
	return dev;
}

static void console_settle(struct virtio_dev *dev)
{
	struct epoll_event evs[8];
	uint8_t buf[4096];
	ssize_t r;
	int n;

	(void)dev;
	if (!con_reader && !con_multi)
		return;
	for (int i = 0; con_reader && i < (con_multi ? CON_OUTS : 1); i++)
		while ((r = read(con_pipe[i][0], buf, sizeof(buf))) > 0)
			con_drained[i] += r;
	n = epoll_wait(loop.epfd, evs, 8, 0);
	for (int i = 0; i < n; i++)
		((struct ev_handler *)evs[i].data.ptr)->fn(evs[i].data.ptr, evs[i].events);
}

static uint64_t stat_named(struct stat_value *v, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return v[i].num;
	FUZZ_ASSERT(0);
	return 0;
}

/* Every byte the device says it handed over is in the pipe, read, queued or (never here)
 * discarded: nothing is lost or made up on the way. Every byte fed to the input port is in
 * its pipe or counted as delivered to the guest. */
static void console_check(struct virtio_dev *dev, bool disrupted)
{
	static const char *const taken[CON_OUTS] = { "output_bytes", "port2_bytes_out" };
	struct stat_value d[STATS_MAX_VALUES], o[STATS_MAX_VALUES];
	int nd = virtio_dev_stats(dev, d, STATS_MAX_VALUES), no, in_pipe = 0;

	(void)disrupted;
	for (int i = 0; i < (con_multi ? CON_OUTS : 1); i++) {
		no = outq_stats(con_out[i], o, STATS_MAX_VALUES);
		FUZZ_ASSERT(ioctl(con_pipe[i][0], FIONREAD, &in_pipe) == 0);
		FUZZ_ASSERT(stat_named(d, nd, taken[i]) ==
			    stat_named(o, no, "bytes_written") + outq_queued(con_out[i]));
		FUZZ_ASSERT(stat_named(o, no, "bytes_written") == con_drained[i] + (uint64_t)in_pipe);
		FUZZ_ASSERT(stat_named(o, no, "bytes_discarded") == 0);
	}
	if (con_multi) {
		FUZZ_ASSERT(ioctl(con_in[0], FIONREAD, &in_pipe) == 0);
		FUZZ_ASSERT(stat_named(d, nd, "port1_bytes_in") + (uint64_t)in_pipe == con_fed);
	}
}

static void console_finish(void)
{
	for (int i = 0; i < (con_multi ? CON_OUTS : 1); i++) {
		outq_destroy(con_out[i]);
		close(con_pipe[i][0]);
		close(con_pipe[i][1]);
	}
	for (int i = 0; con_multi && i < 2; i++)
		if (con_in[i] >= 0)
			close(con_in[i]);
	con_in[0] = con_in[1] = -1;
}

/* 0: terminal input of arg * 9 bytes (odd arg with ports: arg * 9 bytes into the input port's
 * pipe, 1: the pipe's end); 1: a terminal resize. */
static void console_op(struct virtio_dev *dev, int which, uint8_t arg)
{
	static const uint8_t text[32 * 9] = "the quick brown fox jumps over the lazy dog";
	struct console_sink sink = virtio_console_sink(dev);

	if (which == 0 && con_multi && (arg & 1)) {
		ssize_t w;

		if (arg == 1 && con_in[1] >= 0) {
			close(con_in[1]);
			con_in[1] = -1;
		} else if (con_in[1] >= 0 && (w = write(con_in[1], text, (size_t)arg * 9)) > 0) {
			con_fed += w;
		}
	} else if (which == 0) {
		size_t len = (size_t)arg * 9, got = sink.receive(sink.dev, text, len);

		FUZZ_ASSERT(got <= len);
	} else {
		sink.resize(sink.dev, (uint16_t)(arg * 7), (uint16_t)(arg * 3));
	}
}

static const struct fuzz_model model_rng = { .create = rng_create };
static const struct fuzz_model model_console = {
	.create = console_create, .op = console_op, .settle = console_settle,
	.check = console_check, .finish = console_finish,
};
static const struct fuzz_model *const models[] = {
	&model_rng, &model_console, &fuzz_model_blk, &fuzz_model_net, &fuzz_model_balloon,
};

/* ---- the driver ---- */

static void bring_up(struct virtio_dev *dev, uint64_t features, uint16_t qsize, bool driver_ok)
{
	uint64_t next = ring_base;

	drv_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	drv_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	drv_set_features_word(dev, 0, (uint32_t)features);
	drv_set_features_word(dev, 1, (uint32_t)(features >> 32));
	drv_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK);
	for (int q = 0; q < dev->ops->num_queues; q++) {
		uint64_t desc;

		next = fuzz_ring_layout((next + 15) & ~15ULL, qsize, &desc, &avail_gpa[q], &used_gpa[q]);
		pthread_mutex_lock(&dev->lock); /* as a transport writes the registers */
		dev->queue_size[q] = qsize;
		dev->vqs[q].desc_gpa = desc;
		dev->vqs[q].avail_gpa = avail_gpa[q];
		dev->vqs[q].used_gpa = used_gpa[q];
		pthread_mutex_unlock(&dev->lock);
		drv_queue_ready(dev, q, true);
	}
	if (driver_ok)
		drv_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

void fuzz_dev_reset(struct virtio_dev *dev)
{
	drv_set_status(dev, 0);
	fuzz_track_forget(-1);
	was_reset = true;
	violations_at_reset = atomic_load(&dev->stats.violations);
}

/* One driver action. */
static void run_op(struct virtio_dev *dev, const struct fuzz_model *m, uint8_t o,
		   uint64_t features, uint16_t qsize)
{
	int nq = dev->ops->num_queues, q = (o >> 3) % (nq + 1); /* nq: out of range */
	uint8_t arg = o >> 3;

	switch (o & 7) {
	case 0: /* kick a queue (or a nonexistent one) */
		virtio_queue_notified(dev, q);
		break;
	case 1: /* the model's first operation; a second kick without one */
	case 2: /* the model's second operation */
		if (m->op)
			m->op(dev, (o & 7) - 1, arg);
		else if ((o & 7) == 1)
			virtio_queue_notified(dev, 0);
		break;
	case 3: /* disable and re-enable a queue (indices start over) */
		drv_queue_ready(dev, q, false);
		fuzz_track_forget(q);
		drv_queue_ready(dev, q, true);
		break;
	case 4: { /* a status write: any combination of the driver's bits (0: NEEDS_RESET) */
		uint8_t st = (uint8_t)((arg & 1 ? VIRTIO_CONFIG_S_ACKNOWLEDGE : 0) |
				       (arg & 2 ? VIRTIO_CONFIG_S_DRIVER : 0) |
				       (arg & 4 ? VIRTIO_CONFIG_S_DRIVER_OK : 0) |
				       (arg & 8 ? VIRTIO_CONFIG_S_FEATURES_OK : 0) |
				       (arg & 16 ? VIRTIO_CONFIG_S_FAILED : 0));

		drv_set_status(dev, st ? st : VIRTIO_CONFIG_S_NEEDS_RESET);
		break;
	}
	case 5: /* reset and initialize again (odd arg: all but DRIVER_OK, so kicks come early) */
		fuzz_dev_reset(dev);
		bring_up(dev, features, qsize, !(arg & 1));
		break;
	case 6: { /* config space access */
		uint8_t buf[8] = { 0 };

		if (arg & 1)
			drv_config_write(dev, arg >> 1, buf, 1 + (arg & 3));
		else
			drv_config_read(dev, arg >> 1, buf, 1 + (arg & 3));
		break;
	}
	case 7: /* the driver posts one more entry (whatever the ring slot holds) */
		if (q < nq) {
			uint16_t *idx = gpa_range(&fuzz_mem, avail_gpa[q] + 2, 2);

			if (idx) {
				(*idx)++;
				fuzz_track_driver_wrote(idx, 2);
			}
		}
		break;
	}
}

struct before {
	bool broken;
	unsigned long violations, pushes;
	unsigned irqs;
};

static void note(struct virtio_dev *dev, struct before *b)
{
	was_reset = false;
	b->broken = drv_get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET;
	b->violations = atomic_load(&dev->stats.violations);
	b->irqs = queue_irqs;
	b->pushes = fuzz_track_pushes();
}

/* The status invariants across one step; returns true if the device broke or was reset in
 * it. */
static bool check_step(struct virtio_dev *dev, const struct before *b)
{
	unsigned long v = atomic_load(&dev->stats.violations);

	/* A violation leaves the device in NEEDS_RESET, whatever the step was (unless the driver
	 * reset the device after it). */
	if (v != (was_reset ? violations_at_reset : b->violations))
		FUZZ_ASSERT(drv_get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	if (b->broken && !was_reset) {
		FUZZ_ASSERT(drv_get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
		FUZZ_ASSERT(queue_irqs == b->irqs);
		FUZZ_ASSERT(fuzz_track_pushes() == b->pushes);
	}
	return v != b->violations || was_reset;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t h[16];
	const struct fuzz_model *m;
	struct virtio_dev *dev;
	uint64_t features = 1ULL << VIRTIO_F_VERSION_1, model_features;
	uint16_t qsize;

	if (size < 16)
		return 0;
	memcpy(h, data, 16);
	if (h[2] & 1) {
		fuzz_mem_load_tail(data + 16, size - 16);
		ring_base = FUZZ_TAIL_BASE;
	} else {
		fuzz_mem_load(data + 16, size - 16);
		ring_base = 0;
	}
	if (!loop_ready) {
		loop_ready = true;
		FUZZ_ASSERT(evloop_init(&loop) == 0);
		log_set_level(LOG_ERROR); /* guest errors are the point here, not news */
	}
	env = (struct virtio_env){ .mem = &fuzz_mem, .loop = &loop };
	queue_irqs = config_irqs = 0;

	m = models[(h[3] & 7) % (sizeof(models) / sizeof(models[0]))];
	dev = m->create(&env, h[3] >> 3, &model_features);
	FUZZ_ASSERT(dev);
	dev->transport = &fake_transport;
	dev->legacy = h[0] & 8;
	features |= h[0] & 1 ? virtio_offered_features(dev) : model_features;
	if (h[0] & 2)
		features |= 1ULL << VIRTIO_RING_F_INDIRECT_DESC;
	if (h[0] & 4)
		features |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	if (h[1] & 1)
		features |= 1ULL << ((h[1] >> 1) % 64);
	qsize = 1u << ((h[0] >> 4) % 9);
	fuzz_track_start(dev, m, used_gpa, qsize);
	bring_up(dev, features, qsize, true);

	for (int op = 0; op < MAX_OPS; op++) {
		struct before b;
		bool disrupted;

		note(dev, &b);
		run_op(dev, m, h[4 + op % 12], features, qsize);
		disrupted = check_step(dev, &b);
		if (m->settle) {
			note(dev, &b);
			m->settle(dev);
			disrupted |= check_step(dev, &b);
		}
		fuzz_track_check_writes(false);
		if (m->check)
			m->check(dev, disrupted);
		fuzz_track_next_op();
	}
	fuzz_track_check_writes(true);
	virtio_dev_free(dev);
	if (m->finish)
		m->finish();
	return 0;
}
