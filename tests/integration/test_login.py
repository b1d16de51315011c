"""Login / Logout of imd against a real Prosody over RFC 7395 WebSocket."""

import os
import shutil
import subprocess
import time

import pytest
from gi.repository import GLib

from harness.asserts import raises_im_error
from harness.bus import DBusCallError
from harness.util import free_port


def _changes(client, prop, start=0):
    """Values prop took in PropertiesChanged signals recorded since start."""
    client.pump()
    out = []
    for s in client.signals[start:]:
        if (s.interface == "org.freedesktop.DBus.Properties" and s.member == "PropertiesChanged"
                and s.args[0] == client.iface and prop in s.args[1]):
            out.append(s.args[1][prop])
    return out


def test_initial_state(client):
    props = client.get_all_properties()
    assert props["Ready"] is False
    assert props["NetState"] == "disconnected"
    assert props["Account"] == ""
    assert props["UnreadTotal"] == 0


def test_login_ok(client, alice):
    start = client.mark()
    assert client.login_account(alice) is None
    # the reply comes once the session is ready
    assert client.get_property("Ready") is True
    assert client.get_property("NetState") == "connected"
    assert client.get_property("Account") == alice.jid
    client.wait_property("Ready", lambda v: v is True, start=start, timeout=5)
    client.wait_property("NetState", lambda v: v == "connected", start=start, timeout=5)
    client.wait_property("Account", lambda v: v == alice.jid, start=start, timeout=5)
    states = _changes(client, "NetState", start)
    assert "connecting" in states and states.index("connecting") < states.index("connected"), states
    assert _changes(client, "Ready", start)[-1] is True


def test_login_is_seen_by_a_second_client(client_factory, imd, alice):
    a, b = client_factory(), client_factory()
    start = b.mark()
    a.login_account(alice)
    b.wait_property("Ready", lambda v: v is True, start=start, timeout=5)
    assert b.get_property("Account") == alice.jid


def test_wrong_password(client, alice):
    start = client.mark()
    with raises_im_error("AuthFailed"):
        client.login(alice.jid, alice.password + "-wrong", alice.ws_url)
    assert client.get_property("Ready") is False
    client.pump(0.5)
    assert True not in _changes(client, "Ready", start)
    # the state machine settles back to disconnected, and a good login works
    deadline = time.monotonic() + 10
    while client.get_property("NetState") != "disconnected":
        assert time.monotonic() < deadline, "NetState stuck at %s" % client.get_property("NetState")
        time.sleep(0.1)
    client.login_account(alice)
    assert client.get_property("Ready") is True


def test_history_that_cannot_be_opened(client, imd, alice):
    """The account's history directory cannot be created (a file is in the
    way): Login fails with Failed, saying so, and the next Login tries again
    (the same answer, not Busy); once the way is clear it logs in."""
    blocker = os.path.join(imd.data_dir, alice.jid)
    with open(blocker, "w") as f:
        f.write("in the way")
    for _ in range(2):
        with raises_im_error("Failed") as ei:
            client.login(alice.jid, alice.password, alice.ws_url)
        assert "history" in ei.value.message
        assert client.get_property("Ready") is False
    os.unlink(blocker)
    client.login(alice.jid, alice.password, alice.ws_url)
    assert client.get_property("Ready") is True


def test_unknown_account(client, alice):
    with raises_im_error("AuthFailed"):
        client.login("nobody-" + alice.user + "@localhost", "whatever", alice.ws_url)
    assert client.get_property("Ready") is False


@pytest.mark.parametrize("jid", [
    "",
    "not a jid",
    "@localhost",
    "alice@",
    "alice@@localhost",
    "ali ce@localhost",
    "alice@local host",
    "alice\u0007@localhost",
    "x" * 1100 + "@localhost",
    "alice@" + "d" * 1100,
], ids=lambda j: "empty" if j == "" else (j if len(j) < 30 else j[:12] + "...%d" % len(j)))
def test_login_invalid_jid(client, alice, jid):
    with raises_im_error("InvalidArgument"):
        client.login(jid, "pw", alice.ws_url, timeout=10)
    assert client.get_property("Ready") is False
    assert client.get_property("NetState") == "disconnected"


def test_login_unknown_option(client, alice):
    opts = {"websocket_url": GLib.Variant("s", alice.ws_url),
            "no_such_option": GLib.Variant("s", "x")}
    with raises_im_error("InvalidArgument"):
        client.call("Login", "ssa{sv}", (alice.jid, alice.password, opts), timeout=10)
    assert client.get_property("Ready") is False


