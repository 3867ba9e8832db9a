/* Watches the chains a device pops and pushes, and what it writes into guest RAM (see
 * fuzz_dev.h). The target is linked with -Wl,--wrap=virtq_pop,--wrap=virtq_push: the virtio
 * core's calls come here first. */
#include <stdlib.h>

#include "devices/virtio/virtq.h"
#include "tests/fuzz/fuzz_dev.h"
#include "vmm/util.h"

#define MAX_CHAINS 2048
#define MAX_SEGS   (64 * 1024)
#define RAM_BYTES  (FUZZ_LOW_SIZE + FUZZ_HIGH_SIZE)

struct range {
	uint64_t start, end;   /* offsets in RAM_BYTES: the low region, then the high one */
	int tag;               /* q * 65536 + head for a chain, -1 - q for a used ring */
	unsigned chain;        /* index in chains[] (pop order) */
	bool pushed;
};

int __real_virtq_pop(struct virtq *vq, struct virtq_req *req, enum virtq_dir dir, const char **why);
void __real_virtq_push(struct virtq *vq, uint16_t head, uint32_t written);

static struct virtio_dev *dev;
static const struct fuzz_model *model;
static const uint64_t *used_gpa;     /* the driver's, filled as it enables queues */
static uint16_t qsize;
static uint16_t last_avail[VIRTIO_MAX_QUEUES]; /* the device's, after its last pop */
static struct fuzz_chain chains[MAX_CHAINS];
static unsigned nchains;
static struct virtq_seg segs[MAX_SEGS];
static unsigned nsegs;
static unsigned push_order[MAX_CHAINS];        /* chains pushed in this operation */
static unsigned npushed;
static bool overflow;                          /* more chains than tracked: no checks */
static unsigned long pushes;                   /* every push, tracked or not */
static _Alignas(64) uint8_t shadow[RAM_BYTES];  /* guest RAM after the last operation */
/* Per region, the part compared after each operation: everything the device was pointed at
 * (rings, buffers) and 4 KiB around; the rest is compared once, at the end. */
static uint64_t win_start[2], win_end[2];
static struct range ranges[MAX_SEGS + VIRTIO_MAX_QUEUES];

static int queue_of(const struct virtq *vq)
{
	if (!dev || vq < dev->vqs || vq >= dev->vqs + dev->ops->num_queues)
		return -1;
	return (int)(vq - dev->vqs);
}

/* Where p lies in RAM_BYTES; p must be in RAM. */
static uint64_t offset_of(const void *p)
{
	const uint8_t *b = p, *lo = fuzz_mem.regions[0].hva, *hi = fuzz_mem.regions[1].hva;

	if (b >= lo && b < lo + FUZZ_LOW_SIZE)
		return (uint64_t)(b - lo);
	FUZZ_ASSERT(b >= hi && b < hi + FUZZ_HIGH_SIZE);
	return FUZZ_LOW_SIZE + (uint64_t)(b - hi);
}

/* Widens the compared windows to cover [p, p + len) (in RAM) and 4 KiB around it. */
static void watch(const void *p, uint64_t len)
{
	for (int i = 0; i < 2; i++) {
		const struct mem_region *r = &fuzz_mem.regions[i];
		uint64_t off = (uint64_t)((const uint8_t *)p - r->hva);

		if ((const uint8_t *)p < r->hva || off >= r->size)
			continue;
		off &= ~63ULL;
		win_start[i] = MIN(win_start[i], off > 4096 ? off - 4096 : 0);
		win_end[i] = MAX(win_end[i], MIN(r->size, ALIGN_UP(off + len + 4096, 64)));
	}
}

/* The device moved its last_avail back (net gives back chains it cannot use yet): the chains
 * popped last are no longer held. */
static void sync_given_back(int q)
{
	uint16_t n = (uint16_t)(last_avail[q] - dev->vqs[q].last_avail);

	if (!dev->vqs[q].ready || !n || n > qsize)
		return;
	for (unsigned i = nchains; i-- > 0 && n;) {
		if (chains[i].q == q && chains[i].live) {
			chains[i].live = false;
			chains[i].touched = true;
			n--;
		}
	}
	FUZZ_ASSERT(n == 0); /* it gave back more than it held */
	last_avail[q] = dev->vqs[q].last_avail;
}

