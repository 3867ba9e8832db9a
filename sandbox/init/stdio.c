/* The command's standard streams: the host's named virtio-console ports (found and waited for
 * as ports.c does), or its console port (/dev/hvc0) as a terminal, which gets its hvc backend a
 * little after virtio_console loads.
 *
 * Writes to a port are asynchronous (the guest kernel does not wait for the host to take
 * them), so at the end, once every process is gone, the init closes the ports (stdio_close):
 * the guest kernel sends PORT_OPEN 0 for each and waits until the host has taken that message.
 * A host that drains the port's transmit queue before it takes the message has all of the
 * command's output before the status reaches the debug-exit port. (Writes to /dev/hvc0 are
 * synchronous already.) */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "sandbox/init/init.h"

/* The ports opened, for stdio_close (the terminal is not closed: closing it says nothing). */
static int port_fds[3] = { -1, -1, -1 };

static const char *const port_names[3] = {
	SANDBOX_PORT_STDIN, SANDBOX_PORT_STDOUT, SANDBOX_PORT_STDERR,
};

/* /dev/hvc0, or -1 while the console port has no backend yet. */
static int open_tty(void)
{
	int fd = open(SANDBOX_TTY, O_RDWR | O_CLOEXEC | O_NOCTTY);

	if (fd < 0 && errno != ENOENT && errno != ENODEV && errno != ENXIO && errno != EIO)
		die(errno, "opening " SANDBOX_TTY);
	return fd;
}

/* What `stty sane` sets: a cooked line discipline, echo, signals, CR/NL mapping. */
static void tty_setup(int fd, const struct sandbox_job *j)
{
	struct winsize ws = { .ws_row = j->rows, .ws_col = j->cols };
	struct termios t;

	if (tcgetattr(fd, &t) < 0)
		die(errno, "setting up " SANDBOX_TTY);
	t.c_iflag &= ~(IGNBRK | INLCR | IGNCR | IXOFF | IUCLC | IXANY | PARMRK | ISTRIP);
	t.c_iflag |= BRKINT | ICRNL | IMAXBEL | IXON | IUTF8;
	t.c_oflag &= ~(OLCUC | OCRNL | ONOCR | ONLRET | OFILL | OFDEL);
	t.c_oflag |= OPOST | ONLCR;
	t.c_lflag &= ~(ECHONL | NOFLSH | XCASE | TOSTOP | ECHOPRT);
	t.c_lflag |= ISIG | ICANON | IEXTEN | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE;
	t.c_cflag |= CREAD;
	t.c_cc[VINTR] = 003;
	t.c_cc[VQUIT] = 034;
	t.c_cc[VERASE] = 0177;
	t.c_cc[VKILL] = 025;
	t.c_cc[VEOF] = 004;
	t.c_cc[VSTART] = 021;
	t.c_cc[VSTOP] = 023;
	t.c_cc[VSUSP] = 032;
	t.c_cc[VREPRINT] = 022;
	t.c_cc[VWERASE] = 027;
	t.c_cc[VLNEXT] = 026;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &t) < 0)
		die(errno, "setting up " SANDBOX_TTY);
	if (ws.ws_row && ws.ws_col && ioctl(fd, TIOCSWINSZ, &ws) < 0)
		die(errno, "setting the size of " SANDBOX_TTY);
}

/* Moves fd to a descriptor >= 3 (0 to 2 are the console's, or free if the kernel found no
 * /dev/console: a port there would lose its close-on-exec to dup2 in the child). */
static int high_fd(int fd)
{
	int h;

	if (fd >= 3)
		return fd;
	h = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (h < 0)
		die(errno, "setting up the standard streams");
	close(fd);
	return h;
}

void stdio_open(const struct sandbox_job *j, int fds[3], int *tty)
{
	static const int flags[3] = { O_RDONLY, O_WRONLY, O_WRONLY };
	struct port_wait w;
	int missing;

	port_wait_start(&w);
	*tty = -1;
	for (int i = 0; i < 3; i++)
		fds[i] = -1;
	for (;;) {
		missing = -1;
		for (int i = 2; i >= 0; i--) {
			if (fds[i] >= 0)
				continue;
			if (j->stdio[i] == JOB_STDIO_TTY) {
				if (*tty < 0 && (*tty = open_tty()) >= 0) {
					*tty = high_fd(*tty);
					tty_setup(*tty, j);
				}
				fds[i] = *tty;
			} else if ((fds[i] = open_port(port_names[i], flags[i])) >= 0) {
				fds[i] = port_fds[i] = high_fd(fds[i]);
			}
			if (fds[i] < 0)
				missing = i;
			else if (i == 2)
				log_fd = fds[2]; /* the init's own errors from now on */
		}
		if (missing < 0)
			break;
		if (!port_wait_more(&w))
			die(ETIMEDOUT, "waiting for %s", j->stdio[missing] == JOB_STDIO_TTY ?
			    SANDBOX_TTY " (the virtio console)" : port_names[missing]);
	}
	port_wait_end(&w);
	note("standard streams: %s, %s, %s", j->stdio[0] ? "tty" : "port",
	     j->stdio[1] ? "tty" : "port", j->stdio[2] ? "tty" : "port");
}

void stdio_close(void)
{
	for (int i = 0; i < 3; i++) {
		if (port_fds[i] < 0)
			continue;
		if (log_fd == port_fds[i])
			log_fd = 2;
		close(port_fds[i]);
		port_fds[i] = -1;
	}
}
