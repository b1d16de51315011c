"""A TCP forwarder with faults on demand, for breaking one kind of traffic
(e.g. Prosody's HTTP uploads, see Prosody(upload_proxy=True)) while the rest
(the XMPP connection) goes on untouched.

    proxy = TcpProxy(target_port).start()   # listens on 127.0.0.1:proxy.port
    proxy.set(mode="refuse")                # new connections: reset at once
    proxy.set(mode="refuse", refusals=1)    # ... only the next one; then "pass"
    proxy.set(mode="pass", rate=1 << 20)    # forward, at most 1 MiB/s each way
    proxy.set(cut_after=512 * 1024)         # reset a connection once it carried that much upstream
    proxy.set(cut_after=512 * 1024, cuts=1) # ... only the next one; then plain forwarding
    proxy.cut()                             # reset every live connection now
    proxy.reset()                           # back to plain forwarding

One thread accepts, one thread per connection forwards (select, non-blocking
sockets), so that a reset is always done by the thread that owns the sockets.
A reset is a real TCP RST (SO_LINGER 0) towards both sides. The listening
socket has a small receive buffer, so that throttling is felt by the sender
at once instead of after megabytes of kernel buffers.
"""

import select
import socket
import struct
import threading
import time

CHUNK = 64 * 1024
RCVBUF = 64 * 1024
TICK = 0.02
_AGAIN = object()


