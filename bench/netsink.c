/* netsink: the host end of the net benchmark. Listens on a free TCP port of 127.0.0.1 (the
 * guest's 10.0.2.2 under slirp), writes the port number to READYFILE once listening (so the
 * guest is started only then), accepts one connection, reads it to EOF and reports, as
 * key=value lines on stdout. The socket wakes the reader only once 64 KiB are there (SO_RCVLOWAT),
 * so that the receiver takes little of the CPU it shares with the VMM. Reported:
 *   bytes             received
 *   first_to_last_ns  from the first byte received to the last (CLOCK_MONOTONIC)
 *   accept_to_eof_ns  from accept() to EOF
 *   recvs             read() calls that returned data
 *   cpu_ns            this process's user+sys CPU time
 *
 *   netsink READYFILE [TIMEOUT_S]   (default 300 s for the connection and for each read)
 * Exit status 0 when a connection delivered at least one byte. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (1 << 20)
#define LOWAT (64 << 10)

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "netsink: %s: %s\n", what, errno ? strerror(errno) : "timed out");
	exit(1);
}

/* Waits for fd to become readable; dies after timeout_ms. */
static void wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		if (n == 0)
			errno = 0;
		die("poll");
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int timeout_ms, ls, c, one = 1, lowat = LOWAT;
	struct timeval tv;
	uint64_t bytes = 0, recvs = 0, t_accept, t_first = 0, t_last = 0, t_eof;
	char tmp[4096];
	struct rusage ru;
	static char buf[BUF_SIZE];
	FILE *f;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: netsink READYFILE [TIMEOUT_S]\n");
		return 2;
	}
	timeout_ms = (argc == 3 ? atoi(argv[2]) : 300) * 1000;
	ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) < 0)
		die("listen");
	/* Atomically: a reader never sees a partial number. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%u\n", ntohs(a.sin_port)) < 0 || fclose(f) || rename(tmp, argv[1]))
		die(argv[1]);

	wait_readable(ls, timeout_ms);
	c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		die("accept");
	t_accept = mono_ns();
	tv = (struct timeval){ .tv_sec = timeout_ms / 1000 };
	if (setsockopt(c, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) < 0 ||
	    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		die("setsockopt");
	for (;;) {
		ssize_t n = read(c, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			errno = 0; /* SO_RCVTIMEO expired */
		if (n < 0)
			die("read");
		if (n == 0)
			break;
		t_last = mono_ns();
		if (!bytes)
			t_first = t_last;
		bytes += (uint64_t)n;
		recvs++;
	}
	t_eof = mono_ns();
	close(c);
	close(ls);
	getrusage(RUSAGE_SELF, &ru);
	printf("bytes=%llu\nfirst_to_last_ns=%llu\naccept_to_eof_ns=%llu\nrecvs=%llu\ncpu_ns=%llu\n",
	       (unsigned long long)bytes, (unsigned long long)(t_last - t_first),
	       (unsigned long long)(t_eof - t_accept), (unsigned long long)recvs,
	       (unsigned long long)((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
				    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL));
	return bytes ? 0 : 1;
}
