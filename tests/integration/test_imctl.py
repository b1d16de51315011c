"""imctl end to end: real imd, real Prosody, real slixmpp peer.

imctl [--json] COMMAND: login JID [--url URL] (password: first stdin line),
logout, status, list, history CONV [--limit N] [--before ID], send CONV TEXT,
read CONV, monitor, chat CONV. Exit 0 ok, 1 D-Bus error (message on stderr),
2 usage, 3 imd not running, 4 NotFound, 5 InvalidArgument, 6 timeout
(test_imctl_complete.py covers every code and every --json).
"""

import fcntl
import json
import os
import select
import signal
import subprocess
import termios
import time

import pytest

from conftest import Imctl
from harness.asserts import find_conversation
from harness.proc import LineReader
from harness.util import die_with_parent, sanitizer_report


def jrun(imctl, *args, **kw):
    """imctl --json ARGS, expecting exit 0; returns the parsed JSON."""
    r = imctl.run("--json", *args, check=0, **kw)
    try:
        return json.loads(r.stdout)
    except ValueError as e:
        raise AssertionError("imctl --json %s printed no JSON: %r (%s)"
                             % (" ".join(args), r.stdout, e))


def login(imctl, acc):
    return imctl.run("login", acc.jid, "--url", acc.ws_url, input=acc.password + "\n", check=0)


def wait_in(client, text, start=0, timeout=15):
    return client.wait_signal(
        "MessageReceived",
        lambda a: a[0].get("direction") == "in" and a[0].get("text") == text,
        start=start, timeout=timeout).args[0]


def stop_child(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    for s in (p.stdin, p.stdout, p.stderr):
        try:
            s and s.close()
        except OSError:
            pass


# -- usage ------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["--bogus-option", "status"],
    ["login"],
    ["send"],
    ["send", "bob@localhost"],
    ["history"],
    ["history", "bob@localhost", "--limit", "many"],
    ["history", "bob@localhost", "--limit"],
    ["read"],
    ["chat"],
    ["status", "extra-argument"],
])
def test_usage_errors_exit_2(imctl, args):
    r = imctl.run(*args, check=2)
    assert r.stderr.strip(), "no usage message on stderr"


def test_no_daemon_exit_3(bus):
    r = Imctl(bus).run("status", check=3)
    assert r.stderr.strip()


def test_output_nobody_reads_is_exit_1(imctl, alice, peer, client):
    """stdout a pipe whose reader has gone (`imctl help | head -c1` once
    head is done): every write fails with EPIPE, and imctl exits 1 with a
    message, as imctl(1) promises, instead of dying of SIGPIPE."""
    login(imctl, alice)
    start = client.mark()
    peer.send_message(alice.jid, "so that there is an event to print")
    wait_in(client, "so that there is an event to print", start)
    for args in (["help"], ["--help"], ["--json", "help"], ["emoji"], ["status"], ["--json", "list"],
                 ["events"], ["history", peer.jid], ["monitor", "--since", "0"]):
        r, w = os.pipe()
        os.close(r)
        try:
            # subprocess gives the child SIGPIPE's default action back, as a shell would
            p = subprocess.run([imctl.path, *args], stdin=subprocess.DEVNULL, stdout=w,
                               stderr=subprocess.PIPE, text=True, env=imctl.env(), timeout=30)
        finally:
            os.close(w)
        assert p.returncode == 1, (args, p.returncode, p.stderr)
        assert "cannot write output" in p.stderr and sanitizer_report(p.stderr) is None, (args, p.stderr)


# -- login / status / logout ---------------------------------------------------------------

def test_login_status_logout(imctl, alice, client):
    login(imctl, alice)
    st = jrun(imctl, "status")
    assert st["account"] == alice.jid, st
    assert st["net_state"] == "connected", st
    assert st["ready"] is True, st
    assert st["unread_total"] == 0, st
    # the session belongs to the daemon, not to the imctl process that logged in
    assert client.get_property("Ready") is True
    r = imctl.run("status", check=0)
    assert alice.jid in r.stdout
    imctl.run("logout", check=0)
    st = jrun(imctl, "status")
    assert st["ready"] is False
    assert st["net_state"] == "disconnected"
    assert isinstance(st["unread_total"], int)


