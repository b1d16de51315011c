"""imctl, complete: every subcommand's --json parses (one document; NDJSON for
monitor, events and chat), each exit code occurs, colour only on a terminal
and never with NO_COLOR, the bash completion, and lint-clean man pages for
imctl(1) and imd(8). Real imd, real Prosody (with its uploads behind a proxy,
so that an upload can fail and be resent), real slixmpp peer, real PipeWire
graph for `record`.

Exit codes (imctl(1), EXIT STATUS): 0 ok, 1 other failure, 2 usage,
3 imd not running / no bus, 4 NotFound, 5 InvalidArgument, 6 timeout.
"""

import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from gi.repository import GLib

from conftest import Imctl, proxied_prosody
from harness.bus import IM_IFACE, IM_NAME, IM_PATH
from harness.imd import build_dir, imd_path
from harness.notify import FakeImd, Rogue, unique_name_of
from harness.proc import LineReader
from harness.util import REPO, die_with_parent, sanitizer_report, stop_process
from test_imctl import stop_child, wait_in

MAN_IMCTL = os.path.join(REPO, "clients", "imctl", "imctl.1")
MAN_IMD = os.path.join(REPO, "service", "imd.8")
COMPLETION = os.path.join(REPO, "clients", "imctl", "imctl.bash")
ESC = "\x1b["


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def prosody(upload_prosody, request):
    """Overrides conftest's: this module's Prosody, whose uploads go through a
    proxy (to make one fail for `resend`), forwarding again for every test."""
    yield from proxied_prosody(upload_prosody, request)


@pytest.fixture
def imd_env(request):
    """conftest's imd records from the PipeWire graph, for the tests that ask for one."""
    if "pipewire" in request.fixturenames:
        return request.getfixturevalue("pipewire").env()
    return {}


@pytest.fixture
def stopped_imd(imd):
    """imd, SIGSTOPped: on the bus, answering nothing. SIGCONT afterwards."""
    os.kill(imd.pid, signal.SIGSTOP)
    try:
        yield imd
    finally:
        os.kill(imd.pid, signal.SIGCONT)


# -- helpers --------------------------------------------------------------------------------

def jrun(imctl, *args, check=0, **kw):
    """imctl --json ARGS: exactly one JSON document on stdout."""
    r = imctl.run("--json", *args, check=check, **kw)
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        raise AssertionError("imctl --json %s printed no single JSON document: %r (%s)"
                             % (" ".join(args), r.stdout, e))


def ndjson(text, what):
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise AssertionError("%s: a line that is not JSON: %r (%s)" % (what, line, e))
        assert isinstance(obj, dict), (what, line)
        out.append(obj)
    return out


def run_pty(imctl, *args, env=None, stderr_pty=False, timeout=20):
    """imctl with stdout (and stderr if asked) on a pseudo-terminal; returns
    (exit code, what the terminal got, stderr if it was a pipe)."""
    master, slave = os.openpty()
    full_env = dict(imctl.env(), TERM="xterm", **(env or {}))
    for k, v in list(full_env.items()):
        if v is None:
            del full_env[k]
    p = subprocess.Popen([imctl.path, *args], stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=slave if stderr_pty else subprocess.PIPE, env=full_env)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:         # EIO: every slave side is closed
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    rc = p.wait(timeout)
    os.close(master)
    err = "" if stderr_pty else p.stderr.read().decode()
    if p.stderr:
        p.stderr.close()
    text = out.decode(errors="replace")
    assert sanitizer_report(text + err) is None, text + err
    return rc, text, err


def popen_lines(imctl, *args):
    p = imctl.popen(*args)
    return p, LineReader(p.stdout, "imctl " + " ".join(args)), LineReader(p.stderr, "stderr")


def finish(p, out, err, sig=signal.SIGINT):
    stop_child(p, sig)
    out.join()
    err.join()
    assert sanitizer_report(err.text()) is None, err.text()


# -- --json everywhere ------------------------------------------------------------------------

