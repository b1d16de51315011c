"""imctl record CONV --duration SECONDS end to end: a real imd records from a
private PipeWire graph (harness.pipewire), into whose virtual microphone
espeak-ng's speech plays, and a real slixmpp peer receives the voice message
whose id imctl printed. Exit codes: 0 sent (id on stdout), 1 nothing sent
(TooShort and other daemon errors, on stderr), 2 usage (no terminal and no
--duration), without touching imd.

The terminal mode runs imctl as from a user's shell: stdin and stderr on a
pseudo-terminal (its controlling terminal, in a session of its own), stdout a
pipe for the id. A thread reads the pty's master side all the time, so that
imctl never blocks on a full terminal; the level line is parsed out of what
it drew there.
"""

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import threading
import time

import pytest

from harness.util import die_with_parent, sanitizer_report, stop_process



@pytest.fixture
def imd_env(pipewire):
    """conftest's imd records from this module's graph."""
    return pipewire.env()


def test_imctl_record_duration(imctl, client, logged_in, peer, pipewire):
    pipewire.play_speech(seconds=8)
    pipewire.wait_playing()
    try:
        start = client.mark()
        r = imctl.run("record", peer.jid, "--duration", "2.5", check=0)
        mid = r.stdout.strip()
        assert mid and "\n" not in mid, r.stdout
        assert tuple(client.wait_signal("RecordingStopped", start=start).args) == (
            peer.jid, mid, "sent")
        m = peer.wait_for_message(lambda m: m["origin_id"] == mid, timeout=30)
        f = m["file"] or {}
        assert f.get("media-type") == "audio/ogg", m["xml"]
        assert f.get("length", "").isdigit() and abs(int(f["length"]) - 2500) <= 400, m["xml"]

        # shorter than imd's minimum (1 s): the daemon's TooShort, nothing sent
        start = client.mark()
        r = imctl.run("record", peer.jid, "--duration", "0.3", check=1)
        assert r.stdout == "" and "TooShort" in r.stderr, (r.stdout, r.stderr)
        assert tuple(client.wait_signal("RecordingStopped", start=start).args) == (
            peer.jid, "", "too-short")
    finally:
        pipewire.stop_playing()

    # no terminal (the harness gives imctl pipes) and no --duration: a usage
    # error before anything reaches imd
    start = client.mark()
    r = imctl.run("record", peer.jid, check=2)
    assert r.stdout == "" and "--duration" in r.stderr, r.stderr
    assert client.get_property("Recording") is False
    client.pump()
    assert [s for s in client.signals[start:] if s.member.startswith("Recording")] == []


# -- the terminal mode ----------------------------------------------------------------------

COLUMNS = 100
HINT = "Enter: send  c/Esc: cancel"
# one frame of the level line: "\r0:03.4 [####-----] -12 dB  Enter: send  c/Esc: cancel",
# padded with spaces; complete once the next "\r" follows
FRAME = re.compile(r"\r(\d+):(\d\d)\.(\d) \[([#-]*)\] +(-?\d+) dB  (%s|sending…|cancelling…) *(?=\r)"
                   % re.escape(HINT))


class Frame:
    def __init__(self, m):
        self.elapsed = int(m.group(1)) * 60 + int(m.group(2)) + int(m.group(3)) / 10
        self.bar = m.group(4)
        self.db = int(m.group(5))
        self.hint = m.group(6)
        self.text = m.group(0)


