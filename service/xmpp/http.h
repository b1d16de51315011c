/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Downloads over HTTP(S) with libwebsockets, on the transport's context (and
 * so on the GLib loop): the files of media messages. The body goes to a file
 * descriptor as it arrives, bounded in size. Certificates and host names are
 * verified as for the XMPP connection.
 */

#include <stdint.h>

#include "transport.h"

typedef struct XmppHttpGet XmppHttpGet;

/* error 0: the whole body (bytes of it) is written; -EMSGSIZE more than
 * max_bytes; -ENOENT the server answered 404 / 410; -EIO another status;
 * -ECONNREFUSED / -EPROTO (TLS) / -ECONNRESET as for the transport; or a
 * write error. detail: a text for people, may be NULL. */
typedef void (*XmppHttpDone)(int error, const char *detail, uint64_t bytes, void *userdata);

/* GET url (http:// or https://) into fd. -EINVAL for another URL. done() runs
 * exactly once, later, unless xmpp_http_get_cancel() came first. */
int xmpp_http_get(XmppTransportContext *ctx, const char *url, const char *ca_file, int fd, uint64_t max_bytes,
                  XmppHttpDone done, void *userdata, XmppHttpGet **ret);
/* Stops it; done() will not run. Not after done() ran. */
void xmpp_http_get_cancel(XmppHttpGet *g);
