#!/usr/bin/env python3
"""Run a command on a pseudo-terminal, as a person at a terminal would, and script it.

usage: ptyrun.py OUTFILE TIMEOUT [STEP...] -- CMD [ARGS...]
steps, in order:  wait=REGEX  send=TEXT (Python escapes, e.g. \\x01x)  resize=COLSxROWS
Exits with CMD's exit status (128+n if killed by signal n; 124 on timeout). Writes what CMD
printed to OUTFILE. Also checks that CMD left the terminal's settings as it found them: if
not, prints 'ptyrun: terminal not restored' on stderr and exits 99.
"""
import fcntl, os, re, select, struct, sys, termios, time


def main():
    out_path, timeout = sys.argv[1], float(sys.argv[2])
    sep = sys.argv.index("--")
    steps, cmd = sys.argv[3:sep], sys.argv[sep + 1:]
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 25, 80, 0, 0))
    before = termios.tcgetattr(slave)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        os.close(master)
        os.execvp(cmd[0], cmd)
    buf = b""
    deadline = time.monotonic() + timeout
    status = None

    def pump(wait_s):
        nonlocal buf
        r, _, _ = select.select([master], [], [], wait_s)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            buf += data
            return bool(data)
        return True

    for step in steps:
        key, _, val = step.partition("=")
        if key == "wait":
            pat = re.compile(val.encode())
            while not pat.search(buf) and time.monotonic() < deadline:
                if not pump(0.1):
                    break
        elif key == "send":
            os.write(master, val.encode().decode("unicode_escape").encode("latin-1"))
        elif key == "resize":
            cols, rows = (int(x) for x in val.split("x"))
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    while time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        pump(0.1)
    while True:  # drain what is left
        r, _, _ = select.select([master], [], [], 0)
        if not r:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        buf += data
    with open(out_path, "wb") as f:
        f.write(buf)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        sys.exit(124)
    if termios.tcgetattr(slave) != before:
        print("ptyrun: terminal not restored", file=sys.stderr)
        sys.exit(99)
    sys.exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


main()
