/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Host names resolved off the main loop.
 *
 * Debian 12's libwebsockets (4.1, built without LWS_WITH_SYS_ASYNC_DNS) calls
 * getaddrinfo() inside lws_client_connect_via_info(). On a network whose DNS
 * does not answer (just after a resume, behind a captive portal) that is 5 s
 * per try and server, and the whole daemon, with every D-Bus client waiting
 * on it, stood still meanwhile. So the transport resolves a name here, in a
 * thread, and hands lws a numeric address.
 */

#include <stdbool.h>
#include <glib.h>

typedef struct XmppResolve XmppResolve;

/* addresses: numeric, in getaddrinfo()'s order (RFC 6724's preference), at
 * least one, NULL-terminated; the callee owns them (g_strfreev()). On failure
 * addresses is NULL and error says why, for people. */
typedef void (*XmppResolveDone)(char **addresses, const char *error, void *userdata);

/* Whether host is an address already (IPv4, IPv6, with a scope; or lws's
 * "+/path" of a Unix socket): nothing to look up. */
bool xmpp_resolve_is_numeric(const char *host);

/* Looks up host's addresses for a TCP connection; done() runs later, from
 * the default main context, unless xmpp_resolve_cancel() came first. NULL if
 * no thread could be started. */
XmppResolve *xmpp_resolve_start(const char *host, XmppResolveDone done, void *userdata);

/* done() will not run. The lookup itself cannot be interrupted: its thread
 * finishes on its own time and frees what it used. NULL is fine. */
void xmpp_resolve_cancel(XmppResolve *r);
