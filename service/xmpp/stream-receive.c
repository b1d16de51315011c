/* SPDX-License-Identifier: MIT */

/* Incoming <message/> stanzas of a ready XmppStream: chat messages live,
 * as carbon copies (XEP-0280) or from our archive (XEP-0313), with the
 * receipts, markers, chat states and actions they carry. Each is handed up
 * only if it comes from whom it may. */

#include <string.h>
#include <glib.h>

#include "actions.h"
#include "carbons.h"
#include "jid.h"
#include "stream-private.h"

/* 2000-01-01: no XMPP message is older, and nothing sorts below it. */
#define EARLIEST_STAMP_MS INT64_C(946684800000)

/* The XEP-0203 stamp, trusted from our server (offline storage), our own
 * account, or the sender itself; anyone else's is ignored. */
static int64_t parse_stamp(const char *stamp) {
        g_autoptr(GDateTime) dt = NULL;
        int64_t ms, now = g_get_real_time() / 1000;

        if (!stamp)
                return 0;
        dt = g_date_time_new_from_iso8601(stamp, NULL);
        if (!dt)
                return 0;
        ms = g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
        if (ms < EARLIEST_STAMP_MS)
                return 0;
        /* A stamp in the future would sort the message above newer ones. */
        return ms > now ? now : ms;
}

static int64_t parse_delay(XmppStream *s, const XmlNode *msg, const char *sender) {
        const XmlNode *delay = xml_node_child(msg, "delay", NS_DELAY);
        const char *by = delay ? xml_node_attr(delay, "from") : NULL;

        if (!delay)
                return 0;
        if (by && !jid_bare_equal(by, s->domain) && !jid_bare_equal(by, s->jid) && !jid_bare_equal(by, sender))
                return 0;
        return parse_stamp(xml_node_attr(delay, "stamp"));
}

static const char *report_id(const XmlNode *report) {
        const char *id = report ? xml_node_attr(report, "id") : NULL;
        return id && *id && strlen(id) <= 256 ? id : NULL;
}

/* XEP-0184 receipts and XEP-0333 displayed markers for messages we sent. */
static void handle_reports(XmppStream *s, const XmlNode *msg, const char *from, bool archived) {
        const char *id;

        if ((id = report_id(xml_node_child(msg, "received", NS_RECEIPTS))) && s->cb.delivered)
                s->cb.delivered(from, id, archived, s->userdata);
        if ((id = report_id(xml_node_child(msg, "displayed", NS_MARKERS))) && s->cb.displayed)
                s->cb.displayed(from, id, archived, s->userdata);
}

/* Servers address messages to our bound JID exactly as they gave it to us; only
 * other spellings need the full (costly) normalisation. */
static bool addressed_to_us(XmppStream *s, const char *to) {
        size_t n = strlen(s->jid);

        if ((s->full_jid && strcmp(to, s->full_jid) == 0) ||
            (strncmp(to, s->jid, n) == 0 && to[n] == '\0'))
                return true;
        return jid_bare_equal(to, s->jid);
}

/* Carbons and archive results speak for our account: only its bare JID (the
 * server, on its behalf) may send them. */
static bool from_own_account(XmppStream *s, const char *from) {
        Jid jid = { 0 };
        bool own;

        if (!from || jid_parse(from, &jid) < 0)
                return false;
        own = !jid.resource && jid.local && strcmp(jid.local, s->local) == 0 && strcmp(jid.domain, s->domain) == 0;
        jid_clear(&jid);
        return own;
}

typedef enum ChatSource {
        CHAT_LIVE,              /* addressed to us */
        CHAT_CARBON_RECEIVED,   /* a copy of what another device of ours received */
        CHAT_CARBON_SENT,       /* a copy of what another device of ours sent */
        CHAT_ARCHIVED,          /* from our archive: either way */
} ChatSource;

/* XEP-0085: the first chat state element counts; unknown ones are ignored. */
static void handle_chat_state(XmppStream *s, const XmlNode *msg, const char *from) {
        for (const XmlNode *c = msg->first_child; c; c = c->next) {
                if (strcmp(c->ns, NS_CHATSTATES) != 0)
                        continue;
                if (strcmp(c->name, "composing") == 0)
                        return s->cb.typing(from, true, s->userdata);
                if (strcmp(c->name, "active") == 0 || strcmp(c->name, "paused") == 0 ||
                    strcmp(c->name, "inactive") == 0 || strcmp(c->name, "gone") == 0)
                        return s->cb.typing(from, false, s->userdata);
        }
}

