"""Sessions that never lose a message: statuses, reconnect, outbox, dead-link
detection, kicked out. Real Prosody (a private one where a test breaks it),
real slixmpp peers, the real imd."""

import asyncio
import os
import re
import time
import uuid
import xml.etree.ElementTree as ET

import pytest
from gi.repository import GLib

from harness.asserts import raises_im_error
from harness.peer import Peer
from harness.prosody import Prosody
from harness.netproxy import TcpProxy
from harness.imd import Imd
from conftest import _failed, write_config

NS_RECEIPTS = "urn:xmpp:receipts"


def _statuses(client, msg_id, start):
    client.pump()
    return [s.args[2] for s in client.signals[start:]
            if s.member == "MessageStatusChanged" and s.args[1] == msg_id]


def _wait_status(client, msg_id, status, start, timeout=15):
    client.wait_signal("MessageStatusChanged", lambda a: a[1] == msg_id and a[2] == status,
                       start=start, timeout=timeout)


def _stored(client, conv, msg_id):
    msgs, _ = client.call("GetMessages", "ssu", (conv, "", 500))
    found = [m for m in msgs if m["id"] == msg_id]
    assert len(found) == 1, found
    return found[0]


def _receipt(peer, to, msg_id):
    peer.send_raw("<message to='%s' id='%s'><received xmlns='%s' id='%s'/></message>"
                  % (to, uuid.uuid4().hex, NS_RECEIPTS, msg_id))


# -- outgoing statuses ------------------------------------------------------------------

def test_status_pending_sent_delivered_read(client, logged_in, peer):
    start = client.mark()
    msg_id = client.call("SendText", "ss", (peer.jid, "how are you?"))
    assert _stored(client, peer.jid, msg_id)["status"] in ("pending", "sent")
    _wait_status(client, msg_id, "sent", start)         # the server's XEP-0198 ack
    peer.wait_for_body("how are you?")
    _receipt(peer, logged_in.jid, msg_id)
    _wait_status(client, msg_id, "delivered", start)    # XEP-0184
    assert _stored(client, peer.jid, msg_id)["status"] == "delivered"
    peer.send_displayed(logged_in.jid, msg_id)
    _wait_status(client, msg_id, "read", start)         # XEP-0333
    assert _stored(client, peer.jid, msg_id)["status"] == "read"
    assert _statuses(client, msg_id, start) == ["sent", "delivered", "read"]


def test_replies_to_a_peer_ask_for_acknowledgement(client, logged_in, peer, prosody):
    """XEP-0198 keeps each stanza imd sends until the server acknowledges
    it. A peer flooding IQs at a session that only reads (no message of its
    own asks for acknowledgement) made imd keep every reply, without bound
    (about 300 bytes each). imd asks the server (<r/>) every 32 stanzas."""
    start = client.mark()
    mid = client.call("SendText", "ss", (peer.jid, "hello"))
    full = peer.wait_for_message(lambda m: m["origin_id"] == mid)["from"]
    _wait_status(client, mid, "sent", start)

    def requests():
        with open(prosody.log_path, errors="replace") as f:
            return f.read().count("Received ack request, acking for")

    async def flood(n):
        for i in range(n):
            peer.client.send_raw("<iq type='get' to='%s' id='q%d'>"
                                 "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" % (full, i))
        iq = peer.client.make_iq_get(ito=full)          # answered after every one before it
        ET.SubElement(iq.xml, "{urn:xmpp:ping}ping")
        await iq.send(timeout=60)

    # (the peer's slixmpp does not use XEP-0198: every request is imd's;
    # one burst of replies may go out before imd asks, so fewer than 10)
    before = requests()
    asyncio.run_coroutine_threadsafe(flood(320), peer.loop).result(90)
    deadline = time.monotonic() + 10
    while requests() - before < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert requests() - before >= 3, "imd asked for %d acknowledgements over 321 replies" % (requests() - before)


def test_reports_from_someone_else_are_ignored(client, logged_in, peer_factory):
    bob, mallory = peer_factory("bob"), peer_factory("mallory")
    start = client.mark()
    msg_id = client.call("SendText", "ss", (bob.jid, "for bob only"))
    _wait_status(client, msg_id, "sent", start)
    _receipt(mallory, logged_in.jid, msg_id)
    mallory.send_displayed(logged_in.jid, msg_id)
    # a report for a message that does not exist, from the right peer
    _receipt(bob, logged_in.jid, "no-such-message")
    # bob's real receipt arrives after the forged ones, so they were processed
    bob.wait_for_body("for bob only")
    _receipt(bob, logged_in.jid, msg_id)
    _wait_status(client, msg_id, "delivered", start)
    assert _statuses(client, msg_id, start) == ["sent", "delivered"]


