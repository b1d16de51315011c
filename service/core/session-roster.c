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

void session_roster_name_conversations(Session *s, GHashTable *ids, GHashTable *changed) {
        GHashTableIter it;
        gpointer key, value;

        if (!s->roster_names || !roster_is_current(s))
                return;
        g_hash_table_iter_init(&it, ids ? ids : s->roster_names);
        while (g_hash_table_iter_next(&it, &key, &value)) {
                const char *name = ids ? g_hash_table_lookup(s->roster_names, key) : value;
                int r;

                if (!name)
                        continue;
                r = store_set_conversation_name(s->store, key, name);
                if (r < 0)
                        g_debug("session: cannot name conversation %s: %s", (const char *) key, g_strerror(-r));
                else if (r > 0 && changed)
                        g_hash_table_add(changed, g_strdup(key));
        }
}

/* Names every known conversation and announces the ones that changed. */
void session_roster_apply(Session *s) {
        g_autoptr(GHashTable) changed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

        session_roster_name_conversations(s, NULL, changed);
        if (g_hash_table_size(changed) > 0)
                session_announce_conversations(s, changed);
}

void session_roster_update(Session *s, const XmppRosterItem *items, size_t n_items, bool full) {
        if (full || !s->roster_names) {
                g_clear_pointer(&s->roster_names, g_hash_table_unref);
                s->roster_names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        }
        for (size_t i = 0; i < n_items; i++) {
                /* A removed contact keeps the name its conversation had: the
                 * history still shows who it was. */
                if (strcmp(items[i].subscription, "remove") == 0)
                        g_hash_table_remove(s->roster_names, items[i].jid);
                else
                        g_hash_table_replace(s->roster_names, g_strdup(items[i].jid), g_strdup(items[i].name));
        }
        session_roster_apply(s);
}
