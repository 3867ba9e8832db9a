/* Confinement for threads started during setup.
 *
 * The confinement (Landlock, seccomp) is applied by the composition root once setup is done, on the
 * main thread, and is inherited by the threads it starts afterwards (the vCPUs). A thread that a
 * device starts during setup (the blk I/O pool when io_uring is unavailable) already runs then:
 * it calls confine_late_thread() before each piece of guest-driven work, which runs, once per
 * thread, every confinement step registered since its last call. No request of the guest is
 * served by a thread that skipped a step. */
#ifndef MICA_CONFINE_H
#define MICA_CONFINE_H

/* Registers a step (0 or -errno), in order; called on the main thread before the guest runs.
 * -ENOSPC when full. */
int confine_add(int (*step)(void));
/* Runs the steps registered since *done (a thread's own counter, 0 at start). A step that
 * fails ends mica with status 125: the thread would otherwise serve the guest unconfined. */
void confine_late_thread(unsigned *done);

#endif
