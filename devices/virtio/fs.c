/* virtio-fs (device ID 26): a host directory (hostfs) served to the guest's virtio-fs driver
 * over FUSE (fuse.c).
 *
 * Queues: 0 is the high-priority queue (the driver sends FORGET there), 1 the one request
 * queue; both carry FUSE requests and are served alike. One request queue: the server runs on
 * one thread, so more queues would add nothing but rings.
 *
 * Its own thread: a FUSE request may wait on the host's disk (an fsync, a cold directory),
 * which the main event loop must never do. The device has its own event loop (the kick
 * eventfds are registered there by virtio_dev_init) run by its own thread, confined as
 * SECCOMP_FS and by the Landlock step of vmm/confine.h. queue_notify serves requests only on
 * that thread: a notification that reaches it on a vCPU thread (a kick that exited, early
 * kicks served at DRIVER_OK) is passed on through the kick eventfd.
 *
 * Locks: dev->lock as every virtio device; the request itself runs without it (a vCPU reading
 * the ISR must not wait for the disk) under work_lock, taken before dev->lock is dropped. A
 * reset or a queue being disabled (vCPU threads, dev->lock held) takes work_lock too, so it
 * returns only once the request in flight is done with the guest's buffers, and bumps the
 * queue's epoch: the thread then drops that request's reply instead of pushing it into a ring
 * that is no longer there. Lock order: dev->lock -> work_lock; the thread never takes
 * dev->lock while it holds work_lock. hostfs is used by this thread alone, and by the
 * statistics under work_lock; a reset's hostfs_reset() (which closes descriptors, a call the
 * vCPU threads' filter refuses) is left to the thread (reset_pending). */
#include "devices/virtio/fs.h"

#include <errno.h>
#include <linux/virtio_fs.h>
#include <linux/virtio_ids.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "confine/seccomp.h"
#include "devices/virtio/fuse.h"
#include "devices/virtio/virtio.h"
#include "hostfs/hostfs.h"
#include "snapshot/snapshot.h"
#include "vmm/err.h"
#include "vmm/confine.h"
#include "vmm/evloop.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define FS_REQUEST_QUEUES 1
#define FS_QUEUES         (1 + FS_REQUEST_QUEUES)
#define FS_QUEUE_SIZE     256
/* READ and WRITE of up to 128 pages (512 KiB): the guest's pages are one segment each, at
 * most 129 for an unaligned buffer, plus a few for the headers and arguments, well within a
 * chain's VIRTQ_MAX_SEGS. */
#define FS_MAX_PAGES      128
_Static_assert(FS_MAX_PAGES + 8 <= VIRTQ_MAX_SEGS, "a READ or WRITE must fit in one chain");
_Static_assert(FS_QUEUES <= VIRTIO_MAX_QUEUES, "too many queues");

struct virtio_fs {
	struct virtio_dev vdev;
	struct virtio_fs_config config;
	char tag[FS_TAG_MAX + 1];

	/* Set at creation, then used by the device thread (and the statistics, under work_lock). */
	struct hostfs *hfs;
	struct fuse_server *srv;

	struct evloop loop;         /* the device thread's; the kick eventfds are on it */
	struct ev_handler wake;     /* an eventfd: a reset left work for the thread */
	pthread_t thread;
	bool running;               /* started and not yet joined (creator, destroy) */

	pthread_mutex_t work_lock;  /* held while a request runs outside dev->lock */
	/* Under dev->lock: */
	uint32_t epoch[FS_QUEUES];  /* bumped when the queue is disabled or the device reset */
	bool reset_pending;         /* the device was reset: hostfs_reset() on the thread */
	bool in_service;            /* a request is popped and its reply not yet pushed */

	/* The device thread's own: */
	struct virtq_req req;
	unsigned confined;          /* vmm/confine.h steps taken */
};

/* The device the calling thread serves (NULL on every other thread). */
static _Thread_local struct virtio_fs *serving;

/* The reset's work on hostfs, on the device thread (dev->lock held). */
static void finish_reset(struct virtio_fs *fs)
{
	if (!fs->reset_pending)
		return;
	fs->reset_pending = false;
	pthread_mutex_lock(&fs->work_lock);
	fuse_server_reset(fs->srv);
	pthread_mutex_unlock(&fs->work_lock);
}

