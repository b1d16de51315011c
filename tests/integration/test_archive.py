"""Archive catch-up (XEP-0313) and carbons (XEP-0280): what the account received
or sent while imd was away or on another device ends up in the history once,
signalled once; copies and archive results from anyone but the own account are
ignored. Real Prosody (mam, carbons, offline), real slixmpp peers, the real imd."""

import json
import os
import re
import sqlite3
import time
import uuid
from collections import Counter

import pytest

from harness.asserts import raises_im_error
from harness.peer import Peer
from harness.prosody import Prosody
from test_faults import _bound_resource, _wait
from test_reliability import _receipt, _wait_status

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_MAM = "urn:xmpp:mam:2"
NS_DELAY = "urn:xmpp:delay"

SETTLE = 1.5    # seconds to wait for anything that should not come


def _history(client, conv):
    msgs, _ = client.call("GetMessages", "ssu", (conv, "", 500))
    return msgs


def _texts(client, conv):
    return Counter(m["text"] for m in _history(client, conv))


def _signalled(client, start):
    return Counter(m["text"] for m in client.messages_received(start))


def _wait_texts(client, texts, start, timeout=20):
    for t in texts:
        client.wait_signal("MessageReceived", lambda a, t=t: a[0]["text"] == t,
                           start=start, timeout=timeout)


def _second_device(prosody, account):
    """A slixmpp client logged in as the same account, another resource."""
    p = Peer(account.jid, account.password, "127.0.0.1", prosody.c2s_port,
             resource="phone-" + uuid.uuid4().hex[:6])
    p.start()
    return p


def _logout(client):
    client.call("Logout")
    # Prosody must have ended the session before messages count as offline.
    time.sleep(0.5)


def _relogin(client, account):
    client.login_account(account)


def _assert_once(client, start, conv, texts):
    client.pump(SETTLE)
    sig = _signalled(client, start)
    hist = _texts(client, conv)
    for t in texts:
        assert sig[t] == 1, "%r signalled %d times: %r" % (t, sig[t], sig)
        assert hist[t] == 1, "%r stored %d times: %r" % (t, hist[t], hist)


# -- catch-up after being away -----------------------------------------------------------

def test_messages_while_logged_out_arrive_once(client, logged_in, peer):
    start = client.mark()
    peer.send_message(logged_in.jid, "before logout")
    _wait_texts(client, ["before logout"], start)
    for round in range(2):
        _logout(client)
        texts = ["away %d.%d" % (round, i) for i in range(3)]
        for t in texts:
            peer.send_message(logged_in.jid, t)
        start = client.mark()
        _relogin(client, logged_in)
        _wait_texts(client, texts, start)
        _assert_once(client, start, peer.jid, texts)
        assert "before logout" not in _signalled(client, start)
        order = [m["text"] for m in reversed(_history(client, peer.jid))]
        assert order[-3:] == texts, order
    assert _texts(client, peer.jid)["before logout"] == 1


def test_messages_while_not_running_arrive_once(client, imd, logged_in, peer):
    start = client.mark()
    peer.send_message(logged_in.jid, "while running")
    _wait_texts(client, ["while running"], start)
    client.close()
    imd.stop()
    time.sleep(0.5)
    texts = ["while stopped %d" % i for i in range(3)]
    for t in texts:
        peer.send_message(logged_in.jid, t)
    imd.start()
    c2 = imd.bus.client()
    try:
        start = c2.mark()
        _relogin(c2, logged_in)
        _wait_texts(c2, texts, start)
        _assert_once(c2, start, peer.jid, texts)
        assert _signalled(c2, start)["while running"] == 0
        assert _texts(c2, peer.jid)["while running"] == 1
    finally:
        c2.close()


@pytest.mark.parametrize("imd_env", [{"G_MESSAGES_DEBUG": "all"}])
def test_messages_reusing_an_id_while_logged_out_arrive_once_each(client, imd, logged_in, peer):
    """A sender reusing an id (no origin-id) while imd is logged out: offline
    storage and the archive both bring each of the two messages, every copy
    with the stanza-id our server gave that message. The copies are still
    copies (same id, same stanza-id): each message is stored and signalled
    once, and the two are both kept."""
    _logout(client)
    texts = ["away with id 7, first", "away with id 7, second"]
    for t in texts:
        peer.send_message(logged_in.jid, t, id="7", origin_id=False)
    start = client.mark()
    _relogin(client, logged_in)
    _wait_texts(client, texts, start)
    _assert_once(client, start, peer.jid, texts)
    ids = [m["id"] for m in _history(client, peer.jid)]
    assert len(ids) == 2 and len(set(ids)) == 2 and "7" in ids, ids
    # both paths did bring them: the copies were there to be recognised
    assert imd.stderr_text().count("duplicate message 7 from %s ignored" % peer.jid) == 2, imd.stderr_text()[-3000:]


def test_archive_brings_what_another_device_handled(client, logged_in, peer, prosody):
    """While imd is away another device is online: nothing goes to offline
    storage, so only the archive can tell imd what was said, both ways."""
    start = client.mark()
    peer.send_message(logged_in.jid, "first")
    _wait_texts(client, ["first"], start)
    _logout(client)
    phone = _second_device(prosody, logged_in)
    try:
        peer.send_message(logged_in.jid, "to the phone 1")
        phone.wait_for_body("to the phone 1")
        phone.send_message(peer.jid, "from the phone")
        peer.wait_for_body("from the phone")
        peer.send_message(logged_in.jid, "to the phone 2")
        phone.wait_for_body("to the phone 2")
        start = client.mark()
        _relogin(client, logged_in)
        texts = ["to the phone 1", "from the phone", "to the phone 2"]
        _wait_texts(client, texts, start)
        _assert_once(client, start, peer.jid, texts)
    finally:
        phone.stop()
    by_text = {m["text"]: m for m in _history(client, peer.jid)}
    assert by_text["to the phone 1"]["direction"] == "in"
    assert by_text["to the phone 1"]["sender"] == peer.jid
    out = by_text["from the phone"]
    assert out["direction"] == "out"
    assert out["status"] == "sent"
    assert out["sender"] == logged_in.jid
    assert out["conversation"] == peer.jid
    sig = [m for m in client.messages_received(start) if m["text"] == "from the phone"]
    assert sig[0]["direction"] == "out"
    # the history keeps the order the archive had
    order = [m["text"] for m in reversed(_history(client, peer.jid))]
    assert order == ["first"] + texts, order