class PtyLogin:
    """`imctl login JID` as from a shell: stdin and stderr on a pty that is
    its controlling terminal (the prompt goes to /dev/tty), stdout a pipe."""

    def __init__(self, imctl, acc, sigint=signal.SIG_DFL, job_control=False):
        self.master, self.slave = os.openpty()
        self.before = termios.tcgetattr(self.slave)
        self.seen = b""

        def child_setup():
            die_with_parent()
            # start_new_session made us a session leader: take the pty as our terminal
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            # as from an interactive shell: a test run started in the
            # background (`cmd &` without job control) ignores these, and
            # imctl keeps what it was started with
            signal.signal(signal.SIGINT, sigint)
            signal.signal(signal.SIGQUIT, signal.SIG_DFL)

        argv = [imctl.path, "login", acc.jid, "--url", acc.ws_url]
        if job_control:
            # as typed at an interactive shell: imctl in a foreground job of
            # its own (a stop signal is discarded in an orphaned process
            # group, as imctl's would be as the session leader); once it
            # stops, a line on the terminal makes the shell `fg` it
            argv = ["/bin/bash", "-c", 'set -m; "$0" "$@"; read -r _; fg'] + argv
        self.proc = subprocess.Popen(argv, env=imctl.env(),
                                     stdin=self.slave, stdout=subprocess.PIPE, stderr=self.slave,
                                     start_new_session=True, preexec_fn=child_setup)

    def read(self, timeout=0.2):
        if select.select([self.master], [], [], timeout)[0]:
            try:
                self.seen += os.read(self.master, 4096)
            except OSError:         # EIO: nothing has the slave open any more
                pass

    def wait_prompt(self, timeout=15):
        """Until the prompt is out and echo is off."""
        deadline = time.monotonic() + timeout
        while b"Password: " not in self.seen or self.echo():
            assert time.monotonic() < deadline and self.proc.poll() is None, self.seen
            self.read()

    def echo(self):
        return bool(termios.tcgetattr(self.slave)[3] & termios.ECHO)

    def wait(self, timeout=15):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "imctl login still runs: %r" % self.seen
            self.read(0.05)
        self.read(0.2)
        assert sanitizer_report(self.seen.decode(errors="replace")) is None, self.seen
        return self.proc.returncode

    def close(self):
        stop_child(self.proc, signal.SIGKILL)
        os.close(self.master)
        os.close(self.slave)