/* A retraction or correction (m: the message's checked addressing): handed up
 * as an action, true. A correction without text, or anything else: false. */
static bool handle_action(XmppStream *s, const XmlNode *msg, const XmppChatMessage *m, const char *body,
                          bool archived) {
        XmppMessageAction a = { .peer = m->peer, .outgoing = m->outgoing, .archived = archived };
        const char *reactions[XMPP_REACTIONS_MAX];

        if ((a.target_id = xmpp_retract_target(msg))) {
                a.kind = XMPP_ACTION_RETRACT;
        } else if ((a.target_id = xmpp_correction_target(msg))) {
                if (!body || !*body)
                        return true;    /* a correction to nothing: ignored, never a message */
                a.kind = XMPP_ACTION_CORRECT;
                a.text = body;
        } else if ((a.target_id = xmpp_reactions_parse(msg, reactions, &a.n_reactions))) {
                a.kind = XMPP_ACTION_REACT;
                a.reactions = reactions;
        } else
                return false;
        if (s->cb.action)
                s->cb.action(&a, s->userdata);
        return true;
}

/* The bare JID of a message's sender, NULL if 'from' is not a valid JID. A
 * flood comes from one full JID, and validating and normalising it every
 * time cost as much as storing the message's text: the last answer is kept. */
static char *sender_bare(XmppStream *s, const char *from) {
        char *bare;

        if (!from)
                return NULL;
        if (s->last_from && strcmp(s->last_from, from) == 0)
                return g_strdup(s->last_from_bare);
        bare = jid_normalize_bare(from);
        if (bare) {
                g_free(s->last_from);
                g_free(s->last_from_bare);
                s->last_from = g_strdup(from);
                s->last_from_bare = g_strdup(bare);
        }
        return bare;
}

/* Validates a one-to-one message, wherever it came from, and hands it up if
 * it has a body. archive_id/archive_ms: the archive result's id and stamp. */
static void handle_chat(XmppStream *s, const XmlNode *msg, ChatSource source, const char *archive_id,
                        int64_t archive_ms) {
        const char *type = xml_node_attr(msg, "type");
        const char *body = xml_node_child_text(msg, "body", NS_CLIENT);
        const char *to = xml_node_attr(msg, "to");
        g_autofree char *from = sender_bare(s, xml_node_attr(msg, "from"));
        g_autofree char *recipient = NULL;
        XmppChatMessage m = { 0 };

        if (!type)
                type = "normal";
        if (strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0)
                return;         /* groupchat, headline, error: later */
        if (!from || !strchr(from, '@')) {
                g_debug("xmpp: ignoring a message without a valid sender");
                return;
        }
        m.outgoing = source == CHAT_CARBON_SENT || (source == CHAT_ARCHIVED && strcmp(from, s->jid) == 0);
        if (source == CHAT_CARBON_SENT && strcmp(from, s->jid) != 0) {
                g_debug("xmpp: ignoring a sent carbon of a message %s sent", from);
                return;
        }
        if (m.outgoing) {
                recipient = to ? jid_normalize_bare(to) : NULL;
                if (!recipient || !strchr(recipient, '@')) {
                        g_debug("xmpp: ignoring a message of ours without a valid recipient");
                        return;
                }
                m.peer = recipient;
        } else {
                /* Live messages may leave out to (RFC 6120 §8.1.1.1); a copy
                 * must say it was ours. */
                if ((to || source != CHAT_LIVE) && (!to || !addressed_to_us(s, to))) {
                        g_debug("xmpp: ignoring a message addressed to someone else");
                        return;
                }
                m.peer = from;
                /* Reports to another device of ours count as well, and so
                 * do those in the archive: while we were away with another
                 * device online, the server kept no offline copy, and the
                 * archive is the only way one reaches us. */
                handle_reports(s, msg, from, source == CHAT_ARCHIVED);
                /* Typing is news only as it happens, and only from the peer. */
                if (source == CHAT_LIVE && s->cb.typing)
                        handle_chat_state(s, msg, from);
        }
        if (handle_action(s, msg, &m, body, source == CHAT_ARCHIVED))
                return;
        m.json = xml_node_child_text(msg, "json", NS_JSON);
        if (m.json)
                m.extension = xml_node_child_text(msg, "extension", NS_IMD);
        xmpp_media_parse(msg, &m.media);
        if (!body || !*body) {
                if (!m.json && !m.media.url)
                        return;         /* chat states and pure reports carry no body */
                body = NULL;
        }

        m.body = body;
        m.time_ms = parse_delay(s, msg, from);
        if (!m.time_ms)
                m.time_ms = archive_ms;
        for (const XmlNode *c = msg->first_child; c; c = c->next) {
                if (strcmp(c->ns, NS_SID) != 0)
                        continue;
                if (strcmp(c->name, "origin-id") == 0 && !m.id)
                        m.id = xml_node_attr(c, "id");
                /* XEP-0359 §5: only a stanza-id added by our own server can be trusted. */
                else if (strcmp(c->name, "stanza-id") == 0 && !m.stanza_id &&
                         jid_bare_equal(xml_node_attr(c, "by"), s->jid))
                        m.stanza_id = xml_node_attr(c, "id");
        }
        if (source == CHAT_ARCHIVED) {
                m.archived = true;
                m.stanza_id = archive_id;
        }
        if (!m.id)
                m.id = xml_node_attr(msg, "id");
        if (m.id && (!*m.id || strlen(m.id) > 256))
                m.id = NULL;
        if (m.stanza_id && (!*m.stanza_id || strlen(m.stanza_id) > 256))
                m.stanza_id = NULL;
        /* Counts as handled for XEP-0198 only once the layer above stored it
         * (one held until ready was counted so as it came). */
        if (!s->replaying)
                xmpp_sm_received(s->sm, true);
        s->delivered_current = true;
        s->cb.chat_message(&m, s->userdata);
}

