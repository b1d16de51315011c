/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <sqlite3.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "store.h"

#define ALICE "alice@example.org"
#define BOB "bob@example.org"
#define CAROL "carol@example.org"
#define ME "me@example.org"

typedef struct Fixture {
        char *dir;
        Store *store;
} Fixture;

static void remove_dir(const char *dir) {
        g_autoptr(GDir) d = NULL;
        const char *name;

        d = g_dir_open(dir, 0, NULL);
        g_assert_nonnull(d);
        while ((name = g_dir_read_name(d))) {
                g_autofree char *path = g_build_filename(dir, name, NULL);
                g_assert_cmpint(g_unlink(path), ==, 0);
        }
        g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static char *make_tmp_dir(void) {
        g_autoptr(GError) error = NULL;
        char *dir;

        dir = g_dir_make_tmp("imd-test-store-XXXXXX", &error);
        g_assert_no_error(error);
        return dir;
}

static void fixture_setup(Fixture *f, gconstpointer data) {
        f->dir = make_tmp_dir();
        g_assert_cmpint(store_open(f->dir, &f->store), ==, 0);
        g_assert_nonnull(f->store);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        store_close(f->store);
        remove_dir(f->dir);
        g_free(f->dir);
}

static void fixture_reopen(Fixture *f) {
        store_close(f->store);
        f->store = NULL;
        g_assert_cmpint(store_open(f->dir, &f->store), ==, 0);
}

/* A second, raw connection, to look at what actually is in the file. */
static int64_t raw_query_int(const char *dir, const char *sql) {
        g_autofree char *path = g_build_filename(dir, "history.sqlite", NULL);
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        int64_t v;

        g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
        g_assert_cmpint(sqlite3_prepare_v2(db, sql, -1, &st, NULL), ==, SQLITE_OK);
        g_assert_cmpint(sqlite3_step(st), ==, SQLITE_ROW);
        v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

static char *raw_query_str(const char *dir, const char *sql) {
        g_autofree char *path = g_build_filename(dir, "history.sqlite", NULL);
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        char *v;

        g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
        g_assert_cmpint(sqlite3_prepare_v2(db, sql, -1, &st, NULL), ==, SQLITE_OK);
        g_assert_cmpint(sqlite3_step(st), ==, SQLITE_ROW);
        v = g_strdup((const char *) sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

/* The schema version this build migrates to. */
#define STORE_TEST_SCHEMA_VERSION 11

static void raw_exec(const char *dir, const char *sql) {
        g_autofree char *path = g_build_filename(dir, "history.sqlite", NULL);
        sqlite3 *db = NULL;

        g_assert_cmpint(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), ==, SQLITE_OK);
        g_assert_cmpint(sqlite3_exec(db, sql, NULL, NULL, NULL), ==, SQLITE_OK);
        sqlite3_close(db);
}

static StoreMessage make_message(const char *conversation, const char *id, StoreDirection direction,
                                 int64_t time_ms, const char *text) {
        return (StoreMessage) {
                .id = (char *) id,
                .conversation = (char *) conversation,
                .sender = (char *) (direction == STORE_DIRECTION_IN ? conversation : ME),
                .direction = direction,
                .time_ms = time_ms,
                .type = (char *) "text",
                .text = (char *) text,
                .status = (char *) (direction == STORE_DIRECTION_IN ? "received" : "sent"),
        };
}

static int64_t append(Store *store, const char *conversation, const char *id, StoreDirection direction,
                      int64_t time_ms) {
        StoreMessage m = make_message(conversation, id, direction, time_ms, "hello");
        int64_t seq = -1;

        g_assert_cmpint(store_append_message(store, &m, &seq), ==, 0);
        g_assert_cmpint(seq, >, 0);
        return seq;
}

static void assert_message_equal(const StoreMessage *a, const StoreMessage *b) {
        g_assert_nonnull(a);
        g_assert_nonnull(b);
        g_assert_cmpint(a->seq, ==, b->seq);
        g_assert_cmpstr(a->id, ==, b->id);
        g_assert_cmpstr(a->conversation, ==, b->conversation);
        g_assert_cmpstr(a->sender, ==, b->sender);
        g_assert_cmpstr(a->stanza_id, ==, b->stanza_id);
        g_assert_cmpint(a->direction, ==, b->direction);
        g_assert_cmpint(a->time_ms, ==, b->time_ms);
        g_assert_cmpstr(a->type, ==, b->type);
        g_assert_cmpstr(a->text, ==, b->text);
        g_assert_cmpstr(a->status, ==, b->status);
}

static uint32_t unread_of(Store *store, const char *conversation) {
        g_autoptr(StoreConversation) c = NULL;

        g_assert_cmpint(store_get_conversation(store, conversation, &c), ==, 0);
        return c->unread;
}

static uint32_t unread_total(Store *store) {
        uint32_t n = UINT32_MAX;

        g_assert_cmpint(store_unread_total(store, &n), ==, 0);
        return n;
}

static void test_open_creates_private_file(void) {
        g_autofree char *dir = make_tmp_dir();
        g_autofree char *path = g_build_filename(dir, "history.sqlite", NULL);
        g_autofree char *wal = g_build_filename(dir, "history.sqlite-wal", NULL);
        g_autofree char *missing = g_build_filename(dir, "missing", NULL);
        Store *store = NULL;
        struct stat st;
        mode_t old_umask;

        /* A permissive umask must not leak into the history's mode. */
        old_umask = umask(0);
        g_assert_cmpint(store_open(dir, &store), ==, 0);
        umask(old_umask);

        g_assert_cmpint(g_stat(path, &st), ==, 0);
        g_assert_cmpint(st.st_mode & 07777, ==, 0600);

        append(store, ALICE, "m1", STORE_DIRECTION_IN, 1000);
        g_assert_cmpint(g_stat(wal, &st), ==, 0);
        g_assert_cmpint(st.st_mode & 07777, ==, 0600);

        g_assert_cmpint(raw_query_int(dir, "PRAGMA user_version"), ==, STORE_TEST_SCHEMA_VERSION);
        g_assert_cmpint(raw_query_int(dir, "SELECT count(*) FROM messages"), ==, 1);
        store_close(store);

        {
                g_autofree char *path2 = g_build_filename(dir, "history.sqlite", NULL);
                sqlite3 *db = NULL;
                sqlite3_stmt *q = NULL;

                g_assert_cmpint(sqlite3_open_v2(path2, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
                g_assert_cmpint(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), ==, SQLITE_OK);
                g_assert_cmpint(sqlite3_step(q), ==, SQLITE_ROW);
                g_assert_cmpstr((const char *) sqlite3_column_text(q, 0), ==, "wal");
                sqlite3_finalize(q);
                sqlite3_close(db);
        }

        store = (Store *) 0x1;
        g_assert_cmpint(store_open(missing, &store), ==, -ENOENT);
        g_assert_true(store == (Store *) 0x1);

        remove_dir(dir);
}

static void test_round_trip(Fixture *f, gconstpointer data) {
        g_autoptr(GString) big = g_string_new(NULL);
        g_autoptr(GString) huge = g_string_new(NULL);
        g_autoptr(StoreMessage) got = NULL;
        g_autoptr(StoreConversation) conv = NULL;
        StoreMessage in, out, h;
        int64_t seq;

        /* 10 KB mixing ASCII, 2-, 3- and 4-byte UTF-8 (emoji with ZWJ and
         * variation selectors), and 70 KiB for the large end. */
        while (big->len < 10 * 1024)
                g_string_append(big, "héllo wörld 日本語 👩‍👩‍👧 ❤️ ");
        while (huge->len < 70 * 1024)
                g_string_append(huge, "0123456789abcdef🙂");

        in = (StoreMessage) {
                .id = (char *) "origin-1",
                .conversation = (char *) ALICE,
                .sender = (char *) ALICE,
                .stanza_id = (char *) "stanza-💬-1",
                .direction = STORE_DIRECTION_IN,
                .time_ms = INT64_C(1700000000123),
                .type = (char *) "text",
                .text = big->str,
                .status = (char *) "received",
        };
        out = (StoreMessage) {
                .id = (char *) "local-ü-2",
                .conversation = (char *) ALICE,
                .sender = (char *) ME,
                .stanza_id = NULL,
                .direction = STORE_DIRECTION_OUT,
                .time_ms = INT64_C(1700000000456),
                .type = (char *) "text",
                .text = (char *) "🙂 fine, thanks",
                .status = (char *) "pending",
        };
        h = make_message(BOB, "huge", STORE_DIRECTION_IN, 5, huge->str);
        /* NULL optional fields read back as NULL, not "". */
        h.type = NULL;
        h.status = NULL;
        h.sender = NULL;

        g_assert_cmpint(store_append_message(f->store, &in, &seq), ==, 0);
        in.seq = seq;
        g_assert_cmpint(store_append_message(f->store, &out, &seq), ==, 0);
        out.seq = seq;
        g_assert_cmpint(out.seq, >, in.seq);
        g_assert_cmpint(store_append_message(f->store, &h, &seq), ==, 0);
        h.seq = seq;

        fixture_reopen(f);

        g_assert_cmpint(store_get_message(f->store, ALICE, "origin-1", &got), ==, 0);
        assert_message_equal(got, &in);
        g_assert_cmpuint(strlen(got->text), ==, big->len);
        g_clear_pointer(&got, store_message_free);

        g_assert_cmpint(store_get_message(f->store, ALICE, "local-ü-2", &got), ==, 0);
        assert_message_equal(got, &out);
        g_clear_pointer(&got, store_message_free);

        g_assert_cmpint(store_get_message(f->store, BOB, "huge", &got), ==, 0);
        assert_message_equal(got, &h);
        g_clear_pointer(&got, store_message_free);

        /* The key is (conversation, id): the id alone is not enough. */
        got = (StoreMessage *) 0x1;
        g_assert_cmpint(store_get_message(f->store, BOB, "origin-1", &got), ==, -ENOENT);
        g_assert_true(got == (StoreMessage *) 0x1);
        got = NULL;

        g_assert_cmpint(store_get_conversation(f->store, ALICE, &conv), ==, 0);
        g_assert_cmpstr(conv->id, ==, ALICE);
        g_assert_cmpstr(conv->kind, ==, "chat");
        g_assert_cmpstr(conv->name, ==, "");
        g_assert_cmpuint(conv->unread, ==, 1);
        g_assert_cmpint(conv->time_ms, ==, out.time_ms);
        assert_message_equal(conv->last, &out);

        {
                g_autoptr(StoreMessage) copy = store_message_copy(&in);
                assert_message_equal(copy, &in);
                g_assert_null(store_message_copy(NULL));
        }
}

static void test_invalid_arguments(Fixture *f, gconstpointer data) {
        StoreMessage m = make_message(ALICE, "x", STORE_DIRECTION_IN, 1, "hi");
        StoreMessage bad;
        GPtrArray *page = NULL;

        bad = m;
        bad.id = (char *) "";
        g_assert_cmpint(store_append_message(f->store, &bad, NULL), ==, -EINVAL);
        bad = m;
        bad.conversation = NULL;
        g_assert_cmpint(store_append_message(f->store, &bad, NULL), ==, -EINVAL);
        bad = m;
        bad.text = (char *) "\xff\xfe";
        g_assert_cmpint(store_append_message(f->store, &bad, NULL), ==, -EINVAL);
        bad = m;
        bad.stanza_id = (char *) "";
        g_assert_cmpint(store_append_message(f->store, &bad, NULL), ==, -EINVAL);
        bad = m;
        bad.direction = (StoreDirection) 7;
        g_assert_cmpint(store_append_message(f->store, &bad, NULL), ==, -EINVAL);

        g_assert_cmpint(store_get_messages(f->store, NULL, NULL, 10, &page, NULL), ==, -EINVAL);
        g_assert_null(page);
        g_assert_cmpint(store_commit(f->store), ==, -EINVAL);
        g_assert_cmpint(store_rollback(f->store), ==, -EINVAL);
        g_assert_cmpint(unread_total(f->store), ==, 0);

        g_assert_cmpstr(store_direction_to_string(STORE_DIRECTION_IN), ==, "in");
        g_assert_cmpstr(store_direction_to_string(STORE_DIRECTION_OUT), ==, "out");
        store_close(NULL);
}

static void test_duplicates(Fixture *f, gconstpointer data) {
        g_autoptr(StoreConversation) conv = NULL;
        StoreMessage m = make_message(ALICE, "dup", STORE_DIRECTION_IN, 100, "first");
        StoreMessage again = make_message(ALICE, "dup", STORE_DIRECTION_IN, 200, "second");
        StoreMessage by_stanza = make_message(ALICE, "other-id", STORE_DIRECTION_IN, 300, "third");
        StoreMessage elsewhere = make_message(BOB, "dup", STORE_DIRECTION_IN, 400, "fine");
        int64_t seq = -1, first;

        m.stanza_id = (char *) "sid-1";
        by_stanza.stanza_id = (char *) "sid-1";

        g_assert_cmpint(store_append_message(f->store, &m, &first), ==, 0);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 1);

        g_assert_cmpint(store_append_message(f->store, &again, &seq), ==, -EEXIST);
        g_assert_cmpint(seq, ==, -1);
        g_assert_cmpint(store_append_message(f->store, &by_stanza, &seq), ==, -EEXIST);
        g_assert_cmpint(seq, ==, -1);

        /* Same inside a batch: the duplicate does not spoil the rest. */
        g_assert_cmpint(store_begin(f->store), ==, 0);
        g_assert_cmpint(store_append_message(f->store, &again, NULL), ==, -EEXIST);
        g_assert_cmpint(store_append_message(f->store, &elsewhere, NULL), ==, 0);
        g_assert_cmpint(store_commit(f->store), ==, 0);

        g_assert_cmpint(store_get_conversation(f->store, ALICE, &conv), ==, 0);
        g_assert_cmpuint(conv->unread, ==, 1);
        g_assert_cmpint(conv->time_ms, ==, 100);
        g_assert_cmpint(conv->last->seq, ==, first);
        g_assert_cmpstr(conv->last->text, ==, "first");
        g_assert_cmpuint(unread_total(f->store), ==, 2);
        g_assert_cmpint(raw_query_int(f->dir, "SELECT count(*) FROM messages"), ==, 2);
}

/* Appends one message as a batch of one (the session's path): its seq, 0 for a
 * duplicate; *id (owned by the caller) becomes the id it was stored under. */
static int64_t append_one(Store *store, StoreMessage m, char **id) {
        StoreMessage *msgs[] = { &m };

        m.id = *id;
        g_assert_cmpint(store_append_messages(store, msgs, 1, NULL), ==, 0);
        *id = m.id;
        return m.seq;
}

/* A sender that reuses ids (a bot counting from 1): two messages with the
 * same id but different stanza-ids from our server are two messages, the
 * second stored under its stanza-id; copies (same stanza-id, or a missing
 * one on either side) are still duplicates. */
static void test_reused_id(Fixture *f, gconstpointer data) {
        g_autoptr(StoreConversation) conv = NULL;
        g_autoptr(StoreMessage) got = NULL;
        g_autofree char *id1 = g_strdup("1"), *id2 = g_strdup("1"), *copy = NULL, *squat = g_strdup("s-3");
        g_autofree char *id3 = g_strdup("1"), *mine = g_strdup("o-1"), *last = NULL;
        StoreMessage first = make_message(ALICE, NULL, STORE_DIRECTION_IN, 100, "first with id 1");
        StoreMessage second = make_message(ALICE, NULL, STORE_DIRECTION_IN, 200, "second with id 1");
        StoreMessage third = make_message(ALICE, NULL, STORE_DIRECTION_IN, 300, "third with id 1");
        StoreMessage other = make_message(ALICE, NULL, STORE_DIRECTION_IN, 250, "id looks like a stanza-id");
        StoreMessage out = make_message(ALICE, NULL, STORE_DIRECTION_OUT, 400, "mine");
        StoreMessage older = make_message(ALICE, "1", STORE_DIRECTION_IN, 50, "older with id 1");
        StoreMessage *page[] = { &older };
        int64_t seq1, seq2, seq3;

        first.stanza_id = (char *) "s-1";
        second.stanza_id = (char *) "s-2";
        third.stanza_id = (char *) "s-3";
        other.stanza_id = (char *) "s-x";

        seq1 = append_one(f->store, first, &id1);
        seq2 = append_one(f->store, second, &id2);
        g_assert_cmpint(seq1, >, 0);
        g_assert_cmpint(seq2, >, seq1);
        g_assert_cmpstr(id1, ==, "1");
        g_assert_cmpstr(id2, ==, "s-2");
        g_assert_cmpint(store_get_message(f->store, ALICE, "s-2", &got), ==, 0);
        g_assert_cmpstr(got->text, ==, "second with id 1");
        g_assert_cmpstr(got->wire_id, ==, "1");
        g_clear_pointer(&got, store_message_free);
        g_assert_cmpint(store_get_message(f->store, ALICE, "1", &got), ==, 0);
        g_assert_null(got->wire_id);
        g_clear_pointer(&got, store_message_free);

        /* copies of either (the archive's, a redelivery): duplicates, whatever their text */
        copy = g_strdup("1");
        second.text = (char *) "second, corrected since";
        g_assert_cmpint(append_one(f->store, second, &copy), ==, 0);
        g_assert_cmpstr(copy, ==, "1");
        g_assert_cmpint(append_one(f->store, first, &copy), ==, 0);
        /* without a stanza-id it cannot be told from a copy */
        third.stanza_id = NULL;
        g_assert_cmpint(append_one(f->store, third, &copy), ==, 0);
        third.stanza_id = (char *) "s-3";

        /* the stanza-id is some other message's id: a random one */
        g_assert_cmpint(append_one(f->store, other, &squat), >, 0);
        g_assert_cmpstr(squat, ==, "s-3");
        seq3 = append_one(f->store, third, &id3);
        g_assert_cmpint(seq3, >, seq2);
        g_assert_cmpstr(id3, !=, "1");
        g_assert_cmpstr(id3, !=, "s-3");
        g_assert_cmpint(store_get_message(f->store, ALICE, id3, &got), ==, 0);
        g_assert_cmpstr(got->text, ==, "third with id 1");
        g_assert_cmpstr(got->wire_id, ==, "1");
        g_clear_pointer(&got, store_message_free);

        /* our own message has no stanza-id: its carbon or archive copy is a copy */
        g_assert_cmpint(append_one(f->store, out, &mine), >, 0);
        out.stanza_id = (char *) "s-4";
        g_assert_cmpint(append_one(f->store, out, &mine), ==, 0);
        g_assert_cmpstr(mine, ==, "o-1");

        /* all four incoming ones count, in order */
        g_assert_cmpint(store_get_conversation(f->store, ALICE, &conv), ==, 0);
        g_assert_cmpuint(conv->unread, ==, 4);
        g_assert_cmpint(raw_query_int(f->dir, "SELECT count(*) FROM messages"), ==, 5);

        /* what the peer means by "1": the newest that came with it */
        g_assert_cmpint(store_get_message_by_wire_id(f->store, ALICE, "1", &got), ==, 0);
        g_assert_cmpstr(got->id, ==, id3);
        g_clear_pointer(&got, store_message_free);
        g_assert_cmpint(store_get_message_by_wire_id(f->store, ALICE, "s-3", &got), ==, 0);
        g_assert_cmpstr(got->text, ==, "id looks like a stanza-id");
        g_clear_pointer(&got, store_message_free);
        g_assert_cmpint(store_get_message_by_wire_id(f->store, ALICE, "none", &got), ==, -ENOENT);
        g_assert_cmpint(store_get_message_by_wire_id(f->store, BOB, "1", &got), ==, -ENOENT);

        /* one of them exactly, whatever its id: by the stanza-id the server gave it */
        g_assert_cmpint(store_get_message_by_stanza_id(f->store, ALICE, "s-2", &got), ==, 0);
        g_assert_cmpstr(got->text, ==, "second with id 1");
        g_clear_pointer(&got, store_message_free);
        g_assert_cmpint(store_get_message_by_stanza_id(f->store, ALICE, "s-1", &got), ==, 0);
        g_assert_cmpstr(got->id, ==, "1");
        g_clear_pointer(&got, store_message_free);
        g_assert_cmpint(store_get_message_by_stanza_id(f->store, ALICE, "1", &got), ==, -ENOENT);
        g_assert_cmpint(store_get_message_by_stanza_id(f->store, BOB, "s-2", &got), ==, -ENOENT);

        /* the displayed marker names the newest incoming one as its sender did */
        g_assert_cmpint(store_mark_read(f->store, ALICE, &last), ==, 0);
        g_assert_cmpstr(last, ==, "1");

        /* older history from the archive follows the same rule */
        older.stanza_id = (char *) "s-0";
        older.id = g_strdup("1");
        g_assert_cmpint(store_prepend_messages(f->store, page, 1), ==, 0);
        g_assert_cmpint(older.seq, <, seq1);
        g_assert_cmpstr(older.id, ==, "s-0");
        g_free(older.id);
        older.id = (char *) "1";
        older.stanza_id = (char *) "s-2";
        g_assert_cmpint(store_prepend_messages(f->store, page, 1), ==, 0);
        g_assert_cmpint(older.seq, ==, 0);
        g_assert_cmpstr(older.id, ==, "1");
        g_assert_cmpint(store_get_message_by_wire_id(f->store, ALICE, "1", &got), ==, 0);
        g_assert_cmpstr(got->id, ==, id3);
        g_clear_pointer(&got, store_message_free);

        fixture_reopen(f);
        g_assert_cmpint(store_get_message(f->store, ALICE, "s-0", &got), ==, 0);
        g_assert_cmpstr(got->wire_id, ==, "1");
        g_assert_cmpstr(got->text, ==, "older with id 1");
}

static void test_append_batch(Fixture *f, gconstpointer data) {
        g_autoptr(StoreConversation) alice = NULL, bob = NULL;
        StoreMessage a1 = make_message(ALICE, "a1", STORE_DIRECTION_IN, 100, "one");
        StoreMessage b1 = make_message(BOB, "b1", STORE_DIRECTION_IN, 110, "two");
        StoreMessage a2 = make_message(ALICE, "a2", STORE_DIRECTION_OUT, 120, "three");
        StoreMessage a1_again = make_message(ALICE, "a1", STORE_DIRECTION_IN, 130, "dup");
        StoreMessage a3 = make_message(ALICE, "a3", STORE_DIRECTION_IN, 140, "four");
        StoreMessage *batch[] = { &a1, &b1, &a2, &a1_again, &a3 };
        StoreMessage bad = make_message(ALICE, "", STORE_DIRECTION_IN, 150, "bad id");
        StoreMessage a4 = make_message(ALICE, "a4", STORE_DIRECTION_IN, 160, "five");
        StoreMessage *invalid[] = { &a4, &bad };
        size_t added = 0;

        g_assert_cmpint(store_append_messages(f->store, batch, G_N_ELEMENTS(batch), &added), ==, 0);
        g_assert_cmpuint(added, ==, 4);
        g_assert_cmpint(a1.seq, >, 0);
        g_assert_cmpint(b1.seq, >, a1.seq);
        g_assert_cmpint(a2.seq, >, b1.seq);
        g_assert_cmpint(a1_again.seq, ==, 0);       /* the duplicate, skipped */
        g_assert_cmpint(a3.seq, >, a2.seq);

        /* one update per conversation, equal to appending one by one */
        g_assert_cmpint(store_get_conversation(f->store, ALICE, &alice), ==, 0);
        g_assert_cmpuint(alice->unread, ==, 2);
        g_assert_cmpint(alice->time_ms, ==, 140);
        g_assert_cmpstr(alice->last->id, ==, "a3");
        g_assert_cmpint(store_get_conversation(f->store, BOB, &bob), ==, 0);
        g_assert_cmpuint(bob->unread, ==, 1);
        g_assert_cmpuint(unread_total(f->store), ==, 3);

        /* an invalid message refuses the whole batch, nothing is stored */
        g_assert_cmpint(store_append_messages(f->store, invalid, G_N_ELEMENTS(invalid), NULL), ==, -EINVAL);
        g_assert_cmpint(raw_query_int(f->dir, "SELECT count(*) FROM messages"), ==, 4);
        g_assert_cmpuint(unread_total(f->store), ==, 3);

        /* survives a reopen */
        fixture_reopen(f);
        g_assert_cmpuint(unread_total(f->store), ==, 3);
}

static void test_stanza_id_per_conversation(Fixture *f, gconstpointer data) {
        StoreMessage a = make_message(ALICE, "a", STORE_DIRECTION_IN, 1, "one");
        StoreMessage b = make_message(BOB, "b", STORE_DIRECTION_IN, 2, "two");
        StoreMessage a2 = make_message(ALICE, "a2", STORE_DIRECTION_IN, 3, "three");
        StoreMessage *batch[] = { &a, &b, &a2 };
        size_t added = 0;

        /* XEP-0359 stanza-ids are unique per archive, i.e. per conversation:
         * two archives may well hand out the same one. */
        a.stanza_id = b.stanza_id = a2.stanza_id = (char *) "archive-1";
        g_assert_cmpint(store_append_messages(f->store, batch, G_N_ELEMENTS(batch), &added), ==, 0);
        g_assert_cmpuint(added, ==, 2);
        g_assert_cmpint(a.seq, >, 0);
        g_assert_cmpint(b.seq, >, a.seq);
        g_assert_cmpint(a2.seq, ==, 0);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 1);
        g_assert_cmpuint(unread_of(f->store, BOB), ==, 1);
}

static void free_id_and_message(StoreMessage *m) {
        g_free(m->id);          /* the store may have replaced it */
        g_free(m);
}

/* More messages and conversations than append_batch() keeps on its stack, with
 * repeated ids and stanza-ids inside the batch, in the same conversation (then
 * duplicates, or for a repeated id with another stanza-id, a message stored
 * under its stanza-id) and in others (then not). */
static void test_append_big_batch(Fixture *f, gconstpointer data) {
        enum { N = 300, CONVERSATIONS = 13 };
        g_autoptr(GPtrArray) msgs = g_ptr_array_new_with_free_func((GDestroyNotify) free_id_and_message);
        g_autoptr(GPtrArray) strings = g_ptr_array_new_with_free_func(g_free);
        g_autoptr(GPtrArray) sent_ids = g_ptr_array_new_with_free_func(g_free);
        /* "conversation id X" -> the stanza-id of the message holding it, "" for none */
        g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        uint32_t unread[CONVERSATIONS] = { 0 };
        const StoreMessage *last[CONVERSATIONS] = { NULL };
        int64_t prev = 0;
        size_t added = 0, expected = 0, duplicates = 0, renamed = 0;

        for (unsigned i = 0; i < N; i++) {
                char *conversation = g_strdup_printf("user%u@example.org", i % CONVERSATIONS);
                unsigned id = i, stanza_id = i;
                StoreMessage *m = g_new(StoreMessage, 1);

                if (i % 10 == 9)
                        id = i - CONVERSATIONS;         /* same conversation */
                else if (i % 10 == 4)
                        id = i - 1;                     /* another one */
                else if (i % 15 == 14)
                        stanza_id = i - 2 * CONVERSATIONS;
                else if (i % 15 == 7)
                        stanza_id = i - 3;
                g_ptr_array_add(strings, conversation);
                *m = make_message(conversation, NULL, i % 3 ? STORE_DIRECTION_IN : STORE_DIRECTION_OUT, 1000 + i, "hi");
                m->id = g_strdup_printf("id-%u", id);
                m->stanza_id = i % 4 ? g_strdup_printf("s-%u", stanza_id) : NULL;
                g_ptr_array_add(sent_ids, g_strdup(m->id));
                g_ptr_array_add(strings, m->stanza_id);
                g_ptr_array_add(msgs, m);
        }

        g_assert_cmpint(store_append_messages(f->store, (StoreMessage *const *) msgs->pdata, N, &added), ==, 0);

        /* The model: a message is a duplicate if its conversation already has
         * its (non-NULL) stanza-id, or its id unless both messages have a
         * stanza-id (then different ones): that one is stored under its
         * stanza-id (none of the ids here looks like one). */
        for (unsigned i = 0; i < N; i++) {
                const StoreMessage *m = msgs->pdata[i];
                const char *sent_id = sent_ids->pdata[i];
                unsigned c = i % CONVERSATIONS;
                g_autofree char *id_key = g_strdup_printf("%s id %s", m->conversation, sent_id);
                g_autofree char *stanza_key = g_strdup_printf("%s stanza %s", m->conversation,
                                                              m->stanza_id ? m->stanza_id : "");
                const char *holder = g_hash_table_lookup(seen, id_key);
                bool dup = (m->stanza_id && g_hash_table_contains(seen, stanza_key)) ||
                           (holder && (!m->stanza_id || !*holder));

                if (dup) {
                        g_assert_cmpint(m->seq, ==, 0);
                        g_assert_cmpstr(m->id, ==, sent_id);
                        duplicates++;
                        continue;
                }
                g_assert_cmpint(m->seq, >, prev);
                prev = m->seq;
                if (holder) {
                        g_autoptr(StoreMessage) back = NULL;

                        g_assert_cmpstr(m->id, ==, m->stanza_id);
                        g_assert_cmpint(store_get_message(f->store, m->conversation, m->id, &back), ==, 0);
                        g_assert_cmpstr(back->wire_id, ==, sent_id);
                        g_clear_pointer(&id_key, g_free);
                        id_key = g_strdup_printf("%s id %s", m->conversation, m->id);
                        renamed++;
                } else
                        g_assert_cmpstr(m->id, ==, sent_id);
                g_hash_table_insert(seen, g_steal_pointer(&id_key), g_strdup(m->stanza_id ? m->stanza_id : ""));
                if (m->stanza_id)
                        g_hash_table_insert(seen, g_steal_pointer(&stanza_key), g_strdup(""));
                expected++;
                unread[c] += m->direction == STORE_DIRECTION_IN;
                last[c] = m;
        }
        g_assert_cmpuint(duplicates, >, 10);
        g_assert_cmpuint(renamed, >, 10);
        g_assert_cmpuint(added, ==, expected);
        g_assert_cmpint(raw_query_int(f->dir, "SELECT count(*) FROM messages"), ==, (int64_t) expected);

        for (unsigned c = 0; c < CONVERSATIONS; c++) {
                g_autofree char *conversation = g_strdup_printf("user%u@example.org", c);
                g_autoptr(StoreConversation) conv = NULL;

                g_assert_cmpint(store_get_conversation(f->store, conversation, &conv), ==, 0);
                g_assert_cmpuint(conv->unread, ==, unread[c]);
                g_assert_nonnull(last[c]);
                assert_message_equal(conv->last, last[c]);
                g_assert_cmpint(conv->time_ms, ==, last[c]->time_ms);
        }
}

/* A committed batch survives the process being killed right after the commit,
 * also one large enough for SQLite to spill pages to the WAL before the commit
 * (and then rewrite them), and each commit is visible to other connections as
 * soon as it returns. */
static void test_survives_sigkill(void) {
        g_autofree char *dir = make_tmp_dir();
        g_autofree char *text = g_strnfill(700, 'x');
        enum { SMALL_BATCHES = 20, SMALL = 50, BIG = 6000 };
        g_autofree char *integrity = NULL;
        g_autoptr(Store) store = NULL;
        int status = 0;
        pid_t pid;

        pid = fork();
        g_assert_cmpint(pid, >=, 0);
        if (pid == 0) {
                Store *s = NULL;
                unsigned n = 0;

                if (store_open(dir, &s) < 0)
                        _exit(1);
                for (unsigned b = 0; b < SMALL_BATCHES + 1; b++) {
                        unsigned size = b < SMALL_BATCHES ? SMALL : BIG;
                        g_autoptr(GPtrArray) msgs = g_ptr_array_new_with_free_func(g_free);
                        g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
                        size_t added = 0;

                        for (unsigned i = 0; i < size; i++, n++) {
                                char *id = g_uuid_string_random();
                                StoreMessage *m = g_new(StoreMessage, 1);

                                g_ptr_array_add(ids, id);
                                /* The big batch starts a conversation: its row's page is
                                 * written first, spilled to the WAL while the batch goes
                                 * on, and updated again at the end, which makes SQLite
                                 * overwrite that frame and rewrite the checksums of
                                 * all frames after it, after the commit frame. */
                                *m = make_message(size == BIG && i == 0 ? CAROL : n % 3 ? ALICE : BOB, id,
                                                  STORE_DIRECTION_IN, n, text);
                                g_ptr_array_add(msgs, m);
                        }
                        if (store_append_messages(s, (StoreMessage *const *) msgs->pdata, size, &added) < 0 ||
                            added != size)
                                _exit(2);
                        if (raw_query_int(dir, "SELECT count(*) FROM messages") != n)
                                _exit(3);
                }
                /* No store_close(), no exit handlers: whatever is not in the
                 * kernel by now is lost. */
                raise(SIGKILL);
                _exit(4);
        }
        g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
        g_assert_true(WIFSIGNALED(status));
        g_assert_cmpint(WTERMSIG(status), ==, SIGKILL);

        g_assert_cmpint(store_open(dir, &store), ==, 0);
        g_assert_cmpint(raw_query_int(dir, "SELECT count(*) FROM messages"), ==, SMALL_BATCHES * SMALL + BIG);
        integrity = raw_query_str(dir, "PRAGMA integrity_check");
        g_assert_cmpstr(integrity, ==, "ok");
        g_assert_cmpuint(unread_total(store), ==, SMALL_BATCHES * SMALL + BIG);
        g_clear_pointer(&store, store_close);
        remove_dir(dir);
}

static void test_transactions(Fixture *f, gconstpointer data) {
        g_autoptr(StoreMessage) got = NULL;

        g_assert_cmpint(store_begin(f->store), ==, 0);
        append(f->store, ALICE, "kept", STORE_DIRECTION_IN, 1);
        g_assert_cmpint(store_begin(f->store), ==, 0);
        append(f->store, ALICE, "undone", STORE_DIRECTION_IN, 2);
        g_assert_cmpint(store_rollback(f->store), ==, 0);
        /* Nothing is visible to others before the outermost commit. */
        g_assert_cmpint(raw_query_int(f->dir, "SELECT count(*) FROM messages"), ==, 0);
        g_assert_cmpint(store_commit(f->store), ==, 0);
        g_assert_cmpint(raw_query_int(f->dir, "SELECT count(*) FROM messages"), ==, 1);

        g_assert_cmpint(store_get_message(f->store, ALICE, "kept", &got), ==, 0);
        g_assert_cmpint(store_get_message(f->store, ALICE, "undone", &got), ==, -ENOENT);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 1);

        g_assert_cmpint(store_begin(f->store), ==, 0);
        append(f->store, BOB, "gone", STORE_DIRECTION_IN, 3);
        g_assert_cmpint(store_set_meta(f->store, "k", "v"), ==, 0);
        g_assert_cmpint(store_rollback(f->store), ==, 0);
        g_assert_cmpuint(unread_total(f->store), ==, 1);
        {
                g_autoptr(StoreConversation) c = NULL;
                g_autofree char *v = NULL;

                g_assert_cmpint(store_get_conversation(f->store, BOB, &c), ==, -ENOENT);
                g_assert_cmpint(store_get_meta(f->store, "k", &v), ==, 0);
                g_assert_null(v);
        }
}

static void check_paging(Store *store, const int64_t *expected, unsigned n, unsigned page_size) {
        g_autofree char *before = NULL;
        unsigned seen = 0, pages = 0;
        bool complete = false;

        while (!complete) {
                g_autoptr(GPtrArray) page = NULL;

                g_assert_cmpint(store_get_messages(store, ALICE, before, page_size, &page, &complete), ==, 0);
                pages++;
                g_assert_cmpuint(page->len, <=, page_size);
                for (unsigned i = 0; i < page->len; i++) {
                        StoreMessage *m = page->pdata[i];

                        g_assert_cmpuint(seen, <, n);
                        /* Newest first: expected[] is in append order. */
                        g_assert_cmpint(m->seq, ==, expected[n - 1 - seen]);
                        g_assert_cmpstr(m->conversation, ==, ALICE);
                        seen++;
                }
                g_assert_true(complete == (seen == n));
                if (page->len > 0) {
                        g_free(before);
                        before = g_strdup(((StoreMessage *) page->pdata[page->len - 1])->id);
                }
                g_assert_cmpuint(pages, <=, n / page_size + 1);
        }
        g_assert_cmpuint(seen, ==, n);
        g_assert_cmpuint(pages, ==, (n + page_size - 1) / page_size);

        /* Before the oldest: nothing, and nothing more to get. */
        {
                g_autoptr(GPtrArray) page = NULL;

                complete = false;
                g_assert_cmpint(store_get_messages(store, ALICE, before, page_size, &page, &complete), ==, 0);
                g_assert_cmpuint(page->len, ==, 0);
                g_assert_true(complete);
        }
}

static void test_paging(Fixture *f, gconstpointer data) {
        g_autofree int64_t *expected = g_new(int64_t, 1000);

        g_assert_cmpint(store_begin(f->store), ==, 0);
        for (unsigned i = 0; i < 1000; i++) {
                g_autofree char *id = g_strdup_printf("a-%u", i);

                expected[i] = append(f->store, ALICE, id, i % 3 ? STORE_DIRECTION_IN : STORE_DIRECTION_OUT, i);
                /* Another conversation interleaved, which paging must skip. */
                if (i % 7 == 0) {
                        g_autofree char *bid = g_strdup_printf("b-%u", i);
                        append(f->store, BOB, bid, STORE_DIRECTION_IN, i);
                }
        }
        g_assert_cmpint(store_commit(f->store), ==, 0);

        check_paging(f->store, expected, 1000, 50);
        check_paging(f->store, expected, 1000, 300);
        check_paging(f->store, expected, 1000, 1000);
        check_paging(f->store, expected, 1000, 5000);

        {
                g_autoptr(GPtrArray) page = NULL;
                bool complete = false;

                g_assert_cmpint(store_get_messages(f->store, CAROL, NULL, 10, &page, &complete), ==, 0);
                g_assert_cmpuint(page->len, ==, 0);
                g_assert_true(complete);
        }
}

static void test_paging_unknown_before(Fixture *f, gconstpointer data) {
        GPtrArray *page = NULL;
        bool complete = false;

        append(f->store, ALICE, "a", STORE_DIRECTION_IN, 1);
        append(f->store, BOB, "b", STORE_DIRECTION_IN, 2);

        g_assert_cmpint(store_get_messages(f->store, ALICE, "nope", 10, &page, &complete), ==, -ENOENT);
        /* An id from another conversation is not a position in this one. */
        g_assert_cmpint(store_get_messages(f->store, ALICE, "b", 10, &page, &complete), ==, -ENOENT);
        g_assert_null(page);
        g_assert_false(complete);

        /* "" means from the newest. */
        g_assert_cmpint(store_get_messages(f->store, ALICE, "", 10, &page, &complete), ==, 0);
        g_assert_cmpuint(page->len, ==, 1);
        g_assert_true(complete);
        g_ptr_array_unref(page);
}

static void test_unread(Fixture *f, gconstpointer data) {
        append(f->store, ALICE, "a1", STORE_DIRECTION_IN, 1);
        append(f->store, ALICE, "a2", STORE_DIRECTION_IN, 2);
        append(f->store, ALICE, "a3", STORE_DIRECTION_OUT, 3);
        append(f->store, BOB, "b1", STORE_DIRECTION_IN, 4);
        append(f->store, CAROL, "c1", STORE_DIRECTION_OUT, 5);

        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 2);
        g_assert_cmpuint(unread_of(f->store, BOB), ==, 1);
        g_assert_cmpuint(unread_of(f->store, CAROL), ==, 0);
        g_assert_cmpuint(unread_total(f->store), ==, 3);

        fixture_reopen(f);
        g_assert_cmpuint(unread_total(f->store), ==, 3);
}