def test_first_login_does_not_download_the_old_archive(client, new_account, peer, prosody):
    alice = new_account("alice")
    phone = _second_device(prosody, alice)
    try:
        peer.send_message(alice.jid, "old news")
        phone.wait_for_body("old news")
        start = client.mark()
        client.login_account(alice)
        peer.send_message(alice.jid, "fresh")
        _wait_texts(client, ["fresh"], start)
        client.pump(SETTLE)
        # the catch-up neither announces nor counts the old archive...
        assert list(_signalled(client, start)) == ["fresh"]
        conv = next(c for c in client.call("GetConversations") if c["id"] == peer.jid)
        assert conv["unread"] == 1 and conv["last"]["text"] == "fresh"
        # ...which comes in, as older history, only when paged back to
        assert [m["text"] for m in _history(client, peer.jid)] == ["fresh", "old news"]
        # from now on the archive is followed: a message only the phone saw
        _logout(client)
        peer.send_message(alice.jid, "seen by the phone")
        phone.wait_for_body("seen by the phone")
        start = client.mark()
        client.login_account(alice)
        _wait_texts(client, ["seen by the phone"], start)
        _assert_once(client, start, peer.jid, ["seen by the phone"])
        assert _texts(client, peer.jid)["old news"] == 1
    finally:
        phone.stop()


# -- receipts and markers from the archive ------------------------------------------------

def _reports(client, start):
    """(status changes as (id, status), MessageReadByPeer as (conversation, id)) since start."""
    client.pump()
    changes = [(s.args[1], s.args[2]) for s in client.signals[start:] if s.member == "MessageStatusChanged"]
    reads = [tuple(s.args) for s in client.signals[start:] if s.member == "MessageReadByPeer"]
    return changes, reads


def _send_and_wait_sent(client, peer, texts):
    start = client.mark()
    ids = [client.call("SendText", "ss", (peer.jid, t)) for t in texts]
    for mid in ids:
        if _history_status(client, peer.jid, mid) == "pending":
            _wait_status(client, mid, "sent", start)
    peer.wait_for_body(texts[-1])
    return ids


def _history_status(client, conv, mid):
    return next(m["status"] for m in _history(client, conv) if m["id"] == mid)


def test_reports_while_away_come_from_the_archive(client, logged_in, peer, prosody):
    """bob receives and reads our messages while imd is away and another
    device of ours is online: the server keeps no offline copy of his receipt
    and marker, and the catch-up from the archive is the only way they reach
    imd. Our messages become delivered and read, each announced once."""
    ids = _send_and_wait_sent(client, peer, ["one", "two", "three"])
    _logout(client)
    phone = _second_device(prosody, logged_in)
    try:
        _receipt(peer, logged_in.jid, ids[2])
        peer.send_displayed(logged_in.jid, ids[1])      # covers "one" too (XEP-0333)
        phone.wait_for_marker(lambda m: m["id"] == ids[1])
        start = client.mark()
        _relogin(client, logged_in)
        client.wait_signal("MessageReadByPeer", lambda a: a[1] == ids[1], start=start)
        client.pump(SETTLE)
    finally:
        phone.stop()
    assert [_history_status(client, peer.jid, mid) for mid in ids] == ["read", "read", "delivered"]
    changes, reads = _reports(client, start)
    assert reads == [(peer.jid, ids[1])]
    assert sorted(changes) == sorted([(ids[0], "read"), (ids[1], "read"), (ids[2], "delivered")])


def test_reports_already_applied_are_not_announced_again_by_the_catch_up(client, logged_in, peer):
    """The catch-up after a reconnect reads again what the archive got while
    imd was online, the receipts and markers imd applied live among them:
    they change nothing, and nothing is announced again."""
    ids = _send_and_wait_sent(client, peer, ["seen live", "delivered live"])
    start = client.mark()
    peer.send_displayed(logged_in.jid, ids[0])
    _receipt(peer, logged_in.jid, ids[1])
    client.wait_signal("MessageReadByPeer", lambda a: a[1] == ids[0], start=start)
    _wait_status(client, ids[1], "delivered", start)
    _logout(client)
    start = client.mark()
    _relogin(client, logged_in)
    peer.send_message(logged_in.jid, "after the catch-up")    # the catch-up is over when it is in
    _wait_texts(client, ["after the catch-up"], start)
    client.pump(SETTLE)
    assert _reports(client, start) == ([], [])
    assert [_history_status(client, peer.jid, mid) for mid in ids] == ["read", "delivered"]


def test_history_from_the_archive_keeps_what_the_peer_reported(client, imd, logged_in, peer):
    """Paging back after the cache is lost: bob's receipt and marker come in
    the same archive pages as our messages; those messages come back
    delivered and read, and nothing is announced for them (they are new to
    the history, not changed)."""
    ids = _send_and_wait_sent(client, peer, ["first", "second", "third", "fourth"])
    start = client.mark()
    _receipt(peer, logged_in.jid, ids[2])
    peer.send_displayed(logged_in.jid, ids[1])
    client.wait_signal("MessageReadByPeer", lambda a: a[1] == ids[1], start=start)
    _wait_status(client, ids[2], "delivered", start)
    imd.stop()
    account_dir = os.path.join(imd.data_dir, logged_in.jid)
    for name in os.listdir(account_dir):
        os.unlink(os.path.join(account_dir, name))
    imd.start()
    start = client.mark()
    client.login_account(logged_in)
    pages, flags = _page_all(client, peer.jid, 10)
    assert flags[-1] is True
    status = {m["id"]: m["status"] for page in pages for m in page}
    assert [status[mid] for mid in ids] == ["read", "read", "delivered", "sent"]
    client.pump(SETTLE)
    assert _reports(client, start) == ([], [])


# -- carbons --------------------------------------------------------------------------------

