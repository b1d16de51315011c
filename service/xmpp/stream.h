/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One client XMPP session over an RFC 7395 transport: stream open/close
 * framing, SASL (SCRAM-SHA-256, SCRAM-SHA-1; PLAIN only over TLS), resource
 * binding, roster fetch, initial presence, then chat messages both ways;
 * XEP-0280 carbons (enabled after binding) and XEP-0313 queries of our own
 * archive bring in what the account's other devices sent and received.
 *
 * Every incoming stanza is untrusted: it is parsed with xml.h's limits and
 * validated here into plain structs before the layer above sees it. This layer
 * knows nothing of D-Bus or storage.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "mam.h"
#include "media.h"
#include "scram.h"
#include "sm.h"
#include "transport.h"

typedef struct XmppStream XmppStream;

typedef struct XmppStreamConfig {
        const char *jid;        /* normalised bare JID of the account */
        const char *password;   /* NULL: log in with keys */
        /* Without a password: the SCRAM keys of an earlier login (copied).
         * Only their mechanism is tried; a server that no longer offers it,
         * or another salt or iteration count (a new password), is -EACCES. */
        const ScramKeys *keys;
        /* The caller wants the keys of this login (to remember it): PLAIN,
         * which leaves none, is refused with -ENOTSUP before the password goes out. */
        bool need_scram_keys;
        const char *url;        /* ws:// or wss:// endpoint */
        const char *ca_file;    /* NULL: system CAs */
        const char *resource;   /* NULL: "imd-" + random */
        unsigned login_timeout_ms;
        /* Dead-link detection: after ping_interval_ms without anything from the
         * server, send an XEP-0199 ping; nothing back within ping_timeout_ms
         * ends the session with -ETIMEDOUT. A stalled server is noticed within
         * 2 * ping_interval_ms + ping_timeout_ms. 0: defaults (30 s, 10 s). */
        unsigned ping_interval_ms;
        unsigned ping_timeout_ms;
        /* XEP-0198 state of the previous connection (xmpp_stream_steal_sm());
         * the stream takes it and tries to resume that session. NULL: fresh. */
        XmppSm *sm;
} XmppStreamConfig;

/* A one-to-one chat message: received live, a carbon copy (XEP-0280) or from
 * our archive (XEP-0313). Carbons and archive results are only believed when
 * they come from our own account. */
typedef struct XmppChatMessage {
        const char *peer;         /* normalised bare JID of the other party: the sender, or the
                                   * recipient of an outgoing message */
        bool outgoing;            /* our account sent it, from another device (or an earlier session) */
        bool archived;            /* an XEP-0313 result of xmpp_stream_mam_query() */
        const char *id;           /* origin-id, else the stanza's id attribute; NULL if neither */
        const char *stanza_id;    /* stanza-id assigned by our own server (for an archive result:
                                   * its archive id), or NULL */
        const char *body;         /* UTF-8; NULL only for a custom message without a description */
        const char *json;         /* XEP-0335 payload (a custom message), unvalidated; else NULL */
        const char *extension;    /* imd's extension string of a custom message, or NULL */
        XmppMedia media;          /* a file (XEP-0066 URL, XEP-0446 metadata); media.url NULL if none */
        int64_t time_ms;          /* XEP-0203 delay stamp, else (archive) when it was archived, else 0 (= now) */
} XmppChatMessage;

typedef enum XmppActionKind {
        XMPP_ACTION_RETRACT,      /* XEP-0424 */
        XMPP_ACTION_CORRECT,      /* XEP-0308 */
        XMPP_ACTION_REACT,        /* XEP-0444 */
} XmppActionKind;

/* A message acting on an earlier one of the same conversation, live, a carbon
 * or from the archive (believed under the same rules as XmppChatMessage). */
typedef struct XmppMessageAction {
        XmppActionKind kind;
        const char *peer;         /* the conversation: normalised bare JID of the other party */
        bool outgoing;            /* our account acted (from another device); else the peer did */
        bool archived;            /* from an archive query (XEP-0313), not live */
        const char *target_id;    /* the id of the message acted on */
        const char *text;         /* XMPP_ACTION_CORRECT: the new text; else NULL */
        /* XMPP_ACTION_REACT: the sender's whole set of reactions now (none:
         * it took them back), each checked by xmpp_reaction_valid(). */
        const char *const *reactions;
        size_t n_reactions;
} XmppMessageAction;

/* What an outgoing chat message carries. */
typedef struct XmppChatContent {
        const char *body;         /* the text; for a custom message its description (NULL: none) */
        const char *json;         /* XEP-0335 payload of a custom message, or NULL */
        const char *extension;    /* imd's extension string of a custom message, or NULL */
        const XmppMedia *media;   /* an uploaded file (its url as the body, if body is NULL), or NULL */
} XmppChatContent;

typedef struct XmppRosterItem {
        const char *jid;          /* normalised bare JID */
        const char *name;         /* "" if none */
        const char *subscription;
} XmppRosterItem;

