/* SPDX-License-Identifier: MIT */

/* What the layer above sends through an XmppStream: chat messages, the
 * actions (our displayed markers among them) and chat states about them,
 * and queries of our archive (XEP-0313), whose results stream-receive.c
 * reads. */

#include <errno.h>
#include <glib.h>

#include "actions.h"
#include "stream-private.h"

/* A chat message's stanza; delay_from (our bare JID) goes with a delay stamp
 * when delayed_ms > 0. */
static XmlNode *chat_stanza(const char *to, const XmppChatContent *content, const char *origin_id,
                            int64_t delayed_ms, const char *delay_from) {
        XmlNode *msg = xml_node_new("message", NS_CLIENT);

        xml_node_set_attr(msg, "type", "chat");
        xml_node_set_attr(msg, "to", to);
        xml_node_set_attr(msg, "id", origin_id);
        if (content->body && *content->body)
                xml_node_set_text(xml_node_add_child(msg, "body", NULL), content->body);
        else if (content->media)
                /* XEP-0363 §4: clients that know nothing of files show the link */
                xml_node_set_text(xml_node_add_child(msg, "body", NULL), content->media->url);
        if (content->media)
                xmpp_media_append(msg, content->media);
        if (content->json) {
                xml_node_set_text(xml_node_add_child(msg, "json", NS_JSON), content->json);
                if (content->extension && *content->extension)
                        xml_node_set_text(xml_node_add_child(msg, "extension", NS_IMD), content->extension);
                /* servers archive (and keep offline) only messages with a body,
                 * unless told to */
                if (!content->body || !*content->body)
                        xml_node_add_child(msg, "store", NS_HINTS);
        }
        xml_node_set_attr(xml_node_add_child(msg, "origin-id", NS_SID), "id", origin_id);
        xml_node_add_child(msg, "markable", NS_MARKERS);
        xml_node_add_child(msg, "active", NS_CHATSTATES);
        xml_node_add_child(msg, "request", NS_RECEIPTS);
        if (delayed_ms > 0) {
                g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(delayed_ms / 1000);
                g_autofree char *stamp = t ? g_date_time_format(t, "%Y-%m-%dT%H:%M:%SZ") : NULL;
                XmlNode *delay = xml_node_add_child(msg, "delay", NS_DELAY);
                if (stamp)
                        xml_node_set_attr(delay, "stamp", stamp);
                xml_node_set_attr(delay, "from", delay_from);
        }
        return msg;
}

size_t xmpp_chat_stanza_bytes(const char *own_jid, const char *to, const XmppChatContent *content,
                              const char *origin_id) {
        /* a stamp of the same length as any other this century */
        g_autoptr(XmlNode) msg = chat_stanza(to, content, origin_id, INT64_C(1700000000000), own_jid);
        g_autofree char *xml = NULL;
        size_t len = 0;

        xml = xml_serialize(msg, &len);
        return len;
}

int xmpp_stream_send_chat(XmppStream *s, const char *to, const XmppChatContent *content, const char *origin_id,
                          int64_t delayed_ms) {
        g_autoptr(XmlNode) msg = NULL;
        int r;

        if (s->phase != PHASE_READY)
                return -ENOTCONN;
        msg = chat_stanza(to, content, origin_id, delayed_ms, s->jid);
        r = stream_send_stanza_bounded(s, msg, origin_id, to);
        if (r > 0)
                stream_sm_request_ack(s);
        return r;
}

int xmpp_stream_send_action(XmppStream *s, XmlNode *msg, const char *stanza_id, const char *to) {
        g_autoptr(XmlNode) owned = msg;
        int r;

        if (s->phase != PHASE_READY)
                return -ENOTCONN;
        /* a correction carries a whole text */
        r = stream_send_stanza_bounded(s, owned, stanza_id, to);
        if (r < 0)
                return r;
        stream_sm_request_ack(s);
        return r;
}

int xmpp_stream_send_chat_state(XmppStream *s, const char *to, bool composing) {
        g_autoptr(XmlNode) msg = NULL;
        g_autofree char *stanza_id = NULL;

        if (s->phase != PHASE_READY)
                return -ENOTCONN;
        stanza_id = xmpp_new_id();
        msg = xmpp_chat_stanza_new(to, stanza_id);
        xml_node_add_child(msg, composing ? "composing" : "paused", NS_CHATSTATES);
        xml_node_add_child(msg, "no-store", NS_HINTS);
        stream_send_node(s, msg);
        return 0;
}

/* Takes the one archive query slot for a query of kind, with fresh ids. */
static int mam_begin(XmppStream *s, XmppMamQueryKind kind) {
        if (s->phase != PHASE_READY)
                return -ENOTCONN;
        if (s->mam_iq_id)
                return -EBUSY;
        s->mam_query_id = xmpp_new_id();
        s->mam_iq_id = xmpp_new_id();
        s->mam_kind = kind;
        return 0;
}

int xmpp_stream_mam_query_before(XmppStream *s, const char *with, const char *before_id, int64_t end_ms,
                                 unsigned max) {
        g_autoptr(XmlNode) iq = NULL;
        int r = mam_begin(s, XMPP_MAM_BEFORE);

        if (r < 0)
                return r;
        iq = xmpp_mam_query_before_new(s->mam_iq_id, s->mam_query_id, with, before_id, end_ms, max);
        stream_send_node(s, iq);
        return 0;
}

int xmpp_stream_mam_query(XmppStream *s, XmppMamQueryKind kind, const char *after_id, unsigned max) {
        g_autoptr(XmlNode) iq = NULL;
        int r = mam_begin(s, kind);

        if (r < 0)
                return r;
        iq = xmpp_mam_query_new(s->mam_iq_id, s->mam_query_id, kind, after_id, max);
        stream_send_node(s, iq);
        return 0;
}
