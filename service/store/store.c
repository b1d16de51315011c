/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <string.h>
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
};

#define STORE_SCHEMA_VERSION ((int) G_N_ELEMENTS(migrations))


/* Column order read by store_message_from_row(); CONV is the conversation's JID. */
#define MESSAGE_COLUMNS(conv) \
        "messages.seq, " conv ", messages.id, messages.sender, messages.stanza_id, " \
        "messages.direction, messages.time_ms, messages.type, messages.text, messages.status, " \
        "messages.data, messages.extension, messages.revoked, messages.edited, messages.reactions, " \
        "messages.url, messages.mime, messages.name, messages.size, messages.width, messages.height, " \
        "messages.duration_ms, messages.path"

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
        [STMT_UPDATE_CONVERSATION] =
                "UPDATE conversations SET unread = unread + ?2, time_ms = ?3, last_seq = ?4 WHERE key = ?1",
        [STMT_GET_MESSAGE]         =
                "SELECT " MESSAGE_COLUMNS("?1") " FROM messages "
                "WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        [STMT_GET_SEQ]             =
                "SELECT seq FROM messages WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        [STMT_GET_MESSAGES]        =
                "SELECT " MESSAGE_COLUMNS("?1") " FROM messages "
                "WHERE conversation = " CONVERSATION_KEY " AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        /* The content goes; the row stays, so the conversation keeps its place
         * and a copy arriving later (archive) is still a duplicate. */
        [STMT_REVOKE]              =
                "UPDATE messages SET revoked = 1, text = NULL, data = NULL, extension = NULL "
                "WHERE conversation = " CONVERSATION_KEY " AND id = ?2",
        [STMT_EDIT]                =
                "UPDATE messages SET text = ?3, edited = 1 "
                "WHERE conversation = " CONVERSATION_KEY " AND id = ?2 AND revoked = 0",
        [STMT_INSERT_MESSAGE_AT]   =
                "INSERT OR IGNORE INTO messages (conversation, id, sender, stanza_id, direction, time_ms, type, text, status, "
                "data, extension, seq, url, mime, name, size, width, height, duration_ms, path) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        [STMT_FIRST_SEQ]           = "SELECT coalesce(min(seq), 1) FROM messages",
        /* A conversation that only has older messages takes the newest of them as its last. */
        [STMT_ADOPT_LAST]          =
                "UPDATE conversations SET last_seq = ?2, time_ms = ?3 WHERE key = ?1 AND last_seq IS NULL",
        [STMT_OLDEST]              =
                "SELECT " MESSAGE_COLUMNS("?1") " FROM messages "
                "WHERE conversation = " CONVERSATION_KEY " ORDER BY seq LIMIT 1",
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
                "SELECT id FROM messages WHERE conversation = " CONVERSATION_KEY " AND direction = 0 "
                "ORDER BY seq DESC LIMIT 1",
        [STMT_CLEAR_UNREAD]        = "UPDATE conversations SET unread = 0 WHERE id = ?1",
        [STMT_UNREAD_TOTAL]        = "SELECT coalesce(sum(unread), 0) FROM conversations",
        [STMT_LIST_UNSENT]         =
                "SELECT " MESSAGE_COLUMNS("c.id") " FROM messages INDEXED BY messages_unsent "
                "JOIN conversations AS c ON c.key = messages.conversation "
                "WHERE messages.direction = 1 AND messages.status = 'pending' AND messages.revoked = 0 "
                "ORDER BY messages.seq",
        [STMT_MESSAGES_AFTER]      =
                "SELECT " MESSAGE_COLUMNS("c.id") " FROM messages "
                "JOIN conversations AS c ON c.key = messages.conversation "
                "WHERE messages.seq > ?1 ORDER BY messages.seq LIMIT ?2",
        [STMT_LAST_SEQ]            = "SELECT coalesce(max(seq), 0) FROM messages",
        [STMT_GET_META]            = "SELECT value FROM meta WHERE key = ?1",
        [STMT_SET_META]            =
                "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [STMT_DELETE_META]         = "DELETE FROM meta WHERE key = ?1",
};



static int sqlite_fail(sqlite3 *db, const char *what) {
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
                (void) sqlite_fail(store->db, statement_sql[id]);
        return store->stmt[id];
}