def test_status_never_goes_back(client, logged_in, peer):
    start = client.mark()
    msg_id = client.call("SendText", "ss", (peer.jid, "read first"))
    _wait_status(client, msg_id, "sent", start)
    peer.send_displayed(logged_in.jid, msg_id)
    _wait_status(client, msg_id, "read", start)
    _receipt(peer, logged_in.jid, msg_id)       # a late receipt
    peer.send_message(logged_in.jid, "sync")
    client.wait_signal("MessageReceived", lambda a: a[0]["text"] == "sync", start=start)
    assert _statuses(client, msg_id, start) == ["sent", "read"]
    assert _stored(client, peer.jid, msg_id)["status"] == "read"


# -- reconnect ----------------------------------------------------------------------------

def _login(client, prosody, prefix="alice"):
    jid, pw = prosody.new_account(prefix)
    client.login(jid, pw, prosody.ws_url)
    return jid, pw


def _peer(prosody, prefix="bob"):
    jid, pw = prosody.new_account(prefix)
    p = Peer(jid, pw, "127.0.0.1", prosody.c2s_port)
    p.start()
    return p


def _net_states(client, start):
    client.pump()
    return [s.args[1]["NetState"] for s in client.signals[start:]
            if s.member == "PropertiesChanged" and "NetState" in s.args[1]]


def test_reconnects_after_server_restart(fclient, fast_imd, private_prosody):
    p = private_prosody
    jid, _ = _login(fclient, p)
    start = fclient.mark()
    p.restart(hard=True)                        # kill -9, start again
    fclient.wait_property("NetState", lambda v: v == "connecting", start=start, timeout=10)
    fclient.wait_signal("Error", lambda a: a[0] == "org.example.IM.Error.Network", start=start, timeout=10)
    fclient.wait_property("Ready", lambda v: v is True, start=start, timeout=20)
    assert fclient.get_property("NetState") == "connected"
    assert fclient.get_property("Account") == jid
    bob = _peer(p)
    try:
        bob.send_message(jid, "after the restart")
        fclient.wait_signal("MessageReceived", lambda a: a[0]["text"] == "after the restart",
                           start=start, timeout=10)
    finally:
        bob.stop()


def test_reconnects_to_a_server_that_draws_a_new_salt(fclient, fast_imd):
    """Prosody storing passwords in clear (internal_plain) draws a new SCRAM
    salt at every login, as ejabberd does by default: keys derived at one
    login are no good at the next, so a reconnect must still work (it did
    not while imd reconnected with the keys alone)."""
    p = Prosody(extra_config='authentication = "internal_plain"')
    p.start()
    try:
        jid, _ = _login(fclient, p)
        for _ in range(2):
            start = fclient.mark()
            p.restart(hard=True)
            fclient.wait_property("NetState", lambda v: v == "connecting", start=start, timeout=10)
            fclient.wait_property("Ready", lambda v: v is True, start=start, timeout=20)
            fclient.pump(0.5)
            assert not [s for s in fclient.signals[start:] if s.member == "KickedOut"]
            assert fclient.get_property("Account") == jid
    finally:
        p.cleanup()


def test_send_while_offline_queues_until_reconnect(fclient, fast_imd, private_prosody):
    p = private_prosody
    jid, _ = _login(fclient, p)
    bob_jid, bob_pw = p.new_account("bob")
    start = fclient.mark()
    p.stop()
    fclient.wait_property("Ready", lambda v: v is False, start=start, timeout=10)
    ids = [fclient.call("SendText", "ss", (bob_jid, "queued %d" % i)) for i in range(3)]
    for i in ids:
        assert _stored(fclient, bob_jid, i)["status"] == "pending"
    p.start()
    fclient.wait_property("Ready", lambda v: v is True, start=start, timeout=20)
    for i in ids:
        _wait_status(fclient, i, "sent", start, timeout=10)
    # bob was offline: the server stored them; he gets each once, in order
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    try:
        for n in range(3):
            bob.wait_for_body("queued %d" % n)
        time.sleep(1)
        assert [m["body"] for m in bob.messages if m["body"]] == ["queued 0", "queued 1", "queued 2"]
    finally:
        bob.stop()


def test_stalled_server_is_noticed(fclient, fast_imd, private_prosody):
    """ping_interval=1, ping_timeout=1: noticed within 2*1+1 s (plus slack)."""
    p = private_prosody
    _login(fclient, p)
    start = fclient.mark()
    t0 = time.monotonic()
    p.pause()
    try:
        fclient.wait_property("Ready", lambda v: v is False, start=start, timeout=8)
        assert time.monotonic() - t0 <= 5
    finally:
        p.resume()
    fclient.wait_property("Ready", lambda v: v is True, start=start, timeout=30)


