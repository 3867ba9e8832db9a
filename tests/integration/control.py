#!/usr/bin/env python3
"""control.py SOCKET COMMAND...: send one command line to a mica --control socket, print the
reply line, exit 0 if it starts with "ok". Waits up to 30 s for the socket to appear."""
import os, socket, sys, time

path, cmd = sys.argv[1], " ".join(sys.argv[2:])
deadline = time.monotonic() + 30
while not os.path.exists(path) and time.monotonic() < deadline:
    time.sleep(0.1)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(path)
s.sendall((cmd + "\n").encode())
reply = b""
while not reply.endswith(b"\n"):
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
print(reply.decode().strip())
sys.exit(0 if reply.startswith(b"ok") else 1)