def test_json_of_every_subcommand(imctl, client, alice, peer, prosody, tmp_path):
    seen = set()

    def j(*args, **kw):
        seen.add(args[0])
        return jrun(imctl, *args, **kw)

    helped = j("help")
    commands = {c["name"] for c in helped["commands"]}
    assert {e["code"] for e in helped["exit_codes"]} == {0, 1, 2, 3, 4, 5, 6}
    assert all(e["name"] and e["meaning"] for e in helped["exit_codes"])
    assert json.loads(imctl.run("--json", "--help", check=0).stdout) == helped
    emoji = j("emoji", "--search", "thumbs_up")
    assert {"name": "thumbs_up", "emoji": "👍"} in emoji

    assert j("login", alice.jid, "--url", alice.ws_url, input=alice.password + "\n") == {"ok": True}
    st = j("status")
    assert st["account"] == alice.jid and st["net_state"] == "connected" and st["ready"] is True, st
    assert st["recording"] is False and isinstance(st["last_event"], int), st
    assert j("get", "Ready") == {"Ready": True}
    assert j("get", "net_state") == {"NetState": "connected"}
    assert imctl.run("get", "Account", check=0).stdout == alice.jid + "\n"
    assert imctl.run("get", "Ready", check=0).stdout == "true\n"

    start = client.mark()
    peer.send_message(alice.jid, "hello json ☕")
    incoming = wait_in(client, "hello json ☕", start)
    convs = j("list")
    assert [c["id"] for c in convs] == [peer.jid], convs
    hist = j("history", peer.jid)
    assert hist["messages"][0]["id"] == incoming["id"] and isinstance(hist["complete"], bool)
    assert [m["id"] for m in j("search", "json")] == [incoming["id"]]
    assert j("read", peer.jid) == {"ok": True}
    assert j("typing", peer.jid, "on") == {"ok": True}

    mid = j("send", peer.jid, "first draft")["id"]
    peer.wait_for_body("first draft")
    assert j("edit", peer.jid, mid, "final text") == {"ok": True}
    assert j("react", peer.jid, mid, ":thumbs_up:") == {"ok": True}
    assert j("revoke", peer.jid, mid) == {"ok": True}
    cid = j("send-custom", peer.jid, '{"card": 1}', "--description", "a card")["id"]
    assert cid and cid != mid

    path = tmp_path / "notes.txt"
    path.write_bytes(b"some notes\n" * 100)
    fid = j("send-file", peer.jid, str(path))["id"]
    peer.wait_for_message(lambda m: m["origin_id"] == fid, timeout=30)
    # an upload that fails (exit 1, still one document: the id), then resend
    prosody.upload_proxy.set(mode="refuse")
    r = imctl.run("--json", "send-file", peer.jid, str(path), check=1)
    failed = json.loads(r.stdout)["id"]
    prosody.upload_proxy.reset()
    seen.add("resend")
    assert jrun(imctl, "resend", peer.jid, failed) == {"ok": True}
    peer.wait_for_message(lambda m: m["origin_id"] == failed, timeout=30)

    # a file the peer sends: fetch says where imd put it
    url = peer.upload(b"peer bytes " * 50, "from peer.txt", "text/plain")
    rid = uuid.uuid4().hex
    start = client.mark()
    peer.send_raw("<message to='%s' type='chat' id='%s'><body>%s</body><x xmlns='jabber:x:oob'>"
                  "<url>%s</url></x><origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>"
                  % (alice.jid, rid, url, url, rid))
    client.wait_signal("MessageReceived", lambda a: a[0]["id"] == rid, start=start)
    fetched = j("fetch", peer.jid, rid)
    with open(fetched["path"], "rb") as f:
        assert f.read() == b"peer bytes " * 50

    # events: the method's own shape, oldest first, --since continues
    seen.add("events")
    r = imctl.run("--json", "events", check=0)
    events = ndjson(r.stdout, "events")
    assert events and all(set(e) == {"number", "signal", "args"} for e in events), events[:3]
    numbers = [e["number"] for e in events]
    assert numbers == sorted(set(numbers)) and all(isinstance(n, int) and n > 0 for n in numbers)
    received = [e for e in events if e["signal"] == "MessageReceived" and e["args"][0]["id"] == incoming["id"]]
    assert len(received) == 1, events
    later = ndjson(imctl.run("--json", "events", "--since", str(received[0]["number"]),
                             check=0).stdout, "events --since")
    assert [e["number"] for e in later] == [n for n in numbers if n > received[0]["number"]][:len(later)]
    assert later and later[0]["number"] > received[0]["number"]
    text = imctl.run("events", "--since", str(numbers[-2]), check=0).stdout.splitlines()
    assert text and text[-1].startswith("%d " % numbers[-1]), text

    # monitor --since 0: what imd kept first (the same numbers), then live events, NDJSON
    seen.add("monitor")
    p, out, err = popen_lines(imctl, "--json", "monitor", "--since", "0")
    try:
        _, line = out.wait_contains(incoming["id"])
        replayed = json.loads(line)
        assert replayed["number"] == received[0]["number"] and replayed["event"] == "MessageReceived"
        peer.send_message(alice.jid, "live one")
        _, line = out.wait_contains("live one")
        live = json.loads(line)
        assert live["event"] == "MessageReceived" and live["number"] > numbers[-1], live
        time.sleep(0.3)
        monitored = ndjson(out.text(), "monitor")
        # nothing twice: replayed events and live ones do not overlap
        kept = [m["number"] for m in monitored if m["event"] not in ("PropertiesChanged", "Typing")]
        assert len(kept) == len(set(kept)), kept
        assert all(isinstance(m.get("number"), int) for m in monitored)
    finally:
        finish(p, out, err)

    # chat: every message one JSON object per line
    seen.add("chat")
    r = imctl.run("--json", "chat", peer.jid, input="said in chat\n", check=0)
    lines = ndjson(r.stdout, "chat")
    assert any(m.get("text") == "said in chat" and m["direction"] == "out" for m in lines), lines
    assert any(m.get("id") == incoming["id"] for m in lines)

    assert j("logout") == {"ok": True}
    assert j("status")["ready"] is False
    # record: test_record_json; everything else here
    assert commands - seen == {"record"}, commands - seen


