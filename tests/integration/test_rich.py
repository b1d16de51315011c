"""Custom messages (XEP-0335), revoke (XEP-0424) and edit (XEP-0308), both
ways, from D-Bus and imctl; retractions and corrections are believed only from
the message's sender. Real Prosody, real slixmpp peers, the real imd."""

import hashlib
import http.server
import json
import os
import stat
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from harness.asserts import raises_im_error, find_conversation
from harness.util import http_server, wait_until
from test_messages import wait_in

NS_CLIENT = "jabber:client"
NS_JSON = "urn:xmpp:json:0"
NS_IMD = "urn:example:im:0"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_CORRECT = "urn:xmpp:message-correct:0"
SETTLE = 1.0


def _stored(client, conv, msg_id):
    msgs, _ = client.call("GetMessages", "ssu", (conv, "", 100))
    return next(m for m in msgs if m["id"] == msg_id)


def _xml(m):
    return ET.fromstring(m["xml"])


def _custom_raw(to, data, body=None, extension=None, msg_id=None):
    msg_id = msg_id or uuid.uuid4().hex
    raw = ("<message to='%s' type='chat' id='%s'>%s<json xmlns='%s'>%s</json>%s"
           "<origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>"
           % (to, msg_id, "<body>%s</body>" % body if body else "", NS_JSON, _esc(data),
              "<extension xmlns='%s'>%s</extension>" % (NS_IMD, _esc(extension)) if extension else "",
              msg_id))
    return raw, msg_id


def _esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _signals(client, start, member):
    client.pump()
    return [tuple(s.args) for s in client.signals[start:] if s.member == member]


# -- custom -----------------------------------------------------------------------

def test_send_custom_reaches_the_peer(client, logged_in, peer):
    data = json.dumps({"card": {"title": "Ünïcode ✓", "n": [1, 2.5, None, True]}, "q": "<&>"})
    start = client.mark()
    mid = client.call("SendCustom", "ssss", (peer.jid, data, "A card", "v=2;k=<x>"))
    m = peer.wait_for_message(lambda m: m["origin_id"] == mid)
    x = _xml(m)
    assert json.loads(x.find("{%s}json" % NS_JSON).text) == json.loads(data)
    assert x.find("{%s}json" % NS_JSON).text.encode() == data.encode()
    assert m["body"] == "A card"
    assert x.find("{%s}extension" % NS_IMD).text == "v=2;k=<x>"
    sig = client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start).args[0]
    for got in (sig, _stored(client, peer.jid, mid)):
        assert got["type"] == "custom" and got["direction"] == "out"
        assert got["data"] == data and got["description"] == "A card"
        assert got["extension"] == "v=2;k=<x>" and got["text"] == "A card"


def test_custom_without_description_or_extension(client, logged_in, peer):
    mid = client.call("SendCustom", "ssss", (peer.jid, "[1,2,3]", "", ""))
    m = peer.wait_for_message(lambda m: m["origin_id"] == mid)
    assert m["body"] is None and _xml(m).find("{%s}extension" % NS_IMD) is None
    # without a body a server would neither archive nor keep it offline, unless told
    assert _xml(m).find("{urn:xmpp:hints}store") is not None
    got = _stored(client, peer.jid, mid)
    assert got["data"] == "[1,2,3]" and got["description"] == "" and got["extension"] == ""


def test_received_custom(client, logged_in, peer):
    me = logged_in.jid
    start = client.mark()
    raw, mid = _custom_raw(me, '{"a": [true, {"b": "ç"}]}', body="fallback text", extension="ext")
    peer.send_raw(raw)
    raw2, mid2 = _custom_raw(me, '"just a string"')
    peer.send_raw(raw2)
    # not JSON: the body is kept as text, the data dropped; without a body nothing is stored
    raw3, mid3 = _custom_raw(me, "{not json", body="broken card")
    peer.send_raw(raw3)
    raw4, mid4 = _custom_raw(me, "{not json either")
    peer.send_raw(raw4)
    peer.send_message(me, "sync")
    wait_in(client, "sync", start)
    client.pump(SETTLE)
    got = {m["id"]: m for m in client.messages_received(start)}
    assert got[mid]["type"] == "custom" and got[mid]["data"] == '{"a": [true, {"b": "ç"}]}'
    assert got[mid]["description"] == "fallback text" and got[mid]["extension"] == "ext"
    assert got[mid2]["type"] == "custom" and got[mid2]["data"] == '"just a string"'
    assert got[mid3]["type"] == "text" and got[mid3]["text"] == "broken card" and "data" not in got[mid3]
    assert mid4 not in got
    assert _stored(client, peer.jid, mid)["data"] == '{"a": [true, {"b": "ç"}]}'


def test_send_custom_refuses_what_is_not_json(client, logged_in, peer):
    deep = "[" * 40 + "]" * 40
    for bad in ("", "{", "{} trailing", "{'single': 1}", "[1,]", "nope", deep):
        with raises_im_error("InvalidArgument"):
            client.call("SendCustom", "ssss", (peer.jid, bad, "", ""))
    with raises_im_error("TooLarge"):
        client.call("SendCustom", "ssss", (peer.jid, json.dumps("x" * 70000), "", ""))
    with raises_im_error("InvalidArgument"):
        client.call("SendCustom", "ssss", ("not a jid", "{}", "", ""))
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 10))
    assert msgs == []


# -- revoke -----------------------------------------------------------------------

def test_revoke_within_the_window(client, logged_in, peer):
    mid = client.call("SendText", "ss", (peer.jid, "oops, wrong chat"))
    peer.wait_for_body("oops, wrong chat")
    start = client.mark()
    client.call("RevokeMessage", "ss", (peer.jid, mid))
    m = peer.wait_for_message(lambda m: _xml(m).find("{%s}retract" % NS_RETRACT) is not None)
    x = _xml(m)
    assert x.find("{%s}retract" % NS_RETRACT).get("id") == mid
    assert x.find("{urn:xmpp:hints}store") is not None
    assert _signals(client, start, "MessageRevoked") == [(peer.jid, mid)]
    got = _stored(client, peer.jid, mid)
    assert got["revoked"] is True and got["text"] == ""
    conv = next(c for c in client.call("GetConversations") if c["id"] == peer.jid)
    assert conv["last"]["revoked"] is True
    # again: nothing more happens
    client.call("RevokeMessage", "ss", (peer.jid, mid))
    client.pump(SETTLE)
    assert _signals(client, start, "MessageRevoked") == [(peer.jid, mid)]


def test_revoke_refusals(client, logged_in, peer):
    start = client.mark()
    peer.send_message(logged_in.jid, "their words")
    theirs = wait_in(client, "their words", start)["id"]
    with raises_im_error("NotAllowed"):
        client.call("RevokeMessage", "ss", (peer.jid, theirs))
    with raises_im_error("NotFound"):
        client.call("RevokeMessage", "ss", (peer.jid, "no-such-id"))
    with raises_im_error("InvalidArgument"):
        client.call("RevokeMessage", "ss", (peer.jid, ""))
    with raises_im_error("InvalidArgument"):
        client.call("RevokeMessage", "ss", ("bad jid", "x"))
    assert _stored(client, peer.jid, theirs)["text"] == "their words"


