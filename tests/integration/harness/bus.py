"""A private dbus-daemon per test, and a Gio-based D-Bus client for imd.

The bus runs from the project's tests/dbus-session.conf, wrapped in a per-test
config that adds the test's own (empty) service directory, so nothing is ever
auto-started on it.
"""

import os
import subprocess
import tempfile
import time

from gi.repository import Gio, GLib

from .util import REPO, die_with_parent, stop_process

BUS_CONF = os.path.join(REPO, "tests", "dbus-session.conf")

IM_NAME = "org.example.IM"
IM_PATH = "/org/example/IM"
IM_IFACE = "org.example.IM"
IM_ERROR = "org.example.IM.Error."


class Bus:
    def __init__(self, tmpdir=None, limits=None):
        """limits: dbus-daemon <limit>s over the config's, e.g.
        {"max_message_size": 4096}."""
        self.dir = tempfile.mkdtemp(prefix="imd-bus-", dir=tmpdir)
        self.servicedir = os.path.join(self.dir, "services")
        os.makedirs(self.servicedir)
        self.config = os.path.join(self.dir, "bus.conf")
        extra = "".join('  <limit name="%s">%d</limit>\n' % kv for kv in (limits or {}).items())
        with open(self.config, "w") as f:
            f.write('<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus '
                    'Configuration 1.0//EN"\n "http://www.freedesktop.org/standards/'
                    'dbus/1.0/busconfig.dtd">\n<busconfig>\n'
                    '  <include>%s</include>\n  <servicedir>%s</servicedir>\n%s'
                    '</busconfig>\n' % (BUS_CONF, self.servicedir, extra))
        self.proc = None
        self.address = None

    def start(self, timeout=10.0):
        self._stderr = open(os.path.join(self.dir, "dbus-daemon.log"), "wb")
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--config-file=" + self.config, "--nofork",
             "--print-address=1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
            start_new_session=True, preexec_fn=die_with_parent)
        # the address is the first line on stdout
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline().decode().strip()
        if not line or time.monotonic() > deadline:
            stop_process(self.proc)
            raise RuntimeError("dbus-daemon printed no address")
        self.address = line
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def env(self, base=None):
        env = dict(os.environ if base is None else base)
        env["DBUS_SESSION_BUS_ADDRESS"] = self.address
        env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        return env

    def kill(self, sig=9):
        """Make the bus go away (SIGKILL by default)."""
        stop_process(self.proc, sig)

    def stop(self):
        stop_process(self.proc)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        if getattr(self, "_stderr", None):
            self._stderr.close()
            self._stderr = None

    def client(self):
        return DBusClient(self.address)


class DBusCallError(Exception):
    """A failed D-Bus call. .name is the D-Bus error name (None for local errors
    such as a timeout), .message the text the service sent."""

    def __init__(self, name, message, method=None):
        super().__init__("%s: %s" % (name, message))
        self.name = name
        self.message = message
        self.method = method

    @property
    def short(self):
        """"AuthFailed" for "org.example.IM.Error.AuthFailed"."""
        if self.name and self.name.startswith(IM_ERROR):
            return self.name[len(IM_ERROR):]
        return self.name


def _variant_args(signature, args):
    if signature is None or signature == "":
        if args:
            raise ValueError("arguments given but no signature")
        return None
    return GLib.Variant("(%s)" % signature, tuple(args))


class Signal:
    __slots__ = ("sender", "path", "interface", "member", "args", "time")

    def __init__(self, sender, path, interface, member, args):
        self.sender, self.path, self.interface = sender, path, interface
        self.member, self.args = member, args
        self.time = time.time()

    def key(self):
        return (self.interface, self.member, self.args)

    def __repr__(self):
        return "Signal(%s.%s%r)" % (self.interface, self.member, self.args)


class PendingCall:
    def __init__(self, client, method):
        self.client, self.method = client, method
        self.done = False
        self._value = None
        self._error = None

    def _done(self, conn, res):
        try:
            v = conn.call_finish(res)
            self._finish(v)
        except GLib.Error as e:
            self._fail(e)
        self.done = True

    def _done_with_fds(self, conn, res):
        try:
            v, _ = conn.call_with_unix_fd_list_finish(res)
            self._finish(v)
        except GLib.Error as e:
            self._fail(e)
        self.done = True

    def _finish(self, v):
        vals = v.unpack() if v is not None else ()
        self._value = None if len(vals) == 0 else vals[0] if len(vals) == 1 else vals

    def _fail(self, e):
        name = Gio.DBusError.get_remote_error(e) if Gio.DBusError.is_remote_error(e) else None
        message = e.message
        if name and message.startswith("GDBus.Error:%s: " % name):
            message = message[len("GDBus.Error:%s: " % name):]
        self._error = DBusCallError(name, message, self.method)

    def poll(self):
        self.client.pump()
        return self.done

    def result(self, timeout=45.0):
        """The reply value, or raises DBusCallError."""
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > deadline:
                raise TimeoutError("no reply to %s within %.0fs" % (self.method, timeout))
            time.sleep(0.01)
        if self._error is not None:
            raise self._error
        return self._value


