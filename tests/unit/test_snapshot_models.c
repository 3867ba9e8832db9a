/* The device models' part of a snapshot (virtio_dev_ops drain, save, restore): each model is
 * driven into a state a guest can tell apart from a fresh device, drained, saved into a real
 * snapshot file (snapshot/file.c), and restored into a new device made from the same options
 * over the same guest RAM; then the test checks what the guest would see. The core's own part
 * (status, features, queue addresses and indices) is copied here as the core's restore will
 * do it, then the model's restore runs, then activate (with DRIVER_OK), in the core's order.
 * Hostile model sections, cut short at every byte or with any byte changed, are refused (or
 * accepted as another valid state) without a crash; run under `make SAN=1` too. No KVM. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_console.h>
#include <linux/fuse.h>
#include <linux/virtio_net.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/net/backend.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/devices.h"
#include "devices/virtio/fs.h"
#include "devices/virtio/net.h"
#include "devices/virtio/virtio.h"
#include "snapshot/snapshot.h"
#include "tests/unit/snap_tmp.h"
#include "tests/unit/test.h"
#include "tests/unit/test_env.h"
#include "tests/unit/vring_driver.h"
#include "vmm/control.h"
#include "vmm/log.h"
#include "vmm/outq.h"
#include "vmm/util.h"

#define RAM     (64 * 1024 * 1024ULL)
#define S_ALL   (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
		 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK)
#define F(bit)  (1ULL << (bit))
#define SECTION "model.0"

static struct drv q[VIRTIO_MAX_QUEUES];

/* ---- the core's part, as its save and restore will do it ---- */

struct core_state {
	uint8_t status;
	uint64_t features;
	struct virtq vqs[VIRTIO_MAX_QUEUES];
};

static void core_capture(struct virtio_dev *d, struct core_state *s)
{
	pthread_mutex_lock(&d->lock);
	s->status = d->status;
	s->features = d->driver_features;
	memcpy(s->vqs, d->vqs, sizeof(s->vqs));
	pthread_mutex_unlock(&d->lock);
}

/* The snapshot's status, features and queues on a device just created (rings and indices as
 * they were: guest RAM is the snapshot's). */
static void core_apply(struct virtio_dev *d, const struct core_state *s)
{
	CHECK(drv_negotiate(d, s->features));
	pthread_mutex_lock(&d->lock);
	for (int n = 0; n < d->ops->num_queues; n++) {
		const struct virtq *v = &s->vqs[n];

		if (!v->ready)
			continue;
		virtio_queue_set_size(d, n, v->size);
		virtio_queue_set_addr(d, n, VIRTIO_RING_DESC, v->desc_gpa, ~0ULL);
		virtio_queue_set_addr(d, n, VIRTIO_RING_AVAIL, v->avail_gpa, ~0ULL);
		virtio_queue_set_addr(d, n, VIRTIO_RING_USED, v->used_gpa, ~0ULL);
		virtio_queue_set_ready(d, n, true);
		d->vqs[n].last_avail = v->last_avail;
		d->vqs[n].used_idx = v->used_idx;
		d->vqs[n].signalled_used = v->signalled_used;
		d->vqs[n].signalled_valid = v->signalled_valid;
	}
	virtio_write_status(d, s->status);
	pthread_mutex_unlock(&d->lock);
}

/* As the VM takes a snapshot: drain, then save, under the device lock. */
static int save_model(struct virtio_dev *d, struct err *e)
{
	struct snap_writer *w;
	int err, end;

	err = snap_writer_create(snap_tmp_path, "test", &w, e);
	if (err)
		return err;
	pthread_mutex_lock(&d->lock);
	if (d->ops->drain)
		d->ops->drain(d);
	snap_begin(w, SECTION, 1);
	err = d->ops->save ? d->ops->save(d, w, e) : 0;
	end = snap_end(w);
	pthread_mutex_unlock(&d->lock);
	if (err || end) {
		snap_writer_abort(w);
		return err ? err : end;
	}
	return snap_writer_finish(w, e);
}

/* The model's restore from the snapshot at snap_tmp_path, then activate as the core does. With
 * whole, the section must have been read to its end. */
static int restore_model(struct virtio_dev *d, struct err *e, bool whole)
{
	struct snap_file *f;
	struct snap_cursor c;
	int err = snap_open(snap_tmp_path, &f, e);

	if (err)
		return err;
	CHECK_EQ(snap_section(f, SECTION, &c), 0);
	pthread_mutex_lock(&d->lock);
	err = d->ops->restore(d, &c, e);
	if (!err && (d->status & VIRTIO_CONFIG_S_DRIVER_OK) && d->ops->activate)
		d->ops->activate(d);
	pthread_mutex_unlock(&d->lock);
	if (!err && whole)
		CHECK_EQ(snap_cursor_end(&c), 0);
	snap_close(f);
	return err;
}

