/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "carbons.h"
#include "jid.h"
#include "stream-private.h"

/* What the server relays is larger than what it took: Prosody, for one,
 * writes every ' " > of a text as an entity, so a message of 256 KiB (its
 * default c2s_stanza_size_limit) written with plain quotes reaches us as up
 * to 1.5 MiB. Its tree is no larger than that of the 256 KiB it was, so the
 * tree keeps the bound of a 256 KiB stanza. Larger ones are dropped (see
 * drop_input()). */
#define TRANSPORT_MAX_MESSAGE (2 * 1024 * 1024)
static const XmlLimits stanza_limits = {
        .max_bytes = TRANSPORT_MAX_MESSAGE,
        .max_depth = 16,
        .max_attrs = 32,
        .max_children = 4096,
        .max_tree_bytes = 4 * 1024 * 1024,
};
/* The roster is the one answer that grows with the account rather than with
 * what a peer sends: about 100 bytes and one child per contact, so 5,000
 * contacts are over stanza_limits (4,096 children). Its result is parsed
 * again with these (see answer_dropped_iq()). */
static const XmlLimits roster_limits = {
        .max_bytes = TRANSPORT_MAX_MESSAGE,
        .max_depth = 16,
        .max_attrs = 32,
        .max_children = 65536,
        .max_tree_bytes = 16 * 1024 * 1024,
};
/* What is read of a dropped stanza: its start tag. */
static const XmlLimits head_limits = {
        .max_bytes = TRANSPORT_MAX_MESSAGE,
        .max_depth = 1,
        .max_attrs = 32,
        .max_children = 0,
};

/* Messages held between resource binding and ready: a roster fetch takes
 * a round trip or two, and no one but our own account's other devices (and
 * whoever guesses our resource) can address a resource without presence. */
#define EARLY_MESSAGES_MAX 1024
#define EARLY_BYTES_MAX (16 * 1024 * 1024)

char *xmpp_new_id(void) {
        return g_uuid_string_random();
}

void stream_fail(XmppStream *s, int error, const char *text);
void stream_sm_send_enable(XmppStream *s);
void stream_sm_send_resume(XmppStream *s);
void stream_become_ready(XmppStream *s, bool resumed);

bool stream_is_stanza(const XmlNode *node) {
        return strcmp(node->ns, NS_CLIENT) == 0 &&
               (strcmp(node->name, "message") == 0 || strcmp(node->name, "iq") == 0 ||
                strcmp(node->name, "presence") == 0);
}

/* XEP-0198 keeps every stanza we send until the server acknowledges it, and
 * only our messages ask for that at once: replies to a peer's IQs, markers
 * and keepalive pings ask every this many, or a session that only reads
 * would keep them all (a peer flooding IQs at us, without bound). */
#define SM_ACK_REQUEST_EVERY 32

static void send_serialized(XmppStream *s, const XmlNode *node, const char *xml, size_t len,
                            const char *message_id, const char *to) {
        if (stream_is_stanza(node)) {
                xmpp_sm_sent(s->sm, xml, len, message_id, to);
                if (xmpp_sm_n_unacked(s->sm) % SM_ACK_REQUEST_EVERY == 0 && xmpp_sm_n_unacked(s->sm) > 0)
                        stream_sm_request_ack(s);
        }
        if (!s->transport || xmpp_transport_send(s->transport, xml, len) < 0)
                g_debug("xmpp: stanza not written (connection closed); kept for a resume");
}

/* Every stanza is counted for XEP-0198, and kept until acknowledged (without
 * it, only those with a message_id: sm.h); message_id/to name a chat message
 * (or an action on one) whose acknowledgement matters above. */
void stream_send_stanza(XmppStream *s, const XmlNode *node, const char *message_id, const char *to) {
        size_t len;
        g_autofree char *xml = xml_serialize(node, &len);

        send_serialized(s, node, xml, len, message_id, to);
}

int stream_send_stanza_bounded(XmppStream *s, const XmlNode *node, const char *message_id, const char *to) {
        size_t len;
        g_autofree char *xml = xml_serialize(node, &len);

        /* the server would end the stream on it, and the session with it */
        if (len > xmpp_stream_max_stanza_bytes(s))
                return -EMSGSIZE;
        send_serialized(s, node, xml, len, message_id, to);
        return (int) len;
}

void stream_send_node(XmppStream *s, const XmlNode *node) {
        stream_send_stanza(s, node, NULL, NULL);
}

void stream_send_open(XmppStream *s) {
        g_autoptr(XmlNode) open = xml_node_new("open", NS_FRAMING);
        xml_node_set_attr(open, "to", s->domain);
        xml_node_set_attr(open, "version", "1.0");
        stream_send_node(s, open);
}

static char *next_iq_id(XmppStream *s) {
        return g_strdup_printf("imd-%u", ++s->next_id);
}

/* Sends a setup IQ (bind, session, roster) and remembers its id: exactly one is
 * in flight during login, which keeps the state machine linear. */
