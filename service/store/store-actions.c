/* SPDX-License-Identifier: MIT */
/*
 * The outbox of actions (migration 7 in store-migrate.c): retractions, corrections,
 * reactions and displayed markers of ours that the server has not
 * acknowledged yet. Messages have their outbox in the messages table itself
 * (status "pending"); an action changes a message in place (a marker, the
 * unread count), so what must still go out is kept here, beside the change.
 *
 * And the actions of others (migration 11) on a message not in the history
 * yet, which wait for it (see store_keep_waiting_action()).
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "store-private.h"

static const char *const kind_names[] = {
        [STORE_ACTION_RETRACT] = "retract",
        [STORE_ACTION_CORRECT] = "correct",
        [STORE_ACTION_REACT] = "react",
        [STORE_ACTION_DISPLAYED] = "displayed",
};

static const char *kind_to_string(StoreActionKind kind) {
        if ((size_t) kind >= G_N_ELEMENTS(kind_names))
                return NULL;
        return kind_names[kind];
}

static int kind_from_string(const char *s, StoreActionKind *ret) {
        for (size_t i = 0; s && i < G_N_ELEMENTS(kind_names); i++)
                if (strcmp(s, kind_names[i]) == 0) {
                        *ret = (StoreActionKind) i;
                        return 0;
                }
        return -EPROTO;
}

static int run_bound(Store *store, StoreStatement id, const char *const *values, int n) {
        sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, id);
        int r;

        for (int i = 0; i < n; i++)
                if (store_bind_text(st, i + 1, values[i]) != SQLITE_OK)
                        return store_fail(store, id);
        r = sqlite3_step(st);
        if (r == SQLITE_CONSTRAINT_UNIQUE)
                return -EEXIST;
        if (r != SQLITE_DONE)
                return store_fail(store, id);
        return 0;
}

int store_queue_action(Store *store, const StoreAction *action) {
        const char *kind;
        int r;

        if (!store || !action || !store_valid_key(action->id) || !store_valid_key(action->conversation) ||
            !store_valid_key(action->target) || !store_valid_optional(action->payload))
                return -EINVAL;
        kind = kind_to_string(action->kind);
        if (!kind)
                return -EINVAL;

        r = store_begin(store);
        if (r < 0)
                return r;
        r = store_drop_actions(store, action->conversation, action->target, action->kind);
        if (r >= 0)
                r = run_bound(store, STMT_QUEUE_ACTION,
                              (const char *const[]) { action->id, action->conversation, action->target, kind,
                                                      action->payload }, 5);
        if (r < 0) {
                (void) store_rollback(store);
                return r;
        }
        return store_commit(store);
}

int store_drop_actions(Store *store, const char *conversation, const char *target, StoreActionKind kind) {
        const char *name = kind_to_string(kind);

        if (!store || !conversation || !target || !name)
                return -EINVAL;
        return run_bound(store, STMT_SUPERSEDE_ACTIONS, (const char *const[]) { conversation, target, name }, 3);
}

int store_action_done(Store *store, const char *id) {
        int r;

        if (!store || !id)
                return -EINVAL;
        r = run_bound(store, STMT_ACTION_DONE, (const char *const[]) { id }, 1);
        if (r < 0)
                return r;
        return sqlite3_changes(store->db) > 0 ? 0 : -ENOENT;
}

int store_list_actions(Store *store, GPtrArray **ret) {
        g_autoptr(GPtrArray) actions = NULL;
        sqlite3_stmt *st _cleanup_reset_ = NULL;
        int r;

        if (!store || !ret)
                return -EINVAL;
        actions = g_ptr_array_new_with_free_func((GDestroyNotify) store_action_free);
        st = store_stmt(store, STMT_LIST_ACTIONS);
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                g_autoptr(StoreAction) a = g_new0(StoreAction, 1);
                a->id = store_column_strdup(st, 0);
                a->conversation = store_column_strdup(st, 1);
                a->target = store_column_strdup(st, 2);
                a->payload = store_column_strdup(st, 4);
                if (!a->id || !a->conversation || !a->target ||
                    kind_from_string((const char *) sqlite3_column_text(st, 3), &a->kind) < 0) {
                        /* damaged: the others still go */
                        g_debug("store: skipping a malformed queued action");
                        continue;
                }
                g_ptr_array_add(actions, g_steal_pointer(&a));
        }
        if (r != SQLITE_DONE)
                return store_fail(store, STMT_LIST_ACTIONS);
        *ret = g_steal_pointer(&actions);
        return 0;
}

void store_action_free(StoreAction *action) {
        if (!action)
                return;
        g_free(action->id);
        g_free(action->conversation);
        g_free(action->target);
        g_free(action->payload);
        g_free(action);
}