static void test_mark_read(Fixture *f, gconstpointer data) {
        char *last = (char *) "untouched";

        append(f->store, ALICE, "a1", STORE_DIRECTION_IN, 1);
        append(f->store, ALICE, "a2", STORE_DIRECTION_IN, 2);
        append(f->store, ALICE, "a3", STORE_DIRECTION_OUT, 3);
        append(f->store, BOB, "b1", STORE_DIRECTION_IN, 4);
        append(f->store, CAROL, "c1", STORE_DIRECTION_OUT, 5);

        g_assert_cmpint(store_mark_read(f->store, "nobody@example.org", &last), ==, -ENOENT);
        g_assert_cmpstr(last, ==, "untouched");

        /* The newest incoming one, not the newer outgoing reply. */
        g_assert_cmpint(store_mark_read(f->store, ALICE, &last), ==, 0);
        g_assert_cmpstr(last, ==, "a2");
        g_free(last);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 0);
        g_assert_cmpuint(unread_of(f->store, BOB), ==, 1);
        g_assert_cmpuint(unread_total(f->store), ==, 1);

        last = (char *) "untouched";
        g_assert_cmpint(store_mark_read(f->store, CAROL, &last), ==, 0);
        g_assert_null(last);

        g_assert_cmpint(store_mark_read(f->store, BOB, NULL), ==, 0);
        g_assert_cmpuint(unread_total(f->store), ==, 0);

        append(f->store, ALICE, "a4", STORE_DIRECTION_IN, 6);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 1);
}

