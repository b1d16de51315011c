"""Small helpers shared by the harness modules."""

import contextlib
import ctypes
import http.server
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@contextlib.contextmanager
def http_server(handler, tls=None):
    """A throwaway HTTP server on 127.0.0.1 (server.server_port), serving
    handler from a thread; server.hits starts empty, for the handler to fill.
    tls=(certificate file, key file): https."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.hits = []
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d"
                               % (proc.returncode, port))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("nothing listens on 127.0.0.1:%d after %.0fs" % (port, timeout))


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def stop_process(proc, sig=signal.SIGTERM, timeout=10.0):
    """Signal one process we started (by pid) and reap it; SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc is not None else None
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout)
    except Exception:
        proc.kill()
        return proc.wait(timeout=5)


def read_logs(paths):
    """The concatenated text of the log files that exist among paths."""
    out = []
    for p in paths:
        try:
            with open(p, errors="replace") as f:
                out.append(f.read())
        except OSError:
            pass
    return "".join(out)


def terminate(proc, timeout, problems, name):
    """SIGTERM and wait for a program under test; one that does not exit in
    time is killed, and that is recorded in problems. Returns the status."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        problems.append("%s did not exit within %.0fs of SIGTERM" % (name, timeout))
        return stop_process(proc, signal.SIGKILL)


def sanitizer_report(text):
    """The first line of an ASan/UBSan/LSan report in text, or None."""
    markers = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
               "runtime error:", "SUMMARY: AddressSanitizer",
               "SUMMARY: UndefinedBehaviorSanitizer", "ERROR: UndefinedBehaviorSanitizer")
    for line in text.splitlines():
        if any(m in line for m in markers):
            return line
    return None


_libc = None


def die_with_parent():
    """preexec_fn: the child gets SIGTERM when the test runner dies (even by
    SIGKILL), so no server outlives a crashed or killed pytest."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
