#!/usr/bin/python3
"""Recording benchmark: imd's CPU while it records a voice message.

A private PipeWire graph (tests/integration/harness/pipewire.py) plays real
speech (espeak-ng) into a virtual microphone; imd records it for --seconds
(mono 48 kHz, Ogg Opus at the default 24 kbit/s) and sends it. Reports, for
imd's own process:
  - CPU while recording, as a share of one core (user + sys from
    /proc/PID/stat over the recording, divided by its wall time), next to
    the same measured while idle, logged in, before;
  - dropouts: samples imd lost (it logs them when it stops) and the
    recorded length against the wall time;
and fails when the CPU is over the target (2 % of one core) or anything was
lost.

    /usr/bin/python3 tests/bench/bench_record.py [--seconds 20]

Uses the build in $IMD_BUILD_DIR (default build/); for meaningful numbers use a
build without sanitizers (buildtype=release).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness.bus import Bus  # noqa: E402
from harness.imd import Imd  # noqa: E402
from harness.pipewire import PipeWire  # noqa: E402
from harness.prosody import Prosody  # noqa: E402
from bench_receive import cpu_seconds  # noqa: E402  (one reading of /proc/PID/stat)

TARGET_CPU = 0.02


def share_of_core(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="imd-bench-rec-")
    prosody = Prosody(loglevel="warn")
    prosody.start()
    pw = PipeWire(work).start()
    bus = Bus(work).start()
    imd = None
    try:
        prosody.register("alice", "alice-pw")
        prosody.register("bob", "bob-pw")
        imd = Imd(bus, os.path.join(work, "imd"), env=pw.env())
        imd.start()
        client = bus.client()
        client.login("alice@localhost", "alice-pw", prosody.ws_url)
        time.sleep(2.0)
        idle = share_of_core(imd.pid, 5.0)

        pw.play_speech(seconds=args.seconds + 10)
        pw.wait_playing()
        client.call("StartRecording", "s", ("bob@localhost",))
        perf = None
        if os.environ.get("BENCH_PERF"):
            # BENCH_PERF=FILE: profile imd while it records (perf report -i FILE)
            perf = subprocess.Popen(["perf", "record", "-g", "-o", os.environ["BENCH_PERF"],
                                     "-p", str(imd.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        c0 = cpu_seconds(imd.pid)
        time.sleep(args.seconds)
        c1 = cpu_seconds(imd.pid)
        if perf:
            perf.send_signal(2)
            perf.wait()
        wall = time.monotonic() - t0
        mid = client.call("StopRecording")
        recording = (c1 - c0) / wall

        # the message as imd stored it: its length against the wall time
        duration_ms = 0
        for _ in range(100):
            msgs, _ = client.call("GetMessages", "ssu", ("bob@localhost", "", 5))
            m = next((m for m in msgs if m["id"] == mid), None)
            if m and m.get("duration_ms"):
                duration_ms = m["duration_ms"]
                break
            time.sleep(0.1)
        lost = [line for line in imd.stderr_text().splitlines() if "dropouts" in line]
        shortfall = 1 - duration_ms / 1000 / wall
        ok = recording < TARGET_CPU and not lost and abs(shortfall) < 0.02

        print("imd recording benchmark (%.0f s of speech, Ogg Opus 24 kbit/s)" % args.seconds)
        print("  CPU while recording: %.2f %% of one core (target < %.0f %%)" % (recording * 100,
                                                                             TARGET_CPU * 100))
        print("  CPU idle, logged in: %.2f %% of one core" % (idle * 100))
        print("  recorded:            %.3f s of %.3f s wall (%+.1f %%)" % (duration_ms / 1000, wall,
                                                                        -shortfall * 100))
        print("  dropouts:            %s" % ("; ".join(lost) if lost else "none"))
        print("  result:              %s" % ("OK" if ok else "FAILED"))
        client.close()
        return 0 if ok else 1
    finally:
        if imd:
            imd.stop()
        bus.stop()
        pw.stop()
        prosody.stop()
        prosody.cleanup()


if __name__ == "__main__":
    sys.exit(main())