def test_backoff_while_server_is_down(fclient, fast_imd, private_prosody):
    """No reconnect storm: with reconnect_max=1 s, a few attempts per second at most."""
    p = private_prosody
    _login(fclient, p)
    start = fclient.mark()
    p.stop()
    fclient.wait_property("Ready", lambda v: v is False, start=start, timeout=10)
    cpu0 = _cpu(fast_imd.pid)
    time.sleep(4)
    cpu = _cpu(fast_imd.pid) - cpu0
    assert cpu < 0.5, "imd used %.2f s of CPU in 4 s while the server was down" % cpu
    assert fclient.get_property("NetState") == "connecting"
    p.start()
    fclient.wait_property("Ready", lambda v: v is True, start=start, timeout=20)


def _cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- kicked out -----------------------------------------------------------------------------

def test_kicked_out_by_conflict(fclient, fast_imd, private_prosody):
    p = private_prosody
    jid, pw = _login(fclient, p)
    m = None
    for line in p.log_tail(100000).splitlines():
        m = re.search(r"Resource bound: %s/(\S+)" % re.escape(jid), line) or m
    assert m, "cannot find imd's resource in the Prosody log"
    start = fclient.mark()
    thief = Peer(jid, pw, "127.0.0.1", p.c2s_port, resource=m.group(1))
    thief.start()
    try:
        fclient.wait_signal("KickedOut", lambda a: a[0] == "conflict", start=start, timeout=10)
        assert fclient.get_property("Ready") is False
        assert fclient.get_property("NetState") == "disconnected"
        fclient.pump(3)                       # no fight back: stays out
        assert fclient.get_property("NetState") == "disconnected"
        assert thief.client.is_connected()
        with raises_im_error("NotLoggedIn"):
            fclient.call("SendText", "ss", ("someone@localhost", "hi"))
    finally:
        thief.stop()


def test_kicked_out_when_credentials_stop_working(fclient, fast_imd, private_prosody):
    p = private_prosody
    jid, _ = _login(fclient, p)
    start = fclient.mark()
    r = p.prosodyctl("deluser", jid)
    assert r.returncode == 0, r.stdout + r.stderr
    p.restart(hard=True)                    # the connection drops; the account is gone
    fclient.wait_signal("KickedOut", lambda a: a[0] == "auth", start=start, timeout=20)
    assert fclient.get_property("Ready") is False
    assert fclient.get_property("NetState") == "disconnected"
    names = [s.args[0] for s in fclient.signals[start:] if s.member == "Error"]
    assert "org.example.IM.Error.AuthFailed" in names


# -- the outbox survives the daemon ------------------------------------------------------------

def test_pending_messages_survive_kill_9(client, imd, private_prosody):
    p = private_prosody
    jid, pw = _login(client, p)
    bob = _peer(p)
    try:
        start = client.mark()
        bob.stop()
        p.stop()                            # imd goes offline: messages wait in the outbox
        client.wait_property("Ready", lambda v: v is False, start=start, timeout=10)
        ids = [client.call("SendText", "ss", (bob.jid, "survivor %d" % i)) for i in range(3)]
        imd.kill()                          # kill -9 with the messages pending
        p.start()
        bob = Peer(bob.jid, bob.password, "127.0.0.1", p.c2s_port)
        bob.start()
        imd.start()
        client.close()
        c2 = imd.bus.client()
        try:
            c2.login(jid, pw, p.ws_url)
            for n in range(3):
                bob.wait_for_body("survivor %d" % n, timeout=15)
            time.sleep(1.5)
            got = [(m["body"], m.get("origin_id") or m.get("id")) for m in bob.messages
                   if m["body"] and m["body"].startswith("survivor")]
            assert [b for b, _ in got] == ["survivor 0", "survivor 1", "survivor 2"], got
            for i in ids:
                _wait_status(c2, i, "sent", 0, timeout=10)
        finally:
            c2.close()
    finally:
        bob.stop()


# -- actions (revoke, edit, react) are never lost either -------------------------------

NS_RETRACT = "urn:xmpp:message-retract:1"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_REACTIONS = "urn:xmpp:reactions:0"

# how each action is done, and how the peer recognises it (tag, namespace, the
# text it must carry)
ACTIONS = {
    "revoke": (lambda c, conv, mid: c.call("RevokeMessage", "ss", (conv, mid)), "retract", NS_RETRACT, None),
    "edit": (lambda c, conv, mid: c.call("EditMessage", "sss", (conv, mid, "fixed after all")),
             "replace", NS_CORRECT, "fixed after all"),
    "react": (lambda c, conv, mid: c.call("React", "ssas", (conv, mid, ["👍"])), "reactions", NS_REACTIONS, "👍"),
}


def _acts_on(kind, mid):
    _, tag, ns, text = ACTIONS[kind]

    def match(m):
        el = ET.fromstring(m["xml"]).find("{%s}%s" % (ns, tag))
        if el is None or el.get("id") != mid:
            return False
        return text is None or text in (m["body"] or "") + "".join(el.itertext())
    return match


