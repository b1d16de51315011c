"""No missed events: every signal is numbered by its D-Bus serial, kept for a
while, and GetEventsSince / LastEvent let a frontend catch up on what it
missed."""

import threading
import time

from gi.repository import Gio, GLib

from harness.asserts import raises_im_error
from harness.bus import IM_IFACE, IM_PATH


class SerialRecorder:
    """A frontend's view of the live signals: (serial, member, args) of every
    signal of the interface, read with a message filter because Gio's signal
    subscriptions do not tell the serial."""

    def __init__(self, address):
        self.events = []
        self.lock = threading.Lock()
        self.conn = Gio.DBusConnection.new_for_address_sync(
            address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
            | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        self.conn.set_exit_on_close(False)
        self.conn.add_filter(self._filter)
        self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "AddMatch",
                            GLib.Variant("(s)", ("type='signal',interface='%s',path='%s'"
                                                 % (IM_IFACE, IM_PATH),)),
                            None, Gio.DBusCallFlags.NONE, 5000, None)

    def _filter(self, conn, msg, incoming):
        if (incoming and msg.get_message_type() == Gio.DBusMessageType.SIGNAL
                and msg.get_interface() == IM_IFACE):
            body = msg.get_body()
            with self.lock:
                self.events.append((msg.get_serial(), msg.get_member(),
                                    body.unpack() if body is not None else ()))
        return msg

    def wait(self, predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for e in self.events:
                    if predicate(e):
                        return e
            time.sleep(0.02)
        raise TimeoutError("no matching signal; recorded %r" % self.events[-10:])

    def close(self):
        self.conn.close_sync(None)


def events_since(client, after):
    events, last = client.call("GetEventsSince", "t", (after,))
    return [(n, member, tuple(args)) for n, member, args in events], last


def received_text(event):
    return event[1] == "MessageReceived" and event[2][0].get("text")


def test_live_signals_are_numbered_and_replayed(client, logged_in, peer, bus):
    rec = SerialRecorder(bus.address)
    try:
        texts = ["first", "second", "third"]
        for t in texts:
            peer.send_message(logged_in.jid, t)
            rec.wait(lambda e, t=t: received_text(e) == t)
        live = {received_text(e): e for e in rec.events if received_text(e) in texts}

        events, last = events_since(client, 0)
        kept = {received_text(e): e for e in events if received_text(e) in texts}
        for t in texts:
            # the same number (the signal's serial) and the same arguments
            assert kept[t][0] == live[t][0]
            assert kept[t][2][0]["id"] == live[t][2][0]["id"]
            assert kept[t][2][0]["sender"] == peer.jid
        numbers = [e[0] for e in events]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        assert last == client.get_property("LastEvent")
        assert last >= max(numbers)
        # ConversationsChanged is kept too, with its own arguments
        assert any(e[1] == "ConversationsChanged" and e[2][0][0]["id"] == peer.jid for e in events)

        # catching up from the first message's number: only what came after
        after_first, _ = events_since(client, live["first"][0])
        got = [received_text(e) for e in after_first if received_text(e)]
        assert got == ["second", "third"]
        assert all(e[0] > live["first"][0] for e in after_first)
    finally:
        rec.close()


def test_nothing_after_last_event(client, logged_in, peer):
    peer.send_message(logged_in.jid, "one")
    client.wait_signal("MessageReceived", lambda a: a[0].get("text") == "one")
    last = client.get_property("LastEvent")
    assert last > 0
    events, last2 = events_since(client, last)
    assert events == [] and last2 == last
    # a number from the future (another imd's) is no error: nothing yet
    events, _ = events_since(client, last + 1000000)
    assert events == []


def test_moments_are_not_kept(client, logged_in, peer, bus):
    """Typing only describes a moment: it is numbered but not replayed."""
    rec = SerialRecorder(bus.address)
    try:
        peer.send_raw("<message to='%s' type='chat'><composing "
                      "xmlns='http://jabber.org/protocol/chatstates'/></message>" % logged_in.jid)
        typing = rec.wait(lambda e: e[1] == "Typing")
        events, last = events_since(client, 0)
        assert not any(e[1] == "Typing" for e in events)
        assert last >= typing[0]
    finally:
        rec.close()


def test_dropped_events_are_reported_not_skipped(client, logged_in, peer):
    """The log is bounded (512 KiB): asking for events it no longer has is
    NotFound, so a frontend knows to re-read the state instead of silently
    missing messages; asking for 0 gives what is kept."""
    start = client.mark()
    peer.send_message(logged_in.jid, "oldest")
    first = client.wait_signal("MessageReceived", lambda a: a[0].get("text") == "oldest",
                               start=start)
    events, _ = events_since(client, 0)
    oldest = [e for e in events if received_text(e) == "oldest"][0][0]

    big = "x" * 16000
    for i in range(80):                     # ~1.3 MB of messages, plus their conversation updates
        peer.send_message(logged_in.jid, "%d %s" % (i, big))
    client.wait_signal("MessageReceived", lambda a: a[0].get("text", "").startswith("79 "),
                       start=start, timeout=30)
    assert first is not None

    with raises_im_error("NotFound"):
        client.call("GetEventsSince", "t", (oldest,))
    events, last = events_since(client, 0)
    texts = [received_text(e) for e in events if received_text(e)]
    assert "oldest" not in texts
    assert texts[-1].startswith("79 ")
    # bounded: far fewer than the 80 big messages fit in 512 KiB
    assert 5 < len(texts) < 40
    assert sum(len(t) for t in texts) < 512 * 1024
    assert last == client.get_property("LastEvent")


def test_numbers_belong_to_the_daemon_instance(client, logged_in, peer, imd, bus, client_factory):
    """After a restart imd has a new unique name and keeps nothing of the old
    instance: a frontend asks for 0 and gets only the new events."""
    peer.send_message(logged_in.jid, "before restart")
    client.wait_signal("MessageReceived", lambda a: a[0].get("text") == "before restart")
    old_owner = client.name_owner()
    imd.stop()
    imd.start()
    fresh = client_factory()
    fresh.login_account(logged_in)
    assert fresh.name_owner() != old_owner
    events, _ = events_since(fresh, 0)
    assert not any(received_text(e) == "before restart" for e in events)


def test_another_account_does_not_replay_the_last_ones_events(client, logged_in, peer, new_account):
    """Logged out of one account and into another: GetEventsSince gives the
    new account nothing of the old one's, and a frontend that missed some of
    the old one's events is told to re-read the state."""
    peer.send_message(logged_in.jid, "seen")
    client.wait_signal("MessageReceived", lambda a: a[0].get("text") == "seen")
    number = client.get_property("LastEvent")
    # what a frontend holding `number` has not seen yet
    peer.send_message(logged_in.jid, "for the first account")
    client.wait_signal("MessageReceived", lambda a: a[0].get("text") == "for the first account")
    client.call("Logout")
    other = new_account("carol")
    client.login_account(other)
    with raises_im_error("NotFound"):
        client.call("GetEventsSince", "t", (number,))
    events, _ = events_since(client, 0)
    assert not any(received_text(e) == "for the first account" for e in events)
