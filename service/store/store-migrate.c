/* SPDX-License-Identifier: MIT */
/*
 * The schema and its migrations: store_migrate() brings a history of any
 * earlier version to the current one, in one transaction that is committed
 * only once every statement the Store runs compiles against the result.
 */

#include <errno.h>
#include <stdarg.h>
#include <sqlite3.h>

#include "store-private.h"

/*
 * migrations[i] takes the schema from user_version i to i + 1, so a schema change
 * appends a step. A released step never changes: databases out there already ran it.
 *
 * Version 1 is shaped by the cost of an append, which is mostly I/O: every
 * b-tree page a commit dirties is checksummed and written to the WAL, and later
 * copied to the database by a checkpoint, so the schema keeps the number of
 * pages a batch of messages touches small:
 *  - messages refer to their conversation by its integer key, so the index
 *    entries are short (more per page, fewer pages) and compare as integers;
 *  - UNIQUE (conversation, id) is the dedupe key for our own ids. With random
 *    (UUID) ids it is the one index whose inserts scatter: one page per message.
 *    Everything else appends at the right edge of its b-tree. (Indexing a 64-bit
 *    hash of the id instead makes the entries a third the size and, while the
 *    history is young, saved a quarter of the pages per batch; but it needs a
 *    second statement per message to tell collisions from duplicates, which
 *    cost as much CPU as the pages saved. Clustering messages by (conversation,
 *    seq) in a WITHOUT ROWID table to drop the index below cost more pages
 *    than it saved once batches span several conversations.)
 *  - the partial index dedupes MAM results by server stanza-id without indexing
 *    the many messages that have none. XEP-0359 stanza-ids are unique per
 *    archive, and the archive of a chat is its conversation;
 *  - (conversation, seq) makes paging a range search ending in the rowid, so
 *    neither paging nor "newest incoming" ever scans the table;
 *  - conversations.last_seq is a plain integer, not a foreign key: it is written
 *    only by an append, in the same transaction, so it cannot dangle, and a
 *    foreign key would cost a lookup on every conversation update;
 *  - conversations deliberately has no index on (time_ms, last_seq): every append
 *    moves a conversation's time, and re-sorting a few hundred rows when the list
 *    is asked for is cheaper than maintaining an index 20,000 times a second.
 */

