#!/usr/bin/env python3
"""udpecho.py READYFILE OUTFILE: bind a free UDP port of 127.0.0.1 and, once bound, write the
port number to READYFILE (as tcpserve.py does); answer every datagram with b"echo " + the
datagram and append its first line and its length to OUTFILE ("LINE len=N"); exit after 120 s
without a datagram."""
import os, socket, sys

ready, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(120)
tmp = ready + ".tmp"
open(tmp, "w").write("%d\n" % s.getsockname()[1])
os.rename(tmp, ready)  # atomic: a reader never sees a partial number
with open(out, "a") as log:
    while True:
        try:
            data, peer = s.recvfrom(65536)
        except socket.timeout:
            break
        s.sendto(b"echo " + data, peer)
        log.write("%s len=%d\n" % (data.split(b"\n")[0].decode(errors="replace"), len(data)))
        log.flush()