def test_carbons_of_another_device(client, logged_in, peer, prosody):
    phone = _second_device(prosody, logged_in)
    try:
        start = client.mark()
        mid = phone.send_message(peer.jid, "sent from the phone")
        peer.wait_for_body("sent from the phone")
        sig = client.wait_signal("MessageReceived", lambda a: a[0]["text"] == "sent from the phone",
                                 start=start).args[0]
        assert sig["direction"] == "out"
        assert sig["conversation"] == peer.jid
        assert sig["sender"] == logged_in.jid
        assert sig["id"] == mid
        # a message to the phone's resource alone comes as a received carbon
        peer.send_message(phone.full_jid, "only for the phone")
        phone.wait_for_body("only for the phone")
        # a message to the account reaches both devices directly
        peer.send_message(logged_in.jid, "for both of you")
        phone.wait_for_body("for both of you")
        texts = ["sent from the phone", "only for the phone", "for both of you"]
        _wait_texts(client, texts, start)
        _assert_once(client, start, peer.jid, texts)
        by_text = {m["text"]: m for m in _history(client, peer.jid)}
        stored = by_text["sent from the phone"]
        assert (stored["direction"], stored["status"], stored["sender"]) == \
            ("out", "sent", logged_in.jid)
        assert by_text["only for the phone"]["direction"] == "in"
        assert by_text["for both of you"]["direction"] == "in"
        # outgoing messages from another device are not unread
        conv = [c for c in client.call("GetConversations") if c["id"] == peer.jid][0]
        assert conv["unread"] == 2
    finally:
        phone.stop()


def test_own_messages_are_not_doubled_by_carbons_or_archive(client, logged_in, peer):
    start = client.mark()
    mid = client.call("SendText", "ss", (peer.jid, "from imd itself"))
    peer.wait_for_body("from imd itself")
    client.wait_signal("MessageStatusChanged", lambda a: a[1] == mid and a[2] == "sent", start=start)
    _logout(client)
    _relogin(client, logged_in)
    client.pump(SETTLE)
    hist = [m for m in _history(client, peer.jid) if m["text"] == "from imd itself"]
    assert len(hist) == 1 and hist[0]["id"] == mid
    assert [m["id"] for m in client.messages_received(start)] == [mid]


# -- spoofing ----------------------------------------------------------------------------------

def _wrapped(to, kind, inner_from, inner_to, body):
    return ("<message to='%s' type='chat' id='%s'><%s xmlns='%s'><forwarded xmlns='%s'>"
            "<message xmlns='jabber:client' from='%s' to='%s' type='chat' id='%s'>"
            "<body>%s</body></message></forwarded></%s></message>"
            % (to, uuid.uuid4().hex, kind, NS_CARBONS, NS_FORWARD, inner_from, inner_to,
               uuid.uuid4().hex, body, kind))


def _fake_result(to, queryid, inner_from, inner_to, body):
    return ("<message to='%s' id='%s'><result xmlns='%s' queryid='%s' id='%s'>"
            "<forwarded xmlns='%s'><delay xmlns='%s' stamp='2020-01-01T00:00:00Z'/>"
            "<message xmlns='jabber:client' from='%s' to='%s' type='chat' id='%s'>"
            "<body>%s</body></message></forwarded></result></message>"
            % (to, uuid.uuid4().hex, NS_MAM, queryid, uuid.uuid4().hex, NS_FORWARD, NS_DELAY,
               inner_from, inner_to, uuid.uuid4().hex, body))


def test_forged_carbons_and_archive_results_are_ignored(client, logged_in, peer_factory):
    bob, mallory = peer_factory("bob"), peer_factory("mallory")
    me = logged_in.jid
    start = client.mark()
    mallory.send_raw(_wrapped(me, "received", bob.jid + "/x", me, "forged received carbon"))
    mallory.send_raw(_wrapped(me, "sent", me + "/phone", bob.jid, "forged sent carbon"))
    mallory.send_raw(_wrapped(me, "received", mallory.jid + "/x", me, "carbon of itself"))
    for qid in ("q1", "", uuid.uuid4().hex):
        mallory.send_raw(_fake_result(me, qid, bob.jid + "/x", me, "forged archive result"))
    mallory.send_raw(_fake_result(me, "q2", me + "/phone", bob.jid, "forged archived own message"))
    mallory.send_message(me, "sync")
    client.wait_signal("MessageReceived", lambda a: a[0]["text"] == "sync", start=start)
    client.pump(SETTLE)
    assert list(_signalled(client, start)) == ["sync"]
    assert [c["id"] for c in client.call("GetConversations")] == [mallory.jid]
    assert _texts(client, mallory.jid) == Counter(["sync"])
    # the forged stanzas were archived by the server as mallory's messages: a
    # catch-up must not turn them into anything either
    _logout(client)
    start = client.mark()
    _relogin(client, logged_in)
    mallory.send_message(me, "sync 2")
    client.wait_signal("MessageReceived", lambda a: a[0]["text"] == "sync 2", start=start)
    client.pump(SETTLE)
    assert list(_signalled(client, start)) == ["sync 2"]
    assert [c["id"] for c in client.call("GetConversations")] == [mallory.jid]


@pytest.fixture
def slow_archive_prosody():
    """A private Prosody whose archive answers each query only after 2 s."""
    p = Prosody(extra_config="test_delay_mam = 2", test_modules=("test_delay_mam",))
    p.start()
    yield p
    p.cleanup()


def _held_queries(prosody):
    return re.findall(r"holding archive query iq=(\S+) queryid=(\S*)", prosody.log_tail(1000000))