/* The model's section of the snapshot at snap_tmp_path. */
static size_t section_bytes(uint8_t *buf, size_t max)
{
	struct snap_file *f;
	struct snap_cursor c;
	struct err e = { "" };

	if (snap_open(snap_tmp_path, &f, &e) || snap_section(f, SECTION, &c) || c.size > max)
		abort();
	memcpy(buf, c.data, c.size);
	snap_close(f);
	return c.size;
}

/* A snapshot whose model section is len bytes of buf. */
static void write_section(const void *buf, size_t len)
{
	struct snap_writer *w;
	struct err e = { "" };

	if (snap_writer_create(snap_tmp_path, "test", &w, &e))
		abort();
	snap_begin(w, SECTION, 1);
	snap_put(w, buf, len);
	if (snap_end(w) || snap_writer_finish(w, &e))
		abort();
}

/* Every prefix of the good section is refused with a "snapshot: <model>: ..." line; every
 * single changed byte is refused the same way or taken as another valid state. */
static void check_hostile(struct virtio_dev *d, const uint8_t *good, size_t n, const char *who)
{
	uint8_t bad[512];
	int refused = 0, cut_ok = 0;
	char prefix[64];

	if (n > sizeof(bad))
		abort();
	snprintf(prefix, sizeof(prefix), "snapshot: %s: ", who);
	for (size_t k = 0; k < n; k++) {
		struct err e = { "" };

		write_section(good, k);
		if (restore_model(d, &e, false) == -EINVAL && !strncmp(e.msg, prefix, strlen(prefix)))
			cut_ok++;
		else
			printf("#   %s cut at %zu bytes: '%s'\n", who, k, e.msg);
	}
	CHECK_EQ(cut_ok, n);
	for (size_t i = 0; i < n; i++) {
		struct err e = { "" };
		int err;

		memcpy(bad, good, n);
		bad[i] ^= 0xa5;
		write_section(bad, n);
		err = restore_model(d, &e, false);
		CHECK(err == 0 || (err == -EINVAL && !strncmp(e.msg, prefix, strlen(prefix))));
		refused += err != 0;
	}
	CHECK(refused > 0);
}

/* ---- virtio-blk ---- */

#define BLK_QS    64
#define BLK_IMG   (1024 * 1024)
#define BLK_N     16                 /* writes of BLK_IMG / BLK_N bytes, then a flush */
#define BLK_LEN   (BLK_IMG / BLK_N)
#define HDRS      0xA00000ULL
#define STATUSES  0xA20000ULL
#define DATA      0xB00000ULL
#define RDATA     0x1800000ULL
#define BLK_F     (F(VIRTIO_F_VERSION_1) | F(VIRTIO_BLK_F_SEG_MAX) | F(VIRTIO_BLK_F_BLK_SIZE) | \
		   F(VIRTIO_BLK_F_FLUSH) | F(VIRTIO_BLK_F_CONFIG_WCE))

static bool blk_threads;
static uint16_t blk_next;

static void make_file(char *path, size_t len, off_t size, uint8_t seed)
{
	static uint8_t buf[BLK_IMG];
	int fd;

	snprintf(path, len, "%s/img-XXXXXX", snap_tmp_dir);
	fd = mkstemp(path);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 13 + seed);
	if (fd < 0 || ftruncate(fd, size) < 0 ||
	    (seed && pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)))
		abort();
	close(fd);
}

static struct virtio_dev *blk_on(const char *path, struct err *e)
{
	struct blk_opts o;
	struct virtio_dev *d;

	if (blk_parse_opts(path, &o, e))
		abort();
	o.num_queues = 1;
	if (virtio_blk_create(&vm.env, &o, &d, e))
		return NULL;
	d->transport = &fake_transport;
	return d;
}

static uint16_t blk_req(uint32_t type, uint64_t sector, uint64_t data, uint32_t len, bool w, int i)
{
	struct virtio_blk_outhdr h = { .type = htole32(type), .sector = htole64(sector) };
	uint16_t head = blk_next;
	int n = 0;

	memcpy(g2h(&vm.mem, HDRS + 32ULL * i, sizeof(h)), &h, sizeof(h));
	*(uint8_t *)g2h(&vm.mem, STATUSES + i, 1) = 0xff;
	drv_desc(&q[0], (uint16_t)(head + n), HDRS + 32ULL * i, 16, VRING_DESC_F_NEXT,
		 (uint16_t)(head + n + 1));
	n++;
	if (len) {
		drv_desc(&q[0], (uint16_t)(head + n), data, len,
			 VRING_DESC_F_NEXT | (w ? VRING_DESC_F_WRITE : 0), (uint16_t)(head + n + 1));
		n++;
	}
	drv_desc(&q[0], (uint16_t)(head + n), STATUSES + i, 1, VRING_DESC_F_WRITE, 0);
	blk_next = (uint16_t)((head + n + 1) % BLK_QS);
	drv_post(&q[0], head);
	return head;
}