def test_record_json(imctl, client, logged_in, peer, pipewire):
    pipewire.play_speech(seconds=5)
    pipewire.wait_playing()
    try:
        r = jrun(imctl, "record", peer.jid, "--duration", "1.5")
        peer.wait_for_message(lambda m: m["origin_id"] == r["id"], timeout=30)
    finally:
        pipewire.stop_playing()
    assert set(r) == {"id"}


# -- exit codes --------------------------------------------------------------------------------

def test_exit_codes(imctl, logged_in, peer):
    assert imctl.run("status", check=0).stderr == ""
    # 2: imctl's own command line; nothing reaches imd
    for args in (["frobnicate"], ["send", peer.jid], ["events", "--since", "-1"],
                 ["--color=sometimes", "status"], ["get"]):
        r = imctl.run(*args, check=2)
        assert r.stdout == "" and r.stderr.strip(), args
    # 4: NotFound
    for args in (["revoke", peer.jid, "no-such-id"], ["history", peer.jid, "--before", "no-such-id"],
                 ["read", "nobody-here@localhost"], ["get", "NoSuchProperty"]):
        r = imctl.run("--json", *args, check=4)
        assert r.stdout == "" and r.stderr.strip(), args
    # 5: InvalidArgument, imd's verdict (imctl does not check JIDs itself)
    for args in (["send", "not a jid", "x"], ["typing", "not a jid", "on"],
                 ["send-custom", peer.jid, "{oops"]):
        r = imctl.run(*args, check=5)
        assert "InvalidArgument" in r.stderr, (args, r.stderr)
    # 1: any other daemon error (Busy, NotAllowed)
    r = imctl.run("login", logged_in.jid, "--url", logged_in.ws_url, input=logged_in.password + "\n",
                  check=1)
    assert "Busy" in r.stderr, r.stderr
    mid = imctl.run("send", peer.jid, "hi", check=0).stdout.strip()
    r = imctl.run("resend", peer.jid, mid, check=1)
    assert "NotAllowed" in r.stderr, r.stderr


def test_exit_code_not_logged_in_is_1(imctl, peer):
    r = imctl.run("send", peer.jid, "hello", check=1)
    assert "NotLoggedIn" in r.stderr, r.stderr


def test_exit_code_timeout(imctl, stopped_imd):
    t0 = time.monotonic()
    r = imctl.run("--timeout", "0.5", "status", check=6)
    assert time.monotonic() - t0 < 10
    assert r.stdout == "" and r.stderr.strip()
    imctl.run("--timeout", "0.3", "--json", "events", check=6)


