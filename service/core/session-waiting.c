/* SPDX-License-Identifier: MIT */
/*
 * Peers' retractions, corrections and reactions that name a message the
 * history does not have: one from before imd's history starts (it came to
 * another device of ours, and is in the server's archive only), or one still
 * on its way. Dropped, it would be lost for good: the action is newer than
 * the archive page that later brings its message, and is never fetched
 * again, so a retracted text would show. It waits in the store instead (a
 * restart does not lose it), bounded, and is applied, as a live one would
 * be, when a message with the id it names is stored, whichever way that
 * comes: the batch of live, offline and catch-up messages, or a page
 * GetMessages fetches backwards.
 *
 * The targets are known here, so that storing a message costs no lookup
 * unless an action waits for its id.
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "session-private.h"

static char *waiting_key(const char *conversation, const char *target) {
        return g_strconcat(conversation, "\n", target, NULL);
}

/* delta more (or fewer) actions wait for target of conversation. */
static void note_waiting(Session *s, const char *conversation, const char *target, int delta) {
        g_autofree char *key = waiting_key(conversation, target);
        gpointer value = NULL;
        int n;

        if (!s->waiting)
                s->waiting = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        if (g_hash_table_lookup_extended(s->waiting, key, NULL, &value))
                n = GPOINTER_TO_INT(value) + delta;
        else
                n = delta;
        if (n > 0)
                g_hash_table_insert(s->waiting, g_steal_pointer(&key), GINT_TO_POINTER(n));
        else
                g_hash_table_remove(s->waiting, key);
        if (g_hash_table_size(s->waiting) == 0)
                g_clear_pointer(&s->waiting, g_hash_table_unref);
}

static StoreActionKind store_kind(XmppActionKind kind) {
        switch (kind) {
        case XMPP_ACTION_RETRACT:
                return STORE_ACTION_RETRACT;
        case XMPP_ACTION_CORRECT:
                return STORE_ACTION_CORRECT;
        case XMPP_ACTION_REACT:
                return STORE_ACTION_REACT;
        }
        return STORE_ACTION_RETRACT;
}

static XmppActionKind xmpp_kind(StoreActionKind kind) {
        switch (kind) {
        case STORE_ACTION_RETRACT:
                return XMPP_ACTION_RETRACT;
        case STORE_ACTION_CORRECT:
                return XMPP_ACTION_CORRECT;
        case STORE_ACTION_REACT:
                return XMPP_ACTION_REACT;
        case STORE_ACTION_DISPLAYED:    /* ours alone: the store never gives one */
                break;
        }
        return XMPP_ACTION_RETRACT;
}

void session_keep_action(Session *s, const XmppMessageAction *a, bool older) {
        g_autoptr(GPtrArray) dropped = NULL;
        g_autofree char *payload = NULL;
        StoreWaitingAction w;
        int r;

        if (!s->store)
                return;
        if (a->kind == XMPP_ACTION_REACT) {
                /* one line each, as in the outbox: a reaction has no white space */
                g_autoptr(GString) lines = g_string_new(NULL);
                for (size_t i = 0; i < a->n_reactions; i++)
                        g_string_append_printf(lines, "%s%s", i > 0 ? "\n" : "", a->reactions[i]);
                payload = g_string_free(g_steal_pointer(&lines), FALSE);
        } else if (a->kind == XMPP_ACTION_CORRECT)
                payload = g_strdup(a->text ? a->text : "");
        w = (StoreWaitingAction) {
                .conversation = (char *) a->peer, .target = (char *) a->target_id, .kind = store_kind(a->kind),
                .outgoing = a->outgoing, .payload = payload,
        };
        r = store_keep_waiting_action(s->store, &w, older, &dropped);
        if (r < 0) {
                g_debug("session: cannot keep an action on %s in %s for later: %s", a->target_id, a->peer,
                        g_strerror(-r));
                return;
        }
        g_debug("session: an action on %s in %s waits for its message", a->target_id, a->peer);
        note_waiting(s, a->peer, a->target_id, 1);
        for (guint i = 0; i < dropped->len; i++) {
                const StoreWaitingAction *d = g_ptr_array_index(dropped, i);
                note_waiting(s, d->conversation, d->target, -1);
        }
}

