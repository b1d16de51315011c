"""Fixtures for imd's integration tests: real Prosody, real dbus-daemon, real
slixmpp peer, the real imd. Run with Debian's interpreter:

    /usr/bin/python3 -m pytest tests/integration

IMD_BUILD_DIR selects the build (default <repo>/build).
"""

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from harness.bus import Bus, DBusCallError, IM_ERROR  # noqa: E402
from harness.imd import Imd, imctl_path, sanitizer_env  # noqa: E402
from harness.pipewire import PipeWire, tools_missing  # noqa: E402
from harness.peer import Peer  # noqa: E402
from harness.prosody import Prosody  # noqa: E402
from harness.util import sanitizer_report  # noqa: E402


@dataclass
class Account:
    jid: str
    password: str
    ws_url: str

    @property
    def user(self):
        return self.jid.split("@")[0]


# -- report hook: lets fixtures know whether the test failed ----------------------

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


# -- Prosody -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def prosody_session():
    p = Prosody()
    p.start()
    yield p
    p.cleanup()


@pytest.fixture
def prosody(prosody_session, request):
    """The session's Prosody, (re)started if an earlier test stopped it."""
    p = prosody_session
    p.resume()
    if not p.running:
        p.start()
    yield p
    if _failed(request):
        print("\n----- prosody log (tail) -----\n" + p.log_tail(40))


@pytest.fixture(scope="module")
def upload_prosody():
    """A Prosody of the module whose XEP-0363 uploads go through a TCP proxy
    (harness.netproxy) that a test can make refuse, cut or throttle."""
    p = Prosody(upload_proxy=True)
    p.start()
    yield p
    p.cleanup()


def proxied_prosody(upload_prosody, request):
    """For a module's own `prosody` fixture: upload_prosody, running, its
    proxy forwarding again before and after each test."""
    p = upload_prosody
    p.upload_proxy.reset()
    if not p.running:
        p.start()
    yield p
    p.upload_proxy.reset()
    if _failed(request):
        print("\n----- prosody log (tail) -----\n" + p.log_tail(60))


@pytest.fixture
def private_prosody(tmp_path_factory, request):
    """A Prosody of this test alone, for tests that stop, kill or pause it."""
    p = Prosody()
    p.start()
    yield p
    if _failed(request):
        print("\n----- private prosody log (tail) -----\n" + p.log_tail(60))
    p.cleanup()


@pytest.fixture
def new_account(prosody):
    """Factory: a fresh, never-used account on the session Prosody."""
    def make(prefix="user"):
        jid, pw = prosody.new_account(prefix)
        return Account(jid, pw, prosody.ws_url)
    return make


@pytest.fixture
def alice(new_account):
    """The account imd logs in with (fresh per test)."""
    return new_account("alice")


# -- peers -----------------------------------------------------------------------------

@pytest.fixture
def peer_factory(prosody, new_account):
    peers = []

    def make(prefix="bob", account=None):
        acc = account or new_account(prefix)
        p = Peer(acc.jid, acc.password, "127.0.0.1", prosody.c2s_port)
        p.account = acc
        peers.append(p)
        p.start()
        return p
    yield make
    for p in peers:
        p.stop()


@pytest.fixture
def peer(peer_factory):
    """A slixmpp client logged in as a fresh account ("bob")."""
    return peer_factory("bob")


# -- D-Bus -------------------------------------------------------------------------------

@pytest.fixture
def bus(tmp_path):
    b = Bus(str(tmp_path))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def client_factory(bus):
    clients = []

    def make():
        c = bus.client()
        clients.append(c)
        return c
    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(client_factory, imd):
    """A D-Bus connection (a frontend) to the running imd, recording its signals."""
    return client_factory()


# -- audio ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pipewire(tmp_path_factory):
    """A private PipeWire graph with a virtual microphone (harness.pipewire),
    one per test module that asks for it."""
    missing = tools_missing()
    if missing:
        pytest.fail("not installed: %s (run tools/install-deps.sh)" % " ".join(missing),
                    pytrace=False)
    pw = PipeWire(str(tmp_path_factory.mktemp("pipewire"))).start()
    yield pw
    pw.stop()