int store_fail(Store *store, StoreStatement id) {
        /* not prepared: store_stmt() logged why, and the step's MISUSE says nothing */
        if (!store->stmt[id])
                return -EIO;
        return sqlite_fail(store->db, statement_sql[id]);
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

static char *column_strdup(sqlite3_stmt *st, int i) {
        const unsigned char *s;

        if (sqlite3_column_type(st, i) == SQLITE_NULL)
                return NULL;
        s = sqlite3_column_text(st, i);
        return g_strndup((const char *) s, (gsize) sqlite3_column_bytes(st, i));
}

static bool valid_key(const char *s) {
        return s && *s && g_utf8_validate(s, -1, NULL);
}

bool store_valid_optional(const char *s) {
        return !s || g_utf8_validate(s, -1, NULL);
}

/* SQLite rolls a transaction back by itself after some errors (I/O, full disk,
 * out of memory). Inside a batch that must not go unnoticed, or the rest of the
 * batch would silently run as separate autocommitted writes. */
static int store_check_transaction(Store *store) {
        if (store->nesting > 0 && sqlite3_get_autocommit(store->db)) {
                g_debug("store: transaction was rolled back by SQLite after an error");
                return -EIO;
        }
        return 0;
}

static int exec_sql(sqlite3 *db, const char *sql) {
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
                return sqlite_fail(db, sql);
        return 0;
}

static int query_int(sqlite3 *db, const char *sql, int *ret) {
        sqlite3_stmt *st = NULL;
        int r;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return sqlite_fail(db, sql);
        if (sqlite3_step(st) != SQLITE_ROW) {
                r = sqlite_fail(db, sql);
                sqlite3_finalize(st);
                return r;
        }
        *ret = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        return 0;
}

static int store_set_journal_mode(sqlite3 *db) {
        static const char sql[] = "PRAGMA journal_mode = WAL";
        sqlite3_stmt *st = NULL;
        const char *mode;
        int r = 0;

        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                return sqlite_fail(db, sql);
        if (sqlite3_step(st) != SQLITE_ROW)
                r = sqlite_fail(db, sql);
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

static int store_migrate(sqlite3 *db) {
        g_autofree char *set_version = NULL;
        int version, r;

        /* One transaction for all steps: a crash mid-way leaves the old version
         * intact (SQLite DDL is transactional), never a half-migrated schema. */
        r = exec_sql(db, "BEGIN IMMEDIATE");
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

        for (int v = version; v < STORE_SCHEMA_VERSION; v++) {
                g_debug("store: migrating schema from version %d to %d", v, v + 1);
                r = exec_sql(db, migrations[v]);
                if (r < 0)
                        goto rollback;
        }

        if (version < STORE_SCHEMA_VERSION) {
                set_version = g_strdup_printf("PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
                r = exec_sql(db, set_version);
                if (r < 0)
                        goto rollback;
        }

        r = exec_sql(db, "COMMIT");
        if (r < 0)
                goto rollback;
        return 0;

rollback:
        if (!sqlite3_get_autocommit(db))
                (void) exec_sql(db, "ROLLBACK");
        return r;
}

static int refresh_seq_floor(Store *store);

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
                return sqlite_fail(store->db, path);

        /* Extended codes make the debug messages of failures precise. */
        sqlite3_extended_result_codes(store->db, 1);
        sqlite3_busy_timeout(store->db, STORE_BUSY_TIMEOUT_MS);
        /* Nothing here needs to write the schema behind SQLite's back. */
        sqlite3_db_config(store->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);

        /* Only takes effect while the file is empty, i.e. when it is created.
         * SQLite writes each WAL frame with its own system calls, so in the
         * daemon smaller pages (more frames per commit) measured slower; 4096,
         * the kernel's page, is also SQLite's default. */
        r = exec_sql(store->db, "PRAGMA page_size = " G_STRINGIFY(STORE_PAGE_SIZE));
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
        r = exec_sql(store->db, "PRAGMA synchronous = NORMAL");
        if (r < 0)
                return r;
        /* Reading pages through a mapping instead of pread() copies saves CPU on
         * every insert (index lookups) and page; 64 MiB of address space, not RSS. */
        r = exec_sql(store->db, "PRAGMA mmap_size = 67108864");
        if (r < 0)
                return r;
        r = exec_sql(store->db, "PRAGMA wal_autocheckpoint = " G_STRINGIFY(STORE_WAL_CHECKPOINT_PAGES));
        if (r < 0)
                return r;
        r = exec_sql(store->db, "PRAGMA journal_size_limit = " G_STRINGIFY(STORE_WAL_SIZE_LIMIT));
        if (r < 0)
                return r;

        r = store_migrate(store->db);
        if (r < 0)
                return r;

        for (size_t i = 0; i < G_N_ELEMENTS(append_statements); i++) {
                StoreStatement id = append_statements[i];
                if (sqlite3_prepare_v3(store->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                       &store->stmt[id], NULL) != SQLITE_OK)
                        return sqlite_fail(store->db, statement_sql[id]);
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
        r = refresh_seq_floor(store);
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

int store_commit(Store *store) {
        int r;

        if (!store || store->nesting == 0)
                return -EINVAL;

        store->nesting--;

        if (sqlite3_get_autocommit(store->db)) {
                g_debug("store: commit of a transaction SQLite already rolled back");
                return -EIO;
        }

        if (store->nesting > 0)
                return stmt_run(store, STMT_RELEASE_NEST);

        r = stmt_run(store, STMT_COMMIT);
        /* A failed COMMIT may leave the transaction open; the next write would
         * then silently join it instead of being committed. */
        if (r < 0 && !sqlite3_get_autocommit(store->db))
                (void) stmt_run(store, STMT_ROLLBACK);
        return r;
}

int store_rollback(Store *store) {
        int r;

        if (!store || store->nesting == 0)
                return -EINVAL;

        store->nesting--;

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

static bool direction_valid(StoreDirection d) {
        switch (d) {
        case STORE_DIRECTION_IN:
        case STORE_DIRECTION_OUT:
                return true;
        }
        return false;
}

/* One conversation of a batch: its key, and what the batch changes in it. */
typedef struct ConversationDelta {
        const char *id;
        int64_t key;
        uint32_t unread;        /* incoming messages added */
        bool changed;           /* at least one message added */
        int64_t time_ms;        /* of the newest message added */
        int64_t last_seq;
} ConversationDelta;

/* The key of conversation D->id, creating the conversation if new. It is
 * looked up once per batch, not cached across batches: a rolled back batch
 * would leave a cache naming conversations that do not exist. */
static int conversation_resolve(Store *store, ConversationDelta *d, int64_t time_ms) {
        int r;

        {
                sqlite3_stmt *st _cleanup_reset_ = store->stmt[STMT_CONVERSATION_KEY];

                if (store_bind_text(st, 1, d->id) != SQLITE_OK)
                        return store_fail(store, STMT_CONVERSATION_KEY);
                r = sqlite3_step(st);
                if (r == SQLITE_ROW) {
                        d->key = sqlite3_column_int64(st, 0);
                        return 0;
                }
                if (r != SQLITE_DONE)
                        return store_fail(store, STMT_CONVERSATION_KEY);
        }
        {
                sqlite3_stmt *st _cleanup_reset_ = store->stmt[STMT_INSERT_CONVERSATION];

                if (store_bind_text(st, 1, d->id) != SQLITE_OK || sqlite3_bind_int64(st, 2, time_ms) != SQLITE_OK)
                        return store_fail(store, STMT_INSERT_CONVERSATION);
                if (sqlite3_step(st) != SQLITE_DONE)
                        return store_fail(store, STMT_INSERT_CONVERSATION);
                d->key = sqlite3_last_insert_rowid(store->db);
        }
        return 0;
}

static int conversation_update(Store *store, const ConversationDelta *d) {
        sqlite3_stmt *st _cleanup_reset_ = store->stmt[STMT_UPDATE_CONVERSATION];

        if (sqlite3_bind_int64(st, 1, d->key) != SQLITE_OK ||
            sqlite3_bind_int64(st, 2, d->unread) != SQLITE_OK ||
            sqlite3_bind_int64(st, 3, d->time_ms) != SQLITE_OK ||
            sqlite3_bind_int64(st, 4, d->last_seq) != SQLITE_OK)
                return store_fail(store, STMT_UPDATE_CONVERSATION);
        if (sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, STMT_UPDATE_CONVERSATION);
        return 0;
}

/* Parameters 13-20 of the inserts: the media columns, NULL for other
 * messages. A file has a url (received) or a mime type (ours, before its
 * upload is done; path is then our copy). */
static int bind_media(sqlite3_stmt *st, const StoreMessage *msg) {
        bool media = msg->url || msg->mime;
        int r;

        if ((r = store_bind_text(st, 13, msg->url)) != SQLITE_OK ||
            (r = store_bind_text(st, 14, media ? msg->mime : NULL)) != SQLITE_OK ||
            (r = store_bind_text(st, 15, media ? msg->name : NULL)) != SQLITE_OK ||
            (r = store_bind_text(st, 20, media ? msg->path : NULL)) != SQLITE_OK)
                return r;
        r = media && msg->size >= 0 ? sqlite3_bind_int64(st, 16, msg->size) : sqlite3_bind_null(st, 16);
        if (r != SQLITE_OK)
                return r;
        r = media && msg->width ? sqlite3_bind_int64(st, 17, msg->width) : sqlite3_bind_null(st, 17);
        if (r != SQLITE_OK)
                return r;
        r = media && msg->height ? sqlite3_bind_int64(st, 18, msg->height) : sqlite3_bind_null(st, 18);
        if (r != SQLITE_OK)
                return r;
        return media && msg->duration_ms ? sqlite3_bind_int64(st, 19, msg->duration_ms) : sqlite3_bind_null(st, 19);
}

/* Inserts MSG into conversation KEY, at seq if non-zero (else the next):
 * *ret_seq gets its seq, or 0 if it is a duplicate (then nothing changed). */
static int message_insert_at(Store *store, const StoreMessage *msg, int64_t key, int64_t seq, int64_t *ret_seq) {
        StoreStatement id = seq ? STMT_INSERT_MESSAGE_AT : STMT_INSERT_MESSAGE;
        sqlite3_stmt *st = store->stmt[id];
        int r;

        /* Every parameter is bound on every call, so the bindings need not be
         * cleared; SQLITE_STATIC: the strings outlive the step. */
        if (sqlite3_bind_int64(st, 1, key) != SQLITE_OK ||
            store_bind_text(st, 2, msg->id) != SQLITE_OK ||
            store_bind_text(st, 3, msg->sender) != SQLITE_OK ||
            store_bind_text(st, 4, msg->stanza_id) != SQLITE_OK ||
            sqlite3_bind_int(st, 5, (int) msg->direction) != SQLITE_OK ||
            sqlite3_bind_int64(st, 6, msg->time_ms) != SQLITE_OK ||
            store_bind_text(st, 7, msg->type) != SQLITE_OK ||
            store_bind_text(st, 8, msg->text) != SQLITE_OK ||
            store_bind_text(st, 9, msg->status) != SQLITE_OK ||
            store_bind_text(st, 10, msg->data) != SQLITE_OK ||
            store_bind_text(st, 11, msg->extension) != SQLITE_OK ||
            (seq && sqlite3_bind_int64(st, 12, seq) != SQLITE_OK) ||
            bind_media(st, msg) != SQLITE_OK) {
                sqlite3_reset(st);
                return store_fail(store, id);
        }

        r = sqlite3_step(st);
        sqlite3_reset(st);
        if (r != SQLITE_DONE)
                return store_fail(store, id);

        *ret_seq = sqlite3_changes(store->db) > 0 ? sqlite3_last_insert_rowid(store->db) : 0;
        return 0;
}

static bool message_valid(const StoreMessage *msg) {
        return msg && valid_key(msg->conversation) && valid_key(msg->id) &&
               store_valid_optional(msg->sender) && store_valid_optional(msg->type) &&
               store_valid_optional(msg->text) && store_valid_optional(msg->status) &&
               store_valid_optional(msg->data) && store_valid_optional(msg->extension) &&
               store_valid_optional(msg->url) && store_valid_optional(msg->mime) && store_valid_optional(msg->name) &&
               store_valid_optional(msg->path) &&
               (!msg->stanza_id || valid_key(msg->stanza_id)) && direction_valid(msg->direction);
}

/* The common part of both appends, inside a transaction the caller opened:
 * seqs[i] gets the seq of msgs[i], 0 for a duplicate. Per batch, each
 * conversation is looked up once and updated once; per message there is one
 * INSERT. */
/* Whether no message has a positive seq (see Store.seq_floor_pending). */
static int refresh_seq_floor(Store *store) {
        int64_t last = 0;
        int r = store_last_seq(store, &last);

        if (r < 0)
                return r;
        store->seq_floor_pending = last < 1;
        return 0;
}

static int append_batch(Store *store, const StoreMessage *const *msgs, size_t n_msgs, int64_t *seqs,
                        size_t *ret_added) {
        ConversationDelta local[8];
        g_autofree ConversationDelta *heap = NULL;
        ConversationDelta *deltas = local;
        size_t n_deltas = 0, capacity = G_N_ELEMENTS(local), added = 0, hint = 0;
        int r;

        for (size_t i = 0; i < n_msgs; i++) {
                const StoreMessage *m = msgs[i];
                ConversationDelta *d = NULL;
                int64_t seq = 0;

                /* A batch rarely spans more than a few conversations, and runs of
                 * one conversation are the rule: try the previous one, then a
                 * linear search, which beats hashing at this size. */
                if (n_deltas > 0 && strcmp(deltas[hint].id, m->conversation) == 0)
                        d = &deltas[hint];
                else
                        for (size_t j = 0; j < n_deltas; j++)
                                if (strcmp(deltas[j].id, m->conversation) == 0) {
                                        d = &deltas[j];
                                        hint = j;
                                        break;
                                }
                if (!d) {
                        if (n_deltas == capacity) {
                                capacity *= 2;
                                if (deltas == local) {
                                        heap = g_new(ConversationDelta, capacity);
                                        memcpy(heap, local, sizeof local);
                                } else
                                        heap = g_renew(ConversationDelta, heap, capacity);
                                deltas = heap;
                        }
                        hint = n_deltas++;
                        d = &deltas[hint];
                        *d = (ConversationDelta) { .id = m->conversation };
                        r = conversation_resolve(store, d, m->time_ms);
                        if (r < 0)
                                return r;
                }

                r = message_insert_at(store, m, d->key, store->seq_floor_pending ? 1 : 0, &seq);
                if (r < 0)
                        return r;
                seqs[i] = seq;
                if (seq == 0)
                        continue;
                store->seq_floor_pending = false;
                added++;
                d->changed = true;
                d->unread += m->direction == STORE_DIRECTION_IN ? 1 : 0;
                d->time_ms = m->time_ms;
                d->last_seq = seq;
        }

        for (size_t j = 0; j < n_deltas; j++) {
                if (!deltas[j].changed)
                        continue;
                r = conversation_update(store, &deltas[j]);
                if (r < 0)
                        return r;
        }

        if (ret_added)
                *ret_added = added;
        return 0;
}

int store_append_message(Store *store, const StoreMessage *msg, int64_t *ret_seq) {
        int64_t seq = 0;
        int r;

        if (!store || !message_valid(msg))
                return -EINVAL;

        /* Outside a batch this is the transaction; inside one, a savepoint that
         * undoes a half-done append without touching the rest of the batch. */
        r = store_begin(store);
        if (r < 0)
                return r;
        r = append_batch(store, &msg, 1, &seq, NULL);
        if (r < 0) {
                (void) store_rollback(store);
                (void) refresh_seq_floor(store);
                return r;
        }
        r = store_commit(store);
        if (r < 0)
                return r;
        if (seq == 0)
                return -EEXIST;

        if (ret_seq)
                *ret_seq = seq;
        return 0;
}

int store_append_messages(Store *store, StoreMessage *const *msgs, size_t n_msgs, size_t *ret_added) {
        int64_t local[64];
        g_autofree int64_t *heap = NULL;
        int64_t *seqs = local;
        size_t added = 0;
        int r;

        if (!store || (n_msgs && !msgs))
                return -EINVAL;
        for (size_t i = 0; i < n_msgs; i++)
                if (!message_valid(msgs[i]))
                        return -EINVAL;

        if (n_msgs > G_N_ELEMENTS(local))
                seqs = heap = g_new(int64_t, n_msgs);

        r = store_begin(store);
        if (r < 0)
                return r;
        r = append_batch(store, (const StoreMessage *const *) msgs, n_msgs, seqs, &added);
        if (r < 0) {
                (void) store_rollback(store);
                (void) refresh_seq_floor(store);
                goto fail;
        }
        r = store_commit(store);
        if (r < 0)
                goto fail;

        for (size_t i = 0; i < n_msgs; i++)
                msgs[i]->seq = seqs[i];
        if (ret_added)
                *ret_added = added;
        return 0;

fail:
        for (size_t i = 0; i < n_msgs; i++)
                msgs[i]->seq = 0;
        return r;
}

static int step_int64(Store *store, StoreStatement id, int64_t *ret) {
        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, id);
        int r = sqlite3_step(st);

        if (r == SQLITE_DONE)
                return -ENOENT;
        if (r != SQLITE_ROW)
                return store_fail(store, id);
        *ret = sqlite3_column_int64(st, 0);
        return 0;
}

/* Inside the caller's transaction: see store_prepend_messages(). */
static int prepend_batch(Store *store, StoreMessage *const *msgs, size_t n_msgs) {
        int64_t next = 1;
        int r;

        r = step_int64(store, STMT_FIRST_SEQ, &next);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_msgs; i++) {
                ConversationDelta d = { .id = msgs[i]->conversation };
                int64_t seq = 0;

                r = conversation_resolve(store, &d, msgs[i]->time_ms);
                if (r < 0)
                        return r;
                /* 0 means "no seq" (and "duplicate") everywhere: skip it */
                r = message_insert_at(store, msgs[i], d.key, next - 1 == 0 ? -1 : next - 1, &seq);
                if (r < 0)
                        return r;
                msgs[i]->seq = seq;
                if (seq == 0)
                        continue;
                next = seq;
                if (msgs[i]->text && (r = store_fts_run(store, STMT_FTS_INSERT, seq, msgs[i]->text)) < 0)
                        return r;
                {
                        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_ADOPT_LAST);
                        if (sqlite3_bind_int64(st, 1, d.key) != SQLITE_OK ||
                            sqlite3_bind_int64(st, 2, seq) != SQLITE_OK ||
                            sqlite3_bind_int64(st, 3, msgs[i]->time_ms) != SQLITE_OK ||
                            sqlite3_step(st) != SQLITE_DONE)
                                return store_fail(store, STMT_ADOPT_LAST);
                }
        }
        return 0;
}

int store_prepend_messages(Store *store, StoreMessage *const *msgs, size_t n_msgs) {
        int r;

        if (!store || (n_msgs && !msgs))
                return -EINVAL;
        for (size_t i = 0; i < n_msgs; i++)
                if (!message_valid(msgs[i]))
                        return -EINVAL;
        r = store_begin(store);
        if (r < 0)
                return r;
        r = prepend_batch(store, msgs, n_msgs);
        if (r < 0) {
                (void) store_rollback(store);
                for (size_t i = 0; i < n_msgs; i++)
                        msgs[i]->seq = 0;
                return r;
        }
        r = store_commit(store);
        if (r < 0)
                return r;
        return refresh_seq_floor(store);
}

int store_oldest_message(Store *store, const char *conversation, StoreMessage **ret) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !conversation || !ret)
                return -EINVAL;
        st = store_stmt(store, STMT_OLDEST);
        if (store_bind_text(st, 1, conversation) != SQLITE_OK)
                return store_fail(store, STMT_OLDEST);
        r = sqlite3_step(st);
        if (r == SQLITE_DONE)
                return -ENOENT;
        if (r != SQLITE_ROW)
                return store_fail(store, STMT_OLDEST);
        return store_message_from_row(st, 0, ret);
}

