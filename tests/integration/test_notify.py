"""im-notify end to end: real imd, real Prosody, real slixmpp peer, and a real
notification server (dunst on Xvfb) on the test's private bus; dbusmock's
notification_daemon only for the inline-reply capability, which no server
packaged here has.

What a user sees is read from dunst (dunstctl count / history); what
im-notify asked for (actions, replaces_id) from a bus monitor.
"""

import os
import subprocess
import uuid

import pytest
from gi.repository import GLib

from conftest import Imctl, _failed
from harness.asserts import find_conversation
from harness.bus import IM_IFACE, IM_NAME, IM_PATH, DBusCallError
from harness.imd import Imd, build_dir
from harness.notify import (NOTIFY_NAME, ActivatableNotifyMock, Dunst, FakeImd, ImNotify, NotifyMock,
                            NotifyMonitor, Rogue, Xvfb, im_notify_path, incoming, unique_name_of)
from harness.peer import Peer
from harness.util import REPO, wait_until
from test_messages import wait_in
from test_rich import _media_raw

MAN_PAGE = os.path.join(REPO, "clients", "im-notify", "im-notify.1")
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_CORRECT = "urn:xmpp:message-correct:0"


# -- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def xvfb(tmp_path_factory):
    x = Xvfb(str(tmp_path_factory.mktemp("xvfb"))).start()
    yield x
    x.stop()


@pytest.fixture
def monitor(bus):
    """Started before any server, so that it sees every call."""
    m = NotifyMonitor(bus).start()
    yield m
    m.stop()


@pytest.fixture
def dunst(bus, xvfb, tmp_path, monitor, request):
    d = Dunst(bus, str(tmp_path), xvfb.display).start()
    yield d
    d.stop()
    if _failed(request):
        print("\n----- dunst log -----\n" + d.log())


@pytest.fixture
def im_notify(bus, tmp_path, request):
    """The im-notify process of the test (not started)."""
    n = ImNotify(bus, str(tmp_path / "im-notify"))
    os.makedirs(n.workdir, exist_ok=True)
    yield n
    if n.running:
        n.stop()
    if _failed(request) or n.problems:
        print("\n----- im-notify stderr (%d run(s)) -----\n%s" % (n.runs, n.stderr_text()))
    if n.problems:
        pytest.fail("im-notify: " + "; ".join(n.problems), pytrace=False)


def start_caught_up(n, timeout=20.0):
    """Start im-notify and wait until it has caught up with imd: on a first
    run it writes its state file then (its position is known from then on)."""
    assert not os.path.exists(n.state_file)
    n.start()
    wait_until(lambda: _state_has_owner(n) or not n.running, timeout, what="im-notify to catch up")
    assert n.running, "im-notify exited with %s:\n%s" % (n.proc.returncode, n.stderr_text())


def _state_has_owner(n):
    try:
        with open(n.state_file) as f:
            return any(line.startswith("owner ") for line in f)
    except OSError:
        return False


@pytest.fixture
def running(client, logged_in, dunst, im_notify):
    """imd logged in as alice, dunst, and im-notify caught up."""
    start_caught_up(im_notify)
    return im_notify


def summary_for(client, jid):
    """The summary a user should see: the conversation's display name, else its JID."""
    conv = find_conversation(client.call("GetConversations"), jid)
    assert conv is not None, "no conversation with %s" % jid
    return conv.get("name") or jid


def unread(client, jid):
    conv = find_conversation(client.call("GetConversations"), jid)
    return conv["unread"] if conv else None


def retract_raw(to, msg_id):
    return ("<message to='%s' type='chat' id='%s'><retract xmlns='%s' id='%s'/>"
            "<body>This person attempted to retract a previous message.</body>"
            "<store xmlns='urn:xmpp:hints'/></message>" % (to, uuid.uuid4().hex, NS_RETRACT, msg_id))


# -- 1. a message is shown -----------------------------------------------------------

def test_message_shows_notification(client, logged_in, peer, dunst, monitor, running):
    start = client.mark()
    peer.send_message(logged_in.jid, "Are we still on for lunch?")
    wait_in(client, "Are we still on for lunch?", start)
    dunst.wait_count(1)
    _, call = monitor.wait_notify(lambda c: c["body"] == "Are we still on for lunch?")
    assert call["hints"]["category"] == "im.received"
    assert call["replaces_id"] == 0
    # dunst has no inline reply: no Reply action, only the default (mark read)
    assert "default" in call["actions"] and "inline-reply" not in call["actions"]
    seen = dunst.seen()
    assert len(seen) == 1
    assert seen[0]["summary"] == summary_for(client, peer.jid)
    assert seen[0]["body"] == "Are we still on for lunch?"
    assert seen[0]["category"] == "im.received"
    assert seen[0]["appname"] == "im-notify"


