"""Chat messages between imd and a real slixmpp peer, the SQLite history, unread
counts and MarkRead, as seen over org.example.IM."""

import uuid
import random
import time
import xml.etree.ElementTree as ET

import pytest

from harness.asserts import raises_im_error, find_conversation

TEXTS = {
    "emoji": "Hi 👋 — 😀🎉 👩‍👩‍👧 🇫🇷 ☕ é ñ 中文 العربية",
    "markup": "<b>not bold</b> & &amp; 'single' \"double\" <![CDATA[x]]> ]]> <!-- c -->",
    "whitespace": "  leading and trailing spaces  \n\tsecond line\n\nthird",
}


def _big_text(n_bytes=10 * 1024, seed=7):
    rnd = random.Random(seed)
    alphabet = (list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789<>&'\"\n\t")
                + ["é", "ß", "€", "中", "😀", "👍🏽", "𝄞"])
    out, size = [], 0
    while size < n_bytes:
        ch = rnd.choice(alphabet)
        out.append(ch)
        size += len(ch.encode())
    return "".join(out)


TEXTS["10k"] = _big_text()
TEXTS["10k-ascii"] = ("0123456789abcdef" * 640)


def wait_in(client, text, start=0, timeout=15):
    """The MessageReceived (direction in) carrying text."""
    s = client.wait_signal("MessageReceived",
                           lambda a: a[0].get("direction") == "in" and a[0].get("text") == text,
                           start=start, timeout=timeout)
    return s.args[0]


def get_messages(client, conv, before="", limit=50):
    return client.call("GetMessages", "ssu", (conv, before, limit))


# -- imd -> peer ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_send_text_byte_exact(client, logged_in, peer, kind):
    text = TEXTS[kind]
    start = client.mark()
    mid = client.call("SendText", "ss", (peer.jid, text))
    assert isinstance(mid, str) and mid
    got = peer.wait_for_message(lambda m: m["origin_id"] == mid)
    assert got["body"] == text
    assert got["body"].encode("utf-8") == text.encode("utf-8")
    assert got["type"] == "chat"
    assert got["from"].split("/")[0] == logged_in.jid
    assert got["to"].split("/")[0] == peer.jid
    # XEP-0359: <origin-id xmlns='urn:xmpp:sid:0' id='...'/> carries the returned id
    assert "urn:xmpp:sid:0" in got["xml"]

    # imd signals its own message (direction out) to every client
    s = client.wait_signal("MessageReceived", lambda a: a[0].get("id") == mid, start=start)
    m = s.args[0]
    assert m["direction"] == "out"
    assert m["conversation"] == peer.jid
    assert m["sender"] == logged_in.jid
    assert m["text"] == text
    assert m["type"] == "text"
    assert m["status"] in ("pending", "sent", "delivered")
    # and stores it
    msgs, _ = get_messages(client, peer.jid)
    assert [x for x in msgs if x["id"] == mid][0]["text"] == text


def test_send_text_ids_are_unique(client, logged_in, peer):
    ids = [client.call("SendText", "ss", (peer.jid, "n%d" % i)) for i in range(5)]
    assert len(set(ids)) == 5
    for i, mid in enumerate(ids):
        assert peer.wait_for_message(lambda m: m["origin_id"] == mid)["body"] == "n%d" % i
    msgs, _ = get_messages(client, peer.jid)
    assert [m["id"] for m in msgs[:5]] == ids[::-1]
    assert [m["text"] for m in msgs[:5]] == ["n4", "n3", "n2", "n1", "n0"]


def test_send_text_normalises_conversation(client, logged_in, peer):
    user, domain = peer.jid.split("@")
    mid = client.call("SendText", "ss", (user.upper() + "@" + domain.upper(), "case"))
    assert peer.wait_for_message(lambda m: m["origin_id"] == mid)["body"] == "case"
    convs = client.call("GetConversations")
    assert find_conversation(convs, peer.jid) is not None
    assert all(c["id"] == c["id"].lower() for c in convs)


