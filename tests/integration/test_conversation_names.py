"""A conversation's name is the name the user gave the contact in the roster
(RFC 6121): what frontends show instead of the bare JID."""

import asyncio

from harness.asserts import find_conversation
from harness.peer import Peer


def in_session(session, make_awaitable, timeout=15):
    async def run():
        return await make_awaitable()
    return asyncio.run_coroutine_threadsafe(run(), session.loop).result(timeout)


def set_roster_name(session, jid, name):
    """Through another session of the same account: imd gets a roster push."""
    in_session(session, lambda: session.client.update_roster(jid, name=name, subscription="none"))


def own_session(prosody, account):
    return Peer(account.jid, account.password, "127.0.0.1", prosody.c2s_port).start()


def test_roster_name_names_a_new_conversation(client, alice, peer, prosody):
    other = own_session(prosody, alice)
    try:
        set_roster_name(other, peer.jid, "Bob Builder")
    finally:
        other.stop()
    client.login_account(alice)
    start = client.mark()
    peer.send_message(alice.jid, "hello")
    sig = client.wait_signal("ConversationsChanged",
                             lambda a: find_conversation(a[0], peer.jid) is not None, start=start)
    assert find_conversation(sig.args[0], peer.jid)["name"] == "Bob Builder"
    assert find_conversation(client.call("GetConversations"), peer.jid)["name"] == "Bob Builder"


def test_roster_push_renames_an_existing_conversation(client, logged_in, peer, prosody):
    peer.send_message(logged_in.jid, "hello")
    client.wait_signal("MessageReceived", lambda a: a[0].get("text") == "hello")
    assert find_conversation(client.call("GetConversations"), peer.jid)["name"] == ""

    other = own_session(prosody, logged_in)
    try:
        start = client.mark()
        set_roster_name(other, peer.jid, "Robert ☕")
        sig = client.wait_signal(
            "ConversationsChanged",
            lambda a: (find_conversation(a[0], peer.jid) or {}).get("name") == "Robert ☕",
            start=start)
        conv = find_conversation(sig.args[0], peer.jid)
        assert conv["unread"] == 1 and conv["last"]["text"] == "hello"
        # a contact removed from the roster keeps the name its history had
        in_session(other, lambda: other.client.del_roster_item(peer.jid))
        # the server pushed the removal to imd before it answered; a message
        # sent after that reaches imd after the push
        start = client.mark()
        peer.send_message(logged_in.jid, "after removal")
        sig = client.wait_signal(
            "ConversationsChanged",
            lambda a: ((find_conversation(a[0], peer.jid) or {}).get("last") or {}).get("text")
            == "after removal", start=start)
        assert find_conversation(sig.args[0], peer.jid)["name"] == "Robert ☕"
    finally:
        other.stop()


def test_large_roster_logs_in_and_names(client, alice, peer, prosody):
    """A roster result over the 256 KiB a stanza may have (1,000 contacts
    with long names, 330 KB as Prosody sends it): the login completes, and
    the roster still names conversations. Before, the result was dropped
    and Login timed out."""
    long_name = "x" * 300
    other = own_session(prosody, alice)
    try:
        async def fill():
            for start in range(0, 1000, 50):
                await asyncio.gather(*(
                    other.client.update_roster("contact%04d@localhost" % i, name="Contact %d %s" % (i, long_name),
                                               subscription="none")
                    for i in range(start, start + 50)))
            await other.client.update_roster(peer.jid, name="Bob at the end", subscription="none")
        in_session(other, fill, timeout=240)
    finally:
        other.stop()
    client.login_account(alice)
    assert client.get_property("Ready")
    start = client.mark()
    peer.send_message(alice.jid, "hello")
    client.wait_signal("MessageReceived", lambda a: a[0].get("text") == "hello", start=start)
    assert find_conversation(client.call("GetConversations"), peer.jid)["name"] == "Bob at the end"