# -- 2. one notification per conversation ---------------------------------------------

def test_next_message_replaces_it(client, logged_in, peer_factory, dunst, monitor, running):
    bob, carol = peer_factory("bob"), peer_factory("carol")
    start = client.mark()
    bob.send_message(logged_in.jid, "first from bob")
    _, first = monitor.wait_notify(lambda c: c["body"] == "first from bob")
    dunst.wait_count(1)
    bob.send_message(logged_in.jid, "second from bob")
    i, second = monitor.wait_notify(lambda c: c["body"] == "second from bob")
    assert second["replaces_id"] != 0
    assert dunst.count() == 1
    # another conversation gets its own
    carol.send_message(logged_in.jid, "hello from carol")
    monitor.wait_notify(lambda c: c["body"] == "hello from carol", start=i + 1)
    dunst.wait_count(2)
    wait_in(client, "hello from carol", start)
    seen = {n["summary"]: n["body"] for n in dunst.seen()}
    assert seen == {summary_for(client, bob.jid): "second from bob",
                    summary_for(client, carol.jid): "hello from carol"}
    # the second replaced the first rather than adding one
    assert dunst.count("history") == 2


def test_dismissed_notification_is_forgotten(client, logged_in, peer, dunst, monitor, running):
    peer.send_message(logged_in.jid, "dismiss me")
    i, _ = monitor.wait_notify(lambda c: c["body"] == "dismiss me")
    dunst.wait_count(1)
    dunst.ctl("close")          # the user closes it: NotificationClosed
    dunst.wait_count(0)
    assert unread(client, peer.jid) == 1
    peer.send_message(logged_in.jid, "something new")
    j, call = monitor.wait_notify(lambda c: c["body"] == "something new", start=i + 1)
    # a new notification, not an update of the closed one's id
    assert j == i + 1 and call["replaces_id"] == 0
    dunst.wait_count(1)


# -- 3. the default action marks the conversation read ---------------------------------

def test_default_action_marks_read(client, logged_in, peer, dunst, monitor, running):
    start = client.mark()
    peer.send_message(logged_in.jid, "click me")
    peer.send_message(logged_in.jid, "and me")
    monitor.wait_notify(lambda c: c["body"] == "and me")
    dunst.wait_count(1)
    wait_until(lambda: unread(client, peer.jid) == 2, what="2 unread")
    dunst.action(0)
    client.wait_signal("ConversationsChanged",
                       lambda a: any(c["id"] == peer.jid and c["unread"] == 0 for c in a[0]), start=start)
    assert unread(client, peer.jid) == 0
    # read: im-notify withdraws the notification, and the peer learns it was displayed
    dunst.wait_count(0)
    wait_until(monitor.close_calls, what="CloseNotification from im-notify")
    peer.wait_for_marker()


# -- 4. read elsewhere: the notification closes ----------------------------------------

def test_read_with_imctl_closes_it(client, logged_in, peer, dunst, monitor, running, bus):
    peer.send_message(logged_in.jid, "read me in the terminal")
    _, call = monitor.wait_notify(lambda c: c["body"] == "read me in the terminal")
    dunst.wait_count(1)
    Imctl(bus).run("read", peer.jid, check=0)
    dunst.wait_count(0)
    assert dunst.history()[0]["body"] == "read me in the terminal"
    assert unread(client, peer.jid) == 0


# -- 5. own messages, revoked messages, media --------------------------------------------

@pytest.fixture
def own_device(logged_in, prosody):
    """Another client of the account itself: what it sends reaches imd as carbons."""
    p = Peer(logged_in.jid, logged_in.password, "127.0.0.1", prosody.c2s_port)
    p.start()
    yield p
    p.stop()


