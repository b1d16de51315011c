"""A private, headless PipeWire graph with a virtual microphone.

    pw = PipeWire(tmpdir).start()        # pipewire + wireplumber + the mic
    env = dict(os.environ, **pw.env())  # what a client (imd) needs to reach it
    pw.play_speech("Hello", seconds=5)   # real speech into the microphone
    ...
    pw.remove_mic()                      # the source vanishes (kills pw-loopback)
    pw.add_mic()                         # and is back (default source again)
    pw.stop()

Everything runs as the current user (root in CI is fine) without a systemd
user session:

- its own XDG_RUNTIME_DIR (0700) where `pipewire` puts its socket pipewire-0;
- its own dbus-daemon (harness.bus.Bus, from tests/dbus-session.conf: never the
  stock session config): WirePlumber 0.4 exits without a session bus;
- its own XDG_CONFIG_HOME, whose wireplumber/*.lua.d fragments switch off
  the ALSA, V4L2, libcamera and BlueZ monitors, so that a real sound card of
  the machine never becomes the default source; and its own XDG_STATE_HOME,
  so WirePlumber's remembered defaults and volumes start empty every time;
- `pw-loopback`: a mono Audio/Sink `virt_in` whose input comes out of a mono
  Audio/Source `virt_mic`. WirePlumber makes virt_mic the default source by
  itself (it is the only one); start() checks that and sets it with
  `wpctl set-default` if not.

Every process is started with die_with_parent and a session of its own and is
stopped by pid (stop()).

What WirePlumber 0.4.13 does with a capture stream linked to virt_mic when
pw-loopback dies (seen with a pw_stream client):
- by default (node.dont-reconnect unset), the stream goes STREAMING -> PAUSED,
  no error, no more data; it waits, and is linked again (STREAMING) as soon as
  a source appears (a new virt_mic, or any other);
- with node.dont-reconnect=true, WirePlumber destroys the stream's node: the
  client sees STREAMING -> PAUSED -> UNCONNECTED (no error text) at once.
With no source at all when it connects, the stream goes to ERROR "no node
available" at once. A target.object naming no node (e.g. "no-such-node") is
linked to the default source anyway unless node.dont-reconnect=true (then:
UNCONNECTED at once).
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from .bus import Bus
from .util import die_with_parent, stop_process

MIC = "virt_mic"
SINK = "virt_in"

_WP_MAIN = """-- written by tests/integration/harness/pipewire.py: no real devices
alsa_monitor.enabled = false
v4l2_monitor.enabled = false
libcamera_monitor.enabled = false
"""
_WP_BLUETOOTH = "bluez_monitor.enabled = false\n"


def tools_missing():
    """The programs this harness needs that are not installed (a list)."""
    need = ("pipewire", "wireplumber", "pw-loopback", "pw-cat", "pw-dump", "wpctl",
            "dbus-daemon", "espeak-ng", "sox")
    return [p for p in need if shutil.which(p) is None]


class PipeWireError(RuntimeError):
    pass


class PipeWire:
    def __init__(self, tmpdir=None, mic=True):
        """tmpdir: where the graph's directory goes (a fresh one inside it);
        mic: start() adds the virtual microphone."""
        self.dir = tempfile.mkdtemp(prefix="imd-pw-", dir=tmpdir)
        self._remove_dir = False
        if len(self.dir) > 80:
            # runtime/pipewire-0 must fit in a unix socket address (108 bytes):
            # a short dir in /tmp instead, removed by stop()
            os.rmdir(self.dir)
            self.dir = tempfile.mkdtemp(prefix="imd-pw-")
            self._remove_dir = True
        self.runtime_dir = os.path.join(self.dir, "runtime")
        self.config_home = os.path.join(self.dir, "config")
        self.state_home = os.path.join(self.dir, "state")
        self.log_dir = os.path.join(self.dir, "logs")
        os.makedirs(self.runtime_dir, mode=0o700)
        os.chmod(self.runtime_dir, 0o700)           # whatever the umask
        for d in (self.state_home, self.log_dir,
                  os.path.join(self.config_home, "wireplumber", "main.lua.d"),
                  os.path.join(self.config_home, "wireplumber", "bluetooth.lua.d")):
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(self.config_home, "wireplumber", "main.lua.d",
                               "60-imd-tests.lua"), "w") as f:
            f.write(_WP_MAIN)
        with open(os.path.join(self.config_home, "wireplumber", "bluetooth.lua.d",
                               "60-imd-tests.lua"), "w") as f:
            f.write(_WP_BLUETOOTH)
        self.want_mic = mic
        self.bus = None
        self.pipewire = None
        self.wireplumber = None
        self.loopback = None
        self.players = []
        self._logs = []
        self._n = 0

    # -- environment ---------------------------------------------------------------
    def env(self):
        """The variables a PipeWire client needs to reach this graph (and
        nothing else): add them to a client's environment."""
        return {
            "XDG_RUNTIME_DIR": self.runtime_dir,
            "PIPEWIRE_RUNTIME_DIR": self.runtime_dir,
            "PIPEWIRE_REMOTE": "pipewire-0",
        }

    def _proc_env(self):
        env = dict(os.environ)
        for k in ("PIPEWIRE_REMOTE", "PIPEWIRE_CORE", "PIPEWIRE_PROPS", "PIPEWIRE_DEBUG",
                  "PIPEWIRE_CONFIG_DIR", "PIPEWIRE_CONFIG_NAME", "PIPEWIRE_CONFIG_PREFIX",
                  "WIREPLUMBER_CONFIG_DIR", "WIREPLUMBER_DATA_DIR", "WIREPLUMBER_DEBUG",
                  "DISPLAY", "WAYLAND_DISPLAY", "JACK_DEFAULT_SERVER"):
            env.pop(k, None)
        env.update(self.env())
        env["XDG_CONFIG_HOME"] = self.config_home
        env["XDG_STATE_HOME"] = self.state_home
        if self.bus is not None:
            env = self.bus.env(env)
        return env

    def _spawn(self, name, argv):
        self._n += 1
        path = os.path.join(self.log_dir, "%02d-%s.log" % (self._n, name))
        log = open(path, "wb")
        self._logs.append(log)
        return subprocess.Popen(argv, env=self._proc_env(), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, cwd=self.dir,
                                start_new_session=True, preexec_fn=die_with_parent)

    def run(self, *argv, timeout=10.0, check=True):
        """Run a PipeWire tool (pw-cli, wpctl, ...) against this graph."""
        r = subprocess.run(list(argv), env=self._proc_env(), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise PipeWireError("%s exited %d: %s" % (" ".join(argv), r.returncode,
                                                      r.stderr.strip()))
        return r

    # -- lifecycle -----------------------------------------------------------------
    def start(self, timeout=15.0):
        missing = tools_missing()
        if missing:
            raise PipeWireError("not installed: %s (tools/install-deps.sh)" % " ".join(missing))
        try:
            self.bus = Bus(self.dir).start()
            self.pipewire = self._spawn("pipewire", ["pipewire"])
            sock = os.path.join(self.runtime_dir, "pipewire-0")
            self._wait(lambda: os.path.exists(sock), timeout, "pipewire's socket",
                       self.pipewire)
            self.wireplumber = self._spawn("wireplumber", ["wireplumber"])
            # WirePlumber is ready once its "default" metadata exists (pw-dump
            # leaves out a metadata object with no entries: ask pw-cli)
            self._wait(lambda: 'metadata.name = "default"' in self.run(
                "pw-cli", "ls", "Metadata").stdout, timeout,
                "WirePlumber's default metadata", self.wireplumber)
            if self.want_mic:
                self.add_mic(timeout)
        except BaseException:
            print("----- pipewire logs -----\n" + self.log_tail())
            self.stop()
            raise
        return self

    def stop(self):
        """Stop every process of the graph (by pid). The directory stays (logs),
        unless it had to be made in /tmp."""
        self.stop_playing()
        for attr in ("loopback", "wireplumber", "pipewire"):
            p = getattr(self, attr)
            if p is not None:
                stop_process(p, signal.SIGTERM, timeout=5)
                setattr(self, attr, None)
        if self.bus is not None:
            self.bus.stop()
            self.bus = None
        for log in self._logs:
            log.close()
        self._logs = []
        if self._remove_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def running(self):
        return all(p is not None and p.poll() is None
                   for p in (self.pipewire, self.wireplumber))

    def _wait(self, pred, timeout, what, proc=None):
        deadline = time.monotonic() + timeout
        while True:
            if proc is not None and proc.poll() is not None:
                raise PipeWireError("%s exited with %s while waiting for %s\n%s"
                                    % (proc.args[0], proc.returncode, what, self.log_tail()))
            try:
                v = pred()
            except (PipeWireError, subprocess.SubprocessError, ValueError):
                v = None
            if v:
                return v
            if time.monotonic() > deadline:
                raise PipeWireError("no %s within %.0fs\n%s" % (what, timeout, self.log_tail()))
            time.sleep(0.05)

    def log_tail(self, lines=20):
        out = []
        for name in sorted(os.listdir(self.log_dir)):
            with open(os.path.join(self.log_dir, name), errors="replace") as f:
                text = f.read().splitlines()[-lines:]
            if text:
                out.append("== %s\n%s" % (name, "\n".join(text)))
        return "\n".join(out)

    # -- the virtual microphone ------------------------------------------------------
    def add_mic(self, timeout=10.0):
        """Start pw-loopback (virt_in -> virt_mic) and wait until virt_mic
        exists and is the default source."""
        if self.loopback is not None and self.loopback.poll() is None:
            return
        self.loopback = self._spawn("pw-loopback", [
            "pw-loopback", "-c", "1", "-m", "[ MONO ]",     # (no long --channel-map)
            "--capture-props", "media.class=Audio/Sink node.name=%s node.description=%s"
            % (SINK, SINK),
            "--playback-props", "media.class=Audio/Source node.name=%s node.description=%s"
            % (MIC, MIC)])
        node = self._wait(lambda: self.node(MIC), timeout, "node " + MIC, self.loopback)
        self._wait(lambda: self.node(SINK), timeout, "node " + SINK, self.loopback)
        try:
            self._wait(lambda: self.default_source() == MIC, 3.0, MIC + " as default source")
        except PipeWireError:
            self.run("wpctl", "set-default", str(node["id"]))
            self._wait(lambda: self.default_source() == MIC, timeout,
                       MIC + " as default source (wpctl set-default)")

    def remove_mic(self, timeout=10.0):
        """Kill pw-loopback: virt_mic (and virt_in) vanish at once."""
        if self.loopback is not None:
            stop_process(self.loopback, signal.SIGKILL, timeout=5)
            self.loopback = None
        self._wait(lambda: self.node(MIC) is None, timeout, "virt_mic to vanish")

    ensure_mic = add_mic

    @property
    def has_mic(self):
        return self.loopback is not None and self.loopback.poll() is None

    # -- sound -----------------------------------------------------------------------
    def speech_wav(self, text, seconds=None, path=None):
        """A WAV of espeak-ng speaking text; with seconds, repeated (and cut)
        to last exactly that long."""
        base = os.path.join(self.dir, "speech-%d.wav" % (self._n + 1))
        self._n += 1
        subprocess.run(["espeak-ng", "-w", base, text], check=True, capture_output=True)
        if seconds is None:
            return base
        out = path or base[:-4] + "-%gs.wav" % seconds
        length = float(subprocess.run(["soxi", "-D", base], check=True, capture_output=True,
                                      text=True).stdout)
        repeats = max(0, int(seconds / max(length, 0.1)))
        subprocess.run(["sox", base, out, "repeat", str(repeats), "trim", "0", str(seconds)],
                       check=True, capture_output=True)
        return out

    def play(self, wav_path):
        """Feed a sound file into the microphone (pw-cat --playback --target
        virt_in), in the background; returns the process."""
        p = self._spawn("pw-cat", ["pw-cat", "--playback", "--target", SINK, wav_path])
        self.players.append(p)
        return p

    def play_speech(self, text="Hello, this is a voice message from the integration tests.",
                    seconds=5.0):
        """Speech (espeak-ng) for `seconds`, looped, into the microphone."""
        return self.play(self.speech_wav(text, seconds))

    def wait_playing(self, timeout=5.0):
        """Wait until a pw-cat stream is linked to virt_in and running."""
        def playing():
            sink = self.node(SINK)
            return sink is not None and any(
                l["input"] == sink["id"] and l["state"] == "active" for l in self.links())
        self._wait(playing, timeout, "playback into " + SINK)

    def stop_playing(self):
        for p in self.players:
            stop_process(p, signal.SIGTERM, timeout=5)
        self.players = []

    # -- what the graph looks like ------------------------------------------------------
    def dump(self):
        r = self.run("pw-dump", timeout=10.0)
        return json.loads(r.stdout or "[]")

    def nodes(self, objs=None):
        """[{"id", "name", "media_class", "state", "error", "props"}] of every node."""
        out = []
        for o in objs if objs is not None else self.dump():
            if o.get("type") != "PipeWire:Interface:Node":
                continue
            info = o.get("info") or {}
            props = info.get("props") or {}
            out.append({"id": o["id"], "name": props.get("node.name"),
                        "media_class": props.get("media.class"), "state": info.get("state"),
                        "error": info.get("error"), "props": props})
        return out

    def node(self, name):
        for n in self.nodes():
            if n["name"] == name:
                return n
        return None

    def links(self, objs=None):
        out = []
        for o in objs if objs is not None else self.dump():
            if o.get("type") == "PipeWire:Interface:Link":
                i = o.get("info") or {}
                out.append({"id": o["id"], "output": i.get("output-node-id"),
                            "input": i.get("input-node-id"), "state": i.get("state")})
        return out

    def _metadata(self, name, objs=None):
        for o in objs if objs is not None else self.dump():
            if (o.get("type") == "PipeWire:Interface:Metadata"
                    and (o.get("props") or {}).get("metadata.name") == name):
                return o.get("metadata") or []
        return None

    def default_source(self):
        """node.name of the default source as WirePlumber publishes it, or None."""
        for entry in self._metadata("default") or []:
            if entry.get("key") == "default.audio.source":
                v = entry.get("value")
                if isinstance(v, str):
                    try:
                        v = json.loads(v)
                    except ValueError:
                        return None
                return (v or {}).get("name")
        return None

    def capture_streams(self):
        """Capture streams (Stream/Input/Audio) with whether each is linked to
        virt_mic: [{"id", "name", "state", "props", "from_mic"}]."""
        objs = self.dump()
        mic = [n["id"] for n in self.nodes(objs) if n["name"] == MIC]
        links = self.links(objs)
        out = []
        for n in self.nodes(objs):
            if n["media_class"] == "Stream/Input/Audio":
                n["from_mic"] = any(l["input"] == n["id"] and l["output"] in mic
                                    for l in links)
                out.append(n)
        return out

    def wait_capture_stream(self, present=True, timeout=5.0, from_mic=True):
        """Wait until a capture stream recording from virt_mic exists (present)
        or until no capture stream exists (not present)."""
        if present:
            return self._wait(lambda: [s for s in self.capture_streams()
                                       if s["from_mic"] or not from_mic],
                              timeout, "a capture stream")
        return self._wait(lambda: not self.capture_streams() or None, timeout,
                          "no capture stream")
