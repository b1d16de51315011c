/* SPDX-License-Identifier: MIT */
/*
 * XEP-0313 for the Session: the catch-up after every (re)connect, and paging
 * GetMessages back through the archive once the cache runs out.
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "session-private.h"

static void back_run(Session *s);

/* --- archive catch-up (XEP-0313) --- */

/* Pages through our archive from the last archive id stored, so that what
 * arrived while we were away (offline storage only keeps messages no device
 * took, and nothing our other devices sent) is in the history too. A first
 * login only learns where the archive ends: the history starts there rather
 * than with years of old messages. Messages that also arrive live or from
 * offline storage carry the same stanza-id (or id) and are stored once. */
static void mam_query(Session *s, XmppMamQueryKind kind, const char *after_id) {
        int r = xmpp_stream_mam_query(s->stream, kind, after_id, MAM_PAGE_SIZE);

        if (r < 0) {
                g_debug("session: cannot query the archive: %s", g_strerror(-r));
                return;
        }
        s->mam_running = true;
        g_debug("session: archive query: %s %s", kind == XMPP_MAM_NEWEST ? "newest" : "after",
                after_id ? after_id : "(start)");
}

void session_archive_catch_up(Session *s) {
        g_autofree char *last = NULL;

        if (!s->store || !s->stream || s->mam_running)
                return;
        if (store_get_meta(s->store, META_MAM_LAST_ID, &last) < 0)
                return;
        if (!last)
                mam_query(s, XMPP_MAM_NEWEST, NULL);
        else
                mam_query(s, XMPP_MAM_AFTER, *last ? last : NULL);
}

/* A page is in: store it, remember where it ends, ask for the next. */
static void mam_page_done(Session *s, int error, bool complete, const char *last) {
        g_autofree char *saved = NULL;
        bool learning;
        int r;

        if (error == -ENOENT) {
                /* The archive lost the id we continue from (expired, reset):
                 * start again from where it ends now. */
                g_debug("session: the archive no longer knows our last id; starting from its end");
                if (store_set_meta(s->store, META_MAM_LAST_ID, NULL) >= 0)
                        session_archive_catch_up(s);
                return;
        }
        if (error < 0) {
                g_debug("session: archive catch-up failed: %s", g_strerror(-error));
                return;
        }
        if (store_get_meta(s->store, META_MAM_LAST_ID, &saved) < 0)
                return;
        learning = !saved;
        /* The page is on disk before the id that says so. */
        if (session_flush(s) < 0)
                return;
        if (last || learning) {
                r = store_set_meta(s->store, META_MAM_LAST_ID, last ? last : "");
                if (r < 0) {
                        g_debug("session: cannot record the archive position: %s", g_strerror(-r));
                        return;
                }
        }
        if (learning || complete || !last) {
                s->mam_done = true;
                return;
        }
        /* A page that ends where it started has brought nothing: asking
         * again would bring the same, as fast as the server answers. */
        if (saved && strcmp(saved, last) == 0) {
                g_message("The server's archive does not move past %s; catch-up stops", last);
                s->mam_done = true;
                return;
        }
        mam_query(s, XMPP_MAM_AFTER, last);
}

static void back_page_done(Session *s, int error, bool complete, const char *first);

void on_stream_mam_finished(int error, bool complete, const char *first, const char *last, void *userdata) {
        Session *s = userdata;

        if (s->back_running) {
                back_page_done(s, error, complete, first);
                return;
        }
        s->mam_running = false;
        mam_page_done(s, error, complete, last);
        if (!s->mam_running) {
                session_release_held(s);
                back_run(s);
        }
}

/* --- paging back through the server archive --- */

static char *meta_key(const char *prefix, const char *conversation) {
        return g_strconcat(prefix, conversation, NULL);
}

static bool archive_done(Session *s, const char *conversation) {
        g_autofree char *key = meta_key(META_ARCHIVE_DONE, conversation);
        g_autofree char *value = NULL;
        return store_get_meta(s->store, key, &value) >= 0 && value;
}

static void back_request_free(BackRequest *req) {
        if (req->deadline)
                g_source_remove(req->deadline);
        g_free(req->conversation);
        g_free(req->before_id);
        g_free(req);
}