static void test_conversation_order(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) list = NULL;
        const char *order[] = { CAROL, "dave@example.org", BOB, ALICE };

        append(f->store, ALICE, "a1", STORE_DIRECTION_IN, 300);
        append(f->store, BOB, "b1", STORE_DIRECTION_IN, 100);
        append(f->store, "dave@example.org", "d1", STORE_DIRECTION_IN, 350);
        append(f->store, CAROL, "c1", STORE_DIRECTION_OUT, 50);
        /* Same time as Alice's but appended later: wins the tie. */
        append(f->store, BOB, "b2", STORE_DIRECTION_OUT, 300);
        /* An older message appended later (offline storage, archive
         * catch-up) moves neither the time nor the last message back. */
        append(f->store, "dave@example.org", "d2", STORE_DIRECTION_IN, 10);
        append(f->store, CAROL, "c2", STORE_DIRECTION_IN, 400);

        g_assert_cmpint(store_list_conversations(f->store, &list), ==, 0);
        g_assert_cmpuint(list->len, ==, G_N_ELEMENTS(order));
        for (unsigned i = 0; i < list->len; i++) {
                StoreConversation *c = list->pdata[i];

                g_assert_cmpstr(c->id, ==, order[i]);
                g_assert_nonnull(c->last);
                g_assert_cmpstr(c->last->conversation, ==, c->id);
                g_assert_cmpint(c->last->time_ms, ==, c->time_ms);
        }
        g_assert_cmpstr(((StoreConversation *) list->pdata[0])->last->id, ==, "c2");
        g_assert_cmpstr(((StoreConversation *) list->pdata[1])->last->id, ==, "d1");
        g_assert_cmpuint(((StoreConversation *) list->pdata[1])->unread, ==, 2);
        g_assert_cmpstr(((StoreConversation *) list->pdata[2])->last->id, ==, "b2");
}

