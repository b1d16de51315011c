"""Frontends share one session: imctl monitor, im-tray, im-notify and a busctl
script run at once against one imd, and one MarkRead from imctl updates all
of them."""

import json
import os
import queue
import subprocess
import threading
import time

import pytest

from harness.notify import Dunst, ImNotify, Xvfb
from harness.tray import ImTray, TrayHost
from harness.util import wait_until
from test_messages import wait_in


class LineReader:
    """The lines of a running process's stdout, read on a thread."""

    def __init__(self, proc):
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.lines.put(line)

    def wait(self, predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            for obj in self.seen:
                if predicate(obj):
                    return obj
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching line; last: %r" % self.seen[-5:])
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(json.loads(line))   # NDJSON: every line parses


def busctl_unread_total(bus):
    r = subprocess.run(["busctl", "--address=" + bus.address, "get-property", "org.example.IM",
                        "/org/example/IM", "org.example.IM", "UnreadTotal"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture
def desktop(bus, tmp_path, request):
    """A tray host, an X server with dunst, im-tray and im-notify on the bus."""
    started = []
    xvfb = Xvfb(str(tmp_path)).start()
    started.append(xvfb)
    dunst = Dunst(bus, str(tmp_path), xvfb.display).start()
    started.append(dunst)
    host = TrayHost(bus, str(tmp_path)).start()
    started.append(host)
    tray = ImTray(bus, str(tmp_path)).start()
    started.append(tray)
    notify = ImNotify(bus, str(tmp_path / "im-notify"))
    os.makedirs(notify.workdir, exist_ok=True)
    notify.start()
    started.append(notify)
    # im-notify writes its position once it has caught up with imd
    wait_until(lambda: os.path.exists(notify.state_file), 20, what="im-notify to catch up")
    yield dunst, tray, notify
    for thing in reversed(started):
        thing.stop()
    problems = tray.problems + notify.problems
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def test_one_mark_read_updates_every_frontend(client, logged_in, peer, imctl, bus, desktop):
    dunst, tray, notify = desktop
    monitor = imctl.popen("--json", "monitor")
    try:
        events = LineReader(monitor)
        start = client.mark()
        peer.send_message(logged_in.jid, "are you there?")
        peer.send_message(logged_in.jid, "hello?")
        wait_in(client, "hello?", start)

        # every frontend shows the two unread messages
        events.wait(lambda e: e.get("event") == "MessageReceived"
                    and e["message"]["text"] == "hello?")
        dunst.wait_count(1)                             # one per conversation
        wait_until(lambda: tray.status() == "NeedsAttention", 15, what="tray NeedsAttention")
        assert tray.tooltip()[1] == "2 unread messages"
        assert busctl_unread_total(bus) == "u 2"

        # one MarkRead, from imctl
        imctl.run("read", peer.jid)

        events.wait(lambda e: e.get("event") == "ConversationsChanged" and any(
            c["id"] == peer.jid and c["unread"] == 0 for c in e["conversations"]))
        events.wait(lambda e: e.get("event") == "PropertiesChanged"
                    and e["changed"].get("UnreadTotal") == 0)
        dunst.wait_count(0)                             # the notification closed
        wait_until(lambda: tray.status() == "Active", 15, what="tray Active")
        wait_until(lambda: tray.tooltip()[1] == "No unread messages", 15, what="tray tooltip")
        assert busctl_unread_total(bus) == "u 0"
        assert notify.running and tray.running
    finally:
        monitor.terminate()
        monitor.wait(10)
