#!/usr/bin/env python3
"""tcpserve.py READYFILE OUTFILE: listen on a free port of 127.0.0.1 and, once listening, write
the port number to READYFILE (so a test never starts a guest before its server is there); accept
one TCP connection (within 120 s), write the first line received to OUTFILE, answer
"pong-from-host", exit."""
import os, socket, sys

ready, out = sys.argv[1], sys.argv[2]
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
s.settimeout(120)
tmp = ready + ".tmp"
open(tmp, "w").write("%d\n" % s.getsockname()[1])
os.rename(tmp, ready)  # atomic: a reader never sees a partial number
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
