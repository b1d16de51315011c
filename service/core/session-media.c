/* SPDX-License-Identifier: MIT */
/*
 * Files of media messages for the Session: FetchMedia downloads one into the
 * cache directory, under a name imd makes up (the sender's name is for
 * showing only), bounded in size, over https. A download is written under a
 * partial name (PARTIAL_PREFIX) and takes its final one only once it is
 * whole: what a crash leaves half-written is recognisable, and removed at
 * the next start.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "http.h"
#include "session-private.h"

#define MEDIA_DIR "media"
#define DEFAULT_MAX_DOWNLOAD (100 * 1024 * 1024)
/* Final names start with a hex digit, so nothing else ever has this prefix. */
#define PARTIAL_PREFIX ".part-"

/* A FetchMedia call waiting for a download. */
typedef struct FetchWaiter {
        SessionFetchCallback callback;
        void *userdata;
} FetchWaiter;

/* The download of one message's file. Every caller asking for that message
 * meanwhile waits for it (several frontends react to the same
 * MessageReceived): one GET, one file, which the message keeps; a download
 * each would leave all but the last file orphaned in the cache. */
typedef struct Fetch {
        Session *session;
        char *conversation, *id, *mime;
        int64_t size;           /* the sender's, or -1 */
        char *partial;          /* the file being written, under its partial name */
        char *path;             /* its final name, once whole */
        int fd;                 /* the new file, being written */
        XmppHttp *get;
        GArray *waiters;        /* of FetchWaiter, in the order they came */
} Fetch;

static void fetch_free(Fetch *f) {
        if (f->fd >= 0)
                close(f->fd);
        g_free(f->conversation);
        g_free(f->id);
        g_free(f->mime);
        g_free(f->partial);
        g_free(f->path);
        g_array_unref(f->waiters);
        g_free(f);
}

static void fetch_add_waiter(Fetch *f, SessionFetchCallback callback, void *userdata) {
        FetchWaiter w = { .callback = callback, .userdata = userdata };

        g_array_append_val(f->waiters, w);
}

static Fetch *find_fetch(Session *s, const char *conversation, const char *id) {
        for (guint i = 0; s->fetches && i < s->fetches->len; i++) {
                Fetch *f = g_ptr_array_index(s->fetches, i);
                if (strcmp(f->id, id) == 0 && strcmp(f->conversation, conversation) == 0)
                        return f;
        }
        return NULL;
}

/* A descriptor of its own for each caller: a shared one would share its
 * offset, and one frontend reading would move another's. -errno, and the
 * callback not called, if the file cannot be opened. */
static int answer_from_file(const char *path, SessionFetchCallback callback, void *userdata) {
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        callback(0, fd, NULL, userdata);
        close(fd);
        return 0;
}

/* An address of this machine, as written: 127.0.0.0/8, ::1 or localhost
 * (a name like 127.example.org is a name, resolved elsewhere). */