def test_exit_code_no_daemon(bus, tmp_path):
    imctl = Imctl(bus)          # a bus, but no imd on it (and none activatable)
    for args in (["status"], ["list"], ["--json", "send", "bob@localhost", "x"], ["monitor"],
                 ["events"], ["get", "Ready"]):
        r = imctl.run(*args, check=3)
        assert r.stdout == "" and "not running" in r.stderr, (args, r.stderr)
    # no bus at all
    r = imctl.run("status", env={"DBUS_SESSION_BUS_ADDRESS": "unix:path=%s/no-such-bus" % tmp_path},
                  check=3)
    assert "bus" in r.stderr, r.stderr
    # usage errors come first, without a daemon too
    imctl.run("history", check=2)


# -- colour ------------------------------------------------------------------------------------

def test_colour_only_on_a_terminal_and_never_with_no_color(imctl, logged_in, peer, client):
    start = client.mark()
    peer.send_message(logged_in.jid, "colourful")
    wait_in(client, "colourful", start)
    plain_env = {"NO_COLOR": None}

    for args in (["status"], ["list"], ["history", peer.jid]):
        rc, tty, _ = run_pty(imctl, *args, env=plain_env)
        assert rc == 0 and ESC in tty, (args, tty)
        # NO_COLOR, any non-empty value
        rc, tty, _ = run_pty(imctl, *args, env={"NO_COLOR": "1"})
        assert rc == 0 and ESC not in tty and tty.strip(), (args, tty)
        # an empty NO_COLOR does not count (no-color.org)
        rc, tty, _ = run_pty(imctl, *args, env={"NO_COLOR": ""})
        assert ESC in tty, (args, tty)
        rc, tty, _ = run_pty(imctl, "--color=never", *args, env=plain_env)
        assert ESC not in tty, (args, tty)
        # a pipe: never, unless asked for
        r = imctl.run(*args, check=0, env={"NO_COLOR": ""})
        assert ESC not in r.stdout and r.stdout.strip(), (args, r.stdout)
        r = imctl.run("--color=always", *args, check=0, env={"NO_COLOR": ""})
        assert ESC in r.stdout, (args, r.stdout)
        # NO_COLOR wins even over --color=always
        rc, tty, _ = run_pty(imctl, "--color=always", *args, env={"NO_COLOR": "1"})
        assert ESC not in tty, (args, tty)
    # JSON is never coloured
    rc, tty, _ = run_pty(imctl, "--json", "--color=always", "status", env=plain_env)
    assert ESC not in tty and json.loads(tty)["ready"] is True
    # errors: red on a terminal's stderr only
    rc, tty, _ = run_pty(imctl, "frobnicate", env=plain_env, stderr_pty=True)
    assert rc == 2 and ESC in tty, tty
    rc, tty, _ = run_pty(imctl, "frobnicate", env={"NO_COLOR": "yes"}, stderr_pty=True)
    assert rc == 2 and ESC not in tty and "frobnicate" in tty, tty
    rc, _, err = run_pty(imctl, "frobnicate", env=plain_env)
    assert ESC not in err and "frobnicate" in err


# -- text output: what peers and imd send stays on its line ------------------------------------------

NS_CORRECT = "urn:xmpp:message-correct:0"
CSI_C1 = "\u009b"      # CSI as one C1 character: valid in XML, so a peer can send it


def _controls(text):
    """The control characters (C0 but the line ends, DEL, C1) in text."""
    return [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f]


