/* SPDX-License-Identifier: MIT */
/*
 * The database itself: opening it, the SQL of every statement the Store
 * runs, transactions, the meta table, and freeing what the Store returns.
 * The schema and its migrations are store-migrate.c. What the Store does
 * with messages and conversations is in store-append.c, store-messages.c,
 * store-conversations.c and store-search.c; the outbox of actions is
 * store-actions.c.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <unistd.h>

#include "store-private.h"

#define STORE_FILE "history.sqlite"

/* Another imd (or a user's sqlite3 shell) may hold the write lock for a moment;
 * waiting a little is better than failing a write the user cares about. */
#define STORE_BUSY_TIMEOUT_MS 5000

/* See store_open(). */
#define STORE_PAGE_SIZE 4096
/* 16 MiB of WAL between checkpoints. A checkpoint copies each page once however
 * often it was rewritten since the last one, and the index pages an append
 * dirties are rewritten often: SQLite's default of 1000 pages made the
 * checkpoints about a quarter of an append's CPU. Replaying 16 MiB after a crash
 * takes milliseconds. */
#define STORE_WAL_CHECKPOINT_PAGES 8000
/* The WAL file keeps its size after a checkpoint (reusing it is cheaper than
 * growing it again); this bounds it if a reader held a checkpoint back. */
#define STORE_WAL_SIZE_LIMIT 25165824 /* 24 MiB */

/* Column order read by store_message_from_row(); CONV is the conversation's JID. */
#define MESSAGE_COLUMNS(conv) \
        "messages.seq, " conv ", messages.id, messages.sender, messages.stanza_id, " \
        "messages.direction, messages.time_ms, messages.type, messages.text, messages.status, " \
        "messages.data, messages.extension, messages.revoked, messages.edited, messages.reactions, " \
        "messages.url, messages.mime, messages.name, messages.size, messages.width, messages.height, " \
        "messages.duration_ms, messages.path, messages.wire_id"

/* The key of the conversation whose JID is ?1. */
#define CONVERSATION_KEY "(SELECT key FROM conversations WHERE id = ?1)"

/* Column order read by conversation_from_row(). */
#define CONVERSATION_SELECT \
        "SELECT c.id, c.kind, c.name, c.unread, c.time_ms, " MESSAGE_COLUMNS("c.id") " " \
        "FROM conversations AS c LEFT JOIN messages ON messages.seq = c.last_seq "