# -- peer -> imd ----------------------------------------------------------------------

def test_receive_message_fields(client, logged_in, peer):
    start = client.mark()
    t0 = int(time.time() * 1000)
    text = TEXTS["emoji"] + " " + TEXTS["markup"]
    peer.send_message(logged_in.jid, text)
    m = wait_in(client, text, start)
    t1 = int(time.time() * 1000)
    for key, typ in [("id", str), ("conversation", str), ("sender", str),
                     ("direction", str), ("time", int), ("type", str), ("text", str),
                     ("status", str)]:
        assert key in m, "field %s missing: %r" % (key, m)
        assert isinstance(m[key], typ), (key, m[key])
    assert m["id"]
    assert m["conversation"] == peer.jid
    assert m["sender"] == peer.jid
    assert m["direction"] == "in"
    assert m["type"] == "text"
    assert m["text"] == text
    assert m["status"] == "received"
    assert t0 - 5000 <= m["time"] <= t1 + 5000, (t0, m["time"], t1)

    msgs, complete = get_messages(client, peer.jid)
    assert complete is True
    stored = [x for x in msgs if x["id"] == m["id"]]
    assert len(stored) == 1
    for key in ("id", "conversation", "sender", "direction", "time", "type", "text", "status"):
        assert stored[0][key] == m[key], key


@pytest.mark.parametrize("kind", ["10k", "whitespace"])
def test_receive_byte_exact(client, logged_in, peer, kind):
    start = client.mark()
    peer.send_message(logged_in.jid, TEXTS[kind])
    m = wait_in(client, TEXTS[kind], start)
    assert m["text"].encode() == TEXTS[kind].encode()


NS_CORRECT = "urn:xmpp:message-correct:0"


def test_two_messages_with_the_same_id_are_both_kept(client, logged_in, peer):
    """A sender that numbers its messages itself (a bot counting from 1), with
    no XEP-0359 origin-id, gives two different messages the same id. Our server
    gave them different stanza-ids, so they are two messages: both signalled,
    both in the history, both unread. The second gets an id of imd's own; the
    peer knows it by the id it gave: a correction naming that id corrects the
    newest message that had it (XEP-0308), and MarkRead's displayed marker
    names it so, as do our reactions to it."""
    start = client.mark()
    peer.send_message(logged_in.jid, "first with id 1", id="1", origin_id=False)
    first = wait_in(client, "first with id 1", start)
    peer.send_message(logged_in.jid, "second with id 1", id="1", origin_id=False)
    second = wait_in(client, "second with id 1", start)
    assert first["id"] == "1"
    assert second["id"] not in ("", "1")

    msgs, complete = get_messages(client, peer.jid)
    assert [(m["id"], m["text"]) for m in msgs] == [(second["id"], "second with id 1"), ("1", "first with id 1")]
    assert complete is True
    client.wait_signal("ConversationsChanged",
                       lambda a: any(c["id"] == peer.jid and c["unread"] == 2 and c["last"]["id"] == second["id"]
                                     for c in a[0]), start=start)
    conv = find_conversation(client.call("GetConversations"), peer.jid)
    assert conv["unread"] == 2 and conv["last"]["text"] == "second with id 1"
    assert client.get_property("UnreadTotal") == 2

    mark = client.mark()
    peer.send_raw("<message to='%s' type='chat' id='%s'><body>second, corrected</body>"
                  "<replace xmlns='%s' id='1'/></message>" % (logged_in.jid, uuid.uuid4().hex, NS_CORRECT))
    edited = client.wait_signal("MessageEdited", lambda a: a[0] == peer.jid, start=mark)
    assert tuple(edited.args) == (peer.jid, second["id"], "second, corrected")
    msgs, _ = get_messages(client, peer.jid)
    assert [m["text"] for m in msgs] == ["second, corrected", "first with id 1"]

    mark = client.mark()
    client.call("React", "ssas", (peer.jid, second["id"], ["👍"]))
    reaction = peer.wait_for_message(lambda m: "urn:xmpp:reactions:0" in m["xml"])
    assert ET.fromstring(reaction["xml"]).find("{urn:xmpp:reactions:0}reactions").get("id") == "1"
    changed = client.wait_signal("ReactionsChanged", start=mark)
    assert tuple(changed.args) == (peer.jid, second["id"], {logged_in.jid: ["👍"]})

    client.call("MarkRead", "s", (peer.jid,))
    assert peer.wait_for_marker(lambda m: m["id"] == "1")["id"] == "1"
    assert client.get_property("UnreadTotal") == 0