def test_monitor_and_events_text_filter_control_characters(imctl, client, logged_in, peer, bus):
    """A peer's correction with a newline and an escape sequence shows in
    `imctl monitor` and `imctl events` on one line, without them: it can
    neither fake a line of its own nor drive the terminal. And a
    NameOwnerChanged that the bus did not send does not end the monitor."""
    me = logged_in.jid
    start = client.mark()
    mid = peer.send_message(me, "see you at 8")
    wait_in(client, "see you at 8", start)
    p, out, err = popen_lines(imctl, "monitor", "--since", "0")
    try:
        out.wait_contains("see you at 8")       # replayed: the live matches are in place
        forged = "at 9\nmessage %s 12:00 %s: forged line %s31mred" % (peer.jid, peer.jid, CSI_C1)
        peer.send_raw("<message to='%s' type='chat' id='%s'><body>%s</body><replace xmlns='%s' id='%s'/>"
                      "</message>" % (me, uuid.uuid4().hex, forged.replace("\n", "&#10;"), NS_CORRECT, mid))
        i, line = out.wait_contains("MessageEdited")
        assert "at 9 message %s 12:00 %s: forged line  31mred" % (peer.jid, peer.jid) in line, line
        assert not _controls(line), repr(line)
        assert not any(l.startswith("message ") and "forged line" in l for l in out.lines), out.lines

        # imd left the bus, says somebody else: monitor goes on
        rogue = Rogue(bus)
        try:
            target = unique_name_of(client, p.pid)
            assert target
            rogue.name_owner_changed(target, IM_NAME, client.name_owner(IM_NAME), "")
            # and a message from somebody who is not imd, sent straight to monitor
            rogue.send(target, IM_PATH, IM_IFACE, "MessageRevoked", "ss", peer.jid, "forged-by-rogue")
            rogue.sync(target)
        finally:
            rogue.close()
        peer.send_message(me, "still monitored")
        out.wait_contains("still monitored")
        assert p.poll() is None and "left the bus" not in err.text()
        assert "forged-by-rogue" not in out.text()
    finally:
        finish(p, out, err)
    assert not _controls(out.text()), repr(out.text())

    r = imctl.run("events", check=0)
    edited = [l for l in r.stdout.splitlines() if "MessageEdited" in l]
    assert len(edited) == 1 and "forged line  31mred" in edited[0], r.stdout
    assert not _controls(r.stdout), repr(r.stdout)


def test_monitor_text_filters_what_imd_sends(bus, client_factory):
    """Strings from imd itself (here a fake one: ESC cannot travel in XMPP's
    XML) are filtered the same way, in every kind of line."""
    fake = FakeImd(bus).start()
    imctl = Imctl(bus)
    try:
        p, out, err = popen_lines(imctl, "monitor")
        try:
            # subscribed once a signal gets through: send until one does
            deadline = time.monotonic() + 15
            while not out.lines and time.monotonic() < deadline:
                fake.run(lambda f: f.emit("MessageRevoked", "probe@example.org", "probe"))
                time.sleep(0.2)
            out.wait_contains("probe")
            evil = "a\x1b[31mred\nMessageRevoked fake\rline\x07\x7f\u009b2J"
            v = GLib.Variant

            def emit_all(f):
                f.emit("MessageEdited", "eve@example.org\x1b]0;title\x07", "m1", evil)
                f.emit("MessageReceived", {"id": "m2", "conversation": "eve\n@example.org",
                                           "sender": "eve\x1b[2J", "direction": "in", "type": "text",
                                           "text": evil, "time": 0})
                f.emit("ConversationsChanged", [{"id": "eve\x1b[0m@example.org", "unread": 1}])
                f.conn.emit_signal(None, IM_PATH, IM_IFACE, "Error",
                                   v("(ss)", ("org.example.IM.Error.\x1b[1m", evil)))
                f.emit_properties({"NetState": v("s", evil)})
                f.emit("MessageRevoked", "end@example.org", "done")
            fake.run(emit_all)
            out.wait_contains("end@example.org")
        finally:
            finish(p, out, err)
    finally:
        fake.stop()
    text = out.text()
    assert not _controls(text), repr(text)
    assert "\x1b" not in text
    lines = [l for l in out.lines if "probe" not in l]
    # one line per signal: nothing split a line in two
    assert len(lines) == 6, lines
    assert all("fake line" in l for l in lines if "red" in l and "unread" not in l), lines


# -- bash completion -----------------------------------------------------------------------------