static void send_setup_iq(XmppStream *s, XmlNode *iq) {
        g_free(s->pending_iq);
        s->pending_iq = next_iq_id(s);
        xml_node_set_attr(iq, "id", s->pending_iq);
        stream_send_node(s, iq);
}

/* --- session setup --- */

void stream_send_bind(XmppStream *s) {
        g_autoptr(XmlNode) iq = xml_node_new("iq", NS_CLIENT);
        XmlNode *bind;

        xml_node_set_attr(iq, "type", "set");
        bind = xml_node_add_child(iq, "bind", NS_BIND);
        xml_node_set_text(xml_node_add_child(bind, "resource", NULL), s->resource);
        s->phase = PHASE_BINDING;
        send_setup_iq(s, iq);
}

static void send_roster_get(XmppStream *s) {
        g_autoptr(XmlNode) iq = xml_node_new("iq", NS_CLIENT);
        xml_node_set_attr(iq, "type", "get");
        xml_node_add_child(iq, "query", NS_ROSTER);
        s->phase = PHASE_ROSTER;
        send_setup_iq(s, iq);
}

/* XEP-0478. Too small to carry any message, or absurdly large, it is not
 * taken at its word; below RFC 6120's minimum of 10,000 bytes it is. */
static size_t advertised_max_bytes(const XmlNode *features) {
        const XmlNode *limits = xml_node_child(features, "limits", NS_LIMITS);
        const char *text = limits ? xml_node_child_text(limits, "max-bytes", NS_LIMITS) : NULL;
        guint64 v;

        if (!text || !g_ascii_string_to_unsigned(text, 10, 1000, 64 * 1024 * 1024, &v, NULL))
                return 0;
        return (size_t) v;
}

static void handle_features(XmppStream *s, const XmlNode *features) {
        if (s->phase == PHASE_OPENING) {
                const XmlNode *mechs = xml_node_child(features, "mechanisms", NS_SASL);
                if (!mechs)
                        return stream_fail(s, -ENOTSUP, "the server offers no SASL authentication");
                return stream_start_auth(s, mechs);
        }
        if (s->phase == PHASE_REOPENING) {
                s->sm_offered = xml_node_child(features, "sm", NS_SM) != NULL;
                s->max_stanza_bytes = advertised_max_bytes(features);
                if (s->sm_offered && xmpp_sm_resume_id(s->sm))
                        return stream_sm_send_resume(s);
                if (!xml_node_child(features, "bind", NS_BIND))
                        return stream_fail(s, -EPROTO, "the server offers no resource binding");
                /* A fresh session: whatever the last one (handed over for a
                 * resume this server does not offer) had in flight is the
                 * outbox's again, and it is counted anew, or locally. */
                xmpp_sm_stop(s->sm);
                return stream_send_bind(s);
        }
        stream_fail(s, -EPROTO, "unexpected stream features");
}

static void roster_deliver(XmppStream *s, const XmlNode *query, bool full) {
        g_autoptr(GArray) items = g_array_new(FALSE, TRUE, sizeof(XmppRosterItem));
        g_autoptr(GPtrArray) jids = g_ptr_array_new_with_free_func(g_free);

        for (const XmlNode *item = query->first_child; item; item = item->next) {
                XmppRosterItem ri;
                char *jid;

                if (strcmp(item->name, "item") != 0 || strcmp(item->ns, NS_ROSTER) != 0)
                        continue;
                jid = jid_normalize_bare(xml_node_attr(item, "jid"));
                if (!jid)
                        continue;       /* invalid JIDs never reach the layer above */
                g_ptr_array_add(jids, jid);
                ri.jid = jid;
                ri.name = xml_node_attr(item, "name");
                if (!ri.name || !g_utf8_validate(ri.name, -1, NULL))
                        ri.name = "";
                ri.subscription = xml_node_attr(item, "subscription");
                if (!ri.subscription)
                        ri.subscription = "none";
                if (!g_strv_contains((const char *const[]) { "none", "to", "from", "both", "remove", NULL },
                                     ri.subscription))
                        continue;
                g_array_append_val(items, ri);
        }
        if (s->cb.roster)
                s->cb.roster((const XmppRosterItem *) (void *) items->data, items->len, full, s->userdata);
}

static gboolean on_ping_deadline(gpointer userdata) {
        XmppStream *s = userdata;
        s->ping_deadline = 0;
        stream_fail(s, -ETIMEDOUT, "the server stopped answering");
        return G_SOURCE_REMOVE;
}

static gboolean on_ping_timer(gpointer userdata) {
        XmppStream *s = userdata;
        g_autoptr(XmlNode) iq = NULL;
        g_autofree char *id = NULL;

        if (s->ping_deadline ||
            g_get_monotonic_time() - s->last_rx_us < (int64_t) s->ping_interval_ms * 1000)
                return G_SOURCE_CONTINUE;
        iq = xml_node_new("iq", NS_CLIENT);
        id = g_strdup_printf("ping-%u", ++s->next_id);
        xml_node_set_attr(iq, "type", "get");
        xml_node_set_attr(iq, "id", id);
        xml_node_set_attr(iq, "to", s->domain);
        xml_node_add_child(iq, "ping", NS_PING);
        stream_send_node(s, iq);
        s->ping_deadline = g_timeout_add(s->ping_timeout_ms, on_ping_deadline, s);
        return G_SOURCE_CONTINUE;
}