int __wrap_virtq_pop(struct virtq *vq, struct virtq_req *req, enum virtq_dir dir, const char **why)
{
	int q = queue_of(vq), err;
	struct fuzz_chain c;

	if (q >= 0)
		sync_given_back(q);
	err = __real_virtq_pop(vq, req, dir, why);
	if (err || q < 0)
		return err;
	last_avail[q] = vq->last_avail;
	for (int i = 0; i < req->nsegs; i++) {
		FUZZ_ASSERT(fuzz_in_ram(req->segs[i].hva, req->segs[i].len));
		watch(req->segs[i].hva, req->segs[i].len);
	}
	c = (struct fuzz_chain){ .q = q, .head = req->head, .live = true, .touched = true,
				 .read_len = req->read_len, .write_len = req->write_len,
				 .nsegs = req->nsegs, .segs = req->segs };
	if (model->popped)
		model->popped(&c);
	if (nchains == MAX_CHAINS || req->nsegs > MAX_SEGS - nsegs) {
		overflow = true;
		return 0;
	}
	c.segs = memcpy(&segs[nsegs], req->segs, sizeof(req->segs[0]) * req->nsegs);
	nsegs += req->nsegs;
	chains[nchains++] = c;
	return 0;
}

void __wrap_virtq_push(struct virtq *vq, uint16_t head, uint32_t written)
{
	int q = queue_of(vq);

	pushes++;
	if (q >= 0 && !overflow) {
		struct fuzz_chain *c = NULL;

		sync_given_back(q);
		for (unsigned i = 0; i < nchains && !c; i++)
			if (chains[i].live && chains[i].q == q && chains[i].head == head)
				c = &chains[i];
		FUZZ_ASSERT(c);                      /* a chain the device does not hold */
		FUZZ_ASSERT(written <= c->write_len); /* more than the driver gave room for */
		c->live = false;
		c->pushed = c->touched = true;
		c->written = written;
		push_order[npushed++] = (unsigned)(c - chains);
	}
	__real_virtq_push(vq, head, written);
}

void fuzz_track_start(struct virtio_dev *d, const struct fuzz_model *m, const uint64_t *used,
		      uint16_t size)
{
	dev = d;
	model = m;
	used_gpa = used;
	qsize = size;
	memset(last_avail, 0, sizeof(last_avail));
	nchains = nsegs = npushed = 0;
	overflow = false;
	win_start[0] = win_start[1] = UINT64_MAX;
	win_end[0] = win_end[1] = 0;
	memcpy(shadow, fuzz_mem.regions[0].hva, FUZZ_LOW_SIZE);
	memcpy(shadow + FUZZ_LOW_SIZE, fuzz_mem.regions[1].hva, FUZZ_HIGH_SIZE);
}

void fuzz_track_driver_wrote(const void *p, uint64_t len)
{
	memcpy(shadow + offset_of(p), p, len);
	watch(p, len);
}

