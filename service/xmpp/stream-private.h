/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Shared by the files of one XmppStream: stream.c (connection, setup, IQs,
 * dispatch), stream-receive.c (incoming messages), stream-send.c (outgoing
 * messages, archive queries), stream-iq.c (the layer above's IQ requests),
 * stream-sasl.c (authentication), stream-sm.c (XEP-0198). Nothing outside
 * service/xmpp/stream*.c includes this.
 */

#include <stdbool.h>
#include <glib.h>

#include "mam.h"
#include "scram.h"
#include "sm.h"
#include "stream.h"
#include "xml.h"

#define NS_FRAMING  "urn:ietf:params:xml:ns:xmpp-framing"
#define NS_STREAMS  "http://etherx.jabber.org/streams"
#define NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_CLIENT   "jabber:client"
#define NS_SASL     "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND     "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION  "urn:ietf:params:xml:ns:xmpp-session"
#define NS_ROSTER   "jabber:iq:roster"
#define NS_STANZAS  "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_SID      "urn:xmpp:sid:0"
#define NS_DELAY    "urn:xmpp:delay"
#define NS_MARKERS  "urn:xmpp:chat-markers:0"
#define NS_RECEIPTS "urn:xmpp:receipts"
#define NS_HINTS    "urn:xmpp:hints"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_JSON     "urn:xmpp:json:0"
/* imd's own: the extension string of a custom message (TIM's custom element). */
#define NS_IMD      "urn:example:im:0"
#define NS_PING     "urn:xmpp:ping"
#define NS_SM       "urn:xmpp:sm:3"
#define NS_LIMITS   "urn:xmpp:stream-limits:0"

typedef enum StreamPhase {
        PHASE_CONNECTING,       /* WebSocket not up yet */
        PHASE_OPENING,          /* <open/> sent, waiting for features */
        PHASE_SASL,             /* <auth/> sent */
        PHASE_REOPENING,        /* authenticated, stream restarted */
        PHASE_RESUMING,         /* <resume/> sent (XEP-0198) */
        PHASE_BINDING,
        PHASE_SESSION,
        PHASE_ROSTER,
        PHASE_READY,
        PHASE_CLOSING,
        PHASE_CLOSED,
} StreamPhase;

typedef enum SaslMech {
        MECH_NONE,
        MECH_SCRAM_SHA256,
        MECH_SCRAM_SHA1,
        MECH_PLAIN,
} SaslMech;

struct XmppStream {
        XmppStreamCallbacks cb;
        void *userdata;
        XmppTransport *transport;
        XmlParser *parser;      /* one document per connection: no per-stanza reset */
        StreamPhase phase;
        StreamPhase phase_before_fail;
        char *jid;              /* bare */
        char *local, *domain;
        /* The last chat sender's 'from' and its bare JID (see sender_bare()) */
        char *last_from, *last_from_bare;
        char *password;         /* NULL: logging in with keys */
        ScramKeys *keys;        /* the keys to log in with, or NULL */
        ScramKeys *learned_keys;        /* of the SCRAM login that succeeded */
        bool need_scram_keys;   /* no PLAIN: the caller wants learned_keys */
        char *resource;
        char *full_jid;         /* after bind */
        SaslMech mech;
        ScramClient *scram;
        struct ScramJob *scram_job;     /* computing the client-final message */
        char *pending_iq;       /* id of the one setup IQ in flight */
        guint login_timer;
        guint ping_timer;               /* periodic check for silence */
        guint ping_deadline;            /* a ping is out; fail when this fires */
        int64_t last_rx_us;             /* monotonic time anything last arrived */
        unsigned ping_interval_ms, ping_timeout_ms;
        guint orphan_timer;     /* xmpp_stream_close_and_free(): gives up waiting */
        bool orphan;
        unsigned next_id;

        XmppSm *sm;                     /* XEP-0198 state; carried over to the next connection */
        bool sm_offered;                /* the server's features list <sm/> */
        size_t max_stanza_bytes;        /* XEP-0478 max-bytes after login; 0: not said */
        char *stream_error;             /* the condition of the server's stream error, if any */
        bool delivered_current;         /* the stanza being dispatched went to the layer above */
        /* <message/>s that came after resource binding, before ready (the
         * server routes to a bound resource: carbons, messages to our full
         * JID), oldest first, and their size as received; handed up once
         * ready (stream.c: hold_early_message()). */
        GQueue early;
        size_t early_bytes;
        bool replaying;                 /* handing them up: each was counted as it came */
        bool replay_committed;          /* ... and the layer above stored all it took meanwhile */
        guint ack_request_source;       /* one <r/> (or ping) per burst of messages */
        /* Without XEP-0198: the ping whose answer acknowledges the first
         * ack_ping_count messages and actions (the ones the local count
         * counts), and whether more went out after it. */
        char *ack_ping_id;
        uint32_t ack_ping_count;
        bool ack_ping_again;
        bool ack_owed;                  /* the server asked while messages were uncommitted */

        /* XEP-0313: the one archive query out, or NULLs. Results name the
         * query id, the <fin/> answers the IQ id; both are random, so nobody
         * else can answer for our archive. */
        char *mam_query_id;
        char *mam_iq_id;
        XmppMamQueryKind mam_kind;

        GPtrArray *iqs;                 /* PendingIq*: xmpp_stream_send_iq() requests (stream-iq.c) */
        GPtrArray *iqs_failing;         /* those being told that the connection ended */
        unsigned next_iq_handle;
};

/* stream.c */
bool stream_is_stanza(const XmlNode *node);
void stream_send_stanza(XmppStream *s, const XmlNode *node, const char *message_id, const char *to);
/* The same for what the layer above asks to send: its size in bytes, or
 * -EMSGSIZE (nothing sent) when it is larger than the server takes. */
int stream_send_stanza_bounded(XmppStream *s, const XmlNode *node, const char *message_id, const char *to);
void stream_send_node(XmppStream *s, const XmlNode *node);
void stream_send_open(XmppStream *s);
void stream_send_bind(XmppStream *s);
void stream_become_ready(XmppStream *s, bool resumed);
/* Ends the session with an error: report it once, then drop the connection. */
void stream_fail(XmppStream *s, int error, const char *text);

/* stream-receive.c */
/* A <message/> in a ready session: a chat message, a carbon copy or an archive result. */
void stream_handle_message(XmppStream *s, const XmlNode *msg);

/* stream-iq.c */
/* The reply to one of xmpp_stream_send_iq()'s requests: true if it was one
 * (handled, or ignored as coming from the wrong entity). */
bool stream_iq_handle_reply(XmppStream *s, const XmlNode *iq);
/* The connection is gone: every request hears -ECONNRESET. */
void stream_iq_fail_all(XmppStream *s);
/* The stream is freed: requests go without a word. */
void stream_iq_forget_all(XmppStream *s);

/* stream-sasl.c */
void stream_start_auth(XmppStream *s, const XmlNode *mechanisms);
void stream_handle_sasl(XmppStream *s, const XmlNode *node);
/* The stream is going: a SCRAM computation still running must not call it. */
void stream_sasl_forget(XmppStream *s);

/* stream-sm.c */
void stream_sm_send_enable(XmppStream *s);
void stream_sm_send_resume(XmppStream *s);
void stream_sm_send_ack(XmppStream *s);
void stream_sm_request_ack(XmppStream *s);
void stream_sm_handle(XmppStream *s, const XmlNode *node);
/* The server answered the IQ id (result or error; the caller checked it came
 * from the server): true if it was our acknowledgement ping. */
bool stream_sm_handle_ack_ping(XmppStream *s, const char *id);