static void stop_timers(XmppStream *s) {
        if (s->login_timer) {
                g_source_remove(s->login_timer);
                s->login_timer = 0;
        }
        if (s->ping_timer) {
                g_source_remove(s->ping_timer);
                s->ping_timer = 0;
        }
        if (s->ping_deadline) {
                g_source_remove(s->ping_deadline);
                s->ping_deadline = 0;
        }
}

/* What came between binding and ready (hold_early_message()) goes up now,
 * in the order it came and as if it came now: the layer above takes
 * messages only once ready (the account's history opens then), and its
 * archive catch-up, started by then, stores once what it brings too. Each
 * was counted for XEP-0198 as it came, as a message still to be stored; a
 * storing that settles them (xmpp_stream_messages_committed()) is only
 * passed on once nothing taken up is left unstored: it would otherwise
 * settle the ones not handed up yet as well. */
static void deliver_early_messages(XmppStream *s) {
        bool was_delivered = s->delivered_current;      /* the roster's answer, being dispatched */
        bool unstored = false;
        XmlNode *msg;

        if (g_queue_is_empty(&s->early))
                return;
        s->replaying = true;
        while (s->phase == PHASE_READY && !s->orphan && (msg = g_queue_pop_head(&s->early))) {
                s->delivered_current = false;
                s->replay_committed = false;
                stream_handle_message(s, msg);
                xml_node_free(msg);
                if (s->replay_committed)
                        unstored = false;
                if (s->delivered_current && !s->replay_committed)
                        unstored = true;
        }
        s->replaying = false;
        s->early_bytes = 0;
        s->delivered_current = was_delivered;
        if (!unstored && s->phase == PHASE_READY && !s->orphan)
                xmpp_stream_messages_committed(s);
}

void stream_become_ready(XmppStream *s, bool resumed) {
        if (!resumed) {
                g_autoptr(XmlNode) presence = xml_node_new("presence", NS_CLIENT);
                stream_send_node(s, presence);
                /* the server refused XEP-0198 or does not offer it: what we
                 * send is acknowledged by pings (stream-sm.c) */
                if (!xmpp_sm_is_enabled(s->sm))
                        xmpp_sm_start_local(s->sm);
        }
        s->phase = PHASE_READY;
        stop_timers(s);
        s->last_rx_us = g_get_monotonic_time();
        s->ping_timer = g_timeout_add(s->ping_interval_ms, on_ping_timer, s);
        s->cb.ready(resumed, s->userdata);
        deliver_early_messages(s);
}

/* Replies from anyone but our server (no from, our domain, or our own bare JID)
 * are not replies to what we asked the server. */
static bool from_server(XmppStream *s, const XmlNode *stanza) {
        const char *from = xml_node_attr(stanza, "from");
        g_autofree char *bare = NULL;

        if (!from)
                return true;
        bare = jid_normalize_bare(from);
        return bare && (strcmp(bare, s->domain) == 0 || strcmp(bare, s->jid) == 0);
}

/* The server itself: no from, or its domain (not another resource of our
 * account, which from_server() lets answer for it). */
static bool from_server_itself(XmppStream *s, const XmlNode *stanza) {
        const char *from = xml_node_attr(stanza, "from");
        g_autofree char *bare = NULL;

        if (!from)
                return true;
        bare = jid_normalize_bare(from);
        return bare && strcmp(bare, s->domain) == 0 && !strchr(from, '/');
}

/* RFC 6121 §2.1.6: a roster push comes without from, or from our bare JID;
 * not from the domain, and not from another resource of the account. */
static bool from_roster_pusher(XmppStream *s, const XmlNode *stanza) {
        const char *from = xml_node_attr(stanza, "from");
        g_autofree char *bare = NULL;

        if (!from)
                return true;
        if (strchr(from, '/'))
                return false;
        bare = jid_normalize_bare(from);
        return bare && strcmp(bare, s->jid) == 0;
}

/* XEP-0280, outside the linear setup: the answer is not waited for (a server
 * without carbons just answers with an error, which nobody reads). A resumed
 * session keeps its carbons. */
static void send_carbons_enable(XmppStream *s) {
        g_autofree char *id = g_strdup_printf("carbons-%u", ++s->next_id);
        g_autoptr(XmlNode) iq = xmpp_carbons_enable_new(id);
        stream_send_node(s, iq);
}