static const char *const migrations[] = {
        "CREATE TABLE conversations ("
        "        key INTEGER PRIMARY KEY,"
        "        id TEXT NOT NULL UNIQUE,"
        "        kind TEXT NOT NULL,"
        "        name TEXT NOT NULL,"
        "        unread INTEGER NOT NULL DEFAULT 0,"
        "        time_ms INTEGER NOT NULL,"
        "        last_seq INTEGER);"
        "CREATE TABLE messages ("
        "        seq INTEGER PRIMARY KEY,"
        "        conversation INTEGER NOT NULL,"
        "        id TEXT NOT NULL,"
        "        sender TEXT,"
        "        stanza_id TEXT,"
        "        direction INTEGER NOT NULL,"
        "        time_ms INTEGER NOT NULL,"
        "        type TEXT,"
        "        text TEXT,"
        "        status TEXT,"
        "        UNIQUE (conversation, id));"
        "CREATE UNIQUE INDEX messages_stanza_id ON messages (conversation, stanza_id) WHERE stanza_id IS NOT NULL;"
        "CREATE INDEX messages_conversation_seq ON messages (conversation, seq);"
        /* The outbox: our messages the server has not acknowledged yet. */
        "CREATE INDEX messages_unsent ON messages (seq) WHERE direction = 1 AND status = 'pending';"
        "CREATE TABLE meta ("
        "        key TEXT PRIMARY KEY,"
        "        value TEXT NOT NULL);",
        /* Version 2: custom messages (XEP-0335 data, imd's extension string),
         * retraction (XEP-0424), correction (XEP-0308) and reactions (XEP-0444,
         * a JSON object of sender -> emoji list, NULL when none). NULL columns
         * cost a byte of record header, so plain text messages stay as small. */
        "ALTER TABLE messages ADD COLUMN data TEXT;"
        "ALTER TABLE messages ADD COLUMN extension TEXT;"
        "ALTER TABLE messages ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE messages ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE messages ADD COLUMN reactions TEXT;",
        /* Version 3: full-text search over message text (FTS5, external
         * content: the text is stored once, in messages). Not kept up to date
         * by triggers: indexing in the insert doubled the CPU cost of a
         * received message. Appended messages are indexed later, in order of
         * seq, up to the meta "fts-seq" mark (store_index_pending(): when the
         * daemon is idle, and before every search); history prepended from
         * the archive (seq <= 0) is indexed as it is stored. */
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='seq',"
        "        tokenize='unicode61 remove_diacritics 2');"
        "INSERT INTO messages_fts (rowid, text) SELECT seq, text FROM messages WHERE seq <= 0 AND text IS NOT NULL;",
        /* Version 4: our messages the peer has not displayed yet, per
         * conversation. An XEP-0333 displayed marker covers every earlier
         * message too; this finds those without walking the history. Every
         * message passes through it briefly (sent -> delivered -> read). */
        "CREATE INDEX messages_unread_by_peer ON messages (conversation, seq) "
        "        WHERE direction = 1 AND status IN ('sent', 'delivered');",
        /* Version 5: media messages (image, video, audio, file): the URL and
         * what the sender said of the file. */
        "ALTER TABLE messages ADD COLUMN url TEXT;"
        "ALTER TABLE messages ADD COLUMN mime TEXT;"
        "ALTER TABLE messages ADD COLUMN name TEXT;"
        "ALTER TABLE messages ADD COLUMN size INTEGER;"
        "ALTER TABLE messages ADD COLUMN width INTEGER;"
        "ALTER TABLE messages ADD COLUMN height INTEGER;"
        "ALTER TABLE messages ADD COLUMN duration_ms INTEGER;",
        /* Version 6: where FetchMedia put a file in the cache directory. */
        "ALTER TABLE messages ADD COLUMN path TEXT;",
        /* Version 7: the outbox of actions (store-actions.c): retractions,
         * corrections and reactions the server has not acknowledged yet
         * (and since, displayed markers: kind is free text, so the kind
         * 'displayed' needed no migration).
         * It holds a handful of rows at most, so it has no index but its
         * keys: finding what an action supersedes reads them all. */
        "CREATE TABLE actions ("
        "        seq INTEGER PRIMARY KEY,"
        "        id TEXT NOT NULL UNIQUE,"
        "        conversation TEXT NOT NULL,"
        "        target TEXT NOT NULL,"
        "        kind TEXT NOT NULL,"
        "        payload TEXT);",
        /* Version 8: our messages with a file, by id: imd's copy of a file
         * it sends is outbox/<id>, and the outbox is checked against the
         * history at every opening (store_list_own_files()). Only our file
         * messages enter it: a text message's append does not pay for it. */
        "CREATE INDEX messages_own_files ON messages (id) WHERE direction = 1 AND path IS NOT NULL;",
        /* Version 9: unread counts recomputed from the messages. Before
         * e253c3e (schema version 7) a retraction left its message counted
         * as unread, and nothing but MarkRead lowers the counter, so such
         * a count stayed wrong for good, through every later upgrade.
         * Where the read mark was is not stored; what can be known:
         *  - an imd before e253c3e counted the newest `unread` appended
         *    (seq > 0) incoming messages, retracted ones included: of
         *    those, the ones not retracted are what the current rules
         *    count. Every history at version 6 or lower was last written
         *    by such an imd. At version 7 both kinds exist (c7a546b up to
         *    e253c3e, then up to 17f79f2), and nothing in the file tells
         *    them apart: they are counted as the older ones, whose counts
         *    are the wrong ones (a newer one that has a retracted message
         *    among its newest `unread` incoming ones loses it from the
         *    count). The steps run before user_version is set, so the
         *    version read here is the one the file had.
         *  - under the current rules unread never exceeds the appended
         *    incoming messages not retracted: every count is bounded by
         *    that, which changes none kept by those rules. */
        "UPDATE conversations SET unread = counted.n FROM ("
        "        SELECT i.conversation AS key, sum(i.revoked = 0) AS n FROM ("
        "                SELECT conversation, revoked,"
        "                        row_number() OVER (PARTITION BY conversation ORDER BY seq DESC) AS rank"
        "                FROM messages WHERE seq > 0 AND direction = 0"
        "                AND conversation IN (SELECT key FROM conversations WHERE unread > 0)) AS i"
        "        JOIN conversations AS c ON c.key = i.conversation AND i.rank <= c.unread"
        "        GROUP BY i.conversation) AS counted"
        "        WHERE conversations.key = counted.key"
        "        AND (SELECT user_version FROM pragma_user_version) <= 7;"
        "UPDATE conversations SET unread = min(unread, (SELECT count(*) FROM messages"
        "        WHERE conversation = conversations.key AND seq > 0 AND direction = 0 AND revoked = 0))"
        "        WHERE unread > 0;",
        /* Version 10: the id a message came with, when it is stored under
         * another: its sender gave an earlier, different message the same
         * id (see place_elsewhere() in store-append.c). Rare, so the index
         * is partial: an append pays a NULL column, not an index entry. */
        "ALTER TABLE messages ADD COLUMN wire_id TEXT;"
        "CREATE INDEX messages_wire_id ON messages (conversation, wire_id) WHERE wire_id IS NOT NULL;",
        /* Version 11: others' retractions, corrections and reactions that
         * wait for their message (store-actions.c): named by the id it came
         * with, found by it when such a message is stored. A thousand rows
         * at most; an append never reads it (the daemon knows the targets). */
        "CREATE TABLE waiting_actions ("
        "        seq INTEGER PRIMARY KEY,"
        "        conversation TEXT NOT NULL,"
        "        target TEXT NOT NULL,"
        "        kind TEXT NOT NULL,"
        "        outgoing INTEGER NOT NULL,"
        "        payload TEXT);"
        "CREATE INDEX waiting_actions_target ON waiting_actions (conversation, target);",
};

