/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <libwebsockets.h>
#include <openssl/x509.h>

#include "transport-private.h"

#define RX_CHUNK 16384
/* One TLS client context per distinct CA file; they live as long as the
 * process, so callers cannot make them pile up. */
#define MAX_VHOSTS 8

struct XmppTransportContext {
        struct lws_context *lws;
        GHashTable *vhosts;         /* ca_file ("" = system store) -> struct lws_vhost* */
        unsigned n_vhosts;
};

typedef struct OutMessage {
        size_t len;
        unsigned char buf[];        /* LWS_PRE bytes of headroom, then the payload */
} OutMessage;

struct XmppTransport {
        TransportKind kind;         /* first: see transport-private.h */
        XmppTransportContext *ctx;
        struct lws *wsi;
        XmppTransportCallbacks cb;
        void *userdata;
        GString *rx;
        size_t max_message_bytes;
        bool rx_oversized;          /* the message being read is over max_message_bytes */
        size_t rx_oversized_len;    /* ... and this long so far; rx keeps its head */
        GQueue out;                 /* of OutMessage* */
        bool tls;
        bool established;
        bool closing;               /* close requested: close once the queue is written */
        bool dispatching;           /* inside a callback to the layer above */
        bool freed;                 /* xmpp_transport_free() ran during a callback */
        bool reported;              /* closed() already delivered */
        bool orphan;                /* xmpp_transport_close_and_free(): no more callbacks */
        char *tls_error;            /* why the server certificate was refused, if it was */
        TransportDial dial;
        guint close_source;         /* closed(0) after a close while dialling */
};

/* See xmpp_transport_context_new(). */
#define NETWORK_ROUNDTRIP_TIMEOUT_S 60

static int protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

static const struct lws_protocols protocols[] = {
        { .name = "xmpp", .callback = protocol_callback, .rx_buffer_size = RX_CHUNK },
        { .name = XMPP_HTTP_PROTOCOL, .callback = xmpp_http_protocol_callback },
        { 0 }
};

static void lws_log_to_glib(int level, const char *line) {
        /* lws logs connection failures loudly; they are reported to the user through
         * the layer above, so keep lws's own words at debug level. */
        g_debug("lws: %.*s", (int) strcspn(line, "\n"), line);
}

/* Sockets lws may have open at once (see xmpp_transport_context_new()). */
#define TRANSPORT_MAX_FDS 64

int xmpp_transport_context_new(GMainLoop *loop, XmppTransportContext **ret) {
        struct lws_context_creation_info info = { 0 };
        void *foreign_loops[1] = { loop };
        XmppTransportContext *ctx;

        lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_glib);

        info.port = CONTEXT_PORT_NO_LISTEN;
        info.protocols = protocols;
        /* No TLS set-up here: OpenSSL initialises itself on first use, which is
         * the first wss:// vhost (see vhost_for()). */
        info.options = LWS_SERVER_OPTION_GLIB | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
        info.foreign_loops = foreign_loops;
        info.gid = -1;
        info.uid = -1;
        /* lws sizes (and zeroes) its fd tables by the process' fd limit unless
         * told otherwise: 320 KiB of RSS at ulimit -n 20000, 16 MiB at the
         * 1048576 some systems set. imd has one XMPP connection and a few
         * transfers at a time. */
        info.fd_limit_per_thread = TRANSPORT_MAX_FDS;
        /* lws gives a server 5 s for each round trip of its own (the answer
         * to an upload, say): a busy file server or a slow link takes longer.
         * The XMPP session has its own, longer timers. */
        info.timeout_secs = NETWORK_ROUNDTRIP_TIMEOUT_S;

        ctx = g_new0(XmppTransportContext, 1);
        ctx->lws = lws_create_context(&info);
        if (!ctx->lws) {
                g_free(ctx);
                return -ENOMEM;
        }
        ctx->vhosts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        *ret = ctx;
        return 0;
}

void xmpp_transport_context_free(XmppTransportContext *ctx) {
        if (!ctx)
                return;
        lws_context_destroy(ctx->lws);
        g_hash_table_destroy(ctx->vhosts);
        g_free(ctx);
}