/* The same within a batch, across batches, and for a conversation the
 * archive created: the conversation's time is its newest message's, and its
 * last message is that one (of equal times, the one appended later). */
static void test_conversation_time_never_goes_back(Fixture *f, gconstpointer data) {
        g_autoptr(StoreConversation) c = NULL;
        StoreMessage live = make_message(ALICE, "live", STORE_DIRECTION_IN, 500, "now");
        StoreMessage late = make_message(ALICE, "late", STORE_DIRECTION_IN, 100, "from offline storage");
        StoreMessage later = make_message(ALICE, "later", STORE_DIRECTION_IN, 200, "caught up");
        StoreMessage same = make_message(ALICE, "same", STORE_DIRECTION_OUT, 500, "as old as live");
        StoreMessage old = make_message(BOB, "old", STORE_DIRECTION_IN, 300, "archive");
        StoreMessage older = make_message(BOB, "older", STORE_DIRECTION_IN, 250, "delayed");
        StoreMessage *batch[] = { &live, &late }, *catch_up[] = { &later }, *page[] = { &old };

        g_assert_cmpint(store_append_messages(f->store, batch, G_N_ELEMENTS(batch), NULL), ==, 0);
        g_assert_cmpint(store_get_conversation(f->store, ALICE, &c), ==, 0);
        g_assert_cmpint(c->time_ms, ==, 500);
        g_assert_cmpstr(c->last->id, ==, "live");
        g_clear_pointer(&c, store_conversation_free);

        g_assert_cmpint(store_append_messages(f->store, catch_up, 1, NULL), ==, 0);
        g_assert_cmpint(store_get_conversation(f->store, ALICE, &c), ==, 0);
        g_assert_cmpint(c->time_ms, ==, 500);
        g_assert_cmpstr(c->last->id, ==, "live");
        g_assert_cmpuint(c->unread, ==, 3);     /* still unread, however old */
        g_clear_pointer(&c, store_conversation_free);

        g_assert_cmpint(store_append_message(f->store, &same, NULL), ==, 0);
        g_assert_cmpint(store_get_conversation(f->store, ALICE, &c), ==, 0);
        g_assert_cmpint(c->time_ms, ==, 500);
        g_assert_cmpstr(c->last->id, ==, "same");
        g_clear_pointer(&c, store_conversation_free);

        g_assert_cmpint(store_prepend_messages(f->store, page, 1), ==, 0);
        g_assert_cmpint(store_append_message(f->store, &older, NULL), ==, 0);
        g_assert_cmpint(store_get_conversation(f->store, BOB, &c), ==, 0);
        g_assert_cmpint(c->time_ms, ==, 300);
        g_assert_cmpstr(c->last->id, ==, "old");
}

static void test_message_status(Fixture *f, gconstpointer data) {
        g_autoptr(StoreMessage) got = NULL;
        g_autoptr(StoreConversation) conv = NULL;

        append(f->store, ALICE, "out-1", STORE_DIRECTION_OUT, 1);

        g_assert_cmpint(store_set_message_status(f->store, ALICE, "out-1", "delivered"), ==, 0);
        g_assert_cmpint(store_set_message_status(f->store, ALICE, "out-1", "delivered"), ==, 0);
        g_assert_cmpint(store_set_message_status(f->store, ALICE, "nope", "read"), ==, -ENOENT);
        g_assert_cmpint(store_set_message_status(f->store, BOB, "out-1", "read"), ==, -ENOENT);
        g_assert_cmpint(store_set_message_status(f->store, ALICE, "out-1", NULL), ==, -EINVAL);

        fixture_reopen(f);
        g_assert_cmpint(store_get_message(f->store, ALICE, "out-1", &got), ==, 0);
        g_assert_cmpstr(got->status, ==, "delivered");
        g_assert_cmpint(store_get_conversation(f->store, ALICE, &conv), ==, 0);
        g_assert_cmpstr(conv->last->status, ==, "delivered");
}

static void test_meta(Fixture *f, gconstpointer data) {
        char *v = (char *) "untouched";

        g_assert_cmpint(store_get_meta(f->store, "mam-last-id", &v), ==, 0);
        g_assert_null(v);

        g_assert_cmpint(store_set_meta(f->store, "mam-last-id", "abc"), ==, 0);
        g_assert_cmpint(store_set_meta(f->store, "mam-last-id", "déf 🔑"), ==, 0);
        g_assert_cmpint(store_set_meta(f->store, "roster-ver", ""), ==, 0);

        fixture_reopen(f);
        g_assert_cmpint(store_get_meta(f->store, "mam-last-id", &v), ==, 0);
        g_assert_cmpstr(v, ==, "déf 🔑");
        g_free(v);
        g_assert_cmpint(store_get_meta(f->store, "roster-ver", &v), ==, 0);
        g_assert_cmpstr(v, ==, "");
        g_free(v);

        g_assert_cmpint(store_set_meta(f->store, "mam-last-id", NULL), ==, 0);
        g_assert_cmpint(store_get_meta(f->store, "mam-last-id", &v), ==, 0);
        g_assert_null(v);
        g_assert_cmpint(store_set_meta(f->store, "", "x"), ==, -EINVAL);
}

static void test_messages_after(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) msgs = NULL;
        int64_t seq[5], last = -1;

        g_assert_cmpint(store_last_seq(f->store, &last), ==, 0);
        g_assert_cmpint(last, ==, 0);
        g_assert_cmpint(store_list_messages_after(f->store, 0, 10, &msgs), ==, 0);
        g_assert_cmpuint(msgs->len, ==, 0);
        g_clear_pointer(&msgs, g_ptr_array_unref);

        for (int i = 0; i < 5; i++) {
                char id[8];
                g_snprintf(id, sizeof id, "m%d", i);
                StoreMessage m = make_message(i % 2 ? BOB : ALICE, id, STORE_DIRECTION_IN, 100 + i, id);
                g_assert_cmpint(store_append_message(f->store, &m, &seq[i]), ==, 0);
        }
        g_assert_cmpint(store_last_seq(f->store, &last), ==, 0);
        g_assert_cmpint(last, ==, seq[4]);

        /* both conversations, in history order, from just after the mark */
        g_assert_cmpint(store_list_messages_after(f->store, seq[1], 10, &msgs), ==, 0);
        g_assert_cmpuint(msgs->len, ==, 3);
        for (guint i = 0; i < 3; i++) {
                StoreMessage *m = g_ptr_array_index(msgs, i);
                g_assert_cmpint(m->seq, ==, seq[i + 2]);
                g_assert_cmpstr(m->conversation, ==, (i + 2) % 2 ? BOB : ALICE);
        }
        g_clear_pointer(&msgs, g_ptr_array_unref);

        /* limit: the oldest ones first */
        g_assert_cmpint(store_list_messages_after(f->store, 0, 2, &msgs), ==, 0);
        g_assert_cmpuint(msgs->len, ==, 2);
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(msgs, 1))->id, ==, "m1");
        g_clear_pointer(&msgs, g_ptr_array_unref);

        g_assert_cmpint(store_list_messages_after(f->store, seq[4], 10, &msgs), ==, 0);
        g_assert_cmpuint(msgs->len, ==, 0);
        g_assert_cmpint(store_list_messages_after(f->store, 0, 0, &msgs), ==, -EINVAL);
}

static void test_prepend(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) page = NULL;
        g_autoptr(StoreConversation) conv = NULL;
        StoreMessage live = make_message(ALICE, "live", STORE_DIRECTION_IN, 500, "live");
        StoreMessage o3 = make_message(ALICE, "o3", STORE_DIRECTION_IN, 300, "older 3");
        StoreMessage o2 = make_message(ALICE, "o2", STORE_DIRECTION_OUT, 200, "older 2");
        StoreMessage o1 = make_message(ALICE, "o1", STORE_DIRECTION_IN, 100, "older 1");
        StoreMessage dup = make_message(ALICE, "live", STORE_DIRECTION_IN, 500, "live");
        StoreMessage b1 = make_message(BOB, "b1", STORE_DIRECTION_IN, 50, "bob's old one");
        StoreMessage *first[] = { &dup, &o3 }, *second[] = { &o2, &o1 }, *bob[] = { &b1 };
        bool complete = false;

        o3.stanza_id = (char *) "archive-3";   /* the server's id; ours (o2) and o1 have none */
        g_assert_cmpint(store_append_message(f->store, &live, NULL), ==, 0);   /* seq 1 */
        /* newest first; below seq 1 comes -1 (0 is nobody's seq), then -2, -3 */
        g_assert_cmpint(store_prepend_messages(f->store, first, 2), ==, 0);
        g_assert_cmpint(dup.seq, ==, 0);
        g_assert_cmpint(o3.seq, ==, -1);
        g_assert_cmpint(store_prepend_messages(f->store, second, 2), ==, 0);
        g_assert_cmpint(o2.seq, ==, -2);
        g_assert_cmpint(o1.seq, ==, -3);

        g_assert_cmpint(store_get_messages(f->store, ALICE, NULL, 10, &page, &complete), ==, 0);
        g_assert_cmpuint(page->len, ==, 4);
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(page, 0))->id, ==, "live");
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(page, 1))->id, ==, "o3");
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(page, 3))->id, ==, "o1");
        g_assert_true(complete);
        g_clear_pointer(&page, g_ptr_array_unref);
        g_assert_cmpint(store_get_messages(f->store, ALICE, "o3", 1, &page, &complete), ==, 0);
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(page, 0))->id, ==, "o2");
        g_assert_false(complete);

        /* history does not change the conversation's last message or unread count */
        g_assert_cmpint(store_get_conversation(f->store, ALICE, &conv), ==, 0);
        g_assert_cmpstr(conv->last->id, ==, "live");
        g_assert_cmpuint(conv->unread, ==, 1);
        g_clear_pointer(&conv, store_conversation_free);

        /* a conversation known only from its history is created with it */
        g_assert_cmpint(store_prepend_messages(f->store, bob, 1), ==, 0);
        g_assert_cmpint(store_get_conversation(f->store, BOB, &conv), ==, 0);
        g_assert_cmpstr(conv->last->id, ==, "b1");
        g_assert_cmpuint(conv->unread, ==, 0);
        g_assert_cmpint(conv->time_ms, ==, 50);

        g_autoptr(StoreMessage) oldest = NULL;
        g_assert_cmpint(store_oldest_message(f->store, ALICE, &oldest), ==, 0);
        g_assert_cmpstr(oldest->id, ==, "o1");
        g_assert_cmpint(oldest->time_ms, ==, 100);
        g_clear_pointer(&oldest, store_message_free);
        g_assert_cmpint(store_oldest_message(f->store, "nobody@x", &oldest), ==, -ENOENT);

        /* the oldest the archive knows by id: past those without one */
        g_assert_cmpint(store_oldest_archived_message(f->store, ALICE, &oldest), ==, 0);
        g_assert_cmpstr(oldest->id, ==, "o3");
        g_assert_cmpstr(oldest->stanza_id, ==, "archive-3");
        g_clear_pointer(&oldest, store_message_free);
        g_assert_cmpint(store_oldest_archived_message(f->store, BOB, &oldest), ==, -ENOENT);
        g_assert_cmpint(store_oldest_archived_message(f->store, "nobody@x", &oldest), ==, -ENOENT);
}

