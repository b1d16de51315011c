/* SPDX-License-Identifier: MIT */

/* XEP-0198 stream management on the wire for XmppStream; the bookkeeping
 * (counts, unacknowledged stanzas) is sm.c. */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "stream-private.h"

static void sm_send(XmppStream *s, XmlNode *node) {
        size_t len;
        g_autofree char *xml = xml_serialize(node, &len);
        if (s->transport)
                xmpp_transport_send(s->transport, xml, len);
}

void stream_sm_send_enable(XmppStream *s) {
        g_autoptr(XmlNode) enable = NULL;

        if (!s->sm_offered)
                return;
        enable = xml_node_new("enable", NS_SM);
        xml_node_set_attr(enable, "resume", "true");
        sm_send(s, enable);
        /* Our count starts with the first stanza after <enable/>. */
        xmpp_sm_start(s->sm);
}

void stream_sm_send_resume(XmppStream *s) {
        g_autoptr(XmlNode) resume = xml_node_new("resume", NS_SM);
        g_autofree char *h = g_strdup_printf("%" G_GUINT32_FORMAT, xmpp_sm_rewind_to_handled(s->sm));

        xml_node_set_attr(resume, "h", h);
        xml_node_set_attr(resume, "previd", xmpp_sm_resume_id(s->sm));
        s->phase = PHASE_RESUMING;
        sm_send(s, resume);
}

void stream_sm_send_ack(XmppStream *s) {
        g_autoptr(XmlNode) a = xml_node_new("a", NS_SM);
        g_autofree char *h = g_strdup_printf("%" G_GUINT32_FORMAT, xmpp_sm_handled(s->sm));
        xml_node_set_attr(a, "h", h);
        sm_send(s, a);
}

/* Without XEP-0198 a ping stands in for <r/>: the server answers it only
 * after it handled everything we sent before it (RFC 6120 §10.1). One at a
 * time; what goes out meanwhile waits for the next. */
static void send_ack_ping(XmppStream *s) {
        g_autoptr(XmlNode) iq = NULL;

        if (s->ack_ping_id) {
                s->ack_ping_again = true;
                return;
        }
        iq = xml_node_new("iq", NS_CLIENT);
        s->ack_ping_id = g_strdup_printf("ack-%u", ++s->next_id);
        xml_node_set_attr(iq, "type", "get");
        xml_node_set_attr(iq, "id", s->ack_ping_id);
        xml_node_set_attr(iq, "to", s->domain);
        xml_node_add_child(iq, "ping", NS_PING);
        stream_send_node(s, iq);
        s->ack_ping_count = xmpp_sm_n_sent(s->sm);
}

static gboolean on_ack_request(gpointer userdata) {
        XmppStream *s = userdata;
        g_autoptr(XmlNode) r = NULL;

        s->ack_request_source = 0;
        if (s->phase != PHASE_READY || !xmpp_sm_is_enabled(s->sm))
                return G_SOURCE_REMOVE;
        if (xmpp_sm_is_local(s->sm)) {
                send_ack_ping(s);
                return G_SOURCE_REMOVE;
        }
        r = xml_node_new("r", NS_SM);
        sm_send(s, r);
        return G_SOURCE_REMOVE;
}

/* Ask once per burst rather than per message. */
void stream_sm_request_ack(XmppStream *s) {
        if (xmpp_sm_is_enabled(s->sm) && !s->ack_request_source)
                s->ack_request_source = g_idle_add(on_ack_request, s);
}

static bool parse_h(const XmlNode *node, uint32_t *ret) {
        const char *h = xml_node_attr(node, "h");
        guint64 v;

        if (!h || !g_ascii_string_to_unsigned(h, 10, 0, G_MAXUINT32, &v, NULL))
                return false;
        *ret = (uint32_t) v;
        return true;
}

static void on_sm_acked(const char *message_id, const char *to, void *userdata) {
        XmppStream *s = userdata;
        if (s->cb.sent)
                s->cb.sent(to, message_id, s->userdata);
}

static void sm_handle_ack(XmppStream *s, const XmlNode *node) {
        uint32_t h;

        if (!parse_h(node, &h) || xmpp_sm_ack(s->sm, h, on_sm_acked, s) < 0)
                /* XEP-0198 §4: an impossible h means the counts diverged. */
                return stream_fail(s, -EPROTO, "the server acknowledged stanzas that were never sent");
}

bool stream_sm_handle_ack_ping(XmppStream *s, const char *id) {
        if (!s->ack_ping_id || !id || strcmp(id, s->ack_ping_id) != 0)
                return false;
        g_clear_pointer(&s->ack_ping_id, g_free);
        if (xmpp_sm_is_local(s->sm))
                (void) xmpp_sm_ack(s->sm, s->ack_ping_count, on_sm_acked, s);
        if (s->ack_ping_again) {
                s->ack_ping_again = false;
                stream_sm_request_ack(s);
        }
        return true;
}

static void resend_one(const char *xml, size_t len, void *userdata) {
        XmppStream *s = userdata;
        xmpp_transport_send(s->transport, xml, len);
}

void stream_sm_handle(XmppStream *s, const XmlNode *node) {
        if (strcmp(node->name, "r") == 0) {
                if (s->phase < PHASE_BINDING)
                        return;
                /* The answer could not count the messages being stored yet:
                 * answer once they are, one <a/> per batch instead of per <r/>. */
                if (xmpp_sm_has_uncommitted(s->sm))
                        s->ack_owed = true;
                else
                        stream_sm_send_ack(s);
                return;
        }
        if (strcmp(node->name, "a") == 0)
                return sm_handle_ack(s, node);
        if (strcmp(node->name, "enabled") == 0) {
                const char *resume = xml_node_attr(node, "resume");
                const char *max = xml_node_attr(node, "max");
                bool can_resume = resume && (strcmp(resume, "true") == 0 || strcmp(resume, "1") == 0);
                xmpp_sm_enabled(s->sm, can_resume ? xml_node_attr(node, "id") : NULL,
                                max ? (unsigned) g_ascii_strtoull(max, NULL, 10) : 0);
                return;
        }
        if (strcmp(node->name, "resumed") == 0 && s->phase == PHASE_RESUMING) {
                uint32_t h;
                if (!parse_h(node, &h) || xmpp_sm_ack(s->sm, h, on_sm_acked, s) < 0)
                        return stream_fail(s, -EPROTO, "the server resumed with an impossible count");
                /* What the old connection lost on the way goes again, as it was. */
                xmpp_sm_foreach_unacked(s->sm, resend_one, s);
                stream_sm_request_ack(s);
                return stream_become_ready(s, true);
        }
        if (strcmp(node->name, "failed") == 0) {
                if (s->phase == PHASE_RESUMING) {
                        uint32_t h;
                        /* XEP-0198 §5: the old session is gone, but the server
                         * may still say how much of it reached it; that much
                         * is not sent again. */
                        if (parse_h(node, &h) && xmpp_sm_ack(s->sm, h, on_sm_acked, s) < 0)
                                g_debug("xmpp: ignoring the impossible count of a failed resume");
                        /* A fresh session; the layer above resends from its outbox. */
                        xmpp_sm_stop(s->sm);
                        return stream_send_bind(s);
                }
                /* <enable/> refused: carry on without (counting locally
                 * from ready on). It is answered before the roster; once
                 * ready, a <failed/> answers nothing we asked. */
                if (s->phase < PHASE_READY)
                        xmpp_sm_stop(s->sm);
        }
}