@pytest.mark.parametrize("how", ["ctrl-c", signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_password_prompt_interrupted_gives_the_terminal_its_echo_back(imctl, alice, how):
    """Ctrl-C (or SIGTERM, SIGHUP) at the password prompt ends imctl as the
    signal does, but not before echo is back on: the shell's terminal is as
    it was, not left blind. Nothing reaches imd."""
    t = PtyLogin(imctl, alice)
    try:
        t.wait_prompt()
        if how == "ctrl-c":
            os.write(t.master, b"\x03")      # the line discipline sends SIGINT
            sig = signal.SIGINT
        else:
            t.proc.send_signal(how)
            sig = how
        assert t.wait() == -sig, t.seen
        assert t.echo(), "echo still off after %s" % how
        assert termios.tcgetattr(t.slave) == t.before
        assert t.proc.stdout.read() == b""
    finally:
        t.close()


def test_password_prompt_stopped_and_continued(imctl, alice):
    """Ctrl-Z at the password prompt stops imctl with echo back on (the
    shell that took the terminal back is not left blind); `fg` brings the
    prompt back with echo off, and the password typed then logs in."""
    t = PtyLogin(imctl, alice, job_control=True)
    try:
        t.wait_prompt()
        os.write(t.master, b"\x1a")          # the line discipline sends SIGTSTP
        deadline = time.monotonic() + 15
        while b"Stopped" not in t.seen:
            assert time.monotonic() < deadline and t.proc.poll() is None, t.seen
            t.read()
        assert t.echo(), "echo still off while imctl is stopped: %r" % t.seen
        t.seen = b""
        os.write(t.master, b"\n")            # the shell's `read`, then `fg`
        t.wait_prompt()
        os.write(t.master, alice.password.encode() + b"\n")
        assert t.wait(60) == 0, t.seen
        assert alice.password.encode() not in t.seen, t.seen
        assert t.echo() and termios.tcgetattr(t.slave) == t.before
    finally:
        t.close()
    assert jrun(imctl, "status")["ready"] is True


def test_password_prompt_started_ignoring_ctrl_c(imctl, alice):
    """imctl started with SIGINT ignored (`imctl login &` in a script):
    Ctrl-C at the prompt ends nothing, and the password typed after it
    logs in (it ended the prompt: 'cannot read the password')."""
    t = PtyLogin(imctl, alice, sigint=signal.SIG_IGN)
    try:
        t.wait_prompt()
        os.write(t.master, b"\x03")
        time.sleep(0.3)
        assert t.proc.poll() is None, t.seen
        os.write(t.master, alice.password.encode() + b"\n")
        assert t.wait(60) == 0, t.seen
        assert t.echo() and termios.tcgetattr(t.slave) == t.before
    finally:
        t.close()


def test_password_prompt_on_a_terminal(imctl, alice):
    """Typed at the prompt, the password is not echoed and logs in."""
    t = PtyLogin(imctl, alice)
    try:
        t.wait_prompt()
        os.write(t.master, alice.password.encode() + b"\n")
        assert t.wait(60) == 0, t.seen
        assert alice.password.encode() not in t.seen, t.seen
        assert t.echo() and termios.tcgetattr(t.slave) == t.before
        assert t.proc.stdout.read() == b""
    finally:
        t.close()
    assert jrun(imctl, "status")["ready"] is True


def test_login_wrong_password_exit_1(imctl, alice):
    r = imctl.run("login", alice.jid, "--url", alice.ws_url, input="wrong-password\n", check=1)
    assert r.stderr.strip()
    assert jrun(imctl, "status")["ready"] is False


def test_login_invalid_jid_exit_5(imctl, alice):
    r = imctl.run("login", "not a jid", "--url", alice.ws_url, input="pw\n", check=5)
    assert r.stderr.strip()


def test_send_logged_out_exit_1(imctl, peer):
    r = imctl.run("send", peer.jid, "hello", check=1)
    assert r.stderr.strip()
    r = imctl.run("--json", "send", peer.jid, "hello", check=1)
    assert r.stderr.strip()


# -- messages -------------------------------------------------------------------------------

def test_send(imctl, alice, peer):
    login(imctl, alice)
    text = "from imctl 👋 <>&'\" ok"
    out = jrun(imctl, "send", peer.jid, text)
    assert isinstance(out, dict) and isinstance(out.get("id"), str) and out["id"]
    got = peer.wait_for_message(lambda m: m["origin_id"] == out["id"])
    assert got["body"] == text
    imctl.run("send", peer.jid, "plain mode", check=0)
    assert peer.wait_for_body("plain mode")


def test_text_that_looks_like_an_option_is_sent(imctl, alice, peer, client):
    """The text of send and edit, the words of search: taken as written,
    even when they start with "--" (a script's `imctl send "$conv" "$text"`
    printed help and sent nothing for "--help", exit 0; "--json" was a usage
    error). Options still come after the text; "--" still ends them."""
    login(imctl, alice)
    ids = {}
    for text in ("--help", "--json", "--limit=3", "--no-such-option"):
        ids[text] = mid = imctl.run("send", peer.jid, text, check=0).stdout.strip()
        assert peer.wait_for_message(lambda m: m["origin_id"] == mid)["body"] == text
    assert jrun(imctl, "send", peer.jid, "--timeout", "--json")["id"]     # options after the text
    peer.wait_for_body("--timeout")
    mid = imctl.run("send", peer.jid, "--", "--", check=0).stdout.strip()
    assert peer.wait_for_message(lambda m: m["origin_id"] == mid)["body"] == "--"
    imctl.run("send", "--", peer.jid, "--help", check=0)
    imctl.run("edit", peer.jid, mid, "--help", check=0)
    client.wait_signal("MessageEdited", lambda a: a[1] == mid and a[2] == "--help")
    assert ids["--no-such-option"] in [m["id"] for m in jrun(imctl, "search", "--no-such-option")]
    # an option before the text is the text; what follows is one argument too many
    r = imctl.run("search", "--limit", "5", "x", check=2)
    assert "'--limit' is taken as text" in r.stderr, r.stderr
    imctl.run("send", peer.jid, "--json", "more", check=2)
    imctl.run("send", peer.jid, "last", check=0)
    peer.wait_for_body("last")
    assert "more" not in peer.bodies()


def test_history_list_read(imctl, alice, peer, client):
    login(imctl, alice)
    start = client.mark()
    sent = [peer.send_message(alice.jid, "h%d ☕" % i) for i in range(3)]
    ids = [wait_in(client, "h%d ☕" % i, start)["id"] for i in range(3)]

    convs = jrun(imctl, "list")
    assert isinstance(convs, list)
    conv = find_conversation(convs, peer.jid)
    assert conv is not None, convs
    assert conv["unread"] == 3
    assert jrun(imctl, "status")["unread_total"] == 3
    r = imctl.run("list", check=0)
    assert peer.jid in r.stdout

    h = jrun(imctl, "history", peer.jid, "--limit", "2")
    assert [m["text"] for m in h["messages"]] == ["h2 ☕", "h1 ☕"]
    assert [m["id"] for m in h["messages"]] == [ids[2], ids[1]]
    assert h["complete"] is False
    m = h["messages"][0]
    assert m["direction"] == "in" and m["sender"] == peer.jid
    assert m["conversation"] == peer.jid and isinstance(m["time"], int)
    h2 = jrun(imctl, "history", peer.jid, "--limit", "2", "--before", ids[1])
    assert [m["text"] for m in h2["messages"]] == ["h0 ☕"]
    assert h2["complete"] is True
    h3 = jrun(imctl, "history", peer.jid)
    assert [m["id"] for m in h3["messages"]] == ids[::-1]
    r = imctl.run("history", peer.jid, check=0)
    for i in range(3):
        assert "h%d ☕" % i in r.stdout

    imctl.run("read", peer.jid, check=0)
    assert jrun(imctl, "status")["unread_total"] == 0
    assert find_conversation(jrun(imctl, "list"), peer.jid)["unread"] == 0
    assert peer.wait_for_marker()["id"] == sent[-1]


def test_dbus_errors_exit_codes(imctl, alice, peer):
    login(imctl, alice)
    imctl.run("send", peer.jid, "x", check=0)
    for args in (["history", "not a jid"],
                 ["history", peer.jid, "--before", "no-such-id"],
                 ["history", peer.jid, "--limit", "0"],
                 ["read", "nobody-here@localhost"],
                 ["send", peer.jid, ""],
                 ["send", "not a jid", "x"]):
        r = imctl.run(*args)
        assert r.returncode in (1, 2, 4, 5), (args, r.returncode, r.stderr)
        assert r.stderr.strip(), args
    imctl.run("history", "not a jid", check=5)                        # InvalidArgument
    imctl.run("history", peer.jid, "--before", "no-such-id", check=4)  # NotFound
    imctl.run("read", "nobody-here@localhost", check=4)               # NotFound
    r = imctl.run("login", alice.jid, "--url", alice.ws_url, input=alice.password + "\n",
                  check=1)   # Busy
    assert r.stderr.strip()


# -- monitor -----------------------------------------------------------------------------------

def test_monitor_json(imctl, alice, peer, client):
    login(imctl, alice)
    p = imctl.popen("--json", "monitor")
    out = LineReader(p.stdout, "imctl monitor")
    err = LineReader(p.stderr, "imctl monitor stderr")
    try:
        # wait until the monitor is subscribed: send until one shows up
        seen = None
        for i in range(20):
            text = "mon-probe-%d" % i
            peer.send_message(alice.jid, text)
            try:
                seen = out.wait_contains(text, timeout=1.0)
                break
            except TimeoutError:
                continue
        assert seen, "monitor printed nothing\n" + err.text()
        n = len(out.lines)
        peer.send_message(alice.jid, "monitored 📡")
        _, line = out.wait_contains("monitored", start=n)
        ev = json.loads(line)
        assert ev["event"] == "MessageReceived"
        m = ev["message"]
        assert m["text"] == "monitored 📡"
        assert m["direction"] == "in"
        assert m["conversation"] == peer.jid and m["sender"] == peer.jid
        assert m["type"] == "text" and m["status"] == "received"
        assert isinstance(m["time"], int) and isinstance(m["id"], str)

        mid = client.call("SendText", "ss", (peer.jid, "outgoing"))
        _, line = out.wait_for(lambda l: mid in l and "MessageReceived" in l, start=n)
        ev = json.loads(line)
        assert ev["message"]["id"] == mid and ev["message"]["direction"] == "out"

        client.call("MarkRead", "s", (peer.jid,))
        out.wait_for(lambda l: json.loads(l).get("event") != "MessageReceived", start=n)
        time.sleep(0.5)
        # every line is one JSON object with an "event"
        for line in out.lines:
            obj = json.loads(line)
            assert isinstance(obj, dict) and isinstance(obj.get("event"), str), line
        events = {json.loads(l)["event"] for l in out.lines}
        assert "MessageReceived" in events
    finally:
        stop_child(p, signal.SIGINT)
        out.join()
        err.join()
    assert sanitizer_report(err.text()) is None, err.text()


def test_monitor_plain(imctl, alice, peer):
    login(imctl, alice)
    p = imctl.popen("monitor")
    out = LineReader(p.stdout, "imctl monitor")
    err = LineReader(p.stderr, "imctl monitor stderr")
    try:
        for i in range(20):
            text = "plain-probe-%d" % i
            peer.send_message(alice.jid, text)
            try:
                out.wait_contains(text, timeout=1.0)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("monitor printed nothing\n" + err.text())
    finally:
        stop_child(p, signal.SIGINT)
        out.join()
        err.join()
    assert sanitizer_report(err.text()) is None, err.text()


# -- chat ---------------------------------------------------------------------------------------

def _wait_live_message(peer, alice, out, err, pattern):
    """peer sends numbered messages (pattern % i) until one shows in `imctl
    chat`'s output: chat may still be subscribing when the first comes."""
    for i in range(15):
        text = pattern % i
        peer.send_message(alice.jid, text)
        try:
            out.wait_contains(text, timeout=1.0)
            return
        except TimeoutError:
            continue
    pytest.fail("chat shows no incoming message\n%s\n%s" % (out.text(), err.text()))


def test_chat_through_a_pipe(imctl, alice, peer, client):
    login(imctl, alice)
    start = client.mark()
    peer.send_message(alice.jid, "earlier message 🕰")
    wait_in(client, "earlier message 🕰", start)

    p = imctl.popen("chat", peer.jid)
    out = LineReader(p.stdout, "imctl chat")
    err = LineReader(p.stderr, "imctl chat stderr")
    try:
        # recent messages first
        out.wait_contains("earlier message 🕰", timeout=15)
        # then incoming ones as they arrive
        _wait_live_message(peer, alice, out, err, "live-%d 💬")
        # every stdin line is sent
        p.stdin.write("typed line ☕ <&>\n")
        p.stdin.flush()
        got = peer.wait_for_body("typed line ☕ <&>")
        assert got["origin_id"]
        p.stdin.write("second line\n")
        p.stdin.flush()
        peer.wait_for_body("second line")
        # EOF ends the chat with status 0
        p.stdin.close()
        rc = p.wait(15)
        assert rc == 0, (rc, err.text())
    finally:
        stop_child(p)
        out.join()
        err.join()
    assert sanitizer_report(err.text()) is None, err.text()
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 50))
    outs = [m["text"] for m in msgs if m["direction"] == "out"]
    assert outs[:2] == ["second line", "typed line ☕ <&>"]


