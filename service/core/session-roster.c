/* SPDX-License-Identifier: MIT */

/*
 * Display names of conversations, from the roster (RFC 6121): the name the
 * user gave a contact is the conversation's "name", which frontends show
 * (im-notify's summary, im-tray's menu). The roster arrives before the
 * account's history is open, so the names are kept here and written to the
 * store whenever both are there: at login, on each roster push, and for a
 * conversation a batch of messages has just created.
 */

#include "session-private.h"

static bool roster_is_current(Session *s) {
        return s->store && s->account && s->login_jid && strcmp(s->account, s->login_jid) == 0;
}

/* Writes the names of the conversations in IDS (a set of JIDs; every
 * contact's if NULL) in one transaction; the ids whose name changed go to
 * CHANGED if not NULL. */
void session_roster_name_conversations(Session *s, GHashTable *ids, GHashTable *changed) {
        g_autoptr(GPtrArray) named = NULL;     /* (id, name) pairs, borrowed */
        GHashTableIter it;
        gpointer key, value;
        int r;

        if (!s->roster_names || !roster_is_current(s))
                return;
        /* Usually none of a batch's conversations is a contact: then not
         * even a transaction. */
        named = g_ptr_array_new();
        g_hash_table_iter_init(&it, ids ? ids : s->roster_names);
        while (g_hash_table_iter_next(&it, &key, &value)) {
                const char *name = ids ? g_hash_table_lookup(s->roster_names, key) : value;
                if (name) {
                        g_ptr_array_add(named, key);
                        g_ptr_array_add(named, (gpointer) name);
                }
        }
        if (named->len == 0)
                return;

        r = store_begin(s->store);
        if (r < 0) {
                g_debug("session: cannot name conversations: %s", g_strerror(-r));
                return;
        }
        for (guint i = 0; r >= 0 && i < named->len; i += 2) {
                const char *id = g_ptr_array_index(named, i);

                r = store_set_conversation_name(s->store, id, g_ptr_array_index(named, i + 1));
                if (r > 0 && changed)
                        g_hash_table_add(changed, g_strdup(id));
        }
        if (r >= 0)
                r = store_commit(s->store);
        else
                (void) store_rollback(s->store);
        if (r < 0) {
                g_debug("session: cannot name conversations: %s", g_strerror(-r));
                if (changed)
                        g_hash_table_remove_all(changed);
        }
}

static void name_and_announce(Session *s, GHashTable *ids) {
        g_autoptr(GHashTable) changed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

        session_roster_name_conversations(s, ids, changed);
        if (g_hash_table_size(changed) > 0)
                session_announce_conversations(s, changed);
}

void session_roster_apply(Session *s) {
        name_and_announce(s, NULL);
}

void session_roster_update(Session *s, const XmppRosterItem *items, size_t n_items, bool full) {
        g_autoptr(GHashTable) pushed = g_hash_table_new(g_str_hash, g_str_equal);

        if (full || !s->roster_names) {
                g_clear_pointer(&s->roster_names, g_hash_table_unref);
                s->roster_names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        }
        for (size_t i = 0; i < n_items; i++) {
                /* A removed contact keeps the name its conversation had: the
                 * history still shows who it was. */
                if (strcmp(items[i].subscription, "remove") == 0)
                        g_hash_table_remove(s->roster_names, items[i].jid);
                else {
                        g_hash_table_replace(s->roster_names, g_strdup(items[i].jid), g_strdup(items[i].name));
                        g_hash_table_add(pushed, (gpointer) items[i].jid);
                }
        }
        /* A push names only its own contacts; the whole roster names all. */
        name_and_announce(s, full ? NULL : pushed);
}