def test_received_message_survives_restart(client, logged_in, peer, imd):
    start = client.mark()
    text = "remember me 📝"
    peer.send_message(logged_in.jid, text)
    m = wait_in(client, text, start)
    imd.restart()
    client.login_account(logged_in)
    msgs, complete = get_messages(client, peer.jid)
    same = [x for x in msgs if x["text"] == text]
    assert len(same) == 1, msgs
    assert same[0]["id"] == m["id"]
    assert same[0]["direction"] == "in"
    assert same[0]["time"] == m["time"]
    conv = find_conversation(client.call("GetConversations"), peer.jid)
    assert conv is not None and conv["unread"] == 1


def test_sent_message_survives_restart(client, logged_in, peer, imd):
    mid = client.call("SendText", "ss", (peer.jid, "sent before restart"))
    peer.wait_for_message(lambda m: m["origin_id"] == mid)
    imd.restart()
    client.login_account(logged_in)
    msgs, _ = get_messages(client, peer.jid)
    mine = [x for x in msgs if x["id"] == mid]
    assert len(mine) == 1
    assert mine[0]["direction"] == "out"
    assert mine[0]["text"] == "sent before restart"
    # "sent"/"delivered" need acks (XEP-0198/0184, a later issue); never "failed"
    assert mine[0]["status"] in ("pending", "sent", "delivered", "read")


def test_paging(client, logged_in, peer):
    start = client.mark()
    texts = ["page-%d" % i for i in range(7)]
    for t in texts:
        peer.send_message(logged_in.jid, t)
    ids = [wait_in(client, t, start)["id"] for t in texts]

    msgs, complete = get_messages(client, peer.jid, "", 3)
    assert [m["text"] for m in msgs] == ["page-6", "page-5", "page-4"]
    assert complete is False
    msgs, complete = get_messages(client, peer.jid, msgs[-1]["id"], 3)
    assert [m["text"] for m in msgs] == ["page-3", "page-2", "page-1"]
    assert complete is False
    msgs, complete = get_messages(client, peer.jid, msgs[-1]["id"], 3)
    assert [m["text"] for m in msgs] == ["page-0"]
    assert complete is True
    msgs, complete = get_messages(client, peer.jid, ids[0], 3)
    assert msgs == [] and complete is True
    msgs, complete = get_messages(client, peer.jid, "", 500)
    assert [m["id"] for m in msgs] == ids[::-1]
    assert complete is True
    msgs, complete = get_messages(client, peer.jid, ids[4], 1)
    assert [m["id"] for m in msgs] == [ids[3]] and complete is False


def test_conversations_are_separate(client, logged_in, peer_factory):
    bob, carol = peer_factory("bob"), peer_factory("carol")
    start = client.mark()
    bob.send_message(logged_in.jid, "from bob")
    wait_in(client, "from bob", start)
    carol.send_message(logged_in.jid, "from carol")
    wait_in(client, "from carol", start)
    b, _ = get_messages(client, bob.jid)
    c, _ = get_messages(client, carol.jid)
    assert [m["text"] for m in b] == ["from bob"]
    assert [m["text"] for m in c] == ["from carol"]
    convs = client.call("GetConversations")
    ids = [x["id"] for x in convs]
    assert ids.index(carol.jid) < ids.index(bob.jid), "most recent first: %r" % ids


# -- unread and MarkRead ----------------------------------------------------------------