def test_chat_not_logged_in(imctl, peer):
    """Chat needs a session to send: typing while logged out reports an error
    but does not kill the chat; EOF still exits 0 or 1 (never a crash)."""
    p = imctl.popen("chat", peer.jid)
    try:
        try:
            p.stdin.write("hello?\n")
            p.stdin.close()
        except BrokenPipeError:
            pass     # it may refuse to start at all: that is fine too
        rc = p.wait(15)
        err = p.stderr.read()
        assert rc in (0, 1), (rc, err)
        assert err.strip(), "no error shown for a message that could not be sent"
        assert sanitizer_report(err) is None, err
    finally:
        stop_child(p)


def test_chat_drops_an_over_long_line_whole(imctl, alice, peer, client):
    """A line over 64 KiB is not sent, and neither is its tail: chat reads
    on to the next newline and sends what follows. Exit status 1, as for
    any line that could not be sent."""
    login(imctl, alice)
    r = imctl.run("chat", peer.jid, input="x" * 70000 + "\nhello\n")
    peer.wait_for_body("hello")
    assert peer.bodies() == ["hello"], [b[:40] for b in peer.bodies()]
    msgs, _ = client.call("GetMessages", "ssu", (peer.jid, "", 50))
    assert [m["text"] for m in msgs if m["direction"] == "out"] == ["hello"]
    assert r.returncode == 1 and "longer than 64 KiB" in r.stderr, (r.returncode, r.stderr)
    # the same in pieces: the cut falls inside a read, the newline in a later one
    p = imctl.popen("chat", peer.jid)
    try:
        for piece in ("y" * 40000, "y" * 40000 + "\nsecond", " half\n"):
            p.stdin.write(piece)
            p.stdin.flush()
            time.sleep(0.2)
        p.stdin.close()
        assert p.wait(15) == 1
        err = p.stderr.read()
    finally:
        stop_child(p)
    assert sanitizer_report(err) is None, err
    peer.wait_for_body("second half")
    assert peer.bodies() == ["hello", "second half"], [b[:40] for b in peer.bodies()]