static const char *const statement_sql[_STMT_MAX] = {
        /* IMMEDIATE: take the write lock up front, so a batch never fails halfway
         * with SQLITE_BUSY when upgrading from a read lock. */
        [STMT_BEGIN]               = "BEGIN IMMEDIATE",
        [STMT_COMMIT]              = "COMMIT",
        [STMT_ROLLBACK]            = "ROLLBACK",
        [STMT_SAVEPOINT_NEST]      = "SAVEPOINT nest",
        [STMT_RELEASE_NEST]        = "RELEASE nest",
        [STMT_ROLLBACK_TO_NEST]    = "ROLLBACK TO nest",
        /* OR IGNORE: a duplicate is not an error but a row not inserted
         * (sqlite3_changes() == 0), which spares SQLite formatting an error
         * message. Only the UNIQUE constraints can be ignored: the NOT NULL
         * columns are checked before binding. */
        [STMT_INSERT_MESSAGE]      =
                "INSERT OR IGNORE INTO messages (conversation, id, sender, stanza_id, direction, time_ms, type, text, status, "
                "data, extension, url, mime, name, size, width, height, duration_ms, path) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        [STMT_CONVERSATION_KEY]    = "SELECT key FROM conversations WHERE id = ?1",
        [STMT_INSERT_CONVERSATION] =
                "INSERT INTO conversations (id, kind, name, unread, time_ms) VALUES (?1, 'chat', '', 0, ?2)",
        /* ?3, ?4: the time and seq of the batch's newest message (by time).
         * The conversation's time is that of its newest message and its last
         * message is that one, so the two always agree: a message with an
         * older stamp stored later (offline storage, archive catch-up) must
         * neither sink the conversation below less recent ones nor show as
         * its latest news. Of equal times the one stored later wins, as in
         * STMT_LIST_CONVERSATIONS. Server stamps are often whole seconds, so
         * a delayed message from the same second as a live one stored before
         * it may stay behind it; to the second, the time is right. (The
         * history itself, GetMessages, stays in the order of storing: seq.) */
        [STMT_UPDATE_CONVERSATION] =
                "UPDATE conversations SET unread = unread + ?2, "
                "time_ms = CASE WHEN ?3 >= time_ms OR last_seq IS NULL THEN ?3 ELSE time_ms END, "
                "last_seq = CASE WHEN ?3 >= time_ms OR last_seq IS NULL THEN ?4 ELSE last_seq END "
                "WHERE key = ?1",
        [STMT_GET_MESSAGE]         =
                "SELECT " MESSAGE_COLUMNS("?1") " FROM messages "
                "WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        /* The newest message that came with id ?2: stored under it, or under
         * another id (wire_id). Each lookup searches a unique or partial
         * index; max() of several arguments is NULL if one is, hence the
         * coalesce() to the smallest seq. */
        [STMT_GET_MESSAGE_BY_WIRE_ID] =
                "SELECT " MESSAGE_COLUMNS("?1") " FROM messages WHERE seq = max("
                "coalesce((SELECT seq FROM messages WHERE conversation = " CONVERSATION_KEY " AND id = ?2), "
                "-9223372036854775808), "
                "coalesce((SELECT max(seq) FROM messages WHERE conversation = " CONVERSATION_KEY " AND wire_id = ?2), "
                "-9223372036854775808))",
        /* The message the server gave stanza-id ?2, whatever its id. */
        [STMT_GET_MESSAGE_BY_STANZA_ID] =
                "SELECT " MESSAGE_COLUMNS("?1") " FROM messages "
                "WHERE conversation = " CONVERSATION_KEY " AND stanza_id = ?2",
        [STMT_GET_SEQ]             =
                "SELECT seq FROM messages WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        [STMT_GET_MESSAGES]        =
                "SELECT " MESSAGE_COLUMNS("?1") " FROM messages "
                "WHERE conversation = " CONVERSATION_KEY " AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        /* The content goes; the row stays, so the conversation keeps its place
         * and a copy arriving later (archive) is still a duplicate. */
        [STMT_REVOKE]              =
                "UPDATE messages SET revoked = 1, text = NULL, data = NULL, extension = NULL, "
                /* a file that never went up: its copy goes with the revoke */
                "path = CASE WHEN url IS NULL THEN NULL ELSE path END "
                "WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        /* The retracted message ?2 (a seq), if it still counted as unread,
         * counts no more. unread counts the incoming messages appended since
         * the last MarkRead (prepended history, seq < 0, never counts) less
         * those retracted since: so the unread ones are the newest `unread`
         * appended incoming messages not revoked, and ?2 is one of them when
         * there is no `unread`-th such message after it. Looking for that
         * one (not counting them all) bounds the walk when an old message is
         * retracted. Run before ?2 is marked revoked. */
        [STMT_FORGET_UNREAD]       =
                "UPDATE conversations SET unread = unread - 1 "
                "WHERE id = ?1 AND unread > 0 AND ?2 > 0 "
                "AND EXISTS (SELECT 1 FROM messages WHERE seq = ?2 AND direction = 0 AND revoked = 0) "
                "AND (SELECT seq FROM messages WHERE conversation = " CONVERSATION_KEY " AND seq > ?2 "
                "AND direction = 0 AND revoked = 0 "
                "ORDER BY seq LIMIT 1 OFFSET (SELECT unread FROM conversations WHERE id = ?1) - 1) IS NULL",
        [STMT_EDIT]                =
                "UPDATE messages SET text = ?3, edited = 1 "
                "WHERE conversation = " CONVERSATION_KEY " AND id = ?2 AND revoked = 0",
        [STMT_INSERT_MESSAGE_AT]   =
                "INSERT OR IGNORE INTO messages (conversation, id, sender, stanza_id, direction, time_ms, type, text, status, "
                "data, extension, seq, url, mime, name, size, width, height, duration_ms, path) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        /* An insert of message (?1 a conversation's key, ?2 its id, ?3 its
         * stanza-id) was ignored: a row if that is because an earlier message
         * has its id while its stanza-id is new and differs from the earlier
         * one's, i.e. the server took them for two messages (see
         * place_elsewhere() in store-append.c). */
        [STMT_ID_REUSED]           =
                "SELECT 1 FROM messages WHERE conversation = ?1 AND id = ?2 "
                "AND stanza_id IS NOT NULL AND stanza_id <> ?3 "
                "AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation = ?1 AND stanza_id = ?3)",
        [STMT_SET_WIRE_ID]         = "UPDATE messages SET wire_id = ?2 WHERE seq = ?1",
        [STMT_FIRST_SEQ]           = "SELECT coalesce(min(seq), 1) FROM messages",
        /* A conversation that only has older messages takes the newest of them as its last. */
        [STMT_ADOPT_LAST]          =
                "UPDATE conversations SET last_seq = ?2, time_ms = ?3 WHERE key = ?1 AND last_seq IS NULL",
        [STMT_OLDEST]              =
                "SELECT " MESSAGE_COLUMNS("?1") " FROM messages "
                "WHERE conversation = " CONVERSATION_KEY " ORDER BY seq LIMIT 1",
        [STMT_OLDEST_ARCHIVED]     =
                "SELECT " MESSAGE_COLUMNS("?1") " FROM messages "
                "WHERE conversation = " CONVERSATION_KEY " AND stanza_id IS NOT NULL ORDER BY seq LIMIT 1",
        [STMT_SEARCH]              =
                "SELECT " MESSAGE_COLUMNS("c.id") " FROM messages_fts "
                "JOIN messages ON messages.seq = messages_fts.rowid "
                "JOIN conversations AS c ON c.key = messages.conversation "
                "WHERE messages_fts MATCH ?1 AND (?2 IS NULL OR c.id = ?2) "
                "ORDER BY messages.seq DESC LIMIT ?3",
        [STMT_FTS_INSERT]          = "INSERT INTO messages_fts (rowid, text) VALUES (?1, ?2)",
        /* external content: the index is told the old text it must forget */
        [STMT_FTS_DELETE]          = "INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', ?1, ?2)",
        [STMT_FTS_NEXT_BOUND]      =
                "SELECT max(seq) FROM (SELECT seq FROM messages WHERE seq > ?1 ORDER BY seq LIMIT ?2)",
        [STMT_FTS_CATCH_UP]        =
                "INSERT INTO messages_fts (rowid, text) "
                "SELECT seq, text FROM messages WHERE seq > ?1 AND seq <= ?2 AND text IS NOT NULL",
        [STMT_GET_TEXT]            =
                "SELECT seq, text FROM messages WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        [STMT_READ_BY_PEER]        =
                "UPDATE messages INDEXED BY messages_unread_by_peer SET status = 'read' "
                "WHERE conversation = " CONVERSATION_KEY " AND seq < ?2 AND direction = 1 "
                "AND status IN ('sent', 'delivered') RETURNING id",
        [STMT_SET_PATH]            =
                "UPDATE messages SET path = ?3 WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        [STMT_SET_UPLOADED]        =
                "UPDATE messages SET url = ?3, path = ?4 WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        [STMT_SET_CONVERSATION_NAME] =
                "UPDATE conversations SET name = ?2 WHERE id = ?1 AND name IS NOT ?2",
        [STMT_SET_REACTIONS]       =
                "UPDATE messages SET reactions = ?3 WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        [STMT_SET_STATUS]          =
                "UPDATE messages SET status = ?3 WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        [STMT_LIST_CONVERSATIONS]  =
                CONVERSATION_SELECT "ORDER BY c.time_ms DESC, c.last_seq DESC",
        [STMT_GET_CONVERSATION]    =
                CONVERSATION_SELECT "WHERE c.id = ?1",
        [STMT_LAST_INCOMING]       =
                "SELECT coalesce(wire_id, id) FROM messages WHERE conversation = " CONVERSATION_KEY " AND direction = 0 "
                "ORDER BY seq DESC LIMIT 1",
        [STMT_CLEAR_UNREAD]        = "UPDATE conversations SET unread = 0 WHERE id = ?1",
        [STMT_UNREAD_TOTAL]        = "SELECT coalesce(sum(unread), 0) FROM conversations",
        [STMT_LIST_UNSENT]         =
                "SELECT " MESSAGE_COLUMNS("c.id") " FROM messages INDEXED BY messages_unsent "
                "JOIN conversations AS c ON c.key = messages.conversation "
                "WHERE messages.direction = 1 AND messages.status = 'pending' AND messages.revoked = 0 "
                "ORDER BY messages.seq",
        [STMT_LIST_OWN_FILES]      =
                "SELECT " MESSAGE_COLUMNS("c.id") " FROM messages INDEXED BY messages_own_files "
                "JOIN conversations AS c ON c.key = messages.conversation "
                "WHERE messages.id = ?1 AND messages.direction = 1 AND messages.path IS NOT NULL",
        [STMT_MESSAGES_AFTER]      =
                "SELECT " MESSAGE_COLUMNS("c.id") " FROM messages "
                "JOIN conversations AS c ON c.key = messages.conversation "
                "WHERE messages.seq > ?1 ORDER BY messages.seq LIMIT ?2",
        [STMT_LAST_SEQ]            = "SELECT coalesce(max(seq), 0) FROM messages",
        [STMT_QUEUE_ACTION]        =
                "INSERT INTO actions (id, conversation, target, kind, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
        /* a retraction makes every other action on the message pointless;
         * a correction or a set of reactions, the earlier ones of its kind;
         * a displayed marker, the earlier one of the conversation (it covers
         * every earlier message), and only a marker replaces a marker */
        [STMT_SUPERSEDE_ACTIONS]   =
                "DELETE FROM actions WHERE conversation = ?1 AND "
                "CASE WHEN ?3 = 'displayed' THEN kind = 'displayed' "
                "ELSE kind <> 'displayed' AND target = ?2 AND (kind = ?3 OR ?3 = 'retract') END",
        [STMT_ACTION_DONE]         = "DELETE FROM actions WHERE id = ?1",
        [STMT_LIST_ACTIONS]        = "SELECT id, conversation, target, kind, payload FROM actions ORDER BY seq",
        [STMT_KEEP_WAITING]        =
                "INSERT INTO waiting_actions (conversation, target, kind, outgoing, payload) "
                "VALUES (?1, ?2, ?3, ?4, ?5)",
        [STMT_KEEP_WAITING_OLDER]  =
                "INSERT INTO waiting_actions (seq, conversation, target, kind, outgoing, payload) "
                "VALUES ((SELECT coalesce(min(seq), 1) - 1 FROM waiting_actions), ?1, ?2, ?3, ?4, ?5)",
        /* every one older than the newest STORE_WAITING_ACTIONS_MAX: a walk
         * of at most that many rowids */
        [STMT_TRIM_WAITING]        =
                "DELETE FROM waiting_actions WHERE seq < (SELECT seq FROM waiting_actions ORDER BY seq DESC "
                "LIMIT 1 OFFSET ?1 - 1) RETURNING seq, conversation, target, kind, outgoing, payload",
        [STMT_LIST_WAITING]        =
                "SELECT seq, conversation, target, kind, outgoing, payload FROM waiting_actions "
                "WHERE conversation = ?1 AND target = ?2 ORDER BY seq",
        [STMT_LIST_ALL_WAITING]    =
                "SELECT seq, conversation, target, kind, outgoing, payload FROM waiting_actions ORDER BY seq",
        [STMT_DROP_WAITING]        = "DELETE FROM waiting_actions WHERE conversation = ?1 AND target = ?2",
        [STMT_GET_META]            = "SELECT value FROM meta WHERE key = ?1",
        [STMT_SET_META]            =
                "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [STMT_DELETE_META]         = "DELETE FROM meta WHERE key = ?1",
};

