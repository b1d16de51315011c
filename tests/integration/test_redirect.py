"""HTTP redirects: a refusal like any other, never a crash.

libwebsockets 4.1 follows a 3xx by resetting the connection, which trips an
assertion in its GLib event library: imd aborted whenever the server of a
file someone sent (or a WebSocket endpoint) answered with a redirect. imd
does not follow redirects; the download, upload or login fails with a
reason, and imd stays up. The redirecting server is Python's http.server on
127.0.0.1.
"""

import http.server

import pytest

from harness.asserts import raises_im_error
from harness.util import http_server
from test_rich import _media_raw, wait_in


class _Redirect(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.hits.append(self.path)
        self.send_response(302)
        self.send_header("Location", "http://127.0.0.1:%d/elsewhere" % self.server.server_port)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def redirector():
    with http_server(_Redirect) as server:
        yield server


def test_download_redirected(client, imd, logged_in, peer, redirector):
    me = logged_in.jid
    url = "http://127.0.0.1:%d/up/photo.jpg" % redirector.server_port
    mid, raw = _media_raw(me, url)
    start = client.mark()
    peer.send_raw(raw)
    peer.send_message(me, "sync")
    wait_in(client, "sync", start)
    hits = len(redirector.hits)
    with raises_im_error("Failed") as ei:
        client.call_fd("FetchMedia", "ss", (peer.jid, mid), timeout=30)
    assert "redirect" in ei.value.message, ei.value.message
    assert redirector.hits[hits:] == ["/up/photo.jpg"], "imd followed the redirect"
    assert imd.running and client.name_has_owner()
    # the session goes on
    peer.send_message(me, "still here")
    wait_in(client, "still here", start)


def test_websocket_endpoint_redirected(client, imd, alice, redirector):
    url = "ws://127.0.0.1:%d/xmpp-websocket" % redirector.server_port
    with raises_im_error("Network"):
        client.login(alice.jid, alice.password, url)
    assert imd.running and client.name_has_owner()
    assert client.get_property("NetState") == "disconnected"
    client.login_account(alice)
    assert client.get_property("Ready") is True
