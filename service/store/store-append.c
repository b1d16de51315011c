/* SPDX-License-Identifier: MIT */
/*
 * Storing messages: appends (new messages, after the newest) and prepends
 * (older ones from the server's archive, before the oldest), a batch in one
 * transaction with the changes to its conversations.
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "store-private.h"

/* One conversation of a batch: its key, and what the batch changes in it. */
typedef struct ConversationDelta {
        const char *id;
        int64_t key;
        uint32_t unread;        /* incoming messages added */
        bool changed;           /* at least one message added */
        int64_t time_ms;        /* of the newest message added, by time */
        int64_t last_seq;       /* and its seq (see STMT_UPDATE_CONVERSATION) */
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

/* Attempts at an id of the store's own for a message whose sender reused an
 * id: its stanza-id, then random ones. Another message having a stanza-id
 * as its id is unlikely, two random ids colliding out of the question: the
 * bound only keeps a damaged database from looping. */
#define PLACE_ELSEWHERE_ATTEMPTS 4

/* The INSERT of MSG (into conversation KEY, at seq AT as for
 * message_insert_at()) was ignored. If that is because its sender gave an
 * earlier, different message the same id (STMT_ID_REUSED: the server gave
 * the two different stanza-ids), MSG goes in under an id of the store's own,
 * which *ret_id gets, and keeps the id it came with as wire_id; *ret_seq gets
 * its seq. Else MSG is a duplicate: *ret_seq 0. Bodies are not compared: a
 * copy from the archive of a message since corrected differs from ours. */
static int place_elsewhere(Store *store, const StoreMessage *msg, int64_t key, int64_t at, int64_t *ret_seq,
                           char **ret_id) {
        StoreMessage renamed;
        int r;

        *ret_seq = 0;
        if (!msg->stanza_id)
                return 0;
        {
                sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_ID_REUSED);

                if (sqlite3_bind_int64(st, 1, key) != SQLITE_OK || store_bind_text(st, 2, msg->id) != SQLITE_OK ||
                    store_bind_text(st, 3, msg->stanza_id) != SQLITE_OK)
                        return store_fail(store, STMT_ID_REUSED);
                r = sqlite3_step(st);
                if (r == SQLITE_DONE)
                        return 0;
                if (r != SQLITE_ROW)
                        return store_fail(store, STMT_ID_REUSED);
        }

        renamed = *msg;
        for (unsigned i = 0; i < PLACE_ELSEWHERE_ATTEMPTS; i++) {
                g_autofree char *id = i == 0 ? g_strdup(msg->stanza_id) : g_uuid_string_random();
                int64_t seq = 0;

                renamed.id = id;
                r = message_insert_at(store, &renamed, key, at, &seq);
                if (r < 0)
                        return r;
                /* its stanza-id is new (STMT_ID_REUSED): only this id can be taken */
                if (seq == 0)
                        continue;
                {
                        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_SET_WIRE_ID);

                        if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK ||
                            store_bind_text(st, 2, msg->id) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
                                return store_fail(store, STMT_SET_WIRE_ID);
                }
                *ret_seq = seq;
                *ret_id = g_steal_pointer(&id);
                return 0;
        }
        g_debug("store: found no free id for a message reusing id %s", msg->id);
        return -EIO;
}

/* Where a message of a batch went: seq 0 for a duplicate; id NULL, or the id
 * the store gave it (place_elsewhere()). Handed to the messages only once
 * the batch is committed. */
typedef struct Placed {
        int64_t seq;
        char *id;
} Placed;

static void placed_clear(Placed *placed, size_t n) {
        for (size_t i = 0; i < n; i++)
                g_clear_pointer(&placed[i].id, g_free);
}

/* After the commit: the messages learn their seq and, if the store gave
 * them one, their new id. */
static void placed_apply(Placed *placed, StoreMessage *const *msgs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                msgs[i]->seq = placed[i].seq;
                if (placed[i].id) {
                        g_free(msgs[i]->id);
                        msgs[i]->id = g_steal_pointer(&placed[i].id);
                }
        }
}

static bool message_valid(const StoreMessage *msg) {
        return msg && store_valid_key(msg->conversation) && store_valid_key(msg->id) &&
               store_valid_optional(msg->sender) && store_valid_optional(msg->type) &&
               store_valid_optional(msg->text) && store_valid_optional(msg->status) &&
               store_valid_optional(msg->data) && store_valid_optional(msg->extension) &&
               store_valid_optional(msg->url) && store_valid_optional(msg->mime) && store_valid_optional(msg->name) &&
               store_valid_optional(msg->path) &&
               (!msg->stanza_id || store_valid_key(msg->stanza_id)) && store_direction_valid(msg->direction);
}

/* Whether no message has a positive seq (see Store.seq_floor_pending). */
int store_refresh_seq_floor(Store *store) {
        int64_t last = 0;
        int r = store_last_seq(store, &last);

        if (r < 0)
                return r;
        store->seq_floor_pending = last < 1;
        store->seq_floor_stale = false;
        return 0;
}