def test_revoke_after_the_window_is_not_allowed(client, imd, logged_in, peer):
    conf = os.path.join(imd.workdir, "xdg-config", "imd")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "imd.conf"), "w") as f:
        f.write("[messages]\nrevoke_window=1\n")
    imd.restart()
    client.login_account(logged_in)
    mid = client.call("SendText", "ss", (peer.jid, "too late to take back"))
    peer.wait_for_body("too late to take back")
    time.sleep(1.5)
    with raises_im_error("NotAllowed") as ei:
        client.call("RevokeMessage", "ss", (peer.jid, mid))
    assert "1 seconds" in ei.value.message
    assert _stored(client, peer.jid, mid)["text"] == "too late to take back"
    assert "revoked" not in _stored(client, peer.jid, mid)


def test_incoming_retraction_only_from_the_sender(client, logged_in, peer_factory):
    bob, mallory = peer_factory("bob"), peer_factory("mallory")
    me = logged_in.jid
    start = client.mark()
    bob.send_message(me, "bob said this")
    bobs = wait_in(client, "bob said this", start)["id"]
    mine = client.call("SendText", "ss", (bob.jid, "I said this"))
    bob.wait_for_body("I said this")
    retract = ("<message to='%s' type='chat' id='%s'><retract xmlns='%s' id='%s'/>"
               "<body>fallback</body></message>")
    mallory.send_raw(retract % (me, uuid.uuid4().hex, NS_RETRACT, bobs))   # not mallory's message
    bob.send_raw(retract % (me, uuid.uuid4().hex, NS_RETRACT, mine))       # not bob's message
    bob.send_raw(retract % (me, uuid.uuid4().hex, NS_RETRACT, bobs))       # bob's own: honoured
    client.wait_signal("MessageRevoked", start=start)
    client.pump(SETTLE)
    assert _signals(client, start, "MessageRevoked") == [(bob.jid, bobs)]
    assert _stored(client, bob.jid, bobs)["revoked"] is True
    assert _stored(client, bob.jid, bobs)["text"] == ""
    assert _stored(client, bob.jid, mine)["text"] == "I said this"
    # the fallback bodies never became messages
    assert "fallback" not in [m["text"] for m in client.messages_received(start)]
    assert [c["id"] for c in client.call("GetConversations")] == [bob.jid]


def test_the_list_preview_follows_its_message(client, logged_in, peer):
    """A conversation list shows each conversation's last message: when that
    one is corrected or retracted (by the peer, or by us), the conversation
    is announced again with it; a change to an older, read message is not."""
    me = logged_in.jid
    retract = ("<message to='%s' type='chat' id='%s'><retract xmlns='%s' id='%s'/>"
               "<body>fallback</body></message>")
    correct = ("<message to='%s' type='chat' id='%s'><body>%s</body>"
               "<replace xmlns='%s' id='%s'/></message>")

    def announced(mark, pred):
        return client.wait_signal("ConversationsChanged",
                                  lambda a: any(c["id"] == peer.jid and pred(c.get("last", {})) for c in a[0]),
                                  start=mark)

    start = client.mark()
    peer.send_message(me, "older words")
    peer.send_message(me, "last words")
    older = wait_in(client, "older words", start)["id"]
    last = wait_in(client, "last words", start)["id"]
    client.call("MarkRead", "s", (peer.jid,))

    mark = client.mark()
    peer.send_raw(correct % (me, uuid.uuid4().hex, "last words, corrected", NS_CORRECT, last))
    announced(mark, lambda m: m.get("id") == last and m.get("text") == "last words, corrected")

    mark = client.mark()
    peer.send_raw(retract % (me, uuid.uuid4().hex, NS_RETRACT, older))
    client.wait_signal("MessageRevoked", start=mark)
    client.pump(SETTLE)
    assert _signals(client, mark, "ConversationsChanged") == []

    mark = client.mark()
    peer.send_raw(retract % (me, uuid.uuid4().hex, NS_RETRACT, last))
    announced(mark, lambda m: m.get("id") == last and m.get("revoked") is True and m.get("text") == "")

    mark = client.mark()
    mine = client.call("SendText", "ss", (peer.jid, "my last word"))
    peer.wait_for_body("my last word")
    client.call("EditMessage", "sss", (peer.jid, mine, "my last word, edited"))
    announced(mark, lambda m: m.get("id") == mine and m.get("text") == "my last word, edited")
    mark = client.mark()
    client.call("RevokeMessage", "ss", (peer.jid, mine))
    announced(mark, lambda m: m.get("id") == mine and m.get("revoked") is True)


def test_retracted_before_read_is_not_unread(client, logged_in, peer):
    """A message its sender took back before it was read no longer counts as
    unread (GetConversations, ConversationsChanged, UnreadTotal); a correction
    changes nothing; MarkRead still resets; taking back a read one changes
    nothing."""
    me = logged_in.jid
    retract = ("<message to='%s' type='chat' id='%s'><retract xmlns='%s' id='%s'/>"
               "<body>fallback</body></message>")
    correct = ("<message to='%s' type='chat' id='%s'><body>%s</body>"
               "<replace xmlns='%s' id='%s'/></message>")
    start = client.mark()
    peer.send_message(me, "kept")
    peer.send_message(me, "taken back")
    kept = wait_in(client, "kept", start)["id"]
    gone = wait_in(client, "taken back", start)["id"]
    client.wait_property("UnreadTotal", lambda v: v == 2, start=start)

    mark = client.mark()
    peer.send_raw(retract % (me, uuid.uuid4().hex, NS_RETRACT, gone))
    client.wait_signal("MessageRevoked", start=mark)
    client.wait_signal("ConversationsChanged",
                       lambda a: any(c["id"] == peer.jid and c["unread"] == 1 for c in a[0]),
                       start=mark)
    client.wait_property("UnreadTotal", lambda v: v == 1, start=mark)
    assert find_conversation(client.call("GetConversations"), peer.jid)["unread"] == 1
    assert client.get_property("UnreadTotal") == 1

    mark = client.mark()
    peer.send_raw(correct % (me, uuid.uuid4().hex, "kept, corrected", NS_CORRECT, kept))
    client.wait_signal("MessageEdited", start=mark)
    client.pump(SETTLE)
    assert find_conversation(client.call("GetConversations"), peer.jid)["unread"] == 1
    assert client.get_property("UnreadTotal") == 1

    client.call("MarkRead", "s", (peer.jid,))
    assert find_conversation(client.call("GetConversations"), peer.jid)["unread"] == 0
    assert client.get_property("UnreadTotal") == 0
    mark = client.mark()
    peer.send_raw(retract % (me, uuid.uuid4().hex, NS_RETRACT, kept))
    client.wait_signal("MessageRevoked", start=mark)
    client.pump(SETTLE)
    assert find_conversation(client.call("GetConversations"), peer.jid)["unread"] == 0
    assert client.get_property("UnreadTotal") == 0
    assert not [s for s in client.signals[mark:] if s.member == "PropertiesChanged"
                and "UnreadTotal" in s.args[1]]


