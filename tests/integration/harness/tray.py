"""The tray side of the desktop: a real StatusNotifierWatcher + host
(ayatana-indicator-application-service) and im-tray itself, on a test's bus.

ayatana-indicator-application-service runs headless: it needs a session bus
and nothing else (no display). It owns org.kde.StatusNotifierWatcher and
org.ayatana.indicator.application; its GetApplications lists the items it
shows: the registered items whose Status is not Passive, with icon and title.

The menu is read the way a panel reads it: GetLayout over D-Bus, or
/usr/libexec/dbusmenu-dumper (libdbusmenu-glib's own client).
"""

import json
import os
import re
import signal
import subprocess
import tempfile
import time

from .bus import DBusCallError, DBusClient
from .imd import _find, sanitizer_env
from .util import die_with_parent, sanitizer_report, stop_process, terminate

HOST_EXE = "/usr/libexec/ayatana-indicator-application/ayatana-indicator-application-service"
DUMPER_EXE = "/usr/libexec/dbusmenu-dumper"

WATCHER_NAME = "org.kde.StatusNotifierWatcher"
HOST_NAME = "org.ayatana.indicator.application"
HOST_PATH = "/org/ayatana/indicator/application/service"
HOST_IFACE = "org.ayatana.indicator.application.service"

SNI_PATH = "/StatusNotifierItem"
SNI_IFACE = "org.kde.StatusNotifierItem"
MENU_PATH = "/MenuBar"
MENU_IFACE = "com.canonical.dbusmenu"

# GetApplications' a(sisossssss), field by field
APP_FIELDS = ("icon", "position", "dbus_name", "menu", "icon_theme_path", "label",
              "guide", "accessible_desc", "id", "title")


def im_tray_path():
    return _find("im-tray", os.path.join("clients", "im-tray", "im-tray"))


def wait_until(predicate, timeout=15.0, what="condition", interval=0.05):
    """predicate() until it returns something true; raises AssertionError
    with the last value on timeout (so a failed test says what it saw)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.0fs waiting for %s; last value: %r"
                                 % (timeout, what, last))
        time.sleep(interval)


def _headless_env(bus, home):
    env = bus.env()
    for k in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(k, None)
    env["HOME"] = home
    env["XDG_RUNTIME_DIR"] = os.path.join(home, "runtime")
    env["XDG_CONFIG_HOME"] = os.path.join(home, "config")
    env["XDG_DATA_HOME"] = os.path.join(home, "data")
    env["XDG_CACHE_HOME"] = os.path.join(home, "cache")
    os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
    return env


class TrayHost:
    """ayatana-indicator-application-service on the test bus: the
    StatusNotifierWatcher and a host that shows items."""

    def __init__(self, bus, tmpdir=None):
        self.bus = bus
        self.dir = tempfile.mkdtemp(prefix="tray-host-", dir=tmpdir)
        self.proc = None
        self.runs = 0
        self.client = bus.client()

    def start(self, timeout=15.0):
        self.runs += 1
        self._log = open(os.path.join(self.dir, "host.%d.log" % self.runs), "wb")
        self.proc = subprocess.Popen([HOST_EXE], env=_headless_env(self.bus, self.dir),
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     cwd=self.dir, start_new_session=True,
                                     preexec_fn=die_with_parent)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("the tray host exited with %s:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            if not self.client.name_owner(WATCHER_NAME):
                return False
            try:
                self.applications()
                return True
            except DBusCallError:
                return False
        wait_until(up, timeout, "the StatusNotifierWatcher and host")
        return self

    def applications(self):
        """What the host shows: a list of dicts (APP_FIELDS)."""
        apps = self.client._call(HOST_NAME, HOST_PATH, HOST_IFACE, "GetApplications", None, (), 10.0)
        return [dict(zip(APP_FIELDS, a)) for a in apps]

    def application(self, dbus_name):
        """The host's entry for the item of that bus name, or None."""
        for a in self.applications():
            if a["dbus_name"] == dbus_name:
                return a
        return None

    def registered_items(self):
        return self.client._call(WATCHER_NAME, "/StatusNotifierWatcher",
                                 "org.freedesktop.DBus.Properties", "Get", "ss",
                                 (WATCHER_NAME, "RegisteredStatusNotifierItems"), 10.0)

    def log_text(self):
        out = []
        for i in range(1, self.runs + 1):
            try:
                with open(os.path.join(self.dir, "host.%d.log" % i), errors="replace") as f:
                    out.append(f.read())
            except OSError:
                pass
        return "".join(out)

    def kill(self, sig=signal.SIGKILL):
        stop_process(self.proc, sig)
        self._close()

    def stop(self):
        stop_process(self.proc)
        self._close()
        if self.client is not None:
            self.client.close()
            self.client = None

    def _close(self):
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