static void blk_drain_now(struct virtio_dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->ops->drain(d);
	pthread_mutex_unlock(&d->lock);
}

static bool file_matches(const char *path, uint64_t gpa, size_t len)
{
	static uint8_t buf[BLK_IMG];
	int fd = open(path, O_RDONLY);
	bool ok = fd >= 0 && pread(fd, buf, len, 0) == (ssize_t)len &&
		  !memcmp(buf, g2h(&vm.mem, gpa, len), len);

	if (fd >= 0)
		close(fd);
	return ok;
}

/* Writes in flight at the snapshot are completed by the drain (status, used entries and data
 * in guest memory and in the image before save returns); the write cache the driver turned off
 * stays off; the restored device goes on in the same ring; another image is refused. */
static void blk_snapshot(void)
{
	char img[64], copy[64], other[64], bigger[64];
	struct err e = { "" };
	struct core_state cs;
	struct virtio_dev *d, *d2;
	struct virtio_blk_config cfg;
	uint8_t good[512], v = 0;
	size_t n;
	bool ok = true;
	int in_flight, fd;

	log_set_level(LOG_ERROR);
	test_vm_init(RAM);
	if (blk_threads)
		setenv("MICA_BLK_NO_URING", "1", 1);
	else
		unsetenv("MICA_BLK_NO_URING");
	blk_next = 0;
	make_file(img, sizeof(img), BLK_IMG, 0);
	d = blk_on(img, &e);
	CHECK(d != NULL);
	if (!d)
		return;
	CHECK(drv_negotiate(d, BLK_F));
	drv_attach_queue(d, &q[0], &vm.mem, 0, BLK_QS);
	drv_set_status(d, S_ALL);
	/* Writethrough from now on (a guest's echo to cache_type). */
	drv_config_write(d, offsetof(struct virtio_blk_config, wce), &v, 1);

	for (int i = 0; i < BLK_N; i++) {
		for (uint32_t k = 0; k < BLK_LEN; k++)
			*(uint8_t *)g2h(&vm.mem, DATA + (uint64_t)i * BLK_LEN + k, 1) =
				(uint8_t)(k * 7 + i);
		blk_req(VIRTIO_BLK_T_OUT, (uint64_t)i * BLK_LEN / 512, DATA + (uint64_t)i * BLK_LEN,
			BLK_LEN, false, i);
	}
	blk_req(VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, BLK_N);
	/* Taken and handed to the backend; the loop that would complete them does not run. */
	virtio_queue_notified(d, 0);
	CHECK_EQ(drv_vq(d, 0).last_avail, BLK_N + 1);
	in_flight = (uint16_t)(BLK_N + 1 - q[0].used->idx);
	printf("#   %s: %d of %d requests in flight at the drain\n", blk_threads ? "threads" :
	       "io_uring", in_flight, BLK_N + 1);

	CHECK_EQ(save_model(d, &e), 0);
	CHECK_EQ(q[0].used->idx, BLK_N + 1);
	for (int i = 0; i <= BLK_N; i++)
		ok &= *(uint8_t *)g2h(&vm.mem, STATUSES + i, 1) == VIRTIO_BLK_S_OK;
	CHECK(ok);
	CHECK(file_matches(img, DATA, BLK_IMG));
	core_capture(d, &cs);
	n = section_bytes(good, sizeof(good));
	virtio_dev_free(d); /* its image lock goes with it */

	/* The same options, the same image: the ring goes on where it was, writethrough. */
	d2 = blk_on(img, &e);
	CHECK(d2 != NULL);
	if (!d2)
		return;
	core_apply(d2, &cs);
	CHECK_EQ(restore_model(d2, &e, true), 0);
	drv_config_read(d2, 0, &cfg, sizeof(cfg));
	CHECK_EQ(cfg.wce, 0);
	CHECK_EQ(le64toh(cfg.capacity), BLK_IMG / 512);
	memset(g2h(&vm.mem, RDATA, BLK_IMG), 0, BLK_IMG);
	blk_req(VIRTIO_BLK_T_IN, 0, RDATA, BLK_IMG, true, BLK_N + 1);
	virtio_queue_notified(d2, 0);
	blk_drain_now(d2);
	CHECK_EQ(q[0].used->idx, BLK_N + 2);
	CHECK_EQ(*(uint8_t *)g2h(&vm.mem, STATUSES + BLK_N + 1, 1), VIRTIO_BLK_S_OK);
	CHECK(!memcmp(g2h(&vm.mem, RDATA, BLK_IMG), g2h(&vm.mem, DATA, BLK_IMG), BLK_IMG));
	check_hostile(d2, good, n, "virtio-blk");
	virtio_dev_free(d2);

	/* A byte-for-byte copy is the same disk (the stamp is the bytes, not the file). */
	make_file(copy, sizeof(copy), BLK_IMG, 0);
	fd = open(copy, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, g2h(&vm.mem, DATA, BLK_IMG), BLK_IMG, 0) == BLK_IMG);
	close(fd);
	write_section(good, n);
	d2 = blk_on(copy, &e);
	core_apply(d2, &cs);
	CHECK_EQ(restore_model(d2, &e, true), 0);
	virtio_dev_free(d2);

	/* Another image of the same size: refused by its stamp. */
	make_file(other, sizeof(other), BLK_IMG, 9);
	d2 = blk_on(other, &e);
	core_apply(d2, &cs);
	CHECK_EQ(restore_model(d2, &e, true), -EINVAL);
	CHECK(strstr(e.msg, "snapshot: virtio-blk: image ") && strstr(e.msg, "is not the disk"));
	virtio_dev_free(d2);

	/* Another size: refused, saying both. */
	make_file(bigger, sizeof(bigger), 2 * BLK_IMG, 0);
	d2 = blk_on(bigger, &e);
	core_apply(d2, &cs);
	CHECK_EQ(restore_model(d2, &e, true), -EINVAL);
	CHECK(!strcmp(e.msg, "snapshot: virtio-blk: the image is 2 MiB, the snapshot's was 1 MiB"));
	virtio_dev_free(d2);

	unlink(img);
	unlink(copy);
	unlink(other);
	unlink(bigger);
	test_vm_destroy();
	unsetenv("MICA_BLK_NO_URING");
}