# -- edit -------------------------------------------------------------------------

def test_edit_both_ways(client, logged_in, peer_factory):
    bob, mallory = peer_factory("bob"), peer_factory("mallory")
    me = logged_in.jid
    mid = client.call("SendText", "ss", (bob.jid, "teh typo"))
    bob.wait_for_body("teh typo")
    start = client.mark()
    client.call("EditMessage", "sss", (bob.jid, mid, "the typo ✏️"))
    m = bob.wait_for_body("the typo ✏️")
    assert _xml(m).find("{%s}replace" % NS_CORRECT).get("id") == mid
    assert _signals(client, start, "MessageEdited") == [(bob.jid, mid, "the typo ✏️")]
    got = _stored(client, bob.jid, mid)
    assert got["text"] == "the typo ✏️" and got["edited"] is True

    start = client.mark()
    bob.send_message(me, "helo")
    bobs = wait_in(client, "helo", start)["id"]
    correct = ("<message to='%s' type='chat' id='%s'><body>%s</body>"
               "<replace xmlns='%s' id='%s'/></message>")
    mallory.send_raw(correct % (me, uuid.uuid4().hex, "mallory's version", NS_CORRECT, bobs))
    bob.send_raw(correct % (me, uuid.uuid4().hex, "bob rewrites mine", NS_CORRECT, mid))
    bob.send_raw(correct % (me, uuid.uuid4().hex, "hello", NS_CORRECT, bobs))
    client.wait_signal("MessageEdited", start=start)
    client.pump(SETTLE)
    assert _signals(client, start, "MessageEdited") == [(bob.jid, bobs, "hello")]
    assert _stored(client, bob.jid, bobs)["text"] == "hello"
    assert _stored(client, bob.jid, mid)["text"] == "the typo ✏️"
    texts = [m["text"] for m in client.messages_received(start)]
    assert "hello" not in texts and "mallory's version" not in texts   # corrections are not messages


def test_actions_right_behind_their_message(client, logged_in, peer):
    """A correction and a reaction that arrive in the same write as their
    message (so within one batch, not yet stored) are applied to it as it is
    stored: it is announced corrected and reacted to."""
    me = logged_in.jid
    start = client.mark()
    mid = uuid.uuid4().hex
    peer.send_raw(("<message to='%s' type='chat' id='%s'><body>frist</body>"
                   "<origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>" % (me, mid, mid))
                  + ("<message to='%s' type='chat' id='%s'><body>first</body>"
                     "<replace xmlns='%s' id='%s'/></message>" % (me, uuid.uuid4().hex, NS_CORRECT, mid))
                  + _reactions_raw(me, mid, ["👍"]))
    shown = client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start).args[0]
    assert (shown["text"], shown["edited"], shown["reactions"]) == ("first", True, {peer.jid: ["👍"]}), shown
    got = _stored(client, peer.jid, mid)
    assert (got["text"], got["edited"]) == ("first", True)
    assert got["reactions"] == {peer.jid: ["👍"]}


def test_edit_refusals(client, logged_in, peer):
    start = client.mark()
    peer.send_message(logged_in.jid, "not yours")
    theirs = wait_in(client, "not yours", start)["id"]
    with raises_im_error("NotAllowed"):
        client.call("EditMessage", "sss", (peer.jid, theirs, "mine now"))
    mid = client.call("SendText", "ss", (peer.jid, "to be revoked"))
    client.call("RevokeMessage", "ss", (peer.jid, mid))
    with raises_im_error("NotAllowed"):
        client.call("EditMessage", "sss", (peer.jid, mid, "back"))
    with raises_im_error("InvalidArgument"):
        client.call("EditMessage", "sss", (peer.jid, theirs, ""))
    with raises_im_error("NotFound"):
        client.call("EditMessage", "sss", (peer.jid, "nope", "x"))
    # within imd's 65536 bytes, but 262144 once escaped: over the server's limit
    kept = client.call("SendText", "ss", (peer.jid, "kept as it is"))
    with raises_im_error("TooLarge") as ei:
        client.call("EditMessage", "sss", (peer.jid, kept, "<" * 65536))
    assert "too large for the server" in ei.value.message
    assert _stored(client, peer.jid, kept)["text"] == "kept as it is"
    assert client.get_property("Ready") is True


def test_custom_message_too_large_for_the_server(client, logged_in, peer):
    """Data, description and extension are each within imd's 65536 bytes,
    but not together in one stanza: TooLarge, nothing stored. JSON's quotes
    are not escaped in element text, so a quote-heavy document the size of
    the limit goes through."""
    big = "x" * 65536
    with raises_im_error("TooLarge"):
        client.call("SendCustom", "ssss", (peer.jid, '"%s"' % ("&" * 65534), big, big))
    assert not client.call("GetMessages", "ssu", (peer.jid, "", 10))[0]
    data = "[" + ",".join(['""'] * 21845) + "]"     # 65,536 bytes, 43,690 quotes: 284 KB as &quot;
    mid = client.call("SendCustom", "ssss", (peer.jid, data, "a custom message", ""))
    m = peer.wait_for_message(lambda m: m["origin_id"] == mid, timeout=30)
    assert m["body"] == "a custom message"


def test_actions_need_a_login(client, imd):
    for method, sig, args in (("RevokeMessage", "ss", ("bob@localhost", "x")),
                              ("EditMessage", "sss", ("bob@localhost", "x", "y")),
                              ("SendCustom", "ssss", ("bob@localhost", "{}", "", ""))):
        with raises_im_error("NotLoggedIn"):
            client.call(method, sig, args)


# -- imctl --------------------------------------------------------------------------

def test_imctl_custom_revoke_edit(imctl, client, logged_in, peer):
    r = imctl.run("--json", "send-custom", peer.jid, '{"k": 1}', "--description", "a thing")
    mid = json.loads(r.stdout)["id"]
    m = peer.wait_for_message(lambda m: m["origin_id"] == mid)
    assert m["body"] == "a thing"
    r = imctl.run("send-custom", peer.jid, "{oops", check=5)   # InvalidArgument
    assert "JSON" in r.stderr
    tid = imctl.run("send", peer.jid, "draft").stdout.strip()
    imctl.run("edit", peer.jid, tid, "final")
    peer.wait_for_body("final")
    imctl.run("revoke", peer.jid, tid)
    assert _stored(client, peer.jid, tid)["revoked"] is True
    r = imctl.run("revoke", peer.jid, "no-such", check=4)   # NotFound
    assert "NotFound" in r.stderr or "No message" in r.stderr


# -- emoji ----------------------------------------------------------------------------

