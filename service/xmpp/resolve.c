/* SPDX-License-Identifier: MIT */

#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "resolve.h"

/* More would only be more connection attempts to wait through (each may
 * take lws's connect timeout). */
#define MAX_ADDRESSES 4

struct XmppResolve {
        char *host;
        XmppResolveDone done;   /* NULL once cancelled; only the main loop touches it */
        void *userdata;
        /* written by the thread, read by the main loop after it handed over */
        char **addresses;
        char *error;
};

bool xmpp_resolve_is_numeric(const char *host) {
        const struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
        struct addrinfo *list = NULL;

        /* lws's form for a Unix socket ("+/path"), or what getaddrinfo()
         * reads as an address without asking anyone: 127.1, fe80::1%eth0 */
        if (host[0] == '+')
                return true;
        if (getaddrinfo(host, NULL, &hints, &list) != 0)
                return false;
        freeaddrinfo(list);
        return true;
}

static void resolve_free(XmppResolve *r) {
        g_free(r->host);
        g_strfreev(r->addresses);
        g_free(r->error);
        g_free(r);
}

static gboolean resolve_deliver(gpointer data) {
        XmppResolve *r = data;

        if (r->done)
                r->done(g_steal_pointer(&r->addresses), r->error, r->userdata);
        resolve_free(r);
        return G_SOURCE_REMOVE;
}

static void lookup(XmppResolve *r) {
        /* No AI_ADDRCONFIG: it ignores loopback, so a name that is only ::1
         * would have no address on a machine without global IPv6. An
         * address of a family without a route fails at once, and the next
         * one is tried. */
        const struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
        };
        struct addrinfo *list = NULL;
        GPtrArray *out;
        int e;

        e = getaddrinfo(r->host, NULL, &hints, &list);
        if (e != 0) {
                r->error = g_strdup_printf("cannot resolve %s: %s", r->host, gai_strerror(e));
                return;
        }
        out = g_ptr_array_new();
        for (const struct addrinfo *a = list; a && out->len < MAX_ADDRESSES; a = a->ai_next) {
                char text[NI_MAXHOST];

                /* numeric, with an IPv6 address's scope (fe80::1%eth0) */
                if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
                    getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, NULL, 0, NI_NUMERICHOST) != 0)
                        continue;
                /* /etc/hosts may list an address twice */
                bool seen = false;
                for (guint i = 0; i < out->len && !seen; i++)
                        seen = strcmp(g_ptr_array_index(out, i), text) == 0;
                if (!seen)
                        g_ptr_array_add(out, g_strdup(text));
        }
        freeaddrinfo(list);
        if (out->len == 0) {
                g_ptr_array_free(out, TRUE);
                r->error = g_strdup_printf("cannot resolve %s: no IPv4 or IPv6 address", r->host);
                return;
        }
        g_ptr_array_add(out, NULL);
        r->addresses = (char **) g_ptr_array_free(out, FALSE);
}

static gpointer resolve_thread(gpointer data) {
        XmppResolve *r = data;

        lookup(r);
        /* from here on the request is the main loop's */
        g_idle_add(resolve_deliver, r);
        return NULL;
}

XmppResolve *xmpp_resolve_start(const char *host, XmppResolveDone done, void *userdata) {
        XmppResolve *r = g_new0(XmppResolve, 1);
        g_autoptr(GError) error = NULL;
        GThread *thread;

        r->host = g_strdup(host);
        r->done = done;
        r->userdata = userdata;
        thread = g_thread_try_new("imd-resolve", resolve_thread, r, &error);
        if (!thread) {
                g_warning("cannot start a thread to resolve %s: %s", host, error->message);
                resolve_free(r);
                return NULL;
        }
        g_thread_unref(thread);
        return r;
}

void xmpp_resolve_cancel(XmppResolve *r) {
        if (r)
                r->done = NULL;
}