static void blk_snapshot_io_uring(void) { blk_threads = false; blk_snapshot(); }
static void blk_snapshot_threads(void) { blk_threads = true; blk_snapshot(); }

/* ---- virtio-console ---- */

#define CON_QS  16
#define SLOT    0x1000
#define CTRL_RX 2
#define CTRL_TX 3
#define RXQ1    4
#define TXQ1    5
#define OUT_CAP 4096

struct con_fixture {
	struct virtio_dev *d;
	int in[2], out0[2], out1[2];
	struct outq *q0, *q1;
};

static uint64_t slot_gpa(int qn, int slot)
{
	return 0x2000000ULL + qn * 0x100000ULL + (uint64_t)slot * SLOT;
}

static void post_buf(int qn, const void *data, uint32_t len)
{
	struct drv *dr = &q[qn];
	uint16_t slot = dr->avail_idx & (dr->size - 1);

	if (data)
		memcpy(g2h(&vm.mem, slot_gpa(qn, slot), len), data, len);
	drv_desc(dr, slot, slot_gpa(qn, slot), len, data ? 0 : VRING_DESC_F_WRITE, 0);
	drv_post(dr, slot);
}

static void settle(void)
{
	struct epoll_event evs[8];
	int n;

	for (int rounds = 0; rounds < 1000 && (n = epoll_wait(vm.loop.epfd, evs, 8, 0)) > 0;
	     rounds++)
		for (int i = 0; i < n; i++)
			((struct ev_handler *)evs[i].data.ptr)->fn(evs[i].data.ptr, evs[i].events);
}

static void ctl_msg(struct virtio_dev *d, uint32_t id, uint16_t event, uint16_t value)
{
	struct virtio_console_control m = { htole32(id), htole16(event), htole16(value) };

	post_buf(CTRL_TX, &m, sizeof(m));
	virtio_queue_notified(d, CTRL_TX);
}

static void pipe_nb(int p[2], int size)
{
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0 || (size && fcntl(p[1], F_SETPIPE_SZ, size) < size))
		abort();
}

/* A console with port 0 and one named port ("p1"): input from a pipe, output to a pipe of one
 * page behind a queue of OUT_CAP bytes, so transmit requests back up. nports 0: port 0 only. */
static void con_create(struct con_fixture *f, int nports)
{
	struct console_port p;

	pipe_nb(f->in, 0);
	pipe_nb(f->out0, 0);
	pipe_nb(f->out1, 4096);
	if (outq_create_named(&vm.loop, f->out0[1], OUT_CAP, "p0", &f->q0) ||
	    outq_create_named(&vm.loop, f->out1[1], OUT_CAP, "p1", &f->q1))
		abort();
	p = (struct console_port){ "p1", f->in[0], f->q1 };
	if (virtio_console_create_ports(&vm.env, f->q0, &p, nports, &f->d))
		abort();
	f->d->transport = &fake_transport;
}