void fuzz_track_forget(int q)
{
	for (unsigned i = 0; i < nchains; i++) {
		if (chains[i].live && (q < 0 || chains[i].q == q)) {
			chains[i].live = false;
			chains[i].touched = true;
		}
	}
	for (int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if (q < 0 || i == q)
			last_avail[i] = 0;
}

static int by_start(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* The used rings and the writable buffers of the chains held or touched in this operation
 * (touched_only: only those touched), sorted by start. */
static unsigned collect(bool touched_only)
{
	unsigned n = 0;

	for (int q = 0; q < dev->ops->num_queues; q++) {
		void *u = gpa_range(&fuzz_mem, used_gpa[q], 6 + 8ULL * qsize);

		if (u)
			ranges[n++] = (struct range){ offset_of(u), offset_of(u) + 6 + 8ULL * qsize,
						      -1 - q, 0, false };
	}
	for (unsigned i = 0; i < nchains; i++) {
		const struct fuzz_chain *c = &chains[i];

		if (!c->touched && (touched_only || !c->live))
			continue;
		for (uint32_t s = 0; s < c->nsegs; s++) {
			uint64_t o;

			if (!c->segs[s].write || !c->segs[s].len)
				continue;
			o = offset_of(c->segs[s].hva);
			ranges[n++] = (struct range){ o, o + c->segs[s].len,
						      c->q * 65536 + c->head, i, c->pushed };
		}
	}
	qsort(ranges, n, sizeof(ranges[0]), by_start);
	return n;
}

/* Merges sorted ranges into disjoint ones; returns how many. */
static unsigned merge(unsigned n)
{
	unsigned m = 0;

	for (unsigned i = 0; i < n; i++) {
		if (m && ranges[i].start <= ranges[m - 1].end) {
			if (ranges[i].end > ranges[m - 1].end)
				ranges[m - 1].end = ranges[i].end;
		} else {
			ranges[m++] = ranges[i];
		}
	}
	return m;
}

/* Plain loops over all of guest RAM after every operation, out of the sanitizers' and the
 * coverage counters' sight (they would make them the target's main cost). */
#define UNWATCHED __attribute__((no_sanitize("address", "undefined", "coverage")))

/* The offset of the first 64-byte block from `from` on (a multiple of 64) where a and b
 * differ, or n. */
UNWATCHED static uint64_t next_diff(const uint8_t *a, const uint8_t *b, uint64_t from, uint64_t n)
{
	for (uint64_t i = from; i < n; i += 8) {
		uint64_t x, y;

		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		if (x != y)
			return i & ~63ULL;
	}
	return n;
}

/* Checks the changed bytes of one 64-byte block against the merged ranges from *r on, and
 * takes the block into the shadow. */
UNWATCHED static void check_block(uint8_t *old, const uint8_t *now, uint64_t off, unsigned n,
				  unsigned *r)
{
	for (uint64_t b = 0; b < 64 && !overflow; b++) {
		if (old[b] == now[b])
			continue;
		while (*r < n && ranges[*r].end <= off + b)
			(*r)++;
		/* A write outside every writable buffer the device held and every used ring. */
		FUZZ_ASSERT(*r < n && ranges[*r].start <= off + b);
	}
	memcpy(old, now, 64);
}

void fuzz_track_check_writes(bool everywhere)
{
	unsigned n = 0, r = 0;
	bool ranges_ready = false;

	for (int q = 0; q < dev->ops->num_queues; q++) {
		void *u = gpa_range(&fuzz_mem, used_gpa[q], 6 + 8ULL * qsize);

		sync_given_back(q);
		if (u)
			watch(u, 6 + 8ULL * qsize);
	}
	for (int i = 0; i < 2; i++) {
		const uint8_t *now = fuzz_mem.regions[i].hva;
		uint8_t *old = shadow + (i ? FUZZ_LOW_SIZE : 0);
		uint64_t end = everywhere ? fuzz_mem.regions[i].size : win_end[i];

		for (uint64_t o = next_diff(old, now, everywhere ? 0 : win_start[i], end); o < end;
		     o = next_diff(old, now, o + 64, end)) {
			if (!ranges_ready) {
				n = overflow ? 0 : merge(collect(false));
				ranges_ready = true;
			}
			check_block(old + o, now + o, (i ? FUZZ_LOW_SIZE : 0) + o, n, &r);
		}
	}
}

bool fuzz_track_aliased(void)
{
	unsigned n;
	const struct range *far; /* the range reaching furthest so far */

	if (overflow)
		return true;
	n = collect(true);
	far = &ranges[0]; /* read only when n > 1 */
	for (unsigned i = 1; i < n; i++) {
		const struct range *x = &ranges[i];
		/* A chain given back and popped again overlaps itself: fine, as the later pop
		 * rewrites what the earlier one wrote. */
		bool same = x->tag == far->tag && x->tag >= 0 && x->start == far->start &&
			    x->end == far->end && !(x->chain < far->chain ? x : far)->pushed;

		if (x->start < far->end && !same)
			return true;
		if (x->end > far->end)
			far = x;
	}
	return false;
}

unsigned long fuzz_track_pushes(void)
{
	return pushes;
}

const struct fuzz_chain *fuzz_track_pushed(int q, unsigned i)
{
	for (unsigned k = 0; k < npushed; k++)
		if (chains[push_order[k]].q == q && i-- == 0)
			return &chains[push_order[k]];
	return NULL;
}

const struct fuzz_chain *fuzz_track_last_live(int q)
{
	if (overflow)
		return NULL;
	for (unsigned i = nchains; i-- > 0;)
		if (chains[i].q == q && chains[i].live)
			return &chains[i];
	return NULL;
}

uint64_t fuzz_chain_bytes(const struct fuzz_chain *c, bool writable, uint64_t skip, uint8_t *dst,
			  uint64_t max)
{
	uint64_t done = 0;

	for (uint32_t s = 0; s < c->nsegs && done < max; s++) {
		uint64_t len = c->segs[s].len, k;

		if (c->segs[s].write != writable)
			continue;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		k = len - skip < max - done ? len - skip : max - done;
		memcpy(dst + done, (uint8_t *)c->segs[s].hva + skip, k);
		done += k;
		skip = 0;
	}
	return done;
}

void fuzz_track_next_op(void)
{
	unsigned kept = 0, kept_segs = 0;

	for (unsigned i = 0; i < nchains; i++) {
		struct fuzz_chain c = chains[i];

		if (!c.live)
			continue;
		memmove(&segs[kept_segs], c.segs, sizeof(segs[0]) * c.nsegs);
		c.segs = &segs[kept_segs];
		c.touched = c.pushed = false;
		kept_segs += c.nsegs;
		chains[kept++] = c;
	}
	nchains = kept;
	nsegs = kept_segs;
	npushed = 0;
}