typedef struct XmppStreamCallbacks {
        /* Session established: bound, roster fetched, initial presence sent; or
         * resumed (XEP-0198): the old session goes on, and what it had not
         * delivered to the server has been sent again. */
        void (*ready)(bool resumed, void *userdata);
        /* The session ended. error: 0 after xmpp_stream_close(); -EACCES credentials
         * refused; -ENOTSUP no usable SASL mechanism; -ECONNREFUSED server not
         * reachable; -EPROTO TLS or protocol failure (also a bad SCRAM server
         * signature); -ETIMEDOUT login took too long or the server stopped
         * answering; -ECONNRESET connection lost or closed by the server;
         * -EADDRINUSE another login of the account took over our resource
         * (stream error <conflict/>); -ENETRESET the server could not check
         * the credentials for now (SASL temporary-auth-failure or aborted:
         * retry). text: human-readable detail. The stream must not
         * be used afterwards except for xmpp_stream_free(). */
        void (*closed)(int error, const char *text, void *userdata);
        void (*chat_message)(const XmppChatMessage *msg, void *userdata);
        /* Handled at once (not deferred like chat_message()): the layer above
         * applies it before returning. */
        void (*action)(const XmppMessageAction *action, void *userdata);
        /* full: the whole roster (initial fetch) rather than a push. */
        void (*roster)(const XmppRosterItem *items, size_t n_items, bool full, void *userdata);
        /* A peer reports on a message we sent: XEP-0184 receipt or XEP-0333
         * displayed marker. from: normalised bare JID; id: the message's id;
         * archived: found in a page of our archive (xmpp_stream_mam_query()
         * and _query_before()), so possibly long after the fact. Whether
         * from may speak for that message is the caller's to check. */
        void (*delivered)(const char *from, const char *id, bool archived, void *userdata);
        /* The server acknowledged our chat message (or action on one) id to
         * to: XEP-0198, or without it the answer to a ping sent after it. */
        void (*sent)(const char *to, const char *id, void *userdata);
        void (*displayed)(const char *from, const char *id, bool archived, void *userdata);
        /* XEP-0085 from a peer's live message: composing (typing true), or
         * active / paused / inactive / gone (false). from: normalised bare JID. */
        void (*typing)(const char *from, bool typing, void *userdata);
        /* A page of xmpp_stream_mam_query() ended. Its results were handed to
         * chat_message() before (for XMPP_MAM_AFTER and _BEFORE). error: 0;
         * -ENOENT the server does not know after_id / before_id
         * (item-not-found); -EOPNOTSUPP the server has no archive
         * (feature-not-implemented, service-unavailable); -EPROTO any other
         * refusal or a malformed answer.
         * complete: the archive holds nothing beyond this page in the query's
         * direction. first, last: archive ids of the page's first and last
         * (for XMPP_MAM_NEWEST: the newest) message; NULL if the page was empty. */
        void (*mam_finished)(int error, bool complete, const char *first, const char *last, void *userdata);
        /* A message over imd's size limit was dropped; the stream goes on.
         * from: as written (NULL if not known), bytes: its size as received.
         * (Those dropped for their shape, depth, attributes and the like, are
         * not reported: see drop_input().) */
        void (*message_dropped)(const char *from, size_t bytes, void *userdata);
} XmppStreamCallbacks;

int xmpp_stream_new(XmppTransportContext *ctx, const XmppStreamConfig *config, const XmppStreamCallbacks *cb,
                    void *userdata, XmppStream **ret);
/* The keys of this connection's SCRAM login, once the server proved itself
 * (for remembering the login); NULL after PLAIN, before authentication or
 * when taken already. The caller frees them (scram_keys_free()). */
ScramKeys *xmpp_stream_steal_scram_keys(XmppStream *s);
/* Close cleanly (<close/>); closed(0, ...) follows. */
void xmpp_stream_close(XmppStream *s);
/* Drop the connection without <close/>, so that the server keeps the session
 * for a resume (XEP-0198) and sends again what was not acknowledged;
 * closed(error, text) follows at once. */
void xmpp_stream_abort(XmppStream *s, int error, const char *text);
/* Drop at once, no callbacks. NULL is fine. */
void xmpp_stream_free(XmppStream *s);
/* Close cleanly in the background and free the stream when done (or after a
 * few seconds); no callbacks. For logout. NULL is fine. */
void xmpp_stream_close_and_free(XmppStream *s);

bool xmpp_stream_is_ready(const XmppStream *s);
const char *xmpp_stream_full_jid(const XmppStream *s);
/* The largest stanza a server takes when its stream features do not say
 * (XEP-0478): Prosody's default c2s_stanza_size_limit, and ejabberd's in its
 * example configuration. A server closes the connection on a larger one. */
#define XMPP_DEFAULT_MAX_STANZA_BYTES (256 * 1024)
/* RFC 6120 §13.12: every server takes stanzas this large. */
#define XMPP_ALWAYS_TAKEN_STANZA_BYTES 10000
/* The largest stanza the server takes from us: what its stream features said
 * after login (XEP-0478), else XMPP_DEFAULT_MAX_STANZA_BYTES. */