int store_sqlite_fail(sqlite3 *db, const char *what) {
        g_debug("store: %s: %s (%d)", what, db ? sqlite3_errmsg(db) : "out of memory",
                db ? sqlite3_extended_errcode(db) : SQLITE_NOMEM);
        return -EIO;
}

/* Prepared by store_open(), and used through store->stmt[] directly: the
 * statements of an append, whose first message should not wait for SQL to be
 * compiled. The others are prepared on first use (store_stmt()): a compiled
 * statement holds 2-8 KiB of heap (the message selects most), 200 KiB for all
 * of them, and a session that is only logged in uses a handful. */
static const StoreStatement append_statements[] = {
        STMT_BEGIN, STMT_COMMIT, STMT_ROLLBACK,
        STMT_SAVEPOINT_NEST, STMT_RELEASE_NEST, STMT_ROLLBACK_TO_NEST,
        STMT_CONVERSATION_KEY, STMT_INSERT_CONVERSATION, STMT_UPDATE_CONVERSATION,
        STMT_INSERT_MESSAGE, STMT_INSERT_MESSAGE_AT,
};

sqlite3_stmt *store_stmt(Store *store, StoreStatement id) {
        /* On failure (out of memory) the caller gets NULL, which sqlite3_bind_*()
         * and sqlite3_step() refuse with SQLITE_MISUSE: its usual error path. */
        if (!store->stmt[id] &&
            sqlite3_prepare_v3(store->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                               &store->stmt[id], NULL) != SQLITE_OK)
                (void) store_sqlite_fail(store->db, statement_sql[id]);
        return store->stmt[id];
}