def test_login_option_wrong_type(client, alice):
    opts = {"websocket_url": GLib.Variant("u", 5280)}
    with raises_im_error("InvalidArgument"):
        client.call("Login", "ssa{sv}", (alice.jid, alice.password, opts), timeout=10)
    assert client.get_property("Ready") is False


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/xmpp-websocket", "not a url",
                                 "ws://127.0.0.1:1/xmpp-websocket\r\nX-Injected: 1",
                                 "ws://127.0.0.1:1/a b", "ws:///xmpp-websocket"])
def test_login_bad_url(client, alice, url):
    with raises_im_error("InvalidArgument"):
        client.login(alice.jid, alice.password, url, timeout=10)


def test_second_login_is_busy(client, alice, new_account):
    client.login_account(alice)
    with raises_im_error("Busy"):
        client.login_account(alice, timeout=10)
    other = new_account("carol")
    with raises_im_error("Busy"):
        client.login_account(other, timeout=10)
    # still logged in as alice
    assert client.get_property("Ready") is True
    assert client.get_property("Account") == alice.jid


def test_login_in_progress_is_busy(client_factory, imd, private_prosody):
    """A Login while another one is still in progress gets Busy."""
    from conftest import Account
    jid, pw = private_prosody.new_account("alice")
    acc = Account(jid, pw, private_prosody.ws_url)
    a, b = client_factory(), client_factory()
    private_prosody.pause()          # the server hangs: the first Login stays pending
    try:
        pending = a.call_async("Login", "ssa{sv}",
                               (acc.jid, acc.password,
                                {"websocket_url": GLib.Variant("s", acc.ws_url)}))
        deadline = time.monotonic() + 10
        while b.get_property("NetState") != "connecting":
            assert not pending.poll(), "Login returned while the server was stopped"
            assert time.monotonic() < deadline, "NetState never became connecting"
            time.sleep(0.05)
        with raises_im_error("Busy"):
            b.login_account(acc, timeout=10)
    finally:
        private_prosody.resume()
    assert pending.result(timeout=40) is None
    assert a.get_property("Ready") is True


def test_unreachable_server(client, alice):
    url = "ws://127.0.0.1:%d/xmpp-websocket" % free_port()
    t0 = time.monotonic()
    with raises_im_error("Network"):
        client.login(alice.jid, alice.password, url)
    assert time.monotonic() - t0 < 30
    assert client.get_property("Ready") is False
    deadline = time.monotonic() + 10
    while client.get_property("NetState") != "disconnected":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_wrong_websocket_path(client, alice, prosody):
    url = "ws://127.0.0.1:%d/no-such-endpoint" % prosody.http_port
    with raises_im_error("Network", "NotSupported"):
        client.login(alice.jid, alice.password, url)
    assert client.get_property("Ready") is False


def test_logout(client, alice):
    client.login_account(alice)
    start = client.mark()
    assert client.call("Logout") is None
    assert client.get_property("Ready") is False
    client.wait_property("Ready", lambda v: v is False, start=start, timeout=10)
    deadline = time.monotonic() + 10
    while client.get_property("NetState") != "disconnected":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    client.wait_property("NetState", lambda v: v == "disconnected", start=start, timeout=5)
    # not an error when already logged out
    assert client.call("Logout") is None
    # and one can log in again
    client.login_account(alice)
    assert client.get_property("Ready") is True


def test_logout_during_login_cancels_it(client, imd, private_prosody):
    """Logout while Login waits for the server: Login fails with Cancelled
    (the user's doing, not a network failure) and imd stays logged out."""
    jid, pw = private_prosody.new_account("alice")
    private_prosody.pause()          # the server hangs: the Login stays pending
    try:
        pending = client.call_async("Login", "ssa{sv}",
                                    (jid, pw, {"websocket_url": GLib.Variant("s", private_prosody.ws_url)}))
        deadline = time.monotonic() + 10
        while client.get_property("NetState") != "connecting":
            assert not pending.poll(), "Login returned while the server was stopped"
            assert time.monotonic() < deadline, "NetState never became connecting"
            time.sleep(0.05)
        assert client.call("Logout") is None
        with raises_im_error("Cancelled") as ei:
            pending.result(timeout=5)
    finally:
        private_prosody.resume()
    assert "Logged out" in ei.value.message, ei.value.message
    assert client.get_property("NetState") == "disconnected"
    assert client.get_property("Ready") is False