#define STORE_SCHEMA_VERSION ((int) G_N_ELEMENTS(migrations))

/* Names the tables of the layout before integer conversation keys take
 * while the current ones are built beside them. */
#define OLD_PREFIX "migrating_"

/* sql prepared and stepped to its first row, in *ret_st (to finalize). */
static int query_first_row(sqlite3 *db, const char *sql, sqlite3_stmt **ret_st) {
        sqlite3_stmt *st = NULL;
        int r;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return store_sqlite_fail(db, sql);
        if (sqlite3_step(st) != SQLITE_ROW) {
                r = store_sqlite_fail(db, sql);
                sqlite3_finalize(st);
                return r;
        }
        *ret_st = st;
        return 0;
}

static int query_int(sqlite3 *db, const char *sql, int *ret) {
        sqlite3_stmt *st = NULL;
        int r = query_first_row(db, sql, &st);

        if (r < 0)
                return r;
        *ret = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return 0;
}

/* The first column of sql's first row as text (NULL for SQL NULL). */
static int query_text(sqlite3 *db, const char *sql, char **ret) {
        sqlite3_stmt *st = NULL;
        int r = query_first_row(db, sql, &st);

        if (r < 0)
                return r;
        *ret = store_column_strdup(st, 0);
        sqlite3_finalize(st);
        return 0;
}

/* The first column of every row of sql. */
static int query_strv(sqlite3 *db, const char *sql, GPtrArray **ret) {
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        sqlite3_stmt *st = NULL;
        int r;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return store_sqlite_fail(db, sql);
        while ((r = sqlite3_step(st)) == SQLITE_ROW)
                g_ptr_array_add(names, store_column_strdup(st, 0));
        if (r != SQLITE_DONE) {
                r = store_sqlite_fail(db, sql);
                sqlite3_finalize(st);
                return r;
        }
        sqlite3_finalize(st);
        *ret = g_steal_pointer(&names);
        return 0;
}

static int exec_printf(sqlite3 *db, const char *fmt, ...) {
        va_list ap;
        char *sql;
        int r;

        va_start(ap, fmt);
        sql = sqlite3_vmprintf(fmt, ap);
        va_end(ap);
        if (!sql)
                return -ENOMEM;
        r = store_exec_sql(db, sql);
        sqlite3_free(sql);
        return r;
}

