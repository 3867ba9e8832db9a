/* The parts of the device target (fuzz_virtio_dev.c): the driver there brings a device up and
 * runs operations on it; each device model's file (fuzz_dev_*.c) adds the model's own
 * operations and invariants; fuzz_track.c watches every chain the device pops and pushes.
 *
 * fuzz_track.c wraps virtq_pop() and virtq_push() (linked with -Wl,--wrap), so it knows which
 * chains the device holds. After every operation it checks, beyond the sanitizers:
 *   - every byte of guest RAM the device changed lies in a device-writable buffer of a chain
 *     it held during the operation, or in a used ring (compared around everything the device
 *     was pointed at after each operation, and all of RAM at the end);
 *   - a chain is pushed only while the device holds it (popped since the queue was last
 *     enabled, not pushed yet), with a used length no larger than its writable bytes. */
#ifndef MICA_FUZZ_DEV_H
#define MICA_FUZZ_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/unit/vring_driver.h" /* the driver's register writes (drv_set_status...) */

/* One chain the device popped, as virtq_pop() handed it over. */
struct fuzz_chain {
	int q;
	uint16_t head;
	bool live;              /* held by the device */
	bool pushed;            /* pushed during this operation */
	bool touched;           /* popped or pushed during this operation */
	uint32_t written;       /* the used length, once pushed */
	uint64_t read_len, write_len;
	uint32_t nsegs;
	struct virtq_seg *segs;
};

struct fuzz_model {
	/* Creates the device; opt: 5 option bits from the header. Sets *features to the device
	 * feature bits the driver acks. */
	struct virtio_dev *(*create)(const struct virtio_env *env, uint8_t opt, uint64_t *features);
	/* The model's operations 0 and 1 (op codes 1 and 2), arg 0-31; a reset goes through
	 * fuzz_dev_reset(). NULL: op code 1 kicks queue 0. */
	void (*op)(struct virtio_dev *dev, int which, uint8_t arg);
	/* Optional: delivers asynchronous completions, as a step of its own after each op. */
	void (*settle)(struct virtio_dev *dev);
	/* Optional: a chain was just popped (the device has not looked at it yet). */
	void (*popped)(const struct fuzz_chain *c);
	/* Optional: invariants after each operation; `disrupted`: the device was reset or broke
	 * during it (in-flight state may have been dropped). */
	void (*check)(struct virtio_dev *dev, bool disrupted);
	/* Optional: after the device was destroyed. */
	void (*finish)(void);
};

extern const struct fuzz_model fuzz_model_blk, fuzz_model_net, fuzz_model_balloon;

/* fuzz_track.c. Starts watching dev, whose queue q has its used ring at used_gpa[q] (size
 * qsize; the array is the driver's, read as queues are used); guest RAM as it is now is the
 * reference for the write check. */
void fuzz_track_start(struct virtio_dev *dev, const struct fuzz_model *m, const uint64_t *used_gpa,
		      uint16_t qsize);
/* The harness (the driver) itself wrote guest RAM at p. */
void fuzz_track_driver_wrote(const void *p, uint64_t len);
/* Queue q (-1: every queue) was disabled or reset: the device holds none of its chains. */
void fuzz_track_forget(int q);
/* After an operation: the write check, of the parts of RAM the device was pointed at (or of
 * everything, at the end of the input). */
void fuzz_track_check_writes(bool everywhere);
/* True when the writable buffers of the chains touched in this operation overlap one another
 * or a used ring: what one push wrote may have been overwritten by another. */
bool fuzz_track_aliased(void);
/* How many chains the device has pushed so far, on any queue (its used ring entries: the
 * rings themselves may be overwritten by buffers that overlap them). */
unsigned long fuzz_track_pushes(void);
/* The chains pushed on q during this operation, in order (i from 0; NULL past the last). */
const struct fuzz_chain *fuzz_track_pushed(int q, unsigned i);
/* The chain popped last on q and still held, or NULL (also when there were too many chains
 * to track). */
const struct fuzz_chain *fuzz_track_last_live(int q);
/* Copies up to max bytes of c's writable (or readable) bytes from offset skip; returns how
 * many. */
uint64_t fuzz_chain_bytes(const struct fuzz_chain *c, bool writable, uint64_t skip, uint8_t *dst,
			  uint64_t max);
/* Ends the operation: pushed and forgotten chains are dropped. */
void fuzz_track_next_op(void);

/* fuzz_virtio_dev.c: resets the device (status 0) as the driver does. */
void fuzz_dev_reset(struct virtio_dev *dev);

/* stubs.c: runs a command registered with control_register, as the control socket would. */
int fuzz_control_run(const char *name, const char *args, char *out, size_t len);

#endif