/* The cache's page for req. -ENOENT for an unknown before_id; an unknown
 * conversation is an empty one (its history may be on the server only). */
static int cache_page(Session *s, const BackRequest *req, GPtrArray **ret, bool *ret_complete) {
        int r = store_get_messages(s->store, req->conversation, req->before_id, req->limit, ret, ret_complete);

        if (r == -ENOENT && !*req->before_id) {
                *ret = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
                *ret_complete = true;
                return 0;
        }
        return r;
}

/* Answers req from the cache as it is now. complete only when the cache has
 * nothing older and neither has the archive (archive_known: it was asked). */
static void back_reply(Session *s, BackRequest *req, bool archive_known) {
        g_autoptr(GPtrArray) msgs = NULL;
        bool cache_complete = false;
        int r;

        if (!req->callback)
                return;                 /* answered when the wait ran out */
        r = cache_page(s, req, &msgs, &cache_complete);
        if (r < 0)
                req->callback(r, NULL, false, req->userdata);
        else
                req->callback(0, msgs, cache_complete && (archive_known || archive_done(s, req->conversation)),
                              req->userdata);
}

/* A slow archive (or one that never answers; the query itself times out
 * only after 60 s) must not hold GetMessages past the caller's D-Bus timeout:
 * the caller gets what the cache has now, not complete. A query that is out
 * still lands in the cache, for the next call; nothing more is asked for. */
static gboolean on_back_deadline(gpointer userdata) {
        BackRequest *req = userdata;
        Session *s = req->session;

        req->deadline = 0;
        g_debug("session: the archive is slow; answering GetMessages for %s from the cache", req->conversation);
        back_reply(s, req, false);
        req->callback = NULL;
        if (!(s->back_running && g_queue_peek_head(&s->back_requests) == req)) {
                g_queue_remove(&s->back_requests, req);
                back_request_free(req);
        }
        return G_SOURCE_REMOVE;
}

/* Asks the archive for the page before what the cache holds of the head request's conversation. */
static void back_run(Session *s) {
        BackRequest *req = g_queue_peek_head(&s->back_requests);
        g_autofree char *key = NULL, *cursor = NULL;
        int64_t end_ms = 0;
        int r;

        if (!req || s->back_running || s->mam_running)
                return;
        if (!s->stream || !s->ready) {
                session_archive_fail_waiting(s);
                return;
        }
        key = meta_key(META_ARCHIVE_CURSOR, req->conversation);
        if (store_get_meta(s->store, key, &cursor) < 0)
                cursor = NULL;
        /* The first time: before the oldest cached message the server gave
         * an id, by that archive id; our own messages get none, and those
         * cached before it come again, as duplicates that drop out. Never by
         * the time of one of ours: it is our clock's, and a clock behind the
         * server's would skip what the archive got in between, and call the
         * history complete without it. With no such message (only ours are
         * cached), from the archive's end: what comes again is only ours.
         * Only when the archive did not know the id, by time, with a margin. */
        if (!cursor) {
                g_autoptr(StoreMessage) anchor = NULL, oldest = NULL;
                if (!req->by_time && store_oldest_archived_message(s->store, req->conversation, &anchor) >= 0)
                        cursor = g_strdup(anchor->stanza_id);
                else if (req->by_time && store_oldest_message(s->store, req->conversation, &oldest) >= 0)
                        end_ms = oldest->time_ms + BACK_CLOCK_MARGIN_MS;
        }
        r = xmpp_stream_mam_query_before(s->stream, req->conversation, cursor, end_ms,
                                         MAX(req->limit, BACK_PAGE_MIN) > MAM_PAGE_SIZE ? MAM_PAGE_SIZE
                                                                                       : MAX(req->limit, BACK_PAGE_MIN));
        if (r < 0) {
                g_debug("session: cannot page back through the archive: %s", g_strerror(-r));
                g_queue_pop_head(&s->back_requests);
                back_reply(s, req, false);
                back_request_free(req);
                back_run(s);
                return;
        }
        req->queries++;
        s->back_running = true;
        s->pending_insert_at = 0;
        s->back_page = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
        g_debug("session: archive page before %s for %s", cursor ? cursor : "(its end)", req->conversation);
}

