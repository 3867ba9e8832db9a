#!/usr/bin/env python3
"""tcpserve.py PORT OUTFILE: accept one TCP connection on 127.0.0.1:PORT (within 120 s), write
the first line received to OUTFILE, answer "pong-from-host", exit."""
import socket, sys

port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(1)
s.settimeout(120)
c, _ = s.accept()
c.settimeout(30)
data = b""
while b"\n" not in data:
    chunk = c.recv(4096)
    if not chunk:
        break
    data += chunk
open(out, "w").write(data.decode(errors="replace").split("\n")[0] + "\n")
c.sendall(b"pong-from-host\n")
c.close()
