#!/usr/bin/env python3
"""tcpget.py PORT: connect to 127.0.0.1:PORT (retrying for up to 30 s), print the first line."""
import socket, sys, time

port = int(sys.argv[1])
deadline = time.monotonic() + 30
while True:
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.settimeout(10)
        data = b""
        while b"\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        if data:
            print(data.decode(errors="replace").split("\n")[0])
            sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.5)