int store_message_from_row(sqlite3_stmt *st, int col, StoreMessage **ret) {
        StoreMessage *m;
        int d;

        d = sqlite3_column_int(st, col + 5);
        if (!direction_valid((StoreDirection) d)) {
                g_debug("store: message with invalid direction %d", d);
                return -EIO;
        }

        m = g_new0(StoreMessage, 1);
        m->seq = sqlite3_column_int64(st, col);
        m->conversation = column_strdup(st, col + 1);
        m->id = column_strdup(st, col + 2);
        m->sender = column_strdup(st, col + 3);
        m->stanza_id = column_strdup(st, col + 4);
        m->direction = (StoreDirection) d;
        m->time_ms = sqlite3_column_int64(st, col + 6);
        m->type = column_strdup(st, col + 7);
        m->text = column_strdup(st, col + 8);
        m->status = column_strdup(st, col + 9);
        m->data = column_strdup(st, col + 10);
        m->extension = column_strdup(st, col + 11);
        m->revoked = sqlite3_column_int(st, col + 12) != 0;
        m->edited = sqlite3_column_int(st, col + 13) != 0;
        m->reactions = column_strdup(st, col + 14);
        m->url = column_strdup(st, col + 15);
        m->mime = column_strdup(st, col + 16);
        m->name = column_strdup(st, col + 17);
        m->size = sqlite3_column_type(st, col + 18) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, col + 18);
        m->width = (uint32_t) sqlite3_column_int64(st, col + 19);
        m->height = (uint32_t) sqlite3_column_int64(st, col + 20);
        m->duration_ms = (uint32_t) sqlite3_column_int64(st, col + 21);
        m->path = column_strdup(st, col + 22);

        *ret = m;
        return 0;
}

