/* Finding the host's named virtio-console ports (the job's, the streams'), and waiting for
 * them.
 *
 * They appear a little after virtio_console loads: the device announces its ports through its
 * control queue, the driver's work queue adds each one (/sys/class/virtio-ports/vportNpM) and
 * later learns its name (a "change" uevent), and the console port gets its hvc backend. So
 * the init looks, and while something is missing waits for the next kernel uevent (or 50 ms:
 * becoming a console sends none), up to WAIT_SECONDS in all.
 *
 * The host marks a named port open from its side (VIRTIO_CONSOLE_PORT_OPEN 1) before it names
 * it (both after the guest's PORT_READY), so that a read of a port found by name does not see
 * an end of file that is only a race; the end of the host's input is PORT_OPEN 0 after the
 * data: the guest reads the data, then 0. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/init/init.h"

#define PORTS_DIR    "/sys/class/virtio-ports"
#define WAIT_SECONDS 20
#define RECHECK_MS   50

int open_port(const char *name, int flags)
{
	char path[300], got[64];
	struct dirent *d;
	int fd = -1;
	DIR *dir;

	dir = opendir(PORTS_DIR);
	if (!dir)
		return -1;
	while (fd < 0 && (d = readdir(dir))) {
		ssize_t n;
		int nf;

		if (strncmp(d->d_name, "vport", 5))
			continue;
		snprintf(path, sizeof(path), PORTS_DIR "/%s/name", d->d_name);
		nf = open(path, O_RDONLY | O_CLOEXEC);
		if (nf < 0)
			continue;
		n = read(nf, got, sizeof(got) - 1);
		close(nf);
		if (n <= 0)
			continue;
		got[n] = 0;
		got[strcspn(got, "\n")] = 0;
		if (strcmp(got, name))
			continue;
		snprintf(path, sizeof(path), "/dev/%s", d->d_name);
		fd = open(path, flags | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			die(errno, "opening %s (the port %s)", path, name);
	}
	closedir(dir);
	return fd;
}

void port_wait_start(struct port_wait *w)
{
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_groups = 1 };

	clock_gettime(CLOCK_MONOTONIC, &w->start);
	/* Opened before the first look, so that no uevent after it is missed; without it (-1)
	 * the init rechecks on a timer only. */
	w->sock = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			 NETLINK_KOBJECT_UEVENT);
	if (w->sock >= 0 && bind(w->sock, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(w->sock);
		w->sock = -1;
	}
}

bool port_wait_more(struct port_wait *w)
{
	struct pollfd p = { .fd = w->sock, .events = POLLIN };
	struct timespec now;
	char buf[4096];

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - w->start.tv_sec >= WAIT_SECONDS)
		return false;
	if (poll(&p, w->sock >= 0, RECHECK_MS) > 0)
		while (recv(w->sock, buf, sizeof(buf), 0) > 0)
			;
	return true;
}

void port_wait_end(struct port_wait *w)
{
	if (w->sock >= 0)
		close(w->sock);
	w->sock = -1;
}

int open_port_wait(const char *name, int flags)
{
	struct port_wait w;
	int fd;

	port_wait_start(&w);
	while ((fd = open_port(name, flags)) < 0)
		if (!port_wait_more(&w))
			die(ETIMEDOUT, "waiting for the port %s", name);
	port_wait_end(&w);
	return fd;
}