def test_own_messages_show_nothing(client, logged_in, peer, own_device, dunst, monitor, running, bus):
    Imctl(bus).run("send", peer.jid, "sent from imctl", check=0)
    peer.wait_for_body("sent from imctl")
    client.call("SendText", "ss", (peer.jid, "sent over D-Bus"))
    peer.wait_for_body("sent over D-Bus")
    # sent from the account's phone: imd gets a carbon, direction "out"
    own_device.send_message(peer.jid, "sent from my phone")
    client.wait_signal("MessageReceived", lambda a: a[0].get("text") == "sent from my phone"
                       and a[0].get("direction") == "out")
    # the peer's answer comes after all of them: had any of them been shown,
    # it would have been first
    peer.send_message(logged_in.jid, "the answer")
    monitor.wait_notify(lambda c: c["body"] == "the answer")
    assert [c["body"] for c in monitor.notify_calls()] == ["the answer"]
    assert dunst.wait_count(1)


def test_revoked_message_is_withdrawn(client, logged_in, peer, dunst, monitor, running):
    me = logged_in.jid
    start = client.mark()
    peer.send_message(me, "earlier, still unread")
    monitor.wait_notify(lambda c: c["body"] == "earlier, still unread")
    mid = peer.send_message(me, "oops, wrong chat")
    i, shown = monitor.wait_notify(lambda c: c["body"] == "oops, wrong chat")
    # the peer takes it back: the notification falls back to the earlier one
    peer.send_raw(retract_raw(me, mid))
    client.wait_signal("MessageRevoked", lambda a: a[1] == mid, start=start)
    j, back = monitor.wait_notify(lambda c: c["body"] == "earlier, still unread", start=i + 1)
    assert back["replaces_id"] != 0
    assert dunst.count() == 1
    # ... and when that one goes too, the notification is withdrawn
    first = wait_in(client, "earlier, still unread", start)["id"]
    peer.send_raw(retract_raw(me, first))
    dunst.wait_count(0)
    assert "oops, wrong chat" not in [n["body"] for n in dunst.history()]
    # and the revoked message never comes back
    assert all(c["body"] != "oops, wrong chat" for c in monitor.notify_calls()[j:])


def test_corrected_message_updates_it(client, logged_in, peer, dunst, monitor, running):
    me = logged_in.jid
    mid = peer.send_message(me, "see you at 8")
    i, _ = monitor.wait_notify(lambda c: c["body"] == "see you at 8")
    peer.send_raw("<message to='%s' type='chat' id='%s'><body>see you at 9</body>"
                  "<replace xmlns='%s' id='%s'/></message>" % (me, uuid.uuid4().hex, NS_CORRECT, mid))
    _, call = monitor.wait_notify(lambda c: c["body"] == "see you at 9", start=i + 1)
    assert call["replaces_id"] != 0
    dunst.wait_count(1)
    assert dunst.seen()[0]["body"] == "see you at 9"


def test_media_labels(client, logged_in, peer, dunst, monitor, running):
    me = logged_in.jid
    cases = [
        (_media_raw(me, "https://files.example.org/up/a1/summit.jpg"), "[Image]"),
        (_media_raw(me, "https://files.example.org/up/c3/v", body=False, sfs=False,
                    metadata={"media-type": "audio/ogg", "name": "voice note.ogg", "length": 3500}),
         "[Voice 0:04]"),
        (_media_raw(me, "https://files.example.org/up/b2/clip.mp4",
                    metadata={"media-type": "video/mp4", "name": "clip.mp4", "length": 4000}), "[Video]"),
        (_media_raw(me, "https://files.example.org/up/d4/report.pdf"), "[File report.pdf]"),
    ]
    start = 0
    for (mid, raw), label in cases:
        peer.send_raw(raw)
        start, call = monitor.wait_notify(lambda c: c["body"] == label, start=start)
        start += 1
    assert [c["body"] for c in monitor.notify_calls()] == [label for _, label in cases]
    dunst.wait_count(1)
    assert dunst.seen()[0]["body"] == "[File report.pdf]"


def test_long_and_markup_text(client, logged_in, peer, dunst, monitor, running):
    """Text is text: no markup reaches a server that would render it, and a
    huge message is cut to a size a notification can show."""
    tricky = "<b>not bold</b> & <i>fine</i>"
    peer.send_message(logged_in.jid, tricky)
    monitor.wait_notify(lambda c: c["body"] == tricky)    # dunst here has no body-markup
    long_text = "word " * 5000
    peer.send_message(logged_in.jid, long_text)
    _, call = monitor.wait_notify(lambda c: c["body"].startswith("word word"))
    assert len(call["body"].encode()) <= 400 and call["body"].endswith("…")
    assert dunst.count() == 1