int store_get_message(Store *store, const char *conversation, const char *id, StoreMessage **ret) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !conversation || !id || !ret)
                return -EINVAL;

        st = store_stmt(store, STMT_GET_MESSAGE);
        if (store_bind_text(st, 1, conversation) != SQLITE_OK || store_bind_text(st, 2, id) != SQLITE_OK)
                return store_fail(store, STMT_GET_MESSAGE);

        r = sqlite3_step(st);
        if (r == SQLITE_DONE)
                return -ENOENT;
        if (r != SQLITE_ROW)
                return store_fail(store, STMT_GET_MESSAGE);

        return store_message_from_row(st, 0, ret);
}

int store_set_message_status(Store *store, const char *conversation, const char *id, const char *status) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !conversation || !id || !valid_key(status))
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
 * with the search index kept true, in one transaction. */
static int change_text(Store *store, StoreStatement id, const char *conversation, const char *msg_id,
                       const char *text) {
        int64_t seq = 0;
        int r;

        r = store_begin(store);
        if (r < 0)
                return r;
        r = store_fts_before_change(store, conversation, msg_id, &seq);
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
        if (r < 0) {
                (void) store_rollback(store);
                return r;
        }
        return store_commit(store);
}

int store_revoke_message(Store *store, const char *conversation, const char *id) {
        if (!store || !conversation || !id)
                return -EINVAL;
        return change_text(store, STMT_REVOKE, conversation, id, NULL);
}

