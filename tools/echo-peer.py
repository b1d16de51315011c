#!/usr/bin/python3
"""A demo XMPP peer: logs in (slixmpp) and answers every chat message with
"echo: <text>". Used by tools/demo.sh as bob@localhost.

    tools/echo-peer.py --jid bob@localhost --password bob-demo \
        [--host 127.0.0.1] [--port 5222] [--ready-file FILE]

Connects in clear to a local server (no STARTTLS: the demo Prosody has no
certificate). Runs until SIGTERM/SIGINT.
"""

import argparse
import asyncio
import logging
import os
import signal
import sys
import xml.etree.ElementTree as ET

import slixmpp

NS_MARKERS = "urn:xmpp:chat-markers:0"
NS_SID = "urn:xmpp:sid:0"


class EchoPeer(slixmpp.ClientXMPP):
    def __init__(self, jid, password, ready_file=None):
        super().__init__(jid, password)
        self.ready_file = ready_file
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("failed_auth", self.on_failed_auth)

    async def on_start(self, _event):
        self.send_presence()
        await self.get_roster()
        logging.info("online as %s", self.boundjid)
        if self.ready_file:
            with open(self.ready_file, "w") as f:
                f.write(str(self.boundjid) + "\n")

    def on_failed_auth(self, _event):
        logging.error("authentication failed")
        os._exit(1)

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal"):
            return
        body = msg["body"]
        if not body:
            return
        sender = msg["from"].bare
        logging.info("from %s: %r", sender, body)
        # tell the sender we read it (XEP-0333), when it asked for markers
        if msg.xml.find("{%s}markable" % NS_MARKERS) is not None and msg["id"]:
            marker = self.make_message(mto=sender, mtype="chat")
            ET.SubElement(marker.xml, "{%s}displayed" % NS_MARKERS, {"id": msg["id"]})
            marker.send()
        reply = self.make_message(mto=sender, mbody="echo: " + body, mtype="chat")
        reply["id"] = self.new_id()
        ET.SubElement(reply.xml, "{%s}origin-id" % NS_SID, {"id": reply["id"]})
        ET.SubElement(reply.xml, "{%s}markable" % NS_MARKERS)
        reply.send()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jid", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5222)
    ap.add_argument("--ready-file")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="echo-peer: %(message)s")
    logging.getLogger("slixmpp").setLevel(logging.DEBUG if args.verbose else logging.WARNING)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    xmpp = EchoPeer(args.jid, args.password, args.ready_file)
    xmpp.loop = loop
    xmpp["feature_mechanisms"].unencrypted_plain = False
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    xmpp.add_event_handler("disconnected", lambda _e: stop.set())

    async def run():
        xmpp.connect((args.host, args.port), use_ssl=False, force_starttls=False,
                     disable_starttls=True)
        await stop.wait()
        if xmpp.transport is not None:
            fut = xmpp.disconnected
            xmpp.disconnect(wait=1.0)
            try:
                await asyncio.wait_for(fut, 3)
            except Exception:
                xmpp.abort()

    loop.run_until_complete(run())
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