def _emoji_test_names():
    """name -> emoji straight from Debian's unicode-data, independently of imctl."""
    names = {}
    with open("/usr/share/unicode/emoji/emoji-test.txt", encoding="utf-8") as f:
        for line in f:
            if "; fully-qualified" not in line:
                continue
            _, _, rest = line.partition("# ")
            emoji, _, rest = rest.partition(" E")
            name = rest.split(" ", 1)[1].strip()
            key = "_".join("".join(c if c.isalnum() else " " for c in name.lower()).split())
            names.setdefault(key, emoji)
    return names


def test_imctl_expands_shortcodes(imctl, client, logged_in, peer):
    names = _emoji_test_names()
    typed = ":thumbs_up: and :red_heart: for :face_with_tears_of_joy: :not_an_emoji: at 12:30:45 :waving_hand_medium_skin_tone:"
    want = "%s and %s for %s :not_an_emoji: at 12:30:45 %s" % (
        names["thumbs_up"], names["red_heart"], names["face_with_tears_of_joy"],
        names["waving_hand_medium_skin_tone"])
    assert want.startswith("👍 and ❤️ for 😂")
    mid = imctl.run("send", peer.jid, typed).stdout.strip()
    m = peer.wait_for_message(lambda m: m["origin_id"] == mid)
    assert m["body"].encode() == want.encode()
    tid = imctl.run("send", peer.jid, "plain").stdout.strip()
    imctl.run("edit", peer.jid, tid, "now :smiling_face_with_sunglasses:")
    assert peer.wait_for_body("now " + names["smiling_face_with_sunglasses"])


def test_imctl_lists_emoji(imctl):
    names = _emoji_test_names()
    listed = json.loads(imctl.run("--json", "emoji").stdout)
    assert len(listed) == len(names) > 3000
    assert {e["name"]: e["emoji"] for e in listed} == names
    r = imctl.run("emoji", "--search", "thumbs_up")
    assert r.stdout.splitlines()[0] == ":thumbs_up: 👍"
    r = imctl.run("emoji", env={"IMCTL_EMOJI_DATA": "/nonexistent"}, check=1)
    assert "unicode-data" in r.stderr


# -- reactions ------------------------------------------------------------------------

NS_REACTIONS = "urn:xmpp:reactions:0"


def _reactions_raw(to, target, emoji):
    return ("<message to='%s' type='chat' id='%s'><reactions xmlns='%s' id='%s'>%s</reactions>"
            "<store xmlns='urn:xmpp:hints'/></message>"
            % (to, uuid.uuid4().hex, NS_REACTIONS, target,
               "".join("<reaction>%s</reaction>" % e for e in emoji)))


def test_reactions_both_ways(client, logged_in, peer_factory):
    bob, mallory = peer_factory("bob"), peer_factory("mallory")
    me = logged_in.jid
    mid = client.call("SendText", "ss", (bob.jid, "react to me"))
    bob.wait_for_body("react to me")

    start = client.mark()
    mallory.send_raw(_reactions_raw(me, mid, ["💩"]))     # not in that conversation: ignored
    bob.send_raw(_reactions_raw(me, mid, ["👍", "❤️", "👍", "not one", ""]))
    client.wait_signal("ReactionsChanged", start=start)
    client.pump(SETTLE)
    assert _signals(client, start, "ReactionsChanged") == [(bob.jid, mid, {bob.jid: ["👍", "❤️"]})]
    assert _stored(client, bob.jid, mid)["reactions"] == {bob.jid: ["👍", "❤️"]}

    start = client.mark()
    client.call("React", "ssas", (bob.jid, mid, ["🎉"]))
    m = bob.wait_for_message(lambda m: _xml(m).find("{%s}reactions" % NS_REACTIONS) is not None)
    x = _xml(m)
    assert x.find("{%s}reactions" % NS_REACTIONS).get("id") == mid
    assert [r.text for r in x.iter("{%s}reaction" % NS_REACTIONS)] == ["🎉"]
    assert x.find("{urn:xmpp:hints}store") is not None and m["body"] is None
    want = {bob.jid: ["👍", "❤️"], me: ["🎉"]}
    assert _signals(client, start, "ReactionsChanged") == [(bob.jid, mid, want)]

    # each update is the sender's whole set; an empty one takes it back
    start = client.mark()
    bob.send_raw(_reactions_raw(me, mid, ["😮"]))
    client.wait_signal("ReactionsChanged", lambda a: a[2].get(bob.jid) == ["😮"], start=start)
    client.call("React", "ssas", (bob.jid, mid, []))
    bob.send_raw(_reactions_raw(me, mid, []))
    client.wait_signal("ReactionsChanged", lambda a: a[2] == {}, start=start)
    assert "reactions" not in _stored(client, bob.jid, mid)
    # reactions are not messages
    assert client.messages_received(start) == []
    # taking back the last reaction of all is news too
    start = client.mark()
    client.call("React", "ssas", (bob.jid, mid, ["👍"]))
    client.wait_signal("ReactionsChanged", lambda a: a[2] == {me: ["👍"]}, start=start)
    client.call("React", "ssas", (bob.jid, mid, []))
    client.wait_signal("ReactionsChanged", lambda a: a[2] == {}, start=start)


def test_react_refusals(client, logged_in, peer):
    mid = client.call("SendText", "ss", (peer.jid, "x"))
    for bad in ([""], ["two words"], ["👍", "👍"], ["x" * 65], ["\t"]):
        with raises_im_error("InvalidArgument"):
            client.call("React", "ssas", (peer.jid, mid, bad))
    with raises_im_error("TooLarge"):
        client.call("React", "ssas", (peer.jid, mid, [chr(0x1F600 + i) for i in range(17)]))
    with raises_im_error("NotFound"):
        client.call("React", "ssas", (peer.jid, "nope", ["👍"]))
    client.call("RevokeMessage", "ss", (peer.jid, mid))
    with raises_im_error("NotAllowed"):
        client.call("React", "ssas", (peer.jid, mid, ["👍"]))


def test_imctl_react(imctl, client, logged_in, peer):
    mid = client.call("SendText", "ss", (peer.jid, "imctl reacts"))
    imctl.run("react", peer.jid, mid, ":thumbs_up: 🎉")
    assert _stored(client, peer.jid, mid)["reactions"] == {logged_in.jid: ["👍", "🎉"]}
    imctl.run("react", peer.jid, mid, "")
    assert "reactions" not in _stored(client, peer.jid, mid)


# -- received media ---------------------------------------------------------------------

def _media_raw(to, url, body=True, metadata=None, sfs=True):
    meta = ""
    if metadata is not None:
        fields = "".join("<%s>%s</%s>" % (k, _esc(str(v)), k) for k, v in metadata.items())
        meta = "<file xmlns='urn:xmpp:file:metadata:0'>%s</file>" % fields
        if sfs:
            meta = ("<file-sharing xmlns='urn:xmpp:sfs:0'>%s<sources><url-data "
                    "xmlns='http://jabber.org/protocol/url-data' target='%s'/></sources></file-sharing>"
                    % (meta, _esc(url)))
    mid = uuid.uuid4().hex
    return mid, ("<message to='%s' type='chat' id='%s'>%s<x xmlns='jabber:x:oob'><url>%s</url></x>%s"
                 "<origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>"
                 % (to, mid, "<body>%s</body>" % _esc(url) if body else "", _esc(url), meta, mid))


