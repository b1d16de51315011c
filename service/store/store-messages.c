/* SPDX-License-Identifier: MIT */
/*
 * Stored messages: reading one, paging through a conversation's history,
 * and the changes to a message after it was stored (status, displayed
 * markers, retraction, correction, reactions, media).
 */

#include <errno.h>
#include <glib.h>

#include "store-private.h"

int store_message_from_row(sqlite3_stmt *st, int col, StoreMessage **ret) {
        StoreMessage *m;
        int d;

        d = sqlite3_column_int(st, col + 5);
        if (!store_direction_valid((StoreDirection) d)) {
                g_debug("store: message with invalid direction %d", d);
                return -EIO;
        }

        m = g_new0(StoreMessage, 1);
        m->seq = sqlite3_column_int64(st, col);
        m->conversation = store_column_strdup(st, col + 1);
        m->id = store_column_strdup(st, col + 2);
        m->sender = store_column_strdup(st, col + 3);
        m->stanza_id = store_column_strdup(st, col + 4);
        m->direction = (StoreDirection) d;
        m->time_ms = sqlite3_column_int64(st, col + 6);
        m->type = store_column_strdup(st, col + 7);
        m->text = store_column_strdup(st, col + 8);
        m->status = store_column_strdup(st, col + 9);
        m->data = store_column_strdup(st, col + 10);
        m->extension = store_column_strdup(st, col + 11);
        m->revoked = sqlite3_column_int(st, col + 12) != 0;
        m->edited = sqlite3_column_int(st, col + 13) != 0;
        m->reactions = store_column_strdup(st, col + 14);
        m->url = store_column_strdup(st, col + 15);
        m->mime = store_column_strdup(st, col + 16);
        m->name = store_column_strdup(st, col + 17);
        m->size = sqlite3_column_type(st, col + 18) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, col + 18);
        m->width = (uint32_t) sqlite3_column_int64(st, col + 19);
        m->height = (uint32_t) sqlite3_column_int64(st, col + 20);
        m->duration_ms = (uint32_t) sqlite3_column_int64(st, col + 21);
        m->path = store_column_strdup(st, col + 22);
        m->wire_id = store_column_strdup(st, col + 23);

        *ret = m;
        return 0;
}

/* The message that statement id, bound to (conversation, key), finds. */
static int get_message(Store *store, StoreStatement id, const char *conversation, const char *key,
                       StoreMessage **ret) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !conversation || !key || !ret)
                return -EINVAL;

        st = store_stmt(store, id);
        if (store_bind_text(st, 1, conversation) != SQLITE_OK || store_bind_text(st, 2, key) != SQLITE_OK)
                return store_fail(store, id);

        r = sqlite3_step(st);
        if (r == SQLITE_DONE)
                return -ENOENT;
        if (r != SQLITE_ROW)
                return store_fail(store, id);

        return store_message_from_row(st, 0, ret);
}

int store_get_message(Store *store, const char *conversation, const char *id, StoreMessage **ret) {
        return get_message(store, STMT_GET_MESSAGE, conversation, id, ret);
}

int store_get_message_by_wire_id(Store *store, const char *conversation, const char *wire_id, StoreMessage **ret) {
        return get_message(store, STMT_GET_MESSAGE_BY_WIRE_ID, conversation, wire_id, ret);
}

int store_get_message_by_stanza_id(Store *store, const char *conversation, const char *stanza_id,
                                   StoreMessage **ret) {
        return get_message(store, STMT_GET_MESSAGE_BY_STANZA_ID, conversation, stanza_id, ret);
}

int store_set_message_status(Store *store, const char *conversation, const char *id, const char *status) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !conversation || !id || !store_valid_key(status))
                return -EINVAL;

        r = store_check_transaction(store);
        if (r < 0)
                return r;

        st = store_stmt(store, STMT_SET_STATUS);
        if (store_bind_text(st, 1, conversation) != SQLITE_OK ||
            store_bind_text(st, 2, id) != SQLITE_OK ||
            store_bind_text(st, 3, status) != SQLITE_OK)
                return store_fail(store, STMT_SET_STATUS);

        if (sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, STMT_SET_STATUS);

        /* Counts matched rows, also when the status was already the same. */
        return sqlite3_changes(store->db) > 0 ? 0 : -ENOENT;
}

/* The text of a message changes to text (NULL: gone): statement id does it,
 * with the search index and, for a retraction, the unread count kept true,
 * in one transaction. 1 if the unread count dropped, else 0. */