def test_chat_with_a_jid_typed_in_capitals_shows_live_messages(imctl, alice, peer_factory):
    """imd names a conversation by the normalised JID (Unicode lower case,
    NFC): chat knows the live messages of "ÜNAL…@LOCALHOST" as those of
    "ünal…@localhost", not only when the capitals are ASCII."""
    login(imctl, alice)
    unal = peer_factory("ünal")
    typed = unal.jid.upper()
    assert typed.startswith("ÜNAL") and unal.jid.startswith("ünal")
    p = imctl.popen("chat", typed)
    out = LineReader(p.stdout, "imctl chat")
    err = LineReader(p.stderr, "imctl chat stderr")
    try:
        _wait_live_message(unal, alice, out, err, "live-%d für dich")
        # and our own lines come back as imd echoes them
        p.stdin.write("zurück\n")
        p.stdin.flush()
        unal.wait_for_body("zurück")
        out.wait_contains("zurück", timeout=10)
        p.stdin.close()
        assert p.wait(15) == 0, err.text()
    finally:
        stop_child(p)
        out.join()
        err.join()
    assert sanitizer_report(err.text()) is None, err.text()


# -- events after a restart of imd --------------------------------------------------------------

def test_since_a_number_from_before_imd_restarted(imctl, imd, alice, peer, client):
    """Event numbers start again with a new imd: `--since N` with N from the
    one before is past everything the new one has. events and monitor say
    so on stderr and show all it keeps, rather than nothing."""
    login(imctl, alice)
    start = client.mark()
    for i in range(20):          # numbers the next imd will not reach soon
        peer.send_message(alice.jid, "before %d" % i)
    wait_in(client, "before 19", start)
    stale = client.get_property("LastEvent")

    imd.restart()
    login(imctl, alice)
    start = client.mark()
    peer.send_message(alice.jid, "after the restart")
    incoming = wait_in(client, "after the restart", start)
    assert client.get_property("LastEvent") < stale

    r = imctl.run("--json", "events", "--since", str(stale), check=0)
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert any(e["signal"] == "MessageReceived" and e["args"][0]["id"] == incoming["id"] for e in events), \
        r.stdout
    assert "imd restarted" in r.stderr, r.stderr

    p = imctl.popen("--json", "monitor", "--since", str(stale))
    out = LineReader(p.stdout, "imctl monitor")
    err = LineReader(p.stderr, "imctl monitor stderr")
    try:
        out.wait_contains(incoming["id"], timeout=10)
        err.wait_contains("imd restarted", timeout=10)
        n = len(out.lines)
        peer.send_message(alice.jid, "live after the replay")
        out.wait_contains("live after the replay", start=n)
    finally:
        stop_child(p, signal.SIGINT)
        out.join()
        err.join()
    assert sanitizer_report(err.text()) is None, err.text()
    received = [json.loads(line) for line in out.lines]
    received = [e for e in received if e["event"] == "MessageReceived" and e["message"]["id"] == incoming["id"]]
    assert len(received) == 1, out.lines