static void test_search(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) hits = NULL;
        static const char *const texts[] = {
                "Meet at the café tomorrow", "the CAFE is closed", "nothing here",
                "quote \" and star * and NEAR(x) AND OR", "cafeteria food",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
                char id[8];
                g_snprintf(id, sizeof id, "s%zu", i);
                StoreMessage m = make_message(i % 2 ? BOB : ALICE, id, STORE_DIRECTION_IN, 100 + (int64_t) i, texts[i]);
                g_assert_cmpint(store_append_message(f->store, &m, NULL), ==, 0);
        }
        /* diacritics and case do not matter; the last word also matches as a prefix; newest first */
        g_assert_cmpint(store_search(f->store, "cafe", NULL, 10, &hits), ==, 0);
        g_assert_cmpuint(hits->len, ==, 3);
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(hits, 0))->id, ==, "s4");
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(hits, 2))->id, ==, "s0");
        g_clear_pointer(&hits, g_ptr_array_unref);
        /* every word must occur; only as a prefix for the last */
        g_assert_cmpint(store_search(f->store, "cafe tomorrow", NULL, 10, &hits), ==, 0);
        g_assert_cmpuint(hits->len, ==, 1);
        g_clear_pointer(&hits, g_ptr_array_unref);
        g_assert_cmpint(store_search(f->store, "caf closed", NULL, 10, &hits), ==, 0);
        g_assert_cmpuint(hits->len, ==, 0);
        g_clear_pointer(&hits, g_ptr_array_unref);
        /* one conversation; limit */
        g_assert_cmpint(store_search(f->store, "cafe", BOB, 10, &hits), ==, 0);
        g_assert_cmpuint(hits->len, ==, 1);
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(hits, 0))->conversation, ==, BOB);
        g_clear_pointer(&hits, g_ptr_array_unref);
        g_assert_cmpint(store_search(f->store, "cafe", NULL, 1, &hits), ==, 0);
        g_assert_cmpuint(hits->len, ==, 1);
        g_clear_pointer(&hits, g_ptr_array_unref);
        /* FTS5 syntax is just text */
        g_assert_cmpint(store_search(f->store, "NEAR(x) \" * AND", NULL, 10, &hits), ==, 0);
        g_assert_cmpuint(hits->len, ==, 1);
        g_clear_pointer(&hits, g_ptr_array_unref);
        g_assert_cmpint(store_search(f->store, "  \t ", NULL, 10, &hits), ==, -EINVAL);
        /* corrections and retractions keep the index true */
        g_assert_cmpint(store_edit_message(f->store, ALICE, "s0", "see you at the library"), ==, 0);
        g_assert_cmpint(store_revoke_message(f->store, BOB, "s1"), >=, 0);
        fixture_reopen(f);
        g_assert_cmpint(store_search(f->store, "cafe", NULL, 10, &hits), ==, 0);
        g_assert_cmpuint(hits->len, ==, 1);
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(hits, 0))->id, ==, "s4");
        g_clear_pointer(&hits, g_ptr_array_unref);
        g_assert_cmpint(store_search(f->store, "library", NULL, 10, &hits), ==, 0);
        g_assert_cmpuint(hits->len, ==, 1);
        g_clear_pointer(&hits, g_ptr_array_unref);

        /* appended after the last search: not indexed yet; edited before it is */
        {
                StoreMessage late = make_message(ALICE, "late", STORE_DIRECTION_OUT, 200, "first words");
                bool done = false;
                g_assert_cmpint(store_append_message(f->store, &late, NULL), ==, 0);
                g_assert_cmpint(store_edit_message(f->store, ALICE, "late", "second words"), ==, 0);
                g_assert_cmpint(store_search(f->store, "first", NULL, 10, &hits), ==, 0);
                g_assert_cmpuint(hits->len, ==, 0);
                g_clear_pointer(&hits, g_ptr_array_unref);
                g_assert_cmpint(store_search(f->store, "second", NULL, 10, &hits), ==, 0);
                g_assert_cmpuint(hits->len, ==, 1);
                g_clear_pointer(&hits, g_ptr_array_unref);
                g_assert_cmpint(store_index_pending(f->store, 10, &done), ==, 0);
                g_assert_true(done);
        }
        /* the idle indexing, step by step, and its mark survives a restart */
        for (int i = 0; i < 5; i++) {
                char id[8];
                g_snprintf(id, sizeof id, "x%d", i);
                StoreMessage m = make_message(BOB, id, STORE_DIRECTION_IN, 300 + i, "xylophone");
                g_assert_cmpint(store_append_message(f->store, &m, NULL), ==, 0);
        }
        {
                bool done = true;
                g_assert_cmpint(store_index_pending(f->store, 3, &done), ==, 0);
                g_assert_false(done);
                fixture_reopen(f);
                g_assert_cmpint(store_index_pending(f->store, 3, &done), ==, 0);
                g_assert_false(done);
                g_assert_cmpint(store_index_pending(f->store, 3, &done), ==, 0);
                g_assert_true(done);
        }
        g_assert_cmpint(store_search(f->store, "xylophone", NULL, 10, &hits), ==, 0);
        g_assert_cmpuint(hits->len, ==, 5);     /* each once */
}

static void test_read_by_peer(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) ids = NULL;
        g_autoptr(StoreMessage) m = NULL;
        const char *status[] = { "read", "delivered", "sent", "pending", "sent", "sent" };

        for (int i = 0; i < 6; i++) {
                char id[8];
                g_snprintf(id, sizeof id, "o%d", i);
                StoreMessage o = make_message(ALICE, id, STORE_DIRECTION_OUT, 100 + i, id);
                o.status = (char *) status[i];
                g_assert_cmpint(store_append_message(f->store, &o, NULL), ==, 0);
        }
        StoreMessage in = make_message(ALICE, "i1", STORE_DIRECTION_IN, 150, "theirs");
        StoreMessage other = make_message(BOB, "b1", STORE_DIRECTION_OUT, 160, "bob's");
        other.status = (char *) "sent";
        g_assert_cmpint(store_append_message(f->store, &in, NULL), ==, 0);
        g_assert_cmpint(store_append_message(f->store, &other, NULL), ==, 0);

        /* o4 displayed: o1, o2 were unread by the peer; o0 already read, o3
         * never sent, o4 itself is the caller's, o5 is later */
        g_assert_cmpint(store_mark_read_by_peer(f->store, ALICE, "o4", &ids), ==, 0);
        g_assert_cmpuint(ids->len, ==, 2);
        g_assert_cmpstr(g_ptr_array_index(ids, 0), ==, "o1");
        g_assert_cmpstr(g_ptr_array_index(ids, 1), ==, "o2");
        g_clear_pointer(&ids, g_ptr_array_unref);
        g_assert_cmpint(store_get_message(f->store, ALICE, "o3", &m), ==, 0);
        g_assert_cmpstr(m->status, ==, "pending");
        g_clear_pointer(&m, store_message_free);
        g_assert_cmpint(store_get_message(f->store, ALICE, "o5", &m), ==, 0);
        g_assert_cmpstr(m->status, ==, "sent");
        g_clear_pointer(&m, store_message_free);
        g_assert_cmpint(store_get_message(f->store, BOB, "b1", &m), ==, 0);
        g_assert_cmpstr(m->status, ==, "sent");
        /* again: nothing left */
        g_assert_cmpint(store_mark_read_by_peer(f->store, ALICE, "o4", &ids), ==, 0);
        g_assert_cmpuint(ids->len, ==, 0);
        g_assert_cmpint(store_mark_read_by_peer(f->store, ALICE, "nope", &ids), ==, -ENOENT);
}

static void test_prepend_into_empty(Fixture *f, gconstpointer data) {
        StoreMessage old1 = make_message(ALICE, "h1", STORE_DIRECTION_IN, 10, "history");
        StoreMessage *page[] = { &old1 };
        StoreMessage live = make_message(ALICE, "l1", STORE_DIRECTION_IN, 20, "live");
        StoreMessage mine = make_message(ALICE, "l2", STORE_DIRECTION_OUT, 30, "mine");
        int64_t seq = 0;

        /* an empty cache gets history first (deleted cache, then GetMessages):
         * the next appends must still get positive seqs, never 0 */
        g_assert_cmpint(store_prepend_messages(f->store, page, 1), ==, 0);
        g_assert_cmpint(old1.seq, ==, -1);
        g_assert_cmpint(store_append_message(f->store, &live, &seq), ==, 0);
        g_assert_cmpint(seq, ==, 1);
        fixture_reopen(f);
        g_assert_cmpint(store_append_message(f->store, &mine, &seq), ==, 0);
        g_assert_cmpint(seq, ==, 2);
        /* and after a reopen with only history in it */
        {
                StoreMessage b = make_message(BOB, "hb", STORE_DIRECTION_IN, 5, "bob history");
                StoreMessage *p2[] = { &b };
                g_assert_cmpint(store_prepend_messages(f->store, p2, 1), ==, 0);
                g_assert_cmpint(b.seq, ==, -2);
        }
}

/*
 * A VFS that passes everything to the default one, but fails writes to the
 * WAL while fail_wal_writes is set. In WAL mode a small transaction's pages
 * reach the WAL only when it commits, so this makes a COMMIT fail (as a full
 * disk would) while every statement before it succeeds.
 */
typedef struct FaultFile {
        sqlite3_file base;
        bool wal;
        sqlite3_file *real;     /* follows this struct, szOsFile of the real VFS */
} FaultFile;

static sqlite3_vfs *fault_real_vfs;
static bool fail_wal_writes;

#define REAL(f) (((FaultFile *) (f))->real)

static int fault_close(sqlite3_file *f) {
        return REAL(f)->pMethods->xClose(REAL(f));
}
static int fault_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off) {
        return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}
static int fault_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off) {
        if (((FaultFile *) f)->wal && fail_wal_writes)
                return SQLITE_IOERR_WRITE;
        return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}