def test_unread_and_mark_read(client, logged_in, peer):
    start = client.mark()
    assert client.get_property("UnreadTotal") == 0
    sent_ids = [peer.send_message(logged_in.jid, "unread %d" % i) for i in range(3)]
    got = [wait_in(client, "unread %d" % i, start) for i in range(3)]

    conv = find_conversation(client.call("GetConversations"), peer.jid)
    assert conv is not None
    assert conv["unread"] == 3
    assert conv["kind"] == "chat"
    assert isinstance(conv["name"], str)
    assert conv["last"]["id"] == got[-1]["id"]
    assert conv["last"]["text"] == "unread 2"
    assert conv["time"] == got[-1]["time"]
    assert client.get_property("UnreadTotal") == 3
    client.wait_property("UnreadTotal", lambda v: v == 3, start=start)
    client.wait_signal("ConversationsChanged",
                       lambda a: any(c["id"] == peer.jid and c["unread"] == 3 for c in a[0]),
                       start=start)

    mark = client.mark()
    assert client.call("MarkRead", "s", (peer.jid,)) is None
    conv = find_conversation(client.call("GetConversations"), peer.jid)
    assert conv["unread"] == 0
    assert client.get_property("UnreadTotal") == 0
    client.wait_property("UnreadTotal", lambda v: v == 0, start=mark)
    client.wait_signal("ConversationsChanged",
                       lambda a: any(c["id"] == peer.jid and c["unread"] == 0 for c in a[0]),
                       start=mark)
    # XEP-0333: <displayed/> for the newest message, by its stanza id
    marker = peer.wait_for_marker()
    assert marker["id"] == sent_ids[-1], (marker, sent_ids)
    assert marker["from"].split("/")[0] == logged_in.jid
    # reading again changes nothing and is not an error
    client.call("MarkRead", "s", (peer.jid,))
    assert client.get_property("UnreadTotal") == 0


def test_unread_total_sums_conversations(client, logged_in, peer_factory):
    bob, carol = peer_factory("bob"), peer_factory("carol")
    start = client.mark()
    bob.send_message(logged_in.jid, "b1")
    bob.send_message(logged_in.jid, "b2")
    carol.send_message(logged_in.jid, "c1")
    for t in ("b1", "b2", "c1"):
        wait_in(client, t, start)
    assert client.get_property("UnreadTotal") == 3
    client.call("MarkRead", "s", (carol.jid,))
    assert client.get_property("UnreadTotal") == 2
    assert find_conversation(client.call("GetConversations"), bob.jid)["unread"] == 2
    assert carol.wait_for_marker()["id"]


def _unread_changes(client, start):
    """The UnreadTotal values announced with PropertiesChanged since start."""
    client.pump()
    return [s.args[1]["UnreadTotal"] for s in client.signals[start:]
            if s.member == "PropertiesChanged" and "UnreadTotal" in s.args[1]]


def test_unread_total_follows_the_account(client, logged_in, peer, new_account):
    """UnreadTotal is the count of Account's history: it stays as it was
    after Logout (that history stays readable), and another account's
    login announces that account's count, 0 included (a tray showing the
    previous account's 3 would show it forever)."""
    start = client.mark()
    for i in range(3):
        peer.send_message(logged_in.jid, "for alice %d" % i)
    for i in range(3):
        wait_in(client, "for alice %d" % i, start)
    client.wait_property("UnreadTotal", lambda v: v == 3, start=start)

    mark = client.mark()
    client.call("Logout")
    client.pump(0.5)
    assert client.get_property("Account") == logged_in.jid
    assert client.get_property("UnreadTotal") == 3
    assert find_conversation(client.call("GetConversations"), peer.jid)["unread"] == 3
    assert _unread_changes(client, mark) == []

    other = new_account("carol")
    mark = client.mark()
    client.login_account(other)
    assert client.get_property("Account") == other.jid
    client.wait_property("UnreadTotal", lambda v: v == 0, start=mark, timeout=5)
    assert client.get_property("UnreadTotal") == 0
    assert client.call("GetConversations") == []

    # and back: the first account's count comes back with it
    client.call("Logout")
    mark = client.mark()
    client.login_account(logged_in)
    client.wait_property("UnreadTotal", lambda v: v == 3, start=mark, timeout=5)
    assert client.get_property("UnreadTotal") == 3
    assert _unread_changes(client, mark) == [3]


