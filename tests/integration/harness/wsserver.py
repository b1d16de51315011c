"""A misbehaving XMPP-over-WebSocket server (RFC 7395, subprotocol "xmpp") on
loopback, for hostile-input tests.

It takes a client through a real login — SASL SCRAM-SHA-256 / SCRAM-SHA-1
with the server signature (imd verifies it), stream restart, resource
binding, an empty roster, the initial presence — and answers the client's
IQs (an empty result; an empty, complete archive for XEP-0313 queries) and
pings. Then a test plays a script of frames on the connection: whole text
messages, one message in fragments, hand-made frames (any opcode, RSV bits,
announced length) or raw bytes. Everything the client sends is recorded.

    srv = WsXmppServer({"alice": "secret"}).start()
    client.login("alice@localhost", "secret", srv.url)
    conn = srv.connection(0)
    conn.play([text("<message ...>"), fragmented(big, 4096)])
    conn.wait_closed()          # imd ends the stream
    conn.received               # what imd sent, as text (stream error, <close/>)

Connections are numbered in the order the client opens them; a script given
to play() applies to that connection only, so a reconnecting client meets a
server that behaves. Pure Python standard library: no websockets package.
"""

import base64
import hashlib
import hmac
import os
import socket
import struct
import threading
import time
import xml.etree.ElementTree as ET

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_CLIENT = "jabber:client"
NS_MAM = "urn:xmpp:mam:2"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


# -- what a script is made of -------------------------------------------------------

def _bytes(data):
    return data.encode() if isinstance(data, str) else bytes(data)


def frame(opcode, payload=b"", fin=True, rsv=0, length=None):
    """One server frame (unmasked). length: announce another payload length
    than the payload's (a lie the client has to survive)."""
    payload = _bytes(payload)
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def text(data):
    """One WebSocket text message in one frame."""
    return ("raw", frame(OP_TEXT, data))


def fragmented(data, size):
    """One text message cut into frames of size bytes (a text frame, then
    continuation frames)."""
    data = _bytes(data)
    parts = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    out = []
    for i, part in enumerate(parts):
        out.append(frame(OP_TEXT if i == 0 else OP_CONT, part, fin=i == len(parts) - 1))
    return ("raw", b"".join(out))


def raw(data):
    """Bytes written to the socket as they are (hand-made frames)."""
    return ("raw", _bytes(data))


def pause(seconds):
    return ("pause", seconds)


# -- SCRAM, the server's side (RFC 5802) ------------------------------------------------