def _action_in_flight_when_the_server_dies(client, p, kind):
    """Sends a text to bob, then does the action while the server hangs (so
    it waits in the server's socket), and kills the server: the session and
    the stanza die with it. Returns (bob's JID and password, the message's id)."""
    bob_jid, bob_pw = p.new_account("bob")
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    try:
        start = client.mark()
        mid = client.call("SendText", "ss", (bob_jid, "something to take back"))
        _wait_status(client, mid, "sent", start)
        bob.wait_for_body("something to take back")
    finally:
        bob.stop()
    p.pause()
    ACTIONS[kind][0](client, bob_jid, mid)        # accepted: Ready is still true
    time.sleep(0.3)                             # written, and not acknowledged
    p.kill()
    return bob_jid, bob_pw, mid


def _peer_gets_the_action_once(p, bob_jid, bob_pw, kind, mid):
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    try:
        bob.wait_for_message(_acts_on(kind, mid), timeout=20)
        time.sleep(1.5)
        assert len([m for m in bob.messages if _acts_on(kind, mid)(m)]) == 1
    finally:
        bob.stop()


@pytest.mark.parametrize("kind", sorted(ACTIONS))
def test_an_action_the_server_lost_goes_again(client_factory, patient_imd, kind):
    """A retraction, correction or reaction accepted while the server hangs,
    then lost with the server (kill -9): the next session is a fresh one (no
    XEP-0198 resume), and imd sends the action again from its history, once."""
    client = client_factory()
    p = Prosody()
    p.start()
    try:
        _login(client, p)
        bob_jid, bob_pw, mid = _action_in_flight_when_the_server_dies(client, p, kind)
        m = client.mark()
        p.start()
        client.wait_property("Ready", lambda v: v is True, start=m, timeout=30)
        _peer_gets_the_action_once(p, bob_jid, bob_pw, kind, mid)
    finally:
        p.cleanup()


@pytest.mark.parametrize("kind", sorted(ACTIONS))
def test_an_action_survives_kill_9(client, imd, private_prosody, kind):
    """The same, with imd killed (-9) too before the server comes back: the
    action is in the history with its effect, and goes out after the restart."""
    p = private_prosody
    jid, pw = _login(client, p)
    bob_jid, bob_pw, mid = _action_in_flight_when_the_server_dies(client, p, kind)
    imd.kill()
    p.start()
    imd.start()
    client.close()
    c2 = imd.bus.client()
    try:
        c2.login(jid, pw, p.ws_url)
        _peer_gets_the_action_once(p, bob_jid, bob_pw, kind, mid)
        stored = _stored(c2, bob_jid, mid)
        assert {"revoke": stored.get("revoked") is True, "edit": stored.get("text") == "fixed after all",
                "react": "👍" in str(stored.get("reactions"))}[kind], stored
    finally:
        c2.close()


# -- a MarkRead's displayed marker is an action like them ------------------------------

def _markers_of(bob, mid):
    return [m for m in bob.markers if m["id"] == mid]


def _read_by_alice(p, bob_jid, bob_pw, alice_jid, mid):
    """bob (online now, or getting what the server kept for him) sees
    alice's displayed marker for his message mid, and only one."""
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    try:
        marker = bob.wait_for_marker(lambda m: m["id"] == mid, timeout=20)
        assert marker["from"].split("/")[0] == alice_jid
        time.sleep(1.5)
        assert len(_markers_of(bob, mid)) == 1, bob.markers
    finally:
        bob.stop()


def _unread_message_from_bob(client, p, alice_jid, text):
    """bob sends alice text and leaves; returns his JID, password and the
    message's id once imd has it (unread)."""
    bob = _peer(p)
    try:
        start = client.mark()
        mid = bob.send_message(alice_jid, text)
        client.wait_signal("MessageReceived", lambda a: a[0]["text"] == text, start=start, timeout=15)
        assert client.get_property("UnreadTotal") == 1
    finally:
        bob.stop()
    return bob.jid, bob.password, mid


def test_mark_read_while_offline_reaches_the_peer_after_reconnect(fclient, fast_imd, private_prosody):
    """MarkRead while the server is away is accepted (the unread count goes to
    0 at once) and the peer sees "read" once imd is back: the displayed
    marker waited in the outbox. A second MarkRead meanwhile replaces the
    first marker: one goes."""
    p = private_prosody
    jid, _ = _login(fclient, p)
    bob_jid, bob_pw, mid = _unread_message_from_bob(fclient, p, jid, "please read me")
    start = fclient.mark()
    p.stop()
    fclient.wait_property("Ready", lambda v: v is False, start=start, timeout=10)
    assert fclient.call("MarkRead", "s", (bob_jid,)) is None
    assert fclient.get_property("UnreadTotal") == 0
    fclient.call("MarkRead", "s", (bob_jid,))
    p.start()
    fclient.wait_property("Ready", lambda v: v is True, start=start, timeout=20)
    _read_by_alice(p, bob_jid, bob_pw, jid, mid)


