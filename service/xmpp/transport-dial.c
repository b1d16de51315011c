/* SPDX-License-Identifier: MIT */

#include <errno.h>

#include "transport-private.h"

int transport_dial_init(TransportDial *d, XmppTransportContext *ctx, const char *url, const char *plain_scheme,
                        const char *tls_scheme, const char *ca_file, TransportDialStep step, void *owner) {
        *d = (TransportDial) { .step = step, .owner = owner };
        return transport_target_for(ctx, url, plain_scheme, tls_scheme, ca_file, &d->target, &d->info);
}

static gboolean on_step(gpointer data) {
        TransportDial *d = data;

        d->step_source = 0;
        d->step(d->owner, 0, NULL);
        return G_SOURCE_REMOVE;
}

bool transport_dial_next(TransportDial *d) {
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
                d->step(d->owner, -ECONNREFUSED, error);
                return;
        }
        d->addresses = addresses;
        d->next = 0;
        d->info.address = d->addresses[d->next++];
        d->step(d->owner, 0, NULL);
}

int transport_dial_start(TransportDial *d) {
        if (xmpp_resolve_is_numeric(d->info.address))
                return 1;
        d->lookup = xmpp_resolve_start(d->info.host, on_resolved, d);
        return d->lookup ? 0 : -EAGAIN;
}

bool transport_dial_pending(const TransportDial *d) {
        return d->lookup || d->step_source;
}

void transport_dial_clear(TransportDial *d) {
        xmpp_resolve_cancel(g_steal_pointer(&d->lookup));
        g_clear_handle_id(&d->step_source, g_source_remove);
        /* info points into both: nothing may use it from now on */
        d->info.address = d->info.host = d->info.origin = d->info.path = NULL;
        d->next = 0;
        g_clear_pointer(&d->addresses, g_strfreev);
        transport_target_clear(&d->target);
}
