"""A private bus configured like the system bus (deny by default), with imd's
policy from policy/org.example.IM.conf, for the system-mode tests.

The installed policy names the user and group `imd`; a test runs imd as
itself (root) and lets one existing group in, so the policy is rendered with
those names. Clients run as other uids with setpriv(1).
"""

import os
import re
import subprocess

from .bus import Bus
from .util import REPO

POLICY = os.path.join(REPO, "policy", "org.example.IM.conf")

# dbus-daemon's own system.conf default policy, shortened: nobody may own a
# name or call a method unless a policy allows it; signals and replies flow.
SYSTEM_DEFAULTS = """
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
  </policy>
"""

# A careless administrator's policy: everyone may call everything and hear
# every signal.
PERMISSIVE = """
  <policy context="default">
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    <allow own="org.example.IM"/>
  </policy>
"""


def render_policy(path, user, group):
    with open(POLICY) as f:
        text = f.read()
    text = re.sub(r'user="imd"', 'user="%s"' % user, text)
    text = re.sub(r'group="imd"', 'group="%s"' % group, text)
    with open(path, "w") as f:
        f.write(text)
    return path


class SystemLikeBus(Bus):
    """permissive=True adds an allow-all policy after imd's own."""

    def __init__(self, tmpdir, user, group, permissive=False):
        super().__init__(tmpdir)
        policy = render_policy(os.path.join(self.dir, "org.example.IM.conf"), user, group)
        with open(self.config, "w") as f:
            f.write('<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus '
                    'Configuration 1.0//EN"\n "http://www.freedesktop.org/standards/'
                    'dbus/1.0/busconfig.dtd">\n<busconfig>\n'
                    '  <type>system</type>\n  <listen>unix:tmpdir=/tmp</listen>\n'
                    '  <auth>EXTERNAL</auth>\n%s  <include>%s</include>\n%s'
                    '  <servicedir>%s</servicedir>\n</busconfig>\n'
                    % (SYSTEM_DEFAULTS, policy, PERMISSIVE if permissive else "",
                       self.servicedir))

    def env(self, base=None):
        env = super().env(base)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        return env

    def run_as(self, uid, gid, groups, argv, timeout=20, input=None):
        """argv as another user: uid/gid, and exactly the supplementary groups
        given (none if empty)."""
        pre = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid]
        pre += ["--groups=" + ",".join(str(g) for g in groups)] if groups else ["--clear-groups"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "DBUS_SYSTEM_BUS_ADDRESS": self.address, "HOME": "/"}
        return subprocess.run(pre + list(argv), capture_output=True, text=True, timeout=timeout,
                              env=env, input=input, cwd="/")

    def busctl_as(self, uid, gid, groups, *args):
        return self.run_as(uid, gid, groups, ["busctl", "--address=" + self.address, *args])