static void back_page_done(Session *s, int error, bool complete, const char *first) {
        g_autoptr(GPtrArray) page = g_steal_pointer(&s->back_page);
        BackRequest *req = g_queue_peek_head(&s->back_requests);
        g_autofree char *cursor_key = meta_key(META_ARCHIVE_CURSOR, req->conversation);
        g_autoptr(GPtrArray) msgs = NULL;
        bool cache_complete = false, done = false;

        s->back_running = false;
        if (error == -ENOENT) {
                /* the archive does not know our cursor (forgotten, or a
                 * stanza-id that is no archive id): go by time instead */
                (void) store_set_meta(s->store, cursor_key, NULL);
                if (!req->by_time && req->callback && req->queries < BACK_QUERIES_MAX) {
                        req->by_time = true;
                        back_run(s);
                        return;
                }
        } else if (error == 0) {
                /* live messages of the batch first: then the acknowledgement
                 * below counts exactly what is on disk */
                session_flush(s);
                for (guint i = 0; i < page->len / 2; i++) {     /* newest first */
                        gpointer t = page->pdata[i];
                        page->pdata[i] = page->pdata[page->len - 1 - i];
                        page->pdata[page->len - 1 - i] = t;
                }
                g_autoptr(GPtrArray) waited = session_waited_for(s, page);
                if (store_prepend_messages(s->store, (StoreMessage *const *) page->pdata, page->len) < 0) {
                        error = -EIO;
                } else {
                        /* the page's own actions, then the newer ones that
                         * waited: a later correction wins */
                        session_retry_actions(s);
                        session_apply_waiting_to(s, page, waited, ACTION_NEWS_COUNTS, false);
                        session_settle_acks(s);
                        if (first)
                                (void) store_set_meta(s->store, cursor_key, first);
                        if (complete || !first) {
                                g_autofree char *done_key = meta_key(META_ARCHIVE_DONE, req->conversation);
                                (void) store_set_meta(s->store, done_key, "1");
                                done = true;
                        }
                }
        }
        if (error == 0 && !done && req->callback && req->queries < BACK_QUERIES_MAX &&
            cache_page(s, req, &msgs, &cache_complete) >= 0 && msgs->len < req->limit) {
                back_run(s);            /* still short: the next older page */
                return;
        }
        g_queue_pop_head(&s->back_requests);
        /* A server without an archive has nothing older to give; any other
         * failure may pass, so the history is not called complete. */
        back_reply(s, req, error == -EOPNOTSUPP || done);
        back_request_free(req);
        session_settle_acks(s);         /* a page that failed is not stored */
        back_run(s);
}

/* Not connected any more: whoever waits gets what the cache has. */
void session_archive_fail_waiting(Session *s) {
        BackRequest *req;

        s->back_running = false;
        g_clear_pointer(&s->back_page, g_ptr_array_unref);
        while ((req = g_queue_pop_head(&s->back_requests))) {
                if (s->store)
                        back_reply(s, req, false);
                else if (req->callback)
                        req->callback(-ENOTCONN, NULL, false, req->userdata);
                back_request_free(req);
        }
}

int session_get_messages_async(Session *s, const char *conversation, const char *before_id, unsigned limit,
                               SessionMessagesCallback callback, void *userdata) {
        g_autoptr(GPtrArray) msgs = NULL;
        BackRequest *req;
        bool cache_complete = false;
        int r;

        if (!s->store)
                return -ENOTCONN;
        session_flush(s);
        req = g_new0(BackRequest, 1);
        req->session = s;
        req->conversation = g_strdup(conversation);
        req->before_id = g_strdup(before_id ? before_id : "");
        req->limit = limit;
        req->callback = callback;
        req->userdata = userdata;
        r = cache_page(s, req, &msgs, &cache_complete);
        if (r < 0) {
                back_request_free(req);
                return r;
        }
        /* Enough in the cache, or nothing more to get: answer now. */
        if (msgs->len >= limit || !cache_complete || archive_done(s, conversation) || !s->ready || !s->stream) {
                callback(0, msgs, cache_complete && archive_done(s, conversation), userdata);
                back_request_free(req);
                return 0;
        }
        req->deadline = g_timeout_add(s->config.archive_wait_ms, on_back_deadline, req);
        g_queue_push_tail(&s->back_requests, req);
        back_run(s);
        return 0;
}