class ImTray:
    """The im-tray under test, on the test bus. stop() checks that it exited
    cleanly (0 on SIGTERM) without sanitizer reports."""

    def __init__(self, bus, tmpdir=None):
        self.bus = bus
        self.dir = tempfile.mkdtemp(prefix="im-tray-", dir=tmpdir)
        self.proc = None
        self.problems = []
        self.log_path = os.path.join(self.dir, "im-tray.log")
        self._item = None
        self._menu = None

    def start(self, timeout=15.0):
        exe = im_tray_path()
        if not os.path.exists(exe):
            raise AssertionError("im-tray is not built: %s (set IMD_BUILD_DIR)" % exe)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([exe], env=sanitizer_env(_headless_env(self.bus, self.dir)),
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     cwd=self.dir, start_new_session=True,
                                     preexec_fn=die_with_parent)
        probe = self.bus.client()
        try:
            def owned():
                if self.proc.poll() is not None:
                    raise AssertionError("im-tray exited with %s:\n%s"
                                         % (self.proc.returncode, self.log_text()))
                return probe.name_owner(self.bus_name)
            wait_until(owned, timeout, "im-tray to own " + self.bus_name)
        finally:
            probe.close()
        # signal recorders of the item and the menu
        self._item = DBusClient(self.bus.address, self.bus_name, SNI_PATH, SNI_IFACE)
        self._menu = DBusClient(self.bus.address, self.bus_name, MENU_PATH, MENU_IFACE)
        return self

    @property
    def bus_name(self):
        return "org.kde.StatusNotifierItem-%d-1" % self.proc.pid

    @property
    def item(self):
        """DBusClient of /StatusNotifierItem: get_property(), wait_signal()."""
        return self._item

    @property
    def menu(self):
        """DBusClient of /MenuBar: call(), wait_signal()."""
        return self._menu

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # -- what a panel reads ------------------------------------------------------------
    def status(self):
        return self.item.get_property("Status")

    def tooltip(self):
        """(icon, title, description)"""
        icon, _pixmaps, title, text = self.item.get_property("ToolTip")
        return icon, title, text

    def layout(self):
        """(revision, [(id, props), ...]) of the root's children, by GetLayout."""
        revision, (_root, _props, children) = self.menu.call("GetLayout", "iias", (0, -1, []))
        return revision, [(c[0], c[1]) for c in children]

    def items(self):
        return self.layout()[1]

    def find_item(self, label_part):
        """(id, props) of the first menu item whose label contains label_part."""
        for i, props in self.items():
            if label_part in props.get("label", ""):
                return i, props
        return None

    def dump_menu(self, timeout=15.0):
        """The menu as libdbusmenu's client sees it (dbusmenu-dumper): the
        root's dict, children under "submenu"."""
        r = subprocess.run([DUMPER_EXE, "--dbus-name=" + self.bus_name, "--dbus-object=" + MENU_PATH],
                           env=_headless_env(self.bus, self.dir), capture_output=True, text=True,
                           timeout=timeout)
        assert r.returncode == 0, "dbusmenu-dumper failed (%d): %s" % (r.returncode, r.stderr)
        # GVariant text: strings in single quotes; make it JSON
        def requote(m):
            return json.dumps(m.group(1).replace("\\'", "'"))
        return json.loads(re.sub(r"'((?:[^'\\]|\\.)*)'", requote, r.stdout))

    def click(self, item_id, check=True):
        """Click a menu item as a panel does, with busctl: CompletedProcess."""
        r = subprocess.run(["busctl", "--address=" + self.bus.address, "call", self.bus_name,
                            MENU_PATH, MENU_IFACE, "Event", "isvu", "--", str(item_id), "clicked",
                            "s", "", "0"], capture_output=True, text=True, timeout=15)
        if check:
            assert r.returncode == 0, "Event %s failed: %s" % (item_id, r.stderr)
        return r

    # -- lifecycle --------------------------------------------------------------------------
    def _check(self, rc, expected):
        report = sanitizer_report(self.log_text())
        if report:
            self.problems.append("sanitizer report: " + report)
        if rc not in expected:
            self.problems.append("im-tray exited with %s (expected %s)" % (rc, expected))

    def wait_exit(self, timeout=10.0):
        """Wait for im-tray to exit by itself; returns the status (None on
        timeout). A sanitizer report is a problem whatever the status."""
        if self.proc is None:
            return None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._check(rc, (rc,))
        self._close()
        return rc

    def _close(self):
        for c in (self._item, self._menu):
            if c is not None:
                c.close()
        self._item = self._menu = None
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def stop(self, timeout=10.0):
        for c in (self._item, self._menu):
            if c is not None:
                c.close()
        self._item = self._menu = None
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._check(terminate(self.proc, timeout, self.problems, "im-tray"), (0,))
        else:
            self._check(self.proc.returncode, (0,))
        rc = self.proc.returncode
        self._close()
        return rc

