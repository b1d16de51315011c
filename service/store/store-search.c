/* SPDX-License-Identifier: MIT */
/*
 * Full-text search over the history: the FTS5 index (migration 3 in store.c),
 * filled in bulk behind the appends, and the queries on it.
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "store-private.h"

/* Messages one store_search() catch-up step indexes in one transaction. */
#define STORE_FTS_STEP 5000

bool store_fts_indexed(const Store *store, int64_t seq) {
        return seq < 0 || seq <= store->fts_seq;
}

int store_fts_run(Store *store, StoreStatement id, int64_t seq, const char *text) {
        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, id);

        if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK || store_bind_text(st, 2, text) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, id);
        return 0;
}

int store_index_pending(Store *store, unsigned max_messages, bool *ret_done) {
        int64_t bound;
        char text[24];
        int r;

        if (!store || max_messages == 0 || !ret_done)
                return -EINVAL;
        {
                sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_FTS_NEXT_BOUND);
                if (sqlite3_bind_int64(st, 1, store->fts_seq) != SQLITE_OK ||
                    sqlite3_bind_int64(st, 2, max_messages) != SQLITE_OK ||
                    sqlite3_step(st) != SQLITE_ROW)
                        return store_fail(store, STMT_FTS_NEXT_BOUND);
                if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
                        *ret_done = true;
                        return 0;
                }
                bound = sqlite3_column_int64(st, 0);
        }
        r = store_begin(store);
        if (r < 0)
                return r;
        {
                sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_FTS_CATCH_UP);
                if (sqlite3_bind_int64(st, 1, store->fts_seq) != SQLITE_OK ||
                    sqlite3_bind_int64(st, 2, bound) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
                        r = store_fail(store, STMT_FTS_CATCH_UP);
        }
        g_snprintf(text, sizeof text, "%" G_GINT64_FORMAT, (gint64) bound);
        if (r >= 0)
                r = store_set_meta(store, META_FTS_SEQ, text);
        if (r < 0) {
                (void) store_rollback(store);
                return r;
        }
        r = store_commit(store);
        if (r < 0)
                return r;
        store->fts_seq = bound;
        *ret_done = false;
        return 0;
}

/* Before the text of the message changes: the index forgets the old text.
 * *ret_seq (for fts_after_change()) gets its seq; -ENOENT no such message. */
int store_fts_before_change(Store *store, const char *conversation, const char *id, int64_t *ret_seq) {
        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_GET_TEXT);
        int r;

        if (store_bind_text(st, 1, conversation) != SQLITE_OK || store_bind_text(st, 2, id) != SQLITE_OK)
                return store_fail(store, STMT_GET_TEXT);
        r = sqlite3_step(st);
        if (r == SQLITE_DONE)
                return -ENOENT;
        if (r != SQLITE_ROW)
                return store_fail(store, STMT_GET_TEXT);
        *ret_seq = sqlite3_column_int64(st, 0);
        if (!store_fts_indexed(store, *ret_seq) || sqlite3_column_type(st, 1) == SQLITE_NULL)
                return 0;
        return store_fts_run(store, STMT_FTS_DELETE, *ret_seq, (const char *) sqlite3_column_text(st, 1));
}

/* The user's words as an FTS5 query: every word must occur (the last one
 * also as the start of a word, for search-as-you-type); each word quoted, so
 * that nothing the user types is FTS5 syntax. NULL if there is no word. */
static char *fts_query(const char *words) {
        g_auto(GStrv) parts = g_strsplit_set(words, " \t\r\n", -1);
        GString *q = g_string_new(NULL);
        char *last_word = NULL;

        for (char **p = parts; *p; p++)
                if (**p)
                        last_word = *p;
        for (char **p = parts; *p; p++) {
                if (!**p)
                        continue;
                if (q->len)
                        g_string_append_c(q, ' ');
                g_string_append_c(q, '"');
                for (const char *c = *p; *c; c++) {
                        if (*c == '"')
                                g_string_append_c(q, '"');
                        g_string_append_c(q, *c);
                }
                g_string_append_c(q, '"');
                if (*p == last_word)
                        g_string_append_c(q, '*');
        }
        if (q->len == 0) {
                g_string_free(q, TRUE);
                return NULL;
        }
        return g_string_free(q, FALSE);
}

int store_search(Store *store, const char *words, const char *conversation, unsigned limit, GPtrArray **ret) {
        g_autofree char *query = NULL;
        sqlite3_stmt *st;
        int r;

        if (!store || !words || !store_valid_optional(words) || limit == 0 || !ret)
                return -EINVAL;
        query = fts_query(words);
        if (!query)
                return -EINVAL;
        /* a search sees every message: what the idle indexing has not reached yet is indexed now */
        for (bool done = false; !done;) {
                r = store_index_pending(store, STORE_FTS_STEP, &done);
                if (r < 0)
                        return r;
        }
        st = store_stmt(store, STMT_SEARCH);
        if (store_bind_text(st, 1, query) != SQLITE_OK ||
            store_bind_text(st, 2, conversation && *conversation ? conversation : NULL) != SQLITE_OK ||
            sqlite3_bind_int64(st, 3, limit) != SQLITE_OK)
                return store_fail(store, STMT_SEARCH);  /* each use binds every parameter anew */
        return store_collect_messages(store, STMT_SEARCH, ret);
}