class DBusClient:
    """One connection to the private bus (like one frontend), with its own
    GLib.MainContext so signal delivery is driven by wait_for()."""

    def __init__(self, address, name=IM_NAME, path=IM_PATH, iface=IM_IFACE):
        self.address = address
        self.name, self.path, self.iface = name, path, iface
        self.context = GLib.MainContext.new()
        self.context.push_thread_default()
        try:
            self.conn = Gio.DBusConnection.new_for_address_sync(
                address,
                Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
                | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
                None, None)
            self.conn.set_exit_on_close(False)
            self.signals = []
            self._subs = [self.conn.signal_subscribe(
                name, None, None, path, None, Gio.DBusSignalFlags.NONE,
                self._on_signal)]
        finally:
            self.context.pop_thread_default()
        # make sure the AddMatch reached the bus before anything else happens
        self.call_bus("GetId", None, ())

    @property
    def unique_name(self):
        return self.conn.get_unique_name()

    def close(self):
        if self.conn is None:
            return
        for s in self._subs:
            self.conn.signal_unsubscribe(s)
        try:
            self.conn.close_sync(None)
        except GLib.Error:
            pass
        self.pump()
        self.conn = None

    # -- calls -------------------------------------------------------------------
    def _call(self, dest, path, iface, method, signature, args, timeout, fd_list=None):
        try:
            if fd_list is not None:
                res, out_fds = self.conn.call_with_unix_fd_list_sync(
                    dest, path, iface, method, _variant_args(signature, args), None,
                    Gio.DBusCallFlags.NO_AUTO_START, int(timeout * 1000), fd_list, None)
            else:
                res = self.conn.call_sync(
                    dest, path, iface, method, _variant_args(signature, args), None,
                    Gio.DBusCallFlags.NO_AUTO_START, int(timeout * 1000), None)
        except GLib.Error as e:
            name = Gio.DBusError.get_remote_error(e) if Gio.DBusError.is_remote_error(e) else None
            message = e.message
            if name:
                prefix = "GDBus.Error:%s: " % name
                if message.startswith(prefix):
                    message = message[len(prefix):]
            raise DBusCallError(name, message, method) from None
        vals = res.unpack() if res is not None else ()
        if fd_list is not None:
            # handles (h) are indexes into the reply's fd list: the fds themselves
            fds = out_fds.steal_fds() if out_fds is not None else []
            return [fds[v] if isinstance(v, int) and v < len(fds) else v for v in vals]
        if len(vals) == 0:
            return None
        if len(vals) == 1:
            return vals[0]
        return vals

    def call_async(self, method, signature=None, args=(), timeout=40.0):
        """Start a call without waiting; returns a PendingCall whose result()
        drives this client's main context until the reply arrives."""
        pending = PendingCall(self, method)
        self.context.push_thread_default()
        try:
            self.conn.call(self.name, self.path, self.iface, method,
                           _variant_args(signature, args), None,
                           Gio.DBusCallFlags.NO_AUTO_START, int(timeout * 1000), None,
                           pending._done)
        finally:
            self.context.pop_thread_default()
        return pending

    def call_async_with_fds(self, method, signature, args, fds, timeout=40.0):
        """call_with_fds() without waiting: a PendingCall (as call_async())."""
        pending = PendingCall(self, method)
        fd_list = Gio.UnixFDList.new()
        for fd in fds:
            fd_list.append(fd)
        self.context.push_thread_default()
        try:
            self.conn.call_with_unix_fd_list(self.name, self.path, self.iface, method,
                                             _variant_args(signature, args), None,
                                             Gio.DBusCallFlags.NO_AUTO_START, int(timeout * 1000),
                                             fd_list, None, pending._done_with_fds)
        finally:
            self.context.pop_thread_default()
        return pending

    def call(self, method, signature=None, args=(), timeout=25.0):
        """Call org.example.IM.method; returns None / the single value / a tuple."""
        return self._call(self.name, self.path, self.iface, method, signature, args, timeout)

    def call_fd(self, method, signature=None, args=(), timeout=25.0):
        """A call whose reply is one file descriptor (h): returns it as an int,
        which the caller owns."""
        vals = self._call(self.name, self.path, self.iface, method, signature, args, timeout,
                          fd_list=Gio.UnixFDList.new())
        return vals[0]

    def call_with_fds(self, method, signature, args, fds, timeout=25.0):
        """A call that passes file descriptors (h arguments): fds are ints (the
        caller keeps them; D-Bus sends duplicates), and each h in args is the
        index of its fd in fds. Returns as call() does, e.g.
        call_with_fds("SendFile", "sha{sv}", (conv, 0, {}), [fd])."""
        fd_list = Gio.UnixFDList.new()
        for fd in fds:
            fd_list.append(fd)
        vals = self._call(self.name, self.path, self.iface, method, signature, args, timeout,
                          fd_list=fd_list)
        if len(vals) == 0:
            return None
        return vals[0] if len(vals) == 1 else tuple(vals)

    def call_bus(self, method, signature=None, args=(), timeout=10.0):
        return self._call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", method, signature, args, timeout)

    def get_property(self, prop, timeout=10.0):
        return self._call(self.name, self.path, "org.freedesktop.DBus.Properties", "Get",
                          "ss", (self.iface, prop), timeout)

    def get_all_properties(self, timeout=10.0):
        return self._call(self.name, self.path, "org.freedesktop.DBus.Properties", "GetAll",
                          "s", (self.iface,), timeout)

    def introspect(self, path=None, timeout=10.0):
        return self._call(self.name, path or self.path,
                          "org.freedesktop.DBus.Introspectable", "Introspect",
                          None, (), timeout)

    def name_has_owner(self, name=IM_NAME):
        return self.call_bus("NameHasOwner", "s", (name,))

    def name_owner(self, name=IM_NAME):
        try:
            return self.call_bus("GetNameOwner", "s", (name,))
        except DBusCallError:
            return None

    # -- signals -------------------------------------------------------------------
    def _on_signal(self, conn, sender, path, iface, member, params):
        self.signals.append(Signal(sender, path, iface, member,
                                   params.unpack() if params is not None else ()))

    def pump(self, duration=0.0):
        """Dispatch pending signals; keep doing so for `duration` seconds."""
        deadline = time.monotonic() + duration
        while True:
            while self.context.iteration(False):
                pass
            if time.monotonic() >= deadline:
                return
            time.sleep(0.01)

    def wait_for(self, predicate, timeout=15.0, start=0):
        """Wait for a recorded signal (index >= start) for which predicate(sig)
        is true; returns it. The predicate sees Signal objects."""
        deadline = time.monotonic() + timeout
        checked = start
        while True:
            while self.context.iteration(False):
                pass
            while checked < len(self.signals):
                s = self.signals[checked]
                checked += 1
                if predicate(s):
                    return s
            if time.monotonic() >= deadline:
                raise TimeoutError("no matching signal within %.1fs; recorded: %r"
                                   % (timeout, self.signals[start:][-15:]))
            time.sleep(0.01)

    def wait_signal(self, member, predicate=lambda args: True, timeout=15.0, start=0):
        return self.wait_for(lambda s: s.interface == self.iface and s.member == member
                             and predicate(s.args), timeout, start)

    def wait_property(self, prop, predicate, timeout=15.0, start=0):
        """Wait for a PropertiesChanged carrying prop with predicate(value)."""
        def pred(s):
            return (s.interface == "org.freedesktop.DBus.Properties"
                    and s.member == "PropertiesChanged" and s.args[0] == self.iface
                    and prop in s.args[1] and predicate(s.args[1][prop]))
        return self.wait_for(pred, timeout, start)

    def messages_received(self, start=0):
        self.pump()
        return [s.args[0] for s in self.signals[start:]
                if s.interface == self.iface and s.member == "MessageReceived"]

    def mark(self):
        """Index to pass as start= to only look at signals after this point."""
        self.pump()
        return len(self.signals)

    # -- imd conveniences -----------------------------------------------------------
    def login(self, jid, password, url, timeout=40.0, **extra):
        opts = {"websocket_url": GLib.Variant("s", url)}
        for k, v in extra.items():
            opts[k] = v if isinstance(v, GLib.Variant) else GLib.Variant("s", v)
        return self.call("Login", "ssa{sv}", (jid, password, opts), timeout=timeout)

    def login_account(self, account, timeout=40.0):
        """account: an Account (jid, password, ws_url)."""
        return self.login(account.jid, account.password, account.ws_url, timeout=timeout)