static void handle_setup_result(XmppStream *s, const XmlNode *iq) {
        const char *type = xml_node_attr(iq, "type");

        g_clear_pointer(&s->pending_iq, g_free);
        if (!type || strcmp(type, "result") != 0) {
                if (s->phase == PHASE_ROSTER)
                        /* A server without a roster is still usable. */
                        return stream_become_ready(s, false);
                return stream_fail(s, -EPROTO, s->phase == PHASE_BINDING ? "resource binding refused"
                                                                         : "session setup refused");
        }
        switch (s->phase) {
        case PHASE_BINDING: {
                const XmlNode *bind = xml_node_child(iq, "bind", NS_BIND);
                const char *jid = bind ? xml_node_child_text(bind, "jid", NS_BIND) : NULL;
                Jid parsed = { 0 };
                g_autofree char *bare = NULL;

                if (!jid || jid_parse(jid, &parsed) < 0)
                        return stream_fail(s, -EPROTO, "the server bound an invalid JID");
                bare = jid_to_bare(&parsed);
                if (strcmp(bare, s->jid) != 0 || !parsed.resource) {
                        jid_clear(&parsed);
                        return stream_fail(s, -EPROTO, "the server bound another account's JID");
                }
                g_free(s->full_jid);
                s->full_jid = jid_to_string(&parsed);
                jid_clear(&parsed);
                stream_sm_send_enable(s);
                send_carbons_enable(s);
                return send_roster_get(s);
        }
        case PHASE_ROSTER: {
                const XmlNode *query = xml_node_child(iq, "query", NS_ROSTER);
                if (query)
                        roster_deliver(s, query, true);
                return stream_become_ready(s, false);
        }
        case PHASE_CONNECTING:
        case PHASE_OPENING:
        case PHASE_SASL:
        case PHASE_REOPENING:
        case PHASE_RESUMING:
        case PHASE_SESSION:
        case PHASE_READY:
        case PHASE_CLOSING:
        case PHASE_CLOSED:
                break;
        }
        stream_fail(s, -EPROTO, "unexpected IQ result");
}

/* --- stanzas once ready --- */

/* An empty result, or (condition non-NULL) an error of that type (RFC 6120 §8.3). */
static void send_iq_answer(XmppStream *s, const XmlNode *iq, const char *error_type, const char *condition) {
        g_autoptr(XmlNode) reply = xml_node_new("iq", NS_CLIENT);
        const char *from = xml_node_attr(iq, "from");
        const char *id = xml_node_attr(iq, "id");

        if (!id)
                return;
        xml_node_set_attr(reply, "type", condition ? "error" : "result");
        xml_node_set_attr(reply, "id", id);
        if (from)
                xml_node_set_attr(reply, "to", from);
        if (condition) {
                XmlNode *error = xml_node_add_child(reply, "error", NULL);
                xml_node_set_attr(error, "type", error_type);
                xml_node_add_child(error, condition, NS_STANZAS);
        }
        stream_send_node(s, reply);
}

static void send_iq_reply(XmppStream *s, const XmlNode *iq, bool ok) {
        send_iq_answer(s, iq, "cancel", ok ? NULL : "service-unavailable");
}

/* The end of an archive page: an <iq type='result'> with <fin/>, or an error. */
static void handle_mam_fin(XmppStream *s, const XmlNode *iq, bool ok) {
        const XmlNode *error = ok ? NULL : xml_node_child(iq, "error", NULL);
        const char *first = NULL, *last = NULL;
        bool complete = false;
        int r = 0;

        /* Over before the callback, which may start the next page. */
        g_clear_pointer(&s->mam_query_id, g_free);
        g_clear_pointer(&s->mam_iq_id, g_free);
        if (!ok) {
                if (error && xml_node_child(error, "item-not-found", NS_STANZAS))
                        r = -ENOENT;
                else if (error && (xml_node_child(error, "feature-not-implemented", NS_STANZAS) ||
                                   xml_node_child(error, "service-unavailable", NS_STANZAS)))
                        r = -EOPNOTSUPP;        /* no archive here at all */
                else
                        r = -EPROTO;
        }
        else if (xmpp_mam_parse_fin(iq, &complete, &first, &last) < 0)
                r = -EPROTO;
        if (r < 0)
                g_debug("xmpp: archive query failed: %s", g_strerror(-r));
        if (s->cb.mam_finished)
                s->cb.mam_finished(r, complete, first, last, s->userdata);
}

