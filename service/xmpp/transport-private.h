/* SPDX-License-Identifier: MIT */
#pragma once

/* What http.c shares with transport.c: one lws context, its vhosts (TLS
 * settings) and their protocol list. */

#include <stdbool.h>
#include <glib.h>
#include <libwebsockets.h>

#include "resolve.h"
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

/* lws's reason for a failed connection, as an errno: -EPROTO when it is
 * about TLS (a certificate, the handshake), else -ECONNREFUSED. */
int transport_classify_connect_error(const char *reason);
/* At LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION with a refused
 * certificate (its user: an X509_STORE_CTX): why, for people (g_free()). */
char *transport_certificate_refusal(void *x509_store_ctx);

/* A client connection being dialled: its host's addresses, found off the main
 * loop (resolve.h), tried in turn until one takes the connection. Both kinds
 * of connection embed one and set info's protocol, opaque_user_data and pwsi
 * (the owner's wsi pointer) after transport_dial_init(). */
typedef struct TransportDial TransportDial;

/* From the main loop, when no address is left: why (-ECONNREFUSED, -EPROTO
 * a TLS failure, ...; a reason for people). The owner may free itself, and
 * the dial with it. */
typedef void (*TransportDialFailed)(void *owner, int error, const char *reason);

struct TransportDial {
        TransportTarget target;                 /* the strings info points into */
        struct lws_client_connect_info info;    /* address: the one being tried */
        XmppResolve *lookup;                    /* while the name is resolved */
        char **addresses;                       /* its addresses, NULL-terminated */
        size_t next;                            /* index of the next one to try */
        guint step_source;                      /* the next attempt, from the main loop */
        guint attempt_timer;                    /* gives up on this address for the next */
        bool in_connect;                        /* inside lws_client_connect_via_info() */
        int connect_error;                      /* how lws ended the attempt inside it */
        char *connect_reason;
        TransportDialFailed failed;
        void *owner;
};

/* Parses url as transport_target_for() does, into d->info. */
int transport_dial_init(TransportDial *d, XmppTransportContext *ctx, const char *url, const char *plain_scheme,
                        const char *tls_scheme, const char *ca_file, TransportDialFailed failed, void *owner);
/* Starts: 0 when the attempt is under way (or the name is being resolved,
 * and failed() will say if it comes to nothing); else, for an address that
 * failed at once, or no thread for the lookup (-EAGAIN), the error, with a
 * reason in *ret_reason (owned by d). */
int transport_dial_start(TransportDial *d, const char **ret_reason);
/* The owner's report of a failure, from an lws callback: true when it is
 * the attempt's being made inside lws_client_connect_via_info(), which the
 * dial takes over (the owner reports nothing). */
bool transport_dial_keep_failure(TransportDial *d, int error, const char *reason);
/* After an attempt failed (CLIENT_CONNECTION_ERROR): true if another address
 * is left, and the dial tries it from the main loop (not from inside lws). */
bool transport_dial_next(TransportDial *d);
/* The owner's connection is established (LWS_CALLBACK_CLIENT_ESTABLISHED,
 * ESTABLISHED_CLIENT_HTTP): no more giving up on its address. */
void transport_dial_established(TransportDial *d);
/* A lookup or an attempt is on its way. */
bool transport_dial_pending(const TransportDial *d);
/* Cancels what is on its way; no failed() any more. */
void transport_dial_clear(TransportDial *d);

int xmpp_http_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