def test_received_media_messages(client, logged_in, peer):
    me = logged_in.jid
    cases = {}
    # as Conversations sends it: the URL as body and as OOB, nothing else
    cases["photo"] = _media_raw(me, "https://files.example.org/up/a1/summit%20photo.JPG")
    # XEP-0446 metadata inside XEP-0447 file-sharing: the sender's type wins over the name
    cases["clip"] = _media_raw(me, "https://files.example.org/up/b2/clip.bin", metadata={
        "media-type": "video/mp4", "name": "clip.bin", "size": 12345, "width": 640, "height": 360,
        "length": 4000})
    cases["voice"] = _media_raw(me, "https://files.example.org/up/c3/v", body=False, sfs=False,
                                metadata={"media-type": "audio/ogg", "name": "voice note.ogg", "length": 3500})
    cases["report"] = _media_raw(me, "http://127.0.0.1:1/up/d4/report.pdf?x=1#y")
    # the sender's claims are checked for form: a bad type or size is ignored
    cases["odd"] = _media_raw(me, "https://files.example.org/up/e5/pic.png", metadata={
        "media-type": "image/png; charset=x", "size": "-5", "name": "n" * 300})
    # not media: unusable URLs leave a plain text message
    cases["js"] = _media_raw(me, "javascript:alert(1)")
    cases["local"] = _media_raw(me, "file:///etc/passwd")
    start = client.mark()
    for mid, raw in cases.values():
        peer.send_raw(raw)
    peer.send_message(me, "sync")
    wait_in(client, "sync", start)
    client.pump(SETTLE)
    got = {m["id"]: m for m in client.messages_received(start)}
    photo = got[cases["photo"][0]]
    assert photo["type"] == "image" and photo["mime"] == "image/jpeg"
    assert photo["name"] == "summit photo.JPG" and photo["url"].endswith("summit%20photo.JPG")
    assert photo["text"] == photo["url"] and "size" not in photo
    clip = got[cases["clip"][0]]
    assert (clip["type"], clip["mime"], clip["name"], clip["size"], clip["width"], clip["height"],
            clip["duration_ms"]) == ("video", "video/mp4", "clip.bin", 12345, 640, 360, 4000)
    voice = got[cases["voice"][0]]
    assert voice["type"] == "audio" and voice["duration_ms"] == 3500 and voice["text"] == ""
    assert voice["name"] == "voice note.ogg"
    report = got[cases["report"][0]]
    assert report["type"] == "file" and report["mime"] == "application/pdf" and report["name"] == "report.pdf"
    odd = got[cases["odd"][0]]
    assert odd["type"] == "image" and odd["mime"] == "image/png" and "size" not in odd
    assert odd["name"] == "pic.png"        # an overlong name is not taken
    for bad in ("js", "local"):
        m = got[cases[bad][0]]
        assert m["type"] == "text" and "url" not in m
    # and they are history like any message
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 50))
    stored = {m["id"]: m for m in msgs}
    assert stored[cases["clip"][0]]["size"] == 12345 and stored[cases["photo"][0]]["type"] == "image"


# -- fetching files ---------------------------------------------------------------------------

def _read_fd(fd):
    """The whole file behind a descriptor from D-Bus (a GLib UnixFD)."""
    fd = fd if isinstance(fd, int) else fd.take() if hasattr(fd, "take") else int(fd)
    with os.fdopen(fd, "rb") as f:
        f.seek(0)
        return f.read()


def _media_files(imd):
    d = os.path.join(imd.workdir, "cache", "media")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_fetch_media_gives_the_peers_bytes(client, imd, logged_in, peer, imctl):
    data = os.urandom(300 * 1024) + "ünïcödé".encode()
    url = peer.upload(data, "holiday photo.jpg", "image/jpeg")
    mid, raw = _media_raw(logged_in.jid, url)
    start = client.mark()
    peer.send_raw(raw)
    m = client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start).args[0]
    assert m["type"] == "image" and "path" not in m
    got = _read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=60))
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    stored = _stored(client, peer.jid, mid)
    path = stored["path"]
    media_dir = os.path.realpath(os.path.join(imd.workdir, "cache", "media"))
    assert os.path.dirname(os.path.realpath(path)) == media_dir
    assert os.path.basename(path).endswith(".jpeg") and "holiday" not in path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # again: from the cache, the same bytes, no second file
    again = _read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, mid)))
    assert again == data and _media_files(imd) == [os.path.basename(path)]
    assert imctl.run("fetch", peer.jid, mid).stdout.strip() == path
    assert json.loads(imctl.run("--json", "fetch", peer.jid, mid).stdout) == {"path": path}
    r = imctl.run("fetch", peer.jid, "no-such-id", check=4)   # NotFound
    assert "no-such-id" in r.stderr