static void handle_iq(XmppStream *s, const XmlNode *iq) {
        const char *type = xml_node_attr(iq, "type");
        const char *id = xml_node_attr(iq, "id");

        if (!type)
                return;
        if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) {
                if (s->pending_iq && id && strcmp(id, s->pending_iq) == 0 && from_server(s, iq))
                        handle_setup_result(s, iq);
                else if (s->mam_iq_id && id && strcmp(id, s->mam_iq_id) == 0 && from_server(s, iq))
                        handle_mam_fin(s, iq, strcmp(type, "result") == 0);
                else if (from_server_itself(s, iq) && stream_sm_handle_ack_ping(s, id))
                        return;
                else if (!stream_iq_handle_reply(s, iq))
                        g_debug("xmpp: ignoring an IQ reply nobody asked for");
                return;
        }
        if (s->phase != PHASE_READY)
                return;         /* pushes and pings only in an established session */
        if (strcmp(type, "set") == 0) {
                const XmlNode *query = xml_node_child(iq, "query", NS_ROSTER);
                if (query) {
                        if (!from_roster_pusher(s, iq)) {
                                g_debug("xmpp: refusing a roster push from %s", xml_node_attr(iq, "from"));
                                return send_iq_reply(s, iq, false);
                        }
                        roster_deliver(s, query, false);
                        return send_iq_reply(s, iq, true);
                }
        } else if (strcmp(type, "get") == 0 && xml_node_child(iq, "ping", NS_PING))
                return send_iq_reply(s, iq, true);
        send_iq_reply(s, iq, false);
}

/* RFC 6120 §4.9.2: the defined condition, beside <text/> and any
 * application-specific element. */
static const char *stream_error_condition(const XmlNode *error) {
        for (const XmlNode *c = error->first_child; c; c = c->next)
                if (strcmp(c->ns, NS_STREAM_ERRORS) == 0 && strcmp(c->name, "text") != 0)
                        return c->name;
        return "undefined-condition";
}

static void handle_stream_error(XmppStream *s, const XmlNode *error) {
        const char *cond = stream_error_condition(error);
        g_autofree char *text = NULL;

        if (strcmp(cond, "conflict") == 0)
                return stream_fail(s, -EADDRINUSE, "another login of this account took over the session");
        g_free(s->stream_error);
        s->stream_error = g_strdup(cond);
        text = g_strdup_printf("stream error from the server: %s", cond);
        stream_fail(s, -ECONNRESET, text);
}

/* --- transport callbacks --- */

static void on_transport_connected(void *userdata) {
        XmppStream *s = userdata;
        s->phase = PHASE_OPENING;
        stream_send_open(s);
}

static void dispatch_stanza(XmppStream *s, XmlNode **node, size_t len);

/* node: taken if it is kept (hold_early_message()); len: its size as received. */
static void dispatch(XmppStream *s, XmlNode **nodep, size_t len) {
        const XmlNode *node = *nodep;

        if (strcmp(node->ns, NS_FRAMING) == 0) {
                if (strcmp(node->name, "close") == 0) {
                        if (s->phase == PHASE_CLOSING)
                                return;
                        return stream_fail(s, -ECONNRESET, "the server closed the stream");
                }
                return;         /* <open/>: the server's stream header; nothing to check beyond parse */
        }
        if (strcmp(node->ns, NS_STREAMS) == 0) {
                if (strcmp(node->name, "features") == 0)
                        return handle_features(s, node);
                if (strcmp(node->name, "error") == 0)
                        return handle_stream_error(s, node);
                return;
        }
        if (strcmp(node->ns, NS_SASL) == 0) {
                if (s->phase != PHASE_SASL)
                        return stream_fail(s, -EPROTO, "unexpected SASL element");
                return stream_handle_sasl(s, node);
        }
        if (strcmp(node->ns, NS_SM) == 0) {
                if (s->phase >= PHASE_BINDING || s->phase == PHASE_RESUMING)
                        stream_sm_handle(s, node);
                return;
        }
        if (!stream_is_stanza(node))
                return;
        /* Counted before it is handled: a message handed up may be stored (and
         * confirmed) before the handler returns. */
        s->delivered_current = false;
        dispatch_stanza(s, nodep, len);
        if (!s->delivered_current && s->phase != PHASE_CLOSED)
                xmpp_sm_received(s->sm, false);
}

/* A message to our bound resource before we are ready: the server counts it
 * as sent (XEP-0198 is on by now), and the archive catch-up does not bring
 * it back on a first login (it only learns where the archive ends) nor
 * without an archive. It is kept for deliver_early_messages() and counted
 * as received but not handled, so no <a/> acknowledges it until the layer
 * above stored it; more than we keep ends the login rather than losing
 * any (nothing past the first one kept was acknowledged). */
static void hold_early_message(XmppStream *s, XmlNode **node, size_t len) {
        if (s->early.length >= EARLY_MESSAGES_MAX || s->early_bytes + len > EARLY_BYTES_MAX)
                return stream_fail(s, -ENOBUFS, "the server sent too many messages before the login completed");
        g_queue_push_tail(&s->early, g_steal_pointer(node));
        s->early_bytes += len;
        xmpp_sm_received(s->sm, true);
        s->delivered_current = true;
}

static void dispatch_stanza(XmppStream *s, XmlNode **nodep, size_t len) {
        const XmlNode *node = *nodep;

        /* Before the resource is bound nothing but our own setup replies is
         * expected; the server has not even authenticated us yet. */
        if (s->phase < PHASE_BINDING)
                return;
        if (strcmp(node->name, "iq") == 0)
                return handle_iq(s, node);
        if (strcmp(node->name, "message") != 0)
                return;
        if (s->phase != PHASE_READY)
                return hold_early_message(s, nodep, len);
        stream_handle_message(s, node);
}