def test_mark_read_while_offline_survives_kill_9(client, imd, private_prosody):
    """The same, with imd killed (-9) before the server comes back: the
    marker is in the history's outbox, and goes after the restart. Once the
    server has it, it is not sent again by the next session."""
    p = private_prosody
    jid, pw = _login(client, p)
    bob_jid, bob_pw, mid = _unread_message_from_bob(client, p, jid, "read me, then crash")
    start = client.mark()
    p.stop()
    client.wait_property("Ready", lambda v: v is False, start=start, timeout=10)
    client.call("MarkRead", "s", (bob_jid,))
    imd.kill()
    p.start()
    imd.start()
    client.close()
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    try:
        c2 = imd.bus.client()
        try:
            c2.login(jid, pw, p.ws_url)
            assert c2.get_property("UnreadTotal") == 0
            bob.wait_for_marker(lambda m: m["id"] == mid, timeout=20)
            time.sleep(1.5)                 # the server's acknowledgement
        finally:
            c2.close()
        imd.restart()
        c3 = imd.bus.client()
        try:
            c3.login(jid, pw, p.ws_url)
            c3.pump(2)
        finally:
            c3.close()
        assert len(_markers_of(bob, mid)) == 1, bob.markers
    finally:
        bob.stop()


@pytest.mark.parametrize("sm", [True, False], ids=["xep0198", "no-xep0198"])
def test_a_displayed_marker_the_server_lost_goes_again(client_factory, patient_imd, sm):
    """MarkRead while the server hangs: the marker is written, not
    acknowledged (by XEP-0198, or without it by the answer to a ping), and
    the server dies with it (kill -9). The next session is a fresh one, and
    imd sends the marker again, once."""
    client = client_factory()
    p = Prosody(extra_config="" if sm else 'modules_disabled = { "s2s"; "smacks" }')
    p.start()
    try:
        jid, _ = _login(client, p)
        bob_jid, bob_pw, mid = _unread_message_from_bob(client, p, jid, "read me before the crash")
        p.pause()
        client.call("MarkRead", "s", (bob_jid,))    # accepted: Ready is still true
        time.sleep(0.3)                             # written, and not acknowledged
        p.kill()
        m = client.mark()
        p.start()
        client.wait_property("Ready", lambda v: v is True, start=m, timeout=30)
        _read_by_alice(p, bob_jid, bob_pw, jid, mid)
    finally:
        p.cleanup()


def _assert_settled(client, bob, text):
    """A message sent now reaches bob, and the session stays up meanwhile."""
    settled = client.mark()
    mid = client.call("SendText", "ss", (bob.jid, text))
    assert bob.wait_for_message(lambda m: m["origin_id"] == mid)["body"] == text
    client.pump(2)
    assert not [s for s in client.signals[settled:] if s.member == "PropertiesChanged"
                and s.args[1].get("Ready") is False], "the session did not settle"
    return mid, settled


def _refusing_prosody(extra=""):
    """A Prosody whose stanza limit (20,000 bytes) is below what imd assumes
    without being told (256 KiB)."""
    p = Prosody(extra_config="c2s_stanza_size_limit = 20000\n" + extra)
    p.start()
    return p


@pytest.mark.parametrize("stream_management", [True, False], ids=["smacks", "no-smacks"])
def test_a_message_the_server_keeps_refusing_fails_and_the_session_settles(fclient, fast_imd,
                                                                          stream_management):
    """The server ends the stream (policy-violation) on a 30,000-byte text
    every time it is sent, with or without XEP-0198. imd blames it each time
    (the largest message unacknowledged) and gives up on the third: it
    becomes "failed" with an Error that says why, and the session settles
    (it was reconnecting once a second, forever). Three small messages queued
    behind it while offline are not blamed and arrive."""
    p = _refusing_prosody("" if stream_management else 'modules_disabled = { "s2s"; "smacks" }')
    bob = None
    try:
        jid, _ = _login(fclient, p)
        bob_jid, bob_pw = p.new_account("bob")
        bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
        bob.start()
        start = fclient.mark()
        p.stop()
        fclient.wait_property("Ready", lambda v: v is False, start=start, timeout=10)
        big = fclient.call("SendText", "ss", (bob_jid, "y" * 30000))
        small = [fclient.call("SendText", "ss", (bob_jid, "small %d" % i)) for i in range(3)]
        p.start()
        bob.stop()
        bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
        bob.start()
        _wait_status(fclient, big, "failed", start, timeout=30)
        errors = [s.args for s in fclient.signals[start:] if s.member == "Error" and big in s.args[1]]
        assert len(errors) == 1 and errors[0][0].endswith(".TooLarge") and "3 times" in errors[0][1], errors
        for i, mid in enumerate(small):
            assert bob.wait_for_message(lambda m: m["origin_id"] == mid, timeout=20)["body"] == "small %d" % i
            assert _stored(fclient, bob_jid, mid)["status"] != "failed"
        assert not [m for m in bob.messages if m["origin_id"] == big]
        fclient.wait_property("Ready", lambda v: v is True, start=start, timeout=20)

        _assert_settled(fclient, bob, "after the refused one")
        assert _stored(fclient, bob_jid, big)["status"] == "failed"
    finally:
        if bob:
            bob.stop()
        p.cleanup()


