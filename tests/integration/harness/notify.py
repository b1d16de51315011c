"""Desktop notifications for im-notify's tests: real servers on the test's bus.

- Xvfb on a display it picks itself (-displayfd), and dunst on it: a real
  notification server, driven and read with dunstctl.
- python3-dbusmock's notification_daemon template: the only server here with
  the inline-reply capability (dunst has none); its calls are logged and it
  emits NotificationReplied on request.
- NotifyMonitor: `busctl monitor` of org.freedesktop.Notifications traffic,
  to see exactly what im-notify asked the server (actions, replaces_id).
- ImNotify: the im-notify process ($IMD_BUILD_DIR/clients/im-notify/im-notify).
- FakeImd: a stand-in for imd, for timings the real one cannot be made to
  produce (a signal between two calls, a flood during a catch-up); im-tray's
  tests use it too.
- Rogue: a connection of somebody else on the bus, sending forged signals
  straight to a frontend and recording any call that reaches it.
"""

import json
import os
import shlex
import signal
import subprocess
import threading
import time

from gi.repository import Gio, GLib

from .bus import DBusClient
from .imd import _find, sanitizer_env
from .proc import LineReader
from .util import die_with_parent, read_logs, sanitizer_report, stop_process, wait_until

NOTIFY_NAME = "org.freedesktop.Notifications"
NOTIFY_PATH = "/org/freedesktop/Notifications"
NOTIFY_IFACE = "org.freedesktop.Notifications"
MOCK_IFACE = "org.freedesktop.DBus.Mock"

# dunst's defaults expire notifications after 10 s (unless the X user is
# idle): the tests look at them longer than that under ASan, so here they
# stay until closed. Otherwise dunst runs with its built-in defaults.
DUNST_RC = """\
[global]
    idle_threshold = 0
[urgency_low]
    timeout = 0
[urgency_normal]
    timeout = 0
[urgency_critical]
    timeout = 0
"""


def im_notify_path():
    return _find("im-notify", os.path.join("clients", "im-notify", "im-notify"))


