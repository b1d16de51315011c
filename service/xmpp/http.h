/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Files over HTTP(S) with libwebsockets, on the transport's context (and so
 * on the GLib loop): downloading the file of a media message (GET, the body
 * written to a file descriptor as it arrives, bounded in size) and uploading
 * one to an XEP-0363 slot (PUT, the body read from a file descriptor as the
 * connection takes it). Certificates and host names are verified as for the
 * XMPP connection.
 */

#include <stddef.h>
#include <stdint.h>

#include "transport.h"

typedef struct XmppHttp XmppHttp;

/* error 0: done (GET: the whole body written, bytes of it: all its
 * Content-Length, or a chunked body up to its final chunk, or a body with
 * neither up to the end of the connection; PUT: the server took the file);
 * -EMSGSIZE larger than allowed (GET: more than max_bytes; PUT: status 413);
 * -ENOENT the server answered 404 / 410; -EIO another status (401 and 403
 * included), or a transfer coding other than chunked; -ECONNREFUSED /
 * -EPROTO (TLS) / -ECONNRESET as for the transport (GET: also a body cut
 * before its end); -ETIMEDOUT (GET) no byte of the body for stall_ms; or a
 * read / write error of the file. detail: a text for people, may be NULL. */
typedef void (*XmppHttpDone)(int error, const char *detail, uint64_t bytes, void *userdata);
/* PUT: sent bytes of total handed to the connection so far. */
typedef void (*XmppHttpProgress)(uint64_t sent, uint64_t total, void *userdata);

typedef struct XmppHttpHeader {
        const char *name, *value;
} XmppHttpHeader;

/* How long a GET's body may go without a byte before it fails: lws bounds
 * the connection and the wait for the answer's headers, not the body. */
#define XMPP_HTTP_DEFAULT_STALL_MS 60000

/* GET url (http:// or https://) into fd; stall_ms bounds a silence of the
 * body (0: XMPP_HTTP_DEFAULT_STALL_MS), not its whole length. -EINVAL for
 * another URL. done() runs exactly once, later, unless xmpp_http_cancel()
 * came first. */
int xmpp_http_get(XmppTransportContext *ctx, const char *url, const char *ca_file, int fd, uint64_t max_bytes,
                  unsigned stall_ms, XmppHttpDone done, void *userdata, XmppHttp **ret);

/* PUT the size bytes of fd from offset 0 (pread: the fd's offset does not
 * matter) to url, with Content-Type mime and the given extra headers (the
 * caller vouches for them). progress() may be NULL. Same rules as
 * xmpp_http_get() otherwise. */
int xmpp_http_put(XmppTransportContext *ctx, const char *url, const char *ca_file, int fd, uint64_t size,
                  const char *mime, const XmppHttpHeader *headers, size_t n_headers, XmppHttpProgress progress,
                  XmppHttpDone done, void *userdata, XmppHttp **ret);

/* Stops it; done() will not run. Not after done() ran. */
void xmpp_http_cancel(XmppHttp *h);
