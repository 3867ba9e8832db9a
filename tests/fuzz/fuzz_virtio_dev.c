/* libFuzzer target: the virtio device models (virtio-rng, virtio-console transmit/receive/
 * resize) through the real virtio core (status machine, feature negotiation, queue
 * enable/disable, pop/push/notify, DEVICE_NEEDS_RESET, reset), with a fake transport that
 * counts interrupts. Guest RAM contents come from the input as in fuzz_virtq.c; the queues'
 * rings are packed from gpa 0, queue after queue. Build and run with `make fuzz`.
 *
 * Header:
 *   [0]      bit 0: device (0 rng, 1 console); bit 1 INDIRECT_DESC; bit 2 EVENT_IDX;
 *            bit 3 a legacy transport; bits 4-7: queue size 1 << (n % 9)
 *   [1]      bit 0 set: the driver also acks feature bit ([1] >> 1) % 64 (maybe not offered)
 *   [2]      bit 0: "tail" layout: the data ends at the end of the low region and the rings
 *            are packed from FUZZ_TAIL_BASE, so buffers can end right at the end of RAM
 *            (a device writing one byte too many then hits AddressSanitizer's redzone)
 *   [3]      reserved
 *   [4..15]  operations, cycled (see run_op)
 *
 * Checks beyond the sanitizers: a guest violation always leaves DEVICE_NEEDS_RESET set; once
 * it is set nothing is completed, no queue interrupt is raised and the flag stays until a
 * reset; receive() never claims more than it was given. */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <unistd.h>

#include "devices.h"
#include "fuzz_common.h"
#include "log.h"
#include "virtio.h"
#include "vm.h"

#define MAX_OPS 48

static struct vm vm;
static int devnull = -1;
static unsigned queue_irqs, config_irqs;
static uint64_t used_gpa[VIRTIO_MAX_QUEUES], avail_gpa[VIRTIO_MAX_QUEUES];
static uint64_t ring_base;

static void fake_interrupt(struct virtio_dev *dev, int queue)
{
	FUZZ_ASSERT(queue >= -1 && queue < dev->ops->num_queues);
	if (queue < 0)
		config_irqs++;
	else
		queue_irqs++;
}

static const struct virtio_transport_ops fake_transport = { .interrupt = fake_interrupt };

static uint16_t used_idx(int q)
{
	uint16_t *p = gpa_range(&fuzz_mem, used_gpa[q] + 2, 2);

	return p ? *p : 0;
}

static void bring_up(struct virtio_dev *dev, uint64_t features, uint16_t qsize, bool driver_ok)
{
	uint64_t next = ring_base;

	virtio_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	virtio_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	virtio_set_driver_features(dev, 0, (uint32_t)features);
	virtio_set_driver_features(dev, 1, (uint32_t)(features >> 32));
	virtio_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
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
		virtio_queue_set_ready(dev, q, true);
	}
	if (driver_ok)
		virtio_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* One driver action. Returns true if it may legitimately clear DEVICE_NEEDS_RESET. */