/* --- others' actions waiting for their message --- */

static int waiting_from_row(sqlite3_stmt *st, StoreWaitingAction **ret) {
        g_autoptr(StoreWaitingAction) a = g_new0(StoreWaitingAction, 1);

        a->seq = sqlite3_column_int64(st, 0);
        a->conversation = store_column_strdup(st, 1);
        a->target = store_column_strdup(st, 2);
        a->outgoing = sqlite3_column_int(st, 4) != 0;
        a->payload = store_column_strdup(st, 5);
        /* a displayed marker is ours alone: such a row is damage */
        if (!a->conversation || !a->target ||
            kind_from_string((const char *) sqlite3_column_text(st, 3), &a->kind) < 0 ||
            a->kind == STORE_ACTION_DISPLAYED)
                return -EPROTO;
        *ret = g_steal_pointer(&a);
        return 0;
}

/* Steps st (bound by the caller) and collects its rows; a damaged one is skipped. */
static int collect_waiting(Store *store, StoreStatement id, sqlite3_stmt *st, GPtrArray **ret) {
        g_autoptr(GPtrArray) actions = g_ptr_array_new_with_free_func((GDestroyNotify) store_waiting_action_free);
        int r;

        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                StoreWaitingAction *a = NULL;
                if (waiting_from_row(st, &a) < 0) {
                        g_debug("store: skipping a malformed waiting action");
                        continue;
                }
                g_ptr_array_add(actions, a);
        }
        if (r != SQLITE_DONE)
                return store_fail(store, id);
        *ret = g_steal_pointer(&actions);
        return 0;
}

int store_keep_waiting_action(Store *store, const StoreWaitingAction *action, bool older, GPtrArray **ret_dropped) {
        StoreStatement id = older ? STMT_KEEP_WAITING_OLDER : STMT_KEEP_WAITING;
        g_autoptr(GPtrArray) dropped = NULL;
        const char *kind;
        int r;

        if (!store || !action || !store_valid_key(action->conversation) || !store_valid_key(action->target) ||
            !store_valid_optional(action->payload))
                return -EINVAL;
        kind = kind_to_string(action->kind);
        if (!kind)
                return -EINVAL;

        r = store_begin(store);
        if (r < 0)
                return r;
        {
                sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, id);
                if (store_bind_text(st, 1, action->conversation) != SQLITE_OK ||
                    store_bind_text(st, 2, action->target) != SQLITE_OK || store_bind_text(st, 3, kind) != SQLITE_OK ||
                    sqlite3_bind_int(st, 4, action->outgoing) != SQLITE_OK ||
                    store_bind_text(st, 5, action->payload) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
                        r = store_fail(store, id);
        }
        if (r >= 0) {
                sqlite3_stmt *st _cleanup_reset_ = store_stmt(store, STMT_TRIM_WAITING);
                if (sqlite3_bind_int(st, 1, STORE_WAITING_ACTIONS_MAX) != SQLITE_OK)
                        r = store_fail(store, STMT_TRIM_WAITING);
                else
                        r = collect_waiting(store, STMT_TRIM_WAITING, st, &dropped);
        }
        if (r < 0) {
                (void) store_rollback(store);
                return r;
        }
        r = store_commit(store);
        if (r < 0)
                return r;
        if (dropped->len > 0)
                g_debug("store: %u waiting actions over the limit dropped", dropped->len);
        if (ret_dropped)
                *ret_dropped = g_steal_pointer(&dropped);
        return 0;
}

int store_list_waiting_actions(Store *store, const char *conversation, const char *target, GPtrArray **ret) {
        StoreStatement id = conversation ? STMT_LIST_WAITING : STMT_LIST_ALL_WAITING;
        sqlite3_stmt *st _cleanup_reset_ = NULL;

        if (!store || !ret || !conversation != !target)
                return -EINVAL;
        st = store_stmt(store, id);
        if (conversation &&
            (store_bind_text(st, 1, conversation) != SQLITE_OK || store_bind_text(st, 2, target) != SQLITE_OK))
                return store_fail(store, id);
        return collect_waiting(store, id, st, ret);
}

int store_drop_waiting_actions(Store *store, const char *conversation, const char *target) {
        if (!store || !conversation || !target)
                return -EINVAL;
        return run_bound(store, STMT_DROP_WAITING, (const char *const[]) { conversation, target }, 2);
}

void store_waiting_action_free(StoreWaitingAction *action) {
        if (!action)
                return;
        g_free(action->conversation);
        g_free(action->target);
        g_free(action->payload);
        g_free(action);
}
