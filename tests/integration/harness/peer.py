"""A real XMPP peer: slixmpp 1.8.3 on its own asyncio loop in a background thread.

It connects to Prosody's c2s port directly, in clear (the test Prosody has no
certificate and c2s_require_encryption = false), authenticates with SCRAM, binds,
sends initial presence (so that messages to its bare JID are delivered live, not
stored offline), and records every <message/> it receives.
"""

import asyncio
import logging
import threading
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

NS_CLIENT = "jabber:client"
NS_SID = "urn:xmpp:sid:0"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_MARKERS = "urn:xmpp:chat-markers:0"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_OOB = "jabber:x:oob"
NS_SFS = "urn:xmpp:sfs:0"
NS_FILE_META = "urn:xmpp:file:metadata:0"
NS_URL_DATA = "http://jabber.org/protocol/url-data"

log = logging.getLogger("peer")


def _xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
             .replace("'", "&apos;").replace('"', "&quot;"))


def _file_fields(x):
    """oob_url: the XEP-0066 <x><url/> (None); sfs: whether an XEP-0447
    <file-sharing/> is there; file: the XEP-0446 <file/> (inside file-sharing,
    else directly in the message) as {child name: text}, e.g. {"name": ...,
    "media-type": ..., "size": "123"} (None without one); sources: the
    url-data targets of file-sharing's <sources/>."""
    oob = x.find("{%s}x/{%s}url" % (NS_OOB, NS_OOB))
    sfs = x.find("{%s}file-sharing" % NS_SFS)
    meta = (sfs.find("{%s}file" % NS_FILE_META) if sfs is not None else None)
    if meta is None:
        meta = x.find("{%s}file" % NS_FILE_META)
    sources = []
    if sfs is not None:
        sources = [e.get("target") for e in sfs.iter("{%s}url-data" % NS_URL_DATA)]
    return {
        "oob_url": None if oob is None else (oob.text or ""),
        "sfs": sfs is not None,
        "file": None if meta is None else {c.tag.split("}", 1)[-1]: (c.text or "") for c in meta},
        "sources": sources,
    }


def http_get(url, timeout=15.0):
    """A plain GET as any client would do it: (status, headers, body)."""
    with urllib.request.urlopen(urllib.request.Request(url), timeout=timeout) as r:
        return r.status, dict(r.headers), r.read()


class _Client(slixmpp.ClientXMPP):
    pass


