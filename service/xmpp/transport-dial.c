/* SPDX-License-Identifier: MIT */

#include <errno.h>

#include "transport-private.h"

/* How long an address may take to establish the connection (TCP, TLS, the
 * HTTP answer) while the host has another: one that drops packets (a
 * broken IPv6 route, a dead server) would otherwise hold the next one back
 * for the kernel's or lws's timeout, past the login's 30 s. Generous for a
 * real handshake. */
#define DIAL_NEXT_ADDRESS_TIMEOUT_MS 10000

int transport_dial_init(TransportDial *d, XmppTransportContext *ctx, const char *url, const char *plain_scheme,
                        const char *tls_scheme, const char *ca_file, TransportDialFailed failed, void *owner) {
        *d = (TransportDial) { .failed = failed, .owner = owner };
        return transport_target_for(ctx, url, plain_scheme, tls_scheme, ca_file, &d->target, &d->info);
}

bool transport_dial_keep_failure(TransportDial *d, int error, const char *reason) {
        if (!d->in_connect)
                return false;
        d->connect_error = error ? error : -ECONNREFUSED;
        g_free(d->connect_reason);
        d->connect_reason = g_strdup(reason);
        return true;
}

/* The attempt took too long while another address waits: lws ends it, and
 * the owner's CLIENT_CONNECTION_ERROR moves on to the next address. */
static gboolean on_attempt_timeout(gpointer data) {
        TransportDial *d = data;

        d->attempt_timer = 0;
        if (*d->info.pwsi) {
                g_debug("%s (%s) did not answer within %d ms", d->info.host, d->info.address,
                        DIAL_NEXT_ADDRESS_TIMEOUT_MS);
                /* now: an asynchronous kill waits for lws's next event on
                 * the GLib loop, which here is the kernel giving up */
                lws_set_timeout(*d->info.pwsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_SYNC);
        }
        return G_SOURCE_REMOVE;
}

void transport_dial_established(TransportDial *d) {
        g_clear_handle_id(&d->attempt_timer, g_source_remove);
}

/* One attempt on info.address: 0 if it is under way, else the error that
 * ended it at once (reason in connect_reason). */
static int attempt(TransportDial *d) {
        struct lws *wsi;

        g_clear_pointer(&d->connect_reason, g_free);
        d->connect_error = 0;
        d->in_connect = true;
        wsi = lws_client_connect_via_info(&d->info);
        d->in_connect = false;
        if (wsi && !d->connect_error) {
                if (d->addresses && d->addresses[d->next])
                        d->attempt_timer = g_timeout_add(DIAL_NEXT_ADDRESS_TIMEOUT_MS, on_attempt_timeout, d);
                return 0;
        }
        /* lws freed the wsi, or will end it without its owner */
        if (*d->info.pwsi)
                lws_set_opaque_user_data(*d->info.pwsi, NULL);
        *d->info.pwsi = NULL;
        return d->connect_error ? d->connect_error : -ECONNREFUSED;
}

static void fail(TransportDial *d, int error, const char *reason) {
        /* failed() may free d, and the reason with it */
        g_autofree char *why = g_strdup(reason ? reason : "connection failed");

        d->failed(d->owner, error, why);
}

static gboolean on_step(gpointer data) {
        TransportDial *d = data;
        int r;

        d->step_source = 0;
        r = attempt(d);
        /* a certificate the host showed is final; a refusal is not */
        if (r < 0 && (r == -EPROTO || !transport_dial_next(d)))
                fail(d, r, d->connect_reason);
        return G_SOURCE_REMOVE;
}

bool transport_dial_next(TransportDial *d) {
        g_clear_handle_id(&d->attempt_timer, g_source_remove);
        if (!d->addresses || !d->addresses[d->next])
                return false;
        /* info.host stays the name: it is the Host header, the TLS server
         * name and the name the certificate must carry */
        d->info.address = d->addresses[d->next++];
        d->step_source = g_idle_add(on_step, d);
        return true;
}

static void on_resolved(char **addresses, const char *error, void *userdata) {
        TransportDial *d = userdata;

        d->lookup = NULL;
        if (!addresses) {
                fail(d, -ECONNREFUSED, error);
                return;
        }
        d->addresses = addresses;
        d->next = 0;
        (void) transport_dial_next(d);
}

int transport_dial_start(TransportDial *d, const char **ret_reason) {
        int r;

        if (!xmpp_resolve_is_numeric(d->info.address)) {
                d->lookup = xmpp_resolve_start(d->info.host, on_resolved, d);
                *ret_reason = "cannot start a thread to look the host up";
                return d->lookup ? 0 : -EAGAIN;
        }
        /* an address: at once, as lws would */
        r = attempt(d);
        *ret_reason = d->connect_reason;
        return r;
}

bool transport_dial_pending(const TransportDial *d) {
        return d->lookup || d->step_source;
}

void transport_dial_clear(TransportDial *d) {
        xmpp_resolve_cancel(g_steal_pointer(&d->lookup));
        g_clear_handle_id(&d->step_source, g_source_remove);
        g_clear_handle_id(&d->attempt_timer, g_source_remove);
        /* info points into both: nothing may use it from now on */
        d->info.address = d->info.host = d->info.origin = d->info.path = NULL;
        d->next = 0;
        g_clear_pointer(&d->addresses, g_strfreev);
        g_clear_pointer(&d->connect_reason, g_free);
        transport_target_clear(&d->target);
}
