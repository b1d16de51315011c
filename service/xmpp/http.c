/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <libwebsockets.h>

#include "http.h"
#include "transport-private.h"

/* Bytes of an upload read and handed to lws per writable callback. */
#define PUT_CHUNK (64 * 1024)

struct XmppHttp {
        TransportKind kind;     /* first: see transport-private.h */
        struct lws *wsi;
        bool put;
        int fd;
        uint64_t max_bytes, bytes;      /* GET: the bound, and bytes written */
        uint64_t size;                  /* PUT: bytes to send; bytes: sent so far */
        bool chunked;                   /* GET: the body comes in chunks */
        bool reading;                   /* GET: inside lws_http_client_read() */
        bool body_ended;                /* GET: lws said the body ended (COMPLETED) */
        unsigned stall_ms;              /* GET: the longest silence of the body */
        gint64 last_read_us;            /* GET: when its last bytes came */
        guint stall_timer;
        char *mime;
        char **header_names, **header_values;
        unsigned char *chunk;           /* PUT: LWS_PRE + PUT_CHUNK */
        XmppHttpProgress progress;
        int status;
        XmppHttpDone done;
        void *userdata;
        bool reported;          /* done() ran, or was cancelled */
        char *tls_error;        /* why the server's certificate was refused */
        TransportDial dial;
};

static void http_free(XmppHttp *h) {
        g_clear_handle_id(&h->stall_timer, g_source_remove);
        transport_dial_clear(&h->dial);
        g_free(h->mime);
        g_strfreev(h->header_names);
        g_strfreev(h->header_values);
        g_free(h->chunk);
        g_free(h->tls_error);
        g_free(h);
}

static void report(XmppHttp *h, int error, const char *detail) {
        if (h->reported || transport_dial_keep_failure(&h->dial, error, detail))
                return;
        h->reported = true;
        h->done(error, detail, h->bytes, h->userdata);
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

/* lws takes a body apart only in chunked coding, and only so named: with
 * another coding ("gzip, chunked") what it hands on is not the file. */
static bool check_transfer_coding(XmppHttp *h, struct lws *wsi) {
        char coding[32];

        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) <= 0)
                return true;
        if (lws_hdr_copy(wsi, coding, sizeof coding, WSI_TOKEN_HTTP_TRANSFER_ENCODING) <= 0 ||
            strcmp(coding, "chunked") != 0) {
                report(h, -EIO, "the server sent the file in a transfer coding imd does not take");
                return false;
        }
        h->chunked = true;
        return true;
}

/* The status line of the answer; false if it ends the request. */
static bool check_status(XmppHttp *h, struct lws *wsi) {
        h->status = (int) lws_http_client_http_response(wsi);
        if (h->status == 404 || h->status == 410) {
                report(h, -ENOENT, "the file is gone from the server");
                return false;
        }
        if (h->status == 401 || h->status == 403) {
                /* A refusal like any other status: -EPERM stays what it
                 * means above this layer, a URL imd itself will not use,
                 * which the caller must be able to tell from this. */
                char text[64];
                g_snprintf(text, sizeof text, "the server refused access to the %s (HTTP %d)",
                           h->put ? "upload" : "file", h->status);
                report(h, -EIO, text);
                return false;
        }
        if (h->status >= 300 && h->status <= 399) {
                report(h, -EIO, h->put ? "the server redirected the upload elsewhere (imd does not follow redirects)"
                                       : "the server redirected the download elsewhere (imd does not follow "
                                         "redirects)");
                return false;
        }
        if (h->put && h->status == 413) {
                report(h, -EMSGSIZE, "the server refused a file this large");
                return false;
        }
        if (h->put ? h->status < 200 || h->status > 299 : h->status != 200) {
                report(h, -EIO, h->put ? "the server refused the upload" : "the server refused the download");
                return false;
        }
        if (h->put)
                return true;
        if (!check_transfer_coding(h, wsi))
                return false;
        /* a length over the limit is refused before any byte is written */
        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
                char text[24];
                guint64 v;
                if (lws_hdr_copy(wsi, text, sizeof text, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
                    g_ascii_string_to_unsigned(text, 10, 0, G_MAXUINT64, &v, NULL) && v > h->max_bytes) {
                        report(h, -EMSGSIZE, "the file is larger than allowed");
                        return false;
                }
        }
        return true;
}

/* PUT: Content-Length, Content-Type and the slot's headers; the body follows
 * in writable callbacks. */
static int append_put_headers(XmppHttp *h, struct lws *wsi, unsigned char **p, unsigned char *end) {
        char length[24];
        int n = g_snprintf(length, sizeof length, "%" G_GUINT64_FORMAT, h->size);

        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, (unsigned char *) length, n, p,
                                         end) ||
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, (unsigned char *) h->mime,
                                         (int) strlen(h->mime), p, end))
                return -1;
        for (size_t i = 0; h->header_names && h->header_names[i]; i++) {
                g_autofree char *name = g_strconcat(h->header_names[i], ":", NULL);
                if (lws_add_http_header_by_name(wsi, (unsigned char *) name,
                                                (unsigned char *) h->header_values[i],
                                                (int) strlen(h->header_values[i]), p, end))
                        return -1;
        }
        lws_client_http_body_pending(wsi, 1);
        lws_callback_on_writable(wsi);
        return 0;
}