/* lws only warns about a CA file it cannot use and then trusts nothing extra;
 * refuse it up front so the caller hears about the file, not a TLS failure. */
static bool ca_file_loadable(const char *path) {
        X509_STORE *store = X509_STORE_new();
        bool ok = store && X509_STORE_load_file(store, path) == 1;
        X509_STORE_free(store);
        return ok;
}

/* Client TLS settings live on a vhost; one per distinct CA file, made on first
 * use, and one without TLS for ws:// — loading the system's trust store costs
 * tens of milliseconds and megabytes that a plain connection does not need. */
static struct lws_vhost *vhost_for(XmppTransportContext *ctx, bool tls, const char *ca_file) {
        const char *key = !tls ? "\x01plain" : ca_file ? ca_file : "";
        struct lws_context_creation_info info = { 0 };
        struct lws_vhost *vh;
        g_autofree char *name = NULL;

        vh = g_hash_table_lookup(ctx->vhosts, key);
        if (vh || ctx->n_vhosts >= MAX_VHOSTS)
                return vh;
        if (tls && ca_file && !ca_file_loadable(ca_file))
                return NULL;

        name = g_strdup_printf("imd-%u", ctx->n_vhosts++);
        info.port = CONTEXT_PORT_NO_LISTEN;
        info.protocols = protocols;
        info.vhost_name = name;
        info.options = tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0;
        info.client_ssl_ca_filepath = tls ? ca_file : NULL;
        info.timeout_secs = NETWORK_ROUNDTRIP_TIMEOUT_S;     /* as for the context */
        vh = lws_create_vhost(ctx->lws, &info);
        if (vh)
                g_hash_table_insert(ctx->vhosts, g_strdup(key), vh);
        return vh;
}

bool xmpp_websocket_url_valid(const char *url) {
        g_autoptr(GUri) uri = NULL;
        const char *scheme;

        if (!url || strlen(url) > XMPP_WEBSOCKET_URL_MAX_BYTES)
                return false;
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p <= 0x20 || *p == 0x7f)
                        return false;
        uri = g_uri_parse(url, G_URI_FLAGS_NONE, NULL);
        if (!uri)
                return false;
        scheme = g_uri_get_scheme(uri);
        return (strcmp(scheme, "ws") == 0 || strcmp(scheme, "wss") == 0) &&
               g_uri_get_host(uri) && *g_uri_get_host(uri);
}

int xmpp_transport_check_ca_file(XmppTransportContext *ctx, const char *ca_file) {
        if (vhost_for(ctx, true, ca_file))
                return 0;
        return ctx->n_vhosts >= MAX_VHOSTS ? -ENOSPC : -EIO;
}

void transport_target_clear(TransportTarget *t) {
        g_clear_pointer(&t->copy, g_free);
        g_clear_pointer(&t->path, g_free);
}

int transport_target_for(XmppTransportContext *ctx, const char *url, const char *plain_scheme,
                         const char *tls_scheme, const char *ca_file, TransportTarget *target,
                         struct lws_client_connect_info *info) {
        const char *scheme, *address, *p;
        int port;

        target->copy = g_strdup(url);
        if (lws_parse_uri(target->copy, &scheme, &address, &port, &p) != 0 || !*address)
                return -EINVAL;
        if (strcmp(scheme, plain_scheme) != 0 && strcmp(scheme, tls_scheme) != 0)
                return -EINVAL;
        target->tls = strcmp(scheme, tls_scheme) == 0;
        target->path = g_strconcat("/", p, NULL);   /* lws_parse_uri strips the leading '/' */
        info->context = ctx->lws;
        info->vhost = vhost_for(ctx, target->tls, ca_file);
        if (!info->vhost)
                return ctx->n_vhosts >= MAX_VHOSTS ? -ENOSPC : -EIO;
        info->address = address;
        info->port = port;
        info->path = target->path;
        info->host = address;
        info->origin = address;
        /* lws 4.1 follows a redirect by resetting the connection, which
         * trips an assertion in its GLib event library (imd aborted on any
         * 3xx): a redirect is an answer like any other refusal */
        info->ssl_connection = (target->tls ? LCCSCF_USE_SSL : 0) | LCCSCF_HTTP_NO_FOLLOW_REDIRECT;
        return 0;
}