# -- 6. inline reply ---------------------------------------------------------------------

@pytest.fixture
def mock_server(bus, tmp_path, monitor):
    m = NotifyMock(bus, str(tmp_path), ["actions", "body", "body-markup", "inline-reply"]).start()
    yield m
    m.stop()


def test_inline_reply(client, logged_in, peer, mock_server, monitor, im_notify):
    start_caught_up(im_notify)
    peer.send_message(logged_in.jid, "can you answer inline? <yes> & <no>")
    wait_until(lambda: mock_server.calls("Notify"), what="Notify at the mock")
    app, replaces, icon, summary, body, actions, hints, timeout = mock_server.calls("Notify")[-1]
    # this server takes body markup: the text is escaped to show as written
    assert body == "can you answer inline? &lt;yes&gt; &amp; &lt;no&gt;"
    assert summary == summary_for(client, peer.jid)
    acts = dict(zip(actions[0::2], actions[1::2]))
    assert "inline-reply" in acts and "default" in acts
    # the mock numbers from 1, and this is its only notification
    assert len(mock_server.calls("Notify")) == 1
    nid = 1
    mock_server.emit("NotificationReplied", "us", (nid, "yes, from the notification"))
    m = peer.wait_for_body("yes, from the notification")
    assert m["from"].split("/")[0] == logged_in.jid
    # replying read the conversation: the notification closes
    wait_until(lambda: mock_server.calls("CloseNotification"), what="CloseNotification")
    assert unread(client, peer.jid) == 0


# -- 6b. a server that D-Bus starts for the first notification -------------------------------

@pytest.fixture
def activatable_server(bus, tmp_path, monitor):
    """No server runs; D-Bus starts dbusmock's (with body-markup) on the
    first call to org.freedesktop.Notifications."""
    m = ActivatableNotifyMock(bus, str(tmp_path), ["actions", "body", "body-markup"]).install()
    yield m
    m.stop()


def test_server_started_by_activation_gets_escaped_text(client, logged_in, peer, activatable_server, monitor,
                                                        im_notify):
    """The first notification starts the server. Its capabilities are not
    known before it runs, and this one takes body markup: the text goes out
    escaped all the same (it was sent as it is, so a peer's <b>, <a href>
    or <img> was rendered)."""
    start_caught_up(im_notify)
    assert not activatable_server.running()       # im-notify starts no server by itself
    tricky = "<b>not bold</b> & <i>not italic</i> <img src=x>"
    peer.send_message(logged_in.jid, tricky)
    _, call = monitor.wait_notify(lambda c: "not bold" in c["body"])
    activatable_server.wait_started()
    assert call["body"] == "&lt;b&gt;not bold&lt;/b&gt; &amp; &lt;i&gt;not italic&lt;/i&gt; &lt;img src=x&gt;"
    assert [c["body"] for c in monitor.notify_calls()] == [call["body"]]


def test_server_started_by_activation_keeps_the_first_id(client, logged_in, peer, activatable_server, monitor,
                                                         im_notify):
    """The server's NameOwnerChanged comes before the answer to the Notify
    that started it; the notification's id is kept all the same: the next
    message replaces it, a click on it marks the conversation read, and
    reading closes it (none of which happened: the id was dropped)."""
    start_caught_up(im_notify)
    start = client.mark()
    peer.send_message(logged_in.jid, "first, starting the server")
    i, first = monitor.wait_notify(lambda c: c["body"] == "first, starting the server")
    activatable_server.wait_started()
    assert first["replaces_id"] == 0
    peer.send_message(logged_in.jid, "second")
    _, second = monitor.wait_notify(lambda c: c["body"] == "second", start=i + 1)
    assert second["replaces_id"] == 1, second        # the mock numbers from 1
    assert len(activatable_server.calls("Notify")) == 2
    wait_until(lambda: unread(client, peer.jid) == 2, what="2 unread")
    activatable_server.emit("ActionInvoked", "us", (1, "default"))
    client.wait_signal("ConversationsChanged",
                       lambda a: any(c["id"] == peer.jid and c["unread"] == 0 for c in a[0]), start=start)
    wait_until(monitor.close_calls, what="CloseNotification from im-notify")
    assert monitor.close_calls() == [1]


# -- 7. catching up after a restart ---------------------------------------------------------