def test_fetch_media_refusals(client, imd, logged_in, peer):
    me = logged_in.jid
    real = peer.upload(b"z" * 10, "z.txt").split("/")
    cases = {
        # never over plain http to another machine
        "far": _media_raw(me, "http://198.51.100.7/up/x.png"),
        # a name that only looks like this machine is resolved elsewhere
        "lookalike": _media_raw(me, "http://127.0.0.1.example.org/up/x.png"),
        # a slot the server does not have
        "gone": _media_raw(me, "/".join(real[:-2] + ["no-such-slot", real[-1]])),
        # a hostile name in the URL is only a name: the file gets imd's own
        "hostile": _media_raw(me, peer.upload(b"x" * 100, "y.txt").rsplit("/", 1)[0] + "/..%2F..%2Fescape.txt"),
    }
    start = client.mark()
    for mid, raw in cases.values():
        peer.send_raw(raw)
    peer.send_message(me, "sync")
    wait_in(client, "sync", start)
    with raises_im_error("NotAllowed"):
        client.call_fd("FetchMedia", "ss", (peer.jid, cases["far"][0]))
    with raises_im_error("NotAllowed"):
        client.call_fd("FetchMedia", "ss", (peer.jid, cases["lookalike"][0]))
    with raises_im_error("NotFound"):
        client.call_fd("FetchMedia", "ss", (peer.jid, cases["gone"][0]), timeout=30)
    # (the server serves the file whatever the last part says)
    got = _read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, cases["hostile"][0]), timeout=30))
    assert got == b"x" * 100
    path = _stored(client, peer.jid, cases["hostile"][0])["path"]
    assert os.path.dirname(path) == os.path.join(imd.workdir, "cache", "media") and "escape" not in path
    text_id = client.call("SendText", "ss", (peer.jid, "no file here"))
    with raises_im_error("NotFound"):
        client.call_fd("FetchMedia", "ss", (peer.jid, text_id))
    with raises_im_error("NotFound"):
        client.call_fd("FetchMedia", "ss", (peer.jid, "no-such-id"))
    assert _media_files(imd) == [os.path.basename(path)]
    assert not any("escape" in f for _, _, files in os.walk(imd.workdir) for f in files)


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers GET /STATUS/... with that status (401, 403)."""
    def do_GET(self):
        self.server.hits.append(self.path)
        status = int(self.path.split("/")[1])
        body = b"no"
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="files"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_server():
    with http_server(_Refusing) as server:
        yield server


def test_fetch_media_refused_by_the_server_is_failed(client, imd, logged_in, peer, refusing_server):
    """The file server answers 401 or 403: Failed, as for any other status
    (NotAllowed is for URLs imd itself refuses), and nothing is kept."""
    me = logged_in.jid
    ids = {}
    for status in (401, 403):
        url = "http://127.0.0.1:%d/%d/photo.jpg" % (refusing_server.server_port, status)
        ids[status], raw = _media_raw(me, url)
        peer.send_raw(raw)
    start = client.mark()
    peer.send_message(me, "sync")
    wait_in(client, "sync", start)
    for status, mid in ids.items():
        with raises_im_error("Failed") as ei:
            client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=30)
        assert "refused" in ei.value.message and str(status) in ei.value.message, ei.value.message
        assert "path" not in _stored(client, peer.jid, mid)
    assert refusing_server.hits == ["/401/photo.jpg", "/403/photo.jpg"]
    assert _media_files(imd) == []


def test_fetch_media_is_size_bounded(client, imd, logged_in, peer):
    conf = os.path.join(imd.workdir, "xdg-config", "imd")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "imd.conf"), "w") as f:
        f.write("[media]\nmax_download=10000\n")
    imd.restart()
    client.login_account(logged_in)
    small = peer.upload(b"s" * 5000, "small.bin")
    big = peer.upload(b"b" * 50000, "big.bin")
    liar = peer.upload(b"l" * 8000, "liar.bin")
    me = logged_in.jid
    ids = {}
    for key, url, meta in (("small", small, None), ("big", big, None),
                           ("liar", liar, {"media-type": "application/octet-stream", "size": 100})):
        ids[key], raw = _media_raw(me, url, metadata=meta)
        peer.send_raw(raw)
    start = client.mark()
    peer.send_message(me, "sync")
    wait_in(client, "sync", start)
    assert len(_read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, ids["small"]), timeout=30))) == 5000
    with raises_im_error("TooLarge"):
        client.call_fd("FetchMedia", "ss", (peer.jid, ids["big"]), timeout=30)
    with raises_im_error("TooLarge"):       # more than the size its sender gave
        client.call_fd("FetchMedia", "ss", (peer.jid, ids["liar"]), timeout=30)
    assert len(_media_files(imd)) == 1


class _GatedFiles(http.server.BaseHTTPRequestHandler):
    """Serves server.files[path] (404 for anything else), but only once the
    test opens server.gate: a download stays under way as long as a test
    needs. Every request is counted in server.hits."""

    def do_GET(self):
        self.server.hits.append(self.path)
        self.server.gate.wait(30)
        data = self.server.files.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def gated_files():
    with http_server(_GatedFiles) as server:
        server.files, server.gate = {}, threading.Event()
        try:
            yield server
        finally:
            server.gate.set()       # a request still held must not hold the shutdown


def _fetch_in_thread(client_factory, conv, mid):
    """FetchMedia from a frontend of its own, in a thread (the call blocks
    until the download is done): returns (thread, outcome), outcome filled
    with "bytes" and "inode", or "error", when the reply came."""
    client = client_factory()
    outcome = {}

    def run():
        try:
            fd = client.call_fd("FetchMedia", "ss", (conv, mid), timeout=40)
            outcome["inode"] = os.fstat(fd).st_ino
            outcome["bytes"] = _read_fd(fd)
        except Exception as e:      # noqa: BLE001 (checked by the test)
            outcome["error"] = e
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _wait_hits(server, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    while len(server.hits) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(server.hits)


def test_concurrent_fetches_share_one_download(client, client_factory, imd, logged_in, peer, gated_files):
    """imctl, im-tray and im-notify all asking for a new photo at once: one
    GET, one file in the cache, the same bytes for each; later calls answer
    from that file."""
    data = os.urandom(200 * 1024)
    gated_files.files["/up/photo.jpg"] = data
    mid, raw = _media_raw(logged_in.jid, "http://127.0.0.1:%d/up/photo.jpg" % gated_files.server_port)
    start = client.mark()
    peer.send_raw(raw)
    client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start)
    calls = [_fetch_in_thread(client_factory, peer.jid, mid)]
    assert _wait_hits(gated_files, 1) == 1
    calls += [_fetch_in_thread(client_factory, peer.jid, mid) for _ in range(2)]
    # a second download would have started by now
    _wait_hits(gated_files, 2, timeout=2.0)
    assert all(t.is_alive() for t, _ in calls), "answered before the download ended"
    gated_files.gate.set()
    for t, _ in calls:
        t.join(45)
    outcomes = [o for _, o in calls]
    assert all("error" not in o for o in outcomes), outcomes
    assert gated_files.hits == ["/up/photo.jpg"], "imd downloaded the file %d times" % len(gated_files.hits)
    assert [o["bytes"] for o in outcomes] == [data] * 3
    path = _stored(client, peer.jid, mid)["path"]
    assert _media_files(imd) == [os.path.basename(path)]
    assert {o["inode"] for o in outcomes} == {os.stat(path).st_ino}
    # later: from that file, nothing downloaded
    assert _read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, mid))) == data
    assert len(gated_files.hits) == 1


def test_concurrent_fetches_share_one_failure(client, client_factory, imd, logged_in, peer, gated_files):
    """The shared download fails: every caller gets the same error, once, and
    nothing is left in the cache."""
    mid, raw = _media_raw(logged_in.jid, "http://127.0.0.1:%d/up/gone.jpg" % gated_files.server_port)
    start = client.mark()
    peer.send_raw(raw)
    client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start)
    calls = [_fetch_in_thread(client_factory, peer.jid, mid)]
    assert _wait_hits(gated_files, 1) == 1
    calls.append(_fetch_in_thread(client_factory, peer.jid, mid))
    _wait_hits(gated_files, 2, timeout=2.0)
    gated_files.gate.set()
    for t, _ in calls:
        t.join(45)
    errors = [o.get("error") for _, o in calls]
    assert all(e is not None and e.short == "NotFound" for e in errors), errors
    assert len(gated_files.hits) == 1
    assert _media_files(imd) == []


def test_logout_while_reconnecting_cancels_a_download(client, client_factory, imd, logged_in, peer,
                                                       gated_files, prosody):
    """The server is down and imd waits to reconnect; a download, which
    needs no connection to the server, is still stopped by Logout:
    Cancelled, and nothing is left in the cache."""
    gated_files.files["/up/slow.jpg"] = os.urandom(1024)
    mid, raw = _media_raw(logged_in.jid, "http://127.0.0.1:%d/up/slow.jpg" % gated_files.server_port)
    start = client.mark()
    peer.send_raw(raw)
    client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start)
    thread, outcome = _fetch_in_thread(client_factory, peer.jid, mid)
    assert _wait_hits(gated_files, 1) == 1
    mark = client.mark()
    prosody.stop()
    client.wait_property("Ready", lambda v: v is False, start=mark, timeout=15)
    client.call("Logout")
    thread.join(15)
    assert not thread.is_alive(), "FetchMedia still waits after Logout"
    assert getattr(outcome.get("error"), "short", None) == "Cancelled", outcome
    assert _media_files(imd) == []


def test_a_file_in_the_cache_is_answered_whatever_its_url(client, imd, logged_in, peer, gated_files):
    """A file fetched before is answered from the cache without a look at
    its URL: here one over plain http, fetched while that was allowed, still
    opens once imd no longer takes plain http, and nothing is downloaded."""
    gated_files.gate.set()
    data = os.urandom(10 * 1024)
    gated_files.files["/up/kept.jpg"] = data
    mid, raw = _media_raw(logged_in.jid, "http://127.0.0.1:%d/up/kept.jpg" % gated_files.server_port)
    start = client.mark()
    peer.send_raw(raw)
    client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start)
    assert _read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, mid))) == data
    imd.extra_env["IMD_TEST_LOOPBACK_HTTP"] = None
    imd.restart()
    client.login_account(logged_in)
    assert _read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, mid))) == data
    assert gated_files.hits == ["/up/kept.jpg"]


@pytest.mark.parametrize("imd_env", [{"IMD_TEST_LOOPBACK_HTTP": None}])
def test_fetch_media_sends_nothing_to_this_machine_over_plain_http(client, imd, logged_in, peer, gated_files):
    """A peer's http://127.0.0.1:PORT/... URL names whatever listens on this
    machine: imd sends it no request, it answers NotAllowed. (Only a test
    suite lets imd use plain http, to its own servers: the harness sets
    IMD_TEST_LOOPBACK_HTTP=1, unset here.)"""
    gated_files.gate.set()
    gated_files.files["/admin/reset"] = b"done"
    me = logged_in.jid
    ids = []
    for url in ("http://127.0.0.1:%d/admin/reset", "http://localhost:%d/admin/reset",
                "http://[::1]:%d/admin/reset", "HTTP://127.1.2.3:%d/admin/reset"):
        mid, raw = _media_raw(me, url % gated_files.server_port)
        ids.append(mid)
        peer.send_raw(raw)
    start = client.mark()
    peer.send_message(me, "sync")
    wait_in(client, "sync", start)
    for mid in ids:
        with raises_im_error("NotAllowed") as ei:
            client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=30)
        assert "https" in ei.value.message, ei.value.message
    time.sleep(SETTLE)
    assert gated_files.hits == []
    assert _media_files(imd) == []


class _ScriptedFiles(http.server.BaseHTTPRequestHandler):
    """Serves server.files[path] = (how, data), as a file server that breaks
    would: "length" (Content-Length), "chunked" (ending in the final chunk)
    and "close" (neither: the body ends with the connection) are whole;
    "chunked-cut" (no final chunk) and "length-cut" (fewer bytes than
    announced) send the first half of data and close; "gzip-chunked" is
    chunked but names a coding it does not apply; "stall" announces
    len(data), sends its first server.stall_bytes and then sends nothing
    until server.gate opens (and closes without the rest); "trickle" sends
    data 500 bytes at a time, 0.4 s apart. Every request is counted in
    server.hits."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.hits.append(self.path)
        how, data = self.server.files.get(self.path, ("length", None))
        self.close_connection = True
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        half = data[:len(data) // 2]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        chunked = how in ("chunked", "chunked-cut", "gzip-chunked")
        if how in ("length", "length-cut", "stall", "trickle"):
            self.send_header("Content-Length", str(len(data)))
        elif chunked:
            self.send_header("Transfer-Encoding", "gzip, chunked" if how == "gzip-chunked" else "chunked")
        self.end_headers()
        if how == "length" or how == "close":
            self.wfile.write(data)
        elif how == "length-cut":
            self.wfile.write(half)
        elif chunked:
            body = half if how == "chunked-cut" else data
            for i in range(0, len(body), 300):
                part = body[i:i + 300]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            if how != "chunked-cut":
                self.wfile.write(b"0\r\n\r\n")
        elif how == "trickle":
            for i in range(0, len(data), 500):          # 0.4 s apart
                self.wfile.write(data[i:i + 500])
                self.wfile.flush()
                time.sleep(0.4)
        elif how == "stall":
            self.wfile.write(data[:self.server.stall_bytes])
            self.wfile.flush()
            self.server.gate.wait(60)
        self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted_files():
    with http_server(_ScriptedFiles) as server:
        server.files, server.gate, server.stall_bytes = {}, threading.Event(), 1000
        try:
            yield server
        finally:
            server.gate.set()       # a stalled answer must not hold the shutdown


def _send_media(client, peer, me, url, metadata=None):
    """The peer sends a media message with url; its id once imd announced it."""
    mid, raw = _media_raw(me, url, metadata=metadata)
    start = client.mark()
    peer.send_raw(raw)
    client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start)
    return mid


