/* The points of a `mica sandbox` run the guest's init reports on mica's milestone port
 * (MILESTONE_PORT, 0x504: an 8-bit write of the number), for --json's times. */
#ifndef MICA_SANDBOX_MILESTONES_H
#define MICA_SANDBOX_MILESTONES_H

#define SANDBOX_MILESTONE_INIT 1 /* the init runs (the kernel has booted) */
#define SANDBOX_MILESTONE_CMD  2 /* CMD is about to be executed (everything mounted) */
/* The modules are loaded, and nothing of the job is read or mounted yet: from here on the
 * guest is the same for every job, the point a warm sandbox snapshots. Next, the init reads the
 * job from the port SANDBOX_PORT_JOB (sandbox/job.h). */
#define SANDBOX_MILESTONE_READY 3

#endif
