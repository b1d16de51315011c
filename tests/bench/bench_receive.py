#!/usr/bin/python3
"""Receive benchmark: a peer floods chat messages through a real Prosody to imd.

Reports, for imd's own process:
  - messages per second (first to last MessageReceived signal),
  - CPU microseconds per message (user + sys from /proc/PID/stat over the flood),
  - peak RSS (VmHWM) and idle RSS after logging in with a 200-contact roster.
Every message must be stored (unread count == N) and signalled (N signals),
or the run fails.

    /usr/bin/python3 tests/bench/bench_receive.py [--messages 20000] [--contacts 200]

Uses the build in $IMD_BUILD_DIR (default build/); for meaningful numbers use a
build without sanitizers (buildtype=debugoptimized or release).
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import slixmpp  # noqa: E402
from gi.repository import Gio, GLib  # noqa: E402

from harness.bus import Bus  # noqa: E402
from harness.imd import Imd  # noqa: E402
from harness.prosody import Prosody  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_times(pid):
    """(user, sys) seconds of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid):
    return sum(cpu_times(pid))


def rollup_kib(pid, key):
    """From smaps_rollup: Pss (shared pages divided among their users) etc."""
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def status_number(pid, key):
    """A number from /proc/PID/status (kB for the Vm* keys)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


class Client(slixmpp.ClientXMPP):
    """Logs in, runs job(self), disconnects."""

    def __init__(self, jid, password, job):
        super().__init__(jid, password)
        self.job = job
        self.register_plugin("xep_0199")
        self.add_event_handler("session_start", self._start)

    async def _start(self, _):
        try:
            await self.job(self)
        finally:
            self.disconnect()


def run_client(prosody, jid, password, job, timeout=300):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    c = Client(jid, password, job)
    c.connect(("127.0.0.1", prosody.c2s_port), disable_starttls=True, force_starttls=False)
    loop.run_until_complete(asyncio.wait_for(c.disconnected, timeout))
    # slixmpp leaves its stanza filter task waiting; closing the loop under it
    # printed a traceback
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def make_roster(prosody, jid, password, contacts):
    async def job(c):
        for i in range(contacts):
            await c.update_roster("contact%03d@localhost" % i, name="Contact %d" % i,
                                  subscription="none")
    run_client(prosody, jid, password, job)


def flood(prosody, jid, password, to, count, receipt_for=None, receipt_every=0):
    async def job(c):
        c.send_presence()
        for i in range(count):
            c.send_message(mto=to, mbody="flood %d" % i, mtype="chat")
            if receipt_every and i % receipt_every == receipt_every - 1:
                # mixed traffic: a delivery receipt for a message imd sent
                c.send_raw("<message to='%s' type='chat' id='r%d'><received "
                           "xmlns='urn:xmpp:receipts' id='%s'/></message>" % (to, i, receipt_for))
            if i % 50 == 49:
                # Hand Prosody moderate chunks: one huge write makes its stream
                # parser (not imd) the bottleneck.
                await asyncio.sleep(0.002)
        # a round trip guarantees the server has taken every message
        await c.plugin["xep_0199"].ping(jid=c.boundjid.domain, timeout=120)
    run_client(prosody, jid, password, job)


class SignalCounter:
    """Counts MessageReceived signals until `expected` arrived (or timeout)."""

    def __init__(self, address, expected):
        self.expected = expected
        self.count = 0
        self.first = self.last = None
        self.loop = GLib.MainLoop()
        self.conn = Gio.DBusConnection.new_for_address_sync(
            address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
            | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        self.conn.signal_subscribe("org.example.IM", "org.example.IM", "MessageReceived",
                                   "/org/example/IM", None, Gio.DBusSignalFlags.NONE,
                                   self._on_signal)
        self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "GetId", None, None,
                            Gio.DBusCallFlags.NONE, -1, None)

    def _on_signal(self, *args):
        now = time.monotonic()
        if self.first is None:
            self.first = now
        self.last = now
        self.count += 1
        if self.count >= self.expected:
            self.loop.quit()

    def run(self, timeout):
        GLib.timeout_add_seconds(timeout, self.loop.quit)
        self.loop.run()


def flood_main(port, count, receipt_for=None, receipt_every=0):
    class P:
        c2s_port = port
    flood(P, "bob@localhost", "bob-pw", "alice@localhost", count, receipt_for, receipt_every)


def main():
    if len(sys.argv) in (4, 6) and sys.argv[1] == "--flood":
        flood_main(int(sys.argv[2]), int(sys.argv[3]), *(sys.argv[4:5] + [int(a) for a in sys.argv[5:]]))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--contacts", type=int, default=200)
    ap.add_argument("--receipts-every", type=int, default=0, metavar="K",
                    help="mixed traffic: the peer also sends a delivery receipt after every K messages")
    args = ap.parse_args()
    n = args.messages

    work = tempfile.mkdtemp(prefix="imd-bench-")
    # Prosody's per-message cost must not hide imd's: no debug log, and no
    # mod_mam (archiving every message caps Prosody near 700 messages/s here,
    # in memory or on disk). imd's catch-up query then gets an error and the
    # session goes on without an archive, as with a server that has none.
    prosody = Prosody(loglevel="warn", extra_config=os.environ.get(
        "BENCH_PROSODY_EXTRA", 'modules_disabled = { "s2s"; "mam" }'))
    prosody.start()
    bus = Bus(work).start()
    imd = None
    try:
        prosody.register("alice", "alice-pw")
        prosody.register("bob", "bob-pw")
        make_roster(prosody, "alice@localhost", "alice-pw", args.contacts)

        imd = Imd(bus, work)
        imd.start()
        client = bus.client()
        client.login("alice@localhost", "alice-pw", prosody.ws_url)
        time.sleep(2.0)
        idle_rss = status_number(imd.pid, "VmRSS")
        idle_pss = rollup_kib(imd.pid, "Pss")
        idle_private = rollup_kib(imd.pid, "Private_Dirty") + rollup_kib(imd.pid, "Private_Clean")

        # Count signals on a connection of our own, in this process's main loop;
        # the flooding peer runs in another process so they don't share a GIL.
        receipt_args = []
        if args.receipts_every > 0:
            mid = client.call("SendText", "ss", ("bob@localhost", "before the flood"))
            receipt_args = [mid, str(args.receipts_every)]
            time.sleep(1.0)
        counter = SignalCounter(bus.address, n)
        times0 = cpu_times(imd.pid)
        cpu0 = sum(times0)
        wakeups0 = status_number(imd.pid, "voluntary_ctxt_switches")
        sender = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--flood",
                                   str(prosody.c2s_port), str(n)] + receipt_args,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        perf = None
        if os.environ.get("BENCH_PERF"):
            # BENCH_PERF=FILE: profile imd during the flood (perf report -i FILE)
            perf = subprocess.Popen(["perf", "record", "--call-graph", os.environ.get("BENCH_PERF_CALLGRAPH", "fp"), "-o", os.environ["BENCH_PERF"],
                                     "-p", str(imd.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        counter.run(timeout=600)
        times1 = cpu_times(imd.pid)
        cpu1 = sum(times1)
        wakeups = status_number(imd.pid, "voluntary_ctxt_switches") - wakeups0
        flood_peak_rss = status_number(imd.pid, "VmHWM")
        if perf:
            perf.send_signal(2)
            perf.wait()
        sender.wait(timeout=120)
        received = counter.count

        # Search indexing is deferred until imd is quiet (see store.h); its
        # cost is paid here, by the first search, or by the idle indexer.
        cpu2 = cpu_seconds(imd.pid)
        t0 = time.monotonic()
        found = client.call("SearchMessages", "ssu", ("flood", "", 1))
        index_s = time.monotonic() - t0
        cpu3 = cpu_seconds(imd.pid)
        convs = client.call("GetConversations")
        unread = sum(c["unread"] for c in convs if c["id"] == "bob@localhost")
        peak_rss = status_number(imd.pid, "VmHWM")
        ok = received == n and unread == n and len(found) == 1

        cpu_us = (cpu1 - cpu0) * 1e6 / max(received, 1)
        rate = received / max(counter.last - counter.first, 1e-9)
        print("imd receive benchmark (%d messages, %d roster contacts%s)"
              % (n, args.contacts, ", a receipt after every %d" % args.receipts_every
                 if args.receipts_every > 0 else ""))
        print("  signalled:        %d" % received)
        print("  stored (unread):  %d" % unread)
        print("  messages/s:       %.0f" % rate)
        print("  CPU per message:  %.1f us (user %.2f s + sys %.2f s)"
              % (cpu_us, times1[0] - times0[0], times1[1] - times0[1]))
        print("  wakeups:          %.2f per message (%d voluntary context switches)"
              % (wakeups / max(received, 1), wakeups))
        print("  idle RSS:         %.1f MiB (PSS %.1f MiB, private %.1f MiB)"
              % (idle_rss / 1024, idle_pss / 1024, idle_private / 1024))
        print("  peak RSS:         %.1f MiB (%.1f MiB by the end of the flood)"
              % (peak_rss / 1024, flood_peak_rss / 1024))
        print("  search indexing:  %.1f us CPU per message, deferred (first search %.0f ms)"
              % ((cpu3 - cpu2) * 1e6 / max(received, 1), index_s * 1000))
        print("  result:           %s" % ("OK" if ok else "FAILED: not every message stored and signalled"))
        client.close()
        return 0 if ok else 1
    finally:
        if imd:
            imd.stop()
        bus.stop()
        prosody.stop()
        prosody.cleanup()


if __name__ == "__main__":
    sys.exit(main())