def complete(imctl, *words, env=None, cwd=None):
    """COMPREPLY of _imctl for the command line `words` (the last one is being typed)."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
              '_imctl; printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", COMPLETION,
                        imctl.path, *words], capture_output=True, text=True, timeout=20,
                       env=dict(imctl.env(), **(env or {})), cwd=cwd)
    assert r.returncode == 0 and r.stderr == "", (words, r.returncode, r.stderr)
    return [w for w in r.stdout.splitlines() if w]


def test_bash_completion(imctl, logged_in, peer, client, bus):
    commands = {c["name"] for c in jrun(imctl, "help")["commands"]}
    assert set(complete(imctl, "")) == commands
    assert complete(imctl, "se") == ["send", "send-custom", "send-file", "search"]
    assert complete(imctl, "--json", "ev") == ["events"]
    assert complete(imctl, "--timeout", "3", "hist") == ["history"]
    assert set(complete(imctl, "history", "bob@localhost", "--")) >= {"--limit", "--before", "--json"}
    assert complete(imctl, "send-file", "x", "y", "--n") == ["--name", "--no-wait"]
    assert complete(imctl, "--color", "=", "al") == ["always"]
    assert complete(imctl, "typing", "bob@localhost", "o") == ["on", "off"]
    assert "LastEvent" in complete(imctl, "get", "")
    # conversation ids come from the running imd
    assert complete(imctl, "send", "") == []
    imctl.run("send", peer.jid, "so that a conversation exists", check=0)
    assert complete(imctl, "send", "") == [peer.jid]
    assert complete(imctl, "history", "--limit", "5", peer.jid[:3]) == [peer.jid]
    assert complete(imctl, "search", "x", "--conversation", "") == [peer.jid]
    # without imd: nothing, silently, quickly
    t0 = time.monotonic()
    assert complete(imctl, "send", "", env={"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"}) == []
    assert time.monotonic() - t0 < 10


def _dequote(words):
    """What the shell makes of each completion once it is on the command line."""
    return [shlex.split(w) for w in words]


def test_bash_completion_takes_conversation_ids_literally(imctl, logged_in, tmp_path):
    """A peer picks its own JID, and $ ` ( ) { } , are valid in a localpart:
    the ids imd lists are offered quoted, as the words they are, and never
    run as shell code (compgen -W expands its word list, so an id
    "$({touch,FILE})@x" ran touch)."""
    marker = "pwned-" + uuid.uuid4().hex[:8]
    # lower case: imd's ids are
    hostile = ["$({touch,%s-a})@localhost" % marker,
               "`{touch,%s-b}`@localhost" % marker,
               "{x,%s-c}@localhost" % marker,
               "$home@localhost"]
    for jid in hostile:
        imctl.run("send", jid, "so that a conversation exists", check=0)
    assert {c["id"] for c in jrun(imctl, "list")} == set(hostile)

    offered = complete(imctl, "send", "", cwd=tmp_path)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(marker)], os.listdir(tmp_path)
    assert sorted(_dequote(offered)) == sorted([jid] for jid in hostile), offered
    # what was typed may be the id itself or its quoted form
    assert _dequote(complete(imctl, "history", "$(", cwd=tmp_path)) == [[hostile[0]]]
    assert _dequote(complete(imctl, "history", "\\$\\(", cwd=tmp_path)) == [[hostile[0]]]
    assert _dequote(complete(imctl, "chat", "`", cwd=tmp_path)) == [[hostile[1]]]
    assert _dequote(complete(imctl, "search", "x", "--conversation", "{", cwd=tmp_path)) == [[hostile[2]]]
    assert _dequote(complete(imctl, "read", "$h", cwd=tmp_path)) == [[hostile[3]]]
    assert complete(imctl, "typing", "nobody", cwd=tmp_path) == []
    assert not [f for f in os.listdir(tmp_path) if f.startswith(marker)], os.listdir(tmp_path)


