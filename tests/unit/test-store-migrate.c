/* SPDX-License-Identifier: MIT */
/*
 * Histories written by earlier imds, opened by this one: the layout before
 * integer conversation keys (and files a failed open stamped with a later
 * version in that layout), a migration whose result does not fit, and the
 * unread counts of imds before e253c3e. The old files are built here from
 * their SQL, as those imds wrote them.
 */

#include <errno.h>
#include <sqlite3.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "store.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"

/* The schema version this build migrates to. */
#define SCHEMA_VERSION 11

static char *make_tmp_dir(void) {
        g_autoptr(GError) error = NULL;
        char *dir = g_dir_make_tmp("imd-test-store-migrate-XXXXXX", &error);

        g_assert_no_error(error);
        return dir;
}

static void remove_dir(const char *dir) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;

        g_assert_nonnull(d);
        while ((name = g_dir_read_name(d))) {
                g_autofree char *path = g_build_filename(dir, name, NULL);
                g_assert_cmpint(g_unlink(path), ==, 0);
        }
        g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static void raw_exec(const char *dir, const char *sql) {
        g_autofree char *path = g_build_filename(dir, "history.sqlite", NULL);
        sqlite3 *db = NULL;

        g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), ==, SQLITE_OK);
        g_assert_cmpint(sqlite3_exec(db, sql, NULL, NULL, NULL), ==, SQLITE_OK);
        sqlite3_close(db);
}