class Peer:
    def __init__(self, jid, password, host="127.0.0.1", port=5222, resource=None):
        self.jid = jid                      # bare JID
        self.password = password
        self.resource = resource or "peer-" + uuid.uuid4().hex[:6]
        self.full_jid = None
        self.host, self.port = host, port
        self.messages = []                  # every <message/> received, as dicts
        self.markers = []                   # XEP-0333 <displayed/> received
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self._error = None
        self.loop = None
        self.client = None
        self._thread = None
        self._stop = None

    # -- lifecycle -------------------------------------------------------------
    def start(self, timeout=20.0):
        self._thread = threading.Thread(target=self._run, name="peer-" + self.jid, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError("peer %s did not get online in %.0fs" % (self.jid, timeout))
        if self._error:
            err = self._error
            self.stop()
            raise RuntimeError("peer %s: %s" % (self.jid, err))
        return self

    def _run(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except Exception as e:  # pragma: no cover - reported through start()
            self._error = self._error or repr(e)
            self._ready.set()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
                for t in pending:
                    t.cancel()
                if pending:
                    self.loop.run_until_complete(
                        asyncio.gather(*pending, return_exceptions=True))
            except Exception:
                pass
            self.loop.close()

    async def _main(self):
        self._stop = asyncio.Event()
        c = _Client("%s/%s" % (self.jid, self.resource), self.password)
        c.loop = asyncio.get_running_loop()
        self.client = c
        # No TLS on the test server: never try STARTTLS; SCRAM is fine in clear.
        c["feature_mechanisms"].unencrypted_plain = False
        c.register_handler(Callback("peer-all-messages",
                                    MatchXPath("{%s}message" % NS_CLIENT),
                                    self._on_message))
        c.add_event_handler("session_start", self._on_session_start)
        c.add_event_handler("failed_auth", self._on_failed_auth)
        c.add_event_handler("connection_failed", self._on_conn_failed)
        c.add_event_handler("disconnected", self._on_disconnected)
        c.connect((self.host, self.port), use_ssl=False, force_starttls=False,
                  disable_starttls=True)
        await self._stop.wait()
        if c.transport is not None:
            fut = c.disconnected
            c.disconnect(wait=1.0)
            try:
                await asyncio.wait_for(fut, 5)
            except Exception:
                c.abort()

    async def _on_session_start(self, _event):
        self.full_jid = str(self.client.boundjid)
        self.client.send_presence()
        # wait for the server to have processed the presence: a ping round trip
        iq = self.client.make_iq_get(ito=self.jid.split("@")[1])
        ET.SubElement(iq.xml, "{urn:xmpp:ping}ping")
        try:
            await iq.send(timeout=10)
        except Exception:
            pass
        self._ready.set()

    def _on_failed_auth(self, _event):
        self._error = "authentication failed"
        self._ready.set()
        self._stop.set()

    def _on_conn_failed(self, event):
        self._error = "connection failed: %s" % (event,)
        self._ready.set()
        self._stop.set()

    def _on_disconnected(self, _event):
        if not self._ready.is_set():
            self._error = self._error or "disconnected before session start"
            self._ready.set()
            self._stop.set()

    def stop(self):
        if self._thread is None:
            return
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass
        self._thread.join(15)
        self._thread = None

    def abort(self):
        """Drop the TCP connection without a stream close (a peer crash)."""
        self._call(lambda: self.client.abort())

    # -- receiving ---------------------------------------------------------------
    def _on_message(self, stanza):
        x = stanza.xml
        body_el = x.find("{%s}body" % NS_CLIENT)
        oid = x.find("{%s}origin-id" % NS_SID)
        sids = [{"id": e.get("id"), "by": e.get("by")}
                for e in x.findall("{%s}stanza-id" % NS_SID)]
        disp = x.find("{%s}displayed" % NS_MARKERS)
        states = [c.tag.split("}", 1)[1] for c in x if c.tag.startswith("{%s}" % NS_CHATSTATES)]
        rec = {
            "chatstate": states[0] if states else None,
            "from": x.get("from"),
            "to": x.get("to"),
            "type": x.get("type") or "normal",
            "id": x.get("id"),
            "body": None if body_el is None else (body_el.text or ""),
            "origin_id": None if oid is None else oid.get("id"),
            "stanza_ids": sids,
            "displayed": None if disp is None else disp.get("id"),
            # a file (XEP-0066 / XEP-0447 / XEP-0446): see _file_fields()
            **_file_fields(x),
            "xml": ET.tostring(x, encoding="unicode"),
            "received_at": time.time(),
        }
        with self._cond:
            self.messages.append(rec)
            if disp is not None:
                self.markers.append({"from": rec["from"], "id": disp.get("id"),
                                     "xml": rec["xml"]})
            self._cond.notify_all()

    def _wait(self, source, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in source:
                    if predicate(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("peer %s: no %s within %.1fs; got: %r"
                                       % (self.jid, what, timeout,
                                          [(m.get("from"), m.get("body"), m.get("id"))
                                           for m in source][-10:]))
                self._cond.wait(left)

    def wait_for_message(self, predicate=lambda m: m["body"] is not None, timeout=15.0):
        """First received message (with or without body) matching predicate."""
        return self._wait(self.messages, predicate, timeout, "matching message")

    def wait_for_body(self, body, timeout=15.0):
        return self.wait_for_message(lambda m: m["body"] == body, timeout)

    def wait_for_marker(self, predicate=lambda m: True, timeout=15.0):
        return self._wait(self.markers, predicate, timeout, "displayed marker")

    def bodies(self):
        with self._cond:
            return [m["body"] for m in self.messages if m["body"] is not None]

    # -- sending -----------------------------------------------------------------
    def _call(self, fn, timeout=10.0):
        async def run():
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def send_message(self, to, body, id=None, origin_id=True, markable=True,
                     receipt_request=False, mtype="chat"):
        """Send a chat message; returns its id (stanza id = XEP-0359 origin-id)."""
        mid = id or "peer-" + uuid.uuid4().hex

        def build():
            msg = self.client.make_message(mto=to, mbody=body, mtype=mtype)
            msg["id"] = mid
            if origin_id:
                ET.SubElement(msg.xml, "{%s}origin-id" % NS_SID, {"id": mid})
            if markable:
                ET.SubElement(msg.xml, "{%s}markable" % NS_MARKERS)
            if receipt_request:
                ET.SubElement(msg.xml, "{%s}request" % NS_RECEIPTS)
            msg.send()
        self._call(build)
        return mid

    def send_flood(self, to, bodies, timeout=120.0):
        """Send plain chat messages as fast as the server takes them, and return
        once the server has taken every one (a ping's answer comes after them)."""
        async def run():
            for i, body in enumerate(bodies):
                self.client.send_message(mto=to, mbody=body, mtype="chat")
                if i % 50 == 49:
                    # moderate chunks: one huge write would make Prosody's
                    # stream parser the bottleneck
                    await asyncio.sleep(0.002)
            iq = self.client.make_iq_get(ito=self.jid.split("@")[1])
            ET.SubElement(iq.xml, "{urn:xmpp:ping}ping")
            await iq.send(timeout=timeout)
        asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def upload(self, data, name, content_type="application/octet-stream", timeout=15.0):
        """XEP-0363 through the server's upload component: a slot, then an HTTP
        PUT of data. Returns the GET URL."""
        ns = "urn:xmpp:http:upload:0"
        service = "upload." + self.jid.split("@")[1]

        async def slot():
            iq = self.client.make_iq_get(ito=service)
            ET.SubElement(iq.xml, "{%s}request" % ns, {
                "filename": name, "size": str(len(data)), "content-type": content_type})
            return await iq.send(timeout=timeout)
        res = asyncio.run_coroutine_threadsafe(slot(), self.loop).result(timeout + 5)
        s = res.xml.find("{%s}slot" % ns)
        put, get = s.find("{%s}put" % ns), s.find("{%s}get" % ns)
        headers = {h.get("name"): h.text for h in put.findall("{%s}header" % ns)}
        headers["Content-Type"] = content_type
        req = urllib.request.Request(put.get("url"), data=data, method="PUT", headers=headers)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            assert r.status in (200, 201), r.status
        return get.get("url")

    def download(self, url, timeout=15.0):
        """The body of a GET of url (e.g. a received file's OOB URL); raises
        urllib.error.HTTPError for a status other than 2xx."""
        return http_get(url, timeout)[2]

    def send_raw(self, xml):
        """Send a raw stanza string as is."""
        self._call(lambda: self.client.send_raw(xml))

    def send_displayed(self, to, msg_id):
        self.send_raw("<message to='%s' type='chat' id='%s'><displayed xmlns='%s' id='%s'/>"
                      "</message>" % (_xml_escape(to), uuid.uuid4().hex, NS_MARKERS,
                                      _xml_escape(msg_id)))