static void handle_carbon(XmppStream *s, const XmlNode *msg) {
        const XmlNode *inner = NULL;
        bool sent = false;

        /* XEP-0280 §11: anyone can wrap a message in <received/>; only our
         * own account's copies are real. */
        if (!from_own_account(s, xml_node_attr(msg, "from"))) {
                g_debug("xmpp: ignoring a carbon copy from %s", xml_node_attr(msg, "from"));
                return;
        }
        if (xmpp_carbons_parse(msg, &sent, &inner) < 0) {
                g_debug("xmpp: ignoring a malformed carbon copy");
                return;
        }
        handle_chat(s, inner, sent ? CHAT_CARBON_SENT : CHAT_CARBON_RECEIVED, NULL, 0);
}

static void handle_archive_result(XmppStream *s, const XmlNode *msg) {
        const char *from = xml_node_attr(msg, "from");
        XmppMamResult result;

        /* Results of our own archive come from it (our bare JID) or, as
         * RFC 6120 allows, without a from; and only for a query we sent. */
        if (from && !from_own_account(s, from)) {
                g_debug("xmpp: ignoring an archive result from %s", from);
                return;
        }
        if (xmpp_mam_parse_result(msg, &result) < 0) {
                g_debug("xmpp: ignoring a malformed archive result");
                return;
        }
        if (!s->mam_query_id || !result.query_id || strcmp(result.query_id, s->mam_query_id) != 0) {
                g_debug("xmpp: ignoring an archive result for a query we did not send");
                return;
        }
        if (s->mam_kind == XMPP_MAM_NEWEST)
                return;         /* only its id matters, and the <fin/> carries that */
        handle_chat(s, result.message, CHAT_ARCHIVED, result.id, parse_stamp(result.stamp));
}

void stream_handle_message(XmppStream *s, const XmlNode *msg) {
        /* Wrapped messages are never also taken as the plain message around them. */
        if (xml_node_child(msg, "result", NS_MAM))
                return handle_archive_result(s, msg);
        if (xml_node_child(msg, "received", NS_CARBONS) || xml_node_child(msg, "sent", NS_CARBONS))
                return handle_carbon(s, msg);
        handle_chat(s, msg, CHAT_LIVE, NULL, 0);
}
