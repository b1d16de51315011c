"""Host names: resolved off imd's main loop, and every address of a name tried.

Debian 12's libwebsockets resolves a name inside its connect call, on the
caller's thread: with a DNS server that answers late, imd, and every D-Bus
client waiting on it, stood still until the answer came. imd resolves in a
thread now, then connects to the addresses in turn.

imd runs in a mount namespace of its own (harness.resolver):
- /etc/resolv.conf points at SlowDns, a real DNS server on loopback that
  answers every query DELAY seconds late (slow.imd-test is 127.0.0.1, other
  names do not exist);
- /etc/hosts makes localhost both 127.0.0.2, where nothing listens, and
  127.0.0.1, and dropping.imd-test both 127.0.0.3, where a full listener
  drops every connection attempt (a blackhole), and 127.0.0.1;
  /etc/gai.conf sorts 127.0.0.2 and 127.0.0.3 first.
glibc's real resolver reads them; Prosody and the peers are the usual real
ones on 127.0.0.1, outside the namespace.
"""

import hashlib
import os
import socket
import subprocess
import time

import pytest
from gi.repository import GLib

from harness import resolver
from harness.asserts import raises_im_error
from harness.resolver import SlowDns, namespace_prefix
from test_files import received_file, send_path, stored, wait_status, write_file
from test_rich import _media_raw
from test_tls import tls_certs, tls_servers  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(resolver.available() is not None,
                                reason=str(resolver.available()))

DELAY = 3.0
SLOW = "slow.imd-test"
MISSING = "missing.imd-test"
HOSTS = ("127.0.0.2 localhost\n127.0.0.1 localhost\n"
         "127.0.0.3 dropping.imd-test\n127.0.0.1 dropping.imd-test\n")
# glibc's default table (gai.conf(5)), plus 127.0.0.2 above the other IPv4
# addresses; without it, the longest-prefix rule would put 127.0.0.1 first
GAI_CONF = """\
precedence ::1/128 50
precedence ::/0 40
precedence 2002::/16 30
precedence ::/96 20
precedence ::ffff:127.0.0.2/128 45
precedence ::ffff:127.0.0.3/128 45
precedence ::ffff:0:0/96 10
"""


@pytest.fixture(scope="module")
def dns():
    d = SlowDns({SLOW: ["127.0.0.1"]}, delay=DELAY).start()
    yield d
    d.stop()


@pytest.fixture
def imd_env():
    """imd's debug log says which addresses it tried."""
    return {"G_MESSAGES_DEBUG": "all"}


def tried_next_address(imd, host):
    return "cannot connect to %s: " % host in imd.stderr_text() and \
        "trying the next address" in imd.stderr_text()


@pytest.fixture
def imd_prefix(tmp_path, dns):
    return namespace_prefix(str(tmp_path / "etc"), hosts=HOSTS, resolv_conf=dns.resolv_conf(),
                            gai_conf=GAI_CONF)


def ws_url(host, prosody):
    return "ws://%s:%d/xmpp-websocket" % (host, prosody.http_port)


def login_async(client, account, url, **extra):
    opts = {"websocket_url": GLib.Variant("s", url)}
    opts.update({k: GLib.Variant("s", v) for k, v in extra.items()})
    return client.call_async("Login", "ssa{sv}", (account.jid, account.password, opts), timeout=60)


def test_the_namespace_resolves_as_these_tests_assume(imd_prefix, dns):
    """What the other tests rest on, seen by getent in the same namespace:
    localhost's first address is 127.0.0.2, and slow.imd-test takes DELAY."""
    def getent(*args):
        t0 = time.monotonic()
        r = subprocess.run([*imd_prefix, "getent", *args], capture_output=True, text=True,
                           timeout=30)
        return r, time.monotonic() - t0

    r, _ = getent("ahosts", "localhost")
    assert r.returncode == 0, r.stderr
    firsts = [line.split()[0] for line in r.stdout.splitlines()]
    assert firsts[0] == "127.0.0.2" and "127.0.0.1" in firsts, r.stdout
    r, took = getent("hosts", SLOW)
    assert r.returncode == 0 and r.stdout.split()[0] == "127.0.0.1", r.stdout + r.stderr
    assert took >= DELAY - 0.2, "the DNS server answered in %.1fs" % took
    r, _ = getent("hosts", MISSING)
    assert r.returncode != 0, r.stdout


