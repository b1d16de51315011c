"""im-tray against a real StatusNotifierWatcher + host
(ayatana-indicator-application-service), the real imd, Prosody and slixmpp
peers: what a user sees in the panel, the tooltip and the menu.
"""

import os
import shutil
import subprocess
import tempfile

import pytest
from gi.repository import GLib

from conftest import _failed
from harness.bus import IM_IFACE, IM_NAME, IM_PATH, DBusCallError
from harness.imd import Imd
from harness.notify import Rogue
from harness.peer import Peer
from harness.tray import ImTray, TrayHost, im_tray_path, wait_until
from harness.util import REPO

MAN_PAGE = os.path.join(REPO, "clients", "im-tray", "im-tray.1")


# -- fixtures ---------------------------------------------------------------------------

@pytest.fixture
def host_factory(bus, tmp_path):
    """Start the watcher + host (tests that start it late call it themselves)."""
    hosts = []

    def make():
        h = TrayHost(bus, str(tmp_path))
        hosts.append(h)
        return h.start()
    yield make
    for h in hosts:
        h.stop()


@pytest.fixture
def host(host_factory):
    return host_factory()


@pytest.fixture
def tray_factory(bus, tmp_path, request):
    trays = []

    def make():
        t = ImTray(bus, str(tmp_path))
        trays.append(t)
        return t.start()
    yield make
    problems = []
    for t in trays:
        t.stop()
        problems += t.problems
        if _failed(request) or t.problems:
            print("\n----- im-tray log -----\n" + t.log_text())
    if problems:
        pytest.fail("im-tray: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def tray(host, imd, tray_factory):
    """im-tray with a watcher on the bus and imd running (not logged in)."""
    return tray_factory()


def wait_status(tray, expected, timeout=15):
    try:
        wait_until(lambda: tray.status() == expected, timeout, "Status " + expected)
    except AssertionError:
        raise AssertionError("Status is %r, expected %r; tooltip %r"
                             % (tray.status(), expected, tray.tooltip())) from None


def wait_tooltip(tray, title, text_part, timeout=15):
    """Until the tooltip's title is title (None: any) and its text holds text_part."""
    def check():
        _icon, t, text = tray.tooltip()
        return title in (None, t) and text_part in text
    try:
        wait_until(check, timeout, "tooltip %r / %r" % (title, text_part))
    except AssertionError:
        raise AssertionError("tooltip is %r, expected %r with %r"
                             % (tray.tooltip(), title, text_part)) from None


def unread_of(client, jid):
    for c in client.call("GetConversations"):
        if c["id"] == jid:
            return c["unread"]
    return None


def send_and_wait(client, peer, to, n, tag):
    """peer sends n messages to `to`; waits until imd counts them unread."""
    before = unread_of(client, peer.jid) or 0
    for i in range(n):
        peer.send_message(to, "%s %d" % (tag, i))
    wait_until(lambda: (unread_of(client, peer.jid) or 0) >= before + n, 20,
               "%d unread from %s" % (before + n, peer.jid))


def label(jid, unread=0):
    """A conversation's menu label: "_" doubled (dbusmenu mnemonics), the count."""
    text = jid.replace("_", "__")
    return "%s (%d)" % (text, unread) if unread else text


def menu_labels(tray):
    return [p.get("label") for _i, p in tray.items() if "label" in p]


def wait_menu_label(tray, text, timeout=15):
    """(id, props) of the menu item whose label contains text, once there is one."""
    try:
        return wait_until(lambda: tray.find_item(text), timeout, "menu item %r" % text)
    except AssertionError:
        raise AssertionError("no menu item %r; menu: %r" % (text, menu_labels(tray))) from None


# -- 1. the panel shows the item -----------------------------------------------------------

def test_item_listed_by_host(tray, host, client, alice):
    client.login_account(alice)
    # the host re-reads the icon on NewIcon: NetState may say "connecting" first
    app = wait_until(lambda: (host.application(tray.bus_name) or {}).get("icon") == "user-available"
                     and host.application(tray.bus_name), 15, "the host to list im-tray, online")
    assert app["title"] == "Instant messages"
    assert app["id"] == "im-tray"
    assert app["menu"] == "/MenuBar"
    assert tray.item.get_property("Category") == "Communications"
    assert tray.item.get_property("AttentionIconName") == "mail-unread"
    assert tray.item.get_property("Menu") == "/MenuBar"
    assert tray.bus_name in [i.split("/")[0] for i in host.registered_items()]


# -- 2. status and tooltip follow UnreadTotal ------------------------------------------------

def test_status_and_tooltip_follow_unread(tray, host, client, alice, peer, imctl):
    # logged out: Passive, the panel hides the item
    wait_status(tray, "Passive")
    wait_tooltip(tray, "No unread messages", "Not logged in")
    assert host.application(tray.bus_name) is None

    client.login_account(alice)
    wait_status(tray, "Active")
    wait_tooltip(tray, "No unread messages", alice.jid + ": connected")
    assert tray.tooltip()[0] == "user-available"

    mark = tray.item.mark()
    send_and_wait(client, peer, alice.jid, 3, "hello")
    wait_status(tray, "NeedsAttention")
    wait_tooltip(tray, "3 unread messages", alice.jid + ": connected")
    tray.item.wait_signal("NewStatus", lambda a: a[0] == "NeedsAttention", start=mark)
    tray.item.wait_signal("NewToolTip", start=mark)
    assert host.application(tray.bus_name) is not None

    mark = tray.item.mark()
    imctl.run("read", peer.jid, check=0)
    wait_status(tray, "Active")
    wait_tooltip(tray, "No unread messages", alice.jid + ": connected")
    tray.item.wait_signal("NewStatus", lambda a: a[0] == "Active", start=mark)

    mark = tray.item.mark()
    client.call("Logout")
    wait_status(tray, "Passive")
    wait_tooltip(tray, "No unread messages", "Not logged in")
    tray.item.wait_signal("NewStatus", lambda a: a[0] == "Passive", start=mark)
    tray.item.wait_signal("NewIcon", start=mark)
    assert tray.item.get_property("IconName") == "user-offline"
    wait_until(lambda: host.application(tray.bus_name) is None, 10, "the host to hide the item")


# -- 3. the menu ---------------------------------------------------------------------------------

def test_menu_lists_and_marks_read(tray, client, alice, peer_factory):
    client.login_account(alice)
    # carol's JID has a "_": the menu must not turn it into a mnemonic
    bob, carol = peer_factory("bob"), peer_factory("carol_")
    revision = tray.layout()[0]
    mark = tray.menu.mark()
    send_and_wait(client, bob, alice.jid, 2, "from bob")
    send_and_wait(client, carol, alice.jid, 1, "from carol")
    wait_menu_label(tray, label(bob.jid, 2))
    wait_menu_label(tray, label(carol.jid, 1))
    # items came: the layout changed, with a new revision
    sig = tray.menu.wait_signal("LayoutUpdated", start=mark)
    assert sig.args[0] > revision and sig.args[1] == 0
    assert tray.layout()[0] >= sig.args[0]

    # what libdbusmenu's own client sees
    root = tray.dump_menu()
    entries = root["submenu"]
    labels = [e.get("label") for e in entries]
    assert label(bob.jid, 2) in labels and label(carol.jid, 1) in labels, labels
    mark_all = next(e for e in entries if e.get("label") == "Mark all read")
    assert mark_all.get("enabled", True) is True
    state = next(e for e in entries if e.get("label") == alice.jid + ": connected")
    assert state.get("enabled") is False
    assert any(e.get("type") == "separator" for e in entries)

    # clicking bob's conversation marks it read in imd, and only it
    bob_id, _ = tray.find_item(label(bob.jid, 2))
    mark = tray.menu.mark()
    tray.click(bob_id)
    wait_until(lambda: unread_of(client, bob.jid) == 0, 15, "bob's conversation read")
    assert unread_of(client, carol.jid) == 1
    wait_until(lambda: dict(tray.items()).get(bob_id, {}).get("label") == label(bob.jid), 15,
               "bob's item without a count")
    tray.menu.wait_signal("ItemsPropertiesUpdated",
                          lambda a: any(i == bob_id and p.get("label") == label(bob.jid) for i, p in a[0]),
                          start=mark)
    assert tray.status() == "NeedsAttention"

    # Mark all read clears every conversation
    mark_id, props = tray.find_item("Mark all read")
    assert props["enabled"] is True
    tray.click(mark_id)
    wait_until(lambda: client.get_property("UnreadTotal") == 0, 15, "UnreadTotal 0")
    assert all(c["unread"] == 0 for c in client.call("GetConversations"))
    wait_status(tray, "Active")
    wait_until(lambda: tray.find_item("Mark all read")[1]["enabled"] is False, 15,
               "Mark all read disabled")
    assert set(menu_labels(tray)) >= {label(bob.jid), label(carol.jid)}

    # unknown ids and events are errors, not crashes; other events do nothing
    r = tray.click(424242, check=False)
    assert r.returncode != 0 and "424242" in r.stderr
    r = subprocess.run(["busctl", "--address=" + tray.bus.address, "call", tray.bus_name, "/MenuBar",
                        "com.canonical.dbusmenu", "EventGroup", "a(isvu)", "--", "2",
                        "-5", "clicked", "s", "", "0", str(mark_id), "hovered", "s", "", "0"],
                       capture_output=True, text=True, timeout=15)
    assert r.returncode == 0 and r.stdout.split() == ["ai", "1", "-5"], (r.stdout, r.stderr)
    r = subprocess.run(["busctl", "--address=" + tray.bus.address, "call", tray.bus_name, "/MenuBar",
                        "com.canonical.dbusmenu", "GetLayout", "iias", "--", "-7", "-1", "0"],
                       capture_output=True, text=True, timeout=15)
    assert r.returncode != 0
    assert tray.running
    assert tray.find_item(alice.jid + ": connected")


def test_bad_requests_are_errors(tray):
    """What a confused or hostile panel sends gets an error or nothing, never a crash."""
    menu, item = tray.menu, tray.item
    for method, sig, args in (("GetProperty", "is", (999, "label")),
                              ("GetProperty", "is", (1, "no-such-property")),
                              ("AboutToShow", "i", (-1,)),
                              ("GetLayout", "iias", (31337, 0, [])),
                              ("Event", "isvu", (77, "clicked", GLib.Variant("i", 1), 0)),
                              ("EventGroup", "a(isvu)", ([(77, "clicked", GLib.Variant("s", ""), 0)],))):
        with pytest.raises(DBusCallError) as e:
            menu.call(method, sig, args)
        assert e.value.name == "org.freedesktop.DBus.Error.InvalidArgs", (method, e.value)
    assert menu.call("AboutToShowGroup", "ai", ([0, 999, 1],)) == ([], [999])
    assert menu.call("GetGroupProperties", "aias", ([999], [])) == []
    assert menu.call("GetProperty", "is", (1, "label")) == "Mark all read"
    assert menu.call("Event", "isvu", (0, "opened", GLib.Variant("s", ""), 0)) is None
    assert menu.call("EventGroup", "a(isvu)", ([],)) == []
    for method, sig, args in (("Activate", "ii", (1, 2)), ("SecondaryActivate", "ii", (0, 0)),
                              ("ContextMenu", "ii", (-5, 7)), ("Scroll", "is", (3, "sideways"))):
        assert item.call(method, sig, args) is None
    assert tray.running and tray.status() == "Passive"
    assert menu.get_property("Version") == 3


# -- 4. the watcher goes away and comes back -------------------------------------------------------

def test_watcher_late_and_restarted(bus, imd, client, alice, peer, tray_factory, host_factory):
    client.login_account(alice)
    tray = tray_factory()               # no watcher yet: it waits
    wait_until(lambda: "waiting" in tray.log_text(), 10, "im-tray to wait for a watcher")
    host = host_factory()
    wait_until(lambda: host.application(tray.bus_name), 15, "the late host to list im-tray")

    host.kill()
    send_and_wait(client, peer, alice.jid, 1, "while the panel restarts")
    host.start()
    app = wait_until(lambda: host.application(tray.bus_name), 15, "the restarted host to list im-tray")
    assert app["title"] == "Instant messages"
    wait_status(tray, "NeedsAttention")
    wait_tooltip(tray, "1 unread message", alice.jid + ": connected")
    assert tray.running


# -- 5. imd goes away and comes back -------------------------------------------------------------

def test_imd_restart(tray, host, imd, client, alice, peer, imctl):
    client.login_account(alice)
    send_and_wait(client, peer, alice.jid, 2, "before the restart")
    wait_status(tray, "NeedsAttention")
    wait_menu_label(tray, label(peer.jid, 2))

    imd.kill()
    wait_status(tray, "Passive")
    wait_tooltip(tray, "No unread messages", "imd is not running")
    wait_menu_label(tray, "imd is not running")
    assert tray.find_item("No conversations")
    assert tray.find_item("Mark all read")[1]["enabled"] is False
    wait_until(lambda: host.application(tray.bus_name) is None, 10, "the host to hide the item")

    imd.start()
    wait_tooltip(tray, None, "Not logged in")      # a new imd, no session yet
    client.login_account(alice)
    wait_status(tray, "NeedsAttention")
    wait_tooltip(tray, "2 unread messages", alice.jid + ": connected")
    wait_menu_label(tray, label(peer.jid, 2))
    wait_until(lambda: host.application(tray.bus_name), 15, "the host to show im-tray again")

    send_and_wait(client, peer, alice.jid, 1, "after the restart")
    wait_tooltip(tray, "3 unread messages", "connected")
    item_id, _ = wait_menu_label(tray, label(peer.jid, 3))
    tray.click(item_id)                  # the new imd gets the MarkRead
    wait_status(tray, "Active")
    assert unread_of(client, peer.jid) == 0
    assert tray.running


# -- 5b. signals from anyone but imd, and a network drop --------------------------------------------

@pytest.fixture
def rogue(bus):
    r = Rogue(bus)
    yield r
    r.close()


def new_status_since(tray, mark):
    tray.item.pump()
    return [s.args[0] for s in tray.item.signals[mark:] if s.member == "NewStatus"]


def test_signals_from_others_are_ignored(tray, host, client, alice, peer, rogue):
    """Anyone may send a signal straight to the tray's connection, claiming
    to be imd or the bus: conversations, properties, imd leaving. Only imd's
    own connection speaks for imd, and only the bus says who that is."""
    client.login_account(alice)
    send_and_wait(client, peer, alice.jid, 1, "real")
    wait_menu_label(tray, label(peer.jid, 1))
    wait_status(tray, "NeedsAttention")
    target = client.name_owner(tray.bus_name)
    v = GLib.Variant

    # imd's signals, from the rogue: newer conversations than any (unread 0,
    # so that the sum of unread counts would not make the tray read them again)
    mark = tray.item.mark()
    forged = [{"id": v("s", "mallory%d@evil.example" % i), "name": v("s", "Mallory %d" % i),
               "unread": v("u", 0), "time": v("x", 2 ** 62 - i)} for i in range(50)]
    rogue.send(target, IM_PATH, IM_IFACE, "ConversationsChanged", "aa{sv}", forged)
    rogue.send(target, IM_PATH, "org.freedesktop.DBus.Properties", "PropertiesChanged", "sa{sv}as",
               IM_IFACE, {"NetState": v("s", "connecting")}, [])
    rogue.sync(target)
    # a real change after them: by the time it shows, so would they
    send_and_wait(client, peer, alice.jid, 1, "real again")
    wait_menu_label(tray, label(peer.jid, 2))
    wait_tooltip(tray, "2 unread messages", alice.jid + ": connected")
    assert not [l for l in menu_labels(tray) if "allory" in l], menu_labels(tray)
    assert tray.item.get_property("IconName") == "user-available"

    # "imd left the bus", says the rogue (and then: "the rogue is imd")
    imd_unique = client.name_owner(IM_NAME)
    rogue.name_owner_changed(target, IM_NAME, imd_unique, "")
    rogue.sync(target)
    rogue.name_owner_changed(target, IM_NAME, "", rogue.unique_name)
    rogue.send(target, IM_PATH, IM_IFACE, "ConversationsChanged", "aa{sv}", forged)
    rogue.sync(target)
    # the watcher changed hands, says the rogue: nothing to register again
    rogue.name_owner_changed(target, "org.kde.StatusNotifierWatcher", "", rogue.unique_name)
    rogue.sync(target)
    send_and_wait(client, peer, alice.jid, 1, "and again")
    wait_menu_label(tray, label(peer.jid, 3))
    wait_tooltip(tray, "3 unread messages", alice.jid + ": connected")
    assert not [l for l in menu_labels(tray) if "allory" in l], menu_labels(tray)
    assert new_status_since(tray, mark) == [], "the status changed meanwhile"
    assert "imd left the bus" not in tray.log_text()
    assert rogue.calls == [], "im-tray called the rogue: %r" % rogue.calls
    assert tray.log_text().count("registered with the StatusNotifierWatcher") == 1, tray.log_text()
    assert tray.running


def test_stays_shown_while_reconnecting(host, fast_imd, fclient, private_prosody, tray_factory):
    """A network drop is no logout: while imd reconnects (Ready false,
    NetState "connecting") the item stays shown with its unread count, icon
    user-away; once the server is back it is connected again."""
    p = private_prosody
    jid, pw = p.new_account("alice")
    fclient.login(jid, pw, p.ws_url)
    tray = tray_factory()
    bob_jid, bob_pw = p.new_account("bob")
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    try:
        bob.send_message(jid, "before the drop 1")
        bob.send_message(jid, "before the drop 2")
        wait_until(lambda: fclient.get_property("UnreadTotal") == 2, 20, "2 unread")
    finally:
        bob.stop()
    wait_status(tray, "NeedsAttention")
    wait_tooltip(tray, "2 unread messages", jid + ": connected")
    assert tray.item.get_property("IconName") == "user-available"

    mark = tray.item.mark()
    start = fclient.mark()
    p.stop()
    try:
        fclient.wait_property("NetState", lambda s: s == "connecting", start=start, timeout=15)
        wait_tooltip(tray, "2 unread messages", jid + ": connecting")
        assert fclient.get_property("Ready") is False
        assert tray.status() == "NeedsAttention"
        assert tray.item.get_property("IconName") == "user-away"
        assert host.application(tray.bus_name) is not None, "the host hid the item"
    finally:
        p.start()
    fclient.wait_property("Ready", lambda r: r is True, start=start, timeout=30)
    wait_tooltip(tray, "2 unread messages", jid + ": connected")
    wait_until(lambda: tray.item.get_property("IconName") == "user-available", 15, "icon user-available")
    assert tray.status() == "NeedsAttention"
    assert "Passive" not in new_status_since(tray, mark)


# -- before imd, and after the bus ------------------------------------------------------------------

def test_starts_before_imd_and_exits_with_the_bus(bus, host, tray_factory, tmp_path, alice):
    tray = tray_factory()
    wait_status(tray, "Passive")
    wait_tooltip(tray, "No unread messages", "imd is not running")
    wait_menu_label(tray, "imd is not running")

    d = Imd(bus, str(tmp_path / "late-imd"))
    try:
        d.start()
        wait_tooltip(tray, "No unread messages", "Not logged in")
        wait_menu_label(tray, "Not logged in")
        c = bus.client()
        try:
            c.login_account(alice)
        finally:
            c.close()
        wait_status(tray, "Active")
        wait_until(lambda: host.application(tray.bus_name), 15, "the host to list im-tray")

        bus.kill()
        rc = tray.wait_exit(15)
        assert rc is not None, "im-tray outlived its bus"
        assert rc == 0, "im-tray exit status %s when the bus went away\n%s" % (rc, tray.log_text())
    finally:
        d.wait_exit(15)
        d.stop()
    assert not d.problems, d.problems


# -- 6. the man page and the command line ----------------------------------------------------------

def test_man_page_has_no_warnings():
    r = subprocess.run(["groff", "-man", "-ww", "-z", MAN_PAGE], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    if shutil.which("man"):
        r = subprocess.run(["man", "--warnings", "-l", MAN_PAGE], capture_output=True, text=True,
                           timeout=30, env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert "StatusNotifierItem" in r.stdout


def test_help_version_and_usage_errors():
    exe = im_tray_path()
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("im-tray ")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "Usage: im-tray" in r.stdout
    r = subprocess.run([exe, "--no-such-option"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--help" in r.stderr


def test_user_unit():
    """The configured systemd user unit: starts with the graphical session,
    after imd, restarts on failure; systemd accepts it."""
    exe = im_tray_path()
    unit = os.path.join(os.path.dirname(exe), "im-tray.service")
    with open(unit) as f:
        text = f.read()
    lines = set(text.splitlines())
    assert "PartOf=graphical-session.target" in lines
    assert "After=graphical-session.target imd.service" in lines
    assert "WantedBy=graphical-session.target" in lines
    assert "Restart=on-failure" in lines
    execs = [l for l in lines if l.startswith("ExecStart=")]
    assert len(execs) == 1 and execs[0].endswith("/bin/im-tray"), execs
    if shutil.which("systemd-analyze"):
        # verify a copy that runs the built binary (the installed path need not exist)
        d = tempfile.mkdtemp(prefix="im-tray-unit-")
        try:
            os.chmod(d, 0o700)
            copy = os.path.join(d, "im-tray.service")
            with open(copy, "w") as f:
                f.write(text.replace(execs[0], "ExecStart=" + exe))
            r = subprocess.run(["systemd-analyze", "--user", "--man=no", "verify", copy],
                               capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, XDG_RUNTIME_DIR=d), cwd=d)
            assert r.returncode == 0 and "im-tray.service" not in r.stderr, r.stderr
        finally:
            shutil.rmtree(d, ignore_errors=True)


def test_mark_all_read_with_hundreds_of_conversations(bus, host, tray_factory):
    """Mark all read sends its MarkRead calls a few at a time: 300 at once
    would pass the bus's cap on replies a connection may wait for (128 on
    this bus), and the rest would fail. Against a stand-in imd that answers
    slowly, every conversation gets its MarkRead, each once."""
    import time

    from harness.notify import FakeImd

    fake = FakeImd(bus)
    fake.conversations = [{"id": "c%03d@example.org" % i, "kind": "chat", "name": "", "unread": 1,
                           "time": 1000 + i} for i in range(300)]
    fake.props["UnreadTotal"] = GLib.Variant("u", 300)

    def slow(_fake):
        time.sleep(0.002)
    fake.hooks["MarkRead"] = slow
    fake.start()
    try:
        tray = tray_factory()
        wait_until(lambda: tray.find_item("c299@example.org (1)"), 15, "the conversations listed")
        mark_id, props = tray.find_item("Mark all read")
        assert props["enabled"]
        tray.click(mark_id)
        def n_marked():
            return len([c for c in fake.calls if c[0] == "MarkRead"])
        try:
            wait_until(lambda: n_marked() >= 300, 10, "300 MarkRead calls")
        except AssertionError:
            raise AssertionError("%d MarkRead calls; log: %s" % (n_marked(), tray.log_text())) from None
        time.sleep(0.3)         # nothing more should come
        marked = [c[1][0] for c in fake.calls if c[0] == "MarkRead"]
        assert sorted(marked) == sorted(c["id"] for c in fake.conversations)
        assert "cannot mark" not in tray.log_text(), tray.log_text()
    finally:
        fake.stop()