static bool fs_queue_notify(struct virtio_dev *dev, int q)
{
	struct virtio_fs *fs = container_of(dev, struct virtio_fs, vdev);
	int n = 0;

	if (serving != fs) {
		/* A vCPU thread: the device thread serves it, from the kick eventfd. */
		virtio_queue_kick(dev, q);
		return false;
	}
	confine_late_thread(&fs->confined);
	finish_reset(fs);
	while (n < VIRTIO_BUDGET && virtio_pop(dev, q, &fs->req, VIRTQ_DEV_BOTH) == 0) {
		uint32_t epoch = fs->epoch[q], written;

		n++;
		fs->in_service = true;
		pthread_mutex_lock(&fs->work_lock);
		pthread_mutex_unlock(&dev->lock);
		written = fuse_serve(fs->srv, &fs->req);
		pthread_mutex_unlock(&fs->work_lock);
		pthread_mutex_lock(&dev->lock);
		fs->in_service = false;
		if (epoch != fs->epoch[q])
			return false; /* the ring went away meanwhile: nothing more to push */
		virtio_push(dev, q, fs->req.head, written);
		/* Each reply at once, not at the end of the batch: the next request may wait on
		 * the disk, and this one's caller should not wait with it (EVENT_IDX keeps it to
		 * one interrupt while the driver has not caught up). */
		virtio_notify_used(dev, q);
	}
	return n == VIRTIO_BUDGET;
}

/* Waits for the request in flight (dev->lock held): afterwards its buffers are the guest's. */
static void wait_idle(struct virtio_fs *fs)
{
	pthread_mutex_lock(&fs->work_lock);
	pthread_mutex_unlock(&fs->work_lock);
}

static void fs_queue_disable(struct virtio_dev *dev, int q)
{
	struct virtio_fs *fs = container_of(dev, struct virtio_fs, vdev);

	wait_idle(fs);
	fs->epoch[q]++;
}

static void fs_reset(struct virtio_dev *dev)
{
	struct virtio_fs *fs = container_of(dev, struct virtio_fs, vdev);
	uint64_t one = 1;

	wait_idle(fs);
	for (int q = 0; q < FS_QUEUES; q++)
		fs->epoch[q]++;
	fs->reset_pending = true;
	if (fs->wake.fn && write(fs->wake.fd, &one, sizeof(one)) < 0)
		pr_debug("virtio-fs: cannot wake the device thread: %s", strerror(errno));
}

static void on_wake(struct ev_handler *h, uint32_t events)
{
	struct virtio_fs *fs = container_of(h, struct virtio_fs, wake);

	(void)events;
	pthread_mutex_lock(&fs->vdev.lock);
	finish_reset(fs);
	pthread_mutex_unlock(&fs->vdev.lock);
}

/* ---- snapshots ---- */

#define FS_SNAP_FORMAT 1

/* A FUSE session is state of the guest's kernel and of hostfs together (node ids, open
 * handles, lookup counts) that a snapshot cannot carry over to another process's view of the
 * host's files: a share mounted in the guest refuses the snapshot. Unmounted (no INIT yet, or
 * DESTROY since, or a reset about to clear it), the device has nothing beyond the core's. */
static void fs_drain(struct virtio_dev *dev)
{
	/* The request being served, if any, finishes with the guest's buffers; its reply is
	 * pushed by the device thread, which needs dev->lock: fs_save refuses meanwhile. */
	wait_idle(container_of(dev, struct virtio_fs, vdev));
}

static int fs_save(struct virtio_dev *dev, struct snap_writer *w, struct err *e)
{
	struct virtio_fs *fs = container_of(dev, struct virtio_fs, vdev);
	bool mounted;

	pthread_mutex_lock(&fs->work_lock);
	mounted = fuse_server_initialized(fs->srv) && !fs->reset_pending;
	pthread_mutex_unlock(&fs->work_lock);
	if (mounted)
		return err_set(e, -EBUSY, "snapshot: virtio-fs: a share is mounted in the guest; "
			       "snapshot before mounting");
	if (fs->in_service)
		return err_set(e, -EBUSY, "snapshot: virtio-fs: a request is being answered; "
			       "try again");
	snap_put_u32(w, FS_SNAP_FORMAT);
	return 0;
}