static bool run_op(struct virtio_dev *dev, bool console, uint8_t o, uint64_t features,
		   uint16_t qsize)
{
	int nq = dev->ops->num_queues, q = (o >> 3) % (nq + 1); /* nq: out of range */
	uint8_t arg = o >> 3;

	switch (o & 7) {
	case 0: /* kick a queue (or a nonexistent one) */
		virtio_queue_notified(dev, q);
		break;
	case 1: /* terminal input (console); a second kick otherwise */
		if (console) {
			static const uint8_t text[32 * 9] = "the quick brown fox jumps over the lazy dog";
			struct console_sink sink = virtio_console_sink(dev);
			size_t len = (size_t)arg * 9, got = sink.receive(sink.dev, text, len);

			FUZZ_ASSERT(got <= len);
		} else {
			virtio_queue_notified(dev, 0);
		}
		break;
	case 2: /* terminal resize */
		if (console) {
			struct console_sink sink = virtio_console_sink(dev);

			sink.resize(sink.dev, (uint16_t)(arg * 7), (uint16_t)(arg * 3));
		}
		break;
	case 3: /* disable and re-enable a queue (indices start over) */
		virtio_queue_set_ready(dev, q, false);
		virtio_queue_set_ready(dev, q, true);
		break;
	case 4: { /* a status write: any combination of the driver's bits (0: NEEDS_RESET) */
		uint8_t st = (uint8_t)((arg & 1 ? VIRTIO_CONFIG_S_ACKNOWLEDGE : 0) |
				       (arg & 2 ? VIRTIO_CONFIG_S_DRIVER : 0) |
				       (arg & 4 ? VIRTIO_CONFIG_S_DRIVER_OK : 0) |
				       (arg & 8 ? VIRTIO_CONFIG_S_FEATURES_OK : 0) |
				       (arg & 16 ? VIRTIO_CONFIG_S_FAILED : 0));

		virtio_set_status(dev, st ? st : VIRTIO_CONFIG_S_NEEDS_RESET);
		break;
	}
	case 5: /* reset and initialize again (odd arg: all but DRIVER_OK, so kicks come early) */
		virtio_set_status(dev, 0);
		bring_up(dev, features, qsize, !(arg & 1));
		return true;
	case 6: { /* config space access */
		uint8_t buf[8] = { 0 };

		if (arg & 1)
			virtio_config_write(dev, arg >> 1, buf, 1 + (arg & 3));
		else
			virtio_config_read(dev, arg >> 1, buf, 1 + (arg & 3));
		break;
	}
	case 7: /* the driver posts one more entry (whatever the ring slot holds) */
		if (q < nq) {
			uint16_t *idx = gpa_range(&fuzz_mem, avail_gpa[q] + 2, 2);

			if (idx)
				(*idx)++;
		}
		break;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t h[16];
	struct virtio_dev *dev;
	bool console;
	uint64_t features = 1ULL << VIRTIO_F_VERSION_1;
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
	if (devnull < 0) {
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		FUZZ_ASSERT(devnull >= 0);
		log_set_level(LOG_ERROR); /* guest errors are the point here, not news */
	}
	memset(&vm, 0, sizeof(vm));
	vm.vm_fd = vm.kvm_fd = -1;
	vm.mem = fuzz_mem;
	queue_irqs = config_irqs = 0;

	console = h[0] & 1;
	dev = console ? virtio_console_create(&vm, devnull) : virtio_rng_create(&vm);
	FUZZ_ASSERT(dev);
	dev->transport = &fake_transport;
	dev->legacy = h[0] & 8;
	if (h[0] & 2)
		features |= 1ULL << VIRTIO_RING_F_INDIRECT_DESC;
	if (h[0] & 4)
		features |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	if (console)
		features |= 1ULL << 0; /* VIRTIO_CONSOLE_F_SIZE */
	if (h[1] & 1)
		features |= 1ULL << ((h[1] >> 1) % 64);
	qsize = 1u << ((h[0] >> 4) % 9);
	bring_up(dev, features, qsize, true);

	for (int op = 0; op < MAX_OPS; op++) {
		bool broken = virtio_get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET;
		unsigned long violations = atomic_load(&dev->stats.violations);
		unsigned irqs = queue_irqs;
		uint16_t used[VIRTIO_MAX_QUEUES];

		for (int q = 0; q < dev->ops->num_queues; q++)
			used[q] = used_idx(q);
		bool reset = run_op(dev, console, h[4 + op % 12], features, qsize);

		/* A violation leaves the device in NEEDS_RESET, whatever the operation was. */
		if (atomic_load(&dev->stats.violations) != violations)
			FUZZ_ASSERT(virtio_get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
		if (reset)
			continue;
		if (broken) {
			FUZZ_ASSERT(virtio_get_status(dev) & VIRTIO_CONFIG_S_NEEDS_RESET);
			FUZZ_ASSERT(queue_irqs == irqs);
			for (int q = 0; q < dev->ops->num_queues; q++)
				FUZZ_ASSERT(used_idx(q) == used[q]);
		}
	}
	while (vm.ndevices) {
		struct vm_device *d = &vm.devices[--vm.ndevices];

		d->destroy(d->dev);
	}
	return 0;
}
