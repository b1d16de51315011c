"""imd over wss:// (RFC 7395 WebSocket over TLS) against a real Prosody serving
https on 127.0.0.1, with certificates from a throwaway CA made by the openssl CLI.

The host name in the URL is "localhost"; the good certificate names
DNS:localhost and IP:127.0.0.1. imd must trust the CA only when it is handed
over in the `ca_file` Login option, and must refuse a certificate for another
host name or one that has expired (org.example.IM.Error.Network).
"""

import http.server
import os
import subprocess
import time
import types
import uuid

import pytest

from harness.asserts import raises_im_error
from harness.peer import Peer
from harness.prosody import Prosody
from harness.util import http_server

OPENSSL_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = imd test CA
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ ca ]
default_ca = testca
[ testca ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
commonName = supplied
[ srv_localhost ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[ srv_wrong_host ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
"""


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "openssl %s failed (%d):\n%s%s" % (
        " ".join(args), r.returncode, r.stdout, r.stderr)
    return r.stdout


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """A throwaway CA and three server certificates signed by it (same key):
    good (localhost, 127.0.0.1), wrong_host (wrong.example only), expired
    (localhost, valid only in January 2020)."""
    d = str(tmp_path_factory.mktemp("tls-ca"))
    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write(OPENSSL_CNF.format(dir=d))
    os.makedirs(os.path.join(d, "newcerts"))
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")

    _openssl("req", "-x509", "-config", cnf, "-extensions", "v3_ca", "-newkey", "rsa:2048",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650",
             "-subj", "/CN=imd test CA " + uuid.uuid4().hex[:8], cwd=d)
    _openssl("req", "-new", "-config", cnf, "-newkey", "rsa:2048", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)

    def sign(out, extensions, *validity):
        _openssl("ca", "-batch", "-config", cnf, "-cert", "ca.pem", "-keyfile", "ca.key",
                 "-in", "server.csr", "-out", out, "-extensions", extensions, "-notext",
                 *validity, cwd=d)
        return os.path.join(d, out)

    # a self-signed certificate (its own issuer, another key) for the right name
    _openssl("req", "-x509", "-config", cnf, "-newkey", "rsa:2048", "-nodes",
             "-keyout", "self-signed.key", "-out", "self-signed.pem", "-days", "30",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:FALSE", cwd=d)

    certs = types.SimpleNamespace(
        dir=d,
        self_signed=os.path.join(d, "self-signed.pem"),
        self_signed_key=os.path.join(d, "self-signed.key"),
        ca=os.path.join(d, "ca.pem"),
        key=os.path.join(d, "server.key"),
        good=sign("good.pem", "srv_localhost", "-days", "30"),
        wrong_host=sign("wrong-host.pem", "srv_wrong_host", "-days", "30"),
        expired=sign("expired.pem", "srv_localhost",
                     "-startdate", "20200101000000Z", "-enddate", "20200201000000Z"),
    )
    # the certificates are what they claim to be, checked by openssl itself
    for cert, err in ((certs.good, None), (certs.wrong_host, "hostname mismatch"),
                      (certs.expired, "certificate has expired")):
        r = subprocess.run(["openssl", "verify", "-CAfile", certs.ca,
                            "-verify_hostname", "localhost", cert],
                           capture_output=True, text=True, timeout=30)
        if err is None:
            assert r.returncode == 0, r.stdout + r.stderr
        else:
            assert r.returncode != 0 and err in r.stdout + r.stderr, r.stdout + r.stderr
    return certs


@pytest.fixture(scope="module")
def tls_servers(tls_certs):
    """Factory: a Prosody serving https/wss with the named certificate (one per
    certificate for the module, started on first use)."""
    servers = {}

    def get(which="good"):
        p = servers.get(which)
        if p is None:
            key = getattr(tls_certs, which + "_key", tls_certs.key)
            p = servers[which] = Prosody(https_cert=(getattr(tls_certs, which), key))
            p.start()
        elif not p.running:
            p.start()
        return p
    yield get
    for p in servers.values():
        p.cleanup()


def served_verify_result(prosody, ca):
    """openssl s_client's verdict on what the server presents to a client that
    asks for localhost (SNI and host-name check) and trusts ca."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % prosody.https_port,
                        "-servername", "localhost", "-verify_hostname", "localhost",
                        "-CAfile", ca],
                       input="", capture_output=True, text=True, timeout=20)
    for line in r.stdout.splitlines():
        if "Verify return code:" in line:
            return line.split("Verify return code:", 1)[1].strip()
    raise AssertionError("no TLS handshake with 127.0.0.1:%d:\n%s%s"
                         % (prosody.https_port, r.stdout, r.stderr))


@pytest.fixture
def dump_logs(request, imd):
    """On failure, show the imd stderr (the imd fixture does) and Prosody logs."""
    servers = []
    yield servers
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for p in servers:
            print("\n----- prosody (https :%s) log tail -----\n%s" % (p.https_port, p.log_tail(40)))


def _wait_disconnected(client, timeout=10.0):
    deadline = time.monotonic() + timeout
    while client.get_property("NetState") != "disconnected":
        assert time.monotonic() < deadline, "NetState stays %r" % client.get_property("NetState")
        time.sleep(0.1)


def _assert_refused(client, imd, prosody, ca_file=None, reason=None):
    jid, pw = prosody.new_account("alice")
    opts = {"ca_file": ca_file} if ca_file else {}
    log_before = len(prosody.log_tail(10 ** 9))
    start = client.mark()
    t0 = time.monotonic()
    with raises_im_error("Network") as ei:
        client.login(jid, pw, prosody.wss_url, **opts)
    assert time.monotonic() - t0 < 30, "the refusal took %.1fs" % (time.monotonic() - t0)
    assert client.get_property("Ready") is False
    _wait_disconnected(client)
    client.pump(0.5)
    for s in client.signals[start:]:
        if (s.interface == "org.freedesktop.DBus.Properties" and s.member == "PropertiesChanged"
                and "Ready" in s.args[1]):
            assert s.args[1]["Ready"] is False, "Ready went true during a refused login"
    assert imd.running, "imd exited after a TLS failure"
    assert client.name_has_owner()
    # no credentials went out: the server saw no stream at all, let alone SASL
    new_log = prosody.log_tail(10 ** 9)[log_before:]
    assert "<auth" not in new_log and "<response" not in new_log and "<open" not in new_log, new_log
    if reason:
        # the user is told why, in OpenSSL's words
        assert "certificate" in ei.value.message and reason in ei.value.message, ei.value.message
    return ei.value


# -- 1. the right CA, the right host name: logged in, messages flow ----------------

def test_wss_with_ca_file_logs_in_and_sends(client, imd, tls_servers, tls_certs, dump_logs):
    p = tls_servers("good")
    dump_logs.append(p)
    assert served_verify_result(p, tls_certs.ca).startswith("0 ")
    alice_jid, alice_pw = p.new_account("alice")
    bob_jid, bob_pw = p.new_account("bob")
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    try:
        start = client.mark()
        assert p.wss_url.startswith("wss://localhost:")
        assert client.login(alice_jid, alice_pw, p.wss_url, ca_file=tls_certs.ca) is None
        assert client.get_property("Ready") is True
        assert client.get_property("NetState") == "connected"
        assert client.get_property("Account") == alice_jid
        client.wait_property("Ready", lambda v: v is True, start=start, timeout=5)
        # the server offers PLAIN inside TLS too; imd still takes SCRAM
        log = p.log_tail(10 ** 9)
        assert "mechanism='SCRAM-SHA-" in log and "mechanism='PLAIN'" not in log

        text = "over TLS " + uuid.uuid4().hex
        mid = client.call("SendText", "ss", (bob_jid, text))
        assert mid
        m = bob.wait_for_body(text, timeout=15)
        assert m["from"].split("/")[0] == alice_jid
    finally:
        bob.stop()


# -- 2. the throwaway CA is not in the system store -----------------------------------

def test_wss_without_ca_file_is_refused(client, imd, tls_servers, tls_certs, dump_logs):
    p = tls_servers("good")
    dump_logs.append(p)
    assert served_verify_result(p, tls_certs.ca).startswith("0 ")
    _assert_refused(client, imd, p, ca_file=None, reason="unable to get local issuer certificate")

    # imd is not stuck: the same server with the CA handed over works
    jid, pw = p.new_account("alice")
    assert client.login(jid, pw, p.wss_url, ca_file=tls_certs.ca) is None
    assert client.get_property("Ready") is True


# -- 3. a certificate for another host name, signed by the trusted CA ------------------

def test_wss_wrong_host_name_is_refused(client, imd, tls_servers, tls_certs, dump_logs):
    p = tls_servers("wrong_host")
    dump_logs.append(p)
    assert "hostname mismatch" in served_verify_result(p, tls_certs.ca)
    _assert_refused(client, imd, p, ca_file=tls_certs.ca, reason="hostname mismatch")


# -- 4. an expired certificate, signed by the trusted CA ------------------------------------

def test_wss_expired_certificate_is_refused(client, imd, tls_servers, tls_certs, dump_logs):
    p = tls_servers("expired")
    dump_logs.append(p)
    assert "certificate has expired" in served_verify_result(p, tls_certs.ca)
    _assert_refused(client, imd, p, ca_file=tls_certs.ca, reason="certificate has expired")


# -- 5. a self-signed certificate for the right name --------------------------------------

def test_wss_self_signed_certificate_is_refused(client, imd, tls_servers, tls_certs, dump_logs):
    p = tls_servers("self_signed")
    dump_logs.append(p)
    verdict = served_verify_result(p, tls_certs.ca)
    assert "self" in verdict and "signed" in verdict, verdict
    # neither without a ca_file nor with the (unrelated) CA of the other tests
    err = _assert_refused(client, imd, p, ca_file=None)
    assert "self" in err.message and "signed" in err.message, err.message
    err = _assert_refused(client, imd, p, ca_file=tls_certs.ca)
    assert "self" in err.message and "signed" in err.message, err.message


# -- 6. PLAIN: only inside TLS, and only when SCRAM is not offered ---------------------

PLAIN_ONLY = 'disable_sasl_mechanisms = { "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS" }\n'


@pytest.fixture
def plain_only_server(tls_certs):
    p = Prosody(extra_config=PLAIN_ONLY, https_cert=(tls_certs.good, tls_certs.key))
    p.start()
    yield p
    p.cleanup()


def test_plain_is_refused_without_tls(client, imd, plain_only_server):
    p = plain_only_server
    jid, pw = p.new_account("alice")
    with raises_im_error("NotSupported") as ei:
        client.login(jid, pw, p.ws_url)
    assert "PLAIN" in ei.value.message
    assert client.get_property("Ready") is False
    # imd never offered the password in clear
    log = p.log_tail(100000)
    assert "<auth" not in log, log


def test_plain_is_used_inside_tls(client, imd, plain_only_server, tls_certs):
    p = plain_only_server
    jid, pw = p.new_account("alice")
    assert client.login(jid, pw, p.wss_url, ca_file=tls_certs.ca) is None
    assert client.get_property("Ready") is True
    assert "mechanism='PLAIN'" in p.log_tail(100000)


# -- files over https ----------------------------------------------------------------------

class _OneFile(http.server.BaseHTTPRequestHandler):
    """Serves server.data at any path (over https: see http_server's tls)."""
    def do_GET(self):
        self.server.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.server.data)))
        self.end_headers()
        self.wfile.write(self.server.data)

    def log_message(self, *args):
        pass


