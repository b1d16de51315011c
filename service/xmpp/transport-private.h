/* SPDX-License-Identifier: MIT */
#pragma once

/* What http.c shares with transport.c: one lws context, its vhosts (TLS
 * settings) and their protocol list. */

#include <stdbool.h>
#include <libwebsockets.h>

#include "transport.h"

#define XMPP_HTTP_PROTOCOL "imd-http"

/* A wsi's opaque user data is an XmppTransport or an XmppHttpGet; lws gives
 * a connection's early callbacks (connection errors, certificate checks) to
 * the vhost's first protocol, xmpp, whatever the connection is. So both
 * start with this tag. */
typedef enum TransportKind {
        TRANSPORT_KIND_XMPP = 0x786d7070,       /* "xmpp" */
        TRANSPORT_KIND_HTTP = 0x68747470,       /* "http" */
} TransportKind;

struct lws_context *xmpp_transport_context_lws(XmppTransportContext *ctx);
/* The vhost for plain or TLS connections trusting ca_file (NULL: the system
 * store); NULL if ca_file is unusable or too many vhosts exist. */
struct lws_vhost *xmpp_transport_context_vhost(XmppTransportContext *ctx, bool tls, const char *ca_file);
int xmpp_http_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
