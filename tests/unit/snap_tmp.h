/* One snapshot file per test program, in a directory of its own under /tmp: snap_tmp_setup()
 * as the first test, snap_tmp_cleanup() as the last; the file's name is snap_tmp_path.
 * Header-only. */
#ifndef MICA_TEST_SNAP_TMP_H
#define MICA_TEST_SNAP_TMP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char snap_tmp_dir[] = "/tmp/mica-test-snap.XXXXXX";
static char snap_tmp_path[sizeof(snap_tmp_dir) + 16];

static void snap_tmp_setup(void)
{
	if (!mkdtemp(snap_tmp_dir))
		abort();
	snprintf(snap_tmp_path, sizeof(snap_tmp_path), "%s/snap", snap_tmp_dir);
}

static void snap_tmp_cleanup(void)
{
	unlink(snap_tmp_path);
	rmdir(snap_tmp_dir);
}

#endif
