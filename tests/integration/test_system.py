"""imd --system: a bus configured like the system bus with imd's policy, and
clients of other uids (setpriv). The bus refuses non-members; with a careless
policy imd refuses them itself (NotAllowed); members get in; broadcast
signals carry no message content; nobody else may own org.example.IM."""

import json
import os
import shutil
import subprocess

import pytest

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


def start_system(tmp_path, permissive=False):
    bus = SystemLikeBus(str(tmp_path), user="root", group=GROUP, permissive=permissive).start()
    imd = Imd(bus, str(tmp_path / "imd"), extra_args=["--system", "--group", GROUP])
    imd.start()
    return bus, imd


@pytest.fixture
def system(tmp_path):
    bus, imd = start_system(tmp_path)
    yield bus, imd
    imd.stop()
    bus.stop()
    assert not imd.problems, imd.problems


@pytest.fixture
def permissive_system(tmp_path):
    bus, imd = start_system(tmp_path, permissive=True)
    yield bus, imd
    imd.stop()
    bus.stop()
    assert not imd.problems, imd.problems


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


def test_broadcasts_carry_no_content(permissive_system, upload_prosody, tmp_path):
    """Under a careless policy a non-member may subscribe to imd's signals:
    it learns that a message came, never what it says, nor the names in an
    error; a member reads the content with GetMessages."""
    bus, _imd = permissive_system
    p = upload_prosody
    jid, pw = p.new_account("alice")
    peer_jid, peer_pw = p.new_account("bob")
    peer = Peer(peer_jid, peer_pw, "127.0.0.1", p.c2s_port).start()
    root = bus.client()
    try:
        root.login(jid, pw, p.ws_url)
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
        root.login_account(alice)
        listener = start_listener(bus, 3)
        start = root.mark()
        peer.send_message(alice.jid, "hello")
        root.wait_signal("MessageReceived", lambda a: a[0].get("conversation") == peer.jid, start=start)
        out, err = listener.communicate(timeout=20)
        assert out.strip() == "", out + err
    finally:
        root.close()