/*
 * The first commits (a602873, 2f32ec8, 4c5e15d) released a version 1 that
 * 9115e4d then changed in place: messages.conversation was the JID (TEXT),
 * conversations had the JID as its primary key and no integer key,
 * messages_stanza_id was unique over the whole history, and there was no
 * messages_unsent. Every imd since 9115e4d ran its later steps on such a
 * file and then failed to open it, and until the statements were checked
 * before the commit it also left the file stamped with its own version:
 * such a file can be at any version, with columns, indexes, the search
 * index and the actions table of the later steps, but never a row written
 * by a later imd (none could open it).
 *
 * Recognised by its columns, the file is rebuilt as the current layout at
 * its version: the old tables are set aside, steps 1 to version run anew,
 * and every row is copied back, each message with its conversation's new
 * key and whatever columns both layouts have. The steps after version then
 * run as for any other file. 1 if the file was converted, 0 if it did not
 * need to be.
 */
static int convert_text_keys(sqlite3 *db, int version) {
        g_autoptr(GPtrArray) indexes = NULL;
        g_autofree char *columns = NULL, *old_columns = NULL;
        int has_key, has_id, has_actions, same, r;

        if (version < 1)
                return 0;
        r = query_int(db, "SELECT count(*) FROM pragma_table_info('conversations') WHERE name = 'key'", &has_key);
        if (r < 0)
                return r;
        r = query_int(db, "SELECT count(*) FROM pragma_table_info('conversations') WHERE name = 'id'", &has_id);
        if (r < 0)
                return r;
        if (has_key || !has_id)
                return 0;

        g_debug("store: converting a history of version %d from before integer conversation keys", version);

        /* What the steps build on messages goes with the old table: the
         * indexes would keep their names, the search index is rebuilt. */
        r = query_strv(db, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages' "
                       "AND sql IS NOT NULL", &indexes);
        if (r < 0)
                return r;
        for (guint i = 0; i < indexes->len; i++) {
                r = exec_printf(db, "DROP INDEX \"%w\"", (const char *) g_ptr_array_index(indexes, i));
                if (r < 0)
                        return r;
        }
        r = query_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'actions'",
                      &has_actions);
        if (r < 0)
                return r;
        r = store_exec_sql(db,
                           "DROP TABLE IF EXISTS messages_fts;"
                           "ALTER TABLE conversations RENAME TO " OLD_PREFIX "conversations;"
                           "ALTER TABLE messages RENAME TO " OLD_PREFIX "messages;"
                           "ALTER TABLE meta RENAME TO " OLD_PREFIX "meta;");
        if (r < 0)
                return r;
        if (has_actions) {
                r = store_exec_sql(db, "ALTER TABLE actions RENAME TO " OLD_PREFIX "actions");
                if (r < 0)
                        return r;
        }

        for (int v = 0; v < version; v++) {
                r = store_exec_sql(db, migrations[v]);
                if (r < 0)
                        return r;
        }

        r = query_text(db,
                       "SELECT group_concat(printf('\"%w\"', name), ', ') FROM pragma_table_info('" OLD_PREFIX "messages') "
                       "WHERE name <> 'conversation' AND name IN (SELECT name FROM pragma_table_info('messages'))",
                       &columns);
        if (r < 0)
                return r;
        r = query_text(db,
                       "SELECT group_concat(printf('m.\"%w\"', name), ', ') FROM pragma_table_info('" OLD_PREFIX "messages') "
                       "WHERE name <> 'conversation' AND name IN (SELECT name FROM pragma_table_info('messages'))",
                       &old_columns);
        if (r < 0)
                return r;
        if (!columns || !old_columns) {
                g_debug("store: the old messages table has none of the current columns");
                return -EPROTO;
        }

        r = store_exec_sql(db,
                           "INSERT INTO meta (key, value) SELECT key, value FROM " OLD_PREFIX "meta;"
                           "INSERT INTO conversations (id, kind, name, unread, time_ms, last_seq) "
                           "        SELECT id, kind, name, unread, time_ms, last_seq FROM " OLD_PREFIX "conversations "
                           "        ORDER BY rowid;"
                           /* the old imd added the conversation with its first message, in
                            * the same transaction; should one be missing, its messages
                            * are kept all the same */
                           "INSERT INTO conversations (id, kind, name, unread, time_ms, last_seq) "
                           "        SELECT conversation, 'chat', '', 0, max(time_ms), max(seq) FROM " OLD_PREFIX "messages "
                           "        WHERE conversation NOT IN (SELECT id FROM conversations) GROUP BY conversation;");
        if (r < 0)
                return r;
        r = exec_printf(db,
                        "INSERT INTO messages (conversation, %s) SELECT c.key, %s "
                        "FROM " OLD_PREFIX "messages AS m JOIN conversations AS c ON c.id = m.conversation "
                        "ORDER BY m.seq",
                        columns, old_columns);
        if (r < 0)
                return r;
        if (has_actions) {
                r = store_exec_sql(db,
                                   "INSERT INTO actions (seq, id, conversation, target, kind, payload) "
                                   "SELECT seq, id, conversation, target, kind, payload FROM " OLD_PREFIX "actions;"
                                   "DROP TABLE " OLD_PREFIX "actions;");
                if (r < 0)
                        return r;
        }

        r = query_int(db,
                      "SELECT (SELECT count(*) FROM messages) = (SELECT count(*) FROM " OLD_PREFIX "messages) "
                      "AND (SELECT count(*) FROM meta) = (SELECT count(*) FROM " OLD_PREFIX "meta)",
                      &same);
        if (r < 0)
                return r;
        if (!same) {
                g_debug("store: converting the history would lose rows");
                return -EPROTO;
        }

        r = store_exec_sql(db,
                           "DROP TABLE " OLD_PREFIX "conversations;"
                           "DROP TABLE " OLD_PREFIX "messages;"
                           "DROP TABLE " OLD_PREFIX "meta;");
        if (r < 0)
                return r;

        /* Step 3 indexed the history prepended so far, and the rest is
         * indexed from the meta mark on: here the messages came after the
         * step, so the same is done now, from no mark. */
        if (version >= 3)
                r = store_exec_sql(db,
                                      "INSERT INTO messages_fts (rowid, text) "
                                      "SELECT seq, text FROM messages WHERE seq <= 0 AND text IS NOT NULL;"
                                      "DELETE FROM meta WHERE key = '" META_FTS_SEQ "';");
        if (r < 0)
                return r;
        return 1;
}