/* The rows of sql, columns separated by '|', rows by '\n'. */
static char *raw_query(const char *dir, const char *sql) {
        g_autofree char *path = g_build_filename(dir, "history.sqlite", NULL);
        GString *out = g_string_new(NULL);
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;

        g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
        g_assert_cmpint(sqlite3_prepare_v2(db, sql, -1, &st, NULL), ==, SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
                for (int i = 0; i < sqlite3_column_count(st); i++) {
                        const char *v = (const char *) sqlite3_column_text(st, i);
                        g_string_append_printf(out, "%s%s", i ? "|" : "", v ? v : "NULL");
                }
                g_string_append_c(out, '\n');
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        return g_string_free(out, false);
}

static int64_t raw_query_int(const char *dir, const char *sql) {
        g_autofree char *v = raw_query(dir, sql);

        return g_ascii_strtoll(v, NULL, 10);
}

static uint32_t unread_of(Store *store, const char *conversation) {
        g_autoptr(StoreConversation) c = NULL;

        g_assert_cmpint(store_get_conversation(store, conversation, &c), ==, 0);
        return c->unread;
}

/* Version 1 as a602873, 2f32ec8 and 4c5e15d created it (9115e4d changed the
 * step in place), with what they stored: two conversations, one of them
 * partly read, a message with a server stanza-id, and a meta row. */
static const char schema_v1_text_keys[] =
        "CREATE TABLE messages ("
        "        seq INTEGER PRIMARY KEY,"
        "        conversation TEXT NOT NULL,"
        "        id TEXT NOT NULL,"
        "        sender TEXT,"
        "        stanza_id TEXT,"
        "        direction INTEGER NOT NULL,"
        "        time_ms INTEGER NOT NULL,"
        "        type TEXT,"
        "        text TEXT,"
        "        status TEXT,"
        "        UNIQUE (conversation, id));"
        "CREATE UNIQUE INDEX messages_stanza_id ON messages (stanza_id) WHERE stanza_id IS NOT NULL;"
        "CREATE INDEX messages_conversation_seq ON messages (conversation, seq);"
        "CREATE TABLE conversations ("
        "        id TEXT PRIMARY KEY,"
        "        kind TEXT NOT NULL,"
        "        name TEXT NOT NULL,"
        "        unread INTEGER NOT NULL DEFAULT 0,"
        "        time_ms INTEGER NOT NULL,"
        "        last_seq INTEGER REFERENCES messages (seq) ON DELETE SET NULL);"
        "CREATE TABLE meta ("
        "        key TEXT PRIMARY KEY,"
        "        value TEXT NOT NULL);"
        "INSERT INTO messages VALUES (1, 'alice@example.org', 'm1', 'alice@example.org', 'sa1', 0, 1000, 'text', 'alpha one', 'received');"
        "INSERT INTO messages VALUES (2, 'alice@example.org', 'm2', 'alice@example.org', NULL, 0, 2000, 'text', 'bravo two', 'received');"
        "INSERT INTO messages VALUES (3, 'alice@example.org', 'm3', 'me@example.org', NULL, 1, 3000, 'text', 'charlie three', 'sent');"
        "INSERT INTO messages VALUES (4, 'alice@example.org', 'm4', 'alice@example.org', NULL, 0, 4000, 'text', 'delta four', 'received');"
        "INSERT INTO messages VALUES (5, 'bob@example.org', 'b1', 'bob@example.org', 'sb1', 0, 1500, 'text', 'echo', 'received');"
        "INSERT INTO messages VALUES (6, 'bob@example.org', 'b2', 'bob@example.org', NULL, 0, 1600, 'text', 'foxtrot', 'received');"
        "INSERT INTO conversations VALUES ('alice@example.org', 'chat', 'Alice', 1, 4000, 4);"
        "INSERT INTO conversations VALUES ('bob@example.org', 'chat', '', 2, 1600, 6);"
        "INSERT INTO meta VALUES ('roster-ver', 'v42');"
        "PRAGMA user_version = 1;";

/* What every imd from 9115e4d on did to such a file before it failed to
 * prepare its statements: steps 2 to 8 as released, and the version. */
static const char steps_2_to_8_and_stamp[] =
        "ALTER TABLE messages ADD COLUMN data TEXT;"
        "ALTER TABLE messages ADD COLUMN extension TEXT;"
        "ALTER TABLE messages ADD COLUMN revoked INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE messages ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE messages ADD COLUMN reactions TEXT;"
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='seq',"
        "        tokenize='unicode61 remove_diacritics 2');"
        "INSERT INTO messages_fts (rowid, text) SELECT seq, text FROM messages WHERE seq <= 0 AND text IS NOT NULL;"
        "CREATE INDEX messages_unread_by_peer ON messages (conversation, seq) "
        "        WHERE direction = 1 AND status IN ('sent', 'delivered');"
        "ALTER TABLE messages ADD COLUMN url TEXT;"
        "ALTER TABLE messages ADD COLUMN mime TEXT;"
        "ALTER TABLE messages ADD COLUMN name TEXT;"
        "ALTER TABLE messages ADD COLUMN size INTEGER;"
        "ALTER TABLE messages ADD COLUMN width INTEGER;"
        "ALTER TABLE messages ADD COLUMN height INTEGER;"
        "ALTER TABLE messages ADD COLUMN duration_ms INTEGER;"
        "ALTER TABLE messages ADD COLUMN path TEXT;"
        "CREATE TABLE actions ("
        "        seq INTEGER PRIMARY KEY,"
        "        id TEXT NOT NULL UNIQUE,"
        "        conversation TEXT NOT NULL,"
        "        target TEXT NOT NULL,"
        "        kind TEXT NOT NULL,"
        "        payload TEXT);"
        "CREATE INDEX messages_own_files ON messages (id) WHERE direction = 1 AND path IS NOT NULL;"
        "PRAGMA user_version = 8;";

#define SCHEMA_SQL "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"

/* The schema a new history gets. */
static char *fresh_schema(void) {
        g_autofree char *dir = make_tmp_dir();
        Store *store = NULL;
        char *schema;

        g_assert_cmpint(store_open(dir, &store), ==, 0);
        store_close(store);
        schema = raw_query(dir, SCHEMA_SQL);
        remove_dir(dir);
        return schema;
}

/* Everything the old file held, through the Store, and the Store working
 * on it: the layout is the current one. */
static void assert_text_keys_history(const char *dir) {
        g_autofree char *schema = NULL, *expected_schema = fresh_schema();
        g_autofree char *value = NULL;
        g_autoptr(GPtrArray) conversations = NULL, page = NULL, hits = NULL;
        g_autoptr(Store) store = NULL;
        g_autoptr(GString) got = g_string_new(NULL);
        StoreConversation *c;
        bool complete = false;
        StoreMessage m = {
                .id = (char *) "m5", .conversation = (char *) ALICE, .sender = (char *) ALICE,
                .direction = STORE_DIRECTION_IN, .time_ms = 5000, .type = (char *) "text",
                .text = (char *) "hotel", .status = (char *) "received", .size = -1,
        };

        g_assert_cmpint(store_open(dir, &store), ==, 0);
        g_assert_cmpint(raw_query_int(dir, "PRAGMA user_version"), ==, SCHEMA_VERSION);
        schema = raw_query(dir, SCHEMA_SQL);
        g_assert_cmpstr(schema, ==, expected_schema);

        g_assert_cmpint(store_list_conversations(store, &conversations), ==, 0);
        g_assert_cmpuint(conversations->len, ==, 2);
        c = g_ptr_array_index(conversations, 0);
        g_assert_cmpstr(c->id, ==, ALICE);
        g_assert_cmpstr(c->name, ==, "Alice");
        g_assert_cmpuint(c->unread, ==, 1);
        g_assert_cmpint(c->time_ms, ==, 4000);
        g_assert_nonnull(c->last);
        g_assert_cmpstr(c->last->id, ==, "m4");
        c = g_ptr_array_index(conversations, 1);
        g_assert_cmpstr(c->id, ==, BOB);
        g_assert_cmpuint(c->unread, ==, 2);
        g_assert_cmpstr(c->last->id, ==, "b2");

        g_assert_cmpint(store_get_messages(store, ALICE, NULL, 10, &page, &complete), ==, 0);
        for (guint i = 0; i < page->len; i++) {
                const StoreMessage *p = g_ptr_array_index(page, i);
                g_string_append_printf(got, "%" G_GINT64_FORMAT " %s %s %s %s %s %d %" G_GINT64_FORMAT " %s;",
                                       p->seq, p->conversation, p->id, p->sender,
                                       p->stanza_id ? p->stanza_id : "-", p->text, p->direction, p->time_ms,
                                       p->status);
        }
        g_assert_cmpstr(got->str, ==,
                        "4 " ALICE " m4 " ALICE " - delta four 0 4000 received;"
                        "3 " ALICE " m3 me@example.org - charlie three 1 3000 sent;"
                        "2 " ALICE " m2 " ALICE " - bravo two 0 2000 received;"
                        "1 " ALICE " m1 " ALICE " sa1 alpha one 0 1000 received;");
        g_assert_cmpint(raw_query_int(dir, "SELECT count(*) FROM messages"), ==, 6);

        g_assert_cmpint(store_get_meta(store, "roster-ver", &value), ==, 0);
        g_assert_cmpstr(value, ==, "v42");

        /* the old messages are searchable, duplicates are still refused,
         * and a new message is appended after them */
        g_assert_cmpint(store_search(store, "foxtrot", NULL, 5, &hits), ==, 0);
        g_assert_cmpuint(hits->len, ==, 1);
        {
                StoreMessage dup = m;
                dup.id = (char *) "m2";
                g_assert_cmpint(store_append_message(store, &dup, NULL), ==, -EEXIST);
        }
        {
                int64_t seq = 0;
                g_assert_cmpint(store_append_message(store, &m, &seq), ==, 0);
                g_assert_cmpint(seq, ==, 7);
        }
        g_assert_cmpuint(unread_of(store, ALICE), ==, 2);
        g_clear_pointer(&store, store_close);

        /* and it opens again as any current file */
        g_assert_cmpint(store_open(dir, &store), ==, 0);
        g_assert_cmpuint(unread_of(store, ALICE), ==, 2);
}

/* A version-1 file from before 9115e4d opens, with every row. */
static void test_text_keys_v1(void) {
        g_autofree char *dir = make_tmp_dir();

        raw_exec(dir, schema_v1_text_keys);
        assert_text_keys_history(dir);
        remove_dir(dir);
}

/* The same file after an imd that ran its steps on it and failed to open
 * it left it at version 8: converted all the same. */
static void test_text_keys_stamped(void) {
        g_autofree char *dir = make_tmp_dir();

        raw_exec(dir, schema_v1_text_keys);
        raw_exec(dir, steps_2_to_8_and_stamp);
        assert_text_keys_history(dir);
        remove_dir(dir);
}

/* A file whose migrated schema the Store cannot use (here: no meta table)
 * fails to open, and is left as it was: its version, its tables. */
static void test_unusable_not_committed(void) {
        g_autofree char *dir = make_tmp_dir();
        g_autofree char *before = NULL, *after = NULL;
        Store *store = NULL;

        raw_exec(dir,
                 "CREATE TABLE conversations (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
                 "  name TEXT NOT NULL, unread INTEGER NOT NULL DEFAULT 0, time_ms INTEGER NOT NULL, last_seq INTEGER);"
                 "CREATE TABLE messages (seq INTEGER PRIMARY KEY, conversation INTEGER NOT NULL, id TEXT NOT NULL,"
                 "  sender TEXT, stanza_id TEXT, direction INTEGER NOT NULL, time_ms INTEGER NOT NULL, type TEXT,"
                 "  text TEXT, status TEXT, UNIQUE (conversation, id));"
                 "CREATE UNIQUE INDEX messages_stanza_id ON messages (conversation, stanza_id) WHERE stanza_id IS NOT NULL;"
                 "CREATE INDEX messages_conversation_seq ON messages (conversation, seq);"
                 "CREATE INDEX messages_unsent ON messages (seq) WHERE direction = 1 AND status = 'pending';"
                 "INSERT INTO conversations VALUES (1, 'alice@example.org', 'chat', '', 1, 1000, 1);"
                 "INSERT INTO messages VALUES (1, 1, 'm1', 'alice@example.org', NULL, 0, 1000, 'text', 'hi', 'received');"
                 "PRAGMA user_version = 1;");
        before = raw_query(dir, SCHEMA_SQL);

        g_assert_cmpint(store_open(dir, &store), <, 0);
        g_assert_null(store);
        g_assert_cmpint(raw_query_int(dir, "PRAGMA user_version"), ==, 1);
        after = raw_query(dir, SCHEMA_SQL);
        g_assert_cmpstr(after, ==, before);
        g_assert_cmpint(raw_query_int(dir, "SELECT count(*) FROM messages"), ==, 1);

        /* every time */
        g_assert_cmpint(store_open(dir, &store), <, 0);
        g_assert_cmpint(raw_query_int(dir, "PRAGMA user_version"), ==, 1);
        remove_dir(dir);
}

static void append(Store *store, const char *conversation, const char *id, StoreDirection direction,
                   int64_t time_ms) {
        StoreMessage m = {
                .id = (char *) id, .conversation = (char *) conversation, .sender = (char *) conversation,
                .direction = direction, .time_ms = time_ms, .type = (char *) "text", .text = (char *) "hello",
                .status = (char *) (direction == STORE_DIRECTION_IN ? "received" : "sent"), .size = -1,
        };

        g_assert_cmpint(store_append_message(store, &m, NULL), ==, 0);
}

/* Alice: a1 read; a2, a3, a4 unread, o1 ours; a3 retracted. Bob: b1, b2
 * unread, both retracted. An imd before e253c3e counted the retracted
 * ones still: 3 and 2, where the current rules count 2 and 0. The file is
 * made by this Store, then given the counts and the version of such an
 * imd (before version 11 no waiting_actions, before 10 no wire_id, before 8
 * no messages_own_files). */
static char *make_retracted_unread(int version) {
        char *dir = make_tmp_dir();
        g_autoptr(Store) store = NULL;
        g_autofree char *sql = NULL;

        g_assert_cmpint(store_open(dir, &store), ==, 0);
        append(store, ALICE, "a1", STORE_DIRECTION_IN, 10);
        g_assert_cmpint(store_mark_read(store, ALICE, NULL), ==, 0);
        append(store, ALICE, "a2", STORE_DIRECTION_IN, 20);
        append(store, ALICE, "a3", STORE_DIRECTION_IN, 30);
        append(store, ALICE, "o1", STORE_DIRECTION_OUT, 40);
        append(store, ALICE, "a4", STORE_DIRECTION_IN, 50);
        append(store, BOB, "b1", STORE_DIRECTION_IN, 60);
        append(store, BOB, "b2", STORE_DIRECTION_IN, 70);
        g_assert_cmpint(store_revoke_message(store, ALICE, "a3"), >=, 0);
        g_assert_cmpint(store_revoke_message(store, BOB, "b1"), >=, 0);
        g_assert_cmpint(store_revoke_message(store, BOB, "b2"), >=, 0);
        g_clear_pointer(&store, store_close);

        sql = g_strdup_printf("UPDATE conversations SET unread = 3 WHERE id = '" ALICE "';"
                              "UPDATE conversations SET unread = 2 WHERE id = '" BOB "';"
                              "DROP TABLE waiting_actions;"
                              "DROP INDEX messages_wire_id;"
                              "ALTER TABLE messages DROP COLUMN wire_id;"
                              "%s"
                              "PRAGMA user_version = %d;",
                              version < 8 ? "DROP INDEX messages_own_files;" : "", version);
        raw_exec(dir, sql);
        return dir;
}

/* A history from before e253c3e gets the counts of the current rules. */
static void test_unread_recomputed(void) {
        g_autofree char *dir = make_retracted_unread(7);
        g_autoptr(Store) store = NULL;
        uint32_t total = 0;

        g_assert_cmpint(store_open(dir, &store), ==, 0);
        g_assert_cmpint(raw_query_int(dir, "PRAGMA user_version"), ==, SCHEMA_VERSION);
        g_assert_cmpuint(unread_of(store, ALICE), ==, 2);
        g_assert_cmpuint(unread_of(store, BOB), ==, 0);
        g_assert_cmpint(store_unread_total(store, &total), ==, 0);
        g_assert_cmpuint(total, ==, 2);
        /* and the current rules go on from there */
        g_assert_cmpint(store_revoke_message(store, ALICE, "a4"), ==, 1);
        g_assert_cmpuint(unread_of(store, ALICE), ==, 1);
        remove_dir(dir);
}

/* A version-8 file was kept by the current rules: its counts stand, but
 * for one above what the current rules can count at all (Bob's 2, where
 * both messages were retracted). */
static void test_unread_bounded(void) {
        g_autofree char *dir = make_retracted_unread(8);
        g_autoptr(Store) store = NULL;

        /* Alice's 2 (a2, a4) is right by the current rules; the rules of
         * the older imds would make it 1 (a3 and a4 the newest two) */
        raw_exec(dir, "UPDATE conversations SET unread = 2 WHERE id = '" ALICE "';");
        g_assert_cmpint(store_open(dir, &store), ==, 0);
        g_assert_cmpuint(unread_of(store, ALICE), ==, 2);
        g_assert_cmpuint(unread_of(store, BOB), ==, 0);
        remove_dir(dir);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        g_test_add_func("/store/migration/text-keys-v1", test_text_keys_v1);
        g_test_add_func("/store/migration/text-keys-stamped", test_text_keys_stamped);
        g_test_add_func("/store/migration/unusable-not-committed", test_unusable_not_committed);
        g_test_add_func("/store/migration/unread-recomputed", test_unread_recomputed);
        g_test_add_func("/store/migration/unread-bounded", test_unread_bounded);

        return g_test_run();
}