static int change_text(Store *store, StoreStatement id, const char *conversation, const char *msg_id,
                       const char *text) {
        int64_t seq = 0;
        int r, unread_dropped = 0;

        r = store_begin(store);
        if (r < 0)
                return r;
        r = store_fts_before_change(store, conversation, msg_id, &seq);
        /* while the message is not revoked yet: see STMT_FORGET_UNREAD */
        if (r >= 0 && id == STMT_REVOKE)
                r = unread_dropped = store_forget_unread(store, conversation, seq);
        if (r >= 0) {
                sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, id);
                if (store_bind_text(st, 1, conversation) != SQLITE_OK || store_bind_text(st, 2, msg_id) != SQLITE_OK ||
                    (text && store_bind_text(st, 3, text) != SQLITE_OK) || sqlite3_step(st) != SQLITE_DONE)
                        r = store_fail(store, id);
                else if (sqlite3_changes(store->db) == 0)
                        r = -ENOENT;
        }
        if (r >= 0 && text && store_fts_indexed(store, seq))
                r = store_fts_run(store, STMT_FTS_INSERT, seq, text);
        /* nothing queued for a revoked message makes sense any more (a
         * retraction of it is queued after this) */
        if (r >= 0 && id == STMT_REVOKE)
                r = store_drop_actions(store, conversation, msg_id, STORE_ACTION_RETRACT);
        if (r < 0) {
                (void) store_rollback(store);
                return r;
        }
        r = store_commit(store);
        if (r < 0)
                return r;
        return unread_dropped;
}

int store_revoke_message(Store *store, const char *conversation, const char *id) {
        if (!store || !conversation || !id)
                return -EINVAL;
        return change_text(store, STMT_REVOKE, conversation, id, NULL);
}

static int message_seq(Store *store, const char *conversation, const char *id, int64_t *ret) {
        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_GET_SEQ);
        int r;

        if (store_bind_text(st, 1, conversation) != SQLITE_OK || store_bind_text(st, 2, id) != SQLITE_OK)
                return store_fail(store, STMT_GET_SEQ);

        r = sqlite3_step(st);
        if (r == SQLITE_DONE)
                return -ENOENT;
        if (r != SQLITE_ROW)
                return store_fail(store, STMT_GET_SEQ);

        *ret = sqlite3_column_int64(st, 0);
        return 0;
}

int store_mark_read_by_peer(Store *store, const char *conversation, const char *id, GPtrArray **ret_ids) {
        g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int64_t seq;
        int r;

        if (!store || !conversation || !id || !ret_ids)
                return -EINVAL;
        r = message_seq(store, conversation, id, &seq);
        if (r < 0)
                return r;
        r = store_check_transaction(store);
        if (r < 0)
                return r;
        st = store_stmt(store, STMT_READ_BY_PEER);
        if (store_bind_text(st, 1, conversation) != SQLITE_OK || sqlite3_bind_int64(st, 2, seq) != SQLITE_OK)
                return store_fail(store, STMT_READ_BY_PEER);
        while ((r = sqlite3_step(st)) == SQLITE_ROW)
                g_ptr_array_add(ids, g_strdup((const char *) sqlite3_column_text(st, 0)));
        if (r != SQLITE_DONE)
                return store_fail(store, STMT_READ_BY_PEER);
        *ret_ids = g_steal_pointer(&ids);
        return 0;
}

int store_set_media_path(Store *store, const char *conversation, const char *id, const char *path) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;

        if (!store || !conversation || !id || !store_valid_optional(path))
                return -EINVAL;
        st = store_stmt(store, STMT_SET_PATH);
        if (store_bind_text(st, 1, conversation) != SQLITE_OK || store_bind_text(st, 2, id) != SQLITE_OK ||
            store_bind_text(st, 3, path) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, STMT_SET_PATH);
        return sqlite3_changes(store->db) > 0 ? 0 : -ENOENT;
}

int store_set_uploaded(Store *store, const char *conversation, const char *id, const char *url, const char *path) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;

        if (!store || !conversation || !id || !url || !*url || !store_valid_optional(path))
                return -EINVAL;
        st = store_stmt(store, STMT_SET_UPLOADED);
        if (store_bind_text(st, 1, conversation) != SQLITE_OK || store_bind_text(st, 2, id) != SQLITE_OK ||
            store_bind_text(st, 3, url) != SQLITE_OK || store_bind_text(st, 4, path) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, STMT_SET_UPLOADED);
        return sqlite3_changes(store->db) > 0 ? 0 : -ENOENT;
}

int store_set_reactions(Store *store, const char *conversation, const char *id, const char *reactions) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !conversation || !id || !store_valid_optional(reactions))
                return -EINVAL;
        r = store_check_transaction(store);
        if (r < 0)
                return r;
        st = store_stmt(store, STMT_SET_REACTIONS);
        if (store_bind_text(st, 1, conversation) != SQLITE_OK || store_bind_text(st, 2, id) != SQLITE_OK ||
            store_bind_text(st, 3, reactions) != SQLITE_OK)
                return store_fail(store, STMT_SET_REACTIONS);
        if (sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, STMT_SET_REACTIONS);
        return sqlite3_changes(store->db) > 0 ? 0 : -ENOENT;
}