int store_migrate(sqlite3 *db) {
        g_autofree char *set_version = NULL;
        int version, converted, r;

        /* One transaction for all steps: a crash mid-way leaves the old version
         * intact (SQLite DDL is transactional), never a half-migrated schema. */
        r = store_exec_sql(db, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;

        r = query_int(db, "PRAGMA user_version", &version);
        if (r < 0)
                goto rollback;
        if (version < 0 || version > STORE_SCHEMA_VERSION) {
                g_debug("store: schema version %d is newer than %d, written by a newer imd?",
                        version, STORE_SCHEMA_VERSION);
                r = -EPROTO;
                goto rollback;
        }

        r = converted = convert_text_keys(db, version);
        if (r < 0)
                goto rollback;

        for (int v = version; v < STORE_SCHEMA_VERSION; v++) {
                g_debug("store: migrating schema from version %d to %d", v, v + 1);
                r = store_exec_sql(db, migrations[v]);
                if (r < 0)
                        goto rollback;
        }

        /* A schema the Store cannot use is not committed: the file keeps the
         * version it had, so that a later imd can still tell what it is. The
         * statements are compiled and thrown away (most are prepared only
         * when first used); a file already at this version that was not
         * converted has nothing to commit, and is not checked. */
        if (version < STORE_SCHEMA_VERSION || converted) {
                r = store_check_statements(db);
                if (r < 0) {
                        g_debug("store: the schema migrated from version %d does not fit this imd", version);
                        r = -EPROTO;
                        goto rollback;
                }
        }

        if (version < STORE_SCHEMA_VERSION) {
                set_version = g_strdup_printf("PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
                r = store_exec_sql(db, set_version);
                if (r < 0)
                        goto rollback;
        }

        r = store_exec_sql(db, "COMMIT");
        if (r < 0)
                goto rollback;
        return 0;

rollback:
        if (!sqlite3_get_autocommit(db))
                (void) store_exec_sql(db, "ROLLBACK");
        return r;
}
