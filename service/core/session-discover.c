/* SPDX-License-Identifier: MIT */
/*
 * Where to connect when Login names no websocket_url (XEP-0156): the
 * service's host-meta document, https://DOMAIN/.well-known/host-meta,
 * fetched with the login's trust settings, names its WebSocket endpoint.
 * A service that has none, or does not answer in time, gets the common
 * wss://DOMAIN/xmpp-websocket, as before discovery existed. Only a wss://
 * endpoint is taken from the document (host-meta.h).
 */

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "host-meta.h"
#include "http.h"
#include "session-private.h"

/* One small GET: a service that takes longer is treated as having none. */
#define DISCOVERY_TIMEOUT_MS 5000

static void discovery_clear(Session *s) {
        xmpp_http_cancel(g_steal_pointer(&s->discovery));
        g_clear_handle_id(&s->discovery_timer, g_source_remove);
        if (s->discovery_fd >= 0)
                close(s->discovery_fd);
        s->discovery_fd = -1;
}

/* The endpoint the document names, or NULL. */
static char *read_endpoint(int fd, uint64_t bytes) {
        g_autofree char *data = NULL;
        char *url = NULL;
        ssize_t n;

        if (bytes == 0 || bytes > XMPP_HOST_META_MAX_BYTES)
                return NULL;
        data = g_malloc(bytes);
        n = pread(fd, data, bytes, 0);
        if (n != (ssize_t) bytes || xmpp_host_meta_websocket(data, bytes, &url) < 0)
                return NULL;
        return url;
}

static void discovery_finish(Session *s, char *url) {
        const char *domain = strchr(s->login_jid, '@') + 1;

        discovery_clear(s);
        if (url)
                g_debug("session: %s%s names %s", domain, XMPP_HOST_META_PATH, url);
        else {
                url = g_strdup_printf("wss://%s/xmpp-websocket", domain);
                g_debug("session: no WebSocket endpoint in %s%s; trying %s", domain, XMPP_HOST_META_PATH, url);
        }
        g_free(s->url);
        s->url = url;
        session_login_connect(s);
}

static void on_host_meta(int error, const char *detail, uint64_t bytes, void *userdata) {
        Session *s = userdata;

        s->discovery = NULL;
        if (error < 0)
                g_debug("session: no host-meta: %s", detail ? detail : g_strerror(-error));
        discovery_finish(s, error < 0 ? NULL : read_endpoint(s->discovery_fd, bytes));
}

static gboolean on_discovery_timeout(gpointer userdata) {
        Session *s = userdata;

        s->discovery_timer = 0;
        if (s->discovery)
                g_debug("session: host-meta took over %d ms", DISCOVERY_TIMEOUT_MS);
        discovery_finish(s, NULL);
        return G_SOURCE_REMOVE;
}

void session_discover_endpoint(Session *s) {
        const char *domain = strchr(s->login_jid, '@') + 1;
        g_autofree char *url = g_strdup_printf("https://%s%s", domain, XMPP_HOST_META_PATH);
        int r;

        s->discovery_fd = memfd_create("imd-host-meta", MFD_CLOEXEC);
        r = s->discovery_fd < 0 ? -errno
                                : xmpp_http_get(s->transport_ctx, url, s->ca_file, s->discovery_fd,
                                                XMPP_HOST_META_MAX_BYTES, 0, on_host_meta, s, &s->discovery);
        if (r < 0) {
                g_debug("session: cannot ask for %s: %s", url, g_strerror(-r));
                /* later, not from inside Login */
                s->discovery_timer = g_idle_add(on_discovery_timeout, s);
                return;
        }
        s->discovery_timer = g_timeout_add(DISCOVERY_TIMEOUT_MS, on_discovery_timeout, s);
}

bool session_discovering(const Session *s) {
        return s->discovery || s->discovery_timer;
}

void session_cancel_discovery(Session *s) {
        discovery_clear(s);
}
