/* SPDX-License-Identifier: MIT */
/*
 * The conversation list: each conversation with its last message, unread
 * count and name.
 */

#include <errno.h>
#include <glib.h>

#include "store-private.h"

static uint32_t clamp_u32(int64_t v) {
        return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t) v;
}

static int conversation_from_row(sqlite3_stmt *st, StoreConversation **ret) {
        g_autoptr(StoreConversation) c = NULL;
        int r;

        c = g_new0(StoreConversation, 1);
        c->id = store_column_strdup(st, 0);
        c->kind = store_column_strdup(st, 1);
        c->name = store_column_strdup(st, 2);
        c->unread = clamp_u32(sqlite3_column_int64(st, 3));
        c->time_ms = sqlite3_column_int64(st, 4);

        if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
                r = store_message_from_row(st, 5, &c->last);
                if (r < 0)
                        return r;
        }

        *ret = g_steal_pointer(&c);
        return 0;
}

int store_list_conversations(Store *store, GPtrArray **ret) {
        g_autoptr(GPtrArray) conversations = NULL;
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !ret)
                return -EINVAL;

        conversations = g_ptr_array_new_with_free_func((GDestroyNotify) store_conversation_free);

        st = store_stmt(store, STMT_LIST_CONVERSATIONS);
        for (;;) {
                StoreConversation *c;

                r = sqlite3_step(st);
                if (r == SQLITE_DONE)
                        break;
                if (r != SQLITE_ROW)
                        return store_fail(store, STMT_LIST_CONVERSATIONS);

                r = conversation_from_row(st, &c);
                if (r < 0)
                        return r;
                g_ptr_array_add(conversations, c);
        }

        *ret = g_steal_pointer(&conversations);
        return 0;
}

int store_get_conversation(Store *store, const char *id, StoreConversation **ret) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !id || !ret)
                return -EINVAL;

        st = store_stmt(store, STMT_GET_CONVERSATION);
        if (store_bind_text(st, 1, id) != SQLITE_OK)
                return store_fail(store, STMT_GET_CONVERSATION);

        r = sqlite3_step(st);
        if (r == SQLITE_DONE)
                return -ENOENT;
        if (r != SQLITE_ROW)
                return store_fail(store, STMT_GET_CONVERSATION);

        return conversation_from_row(st, ret);
}

static int last_incoming_id(Store *store, const char *conversation, char **ret) {
        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_LAST_INCOMING);
        int r;

        if (store_bind_text(st, 1, conversation) != SQLITE_OK)
                return store_fail(store, STMT_LAST_INCOMING);

        r = sqlite3_step(st);
        if (r == SQLITE_DONE) {
                *ret = NULL;
                return 0;
        }
        if (r != SQLITE_ROW)
                return store_fail(store, STMT_LAST_INCOMING);

        *ret = store_column_strdup(st, 0);
        return 0;
}

int store_mark_read(Store *store, const char *conversation, char **ret_last_incoming_id) {
        g_autofree char *last = NULL;
        int r;

        if (!store || !conversation)
                return -EINVAL;

        r = store_check_transaction(store);
        if (r < 0)
                return r;

        if (ret_last_incoming_id) {
                r = last_incoming_id(store, conversation, &last);
                if (r < 0)
                        return r;
        }

        {
                sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_CLEAR_UNREAD);

                if (store_bind_text(st, 1, conversation) != SQLITE_OK)
                        return store_fail(store, STMT_CLEAR_UNREAD);
                if (sqlite3_step(st) != SQLITE_DONE)
                        return store_fail(store, STMT_CLEAR_UNREAD);
                if (sqlite3_changes(store->db) == 0)
                        return -ENOENT;
        }

        if (ret_last_incoming_id)
                *ret_last_incoming_id = g_steal_pointer(&last);
        return 0;
}

int store_forget_unread(Store *store, const char *conversation, int64_t seq) {
        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_FORGET_UNREAD);

        if (store_bind_text(st, 1, conversation) != SQLITE_OK || sqlite3_bind_int64(st, 2, seq) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, STMT_FORGET_UNREAD);
        return sqlite3_changes(store->db) > 0 ? 1 : 0;
}

int store_unread_total(Store *store, uint32_t *ret) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;

        if (!store || !ret)
                return -EINVAL;

        st = store_stmt(store, STMT_UNREAD_TOTAL);
        if (sqlite3_step(st) != SQLITE_ROW)
                return store_fail(store, STMT_UNREAD_TOTAL);

        *ret = clamp_u32(sqlite3_column_int64(st, 0));
        return 0;
}

int store_set_conversation_name(Store *store, const char *id, const char *name) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;

        if (!store || !store_valid_key(id) || !name || !store_valid_optional(name))
                return -EINVAL;
        st = store_stmt(store, STMT_SET_CONVERSATION_NAME);
        if (store_bind_text(st, 1, id) != SQLITE_OK || store_bind_text(st, 2, name) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, STMT_SET_CONVERSATION_NAME);
        return sqlite3_changes(store->db) > 0 ? 1 : 0;
}