/* An iq over the limits still gets what RFC 6120 §8.2.3 promises both
 * sides, read from its start tag alone: a request an error reply, and an
 * answer we wait for its waiter's error (no login or upload left hanging
 * until a timeout). A roster result is parsed again with roster_limits:
 * an account with thousands of contacts must still be able to log in. */
static void answer_dropped_iq(XmppStream *s, const char *data, size_t len) {
        g_autoptr(XmlNode) head = NULL, whole = NULL;
        const char *type, *id;

        if (xml_parse_head(data, len, &head_limits, &head) < 0 ||
            strcmp(head->name, "iq") != 0 || strcmp(head->ns, NS_CLIENT) != 0)
                return;
        type = xml_node_attr(head, "type");
        id = xml_node_attr(head, "id");
        if (!type || !id)
                return;
        if (strcmp(type, "get") == 0 || strcmp(type, "set") == 0) {
                if (s->phase == PHASE_READY)
                        send_iq_answer(s, head, "modify", "policy-violation");
                return;
        }
        if (strcmp(type, "result") == 0 && s->phase == PHASE_ROSTER && s->pending_iq &&
            strcmp(id, s->pending_iq) == 0 &&
            xml_parse(data, len, &roster_limits, &whole) == 0) {
                g_debug("xmpp: a roster of %zu bytes, parsed with the roster's limits", len);
                return handle_iq(s, whole);
        }
        if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) {
                /* the waiter learns it failed; an unasked-for one is ignored as ever */
                xml_node_set_attr(head, "type", "error");
                handle_iq(s, head);
        }
}

/* A well-formed message over the parser's limits (size, depth, attributes,
 * children, memory): dropped, and the stream goes on. Ending it instead
 * would let any peer whose stanza the server relays (it has no depth or
 * attribute limits of its own) cut us off, again after every reconnect while
 * the stanza waits in the archive or the XEP-0198 queue. It still counts as
 * received for XEP-0198 if it was a stanza: the refused tree is gone, so
 * its name as written decides (servers write stanzas unprefixed). data may
 * be the start of it only (TRANSPORT_DROPPED_HEAD_BYTES); len is its size.
 * The user hears of a message dropped for its length: someone's words. Not
 * of one dropped for its shape (depth, attributes, children, a tree out of
 * proportion), which no client writes: any contact could send thousands,
 * through any server, and bury the user's events under errors; a long one
 * only comes from a server that took it. */
static void drop_input(XmppStream *s, int error, const char *data, size_t data_len, size_t len) {
        static const char *const stanzas[] = { "message", "presence", "iq" };
        const char *p = data, *end = data + data_len;
        size_t n = 0;

        while (p < end && g_ascii_isspace(*p))
                p++;
        if (p < end && *p == '<')
                for (p++; p + n < end && !g_ascii_isspace(p[n]) && p[n] != '/' && p[n] != '>'; n++)
                        ;
        g_debug("xmpp: dropping a %zu-byte element over the limits: %s", len, g_strerror(-error));
        if (n == 2 && memcmp(p, "iq", 2) == 0 && s->phase >= PHASE_BINDING)
                answer_dropped_iq(s, data, data_len);
        if (s->phase == PHASE_CLOSED)
                return;
        if (n == 7 && memcmp(p, "message", 7) == 0 && len > stanza_limits.max_bytes && s->phase == PHASE_READY &&
            s->cb.message_dropped) {
                g_autoptr(XmlNode) head = NULL;
                const char *from = NULL;
                if (xml_parse_head(data, data_len, &head_limits, &head) == 0)
                        from = xml_node_attr(head, "from");
                s->cb.message_dropped(from, len, s->userdata);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(stanzas); i++)
                if (n == strlen(stanzas[i]) && memcmp(p, stanzas[i], n) == 0)
                        return xmpp_sm_received(s->sm, false);
}

/* RFC 6120 §4.9: the stream ends with a stream error naming what was wrong
 * (then stream_fail()'s <close/>). */
static void refuse_input(XmppStream *s, int error, const char *data, size_t len) {
        g_autoptr(XmlNode) stream_error = xml_node_new("error", NS_STREAMS);
        const char *condition, *text;

        g_debug("xmpp: refusing stanza: %s", g_strerror(-error));
        switch (error) {
        case -EPERM:
                condition = "restricted-xml";   /* §11.1 */
                text = "the server sent restricted XML (a DTD, entity, comment or processing instruction)";
                error = -EPROTO;
                break;
        case -ENOMEM:
                condition = "resource-constraint";
                text = "out of memory parsing what the server sent";
                break;
        default:
                /* §11.6: invalid UTF-8 is an encoding error, not bad XML */
                if (!g_utf8_validate_len(data, len, NULL)) {
                        condition = "unsupported-encoding";
                        text = "the server sent invalid UTF-8";
                } else {
                        condition = "not-well-formed";
                        text = "the server sent XML that is not well-formed";
                }
                error = -EPROTO;
                break;
        }
        xml_node_add_child(stream_error, condition, NS_STREAM_ERRORS);
        stream_send_node(s, stream_error);
        stream_fail(s, error, text);
}