def test_logout_when_never_logged_in(client):
    assert client.call("Logout") is None
    assert client.get_property("Ready") is False


def test_logout_closes_the_xmpp_session(client, alice, peer):
    """After Logout the server no longer has imd's resource: a message to alice
    is stored offline and delivered at the next Login."""
    client.login_account(alice)
    client.call("Logout")
    time.sleep(0.3)
    text = "while you were away %f" % time.time()
    peer.send_message(alice.jid, text)
    time.sleep(0.5)
    start = client.mark()
    client.pump(0.5)
    assert not [m for m in client.messages_received(start) if m.get("text") == text]
    client.login_account(alice)
    client.wait_signal("MessageReceived", lambda a: a[0].get("text") == text, start=start)


def test_error_text_quoting_multibyte_input_is_still_sent(client, alice):
    # The error text quotes the argument cut to a byte length; a cut through a
    # UTF-8 sequence must not stop the reply (the caller would hang until timeout).
    t0 = time.monotonic()
    with raises_im_error("InvalidArgument") as ei:
        client.login("a" + "\u00e9" * 80, "pw", alice.ws_url, timeout=10)
    assert time.monotonic() - t0 < 5
    assert "Invalid account" in ei.value.message
    opts = {"\u00e9" * 80: GLib.Variant("s", "x")}
    with raises_im_error("InvalidArgument"):
        client.call("Login", "ssa{sv}", (alice.jid, alice.password, opts), timeout=10)


def test_login_ca_file_not_certificates(client, alice, tmp_path):
    bogus = tmp_path / "not-a-ca.pem"
    bogus.write_text("this is not PEM\n")
    with raises_im_error("InvalidArgument") as ei:
        client.login(alice.jid, alice.password, "wss://127.0.0.1:1/xmpp-websocket",
                     ca_file=str(bogus), timeout=10)
    assert "ca_file" in ei.value.message
    with raises_im_error("InvalidArgument"):
        client.login(alice.jid, alice.password, "wss://127.0.0.1:1/xmpp-websocket",
                     ca_file=str(tmp_path / "missing.pem"), timeout=10)
    # a FIFO (or a directory) is refused at once: opening it to read would
    # block imd's main loop until someone wrote to it
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    for path in (fifo, tmp_path):
        with raises_im_error("InvalidArgument"):
            client.login(alice.jid, alice.password, "wss://127.0.0.1:1/xmpp-websocket",
                         ca_file=str(path), timeout=10)
    assert time.monotonic() - t0 < 5
    assert client.get_property("Ready") is False
    # without a URL too (the endpoint would be discovered first)
    with raises_im_error("InvalidArgument") as ei:
        client.call("Login", "ssa{sv}", (alice.jid, alice.password,
                                         {"ca_file": GLib.Variant("s", str(bogus))}), timeout=10)
    assert "ca_file" in ei.value.message
    assert client.get_property("NetState") == "disconnected"


@pytest.mark.skipif(shutil.which("gdb") is None, reason="needs gdb")
def test_login_when_no_thread_can_be_started(client, imd, alice):
    """The SCRAM proof is computed in a thread; when none can be started
    (gdb makes that pthread_create fail with EAGAIN, as a process or memory
    limit would), the login fails with a reason and imd stays up (it
    aborted). The next Login succeeds."""
    commands = ["set confirm off", "set breakpoint pending off", "break scram_start_final", "continue",
                "break pthread_create", "continue", "return (int) 11", "delete", "detach"]
    gdb = subprocess.Popen(["gdb", "-q", "-batch", "-nx", "-p", str(imd.pid)]
                           + [a for c in commands for a in ("-ex", c)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in gdb.stdout:
            seen.append(line)
            if line.startswith("Breakpoint 1 at"):
                break
        else:
            pytest.skip("gdb cannot stop imd here: " + "".join(seen[-5:]))
        with pytest.raises(DBusCallError) as e:
            client.login_account(alice)
        out, _ = gdb.communicate(timeout=30)
    finally:
        if gdb.poll() is None:
            gdb.kill()
            gdb.wait()
    assert "thread" in e.value.message, (e.value, "".join(seen) + out)
    assert imd.running, imd.stderr_text()
    assert client.get_property("Ready") is False
    client.login_account(alice)
    assert client.get_property("Ready") is True