int store_check_statements(sqlite3 *db) {
        for (size_t i = 0; i < _STMT_MAX; i++) {
                sqlite3_stmt *st = NULL;

                if (sqlite3_prepare_v2(db, statement_sql[i], -1, &st, NULL) != SQLITE_OK)
                        return store_sqlite_fail(db, statement_sql[i]);
                sqlite3_finalize(st);
        }
        return 0;
}

int store_fail(Store *store, StoreStatement id) {
        /* not prepared: store_stmt() logged why, and the step's MISUSE says nothing */
        if (!store->stmt[id])
                return -EIO;
        return store_sqlite_fail(store->db, statement_sql[id]);
}

static int stmt_run(Store *store, StoreStatement id) {
        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, id);

        if (sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, id);
        return 0;
}

int store_bind_text(sqlite3_stmt *st, int i, const char *s) {
        /* The strings outlive the statement's use, so SQLite need not copy them. */
        return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

char *store_column_strdup(sqlite3_stmt *st, int i) {
        const unsigned char *s;

        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        s = sqlite3_column_text(st, i);
        return g_strndup((const char *) s, (gsize) sqlite3_column_bytes(st, i));
}

bool store_valid_key(const char *s) {
        return s && *s && g_utf8_validate(s, -1, NULL);
}

bool store_valid_optional(const char *s) {
        return !s || g_utf8_validate(s, -1, NULL);
}

bool store_direction_valid(StoreDirection d) {
        switch (d) {
        case STORE_DIRECTION_IN:
        case STORE_DIRECTION_OUT:
                return true;
        }
        return false;
}

/* SQLite rolls a transaction back by itself after some errors (I/O, full disk,
 * out of memory). Inside a batch that must not go unnoticed, or the rest of the
 * batch would silently run as separate autocommitted writes. */
int store_check_transaction(Store *store) {
        if (store->nesting > 0 && sqlite3_get_autocommit(store->db)) {
                g_debug("store: transaction was rolled back by SQLite after an error");
                return -EIO;
        }
        return 0;
}

int store_exec_sql(sqlite3 *db, const char *sql) {
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
                return store_sqlite_fail(db, sql);
        return 0;
}

static int store_set_journal_mode(sqlite3 *db) {
        static const char sql[] = "PRAGMA journal_mode = WAL";
        sqlite3_stmt *st = NULL;
        const char *mode;
        int r = 0;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return store_sqlite_fail(db, sql);
        if (sqlite3_step(st) != SQLITE_ROW)
                r = store_sqlite_fail(db, sql);
        else {
                /* SQLite answers with the mode it kept when it cannot switch
                 * (e.g. no shared memory on the file system): refuse rather than
                 * silently losing the WAL guarantees. */
                mode = (const char *) sqlite3_column_text(st, 0);
                if (!mode || g_ascii_strcasecmp(mode, "wal") != 0) {
                        g_debug("store: journal mode is %s, not wal", mode ? mode : "(null)");
                        r = -EIO;
                }
        }
        sqlite3_finalize(st);
        return r;
}

/* Process-wide settings, which SQLite accepts only before its first use
 * (later calls fail with SQLITE_MISUSE, harmlessly):
 *  - memory statistics cost a mutex and a malloc_usable_size() on every one
 *    of SQLite's allocations (a dozen per stored message: Debian builds SQLite
 *    without lookaside), and imd never reads them;
 *  - the page cache otherwise starts with one 87 KiB block for 20 pages,
 *    filled or not; without it pages come one at a time, as they are read. */
static void configure_sqlite(void) {
        static gsize done = 0;

        if (g_once_init_enter(&done)) {
                (void) sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
                (void) sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
                g_once_init_leave(&done, 1);
        }
}

int store_open(const char *dir, Store **ret) {
        g_autoptr(Store) store = NULL;
        g_autofree char *path = NULL;
        int fd, r;

        if (!dir || !ret)
                return -EINVAL;

        path = g_build_filename(dir, STORE_FILE, NULL);

        /* SQLite would create the file as 0644 & ~umask; history is private. SQLite
         * then gives -wal and -shm the mode of the database file. */
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        (void) close(fd);

        configure_sqlite();
        store = g_new0(Store, 1);

        /* No SQLITE_OPEN_CREATE: the file exists now, and if it vanished in
         * between we would rather fail than create it with the wrong mode.
         * NOMUTEX: a Store belongs to the main loop's thread, so SQLite's
         * per-call locking would only cost time on every append. */
        if (sqlite3_open_v2(path, &store->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK)
                return store_sqlite_fail(store->db, path);

        /* Extended codes make the debug messages of failures precise. */
        sqlite3_extended_result_codes(store->db, 1);
        sqlite3_busy_timeout(store->db, STORE_BUSY_TIMEOUT_MS);
        /* Nothing here needs to write the schema behind SQLite's back. */
        sqlite3_db_config(store->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);

        /* Only takes effect while the file is empty, i.e. when it is created.
         * SQLite writes each WAL frame with its own system calls, so in the
         * daemon smaller pages (more frames per commit) measured slower; 4096,
         * the kernel's page, is also SQLite's default. */
        r = store_exec_sql(store->db, "PRAGMA page_size = " G_STRINGIFY(STORE_PAGE_SIZE));
        if (r < 0)
                return r;
        r = store_set_journal_mode(store->db);
        if (r < 0)
                return r;

        /* In WAL mode a commit is complete once its frames are write()n to the
         * -wal file. From then on the data is in the kernel's hands and survives
         * the process crashing or being killed with SIGKILL, which is what the
         * daemon promises. NORMAL only skips the fsync() per commit (the WAL is
         * synced at checkpoints), so an OS crash or power cut may lose the last
         * commits but never corrupts the database. FULL would add an fsync()
         * per batch, costing far more than the batch itself. */
        r = store_exec_sql(store->db, "PRAGMA synchronous = NORMAL");
        if (r < 0)
                return r;
        /* Reading pages through a mapping instead of pread() copies saves CPU on
         * every insert (index lookups) and page; 64 MiB of address space, not RSS. */
        r = store_exec_sql(store->db, "PRAGMA mmap_size = 67108864");
        if (r < 0)
                return r;
        r = store_exec_sql(store->db, "PRAGMA wal_autocheckpoint = " G_STRINGIFY(STORE_WAL_CHECKPOINT_PAGES));
        if (r < 0)
                return r;
        r = store_exec_sql(store->db, "PRAGMA journal_size_limit = " G_STRINGIFY(STORE_WAL_SIZE_LIMIT));
        if (r < 0)
                return r;

        r = store_migrate(store->db);
        if (r < 0)
                return r;

        for (size_t i = 0; i < G_N_ELEMENTS(append_statements); i++) {
                StoreStatement id = append_statements[i];
                if (sqlite3_prepare_v3(store->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                       &store->stmt[id], NULL) != SQLITE_OK)
                        return store_sqlite_fail(store->db, statement_sql[id]);
        }
        {
                g_autofree char *mark = NULL;
                gint64 v = 0;
                r = store_get_meta(store, META_FTS_SEQ, &mark);
                if (r < 0)
                        return r;
                if (mark && g_ascii_string_to_signed(mark, 10, 0, G_MAXINT64, &v, NULL))
                        store->fts_seq = v;
        }
        r = store_refresh_seq_floor(store);
        if (r < 0)
                return r;

        *ret = g_steal_pointer(&store);
        return 0;
}

void store_close(Store *store) {
        if (!store)
                return;

        for (size_t i = 0; i < _STMT_MAX; i++)
                sqlite3_finalize(store->stmt[i]);
        /* Closing rolls back a batch still open: store_commit() was never called,
         * so none of it was promised to anyone. */
        sqlite3_close_v2(store->db);
        g_free(store);
}

int store_begin(Store *store) {
        int r;

        if (!store || store->nesting == UINT_MAX)
                return -EINVAL;

        r = store_check_transaction(store);
        if (r < 0)
                return r;

        /* Inner levels are savepoints, so an inner rollback undoes only its part. */
        r = stmt_run(store, store->nesting == 0 ? STMT_BEGIN : STMT_SAVEPOINT_NEST);
        if (r < 0)
                return r;

        store->nesting++;
        return 0;
}

/* What the Store keeps of the history's state may describe writes that were
 * just undone: it is looked at again before it is used. */
static void store_undone(Store *store) {
        store->seq_floor_stale = true;
}

int store_commit(Store *store) {
        int r;

        if (!store || store->nesting == 0)
                return -EINVAL;

        store->nesting--;

        if (sqlite3_get_autocommit(store->db)) {
                g_debug("store: commit of a transaction SQLite already rolled back");
                store_undone(store);
                return -EIO;
        }

        if (store->nesting > 0)
                r = stmt_run(store, STMT_RELEASE_NEST);
        else {
                r = stmt_run(store, STMT_COMMIT);
                /* A failed COMMIT may leave the transaction open; the next
                 * write would then silently join it instead of being
                 * committed. */
                if (r < 0 && !sqlite3_get_autocommit(store->db))
                        (void) stmt_run(store, STMT_ROLLBACK);
        }
        /* A failed RELEASE or COMMIT may or may not have undone the writes:
         * assume it did, as after a failed step and its rollback. */
        if (r < 0)
                store_undone(store);
        return r;
}

int store_rollback(Store *store) {
        int r;

        if (!store || store->nesting == 0)
                return -EINVAL;

        store->nesting--;
        store_undone(store);

        /* Already rolled back by SQLite after an error: nothing left to undo. */
        if (sqlite3_get_autocommit(store->db))
                return 0;

        if (store->nesting == 0)
                return stmt_run(store, STMT_ROLLBACK);

        /* ROLLBACK TO keeps the savepoint open; RELEASE pops it. */
        r = stmt_run(store, STMT_ROLLBACK_TO_NEST);
        if (r < 0)
                return r;
        return stmt_run(store, STMT_RELEASE_NEST);
}

int store_get_meta(Store *store, const char *key, char **ret) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !key || !ret)
                return -EINVAL;

        st = store_stmt(store, STMT_GET_META);
        if (store_bind_text(st, 1, key) != SQLITE_OK)
                return store_fail(store, STMT_GET_META);

        r = sqlite3_step(st);
        if (r == SQLITE_DONE) {
                *ret = NULL;
                return 0;
        }
        if (r != SQLITE_ROW)
                return store_fail(store, STMT_GET_META);

        *ret = store_column_strdup(st, 0);
        return 0;
}

