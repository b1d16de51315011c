/* SPDX-License-Identifier: MIT */
/*
 * Full-text search over the history: the FTS5 index (migration 3 in store-migrate.c),
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

/* True if @word has a character the unicode61 tokenizer keeps: a letter, a
 * number or a private-use character (its default categories, "L* N* Co");
 * the rest separates words. @word is valid UTF-8 (store_valid_optional). */
static bool has_token_char(const char *word) {
        const unsigned token_types =
                1u << G_UNICODE_LOWERCASE_LETTER | 1u << G_UNICODE_MODIFIER_LETTER |
                1u << G_UNICODE_OTHER_LETTER | 1u << G_UNICODE_TITLECASE_LETTER |
                1u << G_UNICODE_UPPERCASE_LETTER | 1u << G_UNICODE_DECIMAL_NUMBER |
                1u << G_UNICODE_LETTER_NUMBER | 1u << G_UNICODE_OTHER_NUMBER |
                1u << G_UNICODE_PRIVATE_USE;

        for (const char *c = word; *c; c = g_utf8_next_char(c))
                if (token_types & 1u << g_unichar_type(g_utf8_get_char(c)))
                        return true;
        return false;
}

/* The user's words, split at any Unicode space (a no-break space too, or
 * the words around it would have to stand side by side), keeping those
 * the index can hold: "." or "-" alone is no word. */
static GPtrArray *query_words(const char *text) {
        GPtrArray *words = g_ptr_array_new_with_free_func(g_free);
        const char *start = NULL;

        for (const char *c = text;; c = g_utf8_next_char(c)) {
                bool end = !*c || g_unichar_isspace(g_utf8_get_char(c));

                if (end && start) {
                        char *word = g_strndup(start, (gsize) (c - start));
                        if (has_token_char(word))
                                g_ptr_array_add(words, word);
                        else
                                g_free(word);
                        start = NULL;
                } else if (!end && !start) {
                        start = c;
                }
                if (!*c)
                        return words;
        }
}

/* The user's words as an FTS5 query: every word must occur (the last one
 * also as the start of a word, for search-as-you-type); each word quoted, so
 * that nothing the user types is FTS5 syntax. NULL if there is no word. */
static char *fts_query(const char *text) {
        g_autoptr(GPtrArray) words = query_words(text);
        GString *q;

        if (words->len == 0)
                return NULL;
        q = g_string_new(NULL);
        for (guint i = 0; i < words->len; i++) {
                if (q->len)
                        g_string_append_c(q, ' ');
                g_string_append_c(q, '"');
                for (const char *c = g_ptr_array_index(words, i); *c; c++) {
                        if (*c == '"')
                                g_string_append_c(q, '"');
                        g_string_append_c(q, *c);
                }
                g_string_append_c(q, '"');
                if (i == words->len - 1)
                        g_string_append_c(q, '*');
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
