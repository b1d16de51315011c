"""The daemon process: its D-Bus interface matches dbus/org.example.IM.xml,
it owns org.example.IM alone, it exits when its bus goes away."""

import os
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from harness.bus import IM_IFACE, IM_NAME, IM_PATH, Bus, DBusCallError
from harness.imd import Imd, imd_path
from harness.util import REPO, sanitizer_report

XML_PATH = os.path.join(REPO, "dbus", "org.example.IM.xml")


def parse_interface(xml_text, name=IM_IFACE):
    """{methods: {name: [(arg, type, direction)]}, signals: {name: [(arg, type)]},
    properties: {name: (type, access)}} of one interface, annotations ignored."""
    root = ET.fromstring(xml_text)
    ifaces = [i for i in root.findall("interface") if i.get("name") == name]
    assert len(ifaces) == 1, "interface %s found %d times" % (name, len(ifaces))
    iface = ifaces[0]
    methods, signals, props = {}, {}, {}
    for m in iface.findall("method"):
        assert m.get("name") not in methods
        methods[m.get("name")] = [(a.get("name"), a.get("type"), a.get("direction", "in"))
                                  for a in m.findall("arg")]
    for s in iface.findall("signal"):
        assert s.get("name") not in signals
        signals[s.get("name")] = [(a.get("name"), a.get("type")) for a in s.findall("arg")]
    for p in iface.findall("property"):
        props[p.get("name")] = (p.get("type"), p.get("access"))
    return {"methods": methods, "signals": signals, "properties": props}


def test_introspection_matches_xml(client):
    with open(XML_PATH) as f:
        want = parse_interface(f.read())
    xml = client.introspect()
    got = parse_interface(xml)
    assert sorted(got["methods"]) == sorted(want["methods"])
    for name, args in want["methods"].items():
        assert got["methods"][name] == args, "method %s" % name
    assert sorted(got["signals"]) == sorted(want["signals"])
    for name, args in want["signals"].items():
        assert got["signals"][name] == args, "signal %s" % name
    assert got["properties"] == want["properties"]
    # and the standard interfaces are there
    root = ET.fromstring(xml)
    names = {i.get("name") for i in root.findall("interface")}
    assert {"org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable"} <= names


def test_properties_readable(client):
    with open(XML_PATH) as f:
        want = parse_interface(f.read())
    props = client.get_all_properties()
    assert set(props) == set(want["properties"])
    for name in want["properties"]:
        assert client.get_property(name) == props[name]


def test_unknown_method_and_wrong_signature(client):
    from harness.bus import DBusCallError
    with pytest.raises(DBusCallError) as ei:
        client.call("NoSuchMethod")
    assert ei.value.name == "org.freedesktop.DBus.Error.UnknownMethod"
    with pytest.raises(DBusCallError) as ei:
        client.call("SendText", "s", ("bob@localhost",))
    assert ei.value.name in ("org.freedesktop.DBus.Error.InvalidArgs",
                             "org.example.IM.Error.InvalidArgument")
    # the daemon is still there
    assert client.get_property("Ready") is False


def test_a_refused_second_instance_leaves_the_files_alone(bus, imd, client, logged_in, tmp_path):
    """A second imd on the same directories is refused the bus name; until
    then it must not take what the running one is writing (a download's or
    a copy's partial file, a whole copy not in the history yet) for what a
    crash left behind."""
    outbox = os.path.join(imd.data_dir, logged_in.jid, "outbox")
    media = os.path.join(imd.cache_dir, "media")
    os.makedirs(outbox, exist_ok=True)
    os.makedirs(media, exist_ok=True)
    planted = [os.path.join(media, ".part-0123456789abcdef"), os.path.join(outbox, "copy-in-flight.part"),
               os.path.join(outbox, "copy-in-flight")]
    for path in planted:
        with open(path, "wb") as f:
            f.write(b"being written by the running imd")
    second = Imd(bus, str(tmp_path / "second"))
    second.data_dir, second.cache_dir = imd.data_dir, imd.cache_dir
    second.start(wait=False)
    rc = second.wait_exit(timeout=15)
    assert rc is not None and rc != 0, "the second imd was not refused"
    assert [p for p in planted if not os.path.exists(p)] == []
    assert imd.running


def test_data_directory_through_a_symlink(bus, tmp_path, alice, peer):
    """A data directory reached through a symlink (/home -> /var/home on some
    systems) holds the history like any other (SQLite refuses a symlink
    anywhere in a database's path: imd opened no history at all)."""
    real = tmp_path / "var-home"
    real.mkdir()
    os.symlink(real, tmp_path / "home")
    d = Imd(bus, str(tmp_path / "imd"))
    d.data_dir = str(tmp_path / "home" / "data")
    d.start()
    client = bus.client()
    try:
        client.login_account(alice)
        start = client.mark()
        peer.send_message(alice.jid, "through the link")
        client.wait_signal("MessageReceived", lambda a: a[0]["text"] == "through the link", start=start)
        assert os.path.exists(real / "data" / alice.jid)
    finally:
        client.close()
        d.stop()
    assert not d.problems, d.problems