def test_forged_answers_to_a_pending_archive_query_are_ignored(client, imd, slow_archive_prosody):
    """While imd's catch-up query is in flight, another user answers it with
    the right query id and IQ id (read off the server's log): a result with a
    forged message and a <fin/> that claims the archive is complete. imd takes
    neither from anyone but its own account: the forged message is not stored,
    and the catch-up ends with the real answer, which brings every message."""
    p = slow_archive_prosody
    alice_jid, alice_pw = p.new_account("alice")
    bob_jid, bob_pw = p.new_account("bob")
    mallory_jid, mallory_pw = p.new_account("mallory")
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    mallory = Peer(mallory_jid, mallory_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    mallory.start()
    try:
        client.login(alice_jid, alice_pw, p.ws_url)
        _wait(lambda: len(_held_queries(p)) >= 1, 15, "imd sent no archive query")
        time.sleep(2.5)                         # the first catch-up is over
        client.call("Logout")
        time.sleep(0.5)
        texts = ["while away %d" % i for i in range(3)]
        for t in texts:
            bob.send_message(alice_jid, t)
        asked = len(_held_queries(p))
        start = client.mark()
        client.login(alice_jid, alice_pw, p.ws_url)
        _wait(lambda: len(_held_queries(p)) > asked, 15, "no catch-up query after the login")
        iq_id, query_id = _held_queries(p)[-1]
        me = "%s/%s" % (alice_jid, _bound_resource(p, alice_jid))
        mallory.send_raw(_fake_result(me, query_id, bob_jid + "/x", alice_jid, "forged archive result"))
        mallory.send_raw("<iq type='result' to='%s' id='%s'><fin xmlns='%s' complete='true'>"
                         "<set xmlns='http://jabber.org/protocol/rsm'><last>forged-last</last></set>"
                         "</fin></iq>" % (me, iq_id, NS_MAM))
        _wait_texts(client, texts, start)
        client.pump(3)                          # the real answer comes 2 s after the query
        assert "forged archive result" not in _signalled(client, start)
        _assert_once(client, start, bob_jid, texts)
        assert [c["id"] for c in client.call("GetConversations")] == [bob_jid]
        db = sqlite3.connect(os.path.join(imd.data_dir, alice_jid, "history.sqlite"))
        (last,) = db.execute("SELECT value FROM meta WHERE key = 'mam-last-id'").fetchone()
        db.close()
        assert last != "forged-last"
    finally:
        bob.stop()
        mallory.stop()


def test_a_retraction_during_the_catch_up_is_applied(client, slow_archive_prosody):
    """The archive answers 2 s late, so live messages wait for it (held, to
    keep the archive's order). A retraction of one of them that comes
    meanwhile too is applied as they are stored: the message is announced
    revoked, never with its text."""
    p = slow_archive_prosody
    alice_jid, alice_pw = p.new_account("alice")
    bob_jid, bob_pw = p.new_account("bob")
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    try:
        start = client.mark()
        client.login(alice_jid, alice_pw, p.ws_url)
        _wait(lambda: len(_held_queries(p)) >= 1, 15, "imd sent no archive query")
        mid = "held-" + uuid.uuid4().hex
        bob.send_raw("<message to='%s' type='chat' id='%s'><body>take this back</body></message>"
                     % (alice_jid, mid))
        bob.send_raw("<message to='%s' type='chat' id='%s'><retract xmlns='urn:xmpp:message-retract:1' "
                     "id='%s'/><body>fallback</body></message>" % (alice_jid, uuid.uuid4().hex, mid))
        got = client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start, timeout=15).args[0]
        assert (got["text"], got.get("revoked")) == ("", True), got
        assert [(m["id"], m["text"], m.get("revoked")) for m in _history(client, bob_jid)] == \
            [(mid, "", True)]
        signalled = _signalled(client, start)
        assert "fallback" not in signalled and "take this back" not in signalled
    finally:
        bob.stop()


# -- restart -------------------------------------------------------------------------------------

def test_restart_brings_no_duplicates(client, imd, logged_in, peer, prosody):
    start = client.mark()
    phone = _second_device(prosody, logged_in)
    try:
        peer.send_message(logged_in.jid, "live 1")
        mid = client.call("SendText", "ss", (peer.jid, "mine 1"))
        peer.wait_for_body("mine 1")
        phone.send_message(peer.jid, "phone 1")
        peer.wait_for_body("phone 1")
        _wait_texts(client, ["live 1", "mine 1", "phone 1"], start)
        client.wait_signal("MessageStatusChanged", lambda a: a[1] == mid and a[2] == "sent",
                           start=start)
        _logout(client)
        peer.send_message(logged_in.jid, "while out")
        phone.wait_for_body("while out")
        _relogin(client, logged_in)
        _wait_texts(client, ["while out"], start)
        client.pump(SETTLE)
    finally:
        phone.stop()
    before = _texts(client, peer.jid)
    assert before == Counter(["live 1", "mine 1", "phone 1", "while out"]), before
    client.close()
    imd.restart()
    c2 = imd.bus.client()
    try:
        start = c2.mark()
        _relogin(c2, logged_in)
        peer.send_message(logged_in.jid, "after restart")
        _wait_texts(c2, ["after restart"], start)
        c2.pump(SETTLE)
        assert list(_signalled(c2, start)) == ["after restart"]
        after = _texts(c2, peer.jid)
        assert after == before + Counter(["after restart"]), after
    finally:
        c2.close()


def test_catch_up_pages_through_a_long_archive(client, logged_in, peer, prosody):
    """More than two pages (100 each) arrive complete, once, in order."""
    start = client.mark()
    peer.send_message(logged_in.jid, "start")
    _wait_texts(client, ["start"], start)
    _logout(client)
    phone = _second_device(prosody, logged_in)
    try:
        texts = ["page message %03d" % i for i in range(230)]
        for t in texts:
            peer.send_message(logged_in.jid, t)
        phone.wait_for_body(texts[-1], timeout=30)
        start = client.mark()
        _relogin(client, logged_in)
        _wait_texts(client, [texts[-1]], start, timeout=30)
        _assert_once(client, start, peer.jid, texts)
    finally:
        phone.stop()
    order = [m["text"] for m in reversed(_history(client, peer.jid))]
    assert order == ["start"] + texts


# -- paging back into the server archive ---------------------------------------------------

def _page_all(client, conv, size):
    """Every page of GetMessages back to the start: (pages, the complete flags)."""
    pages, flags, before = [], [], ""
    while True:
        msgs, complete = client.call("GetMessages", "ssu", (conv, before, size), timeout=60)
        pages.append(msgs)
        flags.append(complete)
        if complete or not msgs:
            return pages, flags
        before = msgs[-1]["id"]


