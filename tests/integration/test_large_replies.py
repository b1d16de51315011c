"""Replies stay under imd's 8 MiB bound however large the messages in them:
GetMessages pages by bytes as well as by count, SearchMessages and
GetConversations are cut, and imd keeps its bus. A dbus-daemon disconnects a
connection that sends a message over its max_message_size (32 MiB here, the
default), and imd exits when it loses the bus. Real Prosody, dbus-daemon, imd."""

import json
import time

from gi.repository import Gio, GLib

from harness.bus import IM_IFACE, IM_NAME, IM_PATH

BOUND = 8 * 1024 * 1024
FIELD = 65536                       # SendCustom's limit for each of its three fields


def _custom(i):
    """A custom message as large as SendCustom takes (3 x 64 KiB; the
    description, sent as the body, is also the message's text, so a
    message's dictionary is 256 KiB), its description searchable."""
    data = json.dumps("d" * (FIELD - 2))
    description = ("card %03d " % i + "ipsum " * FIELD)[:FIELD].rstrip()
    return data, description, "x" * FIELD


def _call_sized(client, method, signature, args, timeout=60):
    """(the reply's values, the reply's size on the wire in bytes)."""
    msg = Gio.DBusMessage.new_method_call(IM_NAME, IM_PATH, IM_IFACE, method)
    msg.set_body(GLib.Variant("(%s)" % signature, tuple(args)))
    reply, _ = client.conn.send_message_with_reply_sync(
        msg, Gio.DBusSendMessageFlags.NONE, int(timeout * 1000), None)
    reply.to_gerror()                   # raises a failed call's error
    values = reply.get_body().unpack()
    return values, len(reply.to_blob(Gio.DBusCapabilityFlags.NONE))


def _send_custom(client, conv, i):
    return client.call("SendCustom", "ssss", (conv,) + _custom(i), timeout=30)


def test_message_pages_stay_under_the_byte_bound(client, logged_in, new_account, imd):
    """140 messages of 256 KiB: 35 MiB in one page of 500, over dbus-daemon's
    32 MiB. Each page stays under the bound with fewer than asked and
    complete false, and paging by the last id brings every message exactly
    once, in order; a search for all of them is cut the same way."""
    conv = new_account("target").jid           # never online: offline storage takes them
    owner = client.name_owner()
    n = 140
    ids = [_send_custom(client, conv, 0)]
    # The first page asks the archive for what is older than the oldest, by
    # its time up to a second after it: only that one comes back, and the
    # archive is done. From then on the session calls every page of 500
    # complete (it holds all that is older): only the cut makes one not.
    time.sleep(1.2)
    ids += [_send_custom(client, conv, i) for i in range(1, n)]
    newest_first = ids[::-1]

    seen, pages, before = [], 0, ""
    while True:
        (msgs, complete), size = _call_sized(client, "GetMessages", "ssu", (conv, before, 500))
        pages += 1
        assert size < BOUND, "page %d is %d bytes" % (pages, size)
        assert msgs or complete, "page %d: empty and not complete" % pages
        seen += [m["id"] for m in msgs]
        if len(seen) < n:
            assert not complete, "page %d holds %d of %d, yet complete" % (pages, len(msgs), n)
        if complete or not msgs or pages > n:
            break
        before = msgs[-1]["id"]
    assert seen == newest_first
    assert complete
    assert pages >= 5                           # 35 MiB in pages of less than 8 MiB
    # whole: the cut is between messages, never inside one
    first = client.call("GetMessages", "ssu", (conv, "", 1))[0][0]
    assert (first["data"], first["description"], first["extension"]) == _custom(n - 1)

    found, size = _call_sized(client, "SearchMessages", "ssu", ("ipsum", conv, 500))
    found = found[0]
    assert size < BOUND
    assert 0 < len(found) < n
    assert [m["id"] for m in found] == newest_first[:len(found)]

    assert client.name_owner() == owner and imd.running


def test_conversation_list_stays_under_the_byte_bound(client, logged_in, imd):
    """40 conversations whose last message is 256 KiB: 10 MiB with every last
    message. All are listed, under the bound; the most recent carry their last
    message, the others none, and GetMessages reads it."""
    owner = client.name_owner()
    m = 40
    convs = ["nobody%02d@localhost" % i for i in range(m)]
    for i, conv in enumerate(convs):
        _send_custom(client, conv, i)

    (listed,), size = _call_sized(client, "GetConversations", "", ())
    assert size < BOUND
    assert [c["id"] for c in listed] == convs[::-1]
    with_last = [c for c in listed if "last" in c]
    assert 0 < len(with_last) < m
    assert with_last == listed[:len(with_last)]
    for c in with_last:
        assert c["last"]["description"] == _custom(convs.index(c["id"]))[1]
    oldest = listed[-1]
    msgs, _ = client.call("GetMessages", "ssu", (oldest["id"], "", 1))
    assert msgs[0]["description"] == _custom(0)[1]

    assert client.name_owner() == owner and imd.running
