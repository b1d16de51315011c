/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <libwebsockets.h>

#include "http.h"
#include "transport-private.h"

struct XmppHttpGet {
        TransportKind kind;     /* first: see transport-private.h */
        struct lws *wsi;
        int fd;
        uint64_t max_bytes, bytes;
        int status;
        XmppHttpDone done;
        void *userdata;
        bool reported;          /* done() ran, or was cancelled */
        bool in_connect;        /* inside xmpp_http_get(): failures go out by return value */
        int connect_error;
};

static void report(XmppHttpGet *g, int error, const char *detail) {
        if (g->reported)
                return;
        g->reported = true;
        if (g->in_connect) {
                g->connect_error = error;
                return;
        }
        g->done(error, detail, g->bytes, g->userdata);
}

static int write_all(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                buf += n;
                len -= (size_t) n;
        }
        return 0;
}

int xmpp_http_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
        XmppHttpGet *g = lws_get_opaque_user_data(wsi);
        int r;

        if (!g)
                return lws_callback_http_dummy(wsi, reason, user, in, len);

        switch ((int) reason) {
        case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
                /* also after we refused the response: lws then ends the wsi
                 * here, without CLOSED_CLIENT_HTTP */
                lws_set_opaque_user_data(wsi, NULL);
                report(g, in && strstr(in, "SSL") ? -EPROTO : -ECONNREFUSED, in ? in : "connection failed");
                if (!g->in_connect)
                        g_free(g);
                return 0;
        case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
                g->status = (int) lws_http_client_http_response(wsi);
                if (g->status == 404 || g->status == 410) {
                        report(g, -ENOENT, "the file is gone from the server");
                        return -1;
                }
                if (g->status != 200) {
                        report(g, -EIO, "the server refused the download");
                        return -1;
                }
                /* a length over the limit is refused before any byte is written */
                if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
                        char text[24];
                        guint64 v;
                        if (lws_hdr_copy(wsi, text, sizeof text, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
                            g_ascii_string_to_unsigned(text, 10, 0, G_MAXUINT64, &v, NULL) && v > g->max_bytes) {
                                report(g, -EMSGSIZE, "the file is larger than allowed");
                                return -1;
                        }
                }
                break;
        case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
                if (g->reported)
                        return -1;
                /* bounded while streaming: the header may lie or be absent */
                if (len > g->max_bytes - g->bytes) {
                        report(g, -EMSGSIZE, "the file is larger than allowed");
                        return -1;
                }
                r = write_all(g->fd, in, len);
                if (r < 0) {
                        report(g, r, "cannot write the file");
                        return -1;
                }
                g->bytes += len;
                return 0;
        case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
                char buffer[4096 + LWS_PRE];
                char *px = buffer + LWS_PRE;
                int lenx = (int) sizeof buffer - LWS_PRE;
                if (lws_http_client_read(wsi, &px, &lenx) < 0)
                        return -1;
                return 0;
        }
        case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
                report(g, 0, NULL);
                return -1;      /* one file per connection: close, and free g in CLOSED */
        case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
                lws_set_opaque_user_data(wsi, NULL);
                report(g, -ECONNRESET, "the connection broke during the download");
                if (!g->in_connect)
                        g_free(g);
                return 0;
        default:
                break;
        }
        return lws_callback_http_dummy(wsi, reason, user, in, len);
}

int xmpp_http_get(XmppTransportContext *ctx, const char *url, const char *ca_file, int fd, uint64_t max_bytes,
                  XmppHttpDone done, void *userdata, XmppHttpGet **ret) {
        struct lws_client_connect_info info = { 0 };
        g_auto(TransportTarget) target = { 0 };
        XmppHttpGet *g;
        int r;

        r = transport_target_for(ctx, url, "http", "https", ca_file, &target, &info);
        if (r < 0)
                return r;

        g = g_new0(XmppHttpGet, 1);
        g->kind = TRANSPORT_KIND_HTTP;
        g->fd = fd;
        g->max_bytes = max_bytes;
        g->done = done;
        g->userdata = userdata;

        info.method = "GET";
        info.alpn = "http/1.1";
        info.protocol = XMPP_HTTP_PROTOCOL;
        info.local_protocol_name = XMPP_HTTP_PROTOCOL;
        info.opaque_user_data = g;
        info.pwsi = &g->wsi;

        g->in_connect = true;
        if (!lws_client_connect_via_info(&info) || g->reported) {
                r = g->reported ? g->connect_error : -ECONNREFUSED;
                /* lws freed the wsi, or will call CLOSED without our pointer */
                if (g->wsi)
                        lws_set_opaque_user_data(g->wsi, NULL);
                g_free(g);
                return r ? r : -ECONNREFUSED;
        }
        g->in_connect = false;
        *ret = g;
        return 0;
}

void xmpp_http_get_cancel(XmppHttpGet *g) {
        if (!g || g->reported)
                return;
        g->reported = true;     /* no done() from now on */
        if (g->wsi)
                lws_set_timeout(g->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}