/* The common part of both appends, inside a transaction the caller opened:
 * placed[i] (zeroed by the caller, who frees its ids) gets where msgs[i]
 * went; with !elsewhere, a message whose id is taken is always a duplicate.
 * Per batch, each conversation is looked up once and updated once; per
 * message there is one INSERT, and more only for a message it ignored. */
static int append_batch(Store *store, const StoreMessage *const *msgs, size_t n_msgs, Placed *placed,
                        bool elsewhere, size_t *ret_added) {
        ConversationDelta local[8];
        g_autofree ConversationDelta *heap = NULL;
        ConversationDelta *deltas = local;
        size_t n_deltas = 0, capacity = G_N_ELEMENTS(local), added = 0, hint = 0;
        int r;

        /* inside the transaction: sees what it holds so far */
        if (store->seq_floor_stale && (r = store_refresh_seq_floor(store)) < 0)
                return r;

        for (size_t i = 0; i < n_msgs; i++) {
                const StoreMessage *m = msgs[i];
                ConversationDelta *d = NULL;
                int64_t seq = 0, at;

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

                at = store->seq_floor_pending ? 1 : 0;
                r = message_insert_at(store, m, d->key, at, &seq);
                if (r < 0)
                        return r;
                if (seq == 0 && elsewhere && (r = place_elsewhere(store, m, d->key, at, &seq, &placed[i].id)) < 0)
                        return r;
                placed[i].seq = seq;
                if (seq == 0)
                        continue;
                store->seq_floor_pending = false;
                added++;
                d->unread += m->direction == STORE_DIRECTION_IN ? 1 : 0;
                if (!d->changed || m->time_ms >= d->time_ms) {
                        d->time_ms = m->time_ms;
                        d->last_seq = seq;
                }
                d->changed = true;
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
        Placed placed = { 0 };
        int64_t seq;
        int r;

        if (!store || !message_valid(msg))
                return -EINVAL;

        /* Outside a batch this is the transaction; inside one, a savepoint that
         * undoes a half-done append without touching the rest of the batch. */
        r = store_begin(store);
        if (r < 0)
                return r;
        r = append_batch(store, &msg, 1, &placed, false, NULL);
        if (r < 0) {
                (void) store_rollback(store);
                return r;
        }
        r = store_commit(store);
        if (r < 0)
                return r;
        seq = placed.seq;
        if (seq == 0)
                return -EEXIST;

        if (ret_seq)
                *ret_seq = seq;
        return 0;
}

int store_append_messages(Store *store, StoreMessage *const *msgs, size_t n_msgs, size_t *ret_added) {
        Placed local[64] = { 0 };
        g_autofree Placed *heap = NULL;
        Placed *placed = local;
        size_t added = 0;
        int r;

        if (!store || (n_msgs && !msgs))
                return -EINVAL;
        for (size_t i = 0; i < n_msgs; i++)
                if (!message_valid(msgs[i]))
                        return -EINVAL;

        if (n_msgs > G_N_ELEMENTS(local))
                placed = heap = g_new0(Placed, n_msgs);

        r = store_begin(store);
        if (r < 0)
                return r;
        r = append_batch(store, (const StoreMessage *const *) msgs, n_msgs, placed, true, &added);
        if (r < 0) {
                (void) store_rollback(store);
                goto fail;
        }
        r = store_commit(store);
        if (r < 0)
                goto fail;

        placed_apply(placed, msgs, n_msgs);
        if (ret_added)
                *ret_added = added;
        return 0;

fail:
        placed_clear(placed, n_msgs);
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

/* Inside the caller's transaction: see store_prepend_messages(); placed as
 * for append_batch(). */
static int prepend_batch(Store *store, StoreMessage *const *msgs, size_t n_msgs, Placed *placed) {
        int64_t next = 1;
        int r;

        r = step_int64(store, STMT_FIRST_SEQ, &next);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_msgs; i++) {
                ConversationDelta d = { .id = msgs[i]->conversation };
                /* 0 means "no seq" (and "duplicate") everywhere: skip it */
                int64_t seq = 0, at = next - 1 == 0 ? -1 : next - 1;

                r = conversation_resolve(store, &d, msgs[i]->time_ms);
                if (r < 0)
                        return r;
                r = message_insert_at(store, msgs[i], d.key, at, &seq);
                if (r < 0)
                        return r;
                if (seq == 0 && (r = place_elsewhere(store, msgs[i], d.key, at, &seq, &placed[i].id)) < 0)
                        return r;
                placed[i].seq = seq;
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
        g_autofree Placed *placed = NULL;
        int r;

        if (!store || (n_msgs && !msgs))
                return -EINVAL;
        for (size_t i = 0; i < n_msgs; i++)
                if (!message_valid(msgs[i]))
                        return -EINVAL;
        placed = g_new0(Placed, n_msgs);
        r = store_begin(store);
        if (r < 0)
                return r;
        r = prepend_batch(store, msgs, n_msgs, placed);
        if (r >= 0)
                r = store_commit(store);
        else
                (void) store_rollback(store);
        if (r < 0) {
                placed_clear(placed, n_msgs);
                for (size_t i = 0; i < n_msgs; i++)
                        msgs[i]->seq = 0;
                return r;
        }
        placed_apply(placed, msgs, n_msgs);
        return store_refresh_seq_floor(store);
}