static int write_put_chunk(XmppHttp *h, struct lws *wsi) {
        size_t want = (size_t) MIN((uint64_t) PUT_CHUNK, h->size - h->bytes);
        unsigned char *data = h->chunk + LWS_PRE;
        ssize_t n;
        bool last;

        do
                n = pread(h->fd, data, want, (off_t) h->bytes);
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
                /* the file shrank under us: the server would get less than announced */
                report(h, n < 0 ? -errno : -EIO, "cannot read the file");
                return -1;
        }
        last = h->bytes + (uint64_t) n == h->size;
        if (lws_write(wsi, data, (size_t) n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int) n) {
                report(h, -ECONNRESET, "the connection broke during the upload");
                return -1;
        }
        h->bytes += (uint64_t) n;
        if (h->progress)
                h->progress(h->bytes, h->size, h->userdata);
        if (last)
                lws_client_http_body_pending(wsi, 0);
        else
                lws_callback_on_writable(wsi);
        return 0;
}

/* The body went silent for stall_ms: the server or the path to it is stuck,
 * and nothing else would ever end the download (lws's timeouts end at the
 * answer's headers). Checked once per stall_ms, not re-armed per read. */
static gboolean on_stall_check(gpointer userdata) {
        XmppHttp *h = userdata;
        gint64 silent_ms = (g_get_monotonic_time() - h->last_read_us) / 1000;
        g_autofree char *text = NULL;

        h->stall_timer = 0;
        if (h->reported || !h->wsi)
                return G_SOURCE_REMOVE;
        if (silent_ms < (gint64) h->stall_ms) {
                h->stall_timer = g_timeout_add(h->stall_ms - (guint) silent_ms, on_stall_check, h);
                return G_SOURCE_REMOVE;
        }
        text = g_strdup_printf("the server sent nothing for %g s", h->stall_ms / 1000.0);
        report(h, -ETIMEDOUT, text);
        /* now, from the loop and outside lws: an asynchronous kill would wait
         * for the socket's next event, which a stuck server never makes.
         * CLOSED_CLIENT_HTTP frees h. */
        lws_set_timeout(h->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_SYNC);
        return G_SOURCE_REMOVE;
}

static void start_stall_timer(XmppHttp *h) {
        h->last_read_us = g_get_monotonic_time();
        if (!h->stall_timer)
                h->stall_timer = g_timeout_add(h->stall_ms, on_stall_check, h);
}

/* The answer's bytes that came (to RECEIVE_CLIENT_HTTP_READ). lws ends a
 * chunked body with COMPLETED both at its final chunk and when the
 * connection ends before it (as it must for a body with neither length nor
 * chunks); only in the first case does lws_http_client_read() succeed. A
 * body with a Content-Length cut short ends without COMPLETED
 * (CLOSED_CLIENT_HTTP: -ECONNRESET). */
static int read_body(XmppHttp *h, struct lws *wsi) {
        char buffer[4096 + LWS_PRE];
        char *px = buffer + LWS_PRE;
        int lenx = (int) sizeof buffer - LWS_PRE;
        int r;

        h->reading = true;
        r = lws_http_client_read(wsi, &px, &lenx);
        h->reading = false;
        if (h->body_ended) {
                if (r < 0)
                        report(h, -ECONNRESET, "the connection broke before the end of the file");
                report(h, 0, NULL);
                return -1;      /* one file per connection: close, and free h in CLOSED */
        }
        return r < 0 ? -1 : 0;
}