class PtyRecord:
    """`imctl record CONV` with stdin and stderr on a pty (its controlling
    terminal) and stdout on a pipe; a thread keeps reading the master."""

    def __init__(self, imctl, conv):
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
        self.termios_before = termios.tcgetattr(self.slave)
        self._out = bytearray()
        self._cond = threading.Condition()
        self._stop = threading.Event()

        def child_setup():
            die_with_parent()
            # start_new_session made us a session leader: take the pty as our terminal
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen([imctl.path, "record", conv], env=imctl.env(),
                                     stdin=self.slave, stdout=subprocess.PIPE,
                                     stderr=self.slave, start_new_session=True,
                                     preexec_fn=child_setup)
        # (after the fork: no thread but this one while preexec_fn runs)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                data = b""
            if not data:
                return
            with self._cond:
                self._out += data
                self._cond.notify_all()

    def text(self):
        with self._cond:
            return self._out.decode("utf-8", "replace")

    def frames(self):
        return [Frame(m) for m in FRAME.finditer(self.text())]

    def wait_frame(self, predicate, timeout, what):
        """The first frame drawn for which predicate(frame) holds."""
        deadline = time.monotonic() + timeout
        while True:
            for f in self.frames():
                if predicate(f):
                    return f
            if self.proc.poll() is not None:
                time.sleep(0.2)             # the thread reads what is left
                raise AssertionError("imctl exited %s while waiting for %s\nterminal: %r"
                                     % (self.proc.returncode, what, self.text()))
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s within %.0fs\nterminal: %r"
                                     % (what, timeout, self.text()))
            with self._cond:
                self._cond.wait(min(left, 0.1))

    def press(self, keys):
        os.write(self.master, keys)

    def raw_mode(self):
        """The pty's local modes now: ICANON and ECHO are off while recording."""
        return termios.tcgetattr(self.slave)[3] & (termios.ICANON | termios.ECHO)

    def wait(self, timeout=15):
        """Exit code, stdout; checks what reached the terminal for sanitizer reports."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("imctl still runs %.0fs after the key\nterminal: %r"
                                 % (timeout, self.text())) from None
        # the thread is still reading: what imctl wrote last is in the master already
        time.sleep(0.2)
        report = sanitizer_report(self.text())
        assert report is None, "imctl: sanitizer: %s\n%s" % (report, self.text())
        return self.proc.returncode, out.decode()

    def close(self):
        if self.proc.poll() is None:
            stop_process(self.proc, timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def record_pty(imctl, pipewire):
    """Factory: imctl record on a pty, while speech plays into the microphone."""
    started = []

    def start(conv):
        if not started:
            pipewire.play_speech(seconds=20)
            pipewire.wait_playing()
        r = PtyRecord(imctl, conv)
        started.append(r)
        return r
    yield start
    for r in started:
        r.close()
    pipewire.stop_playing()


def recording_runs(rec, client, start, min_seconds):
    """imctl draws its level line on the raw terminal while imd records: wait
    until its clock shows min_seconds, then check the line."""
    f = rec.wait_frame(lambda f: f.elapsed >= min_seconds, 15, "meter at %gs" % min_seconds)
    assert f.hint == HINT, f.text
    assert rec.raw_mode() == 0, "the terminal is not raw while recording"
    assert client.get_property("Recording") is True
    client.pump()
    frames = [f for f in rec.frames() if f.hint == HINT]
    # the clock goes forward, redrawn about 10 times a second (a slow machine: fewer)
    times = [f.elapsed for f in frames]
    assert times == sorted(times) and len(set(times)) >= 3, times
    # every frame exactly as wide as the terminal but its last column
    assert all(len(f.text) == COLUMNS for f in frames), [f.text for f in frames]
    # the bar shows the figure: -60 dB empty, 0 dB full
    for f in frames:
        fill = (f.db + 60) / 60 * len(f.bar)
        assert abs(f.bar.count("#") - fill) <= 1.5 and "-#" not in f.bar, f.text
    # speech plays: the microphone's level is more than the floor at some point
    assert max(f.db for f in frames) > -40, [f.db for f in frames]
    assert not [s for s in client.signals[start:] if s.member == "RecordingStopped"]
    return frames


def test_imctl_record_terminal_enter_sends(imctl, client, logged_in, peer, record_pty):
    start = client.mark()
    rec = record_pty(peer.jid)
    recording_runs(rec, client, start, 1.2)

    rec.press(b"\r")
    code, out = rec.wait()
    text = rec.text()
    assert code == 0, (code, out, text)
    mid = out.strip()
    assert mid and out == mid + "\n", out

    # the line said "sending…" with the recording's length, then was wiped:
    # nothing else on the terminal
    sending = [f for f in rec.frames() if f.hint == "sending…"]
    assert sending, text
    length = sending[-1].elapsed
    assert length >= 1.2, sending[-1].text
    assert text.endswith("\r" + " " * (COLUMNS - 1) + "\r"), repr(text[-200:])
    assert "imctl:" not in text, text

    # the terminal is as it was before imctl made it raw
    assert termios.tcgetattr(rec.slave) == rec.termios_before

    assert tuple(client.wait_signal("RecordingStopped", start=start).args) == (
        peer.jid, mid, "sent")
    m = peer.wait_for_message(lambda m: m["origin_id"] == mid, timeout=30)
    f = m["file"] or {}
    assert f.get("media-type") == "audio/ogg", m["xml"]
    assert f.get("length", "").isdigit() and abs(int(f["length"]) / 1000 - length) <= 0.5, (
        m["xml"], length)
    assert client.get_property("Recording") is False


def cancel_by_key(client, peer, rec, start, keys):
    rec.press(keys)
    code, out = rec.wait()
    text = rec.text()
    assert code == 1, (code, out, text)
    assert out == "", out
    assert "imctl: cancelled; nothing was sent\r\n" in text, text
    assert [f for f in rec.frames() if f.hint == "cancelling…"], text
    assert termios.tcgetattr(rec.slave) == rec.termios_before

    assert tuple(client.wait_signal("RecordingStopped", start=start).args) == (
        peer.jid, "", "cancelled")
    assert client.get_property("Recording") is False
    with pytest.raises(TimeoutError):
        m = peer.wait_for_message(lambda m: m["body"] is not None or m["file"], timeout=2)
        pytest.fail("the peer got a message: %s" % m["xml"])
    client.pump()
    assert [tuple(s.args) for s in client.signals[start:] if s.member == "RecordingStopped"] == [
        (peer.jid, "", "cancelled")]


def test_imctl_record_terminal_c_cancels(imctl, client, logged_in, peer, record_pty):
    start = client.mark()
    rec = record_pty(peer.jid)
    recording_runs(rec, client, start, 1.0)
    # keys that are not imctl's do nothing
    rec.press(b"x")
    time.sleep(0.3)
    assert rec.proc.poll() is None, rec.text()
    cancel_by_key(client, peer, rec, start, b"c")


def test_imctl_record_terminal_esc_cancels(imctl, client, logged_in, peer, record_pty):
    start = client.mark()
    rec = record_pty(peer.jid)
    recording_runs(rec, client, start, 1.0)
    # an arrow key starts with Esc too, but is no cancel
    rec.press(b"\x1b[A")
    time.sleep(0.5)
    assert rec.proc.poll() is None, rec.text()
    assert rec.frames()[-1].hint == HINT, rec.text()
    # a lone Esc is
    cancel_by_key(client, peer, rec, start, b"\x1b")