static void out_queue_clear(XmppTransport *t) {
        OutMessage *m;
        while ((m = g_queue_pop_head(&t->out)))
                g_free(m);
}

static void transport_destroy(XmppTransport *t) {
        out_queue_clear(t);
        transport_dial_clear(&t->dial);
        g_clear_handle_id(&t->close_source, g_source_remove);
        g_free(t->tls_error);
        g_string_free(t->rx, TRUE);
        g_free(t);
}

/* Deliver closed() once, then forget the wsi (lws frees it after this
 * callback), and make lws forget us: the layer above may free us in closed(). */
static void report_closed(XmppTransport *t, int error, const char *reason) {
        if (t->wsi)
                lws_set_opaque_user_data(t->wsi, NULL);
        t->wsi = NULL;
        if (t->reported || transport_dial_keep_failure(&t->dial, error, reason))
                return;
        t->reported = true;
        if (t->orphan)
                return;
        t->dispatching = true;
        t->cb.closed(error, reason, t->userdata);
        t->dispatching = false;
}

int transport_classify_connect_error(const char *reason) {
        if (reason && (strstr(reason, "cert") || strstr(reason, "tls") || strstr(reason, "TLS") ||
                       strstr(reason, "ssl") || strstr(reason, "SSL") || strstr(reason, "X509")))
                return -EPROTO;
        return -ECONNREFUSED;
}

/* Receive buffers up to this size are kept from one message to the next. */
#define RX_KEEP_BYTES (64 * 1024)
#define RX_INITIAL_BYTES 4096

/* The head of a dropped message is cut at a byte count: not inside a
 * character, which would make it invalid UTF-8, and unreadable. */
static void trim_partial_utf8(GString *s) {
        const char *last = g_utf8_find_prev_char(s->str, s->str + s->len);

        if (last && last + g_utf8_skip[*(const guchar *) last] > s->str + s->len)
                g_string_truncate(s, (gsize) (last - s->str));
}

static int handle_receive(XmppTransport *t, struct lws *wsi, const char *in, size_t len) {
        if (lws_frame_is_binary(wsi)) {
                /* RFC 7395 §3.2: XMPP frames are text frames. */
                report_closed(t, -EPROTO, "binary WebSocket frame");
                return -1;
        }
        /* The frame's announced length counts at once: a message that cannot
         * fit is not kept from its first byte on. Nor is it a reason to hang
         * up: the server would send it again after every reconnect. Unless
         * no server relays anything that large: then it is only a way to
         * keep us reading. */
        size_t so_far = t->rx_oversized ? t->rx_oversized_len : t->rx->len;
        if (so_far + len + lws_remaining_packet_payload(wsi) > TRANSPORT_MAX_DROPPED_BYTES) {
                report_closed(t, -EMSGSIZE, "the server sent a WebSocket message over imd's limit");
                return -1;
        }
        if (!t->rx_oversized &&
            (t->rx->len + len > t->max_message_bytes ||
             lws_remaining_packet_payload(wsi) > t->max_message_bytes - t->rx->len - len)) {
                t->rx_oversized = true;
                t->rx_oversized_len = t->rx->len;
                if (t->rx->len > TRANSPORT_DROPPED_HEAD_BYTES)
                        g_string_truncate(t->rx, TRANSPORT_DROPPED_HEAD_BYTES);
        }
        if (t->rx_oversized) {
                t->rx_oversized_len += len;
                if (t->rx->len < TRANSPORT_DROPPED_HEAD_BYTES)
                        g_string_append_len(t->rx, in, (gssize) MIN(len, TRANSPORT_DROPPED_HEAD_BYTES - t->rx->len));
        } else {
                g_string_append_len(t->rx, in, (gssize) len);
        }
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0) {
                t->dispatching = true;
                t->cb.receiving(t->userdata);
                t->dispatching = false;
                return 0;
        }

        t->dispatching = true;
        if (t->rx_oversized) {
                trim_partial_utf8(t->rx);
                t->cb.message_dropped(t->rx->str, t->rx->len, t->rx_oversized_len, t->userdata);
        } else {
                t->cb.message(t->rx->str, t->rx->len, t->userdata);
        }
        t->dispatching = false;
        t->rx_oversized = false;
        if (t->rx->allocated_len > RX_KEEP_BYTES) {
                /* a large message is rare: its buffer is not kept for the next */
                g_string_free(t->rx, TRUE);
                t->rx = g_string_sized_new(RX_INITIAL_BYTES);
        } else {
                g_string_truncate(t->rx, 0);
        }
        return 0;
}