def test_a_correction_the_server_keeps_refusing_is_dropped_and_the_session_settles(fclient, fast_imd):
    """A 30,000-byte correction, over a limit the server does not announce:
    it ends the stream on it, and the outbox of actions would send it again
    at every reconnect. Blamed three times in a row, it is dropped with an
    Error (TooLarge) that says why, and the session settles."""
    p = _refusing_prosody()
    bob = None
    try:
        _login(fclient, p)
        bob_jid, bob_pw = p.new_account("bob")
        bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
        bob.start()
        start = fclient.mark()
        mid = fclient.call("SendText", "ss", (bob_jid, "short"))
        _wait_status(fclient, mid, "sent", start)
        fclient.call("EditMessage", "sss", (bob_jid, mid, "z" * 30000))
        error = fclient.wait_signal("Error", lambda a: "correction" in a[1], start=start, timeout=40).args
        assert error[0].endswith(".TooLarge") and "3 times" in error[1] and bob_jid in error[1], error
        fclient.wait_property("Ready", lambda v: v is True, start=start, timeout=20)

        _assert_settled(fclient, bob, "after the refused correction")
        assert len([s for s in fclient.signals[start:] if s.member == "Error"
                    and s.args[0].endswith(".TooLarge")]) == 1
    finally:
        if bob:
            bob.stop()
        p.cleanup()


BIG_TEXT = "big " * 5000      # 20,000 bytes: over the 10,000 every server takes, so a suspect


def test_a_message_in_flight_through_an_outage_is_not_failed(fclient, fast_imd, private_prosody):
    """A 20,000-byte text sent into a stalled server, which is then killed
    (the connection is reset) and restarted 4 s later (several failed
    reconnects meanwhile), goes out once it is back: it was a suspect once,
    and one close is no refusal."""
    p = private_prosody
    _login(fclient, p)
    bob_jid, bob_pw = p.new_account("bob")
    start = fclient.mark()
    p.pause()
    mid = fclient.call("SendText", "ss", (bob_jid, BIG_TEXT))
    time.sleep(0.3)
    p.kill()
    time.sleep(4)
    p.start()
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    try:
        assert bob.wait_for_message(lambda m: m["origin_id"] == mid, timeout=30)["body"] == BIG_TEXT
        _wait_status(fclient, mid, "sent", start, timeout=15)
        assert "failed" not in _statuses(fclient, mid, start)
    finally:
        bob.stop()


@pytest.fixture
def patient_imd(bus, tmp_path, request):
    """imd with the default keepalive (a slow link is no stall) and short
    reconnect delays."""
    workdir = str(tmp_path / "imd-patient")
    write_config(workdir, reconnect_min=0.2, reconnect_max=1)
    d = Imd(bus, workdir)
    d.start()
    yield d
    d.stop()
    if d.problems or _failed(request):
        print("\n----- imd stderr -----\n" + d.stderr_text(all_runs=True)[-20000:])
    if d.problems:
        pytest.fail("imd: " + "; ".join(d.problems), pytrace=False)


def test_without_stream_management_a_ping_acknowledges(client_factory, patient_imd):
    """A server without XEP-0198 acknowledges nothing itself, but it handles
    a connection's stanzas in order (RFC 6120 §10.1): its answer to a ping
    sent after a burst means it has the burst, so each message becomes
    "sent". One sent while the server hangs stays "pending" until the server
    is back and has answered."""
    client = client_factory()
    p = Prosody(extra_config='modules_disabled = { "s2s"; "smacks" }')
    p.start()
    bob = None
    try:
        _login(client, p)
        bob_jid, bob_pw = p.new_account("bob")
        bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
        bob.start()
        start = client.mark()
        ids = [client.call("SendText", "ss", (bob_jid, "in a burst %d" % i)) for i in range(3)]
        for i in ids:
            _wait_status(client, i, "sent", start)
        p.pause()
        try:
            stalled = client.call("SendText", "ss", (bob_jid, "while the server hangs"))
            client.pump(1.5)
            assert _statuses(client, stalled, start) == []
        finally:
            p.resume()
        _wait_status(client, stalled, "sent", start)
        bob.wait_for_body("while the server hangs")
        assert sorted(b for b in bob.bodies() if b.startswith("in a burst")) == \
            ["in a burst %d" % i for i in range(3)]
        assert "<r xmlns" not in p.log_tail(1000000)
    finally:
        if bob:
            bob.stop()
        p.cleanup()