/* Anything at all proves the link is alive. */
static void heard_from_server(XmppStream *s) {
        s->last_rx_us = g_get_monotonic_time();
        if (s->ping_deadline) {
                g_source_remove(s->ping_deadline);
                s->ping_deadline = 0;
        }
}

static void on_transport_receiving(void *userdata) {
        XmppStream *s = userdata;

        if (s->phase != PHASE_CLOSED && !s->orphan)
                heard_from_server(s);
}

static void on_transport_message_dropped(const char *head, size_t head_len, size_t len, void *userdata) {
        XmppStream *s = userdata;

        if (s->phase == PHASE_CLOSED || s->orphan)
                return;
        heard_from_server(s);
        drop_input(s, -EMSGSIZE, head, head_len, len);
}

static void on_transport_message(const char *data, size_t len, void *userdata) {
        XmppStream *s = userdata;
        g_autoptr(XmlNode) node = NULL;
        int r;

        if (s->phase == PHASE_CLOSED || s->orphan)
                return;
        heard_from_server(s);
        r = xml_parser_feed(s->parser, data, len, &node);
        if (r == -EMSGSIZE || r == -ELOOP || r == -E2BIG)
                return drop_input(s, r, data, len, len);
        if (r < 0)
                return refuse_input(s, r, data, len);
        dispatch(s, &node, len);
}

static gboolean on_orphan_reap(gpointer userdata) {
        XmppStream *s = userdata;
        s->orphan_timer = 0;
        xmpp_stream_free(s);
        return G_SOURCE_REMOVE;
}

static void on_transport_closed(int error, const char *reason, void *userdata) {
        XmppStream *s = userdata;
        StreamPhase was = s->phase;
        int r = error;

        if (s->orphan) {
                /* Free outside the transport's callback. */
                if (s->orphan_timer)
                        g_source_remove(s->orphan_timer);
                s->orphan_timer = g_idle_add(on_orphan_reap, s);
                return;
        }
        s->phase = PHASE_CLOSED;
        stop_timers(s);
        if (was == PHASE_CLOSING)
                r = 0;
        stream_iq_fail_all(s);
        s->cb.closed(r, reason ? reason : "connection closed", s->userdata);
}

static const XmppTransportCallbacks transport_callbacks = {
        .connected = on_transport_connected,
        .message = on_transport_message,
        .message_dropped = on_transport_message_dropped,
        .receiving = on_transport_receiving,
        .closed = on_transport_closed,
};

/* Ends the session with an error: report it once, then drop the connection. */
static void stream_end(XmppStream *s, int error, const char *text, bool keep_session) {
        if (s->phase == PHASE_CLOSED)
                return;
        g_debug("xmpp: session failed: %s", text);
        s->phase_before_fail = s->phase;
        s->phase = PHASE_CLOSED;
        stop_timers(s);
        if (s->transport && keep_session && s->phase_before_fail == PHASE_READY) {
                /* Just drop the link: a <close/> would end the session on
                 * the server too, and with it the XEP-0198 resumption that
                 * lets the next connection lose nothing. */
                xmpp_transport_free(g_steal_pointer(&s->transport));
        } else if (s->transport) {
                /* RFC 7395 §3.6: tell the server before going. */
                g_autoptr(XmlNode) close = xml_node_new("close", NS_FRAMING);
                stream_send_node(s, close);
                xmpp_transport_close_and_free(g_steal_pointer(&s->transport));
        }
        stream_iq_fail_all(s);
        s->cb.closed(error, text, s->userdata);
}

/* A link that looks dead (-ETIMEDOUT) is dropped, keeping the session. */
void stream_fail(XmppStream *s, int error, const char *text) {
        stream_end(s, error, text, error == -ETIMEDOUT);
}

void xmpp_stream_abort(XmppStream *s, int error, const char *text) {
        stream_end(s, error, text, true);
}

static gboolean on_login_timeout(gpointer userdata) {
        XmppStream *s = userdata;
        s->login_timer = 0;
        stream_fail(s, -ETIMEDOUT, "the server did not complete the login in time");
        return G_SOURCE_REMOVE;
}

