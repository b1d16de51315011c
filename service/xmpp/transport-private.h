/* SPDX-License-Identifier: MIT */
#pragma once

/* What http.c shares with transport.c: one lws context, its vhosts (TLS
 * settings) and their protocol list. */

#include <stdbool.h>
#include <glib.h>
#include <libwebsockets.h>

#include "transport.h"

#define XMPP_HTTP_PROTOCOL "imd-http"

/* A wsi's opaque user data is an XmppTransport or an XmppHttp; lws gives
 * a connection's early callbacks (connection errors, certificate checks) to
 * the vhost's first protocol, xmpp, whatever the connection is. So both
 * start with this tag. */
typedef enum TransportKind {
        TRANSPORT_KIND_XMPP = 0x786d7070,       /* "xmpp" */
        TRANSPORT_KIND_HTTP = 0x68747470,       /* "http" */
} TransportKind;

/* Where a client connection to url goes: the strings info points into. */
typedef struct TransportTarget {
        char *copy;             /* url, cut up by lws_parse_uri() */
        char *path;             /* "/" + its path */
        bool tls;
} TransportTarget;
void transport_target_clear(TransportTarget *t);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(TransportTarget, transport_target_clear)

/* Fills info's context, vhost, address, port, path, host, origin and
 * ssl_connection for url, whose scheme must be plain_scheme or tls_scheme.
 * -EINVAL bad URL; -EIO unusable ca_file; -ENOSPC too many CA files. */
int transport_target_for(XmppTransportContext *ctx, const char *url, const char *plain_scheme,
                         const char *tls_scheme, const char *ca_file, TransportTarget *target,
                         struct lws_client_connect_info *info);

int xmpp_http_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
