/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Store's insides, shared by its files:
 *  - store.c: opening, statements, transactions, meta, freeing results;
 *  - store-migrate.c: the schema and its migrations;
 *  - store-append.c: appending and prepending messages;
 *  - store-messages.c: reading, paging and changing stored messages;
 *  - store-conversations.c: the conversation list, unread counts, names;
 *  - store-search.c: the FTS5 index;
 *  - store-actions.c: the outbox of actions (retractions, corrections,
 *    reactions), and others' actions waiting for their message.
 * Nothing outside service/store includes this.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>
#include <glib.h>

#include "store.h"

/* The store's own meta key: see migration 3 in store-migrate.c. */
#define META_FTS_SEQ "fts-seq"

typedef enum StoreStatement {
        STMT_BEGIN,
        STMT_COMMIT,
        STMT_ROLLBACK,
        STMT_SAVEPOINT_NEST,
        STMT_RELEASE_NEST,
        STMT_ROLLBACK_TO_NEST,
        STMT_INSERT_MESSAGE,
        STMT_CONVERSATION_KEY,
        STMT_INSERT_CONVERSATION,
        STMT_UPDATE_CONVERSATION,
        STMT_GET_MESSAGE,
        STMT_GET_MESSAGE_BY_WIRE_ID,
        STMT_GET_MESSAGE_BY_STANZA_ID,
        STMT_GET_SEQ,
        STMT_GET_MESSAGES,
        STMT_SET_STATUS,
        STMT_REVOKE,
        STMT_FORGET_UNREAD,
        STMT_EDIT,
        STMT_SET_REACTIONS,
        STMT_INSERT_MESSAGE_AT,
        STMT_ID_REUSED,
        STMT_SET_WIRE_ID,
        STMT_FIRST_SEQ,
        STMT_ADOPT_LAST,
        STMT_OLDEST,
        STMT_OLDEST_ARCHIVED,
        STMT_SEARCH,
        STMT_FTS_INSERT,
        STMT_FTS_DELETE,
        STMT_FTS_NEXT_BOUND,
        STMT_FTS_CATCH_UP,
        STMT_GET_TEXT,
        STMT_READ_BY_PEER,
        STMT_SET_PATH,
        STMT_SET_UPLOADED,
        STMT_SET_CONVERSATION_NAME,
        STMT_LIST_CONVERSATIONS,
        STMT_GET_CONVERSATION,
        STMT_LAST_INCOMING,
        STMT_CLEAR_UNREAD,
        STMT_UNREAD_TOTAL,
        STMT_GET_META,
        STMT_SET_META,
        STMT_DELETE_META,
        STMT_LIST_UNSENT,
        STMT_LIST_OWN_FILES,
        STMT_MESSAGES_AFTER,
        STMT_LAST_SEQ,
        STMT_QUEUE_ACTION,
        STMT_SUPERSEDE_ACTIONS,
        STMT_ACTION_DONE,
        STMT_LIST_ACTIONS,
        STMT_KEEP_WAITING,
        STMT_KEEP_WAITING_OLDER,
        STMT_TRIM_WAITING,
        STMT_LIST_WAITING,
        STMT_LIST_ALL_WAITING,
        STMT_DROP_WAITING,
        _STMT_MAX,
} StoreStatement;

struct Store {
        sqlite3 *db;
        /* Prepared once, at open or on first use (store_stmt()): compiling SQL
         * costs more than running these. */
        sqlite3_stmt *stmt[_STMT_MAX];
        /* Depth of store_begin(); 0 means every write is its own transaction. */
        unsigned nesting;
        /* Messages with seq < 0 or <= fts_seq are in the search index. */
        int64_t fts_seq;
        /* No message has a positive seq yet (empty, or only history prepended
         * from the archive): SQLite would give the next append max + 1, which
         * may be 0 or negative, so the next append is placed at 1 explicitly. */
        bool seq_floor_pending;
        /* seq_floor_pending may be wrong: a transaction was undone (rolled
         * back, or its COMMIT failed) after an append in it cleared it. The
         * next append looks again (store_refresh_seq_floor()). */
        bool seq_floor_stale;
};

/* A cached statement handed out by this is reset when it goes out of scope, so an
 * early return can never leave it holding a read snapshot or stale bindings. */
static inline void stmt_resetp(sqlite3_stmt **st) {
        if (*st) {
                sqlite3_reset(*st);
                sqlite3_clear_bindings(*st);
        }
}
#define _cleanup_reset_ __attribute__((cleanup(stmt_resetp)))

/* store.c */
/* Logs SQLite's error about what at debug level; -EIO. */
int store_sqlite_fail(sqlite3 *db, const char *what);
/* Runs sql, one or more statements without results. */
int store_exec_sql(sqlite3 *db, const char *sql);
/* Compiles every statement the Store runs, and throws it away: whether
 * db's schema is one the Store can use. */
int store_check_statements(sqlite3 *db);
/* Logs SQLite's error for statement id at debug level; -EIO. */
int store_fail(Store *store, StoreStatement id);
/* Statement id, prepared now if this is its first use; NULL if that failed. */
sqlite3_stmt *store_stmt(Store *store, StoreStatement id);
/* Binds s (NULL: SQL NULL) as SQLITE_STATIC, without a copy. */
int store_bind_text(sqlite3_stmt *st, int i, const char *s);
/* A copy of text column i, NULL if the column is NULL. */
char *store_column_strdup(sqlite3_stmt *st, int i);
/* Non-empty and valid UTF-8. */
bool store_valid_key(const char *s);
/* NULL or valid UTF-8. */
bool store_valid_optional(const char *s);
/* Whether d is one of the StoreDirection values. */
bool store_direction_valid(StoreDirection d);
/* -EIO if SQLite rolled back the open batch after an error; else 0. */
int store_check_transaction(Store *store);

/* store-migrate.c */
/* Brings db's schema to the current version, in one transaction committed
 * only if store_check_statements() passes. -EPROTO for a version newer
 * than this imd's or a schema it cannot use; the file is then unchanged. */
int store_migrate(sqlite3 *db);

/* store-append.c */
/* Sets store->seq_floor_pending from the messages stored now; clears
 * seq_floor_stale. */
int store_refresh_seq_floor(Store *store);

/* store-messages.c */
/* A new StoreMessage from the MESSAGE_COLUMNS starting at column col. */
int store_message_from_row(sqlite3_stmt *st, int col, StoreMessage **ret);
/* Steps statement id (bound by the caller) and collects its rows, each
 * MESSAGE_COLUMNS from column 0; resets it. */
int store_collect_messages(Store *store, StoreStatement id, GPtrArray **ret);

/* store-conversations.c */
/* Before message seq of conversation is marked revoked: if it counted as
 * unread, the count drops. 1 if it did, 0 if not. */
int store_forget_unread(Store *store, const char *conversation, int64_t seq);

/* store-actions.c */
/* Drops the queued actions on message target that an action of kind makes
 * pointless (see store_queue_action()), without queueing one. */
int store_drop_actions(Store *store, const char *conversation, const char *target, StoreActionKind kind);

/* store-search.c */
/* Whether the message with this seq is in the search index. */
bool store_fts_indexed(const Store *store, int64_t seq);
/* Runs STMT_FTS_INSERT or STMT_FTS_DELETE for (seq, text). */
int store_fts_run(Store *store, StoreStatement id, int64_t seq, const char *text);
/* Before the text of a message changes: the index forgets the old text.
 * *ret_seq gets its seq; -ENOENT no such message. */
int store_fts_before_change(Store *store, const char *conversation, const char *id, int64_t *ret_seq);
