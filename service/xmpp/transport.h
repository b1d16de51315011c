/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * RFC 7395 transport: one WebSocket connection (subprotocol "xmpp") over
 * libwebsockets, driven by the GLib main loop through lws's GLib event library.
 *
 * It moves whole WebSocket text messages: each one is exactly one XML element
 * under RFC 7395, so the layer above parses each message on its own. Fragments
 * are reassembled here, bounded by max_message_bytes; a larger message is
 * read past and reported, not kept.
 */

#include <stdbool.h>
#include <stddef.h>
#include <glib.h>

/* What is kept of a message too big to keep: enough for its start tag. */
#define TRANSPORT_DROPPED_HEAD_BYTES 4096
/* A message larger still ends the connection (-EMSGSIZE): read past, it
 * would only keep us busy. */
#define TRANSPORT_MAX_DROPPED_BYTES (64 * 1024 * 1024)

typedef struct XmppTransportContext XmppTransportContext;
typedef struct XmppTransport XmppTransport;

typedef struct XmppTransportCallbacks {
        void (*connected)(void *userdata);
        /* One complete message. data is valid only during the call. */
        void (*message)(const char *data, size_t len, void *userdata);
        /* A message over max_message_bytes, dropped: only its first bytes
         * (head, up to TRANSPORT_DROPPED_HEAD_BYTES) were kept, len is its
         * whole length. The connection goes on. */
        void (*message_dropped)(const char *head, size_t head_len, size_t len, void *userdata);
        /* Part of a message that is not complete yet arrived: the link is
         * alive, however long a large message takes. */
        void (*receiving)(void *userdata);
        /* The connection is gone: error 0 after a close we asked for, else
         * -ECONNREFUSED (could not connect: DNS, TCP, HTTP upgrade refused),
         * -EPROTO (TLS verification or handshake failure),
         * -ECONNRESET (the connection broke), -EMSGSIZE (a message over
         * TRANSPORT_MAX_DROPPED_BYTES).
         * reason is a human-readable text (may be NULL). The transport must not
         * be used afterwards except for xmpp_transport_free(). */
        void (*closed)(int error, const char *reason, void *userdata);
} XmppTransportCallbacks;

/* One libwebsockets context for the process, on the given GLib main loop. */
int xmpp_transport_context_new(GMainLoop *loop, XmppTransportContext **ret);
void xmpp_transport_context_free(XmppTransportContext *ctx);

/* The longest websocket_url taken. */
#define XMPP_WEBSOCKET_URL_MAX_BYTES 2048

/* A ws:// or wss:// URL with a host, at most XMPP_WEBSOCKET_URL_MAX_BYTES,
 * without whitespace or control characters (they would end up in the HTTP
 * upgrade request). */
bool xmpp_websocket_url_valid(const char *url);

/* url: ws://host[:port]/path or wss://... ca_file: PEM CAs to trust for wss
 * (NULL: the system store). Certificates and host names are always verified.
 * -EINVAL for a bad URL, -EIO if ca_file cannot be loaded, -ENOSPC after too
 * many distinct CA files. The connection attempt continues asynchronously. */
int xmpp_transport_connect(XmppTransportContext *ctx, const char *url, const char *ca_file,
                           size_t max_message_bytes, const XmppTransportCallbacks *cb, void *userdata,
                           XmppTransport **ret);
/* Makes the TLS settings for ca_file (NULL: the system store) ready now, as
 * a wss:// connection would: 0, -EIO if the file cannot be used, -ENOSPC
 * after too many distinct CA files. For a caller that learns the URL later. */
int xmpp_transport_check_ca_file(XmppTransportContext *ctx, const char *ca_file);
/* Queue one message; written when the socket is writable. -ENOTCONN when closed. */
int xmpp_transport_send(XmppTransport *t, const char *data, size_t len);
/* Close after the queued messages are written; closed(0) follows. */
void xmpp_transport_close(XmppTransport *t);
/* Drops the connection at once without callbacks. NULL is fine. */
void xmpp_transport_free(XmppTransport *t);
/* Writes what is queued, closes, and frees itself; no more callbacks. Safe
 * inside a callback. NULL is fine. */
void xmpp_transport_close_and_free(XmppTransport *t);

bool xmpp_transport_is_tls(const XmppTransport *t);