def test_catch_up_after_restart(client, logged_in, peer, dunst, monitor, running):
    me = logged_in.jid
    n = running
    start = client.mark()
    peer.send_message(me, "before the restart")
    _, shown = monitor.wait_notify(lambda c: c["body"] == "before the restart")
    dunst.wait_count(1)
    n.stop()

    for i in range(1, 6):
        peer.send_message(me, "missed %d" % i)
    wait_in(client, "missed 5", start)
    calls_before = len(monitor.notify_calls())

    n.start()
    i, call = monitor.wait_notify(lambda c: True, start=calls_before)
    # one notification, with the newest message, replacing the one left open
    assert call["body"] == "missed 5"
    assert call["replaces_id"] != 0
    peer.send_message(me, "after the restart")
    j, _ = monitor.wait_notify(lambda c: c["body"] == "after the restart", start=i + 1)
    assert j == i + 1, monitor.notify_calls()[calls_before:]
    assert dunst.count() == 1

    # restarted again with nothing new: nothing new is shown; the open
    # notification is taken over in place (same id, same text), so that its
    # clicks come to the new run
    n.restart()
    k, again = monitor.wait_notify(start=j + 1)
    assert again["body"] == "after the restart" and again["replaces_id"] == call["replaces_id"], again
    assert dunst.count() == 1
    peer.send_message(me, "after the second restart")
    m, _ = monitor.wait_notify(lambda c: c["body"] == "after the second restart", start=k + 1)
    assert m == k + 1, monitor.notify_calls()[k + 1:]
    assert dunst.count() == 1
    assert [c["body"] for c in monitor.notify_calls()[calls_before:]] == [
        "missed 5", "after the restart", "after the restart", "after the second restart"]


def _click_marks_read(client, dunst, jid, start):
    """Clicking the (only) notification marks jid's conversation read, and the
    notification closes."""
    dunst.action(0)
    client.wait_signal("ConversationsChanged",
                       lambda a: any(c["id"] == jid and c["unread"] == 0 for c in a[0]),
                       start=start, timeout=10)
    dunst.wait_count(0)


def test_notification_of_a_previous_run_still_acts(client, logged_in, peer, dunst, monitor, running):
    """A notification left open by an im-notify that was stopped is clicked
    after im-notify started again (nothing new meanwhile): the conversation
    is marked read and the notification closes, as for one of this run.
    dunst sends a notification's actions only to the connection that showed
    it, so the new im-notify shows it again, in place (same id, same text)."""
    n = running
    start = client.mark()
    peer.send_message(logged_in.jid, "shown before the restart")
    monitor.wait_notify(lambda c: c["body"] == "shown before the restart")
    dunst.wait_count(1)
    wait_until(lambda: unread(client, peer.jid) == 1, what="1 unread")
    before = len(monitor.notify_calls())
    n.restart()
    _, again = monitor.wait_notify(start=before)
    assert again["body"] == "shown before the restart" and again["replaces_id"] != 0, again
    assert dunst.count() == 1
    _click_marks_read(client, dunst, peer.jid, start)


def test_notification_of_a_previous_run_after_a_reply_from_elsewhere(client, logged_in, peer, dunst, monitor,
                                                                     running):
    """While im-notify is stopped the user replies from another frontend
    (a D-Bus client here), which leaves the conversation unread: its newest message
    is now our own. The restarted im-notify still takes the notification
    over, showing the newest incoming message, and a click marks it read."""
    n = running
    start = client.mark()
    peer.send_message(logged_in.jid, "shown, then answered elsewhere")
    monitor.wait_notify(lambda c: c["body"] == "shown, then answered elsewhere")
    dunst.wait_count(1)
    n.stop()
    client.call("SendText", "ss", (peer.jid, "my answer"))
    wait_until(lambda: unread(client, peer.jid) == 1, what="still 1 unread")
    before = len(monitor.notify_calls())
    n.start()
    _, again = monitor.wait_notify(start=before)
    assert again["body"] == "shown, then answered elsewhere" and again["replaces_id"] != 0, again
    assert not monitor.close_calls()
    assert dunst.count() == 1
    _click_marks_read(client, dunst, peer.jid, start)


