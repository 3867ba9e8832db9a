#!/usr/bin/env python3
"""job_server.py SOCKET FILE: listens on SOCKET (ready when this returns: it forks and the parent
exits), sends FILE (a sandbox job, tests/unit/test_sandbox_initramfs --write OUT writes OUT.job)
to the first client, QEMU's socket chardev of the mica.job port, and ends its half: a hang-up
would make QEMU drop what it has not read, a half-close lets QEMU read the end after the data
and close the port's host side, as mica does. Waits for QEMU to go; gives up after 300 s without
a client. For QEMU 7.2, whose file chardev has no input (tests/integration/sandbox_qemu.sh, the
sandbox benchmark)."""
import os
import socket
import sys

s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
if os.fork():
    os._exit(0)
s.settimeout(300)
c, _ = s.accept()
c.sendall(open(sys.argv[2], "rb").read())
c.shutdown(socket.SHUT_WR)
c.recv(1)