int store_edit_message(Store *store, const char *conversation, const char *id, const char *text) {
        if (!store || !conversation || !id || !store_valid_key(text))
                return -EINVAL;
        return change_text(store, STMT_EDIT, conversation, id, text);
}

int store_get_messages(Store *store, const char *conversation, const char *before_id, unsigned limit,
                       GPtrArray **ret, bool *ret_complete) {
        g_autoptr(GPtrArray) messages = NULL;
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int64_t before = INT64_MAX;
        bool complete = true;
        int r;

        if (!store || !conversation || !ret)
                return -EINVAL;

        if (before_id && *before_id) {
                r = message_seq(store, conversation, before_id, &before);
                if (r < 0)
                        return r;
        }

        messages = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);

        /* One row more than asked for tells whether older ones exist, without a
         * second query. */
        st = store_stmt(store, STMT_GET_MESSAGES);
        if (store_bind_text(st, 1, conversation) != SQLITE_OK ||
            sqlite3_bind_int64(st, 2, before) != SQLITE_OK ||
            sqlite3_bind_int64(st, 3, (int64_t) limit + 1) != SQLITE_OK)
                return store_fail(store, STMT_GET_MESSAGES);

        for (;;) {
                StoreMessage *m;

                r = sqlite3_step(st);
                if (r == SQLITE_DONE)
                        break;
                if (r != SQLITE_ROW)
                        return store_fail(store, STMT_GET_MESSAGES);
                if (messages->len == limit) {
                        complete = false;
                        break;
                }

                r = store_message_from_row(st, 0, &m);
                if (r < 0)
                        return r;
                g_ptr_array_add(messages, m);
        }

        *ret = g_steal_pointer(&messages);
        if (ret_complete)
                *ret_complete = complete;
        return 0;
}

int store_collect_messages(Store *store, StoreStatement id, GPtrArray **ret) {
        g_autoptr(GPtrArray) messages = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, id);
        int r;

        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                StoreMessage *m;
                r = store_message_from_row(st, 0, &m);
                if (r < 0)
                        return r;
                g_ptr_array_add(messages, m);
        }
        if (r != SQLITE_DONE)
                return store_fail(store, id);
        *ret = g_steal_pointer(&messages);
        return 0;
}

int store_list_unsent(Store *store, GPtrArray **ret) {
        if (!store || !ret)
                return -EINVAL;
        return store_collect_messages(store, STMT_LIST_UNSENT, ret);
}

int store_list_own_files(Store *store, const char *id, GPtrArray **ret) {
        if (!store || !id || !ret)
                return -EINVAL;
        if (store_bind_text(store_stmt(store, STMT_LIST_OWN_FILES), 1, id) != SQLITE_OK)
                return store_fail(store, STMT_LIST_OWN_FILES);
        return store_collect_messages(store, STMT_LIST_OWN_FILES, ret);
}

int store_list_messages_after(Store *store, int64_t after_seq, unsigned limit, GPtrArray **ret) {
        sqlite3_stmt *st;

        if (!store || !ret || limit == 0)
                return -EINVAL;
        st = store_stmt(store, STMT_MESSAGES_AFTER);
        if (sqlite3_bind_int64(st, 1, after_seq) != SQLITE_OK ||
            sqlite3_bind_int64(st, 2, limit) != SQLITE_OK)
                return store_fail(store, STMT_MESSAGES_AFTER);  /* each use binds every parameter anew */
        return store_collect_messages(store, STMT_MESSAGES_AFTER, ret);
}

int store_last_seq(Store *store, int64_t *ret) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;

        if (!store || !ret)
                return -EINVAL;
        st = store_stmt(store, STMT_LAST_SEQ);
        if (sqlite3_step(st) != SQLITE_ROW)
                return store_fail(store, STMT_LAST_SEQ);
        *ret = sqlite3_column_int64(st, 0);
        return 0;
}

static int oldest_message(Store *store, StoreStatement id, const char *conversation, StoreMessage **ret) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !conversation || !ret)
                return -EINVAL;
        st = store_stmt(store, id);
        if (store_bind_text(st, 1, conversation) != SQLITE_OK)
                return store_fail(store, id);
        r = sqlite3_step(st);
        if (r == SQLITE_DONE)
                return -ENOENT;
        if (r != SQLITE_ROW)
                return store_fail(store, id);
        return store_message_from_row(st, 0, ret);
}

int store_oldest_message(Store *store, const char *conversation, StoreMessage **ret) {
        return oldest_message(store, STMT_OLDEST, conversation, ret);
}

int store_oldest_archived_message(Store *store, const char *conversation, StoreMessage **ret) {
        return oldest_message(store, STMT_OLDEST_ARCHIVED, conversation, ret);
}
