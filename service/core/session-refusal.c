/* SPDX-License-Identifier: MIT */
/*
 * Messages a server refuses by ending the connection.
 *
 * A server closes the stream on a stanza over its size limit (Prosody and
 * ejabberd with a policy-violation stream error, which often does not even
 * reach us: the server resets the connection while our frame is still on its
 * way, and the error goes with the reset). The outbox would send such a
 * message again after every reconnect, forever. imd refuses what it knows to
 * be too large (the limit the server announces, XEP-0478, else
 * XMPP_DEFAULT_MAX_STANZA_BYTES) before storing it; for a server with a lower
 * limit it does not announce, this file finds the message that keeps getting
 * the connection closed, and fails it.
 *
 * The suspects: our messages over XMPP_ALWAYS_TAKEN_STANZA_BYTES (a smaller
 * one offends no server, and most messages are small), written on the
 * connection that ended (or sent again by its resume) within
 * REFUSAL_WINDOW_US of its end, and not acknowledged. A server refuses
 * at once; a message it took would have been acknowledged (XEP-0198) long
 * before a connection lost later. The largest suspect is blamed: the server
 * processes stanzas in order, and the one over its limit is larger than any
 * it took. Blamed POLICY_REFUSALS_MAX times, a message becomes "failed"
 * (ResendMessage can still send it), and the next connection starts a fresh
 * session, so that no resume sends it again.
 */
#include <errno.h>
#include <glib.h>

#include "session-private.h"

#define REFUSAL_WINDOW_US (10 * G_USEC_PER_SEC)

typedef struct Written {
        char *conversation;
        size_t bytes;                   /* its stanza's */
        int64_t written_us;             /* monotonic time it was (last) written */
} Written;

static void written_free(void *p) {
        Written *w = p;

        g_free(w->conversation);
        g_free(w);
}

void session_note_written(Session *s, const StoreMessage *m, size_t bytes) {
        Written *w;

        if (bytes <= XMPP_ALWAYS_TAKEN_STANZA_BYTES)
                return;
        if (!s->written)
                s->written = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, written_free);
        w = g_new0(Written, 1);
        w->conversation = g_strdup(m->conversation);
        w->bytes = bytes;
        w->written_us = g_get_monotonic_time();
        g_hash_table_replace(s->written, g_strdup(m->id), w);
}

void session_written_on_new_connection(Session *s, bool resumed) {
        GHashTableIter it;
        gpointer value;

        if (!resumed) {
                /* a fresh session: the outbox writes again what is pending */
                g_clear_pointer(&s->written, g_hash_table_unref);
                return;
        }
        if (!s->written)
                return;
        /* what the old connection had in flight, the resume wrote again */
        g_hash_table_iter_init(&it, s->written);
        while (g_hash_table_iter_next(&it, NULL, &value))
                ((Written *) value)->written_us = g_get_monotonic_time();
}

void session_forget_refusals(Session *s) {
        g_clear_pointer(&s->written, g_hash_table_unref);
        g_clear_pointer(&s->refusals, g_hash_table_unref);
}

void session_forget_refusals_of(Session *s, const char *id) {
        if (s->written)
                g_hash_table_remove(s->written, id);
        if (s->refusals)
                g_hash_table_remove(s->refusals, id);
}

size_t session_max_stanza_bytes(const Session *s) {
        return s->max_stanza_bytes;
}

bool session_blame_refusal(Session *s, bool policy_violation) {
        g_autoptr(StoreMessage) m = NULL;
        g_autofree char *why = NULL;
        const char *id = NULL;
        const Written *largest = NULL;
        int64_t since = g_get_monotonic_time() - REFUSAL_WINDOW_US;
        GHashTableIter it;
        gpointer key, value;
        size_t bytes;
        guint blamed;

        if (!s->written || !s->store)
                return false;
        g_hash_table_iter_init(&it, s->written);
        while (g_hash_table_iter_next(&it, &key, &value)) {
                const Written *w = value;
                if (w->written_us >= since && (!largest || w->bytes > largest->bytes)) {
                        largest = w;
                        id = key;
                }
        }
        if (!largest || store_get_message(s->store, largest->conversation, id, &m) < 0 ||
            m->direction != STORE_DIRECTION_OUT || g_strcmp0(m->status, "pending") != 0)
                return false;
        bytes = largest->bytes;
        if (!s->refusals)
                s->refusals = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        blamed = GPOINTER_TO_UINT(g_hash_table_lookup(s->refusals, m->id)) + 1;
        g_debug("session: the server %s the connection %u s after message %s (%zu bytes) was written",
                policy_violation ? "ended (policy-violation)" : "closed", (unsigned)
                ((g_get_monotonic_time() - largest->written_us) / G_USEC_PER_SEC), m->id, bytes);
        if (blamed < POLICY_REFUSALS_MAX) {
                g_hash_table_replace(s->refusals, g_strdup(m->id), GUINT_TO_POINTER(blamed));
                return false;
        }
        session_forget_refusals_of(s, m->id);           /* largest and id go with it */
        why = g_strdup_printf("The server closed the connection each of the %d times message %s to %s "
                              "(%zu bytes encoded) was sent; it is marked failed: most likely it is larger "
                              "than the server takes", POLICY_REFUSALS_MAX, m->id, m->conversation, bytes);
        session_fail_message(s, m->conversation, m->id, -EMSGSIZE, why);
        return true;
}