# -- imd ------------------------------------------------------------------------------------

@pytest.fixture
def imd_env():
    """Extra environment for the `imd` fixture's daemon (set last; None
    unsets): none here. A module overrides it, e.g. test_voice.py gives imd
    its PipeWire graph's env()."""
    return {}


@pytest.fixture
def imd_prefix():
    """A command the `imd` fixture's daemon runs under (it must exec imd):
    none here. test_resolve.py gives it a resolver of its own."""
    return ()


@pytest.fixture
def imd(bus, tmp_path, request, imd_env, imd_prefix):
    d = Imd(bus, str(tmp_path / "imd"), extra_env=imd_env, prefix=imd_prefix)
    try:
        d.start()
    except Exception:
        print("\n----- imd stderr -----\n" + d.stderr_text(all_runs=True))
        d.stop()
        raise
    yield d
    d.stop()
    text = d.stderr_text(all_runs=True)
    if _failed(request) or d.problems:
        print("\n----- imd stderr (%d run(s)) -----\n%s" % (d.runs, text))
    if d.problems:
        pytest.fail("imd: " + "; ".join(d.problems), pytrace=False)


@pytest.fixture
def logged_in(client, alice):
    """imd logged in as alice (through `client`); returns the Account."""
    client.login_account(alice)
    return alice


# -- imctl --------------------------------------------------------------------------------

class Imctl:
    def __init__(self, bus):
        self.bus = bus
        self.path = imctl_path()

    def env(self):
        return sanitizer_env(self.bus.env())

    def run(self, *args, input=None, timeout=40, check=None, env=None):
        """Run imctl; returns CompletedProcess (text). check: expected exit code;
        env: extra environment variables."""
        r = subprocess.run([self.path, *args], input=input if input is not None else "",
                           capture_output=True, text=True, timeout=timeout,
                           env=dict(self.env(), **(env or {})))
        report = sanitizer_report(r.stderr)
        assert report is None, "imctl %s: sanitizer: %s\n%s" % (args, report, r.stderr)
        if check is not None:
            assert r.returncode == check, (
                "imctl %s exited %d (expected %d)\nstdout: %s\nstderr: %s"
                % (" ".join(args), r.returncode, check, r.stdout, r.stderr))
        return r

    def popen(self, *args, **kw):
        return subprocess.Popen([self.path, *args], env=self.env(), text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, bufsize=1, **kw)


@pytest.fixture
def imctl(bus, imd):
    return Imctl(bus)


def error_short(exc):
    """org.example.IM.Error.AuthFailed -> AuthFailed"""
    return exc.short if isinstance(exc, DBusCallError) else None


__all__ = ["Account", "DBusCallError", "IM_ERROR", "error_short"]


# -- imd with short timers (fault tests) --------------------------------------------------

def write_config(workdir, **connection):
    d = os.path.join(workdir, "xdg-config", "imd")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "imd.conf"), "w") as f:
        f.write("[connection]\n")
        for k, v in connection.items():
            f.write("%s=%s\n" % (k, v))


@pytest.fixture
def fast_imd(bus, tmp_path, request):
    """imd with short keepalive and reconnect delays."""
    workdir = str(tmp_path / "imd-fast")
    write_config(workdir, ping_interval=1, ping_timeout=1, reconnect_min=0.2, reconnect_max=1)
    d = Imd(bus, workdir)
    d.start()
    yield d
    d.stop()
    rep = getattr(request.node, "rep_call", None)
    if d.problems or (rep is not None and rep.failed):
        print("\n----- imd stderr -----\n" + d.stderr_text(all_runs=True))
    if d.problems:
        pytest.fail("imd: " + "; ".join(d.problems), pytrace=False)


@pytest.fixture
def fclient(client_factory, fast_imd):
    """A frontend of the fast imd."""
    return client_factory()