def test_history_comes_back_from_the_archive_after_the_cache_is_lost(client, imd, logged_in, peer):
    """500 messages exchanged; the cache is deleted; GetMessages in pages of
    50 brings all 500 back from the server archive, in order, each once, with
    the right direction, and says complete only at the start."""
    n, block = 500, 10
    sent = {}
    # turns of ten messages each way, each turn through the server before the
    # next begins, so that the archive's order is known
    for turn in range(n // block):
        texts = ["m %03d" % i for i in range(turn * block, (turn + 1) * block)]
        start = client.mark()
        if turn % 2:
            for t in texts:
                sent[client.call("SendText", "ss", (peer.jid, t))] = t
            peer.wait_for_body(texts[-1])
        else:
            for t in texts:
                peer.send_message(logged_in.jid, t)
            _wait_texts(client, texts[-1:], start)

    def have_all():
        convs = client.call("GetConversations")
        return convs and convs[0]["unread"] == n // 2 and convs[0]["last"]["status"] != "pending"
    _wait(have_all, 60, "imd did not receive all of the peer's messages")
    imd.stop()
    account_dir = os.path.join(imd.data_dir, logged_in.jid)
    for name in os.listdir(account_dir):
        os.unlink(os.path.join(account_dir, name))
    imd.start()
    client.login_account(logged_in)
    assert client.call("GetConversations") == []

    pages, flags = _page_all(client, peer.jid, 50)
    texts = [m["text"] for page in pages for m in page]
    assert len(texts) == n, (len(texts), [len(p) for p in pages])
    assert list(reversed(texts)) == ["m %03d" % i for i in range(n)]
    assert [len(p) for p in pages] == [50] * 10 and flags == [False] * 9 + [True]
    by_text = {m["text"]: m for page in pages for m in page}
    for i in range(n):
        m = by_text["m %03d" % i]
        assert m["direction"] == ("out" if (i // block) % 2 else "in"), m
    assert {t: by_text[t]["id"] for t in sent.values()} == {t: i for i, t in sent.items()}
    # now it is all in the cache: the same pages again, without the server
    conv = next(c for c in client.call("GetConversations") if c["id"] == peer.jid)
    assert conv["unread"] == 0 and conv["last"]["text"] == "m %03d" % (n - 1)
    client.call("Logout")
    again, flags = _page_all(client, peer.jid, 100)
    assert [m["text"] for page in again for m in page] == texts and flags[-1] is True
    client.login_account(logged_in)
    # and the conversation goes on: new messages are stored after the history
    start = client.mark()
    peer.send_message(logged_in.jid, "after the rebuild")
    _wait_texts(client, ["after the rebuild"], start)
    mine = client.call("SendText", "ss", (peer.jid, "me too"))
    _wait_texts(client, ["me too"], start)
    conv = next(c for c in client.call("GetConversations") if c["id"] == peer.jid)
    assert conv["unread"] == 1 and conv["last"]["id"] == mine
    newest, _ = client.call("GetMessages", "ssu", (peer.jid, "", 3))
    assert [m["text"] for m in newest] == ["me too", "after the rebuild", "m %03d" % (n - 1)]


@pytest.mark.parametrize("reply", [False, True], ids=["only-ours-cached", "a-reply-cached"])
def test_paging_back_with_a_clock_behind_the_server_skips_nothing(client, imd, new_account, peer, prosody,
                                                                   reply):
    """bob writes 30 messages that alice's phone takes; then imd logs in for
    the first time (its history starts at the archive's end) and alice sends
    from it, with a clock 10 minutes behind the server's (emulated by moving
    that message's stored time back as such a clock would have stamped it);
    with reply, bob answers. Paging back brings all of bob's earlier messages,
    in order, each once, and says complete only at the real end."""
    alice = new_account("alice")
    before = ["before imd %02d" % i for i in range(30)]
    phone = _second_device(prosody, alice)
    try:
        for t in before:
            peer.send_message(alice.jid, t)
        phone.wait_for_body(before[-1])
    finally:
        phone.stop()
    time.sleep(1.5)     # a second apart from what follows: a query by time would see them
    client.login_account(alice)
    start = client.mark()
    mine = client.call("SendText", "ss", (peer.jid, "my first message from imd"))
    _wait_status(client, mine, "sent", start)
    peer.wait_for_body("my first message from imd")
    after = []
    if reply:
        peer.send_message(alice.jid, "bob answers")
        _wait_texts(client, ["bob answers"], start)
        after = ["bob answers"]
    client.close()
    imd.stop()
    db = sqlite3.connect(os.path.join(imd.data_dir, alice.jid, "history.sqlite"))
    with db:
        assert db.execute("UPDATE messages SET time_ms = time_ms - 600000 WHERE id = ?", (mine,)).rowcount == 1
    db.close()
    imd.start()
    c2 = imd.bus.client()
    try:
        c2.login_account(alice)
        pages, flags = _page_all(c2, peer.jid, 10)
    finally:
        c2.close()
    texts = [m["text"] for page in pages for m in page]
    assert list(reversed(texts)) == before + ["my first message from imd"] + after, texts
    assert flags[-1] is True and not any(flags[:-1]), flags
    assert [len(p) for p in pages[:-1]] == [10] * (len(pages) - 1)


def test_paging_back_while_offline_answers_from_the_cache(client, imd, logged_in, peer, prosody):
    start = client.mark()
    for i in range(3):
        peer.send_message(logged_in.jid, "kept %d" % i)
    _wait_texts(client, ["kept 2"], start)
    client.call("Logout")
    msgs, complete = client.call("GetMessages", "ssu", (peer.jid, "", 50))
    assert [m["text"] for m in msgs] == ["kept 2", "kept 1", "kept 0"]
    assert complete is False        # the archive was never asked: there may be more
    client.login_account(logged_in)
    msgs, complete = client.call("GetMessages", "ssu", (peer.jid, "", 50), timeout=60)
    assert [m["text"] for m in msgs] == ["kept 2", "kept 1", "kept 0"] and complete is True
    client.call("Logout")
    msgs, complete = client.call("GetMessages", "ssu", (peer.jid, "", 50))
    assert complete is True         # now known: nothing older anywhere


def test_paging_back_does_not_wait_long_for_a_slow_archive(client, imd):
    """The archive takes 4 s per query and imd's archive_wait is 1 s. With the
    cache deleted, GetMessages answers within the wait from the cache (empty,
    not complete) instead of holding the caller; the page still lands in the
    cache, so a later call has every message, and then says complete."""
    p = Prosody(extra_config="test_delay_mam = 4", test_modules=("test_delay_mam",))
    p.start()
    bob = None
    try:
        alice_jid, alice_pw = p.new_account("alice")
        bob_jid, bob_pw = p.new_account("bob")
        bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
        bob.start()
        conf = os.path.join(imd.workdir, "xdg-config", "imd")
        os.makedirs(conf, exist_ok=True)
        with open(os.path.join(conf, "imd.conf"), "w") as f:
            f.write("[messages]\narchive_wait=1\n")
        imd.restart()
        client.login(alice_jid, alice_pw, p.ws_url)
        start = client.mark()
        texts = ["slow archive %d" % i for i in range(3)]
        for t in texts:
            bob.send_message(alice_jid, t)
        _wait_texts(client, texts, start)

        imd.stop()
        account_dir = os.path.join(imd.data_dir, alice_jid)
        for name in os.listdir(account_dir):
            os.unlink(os.path.join(account_dir, name))
        imd.start()
        client.login(alice_jid, alice_pw, p.ws_url)
        t0 = time.monotonic()
        msgs, complete = client.call("GetMessages", "ssu", (bob_jid, "", 50), timeout=60)
        waited = time.monotonic() - t0
        assert (msgs, complete) == ([], False)
        assert 0.8 < waited < 3, "GetMessages took %.1f s" % waited

        def all_back():
            msgs, complete = client.call("GetMessages", "ssu", (bob_jid, "", 50), timeout=60)
            return [m["text"] for m in msgs] == texts[::-1] and complete
        _wait(all_back, 30, "the archive's page never reached the cache")
        assert imd.running
    finally:
        if bob:
            bob.stop()
        p.cleanup()


# -- search ------------------------------------------------------------------------------------

def test_search_finds_a_word_among_thousands(client, logged_in, peer_factory, imctl):
    bob, carol = peer_factory("bob"), peer_factory("carol")
    me = logged_in.jid
    n = 3000
    start = client.mark()
    for i in range(n):
        text = "flood message number %d about nothing" % i
        if i == 1234:
            text = "the Zürich meeting moved to Thursday"
        (carol if i == 2500 else bob).send_message(me, text if i != 2500 else "zurich again, from carol")
    _wait(lambda: sum(c["unread"] for c in client.call("GetConversations")) == n, 120,
          "imd did not receive all %d messages" % n)
    hits = client.call("SearchMessages", "ssu", ("zurich", "", 50))
    # (two senders: which of the two arrived first is up to the server)
    assert {(h["conversation"], h["text"]) for h in hits} == {
        (carol.jid, "zurich again, from carol"), (bob.jid, "the Zürich meeting moved to Thursday")}
    hits = client.call("SearchMessages", "ssu", ("zurich", bob.jid, 50))
    assert [h["text"] for h in hits] == ["the Zürich meeting moved to Thursday"]
    assert client.call("SearchMessages", "ssu", ("meeting thurs", "", 50))[0]["text"].startswith("the Zürich")
    assert len(client.call("SearchMessages", "ssu", ("flood", "", 500))) == 500
    assert client.call("SearchMessages", "ssu", ("nowhere-to-be-found", "", 10)) == []
    # a correction moves the message in the index
    client.call("SendText", "ss", (bob.jid, "draft with a typo"))
    mine = client.call("SearchMessages", "ssu", ("typo", bob.jid, 5))[0]
    client.call("EditMessage", "sss", (bob.jid, mine["id"], "draft fixed"))
    assert client.call("SearchMessages", "ssu", ("typo", "", 5)) == []
    out = json.loads(imctl.run("--json", "search", "zurich", "--conversation", carol.jid).stdout)
    assert [m["text"] for m in out] == ["zurich again, from carol"]
    for bad in ("", "   "):
        with raises_im_error("InvalidArgument"):
            client.call("SearchMessages", "ssu", (bad, "", 10))
    with raises_im_error("InvalidArgument"):
        client.call("SearchMessages", "ssu", ("x", "not a jid", 10))
    with raises_im_error("InvalidArgument"):
        client.call("SearchMessages", "ssu", ("x", "", 0))
    with raises_im_error("TooLarge"):
        client.call("SearchMessages", "ssu", ("x" * 2000, "", 10))


def test_search_words_are_what_the_index_holds(client, logged_in, peer):
    """A query without a letter or digit is no query (InvalidArgument, as
    documented; it used to answer an empty list), and words are split at any
    space, a no-break space too (it made its neighbours a phrase)."""
    start = client.mark()
    peer.send_message(logged_in.jid, "tea first, and then some time to talk")
    _wait_texts(client, ["tea first, and then some time to talk"], start)
    for query in (".", "-", "(", ")", '"', "*", "\u00a0", " - . "):
        with raises_im_error("InvalidArgument"):
            client.call("SearchMessages", "ssu", (query, "", 10))
    for query in ("tea\u00a0time", "time\u3000tea", "tea - time", "tea ."):
        hits = client.call("SearchMessages", "ssu", (query, "", 10))
        assert [h["text"] for h in hits] == ["tea first, and then some time to talk"], query


def test_history_from_the_archive_keeps_revokes_edits_and_reactions(client, imd, logged_in, peer):
    """Paging back after the cache is lost: retractions, corrections and
    reactions come (newest first) before the messages they act on, in the
    same page or a newer one; the history still ends up as the live one was."""
    me = logged_in.jid
    start = client.mark()
    ids = {}
    for text in ("keep", "wrong", "oops"):
        ids[text] = peer.send_message(me, text, origin_id=True)
    _wait_texts(client, ["oops"], start)
    ids["mine"] = client.call("SendText", "ss", (peer.jid, "mine"))
    ids["mine2"] = client.call("SendText", "ss", (peer.jid, "mine2"))
    peer.wait_for_body("mine2")
    filler = ["filler %02d" % i for i in range(30)]
    for t in filler:
        peer.send_message(me, t)
    _wait_texts(client, filler[-1:], start)
    theirs = {m["text"]: m["id"] for m in client.messages_received(start)}
    peer.send_raw("<message to='%s' type='chat' id='%s'><body>right</body>"
                  "<replace xmlns='urn:xmpp:message-correct:0' id='%s'/></message>"
                  % (me, uuid.uuid4().hex, theirs["wrong"]))
    peer.send_raw("<message to='%s' type='chat' id='%s'><retract xmlns='urn:xmpp:message-retract:1' id='%s'/>"
                  "<body>fallback</body><store xmlns='urn:xmpp:hints'/></message>"
                  % (me, uuid.uuid4().hex, theirs["oops"]))
    peer.send_raw("<message to='%s' type='chat' id='%s'><reactions xmlns='urn:xmpp:reactions:0' id='%s'>"
                  "<reaction>👍</reaction></reactions><store xmlns='urn:xmpp:hints'/></message>"
                  % (me, uuid.uuid4().hex, ids["mine"]))
    client.call("RevokeMessage", "ss", (peer.jid, ids["mine2"]))
    client.wait_signal("ReactionsChanged", start=start)
    client.wait_signal("MessageRevoked", lambda a: a[1] == theirs["oops"], start=start)
    client.wait_signal("MessageEdited", start=start)

    def state(msgs):
        return {m["text"] if not m.get("revoked") else "(revoked %s)" % m["id"]:
                (m.get("edited", False), m.get("reactions", {})) for m in msgs}
    live, _ = _page_all(client, peer.jid, 100)
    live = [m for page in live for m in page]
    imd.stop()
    account_dir = os.path.join(imd.data_dir, logged_in.jid)
    for name in os.listdir(account_dir):
        os.unlink(os.path.join(account_dir, name))
    imd.start()
    client.login_account(logged_in)
    pages, flags = _page_all(client, peer.jid, 10)
    rebuilt = [m for page in pages for m in page]
    assert flags[-1] is True
    assert [m["id"] for m in rebuilt] == [m["id"] for m in live]
    assert state(rebuilt) == state(live)
    by_id = {m["id"]: m for m in rebuilt}
    assert by_id[theirs["wrong"]]["text"] == "right" and by_id[theirs["wrong"]]["edited"] is True
    assert by_id[theirs["oops"]]["revoked"] is True and by_id[theirs["oops"]]["text"] == ""
    assert by_id[ids["mine2"]]["revoked"] is True
    assert by_id[ids["mine"]]["reactions"] == {peer.jid: ["👍"]}


NS_RETRACT = "urn:xmpp:message-retract:1"
NS_CORRECT = "urn:xmpp:message-correct:0"
NS_REACTIONS = "urn:xmpp:reactions:0"


def _retraction(to, target):
    return ("<message to='%s' type='chat' id='%s'><retract xmlns='%s' id='%s'/></message>"
            % (to, uuid.uuid4().hex, NS_RETRACT, target))


def _correction(to, target, text):
    return ("<message to='%s' type='chat' id='%s'><body>%s</body><replace xmlns='%s' id='%s'/></message>"
            % (to, uuid.uuid4().hex, text, NS_CORRECT, target))


def _reaction(to, target, emoji):
    return ("<message to='%s' type='chat' id='%s'><reactions xmlns='%s' id='%s'><reaction>%s</reaction>"
            "</reactions><store xmlns='urn:xmpp:hints'/></message>"
            % (to, uuid.uuid4().hex, NS_REACTIONS, target, emoji))


def _before_the_history(prosody, alice, peer, texts):
    """peer's messages to alice that only another device of hers saw: in the
    archive, before imd's history (its first login starts at the archive's
    end). Their ids."""
    phone = _second_device(prosody, alice)
    try:
        ids = [peer.send_message(alice.jid, t) for t in texts]
        phone.wait_for_body(texts[-1])
    finally:
        phone.stop()
    return ids


def _first_login(client, alice, peer):
    start = client.mark()
    client.login_account(alice)
    peer.send_message(alice.jid, "fresh")
    _wait_texts(client, ["fresh"], start)
    return start


def _paged_back(client, conv, wanted):
    msgs, _ = client.call("GetMessages", "ssu", (conv, "", 50), timeout=60)
    by_id = {m["id"]: m for m in msgs}
    assert set(wanted) <= set(by_id), "the old messages did not come from the archive: %r" % msgs
    return by_id


def _assert_never_shown(client, start, secret):
    client.pump(SETTLE)
    shown = [m for m in client.messages_received(start) if secret in (m.get("text") or "")]
    assert shown == [], shown


def _shown_and_revoked(client, start):
    shown = [(m["text"], bool(m.get("revoked"))) for m in client.messages_received(start)]
    return shown, [sig.args for sig in client.signals[start:] if sig.member == "MessageRevoked"]


def test_retracted_while_away_is_revoked(client, imd, logged_in, peer):
    """Logged out, bob sends a secret and retracts it; at the next login
    offline storage and the catch-up bring both. The history has it revoked,
    and a frontend that was shown its text hears MessageRevoked. (With the
    retraction waiting for a message of the batch that turned out to be a
    copy of one stored before, it was never applied.)"""
    start = client.mark()
    peer.send_message(logged_in.jid, "hello first")
    _wait_texts(client, ["hello first"], start)
    _logout(client)
    mid = peer.send_message(logged_in.jid, "offline secret hunter2")
    time.sleep(0.3)
    peer.send_raw(_retraction(logged_in.jid, mid))
    time.sleep(0.5)
    start = client.mark()
    _relogin(client, logged_in)
    peer.send_message(logged_in.jid, "after")
    _wait_texts(client, ["after"], start)
    client.pump(SETTLE)
    shown, revoked = _shown_and_revoked(client, start)
    if ("offline secret hunter2", False) in shown:
        assert revoked == [(peer.jid, mid)], (shown, revoked)
    hist = [(m["id"], m["text"], bool(m.get("revoked"))) for m in _history(client, peer.jid)]
    assert (mid, "", True) in hist and not any("hunter2" in t for _, t, _ in hist), hist


def test_retracted_while_away_with_another_device_is_revoked(client, imd, logged_in, peer, prosody):
    """The same while another device of the account was online: the archive
    catch-up brings the message and its retraction."""
    start = client.mark()
    peer.send_message(logged_in.jid, "hello first")
    _wait_texts(client, ["hello first"], start)
    _logout(client)
    phone = _second_device(prosody, logged_in)
    try:
        mid = peer.send_message(logged_in.jid, "archived secret hunter2")
        phone.wait_for_body("archived secret hunter2")
        peer.send_raw(_retraction(logged_in.jid, mid).replace("</message>",
                                                              "<store xmlns='urn:xmpp:hints'/></message>"))
        time.sleep(0.5)
    finally:
        phone.stop()
    start = client.mark()
    _relogin(client, logged_in)
    peer.send_message(logged_in.jid, "after")
    _wait_texts(client, ["after"], start)
    client.pump(SETTLE)
    shown, revoked = _shown_and_revoked(client, start)
    if ("archived secret hunter2", False) in shown:
        assert revoked == [(peer.jid, mid)], (shown, revoked)
    hist = [(m["id"], m["text"], bool(m.get("revoked"))) for m in _history(client, peer.jid)]
    assert (mid, "", True) in hist and not any("hunter2" in t for _, t, _ in hist), hist


def test_a_waiting_retraction_and_two_messages_with_its_id_in_one_batch(client, imd, logged_in, peer):
    """A retraction waits for id 'dup' (no such message); then two messages
    with that id (a sender reusing ids; different stanza-ids) come in one
    batch (held offline while logged out). The retraction goes to the newest,
    and that message is announced revoked, never with its text (only the
    first of the batch was read again for the announcement)."""
    start = client.mark()
    peer.send_raw(_retraction(logged_in.jid, "dup"))
    peer.send_message(logged_in.jid, "marker msg")
    _wait_texts(client, ["marker msg"], start)
    client.pump(1.0)
    _logout(client)
    peer.send_message(logged_in.jid, "first dup", id="dup", origin_id=False)
    peer.send_message(logged_in.jid, "secret dup hunter2", id="dup", origin_id=False)
    start = client.mark()
    _relogin(client, logged_in)
    peer.send_message(logged_in.jid, "after")
    _wait_texts(client, ["after"], start)
    client.pump(SETTLE)
    shown = [(m["text"], bool(m.get("revoked"))) for m in client.messages_received(start)]
    hist = [(m["text"], bool(m.get("revoked"))) for m in _history(client, peer.jid)]
    assert not any("hunter2" in t for t, _ in shown), shown
    assert ("first dup", False) in shown and ("", True) in shown, shown
    assert [(t, r) for t, r in hist if "dup" in t or r] == [("", True), ("first dup", False)], hist  # newest first


def test_actions_on_messages_before_the_history_apply_when_paged_back(client, new_account, peer, prosody):
    """A retraction, correction and reaction arrive live for messages imd
    never had (another device of ours saw them): paging back, the messages
    come from the archive with them applied, and the retracted text is never
    shown."""
    alice = new_account("alice")
    secret, typo, liked = _before_the_history(prosody, alice, peer,
                                              ["my password is hunter2", "I hate you", "lunch?"])
    start = _first_login(client, alice, peer)
    peer.send_raw(_retraction(alice.jid, secret))
    peer.send_raw(_correction(alice.jid, typo, "I love you"))
    peer.send_raw(_reaction(alice.jid, liked, "👍"))
    peer.send_message(alice.jid, "after")
    _wait_texts(client, ["after"], start)
    client.pump(1.0)
    by_id = _paged_back(client, peer.jid, [secret, typo, liked])
    assert by_id[secret].get("revoked") is True and by_id[secret]["text"] == "", by_id[secret]
    assert by_id[typo]["text"] == "I love you" and by_id[typo].get("edited") is True, by_id[typo]
    assert by_id[liked].get("reactions") == {peer.jid: ["👍"]}, by_id[liked]
    assert by_id[liked]["text"] == "lunch?"
    _assert_never_shown(client, start, "hunter2")
    # applied once: paging again gives the same, from the cache
    again = _paged_back(client, peer.jid, [secret, typo, liked])
    assert again[secret].get("revoked") is True and again[typo]["text"] == "I love you"


def test_actions_on_messages_before_the_history_survive_a_restart(client, imd, new_account, peer, prosody):
    """The same, with imd restarted between the actions and the paging back."""
    alice = new_account("alice")
    secret, typo = _before_the_history(prosody, alice, peer, ["my password is hunter2", "I hate you"])
    start = _first_login(client, alice, peer)
    peer.send_raw(_retraction(alice.jid, secret))
    peer.send_raw(_correction(alice.jid, typo, "I love you"))
    peer.send_message(alice.jid, "after")
    _wait_texts(client, ["after"], start)
    client.pump(1.0)
    client.close()
    imd.restart()
    c2 = imd.bus.client()
    try:
        start = c2.mark()
        c2.login_account(alice)
        by_id = _paged_back(c2, peer.jid, [secret, typo])
        assert by_id[secret].get("revoked") is True and by_id[secret]["text"] == "", by_id[secret]
        assert by_id[typo]["text"] == "I love you" and by_id[typo].get("edited") is True, by_id[typo]
        _assert_never_shown(c2, start, "hunter2")
    finally:
        c2.close()


def test_actions_paged_back_name_the_message_before_them_that_had_the_id(client, new_account, peer, prosody):
    """Before imd's history (another device of ours online), bob sends id 'r'
    = a secret, retracts 'r', then sends another message with id 'r'; and
    the same with a correction. Paging back, each action applies to the
    message with its id that came before it (what it could only mean live),
    not to the newest such: the secret comes back revoked, the later
    messages untouched."""
    alice = new_account("alice")
    phone = _second_device(prosody, alice)
    try:
        peer.send_message(alice.jid, "old secret hunter2", id="r", origin_id=False)
        # no body: only the hint has the archive keep it
        peer.send_raw(_retraction(alice.jid, "r").replace("</message>", "<store xmlns='urn:xmpp:hints'/></message>"))
        peer.send_message(alice.jid, "new innocent", id="r", origin_id=False)
        peer.send_message(alice.jid, "old typo", id="c", origin_id=False)
        peer.send_raw(_correction(alice.jid, "c", "old fixed"))
        peer.send_message(alice.jid, "new as sent", id="c", origin_id=False)
        phone.wait_for_body("new as sent")
    finally:
        phone.stop()
    start = _first_login(client, alice, peer)
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 50), timeout=60)
    got = [(m["text"], bool(m.get("revoked")), bool(m.get("edited"))) for m in msgs]
    assert ("new innocent", False, False) in got, got
    assert ("old fixed", False, True) in got, got
    assert ("new as sent", False, False) in got, got
    assert not any("hunter2" in t or t == "old typo" for (t, _, _) in got), got
    assert sum(1 for (t, revoked, _) in got if revoked and t == "") == 1, got
    _assert_never_shown(client, start, "hunter2")


def test_actions_waiting_for_their_message_count_only_from_its_sender(client, new_account, peer, prosody):
    """Another device of ours retracts and corrects the peer's message, which
    imd does not have yet: when it comes from the archive, neither is applied
    (only its sender may), but that device's reaction is (anyone may react)."""
    alice = new_account("alice")
    theirs, = _before_the_history(prosody, alice, peer, ["mine to keep"])
    start = _first_login(client, alice, peer)
    phone = _second_device(prosody, alice)
    try:
        phone.send_raw(_retraction(peer.jid, theirs))
        phone.send_raw(_correction(peer.jid, theirs, "forged"))
        phone.send_raw(_reaction(peer.jid, theirs, "🎉"))
        phone.send_message(peer.jid, "phone after")
        _wait_texts(client, ["phone after"], start)
    finally:
        phone.stop()
    client.pump(1.0)
    by_id = _paged_back(client, peer.jid, [theirs])
    m = by_id[theirs]
    assert not m.get("revoked") and m["text"] == "mine to keep" and not m.get("edited"), m
    assert m.get("reactions") == {alice.jid: ["🎉"]}, m
