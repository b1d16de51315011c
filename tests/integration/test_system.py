"""imd --system: a bus configured like the system bus with imd's policy, and
clients of other uids (setpriv). The bus refuses non-members; with a careless
policy imd refuses them itself (NotAllowed); members get in; broadcast
signals carry no message content; nobody else may own org.example.IM."""

import json
import os
import shutil
import subprocess
import time

import pytest
from gi.repository import GLib

from harness.asserts import raises_im_error
from harness.imd import Imd
from harness.peer import Peer
from harness.sysbus import SystemLikeBus

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv to act as other users")

NOBODY = 65534
NOGROUP = 65534
GROUP = "users"            # the group allowed in, in these tests
GROUP_ID = 100

IM = ["org.example.IM", "/org/example/IM", "org.example.IM"]


def start_system(tmp_path, permissive=False, ws_url=None):
    """imd --system on a system-like bus; WS_URL: the server its administrator
    set in its configuration (members cannot choose one)."""
    bus = SystemLikeBus(str(tmp_path), user="root", group=GROUP, permissive=permissive).start()
    config = tmp_path / "imd.conf"
    config.write_text("[connection]\nwebsocket_url=%s\n" % ws_url if ws_url else "")
    imd = Imd(bus, str(tmp_path / "imd"), extra_args=["--system", "--group", GROUP, "--config", str(config)])
    imd.start()
    return bus, imd


@pytest.fixture
def system_factory(tmp_path):
    """Factory: starts imd --system (start_system's arguments); stopped after the test."""
    started = []

    def make(**kwargs):
        bus, imd = start_system(tmp_path, **kwargs)
        started.append((bus, imd))
        return bus, imd
    yield make
    for bus, imd in started:
        imd.stop()
        bus.stop()
        assert not imd.problems, imd.problems


@pytest.fixture
def system(system_factory, prosody):
    return system_factory(ws_url=prosody.ws_url)


@pytest.fixture
def permissive_system(system_factory, prosody):
    return system_factory(permissive=True, ws_url=prosody.ws_url)


def login(client, account, remember=False):
    """Login as a member does it on the system bus: without a websocket_url."""
    opts = {"remember": GLib.Variant("b", True)} if remember else {}
    return client.call("Login", "ssa{sv}", (account.jid, account.password, opts), timeout=40)


def call_as(bus, groups, method, *args):
    return bus.busctl_as(NOBODY, NOGROUP, groups, "--json=short", "call", *IM, method, *args)


def test_member_gets_in(system):
    bus, _imd = system
    r = call_as(bus, [GROUP_ID], "GetConversations")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["data"] == [[]]
    r = bus.busctl_as(NOBODY, NOGROUP, [GROUP_ID], "get-property", *IM, "NetState")
    assert r.returncode == 0 and "disconnected" in r.stdout, r.stderr


def test_non_member_refused_by_the_bus(system):
    bus, _imd = system
    r = call_as(bus, [], "GetConversations")
    assert r.returncode != 0
    assert "Access denied" in r.stderr, r.stderr


def test_non_member_refused_by_imd_despite_a_careless_policy(permissive_system):
    bus, _imd = permissive_system
    for method in (["GetConversations"], ["SendText", "ss", "bob@localhost", "hi"], ["Logout"]):
        r = call_as(bus, [], *method)
        assert r.returncode != 0
        assert "org.example.IM.Error.NotAllowed" in r.stderr or "Only members" in r.stderr, r.stderr
    r = bus.busctl_as(NOBODY, NOGROUP, [], "get-property", *IM, "Account")
    assert r.returncode != 0 and "Only members" in r.stderr, r.stderr
    r = bus.busctl_as(NOBODY, NOGROUP, [], "introspect", *IM[:2])
    assert r.returncode != 0
    # a member still gets in
    assert call_as(bus, [GROUP_ID], "GetConversations").returncode == 0


