#!/usr/bin/env python3
"""control.py SOCKET COMMAND...: send one command line to a mica --control socket, print the
reply line, exit 0 if it starts with "ok". Waits up to 30 s for the socket to appear.

As a module: command(path, cmd) -> (mica's pid, reply line), for the other test peers."""
import os, socket, struct, sys, time


def command(path, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    # With a timeout Python's socket is non-blocking underneath, and a UNIX connect to a full
    # listen backlog fails with EAGAIN instead of waiting (as a blocking one would): wait here
    # for mica to accept the clients before us (slow under ThreadSanitizer).
    deadline = time.monotonic() + 30
    while True:
        try:
            s.connect(path)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    pid = struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    s.sendall((cmd + "\n").encode())
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    return pid, reply.decode(errors="replace").strip()


if __name__ == "__main__":
    path, cmd = sys.argv[1], " ".join(sys.argv[2:])
    deadline = time.monotonic() + 30
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.1)
    reply = command(path, cmd)[1]
    print(reply)
    sys.exit(0 if reply.startswith("ok") else 1)