def test_own_messages_are_not_unread(client, logged_in, peer):
    client.call("SendText", "ss", (peer.jid, "mine"))
    conv = find_conversation(client.call("GetConversations"), peer.jid)
    assert conv["unread"] == 0
    assert conv["last"]["text"] == "mine"
    assert client.get_property("UnreadTotal") == 0


def test_unread_survives_restart(client, logged_in, peer, imd):
    start = client.mark()
    peer.send_message(logged_in.jid, "u1")
    peer.send_message(logged_in.jid, "u2")
    wait_in(client, "u2", start)
    wait_in(client, "u1", start)
    imd.restart()
    client.login_account(logged_in)
    assert client.get_property("UnreadTotal") == 2
    client.call("MarkRead", "s", (peer.jid,))
    imd.restart()
    client.login_account(logged_in)
    assert client.get_property("UnreadTotal") == 0


# -- several frontends ---------------------------------------------------------------------

def test_two_clients_see_every_signal(client_factory, imd, alice, peer):
    a, b = client_factory(), client_factory()
    a.login_account(alice)
    sa, sb = a.mark(), b.mark()
    peer.send_message(alice.jid, "to both")
    wait_in(a, "to both", sa)
    wait_in(b, "to both", sb)
    mid = b.call("SendText", "ss", (peer.jid, "from b"))
    a.wait_signal("MessageReceived", lambda x: x[0]["id"] == mid, start=sa)
    b.wait_signal("MessageReceived", lambda x: x[0]["id"] == mid, start=sb)
    a.call("MarkRead", "s", (peer.jid,))
    for c, s in ((a, sa), (b, sb)):
        c.wait_property("UnreadTotal", lambda v: v == 0, start=s)
    # let everything settle, then both recorded exactly the same signals
    time.sleep(1.0)
    a.pump(0.3)
    b.pump(0.3)
    ka = [s.key() for s in a.signals[sa:]]
    kb = [s.key() for s in b.signals[sb:]]
    assert ka == kb
    members = [k[1] for k in ka]
    for m in ("MessageReceived", "ConversationsChanged", "PropertiesChanged"):
        assert m in members, members


# -- errors ----------------------------------------------------------------------------

def test_send_text_not_logged_in(client, peer):
    with raises_im_error("NotLoggedIn"):
        client.call("SendText", "ss", (peer.jid, "hello"))


def test_send_text_after_logout(client, logged_in, peer):
    client.call("Logout")
    with raises_im_error("NotLoggedIn"):
        client.call("SendText", "ss", (peer.jid, "hello"))
    time.sleep(0.5)
    assert peer.bodies() == []


def jid_id(j):
    return "empty" if j == "" else (j if len(j) < 30 else j[:12] + "...%d" % len(j))


BAD_JIDS = ["", "not a jid", "@localhost", "bob@", "bob@@localhost", "bob@local host",
            "x" * 1100 + "@localhost"]


@pytest.mark.parametrize("jid", BAD_JIDS, ids=jid_id)
def test_send_text_invalid_jid(client, logged_in, jid):
    with raises_im_error("InvalidArgument"):
        client.call("SendText", "ss", (jid, "hello"))


def test_send_text_empty(client, logged_in, peer):
    with raises_im_error("InvalidArgument"):
        client.call("SendText", "ss", (peer.jid, ""))


def test_send_text_too_long(client, logged_in, peer):
    with raises_im_error("InvalidArgument", "TooLarge"):
        client.call("SendText", "ss", (peer.jid, "x" * 65537))
    # the limit itself is fine
    mid = client.call("SendText", "ss", (peer.jid, "y" * 65536))
    assert peer.wait_for_message(lambda m: m["origin_id"] == mid)["body"] == "y" * 65536


