/* The points of a `mica sandbox` run the guest's init reports on mica's milestone port
 * (MILESTONE_PORT, 0x504: an 8-bit write of the number), for --json's times. */
#ifndef MICA_SANDBOX_MILESTONES_H
#define MICA_SANDBOX_MILESTONES_H

#define SANDBOX_MILESTONE_INIT 1 /* the init runs (the kernel has booted) */
#define SANDBOX_MILESTONE_CMD  2 /* CMD is about to be executed (everything mounted) */

#endif
