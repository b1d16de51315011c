"""Typing (XEP-0085 chat states) both ways and read receipts (XEP-0333
displayed → MessageReadByPeer), with a real Prosody and real slixmpp peers."""

import time
import uuid

from harness.asserts import raises_im_error

NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
SETTLE = 1.0


def _chat_state(to, state, body=None):
    return ("<message to='%s' type='chat' id='%s'>%s<%s xmlns='%s'/></message>"
            % (to, uuid.uuid4().hex, "<body>%s</body>" % body if body else "", state, NS_CHATSTATES))


def _typing(client, start):
    client.pump()
    return [tuple(s.args) for s in client.signals[start:] if s.member == "Typing"]


def test_set_typing_reaches_the_peer(client, logged_in, peer):
    client.call("SetTyping", "sb", (peer.jid, True))
    m = peer.wait_for_message(lambda m: m["chatstate"] == "composing")
    assert m["body"] is None and m["type"] == "chat"
    assert "urn:xmpp:hints" in m["xml"] and "no-store" in m["xml"]   # not archived
    client.call("SetTyping", "sb", (peer.jid, False))
    m = peer.wait_for_message(lambda m: m["chatstate"] == "paused")
    assert m["body"] is None
    # a real message says the user is active again
    client.call("SendText", "ss", (peer.jid, "done typing"))
    assert peer.wait_for_body("done typing")["chatstate"] == "active"


def test_peer_typing_is_signalled(client, logged_in, peer):
    me = logged_in.jid
    start = client.mark()
    peer.send_raw(_chat_state(me, "composing"))
    client.wait_signal("Typing", lambda a: a[2] is True, start=start)
    peer.send_raw(_chat_state(me, "paused"))
    client.wait_signal("Typing", lambda a: a[2] is False, start=start)
    peer.send_raw(_chat_state(me, "composing"))
    peer.send_raw(_chat_state(me, "active", body="here it is"))
    client.wait_signal("MessageReceived", lambda a: a[0]["text"] == "here it is", start=start)
    client.pump(SETTLE)
    assert _typing(client, start) == [(peer.jid, peer.jid, True), (peer.jid, peer.jid, False),
                                      (peer.jid, peer.jid, True), (peer.jid, peer.jid, False)]
    # a chat state is not a message: nothing stored for it
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 50))
    assert [m["text"] for m in msgs] == ["here it is"]


def test_set_typing_errors(client, imd, logged_in, peer):
    with raises_im_error("InvalidArgument"):
        client.call("SetTyping", "sb", ("not a jid", True))
    with raises_im_error("InvalidArgument"):
        client.call("SetTyping", "sb", ("", True))
    client.call("Logout")
    with raises_im_error("NotLoggedIn"):
        client.call("SetTyping", "sb", (peer.jid, True))


def test_displayed_marker_raises_read_by_peer(client, logged_in, peer_factory):
    bob, mallory = peer_factory("bob"), peer_factory("mallory")
    start = client.mark()
    msg_id = client.call("SendText", "ss", (bob.jid, "read me"))
    bob.wait_for_body("read me")
    mallory.send_displayed(logged_in.jid, msg_id)      # not the recipient: ignored
    bob.send_displayed(logged_in.jid, msg_id)
    client.wait_signal("MessageReadByPeer", start=start)
    client.pump(SETTLE)
    reads = [tuple(s.args) for s in client.signals[start:] if s.member == "MessageReadByPeer"]
    assert reads == [(bob.jid, msg_id)]
    statuses = [s.args[2] for s in client.signals[start:]
                if s.member == "MessageStatusChanged" and s.args[1] == msg_id]
    assert statuses[-1] == "read"
    # a marker covers the earlier messages too (XEP-0333): they become read,
    # while MessageReadByPeer names the displayed one
    first = client.call("SendText", "ss", (bob.jid, "one"))
    second = client.call("SendText", "ss", (bob.jid, "two"))
    start = client.mark()
    third = client.call("SendText", "ss", (bob.jid, "three"))
    bob.wait_for_body("three")
    for mid in (first, second, third):      # acknowledged by the server: "sent"
        if next(m for m in client.call("GetMessages", "ssu", (bob.jid, "", 10))[0] if m["id"] == mid)["status"] == "pending":
            client.wait_signal("MessageStatusChanged", lambda a, mid=mid: a[1] == mid and a[2] == "sent")
    start = client.mark()
    bob.send_displayed(logged_in.jid, third)
    client.wait_signal("MessageReadByPeer", lambda a: a[1] == third, start=start)
    client.pump(SETTLE)
    read = {s.args[1] for s in client.signals[start:]
            if s.member == "MessageStatusChanged" and s.args[2] == "read"}
    assert read == {first, second, third}
    assert [tuple(s.args) for s in client.signals[start:] if s.member == "MessageReadByPeer"] == \
        [(bob.jid, third)]
    msgs, _ = client.call("GetMessages", "ssu", (bob.jid, "", 10))
    assert {m["id"]: m["status"] for m in msgs if m["id"] in (first, second, third)} == \
        {first: "read", second: "read", third: "read"}
    # the same marker again changes nothing
    start = client.mark()
    bob.send_displayed(logged_in.jid, msg_id)
    bob.send_message(logged_in.jid, "sync")
    client.wait_signal("MessageReceived", lambda a: a[0]["text"] == "sync", start=start)
    client.pump(SETTLE)
    assert [s for s in client.signals[start:] if s.member == "MessageReadByPeer"] == []


def test_imctl_typing(imctl, client, logged_in, peer):
    r = imctl.run("typing", peer.jid, "on")
    assert r.returncode == 0, r.stderr
    peer.wait_for_message(lambda m: m["chatstate"] == "composing")
    r = imctl.run("typing", peer.jid, "maybe", check=2)
    assert '"on" or "off"' in r.stderr
    r = imctl.run("typing", "not a jid", "off", check=5)   # InvalidArgument
    assert "not a jid" in r.stderr