def test_a_server_that_stops_offering_stream_management(client_factory, patient_imd):
    """The server comes back without XEP-0198 (reconfigured, or another node):
    the session imd had with it cannot be resumed, and the next one must
    not go on as if it could (asking for acks the server does not know of
    gets the stream closed, again and again): messages are acknowledged by
    pings, and the session stays up."""
    client = client_factory()
    p = Prosody()
    p.start()
    bob = None
    try:
        _login(client, p)
        bob_jid, bob_pw = p.new_account("bob")
        start = client.mark()
        before = client.call("SendText", "ss", (bob_jid, "while the server counts"))
        _wait_status(client, before, "sent", start)
        p.stop()
        client.wait_property("Ready", lambda v: v is False, start=start, timeout=10)
        with open(p.config) as f:
            config = f.read()
        assert 'modules_disabled = { "s2s" }' in config
        with open(p.config, "w") as f:
            f.write(config.replace('modules_disabled = { "s2s" }', 'modules_disabled = { "s2s"; "smacks" }'))
        m = client.mark()
        p.start()
        client.wait_property("Ready", lambda v: v is True, start=m, timeout=30)
        bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
        bob.start()
        after, settled = _assert_settled(client, bob, "after it stopped counting")
        _wait_status(client, after, "sent", settled)
    finally:
        if bob:
            bob.stop()
        p.cleanup()


def test_server_restarts_do_not_fail_a_message_without_stream_management(client_factory, patient_imd):
    """Without XEP-0198 a message is acknowledged only by the server's answer
    to a ping sent after it, and one whose answer did not come before the
    connection closed goes out again at the next one. A 20,000-byte text to
    a peer who is offline, then three server restarts soon after (each a
    system-shutdown stream error): those are not refusals, it is never
    failed, and the peer gets it."""
    client = client_factory()
    p = Prosody(extra_config='modules_disabled = { "s2s"; "smacks" }')
    p.start()
    try:
        _login(client, p)
        bob_jid, bob_pw = p.new_account("bob")
        start = client.mark()
        mid = client.call("SendText", "ss", (bob_jid, BIG_TEXT))
        for _ in range(3):
            m = client.mark()
            time.sleep(1)
            p.restart()
            client.wait_property("Ready", lambda v: v is True, start=m + 1, timeout=30)
        client.pump(1)
        assert "failed" not in _statuses(client, mid, start)
        bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
        bob.start()
        try:
            assert bob.wait_for_message(lambda m: m["origin_id"] == mid, timeout=15)["body"] == BIG_TEXT
        finally:
            bob.stop()
    finally:
        p.cleanup()


def test_a_slow_link_reset_again_and_again_does_not_fail_a_message(client_factory, patient_imd):
    """A 20,000-byte text over a 3 KB/s link that is reset 2 s after each
    (re)connect, three times: each reconnect resumes the session (XEP-0198),
    so the server refused nothing, and the text goes out once the link is
    fast again."""
    client = client_factory()
    p = Prosody()
    p.start()
    proxy = TcpProxy(p.http_port).start()
    try:
        jid, pw = p.new_account("alice")
        client.login(jid, pw, "ws://127.0.0.1:%d/xmpp-websocket" % proxy.port)
        bob_jid, bob_pw = p.new_account("bob")
        start = client.mark()
        proxy.set(rate=3000)
        time.sleep(0.3)             # the forwarding threads take the new rate
        mid = client.call("SendText", "ss", (bob_jid, BIG_TEXT))
        for _ in range(3):
            time.sleep(2)
            m = client.mark()
            proxy.cut()
            client.wait_property("Ready", lambda v: v is True, start=m, timeout=30)
        proxy.reset()
        _wait_status(client, mid, "sent", start, timeout=30)
        assert "failed" not in _statuses(client, mid, start)
        assert "<resumed" in p.log_tail(1000000)
    finally:
        proxy.stop()
        p.cleanup()


def test_the_limit_the_server_advertises_is_kept(fclient, fast_imd):
    """A server that advertises its stanza limit (XEP-0478) has a message over
    it refused at once, with TooLarge and the limit in the error, and nothing
    stored; one under it goes through."""
    p = Prosody(extra_config="c2s_stanza_size_limit = 20000", test_modules=("test_stream_limits",))
    p.start()
    bob = None
    try:
        _login(fclient, p)
        bob_jid, bob_pw = p.new_account("bob")
        bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
        bob.start()
        with raises_im_error("TooLarge") as ei:
            fclient.call("SendText", "ss", (bob_jid, "y" * 30000))
        assert "20000 bytes" in ei.value.message
        assert not fclient.call("GetMessages", "ssu", (bob_jid, "", 10))[0]
        mid = fclient.call("SendText", "ss", (bob_jid, "y" * 19000))
        assert bob.wait_for_message(lambda m: m["origin_id"] == mid)["body"] == "y" * 19000
    finally:
        if bob:
            bob.stop()
        p.cleanup()