static int handle_writeable(XmppTransport *t, struct lws *wsi) {
        OutMessage *m;

        /* Write as much as the socket takes now; lws buffers a partial write itself. */
        while ((m = g_queue_peek_head(&t->out)) && !lws_send_pipe_choked(wsi)) {
                int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
                g_queue_pop_head(&t->out);
                g_free(m);
                if (n < 0) {
                        report_closed(t, -ECONNRESET, "write failed");
                        return -1;
                }
        }
        if (!g_queue_is_empty(&t->out)) {
                lws_callback_on_writable(wsi);
                return 0;
        }
        if (t->closing) {
                lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
                return -1;
        }
        return 0;
}

/* OpenSSL decides; we only keep its reason, because lws reports a refused
 * certificate as an opaque "SSL err 1". */
char *transport_certificate_refusal(void *x509_store_ctx) {
        int err = X509_STORE_CTX_get_error(x509_store_ctx);

        return g_strdup_printf("the server's TLS certificate was refused: %s", X509_verify_cert_error_string(err));
}

static int protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
        XmppTransport *t = lws_get_opaque_user_data(wsi);
        int r = 0;

        if (!t)
                /* Our side was freed while lws still held the connection: drop it. */
                return reason == LWS_CALLBACK_CLIENT_WRITEABLE || reason == LWS_CALLBACK_CLIENT_RECEIVE ? -1 : 0;
        if (t->kind != TRANSPORT_KIND_XMPP)
                return xmpp_http_protocol_callback(wsi, reason, user, in, len);

        switch ((int) reason) {
        case LWS_CALLBACK_CLIENT_ESTABLISHED:
                transport_dial_established(&t->dial);
                t->established = true;
                t->dispatching = true;
                t->cb.connected(t->userdata);
                t->dispatching = false;
                if (!g_queue_is_empty(&t->out) || t->closing)
                        lws_callback_on_writable(wsi);
                break;
        case LWS_CALLBACK_CLIENT_RECEIVE:
                if (!t->orphan)
                        r = handle_receive(t, wsi, in, len);
                break;
        case LWS_CALLBACK_CLIENT_WRITEABLE:
                r = handle_writeable(t, wsi);
                break;
        case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
                if (!len && !t->tls_error)
                        t->tls_error = transport_certificate_refusal(user);
                break;
        case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
                lws_set_opaque_user_data(wsi, NULL);
                /* this address refused us: the host may have another (localhost
                 * is ::1 and 127.0.0.1), but a certificate it showed is final */
                if (!t->dial.in_connect && !t->tls_error && !t->closing && !t->orphan &&
                    transport_dial_next(&t->dial)) {
                        g_debug("cannot connect to %s: %s; trying the next address", t->dial.info.host,
                                in ? (const char *) in : "connection failed");
                        t->wsi = NULL;
                        break;
                }
                if (t->tls_error)
                        report_closed(t, -EPROTO, t->tls_error);
                else
                        report_closed(t, transport_classify_connect_error(in), in ? in : "connection failed");
                break;
        case LWS_CALLBACK_CLIENT_CLOSED:
                lws_set_opaque_user_data(wsi, NULL);
                report_closed(t, t->closing ? 0 : -ECONNRESET, t->closing ? NULL : "connection closed by the server");
                break;
        default:
                break;
        }

        if ((t->freed || (t->orphan && t->reported)) && !t->dispatching) {
                lws_set_opaque_user_data(wsi, NULL);
                transport_destroy(t);
                return -1;
        }
        return r;
}