def _send_file_url(client, peer, to, url):
    """peer sends to a message with url as its file (XEP-0066); its id, once
    imd announced it."""
    mid = uuid.uuid4().hex
    start = client.mark()
    peer.send_raw("<message to='%s' type='chat' id='%s'><body>%s</body><x xmlns='jabber:x:oob'>"
                  "<url>%s</url></x><origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>"
                  % (to, mid, url, url, mid))
    client.wait_signal("MessageReceived", lambda a: a[0]["id"] == mid, start=start)
    return mid


def _stored(client, conv, mid):
    msgs, _ = client.call("GetMessages", "ssu", (conv, "", 100))
    return next(m for m in msgs if m["id"] == mid)


def test_fetch_media_trusts_the_login_ca_file(client, imd, tls_servers, tls_certs, dump_logs):
    """A contact on a server whose certificates come from a private CA sends
    a file kept on that server's https: FetchMedia verifies it with the
    login's ca_file, as the XMPP connection and uploads do. Without the CA
    (a login over plain ws:// that names none) the same file fails TLS:
    Network, saying that the certificate was refused and why (OpenSSL's
    words, not lws's "SSL err 1"), and no request reaches the server."""
    p = tls_servers("good")
    dump_logs.append(p)
    alice_jid, alice_pw = p.new_account("alice")
    bob_jid, bob_pw = p.new_account("bob")
    bob = Peer(bob_jid, bob_pw, "127.0.0.1", p.c2s_port)
    bob.start()
    data = os.urandom(20000)
    try:
        with http_server(_OneFile, tls=(tls_certs.good, tls_certs.key)) as files:
            files.data = data
            url = "https://localhost:%d/up/photo.jpg" % files.server_port
            client.login(alice_jid, alice_pw, p.ws_url)
            mid = _send_file_url(client, bob, alice_jid, url)
            with raises_im_error("Network") as ei:
                client.call_fd("FetchMedia", "ss", (bob_jid, mid), timeout=30)
            assert "unable to get local issuer certificate" in ei.value.message, ei.value.message
            assert files.hits == []
            assert "path" not in _stored(client, bob_jid, mid)

            client.call("Logout")
            client.login(alice_jid, alice_pw, p.wss_url, ca_file=tls_certs.ca)
            fd = client.call_fd("FetchMedia", "ss", (bob_jid, mid), timeout=30)
            with os.fdopen(fd, "rb") as f:
                assert f.read() == data
            assert files.hits == ["/up/photo.jpg"]
            assert "path" in _stored(client, bob_jid, mid)
    finally:
        bob.stop()