def test_imd_answers_while_dns_is_slow_then_logs_in(client, client_factory, imd, prosody,
                                                    new_account, peer, dns):
    alice = new_account("alice")
    other = client_factory()
    asked = dns.queries.count(SLOW)
    t0 = time.monotonic()
    pending = login_async(client, alice, ws_url(SLOW, prosody))
    # while the lookup is out, other frontends are answered at once
    slowest, calls = 0.0, 0
    while time.monotonic() - t0 < DELAY - 0.5:
        t = time.monotonic()
        assert other.get_property("NetState") == "connecting"
        other.call("GetConversations")
        slowest = max(slowest, time.monotonic() - t)
        calls += 1
        time.sleep(0.1)
    # (blocked, each would wait for the DNS answer: 3 s)
    assert calls >= 10 and slowest < 1.0, "%d calls, the slowest took %.2fs" % (calls, slowest)
    pending.result()
    took = time.monotonic() - t0
    assert took >= DELAY - 0.2, "logged in after %.1fs: not through the slow DNS" % took
    assert dns.queries.count(SLOW) > asked
    assert client.get_property("Ready") is True
    # the connection is the real one: a message goes through
    mid = client.call("SendText", "ss", (peer.jid, "resolved"))
    m = peer.wait_for_message(lambda m: m["origin_id"] == mid, timeout=20)
    assert m["body"] == "resolved"


def test_a_name_that_does_not_exist_is_a_network_error(client, imd, prosody, new_account):
    alice = new_account("alice")
    t0 = time.monotonic()
    with raises_im_error("Network") as ei:
        login_async(client, alice, ws_url(MISSING, prosody)).result()
    assert MISSING in ei.value.message, ei.value.message
    assert time.monotonic() - t0 < 30
    assert client.get_property("Ready") is False
    assert imd.running and client.name_has_owner()


def test_logout_during_the_lookup(client, imd, prosody, new_account):
    """Logout while the name is being resolved: the lookup's answer, when it
    comes, is dropped; imd stays logged out and can log in again."""
    alice = new_account("alice")
    pending = login_async(client, alice, ws_url(SLOW, prosody))
    time.sleep(0.5)
    client.call("Logout")
    with pytest.raises(Exception):
        pending.result()
    time.sleep(DELAY)       # the answer arrives, for nobody
    assert client.get_property("NetState") == "disconnected"
    assert client.get_property("Ready") is False
    client.login(alice.jid, alice.password, ws_url("127.0.0.1", prosody))
    assert client.get_property("Ready") is True
    assert imd.running


def test_the_next_address_is_tried_for_xmpp_and_files(client, imd, prosody, new_account, peer,
                                                     tmp_path):
    """localhost is 127.0.0.2 (refused) then 127.0.0.1: the login, an upload
    to the http://localhost slot and a download from one all get through."""
    alice = new_account("alice")
    login_async(client, alice, ws_url("localhost", prosody)).result()
    assert client.get_property("Ready") is True
    assert tried_next_address(imd, "localhost"), imd.stderr_text()
    # upload (PUT): Prosody's slots are http://localhost:PORT/...
    data = os.urandom(256 * 1024)
    start = client.mark()
    mid = send_path(client, peer.jid, write_file(tmp_path, data, "notes.bin"))
    wait_status(client, mid, "sent", start)
    received_file(peer, alice.jid, mid, data)
    assert stored(client, peer.jid, mid)["url"].startswith("http://localhost:")
    # download (GET)
    photo = os.urandom(64 * 1024)
    url = peer.upload(photo, "photo.jpg", "image/jpeg")
    assert url.startswith("http://localhost:"), url
    mid, raw = _media_raw(alice.jid, url)
    start = client.mark()
    peer.send_raw(raw)
    client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start)
    fd = client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=60)
    with os.fdopen(fd, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(photo).digest()
    # each of the three connections went to 127.0.0.2 first
    assert imd.stderr_text().count("trying the next address") >= 3, imd.stderr_text()


def test_the_next_address_is_tried_over_tls(client, imd, tls_certs, tls_servers,  # noqa: F811
                                            new_account):
    """wss://localhost: the certificate is checked against the name in the
    URL, not the address connected to (the good certificate names localhost)."""
    server = tls_servers("good")
    jid, pw = server.new_account("alice")
    url = "wss://localhost:%d/xmpp-websocket" % server.https_port
    client.login(jid, pw, url, ca_file=tls_certs.ca)
    assert client.get_property("Ready") is True
    assert client.get_property("Account") == jid
    assert tried_next_address(imd, "localhost"), imd.stderr_text()


def test_an_address_that_drops_packets_is_given_up(client, imd, prosody, new_account):
    """dropping.imd-test's first address answers nothing (a listener whose
    queue is full: the kernel drops the SYNs): imd gives up on it after
    10 s and logs in through 127.0.0.1, within the login's 30 s (lws alone
    waits 60 s)."""
    port = prosody.http_port
    hole = socket.socket()
    hole.bind(("127.0.0.3", port))
    hole.listen(0)
    filler = socket.create_connection(("127.0.0.3", port))      # fills the queue
    try:
        probe = socket.socket()
        probe.settimeout(1.0)
        with pytest.raises(socket.timeout):
            probe.connect(("127.0.0.3", port))                   # it does drop
        probe.close()
        alice = new_account("alice")
        t0 = time.monotonic()
        login_async(client, alice, ws_url("dropping.imd-test", prosody)).result()
        took = time.monotonic() - t0
        assert client.get_property("Ready") is True
        assert 8 <= took < 25, "logged in after %.1fs" % took
        assert tried_next_address(imd, "dropping.imd-test"), imd.stderr_text()
    finally:
        filler.close()
        hole.close()