static void con_destroy(struct con_fixture *f)
{
	virtio_dev_free(f->d);
	outq_destroy(f->q0);
	outq_destroy(f->q1);
	for (int i = 0; i < 2; i++) {
		close(f->in[i]);
		close(f->out0[i]);
		close(f->out1[i]);
	}
}

/* An open port stays open and its receive buffers, held at the snapshot waiting for input, are
 * the restored device's to fill; transmit requests held for want of room in the output queue
 * are sent by the restored device; nothing is announced twice. */
static void console_snapshot(void)
{
	struct con_fixture f, g, h;
	struct core_state cs;
	struct err e = { "" };
	uint8_t good[512], big[SLOT], out[8 * SLOT];
	uint16_t ctrl_used, tx_used;
	size_t n, got = 0;
	ssize_t r;
	const uint8_t *buf;

	log_set_level(LOG_ERROR);
	test_vm_init(RAM);
	con_create(&f, 1);
	CHECK(drv_negotiate(f.d, F(VIRTIO_F_VERSION_1) | F(VIRTIO_CONSOLE_F_MULTIPORT)));
	for (int i = 0; i < f.d->ops->num_queues; i++)
		drv_attach_queue(f.d, &q[i], &vm.mem, i, CON_QS);
	drv_set_status(f.d, S_ALL);
	for (int i = 0; i < CON_QS; i++)
		post_buf(CTRL_RX, NULL, 256);
	virtio_queue_notified(f.d, CTRL_RX);
	ctl_msg(f.d, VIRTIO_CONSOLE_BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	ctl_msg(f.d, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	ctl_msg(f.d, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	ctl_msg(f.d, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	ctrl_used = q[CTRL_RX].used->idx;
	CHECK(ctrl_used >= 5); /* PORT_ADD x2, CONSOLE_PORT, PORT_OPEN x2, PORT_NAME */
	/* Four receive buffers: "abc" fills the first, the other three are held for more. */
	for (int i = 0; i < 4; i++)
		post_buf(RXQ1, NULL, 64);
	virtio_queue_notified(f.d, RXQ1);
	CHECK_EQ(write(f.in[1], "abc", 3), 3);
	settle();
	CHECK_EQ(drv_vq(f.d, RXQ1).last_avail, 4);
	CHECK_EQ(q[RXQ1].used->idx, 1);
	/* Eight pages of output for one page of pipe and one of queue: the rest is held. */
	memset(big, 'x', sizeof(big));
	for (int i = 0; i < 8; i++) {
		big[0] = (uint8_t)('a' + i);
		post_buf(TXQ1, big, SLOT);
	}
	virtio_queue_notified(f.d, TXQ1);
	tx_used = q[TXQ1].used->idx;
	CHECK(tx_used < 8);
	CHECK(drv_vq(f.d, TXQ1).last_avail > tx_used);

	CHECK_EQ(save_model(f.d, &e), 0);
	core_capture(f.d, &cs);
	n = section_bytes(good, sizeof(good));
	con_destroy(&f); /* what its output queue held is the old host's */

	con_create(&g, 1);
	core_apply(g.d, &cs);
	CHECK_EQ(restore_model(g.d, &e, true), 0);
	CHECK_EQ(write(g.in[1], "hello", 5), 5);
	for (int i = 0; i < 1000 && got < (size_t)(8 - tx_used) * SLOT; i++) {
		settle();
		while ((r = read(g.out1[0], out + got, sizeof(out) - got)) > 0)
			got += (size_t)r;
	}
	/* The port is still open: the input reaches the second buffer, the first held. */
	CHECK_EQ(q[RXQ1].used->idx, 2);
	CHECK_EQ(q[RXQ1].used->ring[1].id, 1);
	CHECK_EQ(q[RXQ1].used->ring[1].len, 5);
	buf = g2h(&vm.mem, slot_gpa(RXQ1, (int)q[RXQ1].used->ring[1].id), 5);
	CHECK(!memcmp(buf, "hello", 5));
	/* Every transmit request went back, and the restored device sent each one the source
	 * held, whole and in order (one the source's queue had taken part of, again). */
	CHECK_EQ(q[TXQ1].used->idx, 8);
	CHECK_EQ(got, (8 - tx_used) * SLOT);
	for (int k = 0; k < 8 - tx_used && (size_t)k * SLOT < got; k++)
		CHECK_EQ(out[k * SLOT], 'a' + tx_used + k);
	/* The guest was told everything before: nothing new on the control queue. */
	CHECK_EQ(q[CTRL_RX].used->idx, ctrl_used);
	check_hostile(g.d, good, n, "virtio-console");
	con_destroy(&g);

	/* A console with other ports than the snapshot's is refused. */
	write_section(good, n);
	con_create(&h, 0);
	CHECK_EQ(restore_model(h.d, &e, true), -EINVAL);
	CHECK(strstr(e.msg, "snapshot: virtio-console: the snapshot has 2 port(s)") != NULL);
	con_destroy(&h);
	test_vm_destroy();
}

/* ---- virtio-balloon ---- */

#define BAL_QS  16
#define PAGES   0x800000ULL
#define LISTS   0xC00000ULL

static int ctl_connect(struct control *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct err e = { "" };
	int fd;

	if (control_listen(c, path, &e) < 0)
		abort();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	return fd;
}

static void ctl_cmd(int fd, const char *cmd, char *reply, size_t len)
{
	size_t got = 0;

	if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd) || write(fd, "\n", 1) != 1)
		abort();
	for (int tries = 0; !got || reply[got - 1] != '\n'; tries++) {
		ssize_t r;

		if (tries == 500)
			abort();
		settle();
		usleep(1000);
		r = recv(fd, reply + got, len - 1 - got, MSG_DONTWAIT);
		if (r > 0)
			got += (size_t)r;
		else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || got == len - 1)
			abort();
	}
	reply[got - 1] = 0;
}

static uint64_t stat_of(struct virtio_dev *d, const char *name)
{
	struct stat_value v[STATS_MAX_VALUES];
	int n = virtio_dev_stats(d, v, STATS_MAX_VALUES);

	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			return v[i].num;
	return ~0ULL;
}

/* Target, actual, the pages given back and the stats buffer the device holds survive. */
static void balloon_snapshot(void)
{
	struct control *c1, *c2;
	struct virtio_dev *d, *d2;
	struct core_state cs;
	struct err e = { "" };
	struct virtio_balloon_config cfg;
	struct virtio_balloon_stat st = { .tag = VIRTIO_BALLOON_S_MEMFREE, .val = 12345 };
	char path1[sizeof(snap_tmp_dir) + 8], path2[sizeof(snap_tmp_dir) + 8], reply[512];
	uint32_t pfns[8], actual = 8;
	uint8_t good[512];
	uint16_t stats_used;
	size_t n;
	int fd1, fd2;

	log_set_level(LOG_ERROR);
	test_vm_init(RAM);
	snprintf(path1, sizeof(path1), "%s/c1", snap_tmp_dir);
	snprintf(path2, sizeof(path2), "%s/c2", snap_tmp_dir);
	if (control_create(&vm.loop, &c1) || virtio_balloon_create(&vm.env, c1, &d))
		abort();
	d->transport = &fake_transport;
	fd1 = ctl_connect(c1, path1);
	CHECK(drv_negotiate(d, F(VIRTIO_F_VERSION_1) | F(VIRTIO_BALLOON_F_STATS_VQ)));
	for (int i = 0; i < 3; i++)
		drv_attach_queue(d, &q[i], &vm.mem, i, BAL_QS);
	drv_set_status(d, S_ALL);
	ctl_cmd(fd1, "balloon 4", reply, sizeof(reply));
	/* The guest inflates 8 pages and says so; its stats buffer is held. */
	for (int i = 0; i < 8; i++)
		pfns[i] = (uint32_t)((PAGES >> 12) + i);
	memcpy(g2h(&vm.mem, LISTS, sizeof(pfns)), pfns, sizeof(pfns));
	drv_desc(&q[0], 0, LISTS, sizeof(pfns), 0, 0);
	drv_post(&q[0], 0);
	virtio_queue_notified(d, 0);
	drv_config_write(d, offsetof(struct virtio_balloon_config, actual), &actual, 4);
	memcpy(g2h(&vm.mem, LISTS + 0x1000, sizeof(st)), &st, sizeof(st));
	drv_desc(&q[2], 0, LISTS + 0x1000, sizeof(st), 0, 0);
	drv_post(&q[2], 0);
	virtio_queue_notified(d, 2);
	CHECK_EQ(q[2].used->idx, 0);

	CHECK_EQ(save_model(d, &e), 0);
	core_capture(d, &cs);
	n = section_bytes(good, sizeof(good));
	virtio_dev_free(d);
	close(fd1);
	control_destroy(c1);

	if (control_create(&vm.loop, &c2) || virtio_balloon_create(&vm.env, c2, &d2))
		abort();
	d2->transport = &fake_transport;
	fd2 = ctl_connect(c2, path2);
	core_apply(d2, &cs);
	CHECK_EQ(restore_model(d2, &e, true), 0);
	drv_config_read(d2, 0, &cfg, sizeof(cfg));
	CHECK_EQ(cfg.num_pages, 4 * 256);
	CHECK_EQ(cfg.actual, 8);
	CHECK_EQ(stat_of(d2, "inflated_pages"), 8);
	/* The statistics read before, and the held buffer goes back when new ones are asked. */
	ctl_cmd(fd2, "balloon-stats", reply, sizeof(reply));
	CHECK(strstr(reply, "updates 1") && strstr(reply, "12345"));
	stats_used = q[2].used->idx;
	CHECK_EQ(stats_used, 1);
	CHECK_EQ(q[2].used->ring[0].id, 0);
	check_hostile(d2, good, n, "virtio-balloon");
	virtio_dev_free(d2);
	close(fd2);
	control_destroy(c2);
	test_vm_destroy();
}

/* ---- virtio-net ---- */

static int nb_send(struct net_backend *be, const struct iovec *iov, int iovcnt, size_t len)
{
	(void)be, (void)iov, (void)iovcnt, (void)len;
	return 0;
}

static void nb_destroy(struct net_backend *be)
{
	free(be);
}

static const struct net_backend_ops nb_ops = { .send = nb_send, .destroy = nb_destroy };

/* A device whose MAC ends in last; given with mac= when given, else a default. */
/* Queues 0..nq-1 attached (16 entries each) and DRIVER_OK; then the model saved, the core's
 * part captured, and the section's bytes copied to buf: returns their length. */
static size_t up_and_save(struct virtio_dev *d, int nq, struct core_state *cs, uint8_t *buf,
			  size_t len, struct err *e)
{
	for (int i = 0; i < nq; i++)
		drv_attach_queue(d, &q[i], &vm.mem, i, 16);
	drv_set_status(d, S_ALL);
	CHECK_EQ(save_model(d, e), 0);
	core_capture(d, cs);
	return section_bytes(buf, len);
}

static struct virtio_dev *net_new_mac(const char *be_name, const char *ifname, uint8_t last,
				      bool given)
{
	struct net_backend *be = calloc(1, sizeof(*be));
	struct net_opts o = { .kind = ifname ? NET_TAP : NET_USER, .mac_set = given,
			      .mac = { 0x52, 0x54, 0, 1, 2, last } };
	struct virtio_dev *d;
	struct err e = { "" };

	if (!be)
		abort();
	be->ops = &nb_ops;
	be->name = be_name;
	if (ifname)
		snprintf(o.ifname, sizeof(o.ifname), "%s", ifname);
	if (virtio_net_create_with(&vm.env, &o, be, &d, &e))
		abort();
	d->transport = &fake_transport;
	return d;
}

static struct virtio_dev *net_new(const char *be_name, const char *ifname, uint8_t last)
{
	return net_new_mac(be_name, ifname, last, true);
}

/* The network must be the snapshot's: backend, tap interface, MAC (a default MAC, as a restore
 * without --kernel derives, becomes the snapshot's). */
static void net_snapshot(void)
{
	struct virtio_dev *d, *d2;
	struct core_state cs;
	struct err e = { "" };
	struct virtio_net_config cfg;
	uint8_t good[512];
	size_t n;

	log_set_level(LOG_ERROR);
	test_vm_init(RAM);
	d = net_new("tap", "tap7", 9);
	CHECK(drv_negotiate(d, F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MAC) |
			       F(VIRTIO_NET_F_MRG_RXBUF)));
	n = up_and_save(d, 2, &cs, good, sizeof(good), &e);
	virtio_dev_free(d);

	d2 = net_new("tap", "tap7", 9);
	core_apply(d2, &cs);
	CHECK_EQ(restore_model(d2, &e, true), 0);
	memset(&cfg, 0, sizeof(cfg));
	drv_config_read(d2, 0, &cfg, 6);
	drv_config_read(d2, offsetof(struct virtio_net_config, status), &cfg.status, 2);
	CHECK_EQ(cfg.mac[5], 9);
	CHECK_EQ(le16toh(cfg.status), VIRTIO_NET_S_LINK_UP);
	check_hostile(d2, good, n, "virtio-net");
	virtio_dev_free(d2);

	write_section(good, n);
	d2 = net_new("tap", "tap8", 9);
	CHECK_EQ(restore_model(d2, &e, true), -EINVAL);
	CHECK(!strcmp(e.msg, "snapshot: virtio-net: the snapshot's tap was tap7, this one is tap8 "
		      "(give ifname=tap7)"));
	virtio_dev_free(d2);
	d2 = net_new("user", NULL, 9);
	CHECK_EQ(restore_model(d2, &e, true), -EINVAL);
	CHECK(!strcmp(e.msg, "snapshot: virtio-net: the snapshot's network was tap, this one is "
		      "user"));
	virtio_dev_free(d2);
	d2 = net_new("tap", "tap7", 10);
	CHECK_EQ(restore_model(d2, &e, true), -EINVAL);
	CHECK(strstr(e.msg, "snapshot: virtio-net: the snapshot's MAC was 52:54:00:01:02:09") != NULL);
	virtio_dev_free(d2);
	d2 = net_new_mac("tap", "tap7", 10, false);
	core_apply(d2, &cs);
	CHECK_EQ(restore_model(d2, &e, true), 0);
	drv_config_read(d2, 0, &cfg, 6);
	CHECK_EQ(cfg.mac[5], 9);
	virtio_dev_free(d2);
	test_vm_destroy();
}

