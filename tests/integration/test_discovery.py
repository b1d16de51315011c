"""Login without websocket_url: the endpoint from the service's host-meta
(XEP-0156), else wss://DOMAIN/xmpp-websocket.

The account's domain is Prosody's, localhost. imd runs in a mount namespace
(harness.resolver) where localhost is first WEB, a loopback address of this
module's own where a Python https server on port 443 plays the domain's web
server (the test CA's certificate for localhost), then 127.0.0.1, where
Prosody serves wss:// on a port of its own. So https://localhost/ reaches
the web server, and wss://localhost:PORT/ reaches Prosody after 127.WEB
refuses. Real Prosody, real TLS (the CA trusted through ca_file).
"""

import http.server
import random
import ssl
import threading
import time

import pytest
from gi.repository import GLib

from harness import resolver
from harness.asserts import raises_im_error
from harness.bus import DBusCallError
from harness.resolver import namespace_prefix
from test_tls import tls_certs, tls_servers  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(resolver.available() is not None,
                                reason=str(resolver.available()))

WEB = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(1, 254), random.randint(2, 254))
HOST_META = """<?xml version='1.0' encoding='utf-8'?>
<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>
  <Link rel="urn:xmpp:alt-connections:xbosh" href="https://localhost/http-bind"/>
  {links}
</XRD>
"""


class _WebServer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.hits.append(self.path)
        time.sleep(self.server.delay)
        body = self.server.pages.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/xrd+xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def web(tls_certs):  # noqa: F811
    server = http.server.ThreadingHTTPServer((WEB, 443), _WebServer)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_certs.good, tls_certs.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.hits, server.pages, server.delay = [], {}, 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def imd_env():
    return {"G_MESSAGES_DEBUG": "all"}


@pytest.fixture
def imd_prefix(tmp_path):
    gai = ("precedence ::1/128 50\nprecedence ::/0 40\nprecedence 2002::/16 30\n"
           "precedence ::/96 20\nprecedence ::ffff:%s/128 45\nprecedence ::ffff:0:0/96 10\n" % WEB)
    return namespace_prefix(str(tmp_path / "etc"), hosts="%s localhost\n127.0.0.1 localhost\n" % WEB,
                            gai_conf=gai)


def serve_host_meta(web, *hrefs):
    links = "".join('<Link rel="urn:xmpp:alt-connections:websocket" href="%s"/>' % h for h in hrefs)
    web.pages.clear()
    web.pages["/.well-known/host-meta"] = HOST_META.format(links=links)


def login_without_url(client, jid, pw, ca_file, timeout=40):
    return client.call("Login", "ssa{sv}", (jid, pw, {"ca_file": GLib.Variant("s", ca_file)}),
                       timeout=timeout)


def test_the_host_meta_names_the_endpoint(client, imd, web, tls_certs, tls_servers):  # noqa: F811
    server = tls_servers("good")
    endpoint = "wss://localhost:%d/xmpp-websocket" % server.https_port
    # a plain-text endpoint first: never taken, the password would travel in clear
    serve_host_meta(web, "ws://localhost:%d/xmpp-websocket" % server.http_port, endpoint)
    hits = len(web.hits)
    jid, pw = server.new_account("alice")
    login_without_url(client, jid, pw, tls_certs.ca)
    assert client.get_property("Ready") is True
    assert client.get_property("Account") == jid
    assert web.hits[hits:] == ["/.well-known/host-meta"]
    assert "names %s" % endpoint in imd.stderr_text(), imd.stderr_text()


def test_without_a_host_meta_the_common_path(client, imd, web, tls_certs, tls_servers):  # noqa: F811
    """No host-meta (404): imd tries wss://localhost/xmpp-websocket, which
    here is the web server again (it has no WebSocket there, so the login
    fails with Network, and imd stays up)."""
    server = tls_servers("good")
    web.pages.clear()
    hits = len(web.hits)
    jid, pw = server.new_account("alice")
    with raises_im_error("Network"):
        login_without_url(client, jid, pw, tls_certs.ca)
    assert web.hits[hits:] == ["/.well-known/host-meta", "/xmpp-websocket"], web.hits[hits:]
    assert client.get_property("NetState") == "disconnected"
    assert imd.running


def test_a_host_meta_without_a_usable_endpoint_is_ignored(client, imd, web, tls_certs,  # noqa: F811
                                                            tls_servers):  # noqa: F811
    server = tls_servers("good")
    serve_host_meta(web, "ws://localhost:%d/xmpp-websocket" % server.http_port,
                    "wss://user:pw@localhost:%d/xmpp-websocket" % server.https_port)
    hits = len(web.hits)
    jid, pw = server.new_account("alice")
    with raises_im_error("Network"):
        login_without_url(client, jid, pw, tls_certs.ca)
    assert web.hits[hits:] == ["/.well-known/host-meta", "/xmpp-websocket"], web.hits[hits:]


def test_logout_during_discovery(client, imd, web, tls_certs, tls_servers):  # noqa: F811
    server = tls_servers("good")
    serve_host_meta(web, "wss://localhost:%d/xmpp-websocket" % server.https_port)
    jid, pw = server.new_account("alice")
    web.delay = 2.0         # the Logout comes while imd waits for the host-meta
    try:
        pending = client.call_async("Login", "ssa{sv}", (jid, pw, {"ca_file": GLib.Variant("s", tls_certs.ca)}))
        time.sleep(0.5)
        assert client.get_property("NetState") == "connecting"
        client.call("Logout")
    finally:
        web.delay = 0.0
    with pytest.raises(DBusCallError) as ei:
        pending.result()
    assert ei.value.short == "Cancelled" and "Logged out" in ei.value.message, ei.value
    client.pump(0.5)
    assert client.get_property("NetState") == "disconnected"
    assert client.get_property("Ready") is False
    login_without_url(client, jid, pw, tls_certs.ca)
    assert client.get_property("Ready") is True


def test_remembered_login_keeps_the_discovered_endpoint(client, imd, web, tls_certs,  # noqa: F811
                                                          tls_servers):  # noqa: F811
    """remember stores the endpoint discovery found: the next start logs in
    with it, without asking the web server again."""
    server = tls_servers("good")
    serve_host_meta(web, "wss://localhost:%d/xmpp-websocket" % server.https_port)
    jid, pw = server.new_account("alice")
    client.call("Login", "ssa{sv}", (jid, pw, {"ca_file": GLib.Variant("s", tls_certs.ca),
                                               "remember": GLib.Variant("b", True)}), timeout=40)
    assert client.get_property("Ready") is True
    web.pages.clear()
    hits = len(web.hits)
    imd.restart()
    deadline = time.monotonic() + 30
    while client.get_property("Ready") is not True:
        assert time.monotonic() < deadline, "the remembered login did not come back"
        time.sleep(0.2)
    assert client.get_property("Account") == jid
    assert web.hits[hits:] == []