int store_set_meta(Store *store, const char *key, const char *value) {
        StoreStatement id = value ? STMT_SET_META : STMT_DELETE_META;
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !store_valid_key(key) || !store_valid_optional(value))
                return -EINVAL;

        r = store_check_transaction(store);
        if (r < 0)
                return r;

        st = store_stmt(store, id);
        if (store_bind_text(st, 1, key) != SQLITE_OK ||
            (value && store_bind_text(st, 2, value) != SQLITE_OK))
                return store_fail(store, id);

        if (sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, id);
        return 0;
}

int store_explain(Store *store, char **ret) {
        g_autoptr(GString) plan = NULL;

        if (!store || !ret)
                return -EINVAL;

        plan = g_string_new(NULL);
        for (size_t i = 0; i < _STMT_MAX; i++) {
                g_autofree char *sql = g_strconcat("EXPLAIN QUERY PLAN ", statement_sql[i], NULL);
                sqlite3_stmt *st = NULL;
                int r;

                if (sqlite3_prepare_v2(store->db, sql, -1, &st, NULL) != SQLITE_OK)
                        return store_sqlite_fail(store->db, sql);

                g_string_append_printf(plan, "%s\n", statement_sql[i]);
                while ((r = sqlite3_step(st)) == SQLITE_ROW)
                        g_string_append_printf(plan, "\t%s\n", (const char *) sqlite3_column_text(st, 3));
                sqlite3_finalize(st);
                if (r != SQLITE_DONE)
                        return store_sqlite_fail(store->db, sql);
        }

        *ret = g_string_free(g_steal_pointer(&plan), false);
        return 0;
}

