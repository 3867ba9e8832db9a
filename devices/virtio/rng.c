/* virtio-rng (device ID 4): one request queue; each device-writable buffer is filled with
 * random bytes. Bytes come from a pool refilled by one getrandom(2) call, not one per request.
 * Snapshots: nothing beyond the virtio core's state (a request is served whole within its
 * notification, the pool is the host's), so no drain, save or restore op. */
#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "devices/virtio/devices.h"
#include "devices/virtio/virtio.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define RNG_POOL_SIZE (64 * 1024)
#define RNG_MAX_PER_REQUEST (64 * 1024) /* larger buffers get this much; used len says so */

struct virtio_rng {
	struct virtio_dev vdev;
	struct virtq_req req;
	size_t pool_pos;
	uint8_t pool[RNG_POOL_SIZE];
};

/* Copies n random bytes out, refilling the pool as it runs dry. */
static int rng_take(struct virtio_rng *r, uint8_t *dst, size_t n)
{
	while (n) {
		size_t k;

		if (r->pool_pos == RNG_POOL_SIZE) {
			ssize_t got = getrandom(r->pool, RNG_POOL_SIZE, 0);

			if (got != RNG_POOL_SIZE)
				return -EIO;
			r->pool_pos = 0;
		}
		k = MIN(n, RNG_POOL_SIZE - r->pool_pos);
		memcpy(dst, r->pool + r->pool_pos, k);
		/* Never hand the same bytes out twice. */
		memset(r->pool + r->pool_pos, 0, k);
		r->pool_pos += k;
		dst += k;
		n -= k;
	}
	return 0;
}

static bool rng_queue_notify(struct virtio_dev *dev, int q)
{
	struct virtio_rng *r = container_of(dev, struct virtio_rng, vdev);
	int n = 0;

	while (n < VIRTIO_BUDGET && virtio_pop(dev, q, &r->req, VIRTQ_DEV_WRITES) == 0) {
		uint32_t written = 0;

		for (int i = 0; i < r->req.nsegs && written < RNG_MAX_PER_REQUEST; i++) {
			uint32_t n = MIN(r->req.segs[i].len, RNG_MAX_PER_REQUEST - written);

			if (rng_take(r, r->req.segs[i].hva, n) < 0) {
				pr_err("virtio-rng: getrandom failed: %s", strerror(errno));
				break;
			}
			written += n;
		}
		virtio_push(dev, q, r->req.head, written);
		n++;
	}
	if (n)
		virtio_notify_used(dev, q);
	return n == VIRTIO_BUDGET;
}

static void rng_destroy(struct virtio_dev *dev)
{
	struct virtio_rng *r = container_of(dev, struct virtio_rng, vdev);

	virtio_dev_cleanup(&r->vdev);
	free(r);
}

static const struct virtio_dev_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.features = 0,
	.num_queues = 1,
	.queue_max_size = 256,
	.config_size = 0,
	.queue_notify = rng_queue_notify,
	.destroy = rng_destroy,
};

int virtio_rng_create(const struct virtio_env *env, struct virtio_dev **out)
{
	struct virtio_rng *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->pool_pos = RNG_POOL_SIZE; /* empty: filled on first use */
	err = virtio_dev_init(&r->vdev, env, &rng_ops, NULL);
	if (err) {
		free(r);
		return err;
	}
	*out = &r->vdev;
	return 0;
}
