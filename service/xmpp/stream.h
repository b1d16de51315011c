/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * One client XMPP session over an RFC 7395 transport: stream open/close
 * framing, SASL (SCRAM-SHA-256, SCRAM-SHA-1; PLAIN only over TLS), resource
 * binding, roster fetch, initial presence, then chat messages both ways.
 *
 * Every incoming stanza is untrusted: it is parsed with xml.h's limits and
 * validated here into plain structs before the layer above sees it. This layer
 * knows nothing of D-Bus or storage.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport.h"

typedef struct XmppStream XmppStream;

typedef struct XmppStreamConfig {
        const char *jid;        /* normalised bare JID of the account */
        const char *password;
        const char *url;        /* ws:// or wss:// endpoint */
        const char *ca_file;    /* NULL: system CAs */
        const char *resource;   /* NULL: "imd-" + random */
        unsigned login_timeout_ms;
} XmppStreamConfig;

typedef struct XmppChatMessage {
        const char *from;         /* normalised bare JID of the sender */
        const char *id;           /* origin-id, else the stanza's id attribute; NULL if neither */
        const char *stanza_id;    /* stanza-id assigned by our own server, or NULL */
        const char *body;         /* UTF-8 */
        int64_t time_ms;          /* XEP-0203 delay stamp, else 0 (= now) */
} XmppChatMessage;

typedef struct XmppRosterItem {
        const char *jid;          /* normalised bare JID */
        const char *name;         /* "" if none */
        const char *subscription;
} XmppRosterItem;

typedef struct XmppStreamCallbacks {
        /* Session established: bound, roster fetched, initial presence sent. */
        void (*ready)(void *userdata);
        /* The session ended. error: 0 after xmpp_stream_close(); -EACCES credentials
         * refused; -ENOTSUP no usable SASL mechanism; -ECONNREFUSED server not
         * reachable; -EPROTO TLS or protocol failure (also a bad SCRAM server
         * signature); -ETIMEDOUT login took too long; -ECONNRESET connection lost or
         * closed by the server. text: human-readable detail. The stream must not
         * be used afterwards except for xmpp_stream_free(). */
        void (*closed)(int error, const char *text, void *userdata);
        void (*chat_message)(const XmppChatMessage *msg, void *userdata);
        /* full: the whole roster (initial fetch) rather than a push. */
        void (*roster)(const XmppRosterItem *items, size_t n_items, bool full, void *userdata);
} XmppStreamCallbacks;

int xmpp_stream_new(XmppTransportContext *ctx, const XmppStreamConfig *config, const XmppStreamCallbacks *cb,
                    void *userdata, XmppStream **ret);
/* Close cleanly (<close/>); closed(0, ...) follows. */
void xmpp_stream_close(XmppStream *s);
/* Drop at once, no callbacks. NULL is fine. */
void xmpp_stream_free(XmppStream *s);
/* Close cleanly in the background and free the stream when done (or after a
 * few seconds); no callbacks. For logout. NULL is fine. */
void xmpp_stream_close_and_free(XmppStream *s);

bool xmpp_stream_is_ready(const XmppStream *s);
const char *xmpp_stream_full_jid(const XmppStream *s);

/* <message type='chat'> with body, XEP-0359 origin-id (also the stanza id),
 * XEP-0333 markable and an XEP-0184 receipt request. -ENOTCONN if not ready. */
int xmpp_stream_send_chat(XmppStream *s, const char *to, const char *body, const char *origin_id);
/* XEP-0333 <displayed/> for message id of peer to. */
int xmpp_stream_send_displayed(XmppStream *s, const char *to, const char *id);

/* A new unique id for an outgoing stanza (UUID v4). */
char *xmpp_new_id(void);
