"""What `meson install` puts on a machine: the programs, the D-Bus activation
file, the systemd user units of imd and both frontends, the man pages and
the bash completion, each usable as installed."""

import os
import shutil
import subprocess

import pytest

from harness.imd import build_dir

PROGRAMS = ["imd", "imctl", "im-tray", "im-notify"]
UNITS = ["imd.service", "im-tray.service", "im-notify.service"]
MAN_PAGES = ["man8/imd.8", "man1/imctl.1", "man1/im-tray.1", "man1/im-notify.1"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The build installed into a scratch DESTDIR; returns (destdir, files by name)."""
    dest = str(tmp_path_factory.mktemp("destdir"))
    r = subprocess.run(["meson", "install", "-C", build_dir(), "--destdir", dest,
                        "--no-rebuild", "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    files = {}
    for base, _dirs, names in os.walk(dest):
        for n in names:
            files.setdefault(n, []).append(os.path.join(base, n))
    return dest, files


def one(files, name, under=""):
    """The one installed file called NAME (whose path contains UNDER)."""
    paths = [p for p in files.get(name, []) if under in p]
    assert len(paths) == 1, "%s%s: %r" % (under, name, files.get(name))
    return paths[0]


def test_programs_installed(installed):
    _dest, files = installed
    for p in PROGRAMS:
        path = one(files, p, "/bin/")
        assert os.access(path, os.X_OK)


def test_dbus_activation_file_points_at_installed_imd(installed):
    dest, files = installed
    path = one(files, "org.example.IM.service", "/share/dbus-1/services/")
    lines = dict(l.strip().split("=", 1) for l in open(path) if "=" in l)
    assert lines["Name"] == "org.example.IM"
    assert os.path.isfile(dest + lines["Exec"].split()[0])
    assert lines["SystemdService"] == "imd.service"
    assert "/share/dbus-1/interfaces/" in one(files, "org.example.IM.xml")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_user_units_verify(installed, tmp_path):
    """systemd-analyze verify --user on each unit, with ExecStart pointing into
    the DESTDIR (verify checks the program exists) and man pages found there
    (it checks Documentation=man: pages too)."""
    dest, files = installed
    units = []
    for u in UNITS:
        path = one(files, u, "/lib/systemd/user/")
        text = open(path).read()
        exec_line = [l for l in text.splitlines() if l.startswith("ExecStart=")][0]
        prog = exec_line.split("=", 1)[1].split()[0]
        assert os.path.isfile(dest + prog), exec_line
        assert "[Install]" in text
        with open(tmp_path / u, "w") as f:
            f.write(text.replace("ExecStart=" + prog, "ExecStart=" + dest + prog))
        units.append(u)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    man_dir = os.path.dirname(os.path.dirname(one(files, "imctl.1")))
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), MANPATH=man_dir)
    r = subprocess.run(["systemd-analyze", "verify", "--user"] + units, cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr
    # the frontends belong to the graphical session; imd is a plain session service
    for u in ("im-tray.service", "im-notify.service"):
        text = open(one(files, u, "/lib/systemd/user/")).read()
        assert "PartOf=graphical-session.target" in text
        assert "WantedBy=graphical-session.target" in text


def test_man_pages_installed_and_lint_clean(installed):
    _dest, files = installed
    for page in MAN_PAGES:
        name = os.path.basename(page)
        path = one(files, name)
        assert path.endswith("/share/man/" + page)
        r = subprocess.run(["groff", "-man", "-ww", "-z", path], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and r.stderr == "", (page, r.stderr)


def test_bash_completion_installed(installed):
    _dest, files = installed
    path = one(files, "imctl", "/share/bash-completion/completions/")
    r = subprocess.run(["bash", "-c", 'source "$1" && complete -p imctl', "-", path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "imctl" in r.stdout, r.stderr


# -- system mode -------------------------------------------------------------------------

def test_system_mode_files(installed):
    dest, files = installed
    policy = one(files, "org.example.IM.conf", "/share/dbus-1/system.d/")
    root = __import__("xml.etree.ElementTree", fromlist=["parse"]).parse(policy).getroot()
    allows = root.findall("./policy/allow")
    assert allows
    for a in allows:
        # every allow names what it allows: the name to own, the destination
        # of calls, or the sender of what is received
        assert "org.example.IM" in (a.get("own"), a.get("send_destination"), a.get("receive_sender")), a.attrib
    owners = [p.get("user") for p in root.findall("./policy") if p.find("allow[@own]") is not None]
    assert owners == ["imd"]
    default = [p for p in root.findall("./policy") if p.get("context") == "default"]
    assert default and default[0].find("deny[@send_destination='org.example.IM']") is not None
    assert default[0].find("deny[@receive_sender='org.example.IM']") is not None

    activation = one(files, "org.example.IM.service", "/share/dbus-1/system-services/")
    lines = dict(l.strip().split("=", 1) for l in open(activation) if "=" in l)
    assert lines["Exec"].split()[1:] == ["--system"] and lines["User"] == "imd"
    assert os.path.isfile(dest + lines["Exec"].split()[0])

    sysusers = open(one(files, "imd.conf", "/lib/sysusers.d/")).read()
    assert any(l.split()[:2] == ["u", "imd"] for l in sysusers.splitlines() if l and l[0] != "#")


def _system_unit_copy(installed, tmp_path):
    dest, files = installed
    path = one(files, "imd.service", "/lib/systemd/system/")
    text = open(path).read()
    prog = [l for l in text.splitlines() if l.startswith("ExecStart=")][0].split("=", 1)[1].split()[0]
    copy = tmp_path / "imd.service"
    copy.write_text(text.replace("ExecStart=" + prog, "ExecStart=" + dest + prog))
    return text, copy


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_system_unit_verifies_and_is_hardened(installed, tmp_path):
    _dest, files = installed
    text, copy = _system_unit_copy(installed, tmp_path)
    for line in ("ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=", "SystemCallFilter=@system-service", "StateDirectory=imd",
                 "StateDirectoryMode=0700", "CacheDirectoryMode=0700",
                 "UMask=0077", "Restart=on-failure", "User=imd", "Type=dbus", "BusName=org.example.IM"):
        assert line in text.splitlines(), line
    assert any(l.startswith("RestrictAddressFamilies=") for l in text.splitlines())
    assert any(l.startswith("WatchdogSec=") for l in text.splitlines())
    man_dir = os.path.dirname(os.path.dirname(one(files, "imd.8")))
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], cwd=tmp_path, capture_output=True,
                       text=True, env=dict(os.environ, MANPATH=man_dir), timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr


HOSTNAMED = "/lib/systemd/system/systemd-hostnamed.service"


def exposure(unit):
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                       capture_output=True, text=True, timeout=60)
    last = [l for l in r.stdout.splitlines() if "Overall exposure level" in l]
    if r.returncode != 0 or not last:
        pytest.skip("systemd-analyze security --offline does not work here: %s" % r.stderr.strip())
    return float(last[0].split(":")[1].split()[0])


@pytest.mark.skipif(not shutil.which("systemd-analyze") or not os.path.exists(HOSTNAMED),
                    reason="no systemd-analyze or no systemd-hostnamed unit to compare with")
def test_system_unit_exposure_at_most_hostnamed(installed, tmp_path):
    _text, copy = _system_unit_copy(installed, tmp_path)
    ours, theirs = exposure(copy), exposure(HOSTNAMED)
    print("systemd-analyze security: imd.service %.1f, systemd-hostnamed.service %.1f" % (ours, theirs))
    assert ours <= theirs
