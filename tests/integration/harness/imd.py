"""Launching the daemon under test: build/service/imd (or $IMD_BUILD_DIR)."""

import os
import signal
import subprocess
import time

from .util import REPO, read_logs, sanitizer_report, stop_process, terminate


def build_dir():
    d = os.environ.get("IMD_BUILD_DIR") or os.path.join(REPO, "build")
    return d if os.path.isabs(d) else os.path.join(REPO, d)


def _find(name, preferred):
    """The built program: the preferred path, else the first file of that name
    under the build dir (the issue allows sub-folders)."""
    bd = build_dir()
    p = os.path.join(bd, preferred)
    if os.path.isfile(p) and os.access(p, os.X_OK):
        return p
    for base, dirs, files in os.walk(bd):
        dirs[:] = [d for d in dirs if not d.startswith("meson-") and not d.endswith(".p")]
        if name in files:
            cand = os.path.join(base, name)
            if os.access(cand, os.X_OK):
                return cand
    return p  # does not exist: the caller reports it


def imd_path():
    return _find("imd", os.path.join("service", "imd"))


def imctl_path():
    return _find("imctl", os.path.join("clients", "imctl", "imctl"))


def sanitizer_env(env):
    env.setdefault("ASAN_OPTIONS",
                   "halt_on_error=1:abort_on_error=0:detect_leaks=1:print_stacktrace=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    env.setdefault("G_DEBUG", "fatal-criticals")
    return env


class ImdError(AssertionError):
    pass


class Imd:
    """One imd process on a given bus, with its own data and cache dirs.
    restart() keeps the dirs; stop() checks the exit status and stderr."""

    def __init__(self, bus, workdir, extra_args=(), env=None, dirs=True, extra_env=None, prefix=()):
        """env: the base environment (default: the test runner's); extra_env:
        variables set last, over imd's own XDG_* defaults (None unsets one),
        e.g. a PipeWire graph's harness.pipewire.PipeWire.env(); prefix: a
        command that exec's imd (harness.resolver.namespace_prefix())."""
        self.bus = bus
        self.dirs = dirs          # False: no --data-dir/--cache-dir (XDG defaults)
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "data")
        self.cache_dir = os.path.join(workdir, "cache")
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(self.cache_dir, exist_ok=True)
        self.extra_args = list(extra_args)
        self.prefix = list(prefix)
        self._env = env
        self.extra_env = dict(extra_env or {})
        self.proc = None
        self.runs = 0
        self.stderr_paths = []
        self.problems = []          # crashes / sanitizer reports seen so far

    @property
    def stderr_path(self):
        return self.stderr_paths[-1] if self.stderr_paths else None

    def argv(self):
        if not self.dirs:
            return [*self.prefix, imd_path(), *self.extra_args]
        return [*self.prefix, imd_path(), "--data-dir", self.data_dir, "--cache-dir",
                self.cache_dir, *self.extra_args]

    def env(self):
        env = self.bus.env(self._env)
        env["XDG_DATA_HOME"] = os.path.join(self.workdir, "xdg-data")
        env["XDG_CACHE_HOME"] = os.path.join(self.workdir, "xdg-cache")
        env["XDG_CONFIG_HOME"] = os.path.join(self.workdir, "xdg-config")
        env["XDG_RUNTIME_DIR"] = os.path.join(self.workdir, "xdg-runtime")
        os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
        env.setdefault("G_MESSAGES_DEBUG", "")
        # Prosody's upload service and the tests' own file servers speak
        # plain http on 127.0.0.1, which imd refuses otherwise (a test
        # unsets it through extra_env / imd_env to see that)
        env["IMD_TEST_LOOPBACK_HTTP"] = "1"
        for k, v in self.extra_env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return sanitizer_env(env)

    def start(self, timeout=20.0, wait=True):
        exe = imd_path()
        if not os.path.exists(exe):
            raise ImdError("imd is not built: %s (set IMD_BUILD_DIR or run "
                           "meson setup build && meson compile -C build)" % exe)
        self.runs += 1
        path = os.path.join(self.workdir, "imd-stderr.%d.log" % self.runs)
        self.stderr_paths.append(path)
        self._stderr = open(path, "wb")
        self.proc = subprocess.Popen(self.argv(), env=self.env(), stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=self._stderr,
                                     cwd=self.workdir, start_new_session=True)
        if wait:
            self.wait_owner(timeout)
        return self

    def wait_owner(self, timeout=20.0):
        """Wait until org.example.IM is owned by this process."""
        client = self.bus.client()
        try:
            deadline = time.monotonic() + timeout
            while True:
                if self.proc.poll() is not None:
                    raise ImdError("imd exited with %s before owning org.example.IM\n%s"
                                   % (self.proc.returncode, self.stderr_text()))
                owner = client.name_owner()
                if owner:
                    pid = client.call_bus("GetConnectionUnixProcessID", "s", (owner,))
                    if pid == self.proc.pid:
                        return
                if time.monotonic() > deadline:
                    raise ImdError("imd did not own org.example.IM within %.0fs\n%s"
                                   % (timeout, self.stderr_text()))
                time.sleep(0.05)
        finally:
            client.close()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self, all_runs=False):
        return read_logs(self.stderr_paths if all_runs else self.stderr_paths[-1:])

    def _check_exit(self, rc, expect_signal=None):
        text = self.stderr_text()
        report = sanitizer_report(text)
        if report:
            self.problems.append("sanitizer report in run %d: %s" % (self.runs, report))
        if rc is not None and rc < 0 and -rc != (expect_signal or 0):
            self.problems.append("imd died of signal %d in run %d" % (-rc, self.runs))
        elif rc is not None and rc > 0:
            self.problems.append("imd exited with status %d in run %d" % (rc, self.runs))

    def stop(self, timeout=15.0):
        """SIGTERM and wait. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            rc = terminate(self.proc, timeout, self.problems, "imd")
            self._check_exit(rc, expect_signal=signal.SIGTERM)
        else:
            rc = self.proc.returncode
            self._check_exit(rc)
        self.proc = None
        self._close()
        return rc

    def kill(self, sig=signal.SIGKILL):
        """Kill imd on purpose (fault tests): not reported as a problem."""
        if self.proc is None:
            return None
        rc = stop_process(self.proc, sig)
        report = sanitizer_report(self.stderr_text())
        if report:
            self.problems.append("sanitizer report in run %d: %s" % (self.runs, report))
        self.proc = None
        self._close()
        return rc

    def wait_exit(self, timeout=10.0):
        """Wait for imd to exit by itself; returns the status (None on timeout)."""
        if self.proc is None:
            return None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        report = sanitizer_report(self.stderr_text())
        if report:
            self.problems.append("sanitizer report in run %d: %s" % (self.runs, report))
        if rc < 0:
            self.problems.append("imd died of signal %d in run %d" % (-rc, self.runs))
        self.proc = None
        self._close()
        return rc

    def restart(self, timeout=20.0):
        self.stop()
        return self.start(timeout)

    def _close(self):
        if getattr(self, "_stderr", None):
            self._stderr.close()
            self._stderr = None
