"""Login's `remember` option: imd keeps the SCRAM keys of the login (never the
password) in DATA_DIR/ACCOUNT/credentials, mode 0600, and logs in with them
by itself after a restart; a password change, Logout or a Login without
remember make it forget them."""

import base64
import configparser
import hashlib
import hmac
import os
import shutil
import stat
import subprocess
import time

import pytest
from gi.repository import GLib

from harness.asserts import raises_im_error
from harness.prosody import Prosody
from test_tls import tls_certs  # noqa: F401  (a fixture: the throwaway CA)


def creds_path(imd, account):
    return os.path.join(imd.data_dir, account.jid, "credentials")


def read_creds(path):
    cp = configparser.ConfigParser(interpolation=None)
    with open(path) as f:
        cp.read_string(f.read())
    return cp["login"]


def login_remember(client, account, remember=True):
    return client.login(account.jid, account.password, account.ws_url,
                        remember=GLib.Variant("b", remember))


def wait_until(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def change_password(prosody, account, new_password):
    """prosodyctl passwd reads the new password twice from stdin."""
    r = subprocess.run(["prosodyctl", "--config", prosody.config, "passwd", account.jid],
                       cwd=prosody.dir, input="%s\n%s\n" % (new_password, new_password),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    account.password = new_password


def test_remember_stores_keys_not_password(client, imd, alice):
    login_remember(client, alice)
    assert client.get_property("Ready") is True
    path = creds_path(imd, alice)
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.geteuid()
    assert not os.path.exists(path + ".tmp")
    raw = open(path, "rb").read()
    assert alice.password.encode() not in raw

    c = read_creds(path)
    mech = c["mechanism"]
    assert mech in ("SCRAM-SHA-1", "SCRAM-SHA-256")
    hname = "sha256" if mech == "SCRAM-SHA-256" else "sha1"
    salt = base64.b64decode(c["salt"])
    iterations = int(c["iterations"])
    salted = hashlib.pbkdf2_hmac(hname, alice.password.encode(), salt, iterations)
    # neither SaltedPassword (raw or base64) nor the password in any form
    assert salted not in raw
    assert base64.b64encode(salted) not in raw
    assert salted.hex().encode() not in raw
    assert base64.b64encode(alice.password.encode()) not in raw
    # the keys are RFC 5802's, derived from that salt and count
    assert base64.b64decode(c["client_key"]) == hmac.new(salted, b"Client Key", hname).digest()
    assert base64.b64decode(c["server_key"]) == hmac.new(salted, b"Server Key", hname).digest()
    assert c["websocket_url"] == alice.ws_url
    assert "ca_file" not in c


def test_restart_logs_in_by_itself(client, imd, alice, peer):
    login_remember(client, alice)
    imd.restart()
    wait_until(lambda: client.get_property("Ready") is True, 20, "Ready after the restart")
    assert client.get_property("NetState") == "connected"
    assert client.get_property("Account") == alice.jid
    # the session works both ways, and no Login was made
    mark = client.mark()
    peer.send_message(alice.jid, "after the restart")
    client.wait_signal("MessageReceived", lambda a: a[0]["text"] == "after the restart", start=mark)
    client.call("SendText", "ss", (peer.jid, "hello from the remembered login"))
    peer.wait_for_body("hello from the remembered login")
    assert os.path.exists(creds_path(imd, alice))


def test_password_changed_forgets(client, imd, alice, prosody):
    login_remember(client, alice)
    path = creds_path(imd, alice)
    assert os.path.exists(path)
    imd.stop()
    change_password(prosody, alice, alice.password + "-new")
    mark = client.mark()
    imd.start()
    sig = client.wait_signal("Error", lambda a: a[0].endswith(".AuthFailed"), start=mark, timeout=20)
    assert alice.jid in sig.args[1]
    wait_until(lambda: client.get_property("NetState") == "disconnected", 10, "disconnected")
    assert client.get_property("Ready") is False
    assert not os.path.exists(path)
    assert imd.running
    # no retrying in a loop: nothing connects again
    client.pump(1.5)
    assert client.get_property("NetState") == "disconnected"
    # the new password logs in (and may be remembered anew)
    login_remember(client, alice)
    assert client.get_property("Ready") is True
    assert os.path.exists(path)


def test_other_scram_variant_forgets(client, imd, alice):
    """Keys for a mechanism the server does not offer (Prosody 0.12 has only
    SCRAM-SHA-1): no other mechanism is tried, the file goes."""
    login_remember(client, alice)
    path = creds_path(imd, alice)
    imd.stop()
    text = open(path).read()
    assert "mechanism=SCRAM-SHA-1\n" in text
    c = read_creds(path)
    text = (text.replace("mechanism=SCRAM-SHA-1\n", "mechanism=SCRAM-SHA-256\n")
            .replace(c["client_key"], base64.b64encode(b"k" * 32).decode())
            .replace(c["server_key"], base64.b64encode(b"s" * 32).decode()))
    with open(path, "w") as f:
        f.write(text)
    mark = client.mark()
    imd.start()
    sig = client.wait_signal("Error", lambda a: a[0].endswith(".AuthFailed"), start=mark, timeout=20)
    assert "SCRAM-SHA-256" in sig.args[1], sig.args
    wait_until(lambda: client.get_property("NetState") == "disconnected", 10, "disconnected")
    assert not os.path.exists(path)


def test_logout_forgets(client, imd, alice):
    login_remember(client, alice)
    path = creds_path(imd, alice)
    assert os.path.exists(path)
    client.call("Logout")
    assert not os.path.exists(path)
    imd.restart()
    client.pump(1.5)
    assert client.get_property("Ready") is False
    assert client.get_property("NetState") == "disconnected"


def test_login_without_remember_writes_nothing(client, imd, alice):
    client.login_account(alice)
    assert not os.path.exists(creds_path(imd, alice))
    imd.restart()
    client.pump(1.0)
    assert client.get_property("NetState") == "disconnected"


def test_login_without_remember_removes_old_file(client, imd, alice, tmp_path):
    login_remember(client, alice)
    path = creds_path(imd, alice)
    saved = str(tmp_path / "saved-credentials")
    shutil.copy2(path, saved)
    client.call("Logout")
    assert not os.path.exists(path)
    # an old file that is still there (as if Logout had not run)
    shutil.copy2(saved, path)
    os.chmod(path, 0o600)
    login_remember(client, alice, remember=False)
    assert not os.path.exists(path)


def test_loose_permissions_refused(client, imd, alice):
    login_remember(client, alice)
    path = creds_path(imd, alice)
    imd.stop()
    os.chmod(path, 0o644)
    mark = client.mark()
    imd.start()
    sig = client.wait_signal("Error", lambda a: a[0].endswith(".NotAllowed"), start=mark, timeout=20)
    assert "0600" in sig.args[1]
    assert not os.path.exists(path)
    client.pump(1.0)
    assert client.get_property("Ready") is False
    assert client.get_property("NetState") == "disconnected"


def test_symlink_refused(client, imd, alice, tmp_path):
    login_remember(client, alice)
    path = creds_path(imd, alice)
    imd.stop()
    target = str(tmp_path / "elsewhere")
    shutil.move(path, target)
    os.symlink(target, path)
    mark = client.mark()
    imd.start()
    client.wait_signal("Error", lambda a: a[0].endswith(".NotAllowed"), start=mark, timeout=20)
    assert not os.path.lexists(path)
    assert os.path.exists(target)       # the link went, not what it pointed to
    assert client.get_property("Ready") is False


def test_remember_wrong_type(client, alice):
    with raises_im_error("InvalidArgument"):
        client.login(alice.jid, alice.password, alice.ws_url, remember=GLib.Variant("s", "yes"))


def test_imctl_login_remember(imctl, imd, client, alice):
    r = imctl.run("login", alice.jid, "--url", alice.ws_url, "--remember", input=alice.password + "\n")
    assert r.returncode == 0, r.stderr
    path = creds_path(imd, alice)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    imd.restart()
    wait_until(lambda: client.get_property("Ready") is True, 20, "Ready after the restart")


# -- over TLS: the CA file is remembered; PLAIN cannot be -----------------------------

@pytest.fixture(scope="module")
def tls_prosody(tls_certs):
    """A Prosody serving wss:// with a certificate of the throwaway CA;
    plain_only=True: one that offers PLAIN alone (inside TLS)."""
    servers = {}

    def get(plain_only=False):
        p = servers.get(plain_only)
        if p is None:
            extra = ('disable_sasl_mechanisms = { "SCRAM-SHA-1", "SCRAM-SHA-256" }'
                     if plain_only else "")
            p = servers[plain_only] = Prosody(https_cert=(tls_certs.good, tls_certs.key),
                                              extra_config=extra)
            p.start()
        return p
    yield get
    for p in servers.values():
        p.cleanup()


def test_remember_over_tls_keeps_ca_file(client, imd, tls_prosody, tls_certs):
    p = tls_prosody()
    jid, pw = p.new_account("alice")
    client.login(jid, pw, p.wss_url, ca_file=tls_certs.ca, remember=GLib.Variant("b", True))
    path = os.path.join(imd.data_dir, jid, "credentials")
    c = read_creds(path)
    assert c["websocket_url"] == p.wss_url
    assert c["ca_file"] == os.path.realpath(tls_certs.ca)
    imd.restart()
    wait_until(lambda: client.get_property("Ready") is True, 20, "Ready after the restart")


def test_remember_refused_with_plain_only(client, imd, tls_prosody, tls_certs):
    p = tls_prosody(plain_only=True)
    jid, pw = p.new_account("alice")
    with raises_im_error("NotSupported") as ei:
        client.login(jid, pw, p.wss_url, ca_file=tls_certs.ca, remember=GLib.Variant("b", True))
    assert "remember" in ei.value.message, ei.value.message
    wait_until(lambda: client.get_property("NetState") == "disconnected", 10, "disconnected")
    assert not os.path.exists(os.path.join(imd.data_dir, jid, "credentials"))
    # the server does offer PLAIN: without remember the same login works
    client.login(jid, pw, p.wss_url, ca_file=tls_certs.ca)
    assert client.get_property("Ready") is True
    assert not os.path.exists(os.path.join(imd.data_dir, jid, "credentials"))


def test_temporary_auth_failure_keeps_the_remembered_login(bus, tmp_path, client_factory):
    """A server that cannot check credentials for a moment (SASL
    temporary-auth-failure) is retried like a lost connection: the
    remembered login stays and succeeds once the server is back to normal."""
    from conftest import Account, write_config
    from harness.imd import Imd
    from harness.wsserver import WsXmppServer

    server = WsXmppServer({"alice": "alice-pw"}, mechanisms=("SCRAM-SHA-1",)).start()
    workdir = str(tmp_path / "imd")
    write_config(workdir, reconnect_min=0.2, reconnect_max=1)
    d = Imd(bus, workdir)
    d.start()
    try:
        account = Account("alice@localhost", "alice-pw", server.url)
        client = client_factory()
        login_remember(client, account)
        path = creds_path(d, account)
        assert os.path.exists(path)

        server.fail_auth = ["temporary-auth-failure", "aborted"]
        d.restart()
        client = client_factory()
        wait_until(lambda: client.get_property("Ready") is True, 20, "Ready after two failed tries")
        assert server.fail_auth == []               # both failures were met
        assert os.path.exists(path)                 # and the login was kept
        # a refusal, by contrast, forgets it
        server.fail_auth = ["not-authorized"]
        d.restart()
        client = client_factory()
        wait_until(lambda: not os.path.exists(path), 20, "the refused login forgotten")
        assert client.get_property("Ready") is False
    finally:
        d.stop()
        server.stop()
    assert not d.problems, d.problems