static int fault_truncate(sqlite3_file *f, sqlite3_int64 size) {
        return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int fault_sync(sqlite3_file *f, int flags) {
        return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int fault_file_size(sqlite3_file *f, sqlite3_int64 *size) {
        return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int fault_lock(sqlite3_file *f, int lock) {
        return REAL(f)->pMethods->xLock(REAL(f), lock);
}
static int fault_unlock(sqlite3_file *f, int lock) {
        return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}
static int fault_check_reserved_lock(sqlite3_file *f, int *out) {
        return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int fault_file_control(sqlite3_file *f, int op, void *arg) {
        return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int fault_sector_size(sqlite3_file *f) {
        return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int fault_device_characteristics(sqlite3_file *f) {
        return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int fault_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **p) {
        return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, p);
}
static int fault_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
        return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void fault_shm_barrier(sqlite3_file *f) {
        REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int fault_shm_unmap(sqlite3_file *f, int delete_flag) {
        return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}
static int fault_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p) {
        return REAL(f)->pMethods->xFetch(REAL(f), off, n, p);
}
static int fault_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) {
        return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods fault_io = {
        .iVersion = 3,
        .xClose = fault_close, .xRead = fault_read, .xWrite = fault_write, .xTruncate = fault_truncate,
        .xSync = fault_sync, .xFileSize = fault_file_size, .xLock = fault_lock, .xUnlock = fault_unlock,
        .xCheckReservedLock = fault_check_reserved_lock, .xFileControl = fault_file_control,
        .xSectorSize = fault_sector_size, .xDeviceCharacteristics = fault_device_characteristics,
        .xShmMap = fault_shm_map, .xShmLock = fault_shm_lock, .xShmBarrier = fault_shm_barrier,
        .xShmUnmap = fault_shm_unmap, .xFetch = fault_fetch, .xUnfetch = fault_unfetch,
};

static int fault_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags, int *out_flags) {
        FaultFile *f = (FaultFile *) file;
        int r;

        f->real = (sqlite3_file *) (f + 1);
        f->wal = (flags & SQLITE_OPEN_WAL) != 0;
        r = fault_real_vfs->xOpen(fault_real_vfs, name, f->real, flags, out_flags);
        /* SQLite calls xClose only when pMethods is set */
        f->base.pMethods = f->real->pMethods ? &fault_io : NULL;
        return r;
}

/* Everything else goes to the default VFS as it is. */
static sqlite3_vfs fault_vfs;

static void fault_vfs_install(void) {
        g_assert_cmpint(sqlite3_initialize(), ==, SQLITE_OK);
        fault_real_vfs = sqlite3_vfs_find(NULL);
        g_assert_nonnull(fault_real_vfs);
        fault_vfs = *fault_real_vfs;
        fault_vfs.zName = "imd-test-fault";
        fault_vfs.szOsFile = (int) sizeof(FaultFile) + fault_real_vfs->szOsFile;
        fault_vfs.xOpen = fault_open;
        fault_vfs.pAppData = NULL;
        g_assert_cmpint(sqlite3_vfs_register(&fault_vfs, 1), ==, SQLITE_OK);
}

static void fault_vfs_remove(void) {
        g_assert_cmpint(sqlite3_vfs_unregister(&fault_vfs), ==, SQLITE_OK);
        g_assert_cmpint(sqlite3_vfs_register(fault_real_vfs, 1), ==, SQLITE_OK);
}

/* History that holds only archive pages (seq < 0) when the append that would
 * have stored its first positive seq is undone, by a failed COMMIT or by the
 * caller's rollback: the next append still gets seq 1, not 0 (which would
 * read as a duplicate, stored and never announced). */
static void test_append_after_failed_commit(void) {
        g_autofree char *dir = make_tmp_dir();
        g_autoptr(Store) store = NULL;
        g_autoptr(StoreMessage) got = NULL;
        StoreMessage old = make_message(ALICE, "h1", STORE_DIRECTION_IN, 10, "history");
        StoreMessage lost = make_message(ALICE, "l1", STORE_DIRECTION_IN, 20, "lost");
        StoreMessage undone = make_message(ALICE, "u1", STORE_DIRECTION_IN, 25, "undone");
        StoreMessage live = make_message(ALICE, "l2", STORE_DIRECTION_IN, 30, "live");
        StoreMessage next = make_message(ALICE, "l3", STORE_DIRECTION_IN, 40, "next");
        StoreMessage *page[] = { &old }, *batch[] = { &lost };
        int64_t seq = 0;

        fault_vfs_install();
        g_assert_cmpint(store_open(dir, &store), ==, 0);
        g_assert_cmpint(store_prepend_messages(store, page, 1), ==, 0);
        g_assert_cmpint(old.seq, ==, -1);

        fail_wal_writes = true;
        g_assert_cmpint(store_append_message(store, &lost, &seq), ==, -EIO);
        g_assert_cmpint(store_append_messages(store, batch, 1, NULL), ==, -EIO);
        fail_wal_writes = false;
        g_assert_cmpint(store_get_message(store, ALICE, "l1", &got), ==, -ENOENT);

        /* the caller's own transaction, rolled back */
        g_assert_cmpint(store_begin(store), ==, 0);
        g_assert_cmpint(store_append_message(store, &undone, &seq), ==, 0);
        g_assert_cmpint(seq, ==, 1);
        g_assert_cmpint(store_rollback(store), ==, 0);

        seq = 0;
        g_assert_cmpint(store_append_message(store, &live, &seq), ==, 0);
        g_assert_cmpint(seq, ==, 1);
        g_assert_cmpint(store_append_message(store, &next, &seq), ==, 0);
        g_assert_cmpint(seq, ==, 2);
        g_assert_cmpuint(unread_of(store, ALICE), ==, 2);

        g_clear_pointer(&store, store_close);
        fault_vfs_remove();
        remove_dir(dir);
}

static void test_list_unsent(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) unsent = NULL;
        StoreMessage a = make_message(ALICE, "o1", STORE_DIRECTION_OUT, 100, "one");
        StoreMessage b = make_message(BOB, "o2", STORE_DIRECTION_OUT, 110, "two");
        StoreMessage c = make_message(ALICE, "o3", STORE_DIRECTION_OUT, 120, "three");
        StoreMessage in = make_message(ALICE, "i1", STORE_DIRECTION_IN, 130, "incoming");

        a.status = b.status = c.status = (char *) "pending";
        in.status = (char *) "pending";         /* never an outbox entry: it is incoming */
        g_assert_cmpint(store_append_message(f->store, &a, NULL), ==, 0);
        g_assert_cmpint(store_append_message(f->store, &b, NULL), ==, 0);
        g_assert_cmpint(store_append_message(f->store, &c, NULL), ==, 0);
        g_assert_cmpint(store_append_message(f->store, &in, NULL), ==, 0);
        g_assert_cmpint(store_set_message_status(f->store, BOB, "o2", "sent"), ==, 0);

        g_assert_cmpint(store_list_unsent(f->store, &unsent), ==, 0);
        g_assert_cmpuint(unsent->len, ==, 2);
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(unsent, 0))->id, ==, "o1");
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(unsent, 0))->conversation, ==, ALICE);
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(unsent, 0))->text, ==, "one");
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(unsent, 1))->id, ==, "o3");
        g_clear_pointer(&unsent, g_ptr_array_unref);

        /* it survives a restart: the outbox is on disk */
        fixture_reopen(f);
        g_assert_cmpint(store_list_unsent(f->store, &unsent), ==, 0);
        g_assert_cmpuint(unsent->len, ==, 2);
}

static void test_outgoing_file(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) unsent = NULL;
        g_autoptr(StoreMessage) got = NULL;
        StoreMessage m = make_message(ALICE, "f1", STORE_DIRECTION_OUT, 100, NULL);

        /* ours before its upload: a file (mime, name, size, our copy) without a URL */
        m.type = (char *) "image";
        m.status = (char *) "pending";
        m.mime = (char *) "image/png";
        m.name = (char *) "photo.png";
        m.size = 1234;
        m.width = 37;
        m.height = 23;
        m.path = (char *) "/data/outbox/f1";
        g_assert_cmpint(store_append_message(f->store, &m, NULL), ==, 0);
        g_assert_cmpint(store_get_message(f->store, ALICE, "f1", &got), ==, 0);
        g_assert_null(got->url);
        g_assert_cmpstr(got->mime, ==, "image/png");
        g_assert_cmpstr(got->name, ==, "photo.png");
        g_assert_cmpint(got->size, ==, 1234);
        g_assert_cmpuint(got->width, ==, 37);
        g_assert_cmpuint(got->height, ==, 23);
        g_assert_cmpstr(got->path, ==, "/data/outbox/f1");
        g_clear_pointer(&got, store_message_free);
        /* it is in the outbox, waiting for its upload */
        g_assert_cmpint(store_list_unsent(f->store, &unsent), ==, 0);
        g_assert_cmpuint(unsent->len, ==, 1);
        g_assert_null(((StoreMessage *) g_ptr_array_index(unsent, 0))->url);
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(unsent, 0))->path, ==, "/data/outbox/f1");

        /* uploaded: its URL, and our copy moved */
        g_assert_cmpint(store_set_uploaded(f->store, ALICE, "f1", "https://up.example/f1.png", "/cache/m/x.png"),
                        ==, 0);
        fixture_reopen(f);
        g_assert_cmpint(store_get_message(f->store, ALICE, "f1", &got), ==, 0);
        g_assert_cmpstr(got->url, ==, "https://up.example/f1.png");
        g_assert_cmpstr(got->path, ==, "/cache/m/x.png");
        g_assert_cmpstr(got->status, ==, "pending");
        g_assert_cmpint(store_set_uploaded(f->store, ALICE, "nope", "https://x/", NULL), ==, -ENOENT);
        g_assert_cmpint(store_set_uploaded(f->store, ALICE, "f1", "", NULL), ==, -EINVAL);

        /* failed: out of the outbox until it is tried again */
        g_assert_cmpint(store_set_message_status(f->store, ALICE, "f1", "failed"), ==, 0);
        g_clear_pointer(&unsent, g_ptr_array_unref);
        g_assert_cmpint(store_list_unsent(f->store, &unsent), ==, 0);
        g_assert_cmpuint(unsent->len, ==, 0);
}

/* What the history says of outbox/<id>: our file messages with that id,
 * whatever their status (the outbox is cleaned by it at every opening). */
static void test_own_files(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) got = NULL;
        StoreMessage file = make_message(ALICE, "f1", STORE_DIRECTION_OUT, 100, NULL);
        StoreMessage other = make_message(BOB, "f1", STORE_DIRECTION_OUT, 110, NULL);
        StoreMessage text = make_message(ALICE, "t1", STORE_DIRECTION_OUT, 120, "no file");
        StoreMessage in = make_message(ALICE, "i1", STORE_DIRECTION_IN, 130, NULL);

        file.type = other.type = in.type = (char *) "file";
        file.mime = other.mime = in.mime = (char *) "application/octet-stream";
        other.url = in.url = (char *) "https://up.example/x.bin";
        file.status = (char *) "pending";
        file.path = (char *) "/data/outbox/f1";
        other.path = (char *) "/cache/media/x.bin";
        in.path = (char *) "/cache/media/i1.bin";
        g_assert_cmpint(store_append_message(f->store, &file, NULL), ==, 0);
        g_assert_cmpint(store_append_message(f->store, &other, NULL), ==, 0);
        g_assert_cmpint(store_append_message(f->store, &text, NULL), ==, 0);
        g_assert_cmpint(store_append_message(f->store, &in, NULL), ==, 0);

        g_assert_cmpint(store_list_own_files(f->store, "f1", &got), ==, 0);
        g_assert_cmpuint(got->len, ==, 2);
        for (guint i = 0; i < got->len; i++) {
                StoreMessage *m = g_ptr_array_index(got, i);
                g_assert_cmpstr(m->path, ==, strcmp(m->conversation, ALICE) == 0 ? "/data/outbox/f1"
                                                                                  : "/cache/media/x.bin");
        }
        g_clear_pointer(&got, g_ptr_array_unref);
        /* failed: still named; revoked before it went up: its copy goes
         * with the revoke, and the message names none (the other stays) */
        g_assert_cmpint(store_set_message_status(f->store, ALICE, "f1", "failed"), ==, 0);
        fixture_reopen(f);
        g_assert_cmpint(store_list_own_files(f->store, "f1", &got), ==, 0);
        g_assert_cmpuint(got->len, ==, 2);
        g_clear_pointer(&got, g_ptr_array_unref);
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "f1"), ==, 0);
        g_assert_cmpint(store_revoke_message(f->store, BOB, "f1"), ==, 0);
        fixture_reopen(f);
        g_assert_cmpint(store_list_own_files(f->store, "f1", &got), ==, 0);
        g_assert_cmpuint(got->len, ==, 1);
        g_assert_cmpstr(((StoreMessage *) g_ptr_array_index(got, 0))->path, ==, "/cache/media/x.bin");
        g_clear_pointer(&got, g_ptr_array_unref);
        /* no file, someone else's file, nothing */
        for (const char *const *id = (const char *const[]) { "t1", "i1", "none", NULL }; *id; id++) {
                g_assert_cmpint(store_list_own_files(f->store, *id, &got), ==, 0);
                g_assert_cmpuint(got->len, ==, 0);
                g_clear_pointer(&got, g_ptr_array_unref);
        }
}

static void test_query_plan(Fixture *f, gconstpointer data) {
        g_autofree char *plan = NULL;
        g_auto(GStrv) lines = NULL;
        bool reads_messages = false, uses_index = false;

        g_assert_cmpint(store_explain(f->store, &plan), ==, 0);
        g_test_message("%s", plan);

        /* No full scan of messages; the one scan allowed walks the partial
         * outbox index, which holds only unacknowledged messages. (The search
         * "scans" the FTS5 table: that is its index lookup, MATCH.) */
        lines = g_strsplit(plan, "\n", -1);
        for (char **l = lines; *l; l++)
                if (strstr(*l, "SCAN messages") && !strstr(*l, "SCAN messages_fts VIRTUAL TABLE INDEX"))
                        g_assert_cmpstr(*l, ==, "\tSCAN messages USING INDEX messages_unsent");
        g_clear_pointer(&lines, g_strfreev);

        /* Every statement reading from messages must search an index and never
         * sort: paging stays O(page) however long the history. */
        lines = g_strsplit(plan, "\n", -1);
        for (char **l = lines; *l; l++) {
                if (**l != '\t') {
                        reads_messages = strstr(*l, "FROM messages WHERE") != NULL;
                        continue;
                }
                if (!reads_messages)
                        continue;
                g_assert_null(strstr(*l, "TEMP B-TREE"));
                /* The conversation's JID is turned into its key by a subquery
                 * searching the conversations' unique index on the JID. */
                if (g_str_has_prefix(*l, "\tSCALAR SUBQUERY"))
                        continue;
                /* the search indexer's "next bound": a subquery over a rowid range */
                if (g_str_has_prefix(*l, "\tCO-ROUTINE") || g_str_has_prefix(*l, "\tSEARCH (subquery"))
                        continue;
                if (g_str_has_prefix(*l, "\tSEARCH conversations USING ")) {
                        g_assert_nonnull(strstr(*l, "INDEX sqlite_autoindex_conversations_1 (id=?)"));
                        continue;
                }
                g_assert_true(g_str_has_prefix(*l, "\tSEARCH messages USING "));
                if (strstr(*l, "messages_conversation_seq (conversation=? AND seq<?)"))
                        uses_index = true;
        }
        g_assert_true(uses_index);
}