def test_bash_completion_on_a_terminal_inserts_the_id_quoted(imctl, logged_in, tmp_path):
    """Interactive bash on a pty, as a user has it: Tab puts the one
    conversation id on the command line, and Enter then hands imctl that id,
    unexpanded: `imctl read` finds the conversation, and nothing ran."""
    marker = "pwned-" + uuid.uuid4().hex[:8]
    jid = "$({touch,%s})@localhost" % marker
    imctl.run("send", jid, "so that a conversation exists", check=0)

    master, slave = os.openpty()
    env = dict(imctl.env(), PS1="prompt> ", TERM="dumb", INPUTRC="/dev/null", HISTFILE="/dev/null",
               PATH=os.path.dirname(imctl.path) + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
    p = subprocess.Popen(["bash", "--norc", "--noprofile", "-i"], stdin=slave, stdout=slave, stderr=slave,
                         env=env, cwd=tmp_path, start_new_session=True, preexec_fn=die_with_parent)
    os.close(slave)
    seen = b""

    def until(text, timeout=20):
        nonlocal seen
        deadline = time.monotonic() + timeout
        while text.encode() not in seen:
            left = deadline - time.monotonic()
            assert left > 0 and p.poll() is None, "no %r on the terminal: %r" % (text, seen)
            if select.select([master], [], [], min(left, 0.2))[0]:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    pass

    try:
        until("prompt> ")
        os.write(master, ('source "%s"; echo sourced\n' % COMPLETION).encode())
        until("sourced")
        os.write(master, b"imctl --json read \t")
        until("@localhost ")
        os.write(master, b"\n")
        until('{"ok":true}')
        os.write(master, b"exit\n")
        p.wait(10)
    finally:
        stop_process(p, signal.SIGKILL)     # an interactive bash ignores SIGTERM
        os.close(master)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(marker)], seen
    assert sanitizer_report(seen.decode(errors="replace")) is None


# -- man pages and installation ------------------------------------------------------------------

@pytest.mark.parametrize("page", [MAN_IMCTL, MAN_IMD])
def test_man_page_lints_clean(page):
    assert shutil.which("groff"), "groff is not installed (Debian: groff-base)"
    r = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
    # and it renders to something of substance
    r = subprocess.run(["groff", "-man", "-Tutf8", page], capture_output=True, text=True, timeout=30)
    assert len(r.stdout) > 2000


def _man_text(page):
    r = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", page], capture_output=True, text=True,
                       timeout=30)
    return r.stdout


def test_imctl_man_page_documents_everything(bus):
    imctl = Imctl(bus)
    helped = json.loads(imctl.run("--json", "help", check=0).stdout)
    text = _man_text(MAN_IMCTL)
    for c in helped["commands"]:
        assert re.search(r"^\s+%s\b" % re.escape(c["name"]), text, re.M), "imctl.1 lacks " + c["name"]
        for option in c["options"]:
            assert option in text, "imctl.1 lacks %s %s" % (c["name"], option)
    for e in helped["exit_codes"]:
        assert re.search(r"^\s+%d\s" % e["code"], text, re.M), "imctl.1 lacks exit code %d" % e["code"]
    for word in ("NO_COLOR", "DBUS_SESSION_BUS_ADDRESS", "--json", "--timeout", "--color",
                 "GetEventsSince", "LastEvent", "imd(8)"):
        assert word in text, "imctl.1 lacks " + word


def test_imd_man_page_documents_options_and_config():
    text = _man_text(MAN_IMD)
    r = subprocess.run([imd_path(), "--help"], capture_output=True, text=True, timeout=10)
    options = set(re.findall(r"--[a-z][a-z-]+", r.stdout)) - {"--help", "--help-all"}
    assert options >= {"--data-dir", "--cache-dir", "--verbose"}, r.stdout
    for option in options:
        assert option in text, "imd.8 lacks " + option
    # every key imd reads from imd.conf
    with open(os.path.join(REPO, "service", "manager.c")) as f:
        source = f.read()
    keys = set(re.findall(r'\{ "(\w+)", "(\w+)",', source))
    keys |= set(re.findall(r'g_key_file_get_\w+\(kf, "(\w+)", "(\w+)"', source))
    assert len(keys) >= 10, keys
    for group, key in keys:
        assert "[%s]" % group in text and key in text, "imd.8 lacks [%s] %s" % (group, key)
    for word in ("org.example.IM", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "imd.conf",
                 "imctl(1)", "SIGTERM"):
        assert word in text, "imd.8 lacks " + word


def test_meson_installs_man_page_and_completion():
    r = subprocess.run(["meson", "introspect", "--installed", build_dir()], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    installed = json.loads(r.stdout)
    dest = {os.path.realpath(src): d for src, d in installed.items()}
    assert dest.get(os.path.realpath(MAN_IMCTL), "").endswith("/man1/imctl.1"), installed
    assert dest.get(os.path.realpath(COMPLETION), "").endswith("/bash-completion/completions/imctl"), \
        installed
