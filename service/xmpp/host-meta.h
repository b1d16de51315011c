/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * XEP-0156: where a service's XMPP-over-WebSocket endpoint is, from its
 * host-meta document (RFC 6415 XRD at https://DOMAIN/.well-known/host-meta).
 * Parsing only: the document is fetched with xmpp_http_get(). It is
 * untrusted input like a stanza: parsed with the same limits, and only a
 * wss:// URL is taken from it (a document fetched over https must not send
 * the password to a plain-text endpoint).
 */

#include <stddef.h>

#define XMPP_HOST_META_PATH "/.well-known/host-meta"
/* Real documents are a few hundred bytes. */
#define XMPP_HOST_META_MAX_BYTES (64 * 1024)
#define NS_XRD "http://docs.oasis-open.org/ns/xri/xrd-1.0"
#define XMPP_ALT_WEBSOCKET "urn:xmpp:alt-connections:websocket"

/* The href of the document's first WebSocket Link that is a usable wss://
 * URL: 0 and *ret_url (g_free() it); -ENOENT when there is none (links to
 * ws:// or elsewhere are passed over); -EBADMSG when data is not an XRD
 * document (or not well-formed, or over the limits). */
int xmpp_host_meta_websocket(const char *data, size_t len, char **ret_url);