static void test_migration_from_empty(void) {
        g_autofree char *dir = make_tmp_dir();
        g_autoptr(Store) store = NULL;

        /* An empty database at version 0, as any SQLite file starts out. */
        raw_exec(dir, "PRAGMA user_version = 0");
        g_assert_cmpint(raw_query_int(dir, "SELECT count(*) FROM sqlite_schema"), ==, 0);

        g_assert_cmpint(store_open(dir, &store), ==, 0);
        g_assert_cmpint(raw_query_int(dir, "PRAGMA user_version"), ==, STORE_TEST_SCHEMA_VERSION);
        append(store, ALICE, "m", STORE_DIRECTION_IN, 1);
        g_assert_cmpuint(unread_total(store), ==, 1);
        g_clear_pointer(&store, store_close);

        /* Opening again at the current version runs no step twice. */
        g_assert_cmpint(store_open(dir, &store), ==, 0);
        g_assert_cmpuint(unread_total(store), ==, 1);
        g_clear_pointer(&store, store_close);

        remove_dir(dir);
}

/* Schema version 1 as released: databases out there look like this. */
static const char schema_v1[] =
        "CREATE TABLE conversations (key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,"
        "  name TEXT NOT NULL, unread INTEGER NOT NULL DEFAULT 0, time_ms INTEGER NOT NULL, last_seq INTEGER);"
        "CREATE TABLE messages (seq INTEGER PRIMARY KEY, conversation INTEGER NOT NULL, id TEXT NOT NULL,"
        "  sender TEXT, stanza_id TEXT, direction INTEGER NOT NULL, time_ms INTEGER NOT NULL, type TEXT,"
        "  text TEXT, status TEXT, UNIQUE (conversation, id));"
        "CREATE UNIQUE INDEX messages_stanza_id ON messages (conversation, stanza_id) WHERE stanza_id IS NOT NULL;"
        "CREATE INDEX messages_conversation_seq ON messages (conversation, seq);"
        "CREATE INDEX messages_unsent ON messages (seq) WHERE direction = 1 AND status = 'pending';"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO conversations VALUES (1, 'alice@example.org', 'chat', '', 1, 1000, 1);"
        "INSERT INTO messages VALUES (1, 1, 'm1', 'alice@example.org', NULL, 0, 1000, 'text', 'old text', 'received');"
        "INSERT INTO messages VALUES (2, 1, 'o1', 'me@example.org', NULL, 1, 1001, 'text', 'queued', 'pending');"
        "PRAGMA user_version = 1;";

static void test_migration_from_v1(void) {
        g_autofree char *dir = make_tmp_dir();
        g_autoptr(Store) store = NULL;
        g_autoptr(StoreMessage) m = NULL;
        g_autoptr(GPtrArray) unsent = NULL;

        raw_exec(dir, schema_v1);
        g_assert_cmpint(store_open(dir, &store), ==, 0);
        g_assert_cmpint(raw_query_int(dir, "PRAGMA user_version"), ==, STORE_TEST_SCHEMA_VERSION);
        g_assert_cmpint(store_get_message(store, "alice@example.org", "m1", &m), ==, 0);
        g_assert_cmpstr(m->text, ==, "old text");
        g_assert_null(m->data);
        g_assert_false(m->revoked);
        g_assert_false(m->edited);
        g_assert_cmpint(store_list_unsent(store, &unsent), ==, 0);
        g_assert_cmpuint(unsent->len, ==, 1);
        g_assert_cmpuint(unread_total(store), ==, 1);
        {
                /* the history from before the search index is searchable */
                g_autoptr(GPtrArray) hits = NULL;
                g_assert_cmpint(store_search(store, "old", NULL, 5, &hits), ==, 0);
                g_assert_cmpuint(hits->len, ==, 1);
        }
        g_clear_pointer(&store, store_close);
        remove_dir(dir);
}

static void test_revoke_and_edit(Fixture *f, gconstpointer data) {
        g_autoptr(StoreMessage) m = NULL;
        g_autoptr(GPtrArray) unsent = NULL;
        StoreMessage custom = make_message(ALICE, "c1", STORE_DIRECTION_IN, 100, "a card");
        StoreMessage out = make_message(ALICE, "o1", STORE_DIRECTION_OUT, 110, "typo");

        custom.type = (char *) "custom";
        custom.data = (char *) "{\"card\": [1, 2]}";
        custom.extension = (char *) "v=1";
        out.status = (char *) "pending";
        g_assert_cmpint(store_append_message(f->store, &custom, NULL), ==, 0);
        g_assert_cmpint(store_append_message(f->store, &out, NULL), ==, 0);

        g_assert_cmpint(store_get_message(f->store, ALICE, "c1", &m), ==, 0);
        g_assert_cmpstr(m->data, ==, "{\"card\": [1, 2]}");
        g_assert_cmpstr(m->extension, ==, "v=1");
        g_clear_pointer(&m, store_message_free);

        g_assert_cmpint(store_set_reactions(f->store, ALICE, "c1", "{\"bob@x\":[\"👍\"]}"), ==, 0);
        g_assert_cmpint(store_get_message(f->store, ALICE, "c1", &m), ==, 0);
        g_assert_cmpstr(m->reactions, ==, "{\"bob@x\":[\"👍\"]}");
        g_clear_pointer(&m, store_message_free);
        g_assert_cmpint(store_set_reactions(f->store, ALICE, "c1", NULL), ==, 0);
        g_assert_cmpint(store_get_message(f->store, ALICE, "c1", &m), ==, 0);
        g_assert_null(m->reactions);
        g_clear_pointer(&m, store_message_free);
        g_assert_cmpint(store_set_reactions(f->store, ALICE, "nope", NULL), ==, -ENOENT);

        g_assert_cmpint(store_edit_message(f->store, ALICE, "o1", "fixed ✔"), ==, 0);
        g_assert_cmpint(store_get_message(f->store, ALICE, "o1", &m), ==, 0);
        g_assert_cmpstr(m->text, ==, "fixed ✔");
        g_assert_true(m->edited);
        g_clear_pointer(&m, store_message_free);

        /* c1 was unread: it counts no more (see test_revoke_unread) */
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "c1"), ==, 1);
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "c1"), ==, 0);     /* idempotent */
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "o1"), ==, 0);
        fixture_reopen(f);
        g_assert_cmpint(store_get_message(f->store, ALICE, "c1", &m), ==, 0);
        g_assert_true(m->revoked);
        g_assert_null(m->text);
        g_assert_null(m->data);
        g_assert_null(m->extension);
        g_assert_cmpstr(m->type, ==, "custom");
        g_clear_pointer(&m, store_message_free);
        /* a revoked message is no longer in the outbox, and cannot be edited */
        g_assert_cmpint(store_list_unsent(f->store, &unsent), ==, 0);
        g_assert_cmpuint(unsent->len, ==, 0);
        g_assert_cmpint(store_edit_message(f->store, ALICE, "o1", "again"), ==, -ENOENT);
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "nope"), ==, -ENOENT);
        g_assert_cmpint(store_edit_message(f->store, BOB, "o1", "x"), ==, -ENOENT);
        g_assert_cmpint(store_edit_message(f->store, ALICE, "o1", ""), ==, -EINVAL);
        /* a later copy (say from the archive) is still a duplicate */
        g_assert_cmpint(store_append_message(f->store, &custom, NULL), ==, -EEXIST);
}

/* A message its sender took back before it was read no longer counts as
 * unread; one taken back after MarkRead changes nothing; a correction
 * never does. */
static void test_revoke_unread(Fixture *f, gconstpointer data) {
        StoreMessage old = make_message(ALICE, "h1", STORE_DIRECTION_IN, 5, "history");
        StoreMessage *page[] = { &old };
        int r;

        append(f->store, ALICE, "a1", STORE_DIRECTION_IN, 10);
        g_assert_cmpint(store_mark_read(f->store, ALICE, NULL), ==, 0);
        append(f->store, ALICE, "a2", STORE_DIRECTION_IN, 20);
        append(f->store, ALICE, "a3", STORE_DIRECTION_IN, 30);
        append(f->store, ALICE, "o1", STORE_DIRECTION_OUT, 40);
        append(f->store, ALICE, "a4", STORE_DIRECTION_IN, 50);
        append(f->store, BOB, "b1", STORE_DIRECTION_IN, 60);
        g_assert_cmpint(store_prepend_messages(f->store, page, 1), ==, 0);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 3);
        g_assert_cmpuint(unread_total(f->store), ==, 4);

        g_assert_cmpint(store_edit_message(f->store, ALICE, "a3", "fixed"), ==, 0);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 3);

        /* read before, or history: not counted, nothing to take back */
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "a1"), ==, 0);
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "h1"), ==, 0);
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "o1"), ==, 0);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 3);

        /* an unread one in the middle, then the newest */
        r = store_revoke_message(f->store, ALICE, "a3");
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 2);
        g_assert_cmpint(r, ==, 1);
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "a3"), ==, 0);     /* idempotent */
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 2);
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "a4"), ==, 1);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 1);
        g_assert_cmpuint(unread_of(f->store, BOB), ==, 1);
        g_assert_cmpuint(unread_total(f->store), ==, 2);

        fixture_reopen(f);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 1);
        g_assert_cmpint(store_mark_read(f->store, ALICE, NULL), ==, 0);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 0);
        /* read now: taking a2 back leaves the count alone */
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "a2"), ==, 0);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 0);
        append(f->store, ALICE, "a5", STORE_DIRECTION_IN, 70);
        g_assert_cmpuint(unread_of(f->store, ALICE), ==, 1);
        g_assert_cmpuint(unread_total(f->store), ==, 2);
}

static void assert_actions(Store *store, const char *expected) {
        g_autoptr(GPtrArray) actions = NULL;
        g_autoptr(GString) got = g_string_new(NULL);
        static const char *const kinds[] = { "retract", "correct", "react", "displayed" };

        g_assert_cmpint(store_list_actions(store, &actions), ==, 0);
        for (guint i = 0; i < actions->len; i++) {
                const StoreAction *a = g_ptr_array_index(actions, i);
                g_string_append_printf(got, "%s%s %s %s %s %s", i ? "; " : "", a->id, a->conversation, a->target,
                                       kinds[a->kind], a->payload ? a->payload : "-");
        }
        g_assert_cmpstr(got->str, ==, expected);
}

static void assert_waiting(Store *store, const char *conversation, const char *target, const char *expected) {
        g_autoptr(GPtrArray) actions = NULL;
        g_autoptr(GString) got = g_string_new(NULL);

        g_assert_cmpint(store_list_waiting_actions(store, conversation, target, &actions), ==, 0);
        for (guint i = 0; i < actions->len; i++) {
                const StoreWaitingAction *a = g_ptr_array_index(actions, i);
                static const char *const kinds[] = { "retract", "correct", "react" };
                g_string_append_printf(got, "%s%s %s %s %s %s", i ? "; " : "", a->conversation, a->target,
                                       kinds[a->kind], a->outgoing ? "ours" : "theirs",
                                       a->payload ? a->payload : "-");
        }
        g_assert_cmpstr(got->str, ==, expected);
}

/* Others' actions waiting for their message: kept across a reopen, in order
 * (one from an archive page fetched backwards before all), per target,
 * forgotten once applied, and the newest STORE_WAITING_ACTIONS_MAX only. */