def test_catch_up_after_imd_restarted(client, logged_in, peer, imd, dunst, monitor, running):
    """im-notify was stopped while imd restarted: the saved numbers belong to
    the old imd, so everything the new one kept is news."""
    me = logged_in.jid
    running.stop()
    imd.restart()
    start = client.mark()
    client.login_account(logged_in)
    peer.send_message(me, "while you were both away")
    peer.send_message(me, "newest while away")
    wait_in(client, "newest while away", start)
    running.start()
    _, call = monitor.wait_notify()
    assert call["body"] == "newest while away"
    # anything shown twice would come before this
    peer.send_message(me, "and now live")
    monitor.wait_notify(lambda c: c["body"] == "and now live")
    assert [c["body"] for c in monitor.notify_calls()] == ["newest while away", "and now live"]
    dunst.wait_count(1)


def test_waits_for_imd(bus, tmp_path, alice, peer, dunst, monitor, im_notify, client_factory):
    """Started before imd: it neither starts imd nor gives up, and picks it
    up when it comes."""
    im_notify.start()
    c = client_factory()

    def connected():
        names = [n for n in c.call_bus("ListNames") if n.startswith(":")]
        return any(_pid_of(c, n) == im_notify.proc.pid for n in names)
    wait_until(connected, 20, what="im-notify on the bus")
    assert not c.name_has_owner(IM_NAME) and not os.path.exists(im_notify.state_file)
    d = Imd(bus, str(tmp_path / "imd-late"))
    try:
        d.start()
        wait_until(lambda: _state_has_owner(im_notify), 20, what="im-notify to catch up")
        c.login_account(alice)
        peer.send_message(alice.jid, "you waited for me")
        monitor.wait_notify(lambda call: call["body"] == "you waited for me")
        dunst.wait_count(1)
    finally:
        d.stop()
    assert not d.problems, d.problems
    assert im_notify.running


def _pid_of(client, name):
    try:
        return client.call_bus("GetConnectionUnixProcessID", "s", (name,))
    except DBusCallError:
        return None     # gone meanwhile


def test_imd_restart_while_running(client_factory, imd, alice, peer, dunst, monitor, im_notify):
    c = client_factory()
    c.login_account(alice)
    start_caught_up(im_notify)
    imd.restart()
    c.login_account(alice)
    peer.send_message(alice.jid, "after imd restarted")
    monitor.wait_notify(lambda call: call["body"] == "after imd restarted")
    dunst.wait_count(1)
    assert im_notify.running


def test_notification_server_restart(client, logged_in, peer, dunst, monitor, running):
    peer.send_message(logged_in.jid, "to the first dunst")
    monitor.wait_notify(lambda c: c["body"] == "to the first dunst")
    dunst.stop()
    # no server at all for a while: the notification cannot be shown, and
    # that is all (GetCapabilities, which would have started one, says so:
    # no Notify follows)
    peer.send_message(logged_in.jid, "to nobody")
    wait_until(lambda: "no notification server" in running.stderr_text(), what="im-notify's warning")
    assert not [c for c in monitor.notify_calls() if c["body"] == "to nobody"]
    dunst.start()
    peer.send_message(logged_in.jid, "to the second dunst")
    _, call = monitor.wait_notify(lambda c: c["body"] == "to the second dunst")
    # the old id meant nothing to the new server
    assert call["replaces_id"] == 0
    dunst.wait_count(1)
    assert running.running


