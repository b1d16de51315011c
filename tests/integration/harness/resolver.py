"""Name resolution under a test's control, for one imd.

namespace_prefix() gives an argv prefix that runs a program in a mount
namespace of its own (unshare -m) where /etc/hosts, /etc/resolv.conf and
/etc/gai.conf are the test's files: the program's real resolver (glibc's
getaddrinfo()) reads them, the rest of the machine is untouched. SlowDns is a
real DNS server on a loopback address that answers late, for resolv.conf to
point at. Both need root (a mount namespace, port 53), as test_system does.
"""

import os
import random
import shutil
import socket
import struct
import threading

TYPE_A = 1
CLASS_IN = 1
RCODE_NXDOMAIN = 3


def available():
    """Why namespace_prefix() cannot work here, or None."""
    if os.geteuid() != 0:
        return "needs root (a mount namespace and port 53)"
    for tool in ("unshare", "mount"):
        if not shutil.which(tool):
            return "no %s" % tool
    return None


def namespace_prefix(workdir, hosts=None, resolv_conf=None, gai_conf=None):
    """argv prefix: run the command with these texts over /etc/hosts,
    /etc/resolv.conf and /etc/gai.conf (None: the machine's). The command is
    exec'ed, so it keeps the pid of the process started."""
    os.makedirs(workdir, exist_ok=True)
    mounts = []
    for text, target in ((hosts, "/etc/hosts"), (resolv_conf, "/etc/resolv.conf"),
                         (gai_conf, "/etc/gai.conf")):
        if text is None:
            continue
        path = os.path.join(workdir, os.path.basename(target))
        with open(path, "w") as f:
            f.write(text)
        mounts.append("mount --bind '%s' %s" % (path, target))
    script = " && ".join(mounts + ['exec "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]


def _question_end(packet):
    """Offset just past the question's name, type and class."""
    i = 12
    while i < len(packet):
        n = packet[i]
        if n == 0:
            return i + 1 + 4
        if n & 0xC0:
            raise ValueError("compressed name in a question")
        i += 1 + n
    raise ValueError("truncated question")


def _name(packet):
    labels, i = [], 12
    while packet[i]:
        labels.append(packet[i + 1:i + 1 + packet[i]].decode("ascii", "replace"))
        i += 1 + packet[i]
    return ".".join(labels).lower()


class SlowDns:
    """A DNS server on 127.R.R.R:53 (UDP) that answers each query after
    `delay` seconds: A records for the names in `names` (name -> list of IPv4
    addresses), an empty answer for their other types (AAAA), NXDOMAIN for
    other names. `queries` lists the names asked, in order."""

    def __init__(self, names, delay=0.0):
        self.names = {k.lower(): list(v) for k, v in names.items()}
        self.delay = delay
        self.queries = []
        self.sock = None
        self.address = None
        self._timers = []
        self._lock = threading.Lock()
        self._thread = None
        self._stopping = threading.Event()

    def start(self):
        for _ in range(20):
            address = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(1, 254),
                                        random.randint(2, 254))
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((address, 53))
            except OSError:
                sock.close()
                continue
            sock.settimeout(0.2)    # to notice stop()
            self.sock, self.address = sock, address
            break
        else:
            raise RuntimeError("no free loopback address for a DNS server")
        self._thread = threading.Thread(target=self._serve, name="slow-dns", daemon=True)
        self._thread.start()
        return self

    def resolv_conf(self):
        """/etc/resolv.conf for this server: one try, and a timeout past the delay."""
        return "nameserver %s\noptions timeout:%d attempts:1\n" % (self.address, int(self.delay) + 5)

    def _serve(self):
        while not self._stopping.is_set():
            try:
                packet, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                reply = self._answer(packet)
            except (ValueError, IndexError, struct.error):
                continue
            timer = threading.Timer(self.delay, self._send, (reply, peer))
            with self._lock:
                self._timers.append(timer)
            timer.start()

    def _send(self, reply, peer):
        try:
            self.sock.sendto(reply, peer)
        except OSError:
            pass

    def _answer(self, packet):
        ident, flags = struct.unpack("!HH", packet[:4])
        end = _question_end(packet)
        question = packet[12:end]
        qtype, _qclass = struct.unpack("!HH", packet[end - 4:end])
        name = _name(packet)
        with self._lock:
            self.queries.append(name)
        answers = b""
        count = 0
        rcode = 0
        if name not in self.names:
            rcode = RCODE_NXDOMAIN
        elif qtype == TYPE_A:
            for address in self.names[name]:
                # the name is a pointer to the question's (offset 12)
                answers += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, 60, 4)
                answers += socket.inet_aton(address)
                count += 1
        # QR, the query's opcode and RD, AA, RA
        reply_flags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
        header = struct.pack("!HHHHHH", ident, reply_flags, 1, count, 0, 0)
        return header + question + answers

    def stop(self):
        self._stopping.set()
        with self._lock:
            for t in self._timers:
                t.cancel()
        if self._thread:
            self._thread.join()
        if self.sock:
            self.sock.close()