def _with_config(imd, client, account, text):
    """imd restarted with text as its imd.conf, logged in again as account."""
    conf = os.path.join(imd.workdir, "xdg-config", "imd")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "imd.conf"), "w") as f:
        f.write(text)
    imd.restart()
    client.login_account(account)


def test_a_stalled_download_times_out(client, imd, logged_in, peer, scripted_files):
    """The file server sends its headers and 1000 of the 100000 bytes it
    announced, then nothing: FetchMedia fails with Timeout once no byte came
    for [media] stall_timeout, leaves no file, and the next FetchMedia of
    that message starts a new download instead of joining the stalled one."""
    _with_config(imd, client, logged_in, "[media]\nstall_timeout=2\n")
    data = os.urandom(100000)
    scripted_files.files["/up/stalled.bin"] = ("stall", data)
    url = "http://127.0.0.1:%d/up/stalled.bin" % scripted_files.server_port
    mid = _send_media(client, peer, logged_in.jid, url)
    t0 = time.monotonic()
    with raises_im_error("Timeout") as ei:
        client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=20)
    elapsed = time.monotonic() - t0
    assert 1.5 < elapsed < 10, "answered after %.1fs" % elapsed
    assert "2 s" in ei.value.message, ei.value.message
    assert "path" not in _stored(client, peer.jid, mid)
    assert _media_files(imd) == []
    # the server is fixed: a new download, not the old one joined
    scripted_files.files["/up/stalled.bin"] = ("length", data)
    assert _read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=20)) == data
    assert scripted_files.hits == ["/up/stalled.bin"] * 2
    assert _media_files(imd) == [os.path.basename(_stored(client, peer.jid, mid)["path"])]