int xmpp_stream_new(XmppTransportContext *ctx, const XmppStreamConfig *config, const XmppStreamCallbacks *cb,
                    void *userdata, XmppStream **ret) {
        XmppStream *s;
        Jid jid = { 0 };
        int r;

        if (!config->password && !config->keys)
                return -EINVAL;
        if (jid_parse(config->jid, &jid) < 0 || !jid.local)
                return -EINVAL;

        s = g_new0(XmppStream, 1);
        s->cb = *cb;
        s->userdata = userdata;
        s->jid = jid_to_bare(&jid);
        s->local = g_strdup(jid.local);
        s->domain = g_strdup(jid.domain);
        jid_clear(&jid);
        s->password = g_strdup(config->password);
        s->keys = config->password ? NULL : scram_keys_copy(config->keys);
        s->need_scram_keys = config->need_scram_keys;
        s->resource = config->resource ? g_strdup(config->resource)
                                       : g_strdup_printf("imd-%08x", g_random_int());
        s->phase = PHASE_CONNECTING;
        s->parser = xml_parser_new_stream(&stanza_limits);
        s->sm = config->sm ? config->sm : xmpp_sm_new();

        /* A message up to the transport's limit is dropped alone if it is too
         * big for the parser (drop_input()); the server may relay more than
         * it takes from a client (a 256 KiB message with its stanza-id, in an
         * archive result, or from another server up to 512 KiB). */
        r = xmpp_transport_connect(ctx, config->url, config->ca_file, TRANSPORT_MAX_MESSAGE,
                                   &transport_callbacks, s, &s->transport);
        if (r < 0) {
                xmpp_stream_free(s);
                return r;
        }
        s->ping_interval_ms = config->ping_interval_ms ? config->ping_interval_ms : 30000;
        s->ping_timeout_ms = config->ping_timeout_ms ? config->ping_timeout_ms : 10000;
        s->login_timer = g_timeout_add(config->login_timeout_ms ? config->login_timeout_ms : 30000,
                                       on_login_timeout, s);
        *ret = s;
        return 0;
}

void xmpp_stream_close(XmppStream *s) {
        g_autoptr(XmlNode) close = NULL;

        if (s->phase == PHASE_CLOSED || s->phase == PHASE_CLOSING)
                return;
        if (s->phase == PHASE_CONNECTING) {
                stream_fail(s, 0, "closed");
                return;
        }
        close = xml_node_new("close", NS_FRAMING);
        stream_send_node(s, close);
        s->phase = PHASE_CLOSING;
        stop_timers(s);
        xmpp_transport_close(s->transport);
}

void xmpp_stream_close_and_free(XmppStream *s) {
        if (!s)
                return;
        if (s->phase == PHASE_CLOSED || s->phase == PHASE_CONNECTING || !s->transport) {
                xmpp_stream_free(s);
                return;
        }
        xmpp_stream_close(s);
        s->orphan = true;
        stop_timers(s);
        s->orphan_timer = g_timeout_add_seconds(3, on_orphan_reap, s);
}

void xmpp_stream_free(XmppStream *s) {
        if (!s)
                return;
        stop_timers(s);
        stream_iq_forget_all(s);
        g_queue_clear_full(&s->early, (GDestroyNotify) xml_node_free);
        if (s->ack_request_source)
                g_source_remove(s->ack_request_source);
        g_free(s->ack_ping_id);
        xmpp_sm_free(s->sm);
        if (s->orphan_timer)
                g_source_remove(s->orphan_timer);
        xmpp_transport_free(s->transport);
        stream_sasl_forget(s);
        scram_client_free(s->scram);
        xml_parser_free(s->parser);
        if (s->password) {
                explicit_bzero(s->password, strlen(s->password));
                g_free(s->password);
        }
        scram_keys_free(s->keys);
        scram_keys_free(s->learned_keys);
        g_free(s->jid);
        g_free(s->local);
        g_free(s->domain);
        g_free(s->stream_error);
        g_free(s->last_from);
        g_free(s->last_from_bare);
        g_free(s->resource);
        g_free(s->full_jid);
        g_free(s->pending_iq);
        g_free(s->mam_query_id);
        g_free(s->mam_iq_id);
        g_free(s);
}

bool xmpp_stream_is_ready(const XmppStream *s) {
        return s->phase == PHASE_READY;
}

const char *xmpp_stream_error_condition(const XmppStream *s) {
        return s->stream_error;
}

size_t xmpp_stream_max_stanza_bytes(const XmppStream *s) {
        return s->max_stanza_bytes ? s->max_stanza_bytes : XMPP_DEFAULT_MAX_STANZA_BYTES;
}

const char *xmpp_stream_full_jid(const XmppStream *s) {
        return s->full_jid;
}

void xmpp_stream_messages_committed(XmppStream *s) {
        /* The layer above has not seen what is held for
         * deliver_early_messages() yet: that decides once it has. */
        if (s->replaying || !g_queue_is_empty(&s->early)) {
                s->replay_committed = true;
                return;
        }
        xmpp_sm_committed(s->sm);
        if (s->ack_owed && s->phase == PHASE_READY) {
                s->ack_owed = false;
                stream_sm_send_ack(s);
        }
}

XmppSm *xmpp_stream_steal_sm(XmppStream *s) {
        XmppSm *sm;

        if (!xmpp_sm_resume_id(s->sm))
                return NULL;
        sm = s->sm;
        s->sm = xmpp_sm_new();
        return sm;
}

bool xmpp_stream_is_in_flight(const XmppStream *s, const char *message_id) {
        return xmpp_sm_is_unacked_message(s->sm, message_id);
}