/* No address of the host took the connection. */
static void on_dial_failed(void *owner, int error, const char *reason) {
        XmppTransport *t = owner;

        report_closed(t, error, reason);
        if (t->freed)
                transport_destroy(t);
}

int xmpp_transport_connect(XmppTransportContext *ctx, const char *url, const char *ca_file,
                           size_t max_message_bytes, const XmppTransportCallbacks *cb, void *userdata,
                           XmppTransport **ret) {
        const char *reason = NULL;
        XmppTransport *t;
        int r;

        t = g_new0(XmppTransport, 1);
        t->kind = TRANSPORT_KIND_XMPP;
        t->ctx = ctx;
        t->cb = *cb;
        t->userdata = userdata;
        t->rx = g_string_sized_new(RX_INITIAL_BYTES);
        t->max_message_bytes = max_message_bytes;
        g_queue_init(&t->out);

        r = transport_dial_init(&t->dial, ctx, url, "ws", "wss", ca_file, on_dial_failed, t);
        if (r < 0) {
                transport_destroy(t);
                return r;
        }
        t->tls = t->dial.target.tls;
        t->dial.info.protocol = "xmpp";
        t->dial.info.opaque_user_data = t;
        t->dial.info.pwsi = &t->wsi;

        /* An address: connect now, and say at once if that failed. A name is
         * resolved first, and then all goes through closed(). */
        r = transport_dial_start(&t->dial, &reason);
        if (r < 0) {
                g_debug("cannot connect to %s: %s", url, reason ? reason : g_strerror(-r));
                transport_destroy(t);
                return r;
        }
        *ret = t;
        return 0;
}

int xmpp_transport_send(XmppTransport *t, const char *data, size_t len) {
        OutMessage *m;

        if ((!t->wsi && !transport_dial_pending(&t->dial)) || t->closing || t->reported)
                return -ENOTCONN;
        m = g_malloc(sizeof(OutMessage) + LWS_PRE + len);
        m->len = len;
        memcpy(m->buf + LWS_PRE, data, len);
        g_queue_push_tail(&t->out, m);
        if (t->established)
                lws_callback_on_writable(t->wsi);
        return 0;
}

static gboolean on_closed_while_dialling(gpointer data) {
        XmppTransport *t = data;

        t->close_source = 0;
        report_closed(t, 0, NULL);
        if (t->freed)
                transport_destroy(t);
        return G_SOURCE_REMOVE;
}

void xmpp_transport_close(XmppTransport *t) {
        if (t->closing)
                return;
        if (!t->wsi && transport_dial_pending(&t->dial)) {
                /* no connection yet: nothing to say goodbye on */
                transport_dial_clear(&t->dial);
                t->closing = true;
                t->close_source = g_idle_add(on_closed_while_dialling, t);
                return;
        }
        if (!t->wsi)
                return;
        t->closing = true;
        if (t->established)
                lws_callback_on_writable(t->wsi);
        else
                lws_set_timeout(t->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

void xmpp_transport_close_and_free(XmppTransport *t) {
        if (!t)
                return;
        if (!t->wsi || t->reported || !t->established) {
                xmpp_transport_free(t);
                return;
        }
        t->orphan = true;
        xmpp_transport_close(t);
}

void xmpp_transport_free(XmppTransport *t) {
        if (!t)
                return;
        if (t->dispatching) {
                /* Called from our own callback: finish it first. */
                t->freed = true;
                return;
        }
        if (t->wsi) {
                lws_set_opaque_user_data(t->wsi, NULL);
                lws_set_timeout(t->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        }
        transport_destroy(t);
}

bool xmpp_transport_is_tls(const XmppTransport *t) {
        return t->tls;
}
