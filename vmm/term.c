#include "vmm/term.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define CTRL_A 0x01

/* For the fatal-signal handler only: the terminal to restore before dying. */
static struct term *restore_on_crash;

static void crash_handler(int sig)
{
	if (restore_on_crash)
		term_restore(restore_on_crash);
	signal(sig, SIG_DFL);
	raise(sig);
}

void term_stop(struct term *t)
{
	term_restore(t);
	if (t->space_fd >= 0)
		close(t->space_fd);
	if (t->winch_fd >= 0)
		close(t->winch_fd);
	t->space_fd = t->winch_fd = -1;
	pthread_mutex_destroy(&t->lock);
}

void term_restore(struct term *t)
{
	if (t->raw_set) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &t->saved);
		t->raw_set = false;
		log_set_raw_terminal(false);
	}
}

static void set_raw(struct term *t)
{
	struct termios raw;

	if (tcgetattr(STDIN_FILENO, &t->saved) < 0)
		return;
	raw = t->saved;
	cfmakeraw(&raw);
	/* Keep output post-processing off too: the guest sends its own "\r\n". */
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) < 0)
		return;
	t->raw_set = true;
	log_set_raw_terminal(true);
	restore_on_crash = t;
	signal(SIGSEGV, crash_handler);
	signal(SIGABRT, crash_handler);
	signal(SIGBUS, crash_handler);
}

/* Applies the Ctrl-A escape to n bytes at p in place; returns the bytes left for the guest. */
static size_t apply_escape(struct term *t, uint8_t *p, size_t n)
{
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (!t->escape) {
			if (c == CTRL_A)
				t->escape = true;
			else
				p[out++] = c;
			continue;
		}
		t->escape = false;
		switch (c) {
		case 'x':
		case 'X':
			log_msg(LOG_ERROR, "terminated by Ctrl-A x");
			vm_request_exit(t->vm, 0, "ctrl-a-x");
			return out;
		case 'h':
		case 'H':
		case '?':
			log_msg(LOG_ERROR, "Ctrl-A x: quit   Ctrl-A Ctrl-A: send Ctrl-A   "
					   "Ctrl-A h: this help");
			break;
		case CTRL_A:
			p[out++] = CTRL_A;
			break;
		default: /* not an escape after all: the byte goes on, the Ctrl-A is dropped */
			p[out++] = c;
			break;
		}
	}
	return out;
}

/* Hands buffered input to the guest; with t->lock held. Returns true when the buffer emptied. */
static bool push_pending(struct term *t)
{
	while (t->len) {
		size_t n = t->sink.receive(t->sink.dev, t->buf + t->start, t->len);

		if (!n)
			return false;
		t->start += n;
		t->len -= n;
	}
	t->start = 0;
	return true;
}

static void stop_watching(struct term *t)
{
	if (t->watching) {
		evloop_del(&t->vm->loop, &t->h);
		t->watching = false;
	}
}

static void on_stdin(struct ev_handler *h, uint32_t events)
{
	struct term *t = container_of(h, struct term, h);
	ssize_t n;

	(void)events;
	pthread_mutex_lock(&t->lock);
	if (t->len) {
		/* The guest is still busy with earlier input: wait for term_input_space(). */
		stop_watching(t);
		goto out;
	}
	n = read(STDIN_FILENO, t->buf, sizeof(t->buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		goto out;
	if (n <= 0) {
		/* End of input: the guest keeps running, it just hears nothing more. */
		t->eof = true;
		stop_watching(t);
		goto out;
	}
	t->len = t->is_tty ? apply_escape(t, t->buf, n) : (size_t)n;
	if (!push_pending(t))
		stop_watching(t);
out:
	pthread_mutex_unlock(&t->lock);
}

/* Runs on the event loop when a device signalled room for input: pushes what is held back and
 * listens to stdin again once all of it is taken. */
static void on_space(struct ev_handler *h, uint32_t events)
{
	struct term *t = container_of(h, struct term, space_h);
	uint64_t n;

	(void)events;
	if (read(h->fd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&t->lock);
	if (push_pending(t) && !t->eof && !t->watching && !t->vm->exit_requested)
		t->watching = evloop_add(&t->vm->loop, STDIN_FILENO, EPOLLIN, &t->h) == 0;
	pthread_mutex_unlock(&t->lock);
}

void term_input_space(struct term *t)
{
	uint64_t one = 1;

	/* Devices call this with their own locks held, from any thread: defer the work to the
	 * event loop, which takes the terminal's lock and then the device's. */
	if (t->space_fd >= 0 && write(t->space_fd, &one, sizeof(one)) < 0)
		pr_debug("cannot signal console input space: %s", strerror(errno));
}

static void on_winch(struct ev_handler *h, uint32_t events)
{
	struct term *t = container_of(h, struct term, winch_h);
	struct signalfd_siginfo si;

	(void)events;
	if (read(h->fd, &si, sizeof(si)) != sizeof(si))
		return;
	term_report_size(t);
}

void term_report_size(struct term *t)
{
	struct winsize ws;

	if (!t->sink.resize)
		return;
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		return;
	t->sink.resize(t->sink.dev, ws.ws_col, ws.ws_row);
}

void term_start(struct term *t, struct vm *vm, struct console_sink sink)
{
	sigset_t winch;

	memset(t, 0, sizeof(*t));
	t->vm = vm;
	t->sink = sink;
	t->h.fn = on_stdin;
	pthread_mutex_init(&t->lock, NULL);
	t->space_h.fn = on_space;
	t->space_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->space_fd >= 0)
		evloop_add(&vm->loop, t->space_fd, EPOLLIN, &t->space_h);
	/* Terminal resizes reach the console device (virtio-console's VIRTIO_CONSOLE_F_SIZE).
	 * SIGWINCH is blocked here, before the vCPU threads exist, so only the signalfd sees it. */
	sigemptyset(&winch);
	sigaddset(&winch, SIGWINCH);
	pthread_sigmask(SIG_BLOCK, &winch, NULL);
	t->winch_h.fn = on_winch;
	t->winch_fd = signalfd(-1, &winch, SFD_NONBLOCK | SFD_CLOEXEC);
	if (t->winch_fd >= 0)
		evloop_add(&vm->loop, t->winch_fd, EPOLLIN, &t->winch_h);
	term_report_size(t);
	t->is_tty = isatty(STDIN_FILENO);
	if (t->is_tty)
		set_raw(t);
	/* epoll refuses regular files and /dev/null (EPERM): such stdin is simply not input. */
	t->watching = evloop_add(&vm->loop, STDIN_FILENO, EPOLLIN, &t->h) == 0;
	if (!t->watching)
		pr_debug("stdin cannot be polled (%s): the guest console gets no input",
			 strerror(errno));
}