bool session_waiting_for(const Session *s, const char *conversation, const char *id) {
        g_autofree char *key = NULL;

        if (!s->waiting || !conversation || !id)
                return false;
        key = waiting_key(conversation, id);
        return g_hash_table_contains(s->waiting, key);
}

/* The actions waiting for id, applied oldest first (a later correction wins):
 * 1 if they were (they go), 0 if there is no such message (they stay),
 * negative errno. */
static int apply_list(Session *s, const char *conversation, const char *id, ActionNews news) {
        g_autoptr(GPtrArray) actions = NULL;
        int r;

        r = store_list_waiting_actions(s->store, conversation, id, &actions);
        if (r < 0)
                return r;
        for (guint i = 0; i < actions->len; i++) {
                const StoreWaitingAction *w = g_ptr_array_index(actions, i);
                g_auto(GStrv) reactions = w->kind == STORE_ACTION_REACT
                                                  ? g_strsplit(w->payload ? w->payload : "", "\n", -1)
                                                  : NULL;
                XmppMessageAction a = {
                        .kind = xmpp_kind(w->kind), .peer = w->conversation, .outgoing = w->outgoing,
                        .archived = true, .target_id = w->target,
                        .text = w->kind == STORE_ACTION_CORRECT ? (w->payload ? w->payload : "") : NULL,
                        .reactions = (const char *const *) reactions,
                        .n_reactions = reactions ? g_strv_length(reactions) : 0,
                };
                /* all of them name the same message: none is there, or all */
                if (!session_apply_action(s, &a, news))
                        return 0;
        }
        r = store_drop_waiting_actions(s->store, conversation, id);
        return r < 0 ? r : 1;
}

bool session_apply_waiting(Session *s, const char *conversation, const char *id, ActionNews news) {
        g_autofree char *key = NULL;
        int r;

        if (!s->store || !session_waiting_for(s, conversation, id))
                return false;
        r = apply_list(s, conversation, id, news);
        if (r < 0) {
                g_debug("session: cannot apply the actions waiting for %s in %s: %s", id, conversation,
                        g_strerror(-r));
                return false;
        }
        if (r == 0)
                return false;
        key = waiting_key(conversation, id);
        g_hash_table_remove(s->waiting, key);
        if (g_hash_table_size(s->waiting) == 0)
                g_clear_pointer(&s->waiting, g_hash_table_unref);
        return true;
}

void session_waiting_load(Session *s) {
        g_autoptr(GPtrArray) actions = NULL;
        g_autoptr(GHashTable) targets = NULL;
        GHashTableIter it;
        gpointer key;

        session_waiting_forget(s);
        if (!s->store || store_list_waiting_actions(s->store, NULL, NULL, &actions) < 0)
                return;
        for (guint i = 0; i < actions->len; i++) {
                const StoreWaitingAction *w = g_ptr_array_index(actions, i);
                note_waiting(s, w->conversation, w->target, 1);
        }
        if (!s->waiting)
                return;
        /* A message stored just before imd stopped, its actions not applied
         * yet: applied now, before it is announced again (load_announced())
         * and before the unread count is read; nothing is announced, the
         * bus may not be there yet. */
        targets = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_hash_table_iter_init(&it, s->waiting);
        while (g_hash_table_iter_next(&it, &key, NULL))
                g_hash_table_add(targets, g_strdup(key));
        g_hash_table_iter_init(&it, targets);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                g_auto(GStrv) parts = g_strsplit(key, "\n", 2);
                if (g_strv_length(parts) == 2)
                        (void) session_apply_waiting(s, parts[0], parts[1], ACTION_NEWS_NONE);
        }
}

void session_waiting_forget(Session *s) {
        g_clear_pointer(&s->waiting, g_hash_table_unref);
}