def _rst(sock):
    """Close with a TCP reset instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Bucket:
    """Token bucket: rate bytes/s, at most 100 ms worth in store."""

    def __init__(self):
        self.tokens = 0.0
        self.at = time.monotonic()

    def allowance(self, rate):
        now = time.monotonic()
        if rate is None:
            self.at = now
            return CHUNK
        cap = max(rate / 10.0, 1024.0)
        self.tokens = min(cap, self.tokens + (now - self.at) * rate)
        self.at = now
        return int(min(self.tokens, CHUNK))

    def spend(self, n, rate):
        if rate is not None:
            self.tokens -= n


class _Conn:
    def __init__(self, client, server):
        self.client, self.server = client, server
        self.up = 0             # client -> server bytes forwarded
        self.down = 0           # server -> client
        self.kill = False       # reset asked by cut()


class TcpProxy:
    """Forwards 127.0.0.1:port to target_host:target_port.

    mode: "pass" forwards; "refuse" resets every new connection at once
    (connections already open go on); refusals: after this many, "pass"
    again (None: never). rate: bytes per second per direction and
    connection (None: as fast as it goes). cut_after: a connection that has
    carried this many bytes upstream (client to server) is reset (None: never);
    cuts: after this many such resets cut_after is switched off (None: never).
    """

    def __init__(self, target_port, target_host="127.0.0.1", port=0, name="proxy"):
        self.target = (target_host, target_port)
        self.name = name
        self.mode = "pass"
        self.rate = None
        self.cut_after = None
        self.cuts_left = None
        self.refusals_left = None
        self.accepted = 0           # connections accepted (refused ones included)
        self.refused = 0            # reset at once ("refuse")
        self.resets = 0             # live connections reset (cut() or cut_after)
        self.bytes_up = 0           # client -> server, all connections
        self.bytes_down = 0
        self._conns = set()
        self._lock = threading.Condition()
        self._stopping = False
        self._threads = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # inherited by accepted sockets: the window stays small
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self._accept_thread = None

    # -- control ---------------------------------------------------------------
    def start(self):
        if self._accept_thread is None:
            self._sock.listen(64)
            self._sock.settimeout(0.1)
            self._accept_thread = threading.Thread(target=self._accept_loop,
                                                   name="%s-accept" % self.name, daemon=True)
            self._accept_thread.start()
        return self

    def set(self, mode=None, rate=False, cut_after=False, cuts=None, refusals=None):
        """Change what happens from now on; arguments left out stay as they are
        (rate=None / cut_after=None switch those off; cuts goes with cut_after,
        refusals with mode)."""
        with self._lock:
            if mode is not None:
                if mode not in ("pass", "refuse"):
                    raise ValueError("mode must be 'pass' or 'refuse', not %r" % (mode,))
                self.mode = mode
                self.refusals_left = refusals
            if rate is not False:
                self.rate = rate
            if cut_after is not False:
                self.cut_after = cut_after
                self.cuts_left = cuts
        return self

    def reset(self):
        """Plain forwarding again: pass, unthrottled, no cut."""
        return self.set(mode="pass", rate=None, cut_after=None)

    def cut(self, timeout=5.0):
        """Reset every live connection (both sides get an RST); returns how many."""
        with self._lock:
            conns = list(self._conns)
            for c in conns:
                c.kill = True
        self.wait_until(lambda: not any(c in self._conns for c in conns), timeout,
                        "the live connections to be cut")
        return len(conns)

    @property
    def live(self):
        with self._lock:
            return len(self._conns)

    def wait_until(self, predicate, timeout=10.0, what="proxy condition"):
        """Wait until predicate() (called with the proxy's lock held) is true."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%s: no %s within %.1fs (accepted %d, live %d, up %d B, "
                                       "down %d B)" % (self.name, what, timeout, self.accepted,
                                                       len(self._conns), self.bytes_up,
                                                       self.bytes_down))
                self._lock.wait(min(left, 0.1))

    def wait_bytes_up(self, n, timeout=10.0):
        """Wait until at least n bytes went from clients to the server in all."""
        self.wait_until(lambda: self.bytes_up >= n, timeout, "%d bytes upstream" % n)

    def stop(self):
        self._stopping = True
        if self._accept_thread is not None:
            self._accept_thread.join(5)
        try:
            self._sock.close()
        except OSError:
            pass
        for t in list(self._threads):
            t.join(2)

    # -- forwarding --------------------------------------------------------------
    def _accept_loop(self):
        while not self._stopping:
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                refuse = self.mode == "refuse"
                if refuse:
                    self.refused += 1
                    if self.refusals_left is not None:
                        self.refusals_left -= 1
                        if self.refusals_left <= 0:
                            self.mode, self.refusals_left = "pass", None
                self._lock.notify_all()
            if refuse:
                _rst(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _rst(client)
                continue
            conn = _Conn(client, server)
            with self._lock:
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,),
                                 name="%s-conn" % self.name, daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _serve(self, conn):
        c, s = conn.client, conn.server
        for sock in (c, s):
            sock.setblocking(False)
        up, down = bytearray(), bytearray()
        c_eof = s_eof = up_shut = down_shut = False
        bucket_up, bucket_down = _Bucket(), _Bucket()
        how = "closed"
        try:
            while True:
                rate, cut_after = self.rate, self.cut_after
                if self._stopping or conn.kill:
                    how = "reset"
                    break
                if cut_after is not None and conn.up >= cut_after:
                    how = "reset"
                    with self._lock:
                        if self.cuts_left is not None:
                            self.cuts_left -= 1
                            if self.cuts_left <= 0:
                                self.cut_after = self.cuts_left = None
                    break
                if c_eof and not up and not up_shut:
                    self._shut(s)
                    up_shut = True
                if s_eof and not down and not down_shut:
                    self._shut(c)
                    down_shut = True
                if up_shut and down_shut:
                    break
                allow_up = bucket_up.allowance(rate) if not c_eof and len(up) < CHUNK else 0
                allow_down = bucket_down.allowance(rate) if not s_eof and len(down) < CHUNK else 0
                if cut_after is not None:
                    allow_up = min(allow_up, max(cut_after - conn.up - len(up), 0))
                rl = ([c] if allow_up > 0 else []) + ([s] if allow_down > 0 else [])
                wl = ([s] if up else []) + ([c] if down else [])
                throttled = rate is not None and ((not c_eof and allow_up <= 0)
                                                  or (not s_eof and allow_down <= 0))
                try:
                    r, w, _ = select.select(rl, wl, [], TICK if throttled else 0.05)
                except (OSError, ValueError):
                    how = "reset"
                    break
                if c in r:
                    data = self._recv(c, allow_up)
                    if data is None:
                        how = "reset"
                        break
                    if data is _AGAIN:
                        data = b""
                    elif data == b"":
                        c_eof = True
                    up += data
                    bucket_up.spend(len(data), rate)
                if s in r:
                    data = self._recv(s, allow_down)
                    if data is None:
                        how = "reset"
                        break
                    if data is _AGAIN:
                        data = b""
                    elif data == b"":
                        s_eof = True
                    down += data
                    bucket_down.spend(len(data), rate)
                if s in w and up:
                    n = self._send(s, up)
                    if n is None:
                        how = "reset"
                        break
                    del up[:n]
                    conn.up += n
                    with self._lock:
                        self.bytes_up += n
                        self._lock.notify_all()
                if c in w and down:
                    n = self._send(c, down)
                    if n is None:
                        how = "reset"
                        break
                    del down[:n]
                    conn.down += n
                    with self._lock:
                        self.bytes_down += n
                        self._lock.notify_all()
        finally:
            if how == "reset":
                _rst(c)
                _rst(s)
            else:
                c.close()
                s.close()
            with self._lock:
                if how == "reset" and not self._stopping:
                    self.resets += 1
                self._conns.discard(conn)
                self._lock.notify_all()

    @staticmethod
    def _recv(sock, n):
        try:
            return sock.recv(n)
        except (BlockingIOError, InterruptedError):
            return _AGAIN           # nothing after all (a spurious wakeup)
        except OSError:
            return None

    @staticmethod
    def _send(sock, buf):
        try:
            return sock.send(buf)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return None

    @staticmethod
    def _shut(sock):
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