def test_a_download_that_keeps_coming_is_not_cut(client, imd, logged_in, peer, scripted_files):
    """stall_timeout bounds a silence, not the whole download: a body whose
    bytes trickle in for longer than that, each well within it, is taken."""
    _with_config(imd, client, logged_in, "[media]\nstall_timeout=1\n")
    data = os.urandom(4000)
    scripted_files.files["/up/slow.bin"] = ("trickle", data)
    url = "http://127.0.0.1:%d/up/slow.bin" % scripted_files.server_port
    mid = _send_media(client, peer, logged_in.jid, url)
    t0 = time.monotonic()
    assert _read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=20)) == data
    assert time.monotonic() - t0 > 2.5


def test_a_truncated_download_is_not_kept(client, imd, logged_in, peer, scripted_files):
    """A body that ends short is an error, never a file: cut before its
    final chunk, or cut short of its Content-Length (the connection broke:
    Network), or whole by HTTP's rules (close-delimited, chunked) but
    shorter than the size its sender gave (Failed), or in a transfer coding
    that lws does not undo (Failed). The message gets no path, nothing
    stays in the cache, and FetchMedia works once the server sends the
    whole file."""
    me = logged_in.jid
    data = os.urandom(1000)
    size = {"media-type": "application/octet-stream", "size": len(data)}
    cases = {   # name: (how the server sends it, the sender's metadata, error, words of its message)
        "chunked-cut": ("chunked-cut", size, "Network", "before the end of the file"),
        "chunked-cut, no size": ("chunked-cut", None, "Network", "before the end of the file"),
        "length-cut": ("length-cut", None, "Network", "broke"),
        "close, short": ("close", size, "Failed", "500 bytes of the 1000"),
        "chunked, short": ("chunked", size, "Failed", "500 bytes of the 1000"),
        "gzip, chunked": ("gzip-chunked", None, "Failed", "transfer coding"),
    }
    ids = {}
    for n, (name, (how, meta, _, _)) in enumerate(cases.items()):
        path = "/up/%d.bin" % n
        # the short ones: whole for HTTP, half of what the sender said
        scripted_files.files[path] = (how, data if how.endswith("-cut") else data[:500])
        ids[name] = (path, _send_media(client, peer, me, "http://127.0.0.1:%d%s"
                                       % (scripted_files.server_port, path), metadata=meta))
    for name, (path, mid) in ids.items():
        with raises_im_error(cases[name][2]) as ei:
            client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=20)
        assert "path" not in _stored(client, peer.jid, mid), name
        assert cases[name][3] in ei.value.message, (name, ei.value.message)
    assert _media_files(imd) == []
    # fixed: each whole, in each way the server may send it
    for n, (name, (path, mid)) in enumerate(ids.items()):
        scripted_files.files[path] = (("length", "chunked", "close")[n % 3], data)
        assert _read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=20)) == data, name
        assert "path" in _stored(client, peer.jid, mid)
    assert len(_media_files(imd)) == len(ids)
    assert len(scripted_files.hits) == 2 * len(ids)


def test_a_download_cut_by_a_crash_leaves_nothing(client, client_factory, imd, logged_in, peer,
                                                   scripted_files):
    """imd is killed (SIGKILL) half-way through a download, half the file
    written: after the restart nothing of it is in the cache, the message
    has no path, and FetchMedia downloads it whole."""
    data = os.urandom(100000)
    scripted_files.files["/up/crash.bin"] = ("stall", data)
    scripted_files.stall_bytes = 50000
    url = "http://127.0.0.1:%d/up/crash.bin" % scripted_files.server_port
    mid = _send_media(client, peer, logged_in.jid, url)
    media = os.path.join(imd.workdir, "cache", "media")
    thread, _ = _fetch_in_thread(client_factory, peer.jid, mid)

    def written():
        return sum(os.path.getsize(os.path.join(media, n)) for n in _media_files(imd))
    wait_until(lambda: written() == 50000, timeout=15, what="half the file on disk")
    imd.kill()
    thread.join(15)
    imd.start()
    assert _media_files(imd) == []
    client.login_account(logged_in)
    assert "path" not in _stored(client, peer.jid, mid)
    scripted_files.files["/up/crash.bin"] = ("length", data)
    assert _read_fd(client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=20)) == data
    assert _media_files(imd) == [os.path.basename(_stored(client, peer.jid, mid)["path"])]


def test_a_message_retracted_while_it_waits_in_the_batch_is_announced_revoked(client, logged_in, peer):
    """A message and its retraction close together (one batch: offline
    storage or a catch-up page brings them so): the message is announced
    revoked, never with its text (it was announced, then revoked)."""
    me = logged_in.jid
    start = client.mark()
    for _ in range(3):
        mid = uuid.uuid4().hex
        peer.send_raw("<message to='%s' type='chat' id='%s'><body>my password is hunter2</body></message>"
                      "<message to='%s' type='chat' id='%s'><retract xmlns='%s' id='%s'/></message>"
                      % (me, mid, me, uuid.uuid4().hex, NS_RETRACT, mid))
        got = client.wait_signal("MessageReceived", lambda a, mid=mid: a[0]["id"] == mid, start=start).args[0]
        assert got.get("revoked") is True and "hunter2" not in got.get("text", ""), got
        assert _stored(client, peer.jid, mid).get("revoked") is True
    client.pump(SETTLE)
    assert [sig for sig in client.signals[start:] if sig.member == "MessageRevoked"] == []
    assert find_conversation(client.call("GetConversations"), peer.jid)["unread"] == 0


def test_actions_before_their_message_apply_when_it_comes(client, logged_in, peer):
    """A retraction and a correction that overtake their message (a late
    delivery): the message is announced, and stored, as they left it; the
    retracted text never reaches a frontend."""
    me = logged_in.jid
    gone, fixed = uuid.uuid4().hex, uuid.uuid4().hex
    start = client.mark()
    peer.send_raw("<message to='%s' type='chat' id='%s'><retract xmlns='%s' id='%s'/></message>"
                  % (me, uuid.uuid4().hex, NS_RETRACT, gone))
    peer.send_raw("<message to='%s' type='chat' id='%s'><body>I love you</body><replace xmlns='%s' id='%s'/>"
                  "</message>" % (me, uuid.uuid4().hex, NS_CORRECT, fixed))
    time.sleep(0.5)
    peer.send_raw("<message to='%s' type='chat' id='%s'><body>my password is hunter2</body></message>"
                  % (me, gone))
    peer.send_raw("<message to='%s' type='chat' id='%s'><body>I hate you</body></message>" % (me, fixed))
    got = {}
    for mid in (gone, fixed):
        sig = client.wait_signal("MessageReceived", lambda a, mid=mid: a[0]["id"] == mid, start=start)
        got[mid] = sig.args[0]
    assert got[gone].get("revoked") is True and "hunter2" not in got[gone].get("text", ""), got[gone]
    assert got[fixed]["text"] == "I love you" and got[fixed].get("edited") is True, got[fixed]
    assert _stored(client, peer.jid, gone).get("revoked") is True
    assert _stored(client, peer.jid, fixed)["text"] == "I love you"
    # the retracted one does not count as unread
    assert find_conversation(client.call("GetConversations"), peer.jid)["unread"] == 1