class ScramServer:
    def __init__(self, mech, users, iterations=4096, salts=None):
        """salts: {user: salt}, kept by the server as a real one keeps them
        with the stored keys (a new salt means a new password)."""
        self.hash = {"SCRAM-SHA-1": hashlib.sha1, "SCRAM-SHA-256": hashlib.sha256}[mech]
        self.name = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[mech]
        self.users = users
        self.iterations = iterations
        self.salts = {} if salts is None else salts

    def _hmac(self, key, msg):
        return hmac.new(key, msg, self.hash).digest()

    def first(self, client_first):
        """client-first-message -> server-first-message (bytes)."""
        gs2, _, bare = client_first.partition(b",,")
        if not gs2.startswith(b"n") and not gs2.startswith(b"y"):
            raise ValueError("channel binding not offered here")
        self.client_first_bare = bare
        attrs = dict(a.split(b"=", 1) for a in bare.split(b","))
        self.user = attrs[b"n"].decode()
        self.salt = self.salts.setdefault((self.user, self.name), os.urandom(16))
        self.nonce = attrs[b"r"] + base64.b64encode(os.urandom(18))
        self.server_first = b"r=%s,s=%s,i=%d" % (self.nonce, base64.b64encode(self.salt), self.iterations)
        return self.server_first

    def final(self, client_final):
        """client-final-message -> server-final-message, or None if the proof is wrong."""
        without_proof, _, proof = client_final.rpartition(b",p=")
        attrs = dict(a.split(b"=", 1) for a in without_proof.split(b","))
        if attrs.get(b"r") != self.nonce or self.user not in self.users:
            return None
        salted = hashlib.pbkdf2_hmac(self.name, self.users[self.user].encode(), self.salt, self.iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = self.hash(client_key).digest()
        auth = self.client_first_bare + b"," + self.server_first + b"," + without_proof
        signature = self._hmac(stored_key, auth)
        want = bytes(a ^ b for a, b in zip(client_key, signature))
        if not hmac.compare_digest(base64.b64decode(proof), want):
            return None
        server_key = self._hmac(salted, b"Server Key")
        return b"v=" + base64.b64encode(self._hmac(server_key, auth))


# -- one client connection ----------------------------------------------------------------

class Connection:
    def __init__(self, server, sock, number):
        self.server = server
        self.sock = sock
        self.number = number
        self.received = []          # text messages from the client, in order
        self.close_code = None      # the status code of the client's close frame
        self.ready = threading.Event()      # the client sent its initial presence
        self.closed = threading.Event()     # the TCP connection is gone
        self.played = threading.Event()     # play() wrote everything (or the socket broke)
        self.write_error = None
        self._wlock = threading.Lock()
        self._rbuf = b""
        self._scram = None
        self._authenticated = False
        self.jid = None

    # -- socket ---------------------------------------------------------------------
    def _recv(self, n):
        while len(self._rbuf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self._rbuf += chunk
        data, self._rbuf = self._rbuf[:n], self._rbuf[n:]
        return data

    def _write(self, data):
        with self._wlock:
            self.sock.sendall(data)

    def send_text(self, data):
        self._write(frame(OP_TEXT, data))

    def _handshake(self):
        while b"\r\n\r\n" not in self._rbuf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError
            self._rbuf += chunk
        head, self._rbuf = self._rbuf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        self.request_line = lines[0]
        self.request_headers = headers
        key = headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self._write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: xmpp\r\n\r\n" % accept).encode())

    def _read_message(self):
        """The next complete text message from the client (control frames
        are handled on the way); None once the client closed."""
        parts = []
        while True:
            b0, b1 = self._recv(2)
            opcode, fin = b0 & 0x0F, bool(b0 & 0x80)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._recv(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._recv(8))[0]
            mask = self._recv(4) if b1 & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self._recv(n)))
            if opcode == OP_CLOSE:
                if len(payload) >= 2:
                    self.close_code = struct.unpack("!H", payload[:2])[0]
                try:
                    self._write(frame(OP_CLOSE, payload[:2]))
                except OSError:
                    pass
                return None
            if opcode == OP_PING:
                self._write(frame(OP_PONG, payload))
                continue
            if opcode == OP_PONG:
                continue
            parts.append(payload)
            if fin:
                return b"".join(parts).decode("utf-8", errors="replace")

    # -- XMPP -------------------------------------------------------------------------
    def _features(self):
        if not self._authenticated:
            mechs = "".join("<mechanism>%s</mechanism>" % m for m in self.server.mechanisms)
            return ("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                    "<mechanisms xmlns='%s'>%s</mechanisms></stream:features>" % (NS_SASL, mechs))
        return ("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
                "<bind xmlns='%s'/></stream:features>" % NS_BIND)

    def _handle(self, msg):
        el = ET.fromstring(msg)
        tag = el.tag
        if tag == "{%s}open" % NS_FRAMING:
            self.send_text("<open xmlns='%s' from='%s' id='%s' version='1.0' xml:lang='en'/>"
                           % (NS_FRAMING, self.server.domain, os.urandom(8).hex()))
            self.send_text(self._features())
        elif tag == "{%s}close" % NS_FRAMING:
            self.send_text("<close xmlns='%s'/>" % NS_FRAMING)
        elif tag == "{%s}auth" % NS_SASL and self.server.fail_auth:
            # a scripted SASL failure for this attempt (RFC 6120 6.5)
            self.send_text("<failure xmlns='%s'><%s/></failure>" % (NS_SASL, self.server.fail_auth.pop(0)))
        elif tag == "{%s}auth" % NS_SASL:
            self._scram = ScramServer(el.get("mechanism"), self.server.users, salts=self.server.salts)
            first = self._scram.first(base64.b64decode(el.text or ""))
            self.send_text("<challenge xmlns='%s'>%s</challenge>" % (NS_SASL, base64.b64encode(first).decode()))
        elif tag == "{%s}response" % NS_SASL:
            final = self._scram.final(base64.b64decode(el.text or ""))
            if final is None:
                self.send_text("<failure xmlns='%s'><not-authorized/></failure>" % NS_SASL)
            else:
                self._authenticated = True
                self.send_text("<success xmlns='%s'>%s</success>" % (NS_SASL, base64.b64encode(final).decode()))
        elif tag == "{%s}iq" % NS_CLIENT:
            self._handle_iq(el)
        elif tag == "{%s}presence" % NS_CLIENT and el.get("to") is None:
            self.ready.set()

    def _handle_iq(self, iq):
        if iq.get("type") not in ("get", "set"):
            return
        iq_id = iq.get("id", "")
        child = iq[0] if len(iq) else None
        body = ""
        frm = ""
        scripted = (iq.get("to"), child.tag[1:].partition("}")[0]) if child is not None else None
        if scripted in self.server.iq_answers:
            body = self.server.iq_answers[scripted]
            if body is None:
                return          # never answered
            frm = " from='%s'" % scripted[0] if scripted[0] else ""
        elif child is not None and child.tag == "{%s}bind" % NS_BIND:
            res = child.findtext("{%s}resource" % NS_BIND) or "res"
            self.jid = "%s@%s/%s" % (self._scram.user, self.server.domain, res)
            body = "<bind xmlns='%s'><jid>%s</jid></bind>" % (NS_BIND, self.jid)
        elif (child is not None and child.tag == "{jabber:iq:roster}query" and iq.get("type") == "get"
              and self.server.roster):
            body = "<query xmlns='jabber:iq:roster'>%s</query>" % self.server.roster
        elif child is not None and child.tag == "{%s}query" % NS_MAM and self.server.mam_answer:
            body = self.server.mam_answer
        elif child is not None and child.tag == "{%s}query" % NS_MAM:
            body = ("<fin xmlns='%s' complete='true'><set xmlns='http://jabber.org/protocol/rsm'/>"
                    "</fin>" % NS_MAM)
        elif child is not None:
            ns, _, name = child.tag[1:].partition("}")
            body = "<%s xmlns='%s'/>" % (name, ns)
        to = " to='%s'" % self.jid if self.jid else ""
        self.send_text("<iq xmlns='jabber:client' type='result' id='%s'%s%s>%s</iq>"
                       % (iq_id, frm, to, body))

    def run(self):
        try:
            self._handshake()
            while True:
                msg = self._read_message()
                if msg is None:
                    break
                self.received.append(msg)
                try:
                    self._handle(msg)
                except ET.ParseError:
                    pass
        except (EOFError, OSError, KeyError, ValueError):
            pass
        finally:
            self.closed.set()
            try:
                self.sock.close()
            except OSError:
                pass

    # -- what tests use ------------------------------------------------------------------
    def play(self, script, wait=False, timeout=60.0):
        """Write the script's frames (in a thread of its own: the client may
        stop reading, or close, half-way). wait: until it is written."""
        def go():
            try:
                for kind, arg in script:
                    if kind == "pause":
                        time.sleep(arg)
                        continue
                    # big writes in pieces, so a close by the client is noticed
                    for i in range(0, len(arg), 1 << 20):
                        self._write(arg[i:i + (1 << 20)])
            except OSError as e:
                self.write_error = e
            finally:
                self.played.set()
        threading.Thread(target=go, daemon=True).start()
        if wait:
            self.played.wait(timeout)

    def wait_ready(self, timeout=30.0):
        if not self.ready.wait(timeout):
            raise TimeoutError("connection %d: no initial presence within %.0fs; got %r"
                               % (self.number, timeout, self.received[-5:]))
        return self

    def wait_closed(self, timeout=30.0):
        if not self.closed.wait(timeout):
            raise TimeoutError("connection %d: the client did not close it within %.0fs"
                               % (self.number, timeout))
        return self

    def iqs(self, to, ns):
        """The IQs the client sent to TO whose child has namespace NS (their
        ids), in order."""
        out = []
        for msg in self.received:
            try:
                el = ET.fromstring(msg)
            except ET.ParseError:
                continue
            if (el.tag == "{%s}iq" % NS_CLIENT and el.get("to") == to and len(el)
                    and el[0].tag.startswith("{%s}" % ns)):
                out.append(el.get("id"))
        return out

    def stream_errors(self):
        """The conditions of the stream errors the client sent."""
        out = []
        for msg in self.received:
            try:
                el = ET.fromstring(msg)
            except ET.ParseError:
                continue
            if el.tag == "{http://etherx.jabber.org/streams}error":
                out += [c.tag.partition("}")[2] for c in el]
        return out

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class WsXmppServer:
    """users: {localpart: password}. mechanisms: what the features offer."""

    def __init__(self, users, domain="localhost", mechanisms=("SCRAM-SHA-256", "SCRAM-SHA-1")):
        self.users = dict(users)
        self.domain = domain
        self.mechanisms = tuple(mechanisms)
        self.fail_auth = []     # SASL conditions to answer the next <auth/>s with, in order
        self.salts = {}         # (user, hash): SCRAM salt, the same for every login
        self.roster = ""        # the <item/>s of every roster result (XML text)
        self.mam_answer = ""    # the archive query's result instead of an empty archive (XML text)
        # IQs to the entity TO whose child has namespace NS: {(TO, NS): the
        # result's content (XML text; the result comes from TO), or None:
        # never answered}. Read as each IQ comes, so a change applies at once.
        self.iq_answers = {}
        self.connections = []
        self._cond = threading.Condition()
        self._sock = None

    @property
    def url(self):
        return "ws://127.0.0.1:%d/xmpp-websocket" % self.port

    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        while True:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                conn = Connection(self, sock, len(self.connections))
                self.connections.append(conn)
                self._cond.notify_all()
            threading.Thread(target=conn.run, daemon=True).start()

    def connection(self, n, timeout=30.0):
        """Connection number n (0: the first), once the client opened it."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.connections) > n, timeout):
                raise TimeoutError("no connection #%d within %.0fs" % (n, timeout))
            return self.connections[n]

    def stop(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for c in self.connections:
            c.close()