int xmpp_http_protocol_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
        XmppHttp *h = lws_get_opaque_user_data(wsi);
        int r;

        if (!h)
                return lws_callback_http_dummy(wsi, reason, user, in, len);

        switch ((int) reason) {
        case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
                /* also after we refused the response: lws then ends the wsi
                 * here, without CLOSED_CLIENT_HTTP */
                lws_set_opaque_user_data(wsi, NULL);
                /* this address refused us before any answer or byte of an
                 * upload: the host may have another (localhost is ::1 and
                 * 127.0.0.1) */
                if (!h->dial.in_connect && !h->reported && h->status == 0 && h->bytes == 0 && !h->tls_error &&
                    transport_classify_connect_error(in) != -EPROTO && transport_dial_next(&h->dial)) {
                        g_debug("cannot connect to %s: %s; trying the next address", h->dial.info.host,
                                in ? (const char *) in : "connection failed");
                        h->wsi = NULL;
                        return 0;
                }
                if (h->tls_error)
                        report(h, -EPROTO, h->tls_error);
                else
                        report(h, transport_classify_connect_error(in), in ? in : "connection failed");
                if (!h->dial.in_connect)
                        http_free(h);
                return 0;
        case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
                if (!len && !h->tls_error)
                        h->tls_error = transport_certificate_refusal(user);
                return 0;
        case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
                unsigned char **p = in, *end = *p + len;
                if (h->put && append_put_headers(h, wsi, p, end) < 0)
                        return -1;
                break;
        }
        case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE:
                if (h->reported)
                        return -1;
                if (h->put && h->bytes < h->size)
                        return write_put_chunk(h, wsi);
                return 0;
        case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
                transport_dial_established(&h->dial);
                if (!check_status(h, wsi))
                        return -1;
                if (!h->put)
                        start_stall_timer(h);
                break;
        case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
                if (h->reported)
                        return -1;
                if (h->put)
                        return 0;       /* the server's words on an upload: not needed */
                /* bounded while streaming: the header may lie or be absent */
                if (len > h->max_bytes - h->bytes) {
                        report(h, -EMSGSIZE, "the file is larger than allowed");
                        return -1;
                }
                r = write_all(h->fd, in, len);
                if (r < 0) {
                        report(h, r, "cannot write the file");
                        return -1;
                }
                h->bytes += len;
                h->last_read_us = g_get_monotonic_time();
                return 0;
        case LWS_CALLBACK_RECEIVE_CLIENT_HTTP:
                return read_body(h, wsi);
        case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
                if (!h->put && h->chunked && h->reading) {
                        h->body_ended = true;   /* whole or cut: read_body() tells */
                        return 0;
                }
                if (h->put && h->bytes < h->size)
                        report(h, -EIO, "the server answered before the upload was complete");
                report(h, 0, NULL);
                return -1;      /* one file per connection: close, and free h in CLOSED */
        case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
                lws_set_opaque_user_data(wsi, NULL);
                report(h, -ECONNRESET, h->put ? "the connection broke during the upload"
                                              : "the connection broke during the download");
                if (!h->dial.in_connect)
                        http_free(h);
                return 0;
        default:
                break;
        }
        return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* No address of the host took the connection. */
static void on_dial_failed(void *owner, int error, const char *reason) {
        XmppHttp *h = owner;

        report(h, error, reason);
        http_free(h);
}

static int start(XmppTransportContext *ctx, const char *url, const char *ca_file, XmppHttp *h, XmppHttp **ret) {
        struct lws_client_connect_info *info = &h->dial.info;
        const char *reason = NULL;
        int r;

        h->kind = TRANSPORT_KIND_HTTP;
        r = transport_dial_init(&h->dial, ctx, url, "http", "https", ca_file, on_dial_failed, h);
        if (r < 0) {
                http_free(h);
                return r;
        }
        info->method = h->put ? "PUT" : "GET";
        info->alpn = "http/1.1";
        info->protocol = XMPP_HTTP_PROTOCOL;
        info->local_protocol_name = XMPP_HTTP_PROTOCOL;
        info->opaque_user_data = h;
        info->pwsi = &h->wsi;

        /* An address: connect now, and say at once if that failed. A name is
         * resolved first, and then all goes through done(). */
        r = transport_dial_start(&h->dial, &reason);
        if (r < 0) {
                g_debug("cannot connect to %s: %s", url, reason ? reason : g_strerror(-r));
                http_free(h);
                return r;
        }
        *ret = h;
        return 0;
}

int xmpp_http_get(XmppTransportContext *ctx, const char *url, const char *ca_file, int fd, uint64_t max_bytes,
                  unsigned stall_ms, XmppHttpDone done, void *userdata, XmppHttp **ret) {
        XmppHttp *h = g_new0(XmppHttp, 1);

        h->fd = fd;
        h->max_bytes = max_bytes;
        h->stall_ms = stall_ms ? stall_ms : XMPP_HTTP_DEFAULT_STALL_MS;
        h->done = done;
        h->userdata = userdata;
        return start(ctx, url, ca_file, h, ret);
}

int xmpp_http_put(XmppTransportContext *ctx, const char *url, const char *ca_file, int fd, uint64_t size,
                  const char *mime, const XmppHttpHeader *headers, size_t n_headers, XmppHttpProgress progress,
                  XmppHttpDone done, void *userdata, XmppHttp **ret) {
        XmppHttp *h;

        if (size == 0 || !mime)
                return -EINVAL;
        h = g_new0(XmppHttp, 1);
        h->put = true;
        h->fd = fd;
        h->size = size;
        h->mime = g_strdup(mime);
        h->header_names = g_new0(char *, n_headers + 1);
        h->header_values = g_new0(char *, n_headers + 1);
        for (size_t i = 0; i < n_headers; i++) {
                h->header_names[i] = g_strdup(headers[i].name);
                h->header_values[i] = g_strdup(headers[i].value);
        }
        h->chunk = g_malloc(LWS_PRE + PUT_CHUNK);
        h->progress = progress;
        h->done = done;
        h->userdata = userdata;
        return start(ctx, url, ca_file, h, ret);
}

void xmpp_http_cancel(XmppHttp *h) {
        if (!h || h->reported)
                return;
        h->reported = true;     /* no done() from now on */
        if (h->wsi)
                lws_set_timeout(h->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
        else if (transport_dial_pending(&h->dial))
                http_free(h);   /* no connection yet, which would free it when it ends */
}