StoreMessage *store_message_copy(const StoreMessage *msg) {
        StoreMessage *m;

        if (!msg)
                return NULL;

        m = g_new0(StoreMessage, 1);
        m->seq = msg->seq;
        m->id = g_strdup(msg->id);
        m->conversation = g_strdup(msg->conversation);
        m->sender = g_strdup(msg->sender);
        m->stanza_id = g_strdup(msg->stanza_id);
        m->direction = msg->direction;
        m->time_ms = msg->time_ms;
        m->type = g_strdup(msg->type);
        m->text = g_strdup(msg->text);
        m->status = g_strdup(msg->status);
        m->data = g_strdup(msg->data);
        m->extension = g_strdup(msg->extension);
        m->revoked = msg->revoked;
        m->edited = msg->edited;
        m->reactions = g_strdup(msg->reactions);
        m->url = g_strdup(msg->url);
        m->mime = g_strdup(msg->mime);
        m->name = g_strdup(msg->name);
        m->size = msg->size;
        m->width = msg->width;
        m->height = msg->height;
        m->duration_ms = msg->duration_ms;
        m->path = g_strdup(msg->path);
        m->wire_id = g_strdup(msg->wire_id);
        return m;
}

void store_message_free(StoreMessage *msg) {
        if (!msg)
                return;

        g_free(msg->id);
        g_free(msg->conversation);
        g_free(msg->sender);
        g_free(msg->stanza_id);
        g_free(msg->type);
        g_free(msg->text);
        g_free(msg->status);
        g_free(msg->data);
        g_free(msg->extension);
        g_free(msg->reactions);
        g_free(msg->url);
        g_free(msg->mime);
        g_free(msg->name);
        g_free(msg->path);
        g_free(msg->wire_id);
        g_free(msg);
}

void store_conversation_free(StoreConversation *conv) {
        if (!conv)
                return;

        g_free(conv->id);
        g_free(conv->kind);
        g_free(conv->name);
        store_message_free(conv->last);
        g_free(conv);
}

const char *store_direction_to_string(StoreDirection d) {
        switch (d) {
        case STORE_DIRECTION_IN:
                return "in";
        case STORE_DIRECTION_OUT:
                return "out";
        }
        return NULL;
}
