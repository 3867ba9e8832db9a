#!/usr/bin/env python3
"""guest_peers.py DIR OUT...: the host side of the test guest's device tests for mica runs in a
row (tests/integration/kvm.sh), run N writing its stdout to the N-th OUT; one process for all of
them: python takes seconds to start in a nested VM.

Once listening, writes "UDPPORT TCPPORT" to DIR/ports (atomically), then serves until DIR/done-N
exists for every run N (or 30 minutes pass):
  - UDP echo on 127.0.0.1:UDPPORT (virtio_net_udp): answers each datagram with b"echo " + the
    datagram; appends its first line and length ("LINE len=N") to DIR/udp.log;
  - TCP on 127.0.0.1:TCPPORT (virtio_net_tcp), any number of connections, one at a time:
    appends the first line received to DIR/tcp.log, answers "pong-from-host", closes;
  - the balloon (virtio_balloon), run N after run N-1: once OUT number N says
    "virtio_balloon: waiting for a target", connects to mica's --control socket DIR/ctl-N.sock,
    notes mica's VmRSS (its PID from the socket's peer credentials), sets a 16 MiB target; once
    the guest says "stats sent", notes VmRSS again and asks balloon-stats until the statistics
    are there. Writes DIR/balloon-N: lines "rss0 KB", "rss1 KB", "reply LINE", "stats LINE".
    A run that ends (DIR/done-N) before it gets there is given up.
The logs are appended to with a fresh open each time: the caller may truncate them between runs."""
import os, socket, sys, threading, time

from control import command  # tests/integration/control.py

d, outs = sys.argv[1], sys.argv[2:]
deadline = time.monotonic() + 1800


def append(name, line):
    with open(os.path.join(d, name), "a") as f:
        f.write(line + "\n")


def udp_echo(s):
    while True:
        data, peer = s.recvfrom(65536)
        s.sendto(b"echo " + data, peer)
        append("udp.log", "%s len=%d" % (data.split(b"\n")[0].decode(errors="replace"), len(data)))


def tcp_serve(s):
    while True:
        c, _ = s.accept()
        c.settimeout(30)
        data = b""
        try:
            while b"\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            append("tcp.log", data.decode(errors="replace").split("\n")[0])
            c.sendall(b"pong-from-host\n")
        except OSError as e:
            append("tcp.log", "# error: %s" % e)
        c.close()


def done(n):
    return os.path.exists(os.path.join(d, "done-%d" % n)) or time.monotonic() > deadline


def wait_line(n, path, text, seen):
    """Waits until a line of path contains text (reading on from seen[0]) or run n ends."""
    while not done(n):
        try:
            with open(path, "rb") as f:
                f.seek(seen[0])
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        end = chunk.rfind(b"\n") + 1  # whole lines only
        if text.encode() in chunk[:end]:
            seen[0] += end
            return True
        seen[0] += end
        time.sleep(0.1)
    return False


def rss_kb(pid):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return line.split()[1]
    except OSError:
        pass
    return ""


def balloon(n):
    out, sock, seen = outs[n], os.path.join(d, "ctl-%d.sock" % n), [0]
    res = {}
    try:
        if wait_line(n, out, "virtio_balloon: waiting for a target", seen):
            pid, _ = command(sock, "help")
            res["rss0"] = rss_kb(pid)
            res["reply"] = command(sock, "balloon 16")[1]
            if wait_line(n, out, "virtio_balloon: stats sent", seen):
                res["rss1"] = rss_kb(pid)
                # The device reads the stats buffer on the guest's kick, asynchronously.
                for _ in range(50):
                    res["stats"] = command(sock, "balloon-stats")[1]
                    if "free-memory" in res["stats"]:
                        break
                    time.sleep(0.2)
    except OSError as e:
        res["error"] = str(e)
    tmp = os.path.join(d, "balloon-%d.tmp" % n)
    with open(tmp, "w") as f:
        for k, v in res.items():
            f.write("%s %s\n" % (k, v))
    os.rename(tmp, os.path.join(d, "balloon-%d" % n))


u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
t = socket.socket()
t.bind(("127.0.0.1", 0))
t.listen(4)
for target, sock in ((udp_echo, u), (tcp_serve, t)):
    threading.Thread(target=target, args=(sock,), daemon=True).start()
tmp = os.path.join(d, "ports.tmp")
with open(tmp, "w") as f:
    f.write("%d %d\n" % (u.getsockname()[1], t.getsockname()[1]))
os.rename(tmp, os.path.join(d, "ports"))  # atomic: a reader never sees a partial line
for n in range(len(outs)):
    balloon(n)
    while not done(n):
        time.sleep(0.2)