static void test_waiting_actions(Fixture *f, gconstpointer data) {
        StoreWaitingAction a = { .conversation = (char *) ALICE, .target = (char *) "m1",
                                 .kind = STORE_ACTION_RETRACT };
        g_autoptr(GPtrArray) dropped = NULL;

        assert_waiting(f->store, NULL, NULL, "");
        g_assert_cmpint(store_keep_waiting_action(f->store, &a, false, NULL), ==, 0);
        a = (StoreWaitingAction) { .conversation = (char *) ALICE, .target = (char *) "m2",
                                   .kind = STORE_ACTION_CORRECT, .payload = (char *) "new" };
        g_assert_cmpint(store_keep_waiting_action(f->store, &a, false, NULL), ==, 0);
        a = (StoreWaitingAction) { .conversation = (char *) ALICE, .target = (char *) "m2",
                                   .kind = STORE_ACTION_CORRECT, .payload = (char *) "old" };
        g_assert_cmpint(store_keep_waiting_action(f->store, &a, true, NULL), ==, 0);
        a = (StoreWaitingAction) { .conversation = (char *) BOB, .target = (char *) "m2", .outgoing = true,
                                   .kind = STORE_ACTION_REACT, .payload = (char *) "👍\n🎉" };
        g_assert_cmpint(store_keep_waiting_action(f->store, &a, false, &dropped), ==, 0);
        g_assert_cmpuint(dropped->len, ==, 0);
        g_clear_pointer(&dropped, g_ptr_array_unref);

        fixture_reopen(f);
        assert_waiting(f->store, ALICE, "m2", ALICE " m2 correct theirs old; " ALICE " m2 correct theirs new");
        assert_waiting(f->store, BOB, "m2", BOB " m2 react ours 👍\n🎉");
        assert_waiting(f->store, ALICE, "m3", "");
        assert_waiting(f->store, NULL, NULL,
                       ALICE " m2 correct theirs old; " ALICE " m1 retract theirs -; " ALICE " m2 correct theirs new; "
                       BOB " m2 react ours 👍\n🎉");
        g_assert_cmpint(store_drop_waiting_actions(f->store, ALICE, "m2"), ==, 0);
        assert_waiting(f->store, NULL, NULL, ALICE " m1 retract theirs -; " BOB " m2 react ours 👍\n🎉");

        a = (StoreWaitingAction) { .conversation = (char *) ALICE, .target = (char *) "", .kind = STORE_ACTION_RETRACT };
        g_assert_cmpint(store_keep_waiting_action(f->store, &a, false, NULL), ==, -EINVAL);
        a.target = (char *) "m1";
        a.kind = (StoreActionKind) 7;
        g_assert_cmpint(store_keep_waiting_action(f->store, &a, false, NULL), ==, -EINVAL);
        g_assert_cmpint(store_list_waiting_actions(f->store, ALICE, NULL, &dropped), ==, -EINVAL);

        /* a flood: the oldest go, each said */
        a.kind = STORE_ACTION_RETRACT;
        for (unsigned i = 0; i < STORE_WAITING_ACTIONS_MAX; i++) {
                g_autofree char *target = g_strdup_printf("f%u", i);
                a.target = target;
                g_assert_cmpint(store_keep_waiting_action(f->store, &a, false, &dropped), ==, 0);
                if (i < STORE_WAITING_ACTIONS_MAX - 2) {
                        g_assert_cmpuint(dropped->len, ==, 0);
                } else {
                        const StoreWaitingAction *d = g_ptr_array_index(dropped, 0);
                        g_assert_cmpuint(dropped->len, ==, 1);
                        g_assert_cmpstr(d->target, ==, i == STORE_WAITING_ACTIONS_MAX - 2 ? "m1" : "m2");
                }
                g_clear_pointer(&dropped, g_ptr_array_unref);
        }
        assert_waiting(f->store, ALICE, "m1", "");
        assert_waiting(f->store, ALICE, "f0", ALICE " f0 retract theirs -");
        /* an older one than all, when full, is the one to go */
        a.target = (char *) "old";
        g_assert_cmpint(store_keep_waiting_action(f->store, &a, true, &dropped), ==, 0);
        g_assert_cmpuint(dropped->len, ==, 1);
        g_assert_cmpstr(((StoreWaitingAction *) g_ptr_array_index(dropped, 0))->target, ==, "old");
        g_clear_pointer(&dropped, g_ptr_array_unref);
        g_assert_cmpint(store_list_waiting_actions(f->store, NULL, NULL, &dropped), ==, 0);
        g_assert_cmpuint(dropped->len, ==, STORE_WAITING_ACTIONS_MAX);
}

/* The outbox of actions: queued with their message's change, the latest of
 * a kind replacing the earlier, a retraction replacing all, gone once done,
 * and kept across a reopen (a crash). */
static void test_actions(Fixture *f, gconstpointer data) {
        StoreAction a = { .id = (char *) "e1", .conversation = (char *) ALICE, .target = (char *) "m1",
                          .kind = STORE_ACTION_CORRECT, .payload = (char *) "first fix" };

        assert_actions(f->store, "");
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        a.target = (char *) "m9";
        g_assert_cmpint(store_queue_action(f->store, &a), ==, -EEXIST);
        a = (StoreAction) { .id = (char *) "r1", .conversation = (char *) ALICE, .target = (char *) "m1",
                            .kind = STORE_ACTION_REACT, .payload = (char *) "👍\n🎉" };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        a = (StoreAction) { .id = (char *) "r2", .conversation = (char *) BOB, .target = (char *) "m1",
                            .kind = STORE_ACTION_REACT, .payload = (char *) "" };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        a = (StoreAction) { .id = (char *) "e2", .conversation = (char *) ALICE, .target = (char *) "m1",
                            .kind = STORE_ACTION_CORRECT, .payload = (char *) "second fix" };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        assert_actions(f->store, "r1 " ALICE " m1 react 👍\n🎉; r2 " BOB " m1 react ; e2 " ALICE " m1 correct second fix");

        fixture_reopen(f);
        g_assert_cmpint(store_action_done(f->store, "r2"), ==, 0);
        g_assert_cmpint(store_action_done(f->store, "r2"), ==, -ENOENT);
        g_assert_cmpint(store_action_done(f->store, "m1"), ==, -ENOENT);     /* a message's id is no action */
        a = (StoreAction) { .id = (char *) "x1", .conversation = (char *) ALICE, .target = (char *) "m1",
                            .kind = STORE_ACTION_RETRACT };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        a = (StoreAction) { .id = (char *) "r3", .conversation = (char *) ALICE, .target = (char *) "m2",
                            .kind = STORE_ACTION_REACT, .payload = (char *) "👀" };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        assert_actions(f->store, "x1 " ALICE " m1 retract -; r3 " ALICE " m2 react 👀");

        /* a failed transaction queues nothing */
        g_assert_cmpint(store_begin(f->store), ==, 0);
        a = (StoreAction) { .id = (char *) "e3", .conversation = (char *) ALICE, .target = (char *) "m2",
                            .kind = STORE_ACTION_CORRECT, .payload = (char *) "lost" };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        g_assert_cmpint(store_rollback(f->store), ==, 0);
        assert_actions(f->store, "x1 " ALICE " m1 retract -; r3 " ALICE " m2 react 👀");

        a.id = (char *) "";
        g_assert_cmpint(store_queue_action(f->store, &a), ==, -EINVAL);
        a.id = (char *) "e4";
        a.kind = (StoreActionKind) 7;
        g_assert_cmpint(store_queue_action(f->store, &a), ==, -EINVAL);
        a.kind = STORE_ACTION_CORRECT;
        a.payload = (char *) "\xff";
        g_assert_cmpint(store_queue_action(f->store, &a), ==, -EINVAL);
        g_assert_cmpint(store_action_done(f->store, NULL), ==, -EINVAL);

        /* revoking a message (here, or seen from another device) drops
         * everything queued on it */
        a = (StoreAction) { .id = (char *) "e5", .conversation = (char *) ALICE, .target = (char *) "m2",
                            .kind = STORE_ACTION_CORRECT, .payload = (char *) "mine" };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        assert_actions(f->store, "x1 " ALICE " m1 retract -; r3 " ALICE " m2 react 👀; e5 " ALICE " m2 correct mine");
        {
                StoreMessage m2 = make_message(ALICE, "m2", STORE_DIRECTION_OUT, 100, "to go");
                m2.status = (char *) "sent";
                g_assert_cmpint(store_append_message(f->store, &m2, NULL), ==, 0);
        }
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "m2"), ==, 0);
        assert_actions(f->store, "x1 " ALICE " m1 retract -");
        /* not for a message that is not there */
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "m1"), ==, -ENOENT);
        assert_actions(f->store, "x1 " ALICE " m1 retract -");
}

/* Displayed markers: one queued per conversation at most, the newer
 * replacing the older whatever message each named; nothing else replaces
 * one, and one replaces nothing else. */
static void test_displayed_actions(Fixture *f, gconstpointer data) {
        StoreAction a = { .id = (char *) "d1", .conversation = (char *) ALICE, .target = (char *) "in1",
                          .kind = STORE_ACTION_DISPLAYED };
        StoreMessage in2 = make_message(ALICE, "in2", STORE_DIRECTION_IN, 100, "read me");

        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        a = (StoreAction) { .id = (char *) "d2", .conversation = (char *) BOB, .target = (char *) "in1",
                            .kind = STORE_ACTION_DISPLAYED };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        a = (StoreAction) { .id = (char *) "e1", .conversation = (char *) ALICE, .target = (char *) "in2",
                            .kind = STORE_ACTION_CORRECT, .payload = (char *) "same id as theirs" };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        a = (StoreAction) { .id = (char *) "d3", .conversation = (char *) ALICE, .target = (char *) "in2",
                            .kind = STORE_ACTION_DISPLAYED };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        assert_actions(f->store, "d2 " BOB " in1 displayed -; e1 " ALICE " in2 correct same id as theirs; "
                                 "d3 " ALICE " in2 displayed -");

        /* kept across a reopen (a crash), gone once the server has it */
        fixture_reopen(f);
        a = (StoreAction) { .id = (char *) "x1", .conversation = (char *) ALICE, .target = (char *) "in2",
                            .kind = STORE_ACTION_RETRACT };
        g_assert_cmpint(store_queue_action(f->store, &a), ==, 0);
        assert_actions(f->store, "d2 " BOB " in1 displayed -; d3 " ALICE " in2 displayed -; "
                                 "x1 " ALICE " in2 retract -");
        /* the peer taking the message back leaves our marker queued */
        g_assert_cmpint(store_append_message(f->store, &in2, NULL), ==, 0);
        g_assert_cmpint(store_revoke_message(f->store, ALICE, "in2"), >=, 0);
        assert_actions(f->store, "d2 " BOB " in1 displayed -; d3 " ALICE " in2 displayed -");
        g_assert_cmpint(store_action_done(f->store, "d3"), ==, 0);
        assert_actions(f->store, "d2 " BOB " in1 displayed -");
}

static void test_migration_from_newer(void) {
        g_autofree char *dir = make_tmp_dir();
        Store *store = NULL;

        raw_exec(dir, "CREATE TABLE future (x); PRAGMA user_version = 99");
        g_assert_cmpint(store_open(dir, &store), ==, -EPROTO);
        g_assert_null(store);
        /* Untouched, for the newer imd that wrote it. */
        g_assert_cmpint(raw_query_int(dir, "PRAGMA user_version"), ==, 99);

        remove_dir(dir);
}

/* Run with -m perf. Not a unit test: prints the append cost per message. */
static void test_perf_append(Fixture *f, gconstpointer data) {
        const unsigned n = 20000, batch = 100;
        struct timespec cpu_start, cpu_end;
        int64_t start, elapsed;
        double cpu_us;

        if (!g_test_perf()) {
                g_test_skip("performance test, run with -m perf");
                return;
        }

        /* CPU time too: wall time on a shared machine says little. */
        g_assert_cmpint(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu_start), ==, 0);
        start = g_get_monotonic_time();
        for (unsigned i = 0; i < n; i += batch) {
                g_assert_cmpint(store_begin(f->store), ==, 0);
                for (unsigned j = i; j < i + batch; j++) {
                        char conversation[64], id[64];
                        StoreMessage m;

                        g_snprintf(conversation, sizeof conversation, "user%u@example.org", j % 50);
                        g_snprintf(id, sizeof id, "msg-%u", j);
                        m = make_message(conversation, id, j % 2 ? STORE_DIRECTION_IN : STORE_DIRECTION_OUT,
                                         1700000000000 + j, "a typical short chat message, about sixty bytes long");
                        g_assert_cmpint(store_append_message(f->store, &m, NULL), ==, 0);
                }
                g_assert_cmpint(store_commit(f->store), ==, 0);
        }
        elapsed = g_get_monotonic_time() - start;
        g_assert_cmpint(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu_end), ==, 0);
        cpu_us = (double) (cpu_end.tv_sec - cpu_start.tv_sec) * 1e6 +
                 (double) (cpu_end.tv_nsec - cpu_start.tv_nsec) / 1e3;

        g_test_minimized_result(cpu_us / n,
                                "append: %.2f us/message CPU, %.2f us/message wall (%u messages, batches of %u)",
                                cpu_us / n, (double) elapsed / n, n, batch);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);

#define ADD(name, fn) g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
        ADD("/store/append/batch", test_append_batch);
        ADD("/store/outbox", test_list_unsent);
        ADD("/store/outbox/file", test_outgoing_file);
        ADD("/store/outbox/own-files", test_own_files);
        g_test_add_func("/store/open/creates-private-file", test_open_creates_private_file);
        ADD("/store/message/round-trip", test_round_trip);
        ADD("/store/message/invalid-arguments", test_invalid_arguments);
        ADD("/store/message/duplicates", test_duplicates);
        ADD("/store/message/stanza-id-per-conversation", test_stanza_id_per_conversation);
        ADD("/store/message/reused-id", test_reused_id);
        ADD("/store/append/big-batch", test_append_big_batch);
        g_test_add_func("/store/append/survives-sigkill", test_survives_sigkill);
        ADD("/store/message/status", test_message_status);
        ADD("/store/transactions", test_transactions);
        ADD("/store/paging/all-once-in-order", test_paging);
        ADD("/store/paging/unknown-before", test_paging_unknown_before);
        ADD("/store/conversations/unread", test_unread);
        ADD("/store/conversations/mark-read", test_mark_read);
        ADD("/store/conversations/order", test_conversation_order);
        ADD("/store/conversations/time-never-goes-back", test_conversation_time_never_goes_back);
        ADD("/store/meta", test_meta);
        ADD("/store/messages-after", test_messages_after);
        ADD("/store/prepend", test_prepend);
        ADD("/store/prepend-into-empty", test_prepend_into_empty);
        g_test_add_func("/store/append/after-failed-commit", test_append_after_failed_commit);
        ADD("/store/search", test_search);
        ADD("/store/read-by-peer", test_read_by_peer);
        ADD("/store/query-plan", test_query_plan);
        g_test_add_func("/store/migration/from-empty", test_migration_from_empty);
        g_test_add_func("/store/migration/from-newer", test_migration_from_newer);
        g_test_add_func("/store/migration/from-v1", test_migration_from_v1);
        ADD("/store/message/revoke-and-edit", test_revoke_and_edit);
        ADD("/store/message/revoke-unread", test_revoke_unread);
        ADD("/store/actions", test_actions);
        ADD("/store/displayed-actions", test_displayed_actions);
        ADD("/store/waiting-actions", test_waiting_actions);
        ADD("/store/perf/append", test_perf_append);
#undef ADD

        return g_test_run();
}