static int fs_restore(struct virtio_dev *dev, struct snap_cursor *c, struct err *e)
{
	struct virtio_fs *fs = container_of(dev, struct virtio_fs, vdev);
	uint32_t format = snap_get_u32(c);

	if (c->err)
		return err_set(e, -EINVAL, "snapshot: virtio-fs: its state is cut short");
	if (format != FS_SNAP_FORMAT)
		return err_set(e, -EINVAL, "snapshot: virtio-fs: unknown state format %u", format);
	/* The config bytes the core restored are the file's: the tag is the option's. */
	memset(&fs->config, 0, sizeof(fs->config));
	memcpy(fs->config.tag, fs->tag, strlen(fs->tag));
	fs->config.num_request_queues = FS_REQUEST_QUEUES;
	/* A request posted but not yet taken (its kick unread in the old process). */
	for (int q = 0; q < FS_QUEUES; q++)
		if (virtio_queue_live(dev, q))
			virtio_queue_kick(dev, q);
	return 0;
}

static int fs_stats(struct virtio_dev *dev, struct stat_value *out, int max)
{
	struct virtio_fs *fs = container_of(dev, struct virtio_fs, vdev);
	const struct fuse_server_stats *s = fuse_server_stats(fs->srv);
	struct hostfs_counts c;

	pthread_mutex_lock(&fs->work_lock);
	hostfs_counts(fs->hfs, &c);
	pthread_mutex_unlock(&fs->work_lock);

	struct stat_value v[] = {
		{ "tag", fs->tag, 0 },
		{ "requests", NULL, atomic_load(&s->requests) },
		{ "lookups", NULL, atomic_load(&s->lookups) },
		{ "forgets", NULL, atomic_load(&s->forgets) },
		{ "getattrs", NULL, atomic_load(&s->getattrs) },
		{ "opens", NULL, atomic_load(&s->opens) },
		{ "reads", NULL, atomic_load(&s->reads) },
		{ "bytes_read", NULL, atomic_load(&s->bytes_read) },
		{ "writes", NULL, atomic_load(&s->writes) },
		{ "bytes_written", NULL, atomic_load(&s->bytes_written) },
		{ "readdirs", NULL, atomic_load(&s->readdirs) },
		{ "changes", NULL, atomic_load(&s->changes) },
		{ "syncs", NULL, atomic_load(&s->syncs) },
		{ "inits", NULL, atomic_load(&s->inits) },
		{ "errors", NULL, atomic_load(&s->errors) },
		{ "unsupported", NULL, atomic_load(&s->unsupported) },
		{ "malformed", NULL, atomic_load(&s->malformed) },
		{ "refused", NULL, c.refused },
		{ "inodes", NULL, c.inodes },
		{ "inode_fds", NULL, c.fds },
		{ "reopened", NULL, c.reopened },
		{ "handles", NULL, c.handles },
	};
	int n = MIN((int)ARRAY_SIZE(v), max);

	memcpy(out, v, n * sizeof(v[0]));
	return n;
}

static void *fs_thread(void *opaque)
{
	struct virtio_fs *fs = opaque;
	int err;

	/* Named by the thread itself: from outside it would be a write to /proc/self/task/TID/comm,
	 * which Landlock refuses. */
	pthread_setname_np(pthread_self(), "mica-fs");
	serving = fs;
	seccomp_enter(SECCOMP_FS, -1);
	err = evloop_run(&fs->loop);
	if (err)
		pr_err("virtio-fs: the device's event loop failed: %s", strerror(-err));
	return NULL;
}