def test_an_unreadable_setting_is_named(bus, tmp_path):
    """A value imd.conf gives that cannot be read (GKeyFile takes only whole
    lines as comments, so a comment after a number is part of it) is
    ignored with a warning naming it, not in silence."""
    d = Imd(bus, str(tmp_path / "imd"))
    conf = os.path.join(d.workdir, "xdg-config", "imd")
    os.makedirs(conf)
    with open(os.path.join(conf, "imd.conf"), "w") as f:
        f.write("[connection]\nping_interval=30   # seconds\n[media]\nmax_outbox=lots\n"
                "[voice]\nbitrate=fast\n")
    d.start()
    d.stop()
    text = d.stderr_text()
    for key in ("ping_interval", "max_outbox", "bitrate"):
        assert re.search(r"WARNING.*imd\.conf: %s: .*; ignored" % key, text), (key, text)
    assert not d.problems, d.problems


def test_second_instance_refused(bus, imd, client, tmp_path):
    owner = client.name_owner()
    second = Imd(bus, str(tmp_path / "second"))
    second.start(wait=False)
    rc = second.wait_exit(timeout=15)
    assert rc is not None, "the second imd did not exit"
    assert rc != 0
    err = second.stderr_text()
    assert err.strip(), "the second imd exited without a message"
    assert sanitizer_report(err) is None, err
    assert not second.problems, second.problems
    # the first one is unaffected
    assert imd.running
    assert client.name_owner() == owner
    assert client.get_property("NetState") == "disconnected"


def test_exits_when_bus_goes_away(bus, imd):
    bus.kill()
    rc = imd.wait_exit(timeout=15)
    assert rc is not None, "imd outlived its bus"
    assert rc == 0, "imd exit status %s when the bus went away\n%s" % (rc, imd.stderr_text())


def test_exits_when_bus_goes_away_while_logged_in(bus, imd, client, alice):
    client.login_account(alice)
    bus.kill()
    rc = imd.wait_exit(timeout=15)
    assert rc is not None, "imd outlived its bus"
    assert rc == 0, imd.stderr_text()


def test_exits_with_failure_when_the_bus_drops_it(tmp_path):
    """The bus goes on but drops imd's connection (here: imd sends a message
    over the bus's max_message_size, its introspection): imd exits with
    status 1, for Restart=on-failure (it exited 0, as when its bus ends,
    and was not started again)."""
    bus = Bus(str(tmp_path), limits={"max_message_size": 4096}).start()
    imd = Imd(bus, str(tmp_path / "imd")).start()
    client = bus.client()
    try:
        try:
            client.introspect()
        except Exception:           # noqa: BLE001 (imd is gone: no answer)
            pass
        rc = imd.wait_exit(timeout=15)
        assert rc is not None, "imd stayed without a bus connection"
        assert rc == 1, "imd exit status %s when the bus dropped it\n%s" % (rc, imd.stderr_text())
        assert bus.running
        assert "closed imd's connection" in imd.stderr_text(), imd.stderr_text()
    finally:
        client.close()
        imd.stop()
        bus.stop()
    assert not imd.problems, imd.problems


def test_exits_with_failure_when_its_bus_connection_fails(bus, imd, client, alice, prosody, tmp_path):
    """sd-bus fails on imd's side: imd is out of file descriptors when a
    call passes one (its limit lowered to what it holds and two more; the
    first SendFile keeps two while the upload service does not answer, the
    second cannot be received). imd exits with status 1 (it exited 0)."""
    client.login_account(alice)
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    fd = os.open(str(path), os.O_RDONLY | os.O_CLOEXEC)
    prosody.pause()
    try:
        held = len(os.listdir("/proc/%d/fd" % imd.pid))
        subprocess.run(["prlimit", "--pid", str(imd.pid), "--nofile=%d:%d" % (held + 2, held + 2)],
                       check=True)
        calls = [client.call_async_with_fds("SendFile", "sha{sv}", ("bob@localhost", 0, {}), [fd],
                                            timeout=30) for _ in range(2)]
        rc = imd.wait_exit(timeout=15)
    finally:
        prosody.resume()
        os.close(fd)
    for c in calls:
        with pytest.raises(DBusCallError):
            c.result(15)
    assert rc is not None, "imd is still running\n" + imd.stderr_text()
    assert rc == 1, "imd exit status %s when its bus connection failed\n%s" % (rc, imd.stderr_text())
    assert "D-Bus connection failed" in imd.stderr_text(), imd.stderr_text()