/* ---- virtio-fs ---- */

#define FS_REQ   0x3000000ULL
#define FS_REPLY 0x3100000ULL

static struct virtio_dev *fs_new(const char *share)
{
	struct fs_opts o;
	struct err e = { "" };
	struct virtio_dev *d;

	if (fs_parse_opts(share, &o, &e) || virtio_fs_create(&vm.env, &o, &d, &e)) {
		printf("#   %s\n", e.msg);
		abort();
	}
	d->transport = &fake_transport;
	return d;
}

/* Unmounted, a share is nothing beyond the core's state; once the guest mounted it (FUSE_INIT
 * answered) a snapshot is refused, saying when to take it. */
static void fs_snapshot(void)
{
	struct {
		struct fuse_in_header h;
		struct fuse_init_in i;
	} req = { .h = { .len = sizeof(req), .opcode = FUSE_INIT, .unique = 1 },
		  .i = { .major = 7, .minor = FUSE_KERNEL_MINOR_VERSION } };
	char share[sizeof(snap_tmp_dir) + 8];
	struct virtio_dev *d, *d2;
	struct core_state cs;
	struct err e = { "" };
	uint8_t good[64];
	uint64_t one = 1;
	size_t n;

	log_set_level(LOG_ERROR);
	test_vm_init(RAM);
	snprintf(share, sizeof(share), "%s/share", snap_tmp_dir);
	CHECK_EQ(mkdir(share, 0700), 0);
	d = fs_new(share);
	CHECK(drv_negotiate(d, F(VIRTIO_F_VERSION_1)));
	n = up_and_save(d, 2, &cs, good, sizeof(good), &e);

	/* The guest mounts: INIT on the request queue, served by the device's thread. */
	memcpy(g2h(&vm.mem, FS_REQ, sizeof(req)), &req, sizeof(req));
	drv_desc(&q[1], 0, FS_REQ, sizeof(req), VRING_DESC_F_NEXT, 1);
	drv_desc(&q[1], 1, FS_REPLY, 4096, VRING_DESC_F_WRITE, 0);
	drv_post(&q[1], 0);
	CHECK_EQ(write(virtio_kick_fd(d, 1), &one, sizeof(one)), (ssize_t)sizeof(one));
	for (int i = 0; i < 5000 && __atomic_load_n(&q[1].used->idx, __ATOMIC_ACQUIRE) != 1; i++)
		usleep(1000);
	CHECK_EQ(q[1].used->idx, 1);
	CHECK_EQ(save_model(d, &e), -EBUSY);
	CHECK(!strcmp(e.msg, "snapshot: virtio-fs: a share is mounted in the guest; snapshot "
		      "before mounting"));
	virtio_dev_free(d);

	/* The snapshot taken before the mount restores. */
	write_section(good, n);
	d2 = fs_new(share);
	core_apply(d2, &cs);
	CHECK_EQ(restore_model(d2, &e, true), 0);
	check_hostile(d2, good, n, "virtio-fs");
	virtio_dev_free(d2);
	rmdir(share);
	test_vm_destroy();
}

/* ---- virtio-rng: nothing of its own ---- */

static void rng_nothing_to_save(void)
{
	struct virtio_dev *d;

	test_vm_init(RAM);
	CHECK_EQ(virtio_rng_create(&vm.env, &d), 0);
	CHECK(!d->ops->drain && !d->ops->save && !d->ops->restore);
	virtio_dev_free(d);
	test_vm_destroy();
}

TEST_MAIN("snapshot-models",
	  T(snap_tmp_setup),
	  T(blk_snapshot_io_uring),
	  T(blk_snapshot_threads),
	  T(console_snapshot),
	  T(balloon_snapshot),
	  T(net_snapshot),
	  T(fs_snapshot),
	  T(rng_nothing_to_save),
	  T(snap_tmp_cleanup));