static int message_seq(Store *store, const char *conversation, const char *id, int64_t *ret);

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

int store_set_conversation_name(Store *store, const char *id, const char *name) {
        sqlite3_stmt *st _cleanup_reset_ = NULL;

        if (!store || !valid_key(id) || !name || !store_valid_optional(name))
                return -EINVAL;
        st = store_stmt(store, STMT_SET_CONVERSATION_NAME);
        if (store_bind_text(st, 1, id) != SQLITE_OK || store_bind_text(st, 2, name) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE)
                return store_fail(store, STMT_SET_CONVERSATION_NAME);
        return sqlite3_changes(store->db) > 0 ? 1 : 0;
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
        if (!store || !conversation || !id || !valid_key(text))
                return -EINVAL;
        return change_text(store, STMT_EDIT, conversation, id, text);
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

static uint32_t clamp_u32(int64_t v) {
        return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (uint32_t) v;
}

static int conversation_from_row(sqlite3_stmt *st, StoreConversation **ret) {
        g_autoptr(StoreConversation) c = NULL;
        int r;

        c = g_new0(StoreConversation, 1);
        c->id = column_strdup(st, 0);
        c->kind = column_strdup(st, 1);
        c->name = column_strdup(st, 2);
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

        *ret = column_strdup(st, 0);
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

        *ret = column_strdup(st, 0);
        return 0;
}

int store_set_meta(Store *store, const char *key, const char *value) {
        StoreStatement id = value ? STMT_SET_META : STMT_DELETE_META;
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !valid_key(key) || !store_valid_optional(value))
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
                        return sqlite_fail(store->db, sql);

                g_string_append_printf(plan, "%s\n", statement_sql[i]);
                while ((r = sqlite3_step(st)) == SQLITE_ROW)
                        g_string_append_printf(plan, "\t%s\n", (const char *) sqlite3_column_text(st, 3));
                sqlite3_finalize(st);
                if (r != SQLITE_DONE)
                        return sqlite_fail(store->db, sql);
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