static int start_thread(struct virtio_fs *fs)
{
	sigset_t all, old;
	int err;

	/* The thread takes no signals: those are for the main and vCPU threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&fs->thread, NULL, fs_thread, fs);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		return -err;
	fs->running = true;
	return 0;
}

static void fs_destroy(struct virtio_dev *dev);

static const struct virtio_dev_ops fs_ops = {
	.name = "virtio-fs",
	.device_id = VIRTIO_ID_FS,
	.pci_class = 0x018000, /* mass storage, other */
	.features = 0,
	.num_queues = FS_QUEUES,
	.queue_max_size = FS_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_fs_config),
	.queue_notify = fs_queue_notify,
	.reset = fs_reset,
	.queue_disable = fs_queue_disable,
	.stats = fs_stats,
	.drain = fs_drain,
	.save = fs_save,
	.restore = fs_restore,
	.destroy = fs_destroy,
};

void virtio_fs_stop(void *opaque)
{
	struct virtio_dev *dev = opaque;
	struct virtio_fs *fs;

	if (!dev || dev->ops != &fs_ops)
		return;
	fs = container_of(dev, struct virtio_fs, vdev);
	if (!fs->running)
		return;
	evloop_stop(&fs->loop);
	pthread_join(fs->thread, NULL);
	fs->running = false;
}

/* Frees what virtio_fs_create() made, as far as it got. */
static void fs_free(struct virtio_fs *fs, bool dev_init, bool loop_init)
{
	if (dev_init)
		virtio_dev_cleanup(&fs->vdev);
	if (fs->wake.fn) {
		evloop_del(&fs->loop, &fs->wake);
		close(fs->wake.fd);
	}
	if (loop_init)
		evloop_destroy(&fs->loop);
	if (fs->srv)
		fuse_server_destroy(fs->srv);
	if (fs->hfs)
		hostfs_close(fs->hfs);
	pthread_mutex_destroy(&fs->work_lock);
	free(fs);
}

static void fs_destroy(struct virtio_dev *dev)
{
	struct virtio_fs *fs = container_of(dev, struct virtio_fs, vdev);

	virtio_fs_stop(dev);
	fs_free(fs, true, true);
}

int virtio_fs_create(const struct virtio_env *env, const struct fs_opts *o,
		     struct virtio_dev **out, struct err *e)
{
	struct hostfs_opts ho = { .path = o->path, .readonly = o->ro, .nshares = o->nshares,
				  .max_inodes = o->max_inodes, .max_fds = o->max_fds };
	struct fuse_server_opts so = { .timeout = fs_opts_timeout(o), .keep_cache = o->ro,
				       .max_pages = FS_MAX_PAGES, .no_xattr = o->no_xattr };
	struct virtio_env own = *env;
	struct virtio_fs *fs = calloc(1, sizeof(*fs));
	int err, fd;

	if (!fs)
		return -ENOMEM;
	pthread_mutex_init(&fs->work_lock, NULL);
	err = hostfs_open(&ho, &fs->hfs, e);
	if (err) {
		fs->hfs = NULL;
		fs_free(fs, false, false);
		return err;
	}
	so.fs = fs->hfs;
	if ((err = fuse_server_create(&so, &fs->srv))) {
		fs->srv = NULL;
		fs_free(fs, false, false);
		return err;
	}
	if ((err = evloop_init(&fs->loop))) {
		fs_free(fs, false, false);
		return err;
	}
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0) {
		err = -errno;
		fs_free(fs, false, true);
		return err;
	}
	fs->wake.fn = on_wake;
	/* Edge-triggered, never read: one event per reset is all it takes. */
	if ((err = evloop_add(&fs->loop, fd, EPOLLIN | EPOLLET, &fs->wake))) {
		close(fd);
		fs->wake.fn = NULL;
		fs_free(fs, false, true);
		return err;
	}
	snprintf(fs->tag, sizeof(fs->tag), "%s", o->tag);
	memcpy(fs->config.tag, fs->tag, strlen(fs->tag)); /* NUL-padded, not terminated */
	fs->config.num_request_queues = FS_REQUEST_QUEUES; /* little-endian, as the host */
	own.loop = &fs->loop;
	if ((err = virtio_dev_init(&fs->vdev, &own, &fs_ops, &fs->config))) {
		fs_free(fs, false, true);
		return err;
	}
	if ((err = start_thread(fs))) {
		fs_free(fs, true, true);
		return err;
	}
	*out = &fs->vdev;
	return 0;
}