def test_send_text_too_large_for_the_server_once_escaped(client, logged_in, peer):
    """65,536 '<' are within imd's limit, but escaped (&lt;) they are 262,144
    bytes, over the 256 KiB a server takes when it does not say otherwise
    (Prosody would close the connection on it, again after every reconnect):
    TooLarge at once, and nothing stored. 60,000 of them (240,000 bytes)
    arrive byte-exact."""
    with raises_im_error("TooLarge") as ei:
        client.call("SendText", "ss", (peer.jid, "<" * 65536))
    assert "too large for the server" in ei.value.message
    assert not client.call("GetMessages", "ssu", (peer.jid, "", 10))[0]
    mid = client.call("SendText", "ss", (peer.jid, "<" * 60000))
    assert peer.wait_for_message(lambda m: m["origin_id"] == mid, timeout=30)["body"] == "<" * 60000
    assert client.get_property("Ready") is True


@pytest.mark.parametrize("jid", BAD_JIDS, ids=jid_id)
def test_get_messages_invalid_jid(client, logged_in, jid):
    with raises_im_error("InvalidArgument"):
        get_messages(client, jid)


@pytest.mark.parametrize("limit", [0, 501, 2**32 - 1])
def test_get_messages_bad_limit(client, logged_in, peer, limit):
    client.call("SendText", "ss", (peer.jid, "something"))
    with raises_im_error("InvalidArgument"):
        get_messages(client, peer.jid, "", limit)
    msgs, _ = get_messages(client, peer.jid, "", 500)
    assert len(msgs) == 1


def test_get_messages_unknown_before_id(client, logged_in, peer):
    client.call("SendText", "ss", (peer.jid, "something"))
    with raises_im_error("NotFound"):
        get_messages(client, peer.jid, "no-such-message-id", 10)


def test_get_messages_before_id_of_other_conversation(client, logged_in, peer_factory):
    bob, carol = peer_factory("bob"), peer_factory("carol")
    mid = client.call("SendText", "ss", (bob.jid, "to bob"))
    client.call("SendText", "ss", (carol.jid, "to carol"))
    with raises_im_error("NotFound"):
        get_messages(client, carol.jid, mid, 10)


@pytest.mark.parametrize("jid", BAD_JIDS, ids=jid_id)
def test_mark_read_invalid_jid(client, logged_in, jid):
    with raises_im_error("InvalidArgument"):
        client.call("MarkRead", "s", (jid,))


def test_mark_read_unknown_conversation(client, logged_in):
    with raises_im_error("NotFound"):
        client.call("MarkRead", "s", ("nobody-ever@localhost",))


# -- untrusted delay stamps --------------------------------------------------------

def _send_delayed(peer, to, body, stamp, by):
    by_attr = " from='%s'" % by if by else ""
    peer.send_raw("<message to='%s' type='chat' id='%s'><body>%s</body>"
                  "<delay xmlns='urn:xmpp:delay' stamp='%s'%s/></message>"
                  % (to, uuid.uuid4().hex, body, stamp, by_attr))


def test_delay_stamp_from_sender_is_used(client, logged_in, peer):
    start = client.mark()
    _send_delayed(peer, logged_in.jid, "written yesterday", "2026-01-02T03:04:05Z", peer.jid)
    m = wait_in(client, "written yesterday", start)
    assert m["time"] == 1767323045000


@pytest.mark.parametrize("stamp,by", [
    ("2026-01-02T03:04:05Z", "mallory@localhost"),   # vouched for by a third party
    ("0001-01-01T00:00:00Z", None),                  # before any XMPP message
])
def test_untrusted_delay_stamp_is_ignored(client, logged_in, peer, stamp, by):
    start = client.mark()
    t0 = int(time.time() * 1000)
    body = "stamp %s %s" % (stamp, by)
    _send_delayed(peer, logged_in.jid, body, stamp, by)
    m = wait_in(client, body, start)
    assert m["time"] >= t0 - 5000, m["time"]