def test_a_message_queued_for_a_server_that_takes_less_fails(fclient, fast_imd):
    """A 30,000-byte text queued while the server is down fits the limit it
    announced (300,000), but the server comes back announcing 20,000: the
    outbox fails it with TooLarge instead of sending it, and ResendMessage
    refuses it (TooLarge) rather than leaving it pending."""
    p = Prosody(extra_config="c2s_stanza_size_limit = 300000\ntest_stream_limits_max_bytes = 300000",
                test_modules=("test_stream_limits",))
    p.start()
    try:
        _login(fclient, p)
        bob_jid, _ = p.new_account("bob")
        start = fclient.mark()
        p.stop()
        fclient.wait_property("Ready", lambda v: v is False, start=start, timeout=10)
        mid = fclient.call("SendText", "ss", (bob_jid, "y" * 30000))
        with open(p.config) as f:
            config = f.read()
        with open(p.config, "w") as f:
            f.write(config.replace("= 300000", "= 20000"))
        p.start()
        _wait_status(fclient, mid, "failed", start, timeout=30)
        errors = [s.args for s in fclient.signals[start:] if s.member == "Error" and mid in s.args[1]]
        assert len(errors) == 1 and errors[0][0].endswith(".TooLarge") and "20000 bytes" in errors[0][1], errors
        with raises_im_error("TooLarge") as ei:
            fclient.call("ResendMessage", "ss", (bob_jid, mid))
        assert "20000 bytes" in ei.value.message
        assert _stored(fclient, bob_jid, mid)["status"] == "failed"
        assert fclient.get_property("Ready") is True
    finally:
        p.cleanup()


# -- messages that come during the login ----------------------------------------------

def _held_roster_gets(prosody):
    return len(re.findall(r"holding roster get", prosody.log_tail(1000000)))


def _wait_log(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.05)


def _texts(client, conv):
    msgs, _ = client.call("GetMessages", "ssu", (conv, "", 500))
    return [(m["text"], m["direction"]) for m in msgs]


@pytest.mark.parametrize("case", ["first-login", "relogin", "no-archive"])
def test_messages_during_the_login_are_kept(client, imd, case):
    """The server holds imd's roster fetch, the last step of the login: by
    then the resource is bound and XEP-0198 and carbons are enabled, but imd
    has not sent its presence yet. Meanwhile another device of the account
    receives a message and sends one, and imd gets both as carbons, counted
    as received for XEP-0198. Both reach the history, once, after the
    login: on a first login (whose catch-up only learns where the archive
    ends), on a later one (whose catch-up would have brought them back from
    the archive anyway) and without any archive (where nothing else would)."""
    extra = "test_delay_roster = 3\n"
    if case == "no-archive":
        extra += 'modules_disabled = { "mam" }\n'
    p = Prosody(extra_config=extra, test_modules=("test_delay_roster",))
    p.start()
    alice_jid, alice_pw = p.new_account("alice")
    bob_jid, bob_pw = p.new_account("bob")
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port).start()
    phone = Peer(alice_jid, alice_pw, "127.0.0.1", p.c2s_port, resource="phone").start()
    try:
        if case == "relogin":
            client.login(alice_jid, alice_pw, p.ws_url)
            start = client.mark()
            bob.send_message(alice_jid, "before")
            client.wait_signal("MessageReceived", lambda a: a[0]["text"] == "before", start=start)
            client.call("Logout")
        held = _held_roster_gets(p)
        start = client.mark()
        login = client.call_async("Login", "ssa{sv}",
                                  (alice_jid, alice_pw, {"websocket_url": GLib.Variant("s", p.ws_url)}))
        _wait_log(lambda: _held_roster_gets(p) > held, 15, "the server held no roster get")
        bob.send_message(alice_jid, "while imd logs in")
        phone.wait_for_body("while imd logs in")
        phone.send_message(bob_jid, "from the phone while imd logs in")
        bob.wait_for_body("from the phone while imd logs in")
        assert not login.done
        login.result()
        bob.send_message(alice_jid, "after the login")
        client.wait_signal("MessageReceived", lambda a: a[0]["text"] == "after the login", start=start)
        client.pump(1.5)                        # the catch-up, if it brings anything
        texts = _texts(client, bob_jid)[::-1]        # oldest first
        assert texts.count(("while imd logs in", "in")) == 1, texts
        assert texts.count(("from the phone while imd logs in", "out")) == 1, texts
        assert texts.index(("while imd logs in", "in")) < texts.index(("after the login", "in"))
        received = [s.args[0]["text"] for s in client.signals[start:] if s.member == "MessageReceived"]
        assert received.count("while imd logs in") == 1, received
    finally:
        bob.stop()
        phone.stop()
        p.cleanup()