size_t xmpp_stream_max_stanza_bytes(const XmppStream *s);

/* The condition of the stream error the server ended the stream with
 * ("policy-violation", "system-shutdown", ...); NULL if it sent none. */
const char *xmpp_stream_error_condition(const XmppStream *s);

/* The size of the stanza xmpp_stream_send_chat() sends for this message at
 * most (sent late from the outbox by own_jid, with a delay stamp). */
size_t xmpp_chat_stanza_bytes(const char *own_jid, const char *to, const XmppChatContent *content,
                              const char *origin_id);
/* <message type='chat'> with the content (body, XEP-0335 <json/>, extension),
 * XEP-0359 origin-id (also the stanza id),
 * XEP-0333 markable, XEP-0085 <active/> and an XEP-0184 receipt request; delayed_ms non-zero adds
 * an XEP-0203 delay stamp (a message sent late from the outbox).
 * Returns the stanza's size in bytes; -ENOTCONN if not ready, -EMSGSIZE
 * (nothing sent) if it is larger than xmpp_stream_max_stanza_bytes(). */
int xmpp_stream_send_chat(XmppStream *s, const char *to, const XmppChatContent *content, const char *origin_id,
                          int64_t delayed_ms);
/* An action on a message, built by actions.h (XEP-0424 retraction, XEP-0308
 * correction, XEP-0444 reactions, XEP-0333 displayed marker) as stanza
 * stanza_id to to: sent (msg is taken) and kept for XEP-0198 like a chat
 * message, whose acknowledgement reports stanza_id (so the same id goes when it is sent again). Returns
 * the stanza's size in bytes; -ENOTCONN if not ready, -EMSGSIZE (nothing
 * sent) if larger than xmpp_stream_max_stanza_bytes(). */
int xmpp_stream_send_action(XmppStream *s, XmlNode *msg, const char *stanza_id, const char *to);

/* XEP-0085 chat state to a peer: <composing/> or <paused/>, with a
 * no-store hint (a passing state is not history). -ENOTCONN if not ready. */
int xmpp_stream_send_chat_state(XmppStream *s, const char *to, bool composing);

/* XEP-0313 query of our own archive (kinds in mam.h): XMPP_MAM_AFTER pages
 * through up to max messages after archive id after_id (NULL: from the start),
 * handing each to chat_message() with its archive id as stanza_id;
 * XMPP_MAM_NEWEST only learns the newest archive id (nothing is handed up).
 * mam_finished() follows. One query at a time: -EBUSY while one is out;
 * -ENOTCONN if not ready. A query does not survive the connection. */
int xmpp_stream_mam_query(XmppStream *s, XmppMamQueryKind kind, const char *after_id, unsigned max);

/* Paging back through the conversation with `with` (bare JID), XEP-0313 with
 * RSM <before/>: up to max messages before archive id before_id, or (NULL) the
 * last ones of the archive up to end_ms (0: no limit), each handed to
 * chat_message() (archived, oldest first), then mam_finished(). Same rules as
 * xmpp_stream_mam_query() (one query at a time). */
int xmpp_stream_mam_query_before(XmppStream *s, const char *with, const char *before_id, int64_t end_ms,
                                 unsigned max);

/* The layer above has durably stored every chat message handed to it so far:
 * they may now be acknowledged to the server (XEP-0198 h). */
void xmpp_stream_messages_committed(XmppStream *s);
/* The XEP-0198 state, if the session can be resumed; for the next stream. */
XmppSm *xmpp_stream_steal_sm(XmppStream *s);
/* Our message is on its way (sent, not yet acknowledged by the server). */
bool xmpp_stream_is_in_flight(const XmppStream *s, const char *message_id);

/* The answer to xmpp_stream_send_iq(): error 0 and the <iq type='result'/>;
 * -EREMOTEIO and the <iq type='error'/> (its <error/> says why); or, with
 * NULL, -ECONNRESET: the connection ended first, -ETIMEDOUT: no answer
 * within a minute. */
typedef void (*XmppIqCallback)(int error, const XmlNode *reply, void *userdata);
/* Sends iq (taking it): type get or set, its payload, `to` (NULL: our server);
 * its id is made here. callback runs once, with the answer of the entity
 * asked (answers from anyone else are ignored), unless the request is
 * cancelled or the stream freed first: then free_userdata (may be NULL) gets
 * userdata instead. ret_handle (may be NULL): for xmpp_stream_cancel_iq();
 * never 0. -ENOTCONN if not ready (iq is freed, userdata is not). */
int xmpp_stream_send_iq(XmppStream *s, XmlNode *iq, XmppIqCallback callback, void *userdata,
                        GDestroyNotify free_userdata, unsigned *ret_handle);
/* callback will not run. Unknown handles (answered already) and a NULL
 * stream are fine. */
void xmpp_stream_cancel_iq(XmppStream *s, unsigned handle);

/* A new unique id for an outgoing stanza (UUID v4). */
char *xmpp_new_id(void);