def test_raises_its_soft_fd_limit(bus, tmp_path):
    """imd starts with its soft limit on file descriptors raised to the hard
    one: a default soft limit of 1024 does not bound the SendFile calls,
    transfers and database files it holds (libwebsockets' own table stays
    sized for 64)."""
    imd = Imd(bus, str(tmp_path / "imd"), prefix=("prlimit", "--nofile=256:4096", "--")).start()
    try:
        with open("/proc/%d/limits" % imd.pid) as f:
            line = [x for x in f if x.startswith("Max open files")][0]
        assert line.split()[3:5] == ["4096", "4096"], line
    finally:
        imd.stop()
    assert not imd.problems, imd.problems


def test_sigterm_is_clean(imd, client, alice):
    client.login_account(alice)
    rc = imd.stop()
    assert rc in (0, -15), rc
    assert not imd.problems, imd.problems


def test_xdg_default_dirs(bus, tmp_path, client_factory, new_account, peer):
    """Without --data-dir/--cache-dir, imd uses $XDG_DATA_HOME/imd (and keeps
    its history there across restarts)."""
    d = Imd(bus, str(tmp_path / "xdg"), dirs=False)
    d.start()
    try:
        c = client_factory()
        acc = new_account("alice")
        c.login_account(acc)
        start = c.mark()
        peer.send_message(acc.jid, "xdg")
        c.wait_signal("MessageReceived", lambda a: a[0].get("text") == "xdg", start=start)
        data = os.path.join(d.workdir, "xdg-data", "imd")
        assert os.path.isdir(data) and os.listdir(data), "nothing under $XDG_DATA_HOME/imd"
        assert os.listdir(d.data_dir) == [], "--data-dir was not given, yet it was used"
        d.restart()
        c.login_account(acc)
        msgs, _ = c.call("GetMessages", "ssu", (peer.jid, "", 10))
        assert [m["text"] for m in msgs] == ["xdg"]
    finally:
        d.stop()
    assert not d.problems, d.problems + [d.stderr_text(all_runs=True)]


def test_no_session_bus(tmp_path):
    """Without a reachable bus imd fails with a message instead of hanging."""
    env = dict(os.environ)
    env["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=%s/no-such-socket" % tmp_path
    r = subprocess.run([imd_path(), "--data-dir", str(tmp_path / "d"),
                        "--cache-dir", str(tmp_path / "c")],
                       env=env, capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert r.stderr.strip()
    assert sanitizer_report(r.stderr) is None, r.stderr


def test_dbus_activation_starts_imd(bus, tmp_path):
    """The activation file meson installs starts imd on the first call."""
    from harness.imd import build_dir
    built = os.path.join(build_dir(), "dbus", "org.example.IM.service")
    with open(built) as f:
        lines = f.read().splitlines()
    assert "[D-BUS Service]" in lines
    assert "Name=org.example.IM" in lines
    assert "SystemdService=imd.service" in lines
    assert any(l.startswith("Exec=") and l.endswith("/imd") for l in lines), lines
    # the installed Exec= path does not exist here: point it at the build
    exec_line = "Exec=%s --data-dir %s --cache-dir %s" % (imd_path(), tmp_path / "data",
                                                          tmp_path / "cache")
    with open(os.path.join(bus.servicedir, "org.example.IM.service"), "w") as f:
        f.write("\n".join(exec_line if l.startswith("Exec=") else l for l in lines) + "\n")
    subprocess.run(["dbus-send", "--address=" + bus.address, "--type=method_call",
                    "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.ReloadConfig"], check=True, timeout=10)

    client = bus.client()
    try:
        assert not client.name_has_owner()
        # an ordinary call (auto-start allowed, as every client makes it)
        from gi.repository import Gio
        res = client.conn.call_sync(IM_NAME, IM_PATH, IM_IFACE, "GetConversations", None, None,
                                    Gio.DBusCallFlags.NONE, 20000, None)
        assert res.unpack() == ([],)
        pid = client.call_bus("GetConnectionUnixProcessID", "s", (client.name_owner(),))
        assert os.readlink("/proc/%d/exe" % pid) == os.path.realpath(imd_path())
    finally:
        client.close()
    os.kill(pid, 15)
    for _ in range(100):
        if not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z":
            break
        time.sleep(0.1)


def test_watchdog_pings_systemd(bus, tmp_path):
    """Under WatchdogSec= (the units), imd tells systemd its loop runs: a
    WATCHDOG=1 notification twice per period on $NOTIFY_SOCKET."""
    import socket

    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    imd = Imd(bus, str(tmp_path / "imd"),
              extra_env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000", "WATCHDOG_PID": None})
    try:
        imd.start()
        t0 = time.monotonic()
        got = [sock.recv(4096).decode() for _ in range(3)]
        elapsed = time.monotonic() - t0
        assert all("WATCHDOG=1" in g for g in got), got
        assert elapsed < 1.5, elapsed       # every 0.2 s, not once in a while
    finally:
        imd.stop()
        sock.close()
    assert not imd.problems, imd.problems