def test_survives_a_misbehaving_imd(bus, dunst, monitor, im_notify, client_factory):
    """Something else owns org.example.IM and sends nonsense: wrong
    signatures, wrong types inside the dictionaries, no methods at all.
    im-notify shows what makes sense and keeps running."""
    fake = client_factory()
    assert fake.call_bus("RequestName", "su", (IM_NAME, 4)) == 1
    start_caught_up(im_notify)

    def emit(member, signature, *args):
        fake.conn.emit_signal(None, IM_PATH, IM_IFACE, member, GLib.Variant("(%s)" % signature, args))

    v = GLib.Variant
    emit("MessageReceived", "s", "not a dictionary")
    emit("MessageReceived", "a{sv}", {})
    emit("MessageReceived", "a{sv}", {"id": v("u", 5), "conversation": v("as", ["x"]),
                                      "direction": v("b", True), "text": v("x", 3)})
    emit("MessageReceived", "a{sv}", {"id": v("s", "m0"), "conversation": v("s", "eve@example.org"),
                                      "direction": v("s", "in"), "type": v("s", "audio"),
                                      "duration_ms": v("s", "long")})
    emit("MessageReceived", "a{sv}", {"id": v("s", "m1"), "conversation": v("s", "eve@example.org"),
                                      "direction": v("s", "in"), "text": v("s", ""),
                                      "revoked": v("s", "yes")})
    emit("ConversationsChanged", "aa{sv}", [{"id": v("i", 1), "unread": v("s", "many")}, {}])
    emit("ConversationsChanged", "as", ["eve@example.org"])
    emit("MessageRevoked", "ss", "nobody@example.org", "nothing")
    emit("MessageEdited", "sss", "eve@example.org", "m0", "")
    emit("MessageRevoked", "s", "eve@example.org")
    emit("MessageReceived", "a{sv}", {"id": v("s", "m2"), "conversation": v("s", "eve@example.org"),
                                      "direction": v("s", "in"), "text": v("s", "x" * 60000),
                                      "extra": v("a{sv}", {"nested": v("ai", [1, 2])})})
    emit("MessageReceived", "a{sv}", {"id": v("s", "m3"), "conversation": v("s", "eve@example.org"),
                                      "direction": v("s", "in"), "text": v("s", "still here")})
    monitor.wait_notify(lambda c: c["body"] == "still here")
    bodies = [c["body"] for c in monitor.notify_calls()]
    assert bodies[0] == "[Voice]" and bodies[-1] == "still here"
    assert all(len(b.encode()) <= 400 for b in bodies)
    assert all(c["summary"] == "eve@example.org" for c in monitor.notify_calls())
    # the fake goes away; im-notify waits for the next one and carries on with it
    fake.call_bus("ReleaseName", "s", (IM_NAME,))
    other = client_factory()
    assert other.call_bus("RequestName", "su", (IM_NAME, 4)) == 1
    other.conn.emit_signal(None, IM_PATH, IM_IFACE, "MessageReceived", GLib.Variant("(a{sv})", ({
        "id": v("s", "m4"), "conversation": v("s", "eve@example.org"), "direction": v("s", "in"),
        "text": v("s", "from the next one")},)))
    monitor.wait_notify(lambda c: c["body"] == "from the next one")
    assert im_notify.running


# -- 7b. catch-up races, floods and forged signals (a fake imd times what the real one cannot) ---

@pytest.fixture
def fake_imd(bus):
    f = FakeImd(bus).start()
    yield f
    f.stop()


@pytest.fixture
def rogue(bus):
    r = Rogue(bus)
    yield r
    r.close()


def test_first_run_keeps_a_message_of_the_catch_up(fake_imd, dunst, monitor, im_notify):
    """First run, no state: a message that arrives between im-notify's two
    catch-up calls (LastEvent and GetConversations, in whichever order it makes
    them) is in neither answer's past, so it must be shown: numbered above
    LastEvent, it is handled from the held signals."""
    eve = "eve@example.org"
    done = []

    def between(f):
        if done:
            return
        done.append(True)
        f.conversations = [{"id": eve, "name": "", "unread": 1}]
        f.emit("MessageReceived", incoming(eve, "m1", "sent during the catch-up"))
    fake_imd.after_reply["Get:LastEvent"] = between
    fake_imd.after_reply["GetConversations"] = between

    start_caught_up(im_notify)
    fake_imd.run(lambda f: f.emit("MessageReceived", incoming(eve, "m2", "after the catch-up")))
    monitor.wait_notify(lambda c: c["body"] == "after the catch-up")
    assert done
    assert [c["body"] for c in monitor.notify_calls()] == ["sent during the catch-up", "after the catch-up"]


FLOOD = 5000        # more than im-notify holds during a catch-up (QUEUE_MAX, 4096)


def test_flood_during_the_catch_up_does_not_starve_it(fake_imd, dunst, monitor, im_notify):
    """imd sends more signals during each catch-up call than im-notify holds,
    three times in a row: im-notify drops what it held but finishes each
    round, then reads the rest from the event log; it neither starts over
    (GetConversations once) nor loses the flood."""
    eve = "eve@example.org"
    floods = []

    def flood(f):
        if len(floods) == 3:
            return
        floods.append(True)
        f.conversations = [{"id": eve, "name": "", "unread": FLOOD * len(floods)}]
        for i in range(FLOOD):
            f.emit("MessageReceived", incoming(eve, "f%d.%d" % (len(floods), i),
                                               "flood %d.%d" % (len(floods), i)))
    fake_imd.hooks["GetConversations"] = flood
    fake_imd.hooks["GetEventsSince"] = flood

    im_notify.start()
    wait_until(lambda: _state_has_owner(im_notify) or not im_notify.running, 120, what="im-notify to go live")
    assert im_notify.running, im_notify.stderr_text()
    assert len(floods) == 3
    assert len(fake_imd.calls_of("GetConversations")) == 1, fake_imd.calls
    fake_imd.run(lambda f: f.emit("MessageReceived", incoming(eve, "after", "after the flood")))
    monitor.wait_notify(lambda c: c["body"] == "after the flood", timeout=60)
    bodies = [c["body"] for c in monitor.notify_calls()]
    # the newest of the flood was shown, once, before what came after it
    assert bodies[-2:] == ["flood 3.%d" % (FLOOD - 1), "after the flood"], bodies
    assert len(bodies) == len(set(bodies)), bodies
    assert "imd sends faster than the catch-up runs" in im_notify.stderr_text()