def test_nobody_else_may_own_the_name(system):
    bus, _imd = system
    r = bus.busctl_as(NOBODY, NOGROUP, [GROUP_ID], "call", "org.freedesktop.DBus",
                      "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName", "su",
                      "org.example.IM", "4")
    assert r.returncode != 0 and "Access denied" in r.stderr, r.stderr
    # the policy, not a name already taken: as root (allowed to own it) the
    # same request queues instead
    r = bus.busctl_as(0, 0, [], "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                      "org.freedesktop.DBus", "RequestName", "su", "org.example.IM", "4")
    assert r.returncode == 0 and r.stdout.strip() in ("u 2", "u 3"), r.stdout + r.stderr


LISTENER = r"""
import sys
from gi.repository import Gio, GLib
conn = Gio.DBusConnection.new_for_address_sync(sys.argv[1],
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
    None, None)
def on_signal(c, sender, path, iface, member, params):
    print(member, params.print_(True), flush=True)
conn.signal_subscribe(None, "org.example.IM", None, "/org/example/IM", None,
                      Gio.DBusSignalFlags.NONE, on_signal)
conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId",
               None, None, Gio.DBusCallFlags.NONE, -1, None)
print("ready", flush=True)
loop = GLib.MainLoop()
GLib.timeout_add_seconds(int(sys.argv[2]), loop.quit)
loop.run()
"""


def start_listener(bus, seconds):
    """A non-member (nobody, no groups) subscribed to every signal of imd."""
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": "/"}
    p = subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOGROUP, "--clear-groups",
                          "/usr/bin/python3", "-c", LISTENER, bus.address, str(seconds)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    return p


def test_broadcasts_carry_no_content(system_factory, upload_prosody, tmp_path):
    """Under a careless policy a non-member may subscribe to imd's signals:
    it learns that a message came, never what it says, nor the names in an
    error; a member reads the content with GetMessages."""
    p = upload_prosody
    bus, _imd = system_factory(permissive=True, ws_url=p.ws_url)
    jid, pw = p.new_account("alice")
    peer_jid, peer_pw = p.new_account("bob")
    peer = Peer(peer_jid, peer_pw, "127.0.0.1", p.c2s_port).start()
    root = bus.client()
    try:
        root.call("Login", "ssa{sv}", (jid, pw, {}), timeout=40)
        listener = start_listener(bus, 6)
        try:
            start = root.mark()
            peer.send_message(jid, "the secret plan")
            sig = root.wait_signal("MessageReceived", lambda a: a[0].get("conversation") == peer_jid,
                                   start=start)
            assert "text" not in sig.args[0] and "sender" not in sig.args[0]
            conv = root.wait_signal("ConversationsChanged", start=start).args[0]
            assert all(set(c) <= {"id", "unread", "time"} for c in conv)
            # the member's way to the content
            msgs, _complete = root.call("GetMessages", "ssu", (peer_jid, "", 5))
            assert msgs[0]["text"] == "the secret plan"

            # an upload that fails: imd's log names the file, the broadcast does not
            p.upload_proxy.set(mode="refuse")
            path = tmp_path / "merger-plan.pdf"
            path.write_bytes(b"%PDF-1.4 confidential")
            fd = os.open(path, os.O_RDONLY)
            try:
                mid = root.call_with_fds("SendFile", "sha{sv}", (peer_jid, 0, {}), [fd], timeout=60)
            finally:
                os.close(fd)
            err = root.wait_signal("Error", start=start, timeout=30)
            assert "merger-plan" not in err.args[1] and peer_jid not in err.args[1], err.args
            assert mid
        finally:
            out, err_text = listener.communicate(timeout=30)
            p.upload_proxy.reset()
        assert "MessageReceived" in out and "Error" in out, out + err_text
        assert "secret" not in out and "merger-plan" not in out, out
    finally:
        root.close()
        peer.stop()


def test_non_members_hear_nothing_under_the_policy(system, prosody, new_account, peer_factory):
    """With imd's policy the bus does not even deliver imd's signals to a
    non-member (defence in depth); a member's subscription gets them."""
    bus, _imd = system
    alice = new_account("alice")
    peer = peer_factory("bob")
    root = bus.client()
    try:
        login(root, alice)
        listener = start_listener(bus, 3)
        start = root.mark()
        peer.send_message(alice.jid, "hello")
        root.wait_signal("MessageReceived", lambda a: a[0].get("conversation") == peer.jid, start=start)
        out, err = listener.communicate(timeout=20)
        assert out.strip() == "", out + err
    finally:
        root.close()


def test_a_member_cannot_choose_the_server(system, new_account):
    """A server of a member's choosing would take any password for any
    account: logging in as someone else there would open that account's
    history and send its outbox to it. Only the administrator's server (or
    the one the account's domain names) is used."""
    bus, _imd = system
    alice = new_account("alice")
    root = bus.client()
    try:
        with raises_im_error("NotAllowed"):
            root.call("Login", "ssa{sv}", (alice.jid, alice.password,
                                           {"websocket_url": GLib.Variant("s", alice.ws_url)}))
        assert root.get_property("NetState") == "disconnected"
        r = call_as(bus, [GROUP_ID], "Login", "ssa{sv}", alice.jid, "anything", "1",
                    "websocket_url", "s", "ws://127.0.0.1:9/xmpp-websocket")
        assert r.returncode != 0 and "websocket_url is not taken" in r.stderr, r.stderr
        # the administrator's server it is
        login(root, alice)
        assert root.get_property("Account") == alice.jid
    finally:
        root.close()


def test_logout_closes_the_history(system, new_account, peer_factory):
    """On a shared machine the next member must not read what the last one
    received: after Logout, and after a restart without a remembered login,
    the history is closed (NotLoggedIn) and its events are gone; a
    remembered login opens it again by itself."""
    bus, imd = system
    alice = new_account("alice")
    peer = peer_factory("bob")
    root = bus.client()
    login(root, alice)
    start = root.mark()
    peer.send_message(alice.jid, "for alice only")
    root.wait_signal("MessageReceived", lambda a: a[0].get("conversation") == peer.jid, start=start)
    assert root.call("GetMessages", "ssu", (peer.jid, "", 10))[0][0]["text"] == "for alice only"
    assert root.call("GetEventsSince", "t", (0,))[0]

    def assert_closed(client):
        assert client.get_property("Account") == ""
        assert client.get_property("UnreadTotal") == 0
        with raises_im_error("NotLoggedIn"):
            client.call("GetMessages", "ssu", (peer.jid, "", 10))
        with raises_im_error("NotLoggedIn"):
            client.call("SearchMessages", "ssu", ("alice", "", 10))
        assert client.call("GetConversations") == []
        r = call_as(bus, [GROUP_ID], "GetMessages", "ssu", peer.jid, "", "10")
        assert r.returncode != 0 and "call Login first" in r.stderr, r.stderr

    root.call("Logout")
    assert_closed(root)
    events, _last = root.call("GetEventsSince", "t", (0,))
    assert not [e for e in events if e[1] in ("MessageReceived", "ConversationsChanged")], events
    root.close()

    imd.restart()
    root = bus.client()
    try:
        assert_closed(root)
        # remembered: in again by itself at the next start, history and all
        login(root, alice, remember=True)
        root.close()
        imd.stop()
        # keys an older imd stored with a server a member chose: not that
        # server, the administrator's
        creds = os.path.join(imd.data_dir, alice.jid, "credentials")
        with open(creds) as f:
            text = f.read()
        assert "websocket_url=" + alice.ws_url in text
        with open(creds, "w") as f:
            f.write(text.replace("websocket_url=" + alice.ws_url, "websocket_url=ws://127.0.0.1:9/rogue"))
        imd.start()
        root = bus.client()
        deadline = time.monotonic() + 30
        while not root.get_property("Ready") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert root.get_property("Ready") is True
        assert root.get_property("Account") == alice.jid
        assert root.call("GetMessages", "ssu", (peer.jid, "", 10))[0][0]["text"] == "for alice only"
    finally:
        root.close()


def test_a_call_that_starts_imd_finds_no_history(system, new_account, peer_factory):
    """A member's call that starts imd by D-Bus activation is the first thing
    imd handles, before anything it does by itself at start: after the last
    account logged out, even that call must find no history open."""
    bus, imd = system
    alice = new_account("alice")
    peer = peer_factory("bob")
    root = bus.client()
    try:
        login(root, alice)
        start = root.mark()
        peer.send_message(alice.jid, "for alice only")
        root.wait_signal("MessageReceived", lambda a: a[0].get("conversation") == peer.jid, start=start)
        root.call("Logout")
    finally:
        root.close()
    imd.stop()

    # the same imd, started by the bus for the member's call
    env = imd.env()
    env["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
    with open(os.path.join(bus.servicedir, "org.example.IM.service"), "w") as f:
        f.write("[D-BUS Service]\nName=org.example.IM\nUser=root\nExec=/usr/bin/env %s %s\n"
                % (" ".join("%s=%s" % (k, v) for k, v in env.items()
                            if k.startswith(("DBUS_", "XDG_", "ASAN_", "UBSAN_", "LSAN_"))),
                   " ".join(imd.argv())))
    subprocess.run(["dbus-send", "--address=" + bus.address, "--type=method_call",
                    "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.ReloadConfig"], check=True, timeout=10)
    r = call_as(bus, [GROUP_ID], "GetMessages", "ssu", peer.jid, "", "10")
    owner = bus.client()
    try:
        pid = owner.call_bus("GetConnectionUnixProcessID", "s", (owner.name_owner(),))
    finally:
        owner.close()
    try:
        assert "for alice only" not in r.stdout
        assert r.returncode != 0 and "call Login first" in r.stderr, r.stdout + r.stderr
    finally:
        os.kill(pid, 15)
        for _ in range(100):
            if not os.path.exists("/proc/%d" % pid):
                break
            time.sleep(0.1)