def _unwrap(v):
    """dunstctl's JSON wraps each value as {"type": ..., "data": ...}."""
    if isinstance(v, dict) and set(v) == {"type", "data"}:
        return _unwrap(v["data"])
    if isinstance(v, dict):
        return {k: _unwrap(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unwrap(x) for x in v]
    return v


class Xvfb:
    """An X server for dunst; Xvfb picks a free display and says which."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.display = None

    def start(self, timeout=15.0):
        r, w = os.pipe()
        self._log = open(os.path.join(self.workdir, "xvfb.log"), "wb")
        try:
            self.proc = subprocess.Popen(
                ["Xvfb", "-displayfd", str(w), "-nolisten", "tcp", "-screen", "0", "1024x768x24"],
                pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                start_new_session=True, preexec_fn=die_with_parent)
        finally:
            os.close(w)
        with os.fdopen(r) as f:
            # written once the server accepts connections
            line = f.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError("Xvfb reported no display (exit %s)" % self.proc.poll())
        self.display = ":" + line
        return self

    def stop(self):
        stop_process(self.proc)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


class Dunst:
    """dunst 1.9 on the test's bus and an Xvfb display, with dunstctl."""

    def __init__(self, bus, workdir, display):
        self.bus = bus
        self.workdir = workdir
        self.display = display
        self.proc = None
        self.rc = os.path.join(workdir, "dunstrc")
        with open(self.rc, "w") as f:
            f.write(DUNST_RC)

    def env(self):
        env = self.bus.env()
        env["DISPLAY"] = self.display
        env.pop("WAYLAND_DISPLAY", None)
        return env

    def start(self, timeout=15.0):
        self._log_path = os.path.join(self.workdir, "dunst.log")
        self._log = open(self._log_path, "ab")
        self.proc = subprocess.Popen(["dunst", "-config", self.rc], env=self.env(),
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     start_new_session=True, preexec_fn=die_with_parent)
        c = self.bus.client()
        try:
            wait_until(lambda: self.proc.poll() is not None or c.name_owner(NOTIFY_NAME),
                       timeout, what="dunst to own " + NOTIFY_NAME)
            if self.proc.poll() is not None:
                raise RuntimeError("dunst exited with %s:\n%s" % (self.proc.returncode, self.log()))
            self.unique_name = c.name_owner(NOTIFY_NAME)
        finally:
            c.close()
        return self

    def stop(self):
        stop_process(self.proc)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log(self):
        try:
            with open(self._log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ctl(self, *args, timeout=10):
        r = subprocess.run(["dunstctl", *args], env=self.env(), capture_output=True, text=True,
                           timeout=timeout)
        assert r.returncode == 0, "dunstctl %s: %s%s" % (" ".join(args), r.stdout, r.stderr)
        return r.stdout

    def count(self, which="displayed"):
        return int(self.ctl("count", which).strip())

    def wait_count(self, n, which="displayed", timeout=15.0):
        """Polls until `dunstctl count WHICH` is n (dunst shows a notification
        a moment after Notify returns)."""
        try:
            wait_until(lambda: self.count(which) == n, timeout,
                       what="%d %s notification(s)" % (n, which))
        except TimeoutError as e:
            raise AssertionError("%s; dunst has %d" % (e, self.count(which))) from None
        return True

    def history(self):
        """The closed notifications dunst keeps, newest first, as plain dicts
        (summary, body, category, appname, id, ...)."""
        return _unwrap(json.loads(self.ctl("history")))[0]

    def action(self, position=0):
        """The default action of the notification at POSITION (what a click does)."""
        self.ctl("action", str(position))

    def close_all(self):
        self.ctl("close-all")

    def seen(self, timeout=10.0):
        """What the user has been shown, as dunst itself has it: closes every
        displayed notification (so dunst moves them to its history) and
        returns the history, newest first."""
        self.close_all()
        wait_until(lambda: self.count("displayed") == 0, timeout, what="dunst to close all")
        return self.history()


class NotifyMock:
    """python3-dbusmock's notification_daemon on the test's bus, with the
    capabilities given (e.g. inline-reply)."""

    def __init__(self, bus, workdir, capabilities):
        self.bus = bus
        self.workdir = workdir
        self.capabilities = list(capabilities)
        self.proc = None
        self.client = None

    def start(self, timeout=20.0):
        self._log_path = os.path.join(self.workdir, "dbusmock.log")
        self._log = open(self._log_path, "wb")
        params = json.dumps({"capabilities": " ".join(self.capabilities)})
        self.proc = subprocess.Popen(["/usr/bin/python3", "-m", "dbusmock", "--template", "notification_daemon",
                                      "-p", params],
                                     env=self.bus.env(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, start_new_session=True, preexec_fn=die_with_parent)
        self.client = DBusClient(self.bus.address, NOTIFY_NAME, NOTIFY_PATH, NOTIFY_IFACE)
        wait_until(lambda: self.proc.poll() is not None or self.client.name_owner(NOTIFY_NAME),
                   timeout, what="dbusmock to own " + NOTIFY_NAME)
        if self.proc.poll() is not None:
            raise RuntimeError("dbusmock exited with %s" % self.proc.returncode)
        return self

    def stop(self):
        if self.client is not None:
            self.client.close()
            self.client = None
        stop_process(self.proc)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def _mock(self, method, signature=None, args=()):
        return self.client._call(NOTIFY_NAME, NOTIFY_PATH, MOCK_IFACE, method, signature, args, 10.0)

    def calls(self, method):
        """The logged calls of METHOD: a list of argument lists."""
        return [list(args) for _, args in self._mock("GetMethodCalls", "s", (method,))]

    def emit(self, member, signature, args):
        """Emit a signal of org.freedesktop.Notifications as the server would."""
        variants = [GLib.Variant(t, a) for t, a in zip(_split_signature(signature), args)]
        self._mock("EmitSignal", "sssav", (NOTIFY_IFACE, member, signature, variants))


class ActivatableNotifyMock(NotifyMock):
    """The same dbusmock server, not started by the test: a .service file in
    the bus's servicedir has dbus-daemon start it when something first calls
    org.freedesktop.Notifications (D-Bus activation, as on a desktop where
    no server runs until a notification comes). Its output goes to the bus's
    log; stop() ends it by pid."""

    def install(self):
        params = json.dumps({"capabilities": " ".join(self.capabilities)})
        path = os.path.join(self.bus.servicedir, NOTIFY_NAME + ".service")
        with open(path, "w") as f:
            f.write("[D-BUS Service]\nName=%s\nExec=/usr/bin/python3 -m dbusmock --template notification_daemon "
                    "-p %s\n" % (NOTIFY_NAME, shlex.quote(params)))
        # NO_AUTO_START: this client never starts it
        self.client = DBusClient(self.bus.address, NOTIFY_NAME, NOTIFY_PATH, NOTIFY_IFACE)
        self.client.call_bus("ReloadConfig")
        self.pid = None
        return self

    def running(self):
        return bool(self.client.name_owner(NOTIFY_NAME))

    def wait_started(self, timeout=20.0):
        wait_until(self.running, timeout, what="D-Bus to start the notification server")
        owner = self.client.name_owner(NOTIFY_NAME)
        self.pid = self.client.call_bus("GetConnectionUnixProcessID", "s", (owner,))
        return self

    def stop(self):
        if self.client is not None and self.pid is None and self.running():
            self.wait_started()
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                wait_until(lambda: not self.running(), 10, what="the notification server to stop")
            except ProcessLookupError:
                pass
            self.pid = None
        if self.client is not None:
            self.client.close()
            self.client = None


def _split_signature(sig):
    """The types of a signature of basic types only ("us" -> ["u", "s"]),
    which is all the notification signals have."""
    return list(sig)


class NotifyMonitor:
    """What goes to and from the notification server, via `busctl monitor`."""

    def __init__(self, bus):
        self.bus = bus
        self.proc = None

    def start(self, timeout=10.0):
        self.proc = subprocess.Popen(
            ["busctl", "--address=" + self.bus.address, "monitor", "--json=short",
             "--match", "interface='%s'" % NOTIFY_IFACE],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, preexec_fn=die_with_parent)
        self.out = LineReader(self.proc.stdout, "busctl monitor")
        self.err = LineReader(self.proc.stderr, "busctl monitor (stderr)")
        # busctl says so once the bus made it a monitor
        self.err.wait_contains("Monitoring bus message stream", timeout)
        return self

    def stop(self):
        stop_process(self.proc)
        self.out.join()
        self.err.join()

    def messages(self, member=None, kind=None):
        out = []
        for line in list(self.out.lines):
            try:
                m = json.loads(line)
            except ValueError:
                continue
            if member is not None and m.get("member") != member:
                continue
            if kind is not None and m.get("type") != kind:
                continue
            out.append(m)
        return out

    def notify_calls(self):
        """Each Notify call as a dict: replaces_id, summary, body, actions (a
        {key: label} dict), hints (plain values)."""
        calls = []
        for m in self.messages("Notify", "method_call"):
            d = m["payload"]["data"]
            calls.append({"app_name": d[0], "replaces_id": d[1], "summary": d[3], "body": d[4],
                          "actions": dict(zip(d[5][0::2], d[5][1::2])),
                          "hints": {k: v.get("data") for k, v in d[6].items()},
                          "timeout": d[7]})
        return calls

    def wait_notify(self, predicate=lambda c: True, timeout=15.0, start=0):
        """The first Notify call (index >= start) matching predicate; returns
        (index, call)."""
        deadline = time.monotonic() + timeout
        while True:
            calls = self.notify_calls()
            for i in range(start, len(calls)):
                if predicate(calls[i]):
                    return i, calls[i]
            if time.monotonic() > deadline:
                raise TimeoutError("no matching Notify call within %.0fs; calls: %r"
                                   % (timeout, calls[start:]))
            time.sleep(0.05)

    def close_calls(self):
        return [m["payload"]["data"][0] for m in self.messages("CloseNotification", "method_call")]


class ImNotify:
    """One im-notify process on the test's bus; its state under workdir.
    stop() checks the exit status and stderr (sanitizers)."""

    def __init__(self, bus, workdir):
        self.bus = bus
        self.workdir = workdir
        self.state_home = os.path.join(workdir, "xdg-state")
        self.proc = None
        self.runs = 0
        self.stderr_paths = []
        self.problems = []

    @property
    def state_file(self):
        return os.path.join(self.state_home, "im-notify", "state")

    def env(self):
        env = self.bus.env()
        env["XDG_STATE_HOME"] = self.state_home
        env["HOME"] = self.workdir
        return sanitizer_env(env)

    def start(self):
        exe = im_notify_path()
        if not os.path.exists(exe):
            raise AssertionError("im-notify is not built: %s" % exe)
        self.runs += 1
        path = os.path.join(self.workdir, "im-notify-stderr.%d.log" % self.runs)
        self.stderr_paths.append(path)
        self._stderr = open(path, "wb")
        self.proc = subprocess.Popen([exe], env=self.env(), stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=self._stderr, cwd=self.workdir,
                                     start_new_session=True, preexec_fn=die_with_parent)
        return self

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self, all_runs=True):
        return read_logs(self.stderr_paths if all_runs else self.stderr_paths[-1:])

    def stop(self, sig=signal.SIGTERM, expect_rc=0):
        """Signal it and wait; records a problem unless it exits with expect_rc."""
        if self.proc is None:
            return None
        rc = stop_process(self.proc, sig)
        self._stderr.close()
        report = sanitizer_report(self.stderr_text(all_runs=False))
        if report:
            self.problems.append("sanitizer report in run %d: %s" % (self.runs, report))
        if expect_rc is not None and rc != expect_rc:
            self.problems.append("im-notify exited with %s in run %d (expected %s)" % (rc, self.runs, expect_rc))
        self.proc = None
        return rc

    def restart(self):
        self.stop()
        return self.start()


IM_NAME = "org.example.IM"
IM_PATH = "/org/example/IM"
IM_IFACE = "org.example.IM"

FAKE_IMD_XML = """<node>
  <interface name="org.example.IM">
    <method name="GetConversations">
      <arg name="conversations" type="aa{sv}" direction="out"/>
    </method>
    <method name="GetEventsSince">
      <arg name="after" type="t" direction="in"/>
      <arg name="events" type="a(tsv)" direction="out"/>
      <arg name="last" type="t" direction="out"/>
    </method>
    <method name="MarkRead">
      <arg name="conversation" type="s" direction="in"/>
    </method>
    <method name="SendText">
      <arg name="conversation" type="s" direction="in"/>
      <arg name="text" type="s" direction="in"/>
      <arg name="id" type="s" direction="out"/>
    </method>
    <property name="LastEvent" type="t" access="read"/>
    <property name="Ready" type="b" access="read"/>
    <property name="Account" type="s" access="read"/>
    <property name="NetState" type="s" access="read"/>
    <property name="UnreadTotal" type="u" access="read"/>
  </interface>
</node>"""

_SIGNATURES = {"MessageReceived": "a{sv}", "MessageRevoked": "ss", "MessageEdited": "sss",
               "ConversationsChanged": "aa{sv}"}


def variant_dict(d):
    """{"id": "x", "unread": 2} as an a{sv} value: str -> s, bool -> b, int -> u
    (x for "time"); GLib.Variant values are kept."""
    out = {}
    for k, v in d.items():
        if isinstance(v, GLib.Variant):
            out[k] = v
        elif isinstance(v, bool):
            out[k] = GLib.Variant("b", v)
        elif isinstance(v, int):
            out[k] = GLib.Variant("x" if k == "time" else "u", v)
        else:
            out[k] = GLib.Variant("s", v)
    return out


def incoming(conversation, msg_id, text):
    """An incoming text message as MessageReceived carries it."""
    return {"id": msg_id, "conversation": conversation, "sender": conversation, "direction": "in",
            "type": "text", "text": text, "time": int(time.time() * 1000)}


class FakeImd:
    """Something owning org.example.IM on the test's bus that is not imd: a
    Gio connection served by a thread of its own, so that it answers while
    the test waits. It serves GetConversations (self.conversations),
    GetEventsSince (every signal it emitted, numbered by its D-Bus serial as
    imd numbers them), MarkRead, SendText and the properties in self.props
    (LastEvent: its last signal's serial). self.calls records every call as
    (method, args); hooks[method](fake) runs just before the reply and
    after_reply[method](fake) just after it (Properties.Get is "Get:NAME"), on
    the fake's thread: what they emit comes before, or after, the reply."""

    def __init__(self, bus):
        self.bus = bus
        self.conversations = []
        self.props = {"Ready": GLib.Variant("b", True), "Account": GLib.Variant("s", "alice@example.org"),
                      "NetState": GLib.Variant("s", "connected"), "UnreadTotal": GLib.Variant("u", 0)}
        self.hooks = {}
        self.after_reply = {}
        self.events = []            # (number, member, args tuple)
        self.last_event = 0
        self.calls = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._error = None
        self.conn = None
        self.unique_name = None

    # -- on the fake's thread ----------------------------------------------------------------
    def emit(self, member, *args):
        """Emit one org.example.IM signal (broadcast), keep it in the event log;
        its number."""
        sig = _SIGNATURES[member]
        if sig == "a{sv}":
            args = (variant_dict(args[0]),)
        elif sig == "aa{sv}":
            args = ([variant_dict(c) for c in args[0]],)
        self.conn.emit_signal(None, IM_PATH, IM_IFACE, member, GLib.Variant("(%s)" % sig, tuple(args)))
        n = self.conn.get_last_serial()
        with self._lock:
            self.events.append((n, member, args))
            self.last_event = n
        return n

    def emit_properties(self, changed):
        """PropertiesChanged of org.example.IM ({"NetState": Variant, ...}), and self.props."""
        self.props.update(changed)
        self.conn.emit_signal(None, IM_PATH, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                              GLib.Variant("(sa{sv}as)", (IM_IFACE, changed, [])))

    def _on_call(self, conn, sender, path, iface, method, params, invocation):
        args = params.unpack()
        with self._lock:
            self.calls.append((method, args))
        if method in self.hooks:
            self.hooks[method](self)
        if method == "GetConversations":
            invocation.return_value(GLib.Variant("(aa{sv})", ([variant_dict(c) for c in self.conversations],)))
        elif method == "GetEventsSince":
            with self._lock:
                kept = [(n, m, GLib.Variant("(%s)" % _SIGNATURES[m], a)) for n, m, a in self.events
                        if n > args[0]]
                last = self.last_event
            invocation.return_value(GLib.Variant("(a(tsv)t)", (kept, last)))
        elif method == "MarkRead":
            invocation.return_value(None)
        elif method == "SendText":
            invocation.return_value(GLib.Variant("(s)", ("fake-%d" % len(self.calls),)))
        else:
            invocation.return_dbus_error("org.freedesktop.DBus.Error.UnknownMethod", method)
        if method in self.after_reply:
            self.after_reply[method](self)

    def _get_property(self, conn, sender, path, iface, name):
        with self._lock:
            self.calls.append(("Get", (name,)))
        key = "Get:" + name
        if key in self.hooks:
            self.hooks[key](self)
        value = GLib.Variant("t", self.last_event) if name == "LastEvent" else self.props[name]
        if key in self.after_reply:
            # Gio sends the reply once this returns: an idle callback comes after it
            src = GLib.idle_source_new()
            src.set_callback(lambda *_: (self.after_reply[key](self), False)[1])
            src.attach(GLib.MainContext.get_thread_default())
        return value

    def _run(self):
        ctx = GLib.MainContext.new()
        ctx.push_thread_default()
        try:
            self.conn = Gio.DBusConnection.new_for_address_sync(
                self.bus.address,
                Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
                None, None)
            self.conn.set_exit_on_close(False)
            self.unique_name = self.conn.get_unique_name()
            node = Gio.DBusNodeInfo.new_for_xml(FAKE_IMD_XML)
            self.conn.register_object(IM_PATH, node.interfaces[0], self._on_call, self._get_property, None)
            r = self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                    "RequestName", GLib.Variant("(su)", (IM_NAME, 4)), None, 0, 10000, None)
            if r.unpack()[0] != 1:
                raise RuntimeError("cannot own %s: %r" % (IM_NAME, r.unpack()))
            self._loop = GLib.MainLoop.new(ctx, False)
        except Exception as e:      # reported by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run()
        try:
            self.conn.close_sync(None)
        except GLib.Error:
            pass
        ctx.pop_thread_default()

    # -- from the test ------------------------------------------------------------------------
    def start(self, timeout=10.0):
        self._thread = threading.Thread(target=self._run, name="fake-imd", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error:
            raise RuntimeError("the fake imd did not start: %s" % self._error)
        return self

    def run(self, fn, timeout=30.0):
        """fn(self) on the fake's thread; its result."""
        done = threading.Event()
        out = {}

        def call():
            try:
                out["value"] = fn(self)
            except Exception as e:      # re-raised below
                out["error"] = e
            done.set()
            return False
        GLib.MainContext.invoke_full(self._loop.get_context(), GLib.PRIORITY_DEFAULT, call)
        if not done.wait(timeout):
            raise TimeoutError("the fake imd did not run %r" % fn)
        if "error" in out:
            raise out["error"]
        return out.get("value")

    def calls_of(self, method):
        with self._lock:
            return [a for m, a in self.calls if m == method]

    def stop(self):
        if self._thread.is_alive() and getattr(self, "_loop", None):
            self._loop.quit()
            self._thread.join(10)


class Rogue:
    """Another client of the bus, neither imd nor a notification server nor the
    bus: it sends signals straight to one connection (unicast, as anyone may)
    and records the method calls that reach it."""

    def __init__(self, bus):
        self.bus = bus
        self.client = bus.client()
        self.calls = []
        self._filter = self.client.conn.add_filter(self._on_message)

    @property
    def unique_name(self):
        return self.client.unique_name

    def _on_message(self, conn, message, incoming):
        # on Gio's worker thread: only look
        if incoming and message.get_message_type() == Gio.DBusMessageType.METHOD_CALL:
            self.calls.append((message.get_interface(), message.get_member()))
        return message

    def send(self, destination, path, interface, member, signature, *args):
        self.client.conn.emit_signal(destination, path, interface, member,
                                     GLib.Variant("(%s)" % signature, args))

    def name_owner_changed(self, destination, name, old, new):
        self.send(destination, "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameOwnerChanged",
                  "sss", name, old, new)

    def sync(self, destination):
        """A round trip to destination: what was sent before is handled there
        (one sender's messages arrive in order)."""
        self.client._call(destination, "/", "org.freedesktop.DBus.Peer", "Ping", None, (), 20.0)

    def close(self):
        self.client.conn.remove_filter(self._filter)
        self.client.close()


def unique_name_of(client, pid):
    """The bus connection of process pid (one of the frontends), or None."""
    for name in client.call_bus("ListNames"):
        if not name.startswith(":"):
            continue
        try:
            if client.call_bus("GetConnectionUnixProcessID", "s", (name,)) == pid:
                return name
        except Exception:   # gone meanwhile
            continue
    return None


__all__ = ["Xvfb", "Dunst", "NotifyMock", "NotifyMonitor", "ImNotify", "im_notify_path",
           "FakeImd", "Rogue", "incoming", "unique_name_of", "variant_dict"]