def test_forged_owner_changes_and_actions_are_ignored(client, logged_in, peer, imd, mock_server, monitor,
                                                      im_notify, rogue):
    """Anyone may send a signal straight to im-notify's connection. A forged
    NameOwnerChanged must not make the sender imd (im-notify would call it
    and take its signals) or the notification server (its ActionInvoked and
    NotificationReplied would then mark conversations read and send replies
    in the user's name); only the bus sends NameOwnerChanged."""
    me = logged_in.jid
    start_caught_up(im_notify)
    target = unique_name_of(client, im_notify.proc.pid)
    assert target
    imd_unique = client.name_owner(IM_NAME)
    server_unique = client.name_owner(NOTIFY_NAME)

    rogue.name_owner_changed(target, IM_NAME, imd_unique, rogue.unique_name)
    rogue.name_owner_changed(target, NOTIFY_NAME, server_unique, rogue.unique_name)
    rogue.sync(target)
    # a message of the real imd, shown by the real server (the mock numbers from 1)
    peer.send_message(me, "a real message")
    wait_until(lambda: [c for c in mock_server.calls("Notify") if c[4] == "a real message"],
               what="Notify at the real server")
    nid = 1
    assert len(mock_server.calls("Notify")) == 1
    assert rogue.calls == [], "im-notify called the rogue: %r" % rogue.calls

    # the rogue's actions: ignored, unicast or broadcast
    for destination in (target, None):
        rogue.send(destination, "/org/freedesktop/Notifications", "org.freedesktop.Notifications",
                   "ActionInvoked", "us", nid, "default")
        rogue.send(destination, "/org/freedesktop/Notifications", "org.freedesktop.Notifications",
                   "NotificationReplied", "us", nid, "forged reply")
    rogue.sync(target)
    assert unread(client, peer.jid) == 1
    # the real server's reply goes through: had the forged one, it would be first
    mock_server.emit("NotificationReplied", "us", (nid, "the real reply"))
    peer.wait_for_body("the real reply")
    assert "forged reply" not in peer.bodies()
    assert rogue.calls == [], "im-notify called the rogue: %r" % rogue.calls
    assert im_notify.running


# -- 8. the man page and the command line -----------------------------------------------------

def test_man_page_has_no_warnings():
    r = subprocess.run(["groff", "-man", "-ww", "-z", MAN_PAGE], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(["man", "--warnings", "-l", MAN_PAGE], capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "im-notify" in r.stdout


def test_user_unit(tmp_path):
    """The configured unit as meson installs it, checked by systemd itself."""
    unit = os.path.join(build_dir(), "clients", "im-notify", "im-notify.service")
    with open(unit) as f:
        text = f.read()
    assert "@" not in text
    lines = text.splitlines()
    for want in ("PartOf=graphical-session.target", "After=graphical-session.target imd.service",
                 "WantedBy=graphical-session.target", "Restart=on-failure"):
        assert want in lines, want
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert exec_start.endswith("/bin/im-notify")
    # verify it with the built program and man page where the installed ones would be
    man1 = tmp_path / "man" / "man1"
    man1.mkdir(parents=True)
    (man1 / "im-notify.1").write_text(open(MAN_PAGE).read())
    local = tmp_path / "im-notify.service"
    local.write_text(text.replace(exec_start, "ExecStart=" + im_notify_path()))
    r = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True,
                       env=dict(os.environ, MANPATH=str(tmp_path / "man")))
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_help_and_version():
    exe = im_notify_path()
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("Usage: im-notify")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("im-notify ")
    r = subprocess.run([exe, "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "--help" in r.stderr
