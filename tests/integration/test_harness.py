"""Sanity checks of the test harness itself (no imd involved): the private
Prosody, two slixmpp peers, the private bus and the Gio client helper."""

import os
import threading
import time

import pytest
from gi.repository import Gio, GLib

from harness.bus import DBusCallError, IM_NAME, IM_PATH, IM_IFACE
from harness.util import REPO


def test_two_peers_exchange_messages(peer_factory):
    bob = peer_factory("bob")
    carol = peer_factory("carol")
    text = "héllo 👋 <>&'\" from bob"
    mid = bob.send_message(carol.jid, text)
    got = carol.wait_for_body(text)
    assert got["from"].split("/")[0] == bob.jid
    assert got["origin_id"] == mid
    assert got["id"] == mid
    assert got["type"] == "chat"

    carol.send_message(bob.jid, "reply")
    assert bob.wait_for_body("reply")["from"].startswith(carol.jid + "/")

    # XEP-0333 markers are recorded
    carol.send_displayed(bob.jid, mid)
    marker = bob.wait_for_marker(lambda m: m["id"] == mid)
    assert marker["from"].startswith(carol.jid)


def test_peer_wrong_password_fails(prosody, new_account):
    from harness.peer import Peer
    acc = new_account("mallory")
    p = Peer(acc.jid, acc.password + "x", "127.0.0.1", prosody.c2s_port)
    with pytest.raises(RuntimeError, match="authentication failed"):
        p.start()
    p.stop()


def test_prosody_websocket_endpoint(prosody):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", prosody.http_port, timeout=5)
    conn.request("GET", "/xmpp-websocket")
    r = conn.getresponse()
    body = r.read().decode(errors="replace")
    # a plain GET (no Upgrade) gets prosody's informational page
    assert r.status == 200 and "WebSocket" in body, (r.status, body)


def test_bus_fixture(bus, client_factory):
    assert bus.address.startswith("unix:")
    c = client_factory()
    assert c.unique_name.startswith(":")
    assert c.call_bus("GetId")
    names = c.call_bus("ListNames")
    assert "org.freedesktop.DBus" in names
    assert not c.name_has_owner(IM_NAME)
    # nothing is activatable on the test bus
    activatable = c.call_bus("ListActivatableNames")
    assert set(activatable) <= {"org.freedesktop.DBus"}
    with pytest.raises(DBusCallError) as ei:
        c.call_bus("NoSuchMethod")
    assert ei.value.name == "org.freedesktop.DBus.Error.UnknownMethod"


class _FakeService(threading.Thread):
    """A stand-in owning org.example.IM, only to test the client helper."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.address = address
        self.ready = threading.Event()

    def run(self):
        self.ctx = GLib.MainContext.new()
        self.ctx.push_thread_default()
        self.loop = GLib.MainLoop.new(self.ctx, False)
        self.conn = Gio.DBusConnection.new_for_address_sync(
            self.address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
            | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        with open(os.path.join(REPO, "dbus", "org.example.IM.xml")) as f:
            info = Gio.DBusNodeInfo.new_for_xml(f.read())
        self.conn.register_object(IM_PATH, info.lookup_interface(IM_IFACE),
                                  self.on_call, self.on_get, None)
        self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "RequestName",
                            GLib.Variant("(su)", (IM_NAME, 4)), None, 0, -1, None)
        self.ready.set()
        self.loop.run()
        self.conn.close_sync(None)
        self.ctx.pop_thread_default()

    def on_call(self, conn, sender, path, iface, method, params, invocation):
        if method == "SendText":
            conv, text = params.unpack()
            invocation.return_dbus_error("org.example.IM.Error.NotLoggedIn", "not logged in")
        elif method == "GetMessages":
            msg = {"id": GLib.Variant("s", "m1"), "time": GLib.Variant("x", 5)}
            invocation.return_value(GLib.Variant("(aa{sv}b)", ([msg], True)))
            conn.emit_signal(None, IM_PATH, IM_IFACE, "MessageReceived",
                             GLib.Variant("(a{sv})", (msg,)))
        else:
            invocation.return_value(None)

    def on_get(self, conn, sender, path, iface, prop):
        return {"NetState": GLib.Variant("s", "disconnected"),
                "Ready": GLib.Variant("b", False), "Account": GLib.Variant("s", ""),
                "UnreadTotal": GLib.Variant("u", 0)}[prop]

    def stop(self):
        self.ctx.invoke_full(GLib.PRIORITY_DEFAULT, self.loop.quit)
        self.join(5)


def test_client_helper_against_stand_in(bus, client_factory):
    svc = _FakeService(bus.address)
    svc.start()
    assert svc.ready.wait(5)
    try:
        a, b = client_factory(), client_factory()
        assert a.name_has_owner()
        with pytest.raises(DBusCallError) as ei:
            a.call("SendText", "ss", ("bob@localhost", "hi"))
        assert ei.value.name == "org.example.IM.Error.NotLoggedIn"
        assert ei.value.short == "NotLoggedIn"
        assert ei.value.message == "not logged in"
        msgs, complete = a.call("GetMessages", "ssu", ("bob@localhost", "", 10))
        assert msgs == [{"id": "m1", "time": 5}] and complete is True
        for c in (a, b):
            s = c.wait_signal("MessageReceived", lambda args: args[0]["id"] == "m1", timeout=5)
            assert s.args == ({"id": "m1", "time": 5},)
        assert a.get_property("NetState") == "disconnected"
        assert a.get_property("Ready") is False
        assert a.get_all_properties()["UnreadTotal"] == 0
        with pytest.raises(DBusCallError) as ei:
            a.call("NoSuch")
        assert ei.value.name == "org.freedesktop.DBus.Error.UnknownMethod"
    finally:
        svc.stop()
    t0 = time.monotonic()
    with pytest.raises(DBusCallError):
        a.call("Logout", timeout=2)
    assert time.monotonic() - t0 < 3