static bool host_is_loopback(const char *host) {
        struct in_addr v4;
        struct in6_addr v6;

        if (inet_pton(AF_INET, host, &v4) == 1)
                return (ntohl(v4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, host, &v6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&v6);
        return g_ascii_strcasecmp(host, "localhost") == 0;
}

/* https only. Plain http elsewhere would hand the file, and its URL's
 * secret, to the network; and plain http to this machine, whatever a peer
 * or a server names, would be a request to any service listening here (a
 * printer, a router's admin page through a tunnel, a debugger), sent when
 * the user asks for a file. A test suite's servers speak plain http on
 * 127.0.0.1: config.loopback_http lets imd use them. (https to such a
 * service fails at the handshake: no certificate for it verifies.) */
int session_media_url_allowed(const Session *s, const char *url) {
        g_autoptr(GUri) uri = g_uri_parse(url, G_URI_FLAGS_NONE, NULL);
        const char *scheme, *host;

        if (!uri)
                return -EINVAL;
        scheme = g_uri_get_scheme(uri);
        host = g_uri_get_host(uri);
        if (!host || !*host)
                return -EINVAL;
        if (g_ascii_strcasecmp(scheme, "https") == 0)
                return 0;
        if (g_ascii_strcasecmp(scheme, "http") != 0 || !s->config.loopback_http)
                return -EPERM;
        return host_is_loopback(host) ? 0 : -EPERM;
}

/* A new name: a new file (from NULL: its fd), or a second name of the file
 * from (0). Exclusive either way (O_EXCL, link()): nothing already there, a
 * symlink say, is used or followed. */
static int take_name(const char *path, const char *from) {
        int fd;

        if (from)
                return link(from, path) < 0 ? -errno : 0;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        return fd < 0 ? -errno : fd;
}

/* cache/media/<random>.<subtype of the media type> (partial:
 * PARTIAL_PREFIX<random>), taken here and now. */
static int media_new_name(Session *s, const char *mime, bool partial, const char *from, char **ret_path) {
        g_autofree char *dir = g_build_filename(s->cache_dir, MEDIA_DIR, NULL);
        const char *sub = mime ? strchr(mime, '/') : NULL;
        char ext[9] = "bin";
        size_t n = 0;

        if (sub)
                for (sub++; *sub && n < sizeof ext - 1 && g_ascii_isalnum(*sub); sub++)
                        ext[n++] = *sub;
        if (n > 0)
                ext[n] = 0;
        if (g_mkdir_with_parents(dir, 0700) < 0)
                return -errno;
        for (int attempt = 0; attempt < 8; attempt++) {
                g_autofree char *name = partial ? g_strdup_printf(PARTIAL_PREFIX "%08x%08x", g_random_int(),
                                                                  g_random_int())
                                                : g_strdup_printf("%08x%08x.%s", g_random_int(), g_random_int(), ext);
                g_autofree char *path = g_build_filename(dir, name, NULL);
                int r = take_name(path, from);
                if (r >= 0) {
                        *ret_path = g_steal_pointer(&path);
                        return r;
                }
                if (r != -EEXIST)
                        return r;
        }
        return -EEXIST;
}

int session_media_create_file(Session *s, const char *mime, char **ret_path) {
        return media_new_name(s, mime, false, NULL, ret_path);
}

int session_media_link_file(Session *s, const char *mime, const char *from, char **ret_path) {
        return media_new_name(s, mime, false, from, ret_path);
}

void session_media_remove_partial(Session *s) {
        g_autofree char *dir = g_build_filename(s->cache_dir, MEDIA_DIR, NULL);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;
        unsigned n = 0;

        while (d && (name = g_dir_read_name(d))) {
                g_autofree char *path = g_build_filename(dir, name, NULL);
                if (g_str_has_prefix(name, PARTIAL_PREFIX) && unlink(path) == 0)
                        n++;
        }
        if (n > 0)
                g_debug("session: removed %u unfinished downloads from %s", n, dir);
}

char *session_media_find_link(Session *s, const struct stat *st) {
        g_autofree char *dir = g_build_filename(s->cache_dir, MEDIA_DIR, NULL);
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;

        while (d && (name = g_dir_read_name(d))) {
                g_autofree char *path = g_build_filename(dir, name, NULL);
                struct stat other;
                if (lstat(path, &other) == 0 && other.st_dev == st->st_dev && other.st_ino == st->st_ino)
                        return g_steal_pointer(&path);
        }
        return NULL;
}

/* A whole file is the size its sender gave, when it gave one: a body that
 * HTTP calls whole (one ended by the connection, say) may still be cut. */
static int check_size(const Fetch *f, uint64_t bytes, char **ret_detail) {
        if (f->size < 0 || bytes == (uint64_t) f->size)
                return 0;
        *ret_detail = g_strdup_printf("the server sent %" G_GUINT64_FORMAT " bytes of the %" G_GINT64_FORMAT
                                      " its sender gave", bytes, f->size);
        return -EIO;
}

/* The whole file takes its final name, and the message names it: link,
 * commit, then (in on_fetched()) the partial name goes, so the history
 * never names a missing file. */
static int keep_file(Fetch *f) {
        Session *s = f->session;
        int r = session_media_link_file(s, f->mime, f->partial, &f->path);

        if (r < 0)
                return r;
        r = s->store ? store_set_media_path(s->store, f->conversation, f->id, f->path) : 0;
        if (r < 0) {
                (void) unlink(f->path);
                g_clear_pointer(&f->path, g_free);
        }
        return r;
}

static void on_fetched(int error, const char *detail, uint64_t bytes, void *userdata) {
        Fetch *f = userdata;
        Session *s = f->session;
        g_autofree char *why = NULL;

        g_ptr_array_remove_fast(s->fetches, f);
        close(f->fd);
        f->fd = -1;
        if (error == 0)
                error = check_size(f, bytes, &why);
        if (error == 0)
                error = keep_file(f);
        (void) unlink(f->partial);      /* nothing half-written stays */
        if (why)
                detail = why;
        if (error < 0)
                g_debug("session: cannot fetch the file of %s: %s (%s)", f->id, g_strerror(-error),
                        detail ? detail : "");
        else
                g_debug("session: fetched %" G_GUINT64_FORMAT " bytes for %s (%u callers)", bytes, f->id,
                        f->waiters->len);
        for (guint i = 0; i < f->waiters->len; i++) {
                FetchWaiter *w = &g_array_index(f->waiters, FetchWaiter, i);
                int r = error < 0 ? error : answer_from_file(f->path, w->callback, w->userdata);
                if (r < 0)
                        w->callback(r, -1, error < 0 ? detail : NULL, w->userdata);
        }
        fetch_free(f);
}

int session_fetch_media(Session *s, const char *conversation, const char *id, SessionFetchCallback callback,
                        void *userdata) {
        g_autoptr(StoreMessage) m = NULL;
        uint64_t max = s->config.max_download_bytes ? s->config.max_download_bytes : DEFAULT_MAX_DOWNLOAD;
        Fetch *f;
        int r;

        if (!s->store)
                return -ENOTCONN;
        session_flush(s);
        r = store_get_message(s->store, conversation, id, &m);
        if (r < 0)
                return r;
        if (!m->url)
                return -ENOMEDIUM;
        /* fetched before (and, if the cache was cleaned since, fetched again);
         * nothing is asked of the URL then */
        if (m->path && answer_from_file(m->path, callback, userdata) == 0)
                return 0;
        r = session_media_url_allowed(s, m->url);
        if (r < 0)
                return r;
        /* being fetched: its file will be this caller's too */
        f = find_fetch(s, conversation, id);
        if (f) {
                fetch_add_waiter(f, callback, userdata);
                return 0;
        }
        /* the sender's size, when it gave one, is a bound too */
        if (m->size >= 0 && (uint64_t) m->size < max)
                max = (uint64_t) m->size;

        f = g_new0(Fetch, 1);
        f->session = s;
        f->conversation = g_strdup(conversation);
        f->id = g_strdup(id);
        f->mime = g_strdup(m->mime);
        f->size = m->size;
        f->waiters = g_array_new(false, false, sizeof(FetchWaiter));
        fetch_add_waiter(f, callback, userdata);
        f->fd = media_new_name(s, NULL, true, NULL, &f->partial);
        if (f->fd < 0) {
                r = f->fd;
                fetch_free(f);
                return r;
        }
        /* the login's CAs: a server with a private CA serves its files too */
        r = xmpp_http_get(s->transport_ctx, m->url, s->ca_file, f->fd, max, s->config.stall_timeout_ms, on_fetched,
                          f, &f->get);
        if (r < 0) {
                (void) unlink(f->partial);
                fetch_free(f);
                return r;
        }
        if (!s->fetches)
                s->fetches = g_ptr_array_new();
        g_ptr_array_add(s->fetches, f);
        return 0;
}

void session_cancel_fetches(Session *s) {
        while (s->fetches && s->fetches->len > 0) {
                Fetch *f = g_ptr_array_steal_index_fast(s->fetches, s->fetches->len - 1);
                xmpp_http_cancel(f->get);
                (void) unlink(f->partial);
                for (guint i = 0; i < f->waiters->len; i++) {
                        FetchWaiter *w = &g_array_index(f->waiters, FetchWaiter, i);
                        w->callback(-ECANCELED, -1, NULL, w->userdata);
                }
                fetch_free(f);
        }
        g_clear_pointer(&s->fetches, g_ptr_array_unref);
}
