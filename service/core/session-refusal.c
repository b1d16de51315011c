/* SPDX-License-Identifier: MIT */
/*
 * Messages a server refuses by ending the connection.
 *
 * A server closes the stream on a stanza over its size limit, and the outbox
 * would send such a message again after every reconnect, forever. imd refuses
 * what it knows to be too large (the limit the server announces, XEP-0478,
 * else XMPP_DEFAULT_MAX_STANZA_BYTES) before storing it; for a server with a
 * lower limit that it does not announce, this file finds the message that
 * keeps getting the connection closed, and fails it.
 *
 * Prosody and ejabberd close with a policy-violation stream error, but the
 * error often does not reach us: the server resets the connection while our
 * frame is still arriving, and the error goes with the reset. So a close by
 * the server of a ready connection (a stream error, a WebSocket close, a
 * reset; not our ping timeout, a kick-out, or a reconnect that failed)
 * counts, unless the server named another reason (system-shutdown, ...).
 *
 * The suspect: the largest of our messages over XMPP_ALWAYS_TAKEN_STANZA_BYTES
 * (a smaller one offends no server, and most messages are small) written on
 * that connection (or sent again by its resume) within REFUSAL_WINDOW_US of
 * its end, and not acknowledged. A server refuses at once, and processes
 * stanzas in order: the one over its limit is larger than any it took.
 *
 * The verdict waits for the next connection: if it resumes the session
 * (XEP-0198), the server kept it, so it did not refuse anything, and the
 * suspicion is dropped (a slow link that was reset, say; a server that ends
 * the stream for policy-violation ends the session too). Only consecutive
 * refusals count:
 * a suspect that outlived REFUSAL_WINDOW_US on a connection starts again from
 * zero. Refused POLICY_REFUSALS_MAX times, a message becomes "failed" when the
 * next fresh session starts, before the outbox would send it again
 * (ResendMessage can still send it).
 *
 * What is left: a message the server took but has not acknowledged yet
 * (with XEP-0198, or without it by answering a ping sent after it) is a
 * suspect like one it refused; three resets in a row, each within 10 s
 * of writing it and none survived by the session (a server killed three
 * times), would fail it although it may have been delivered.
 */
#include <errno.h>
#include <string.h>
#include <glib.h>

#include "session-private.h"

#define REFUSAL_WINDOW_US (10 * G_USEC_PER_SEC)

typedef struct Written {
        char *conversation;
        bool action;                    /* a queued action (a correction) */
        size_t bytes;                   /* its stanza's */
        int64_t written_us;             /* monotonic time it was (last) written */
} Written;

static void written_free(void *p) {
        Written *w = p;

        g_free(w->conversation);
        g_free(w);
}

void session_note_written(Session *s, const char *conversation, const char *id, bool action, size_t bytes) {
        Written *w;

        if (bytes <= XMPP_ALWAYS_TAKEN_STANZA_BYTES)
                return;
        if (!s->written)
                s->written = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, written_free);
        w = g_new0(Written, 1);
        w->conversation = g_strdup(conversation);
        w->action = action;
        w->bytes = bytes;
        w->written_us = g_get_monotonic_time();
        g_hash_table_replace(s->written, g_strdup(id), w);
}

void session_forget_refusals(Session *s) {
        g_clear_pointer(&s->written, g_hash_table_unref);
        g_clear_pointer(&s->refusals, g_hash_table_unref);
        g_clear_pointer(&s->suspect, g_free);
        g_clear_pointer(&s->suspect_conversation, g_free);
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

void session_refusal_on_close(Session *s, int error, const char *stream_error) {
        int64_t since = g_get_monotonic_time() - REFUSAL_WINDOW_US;
        const Written *largest = NULL;
        const char *id = NULL;
        GHashTableIter it;
        gpointer key, value;

        /* a reconnect that failed changes nothing: the suspect of the last
         * ready connection waits for the next one */
        if (!s->ready)
                return;
        g_clear_pointer(&s->suspect, g_free);
        g_clear_pointer(&s->suspect_conversation, g_free);
        if (!s->written)
                return;
        g_hash_table_iter_init(&it, s->written);
        while (g_hash_table_iter_next(&it, &key, &value)) {
                const Written *w = value;
                if (w->written_us < since) {
                        /* outlived the window here: not refused */
                        if (s->refusals)
                                g_hash_table_remove(s->refusals, key);
                } else if (!largest || w->bytes > largest->bytes) {
                        largest = w;
                        id = key;
                }
        }
        /* not closed by the server (a stall, a kick-out), or for another reason */
        if (!largest || error != -ECONNRESET || (stream_error && strcmp(stream_error, "policy-violation") != 0))
                return;
        s->suspect = g_strdup(id);
        s->suspect_conversation = g_strdup(largest->conversation);
        s->suspect_is_action = largest->action;
        g_debug("session: the server closed the connection%s after %s %s (%zu bytes) was written",
                stream_error ? " (policy-violation)" : "", largest->action ? "correction" : "message", id,
                largest->bytes);
}

/* One more refusal of id in a row: true (and id forgotten) when that makes
 * POLICY_REFUSALS_MAX. */
static bool refused_enough(Session *s, const char *id) {
        guint refused;

        if (!s->refusals)
                s->refusals = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        refused = GPOINTER_TO_UINT(g_hash_table_lookup(s->refusals, id)) + 1;
        if (refused < POLICY_REFUSALS_MAX) {
                g_hash_table_replace(s->refusals, g_strdup(id), GUINT_TO_POINTER(refused));
                return false;
        }
        session_forget_refusals_of(s, id);
        return true;
}

/* The verdict on the last connection's suspect, now that the next one is
 * ready: true if it made the message "failed". */
static bool judge_suspect(Session *s, bool resumed) {
        g_autofree char *id = g_steal_pointer(&s->suspect);
        g_autofree char *conversation = g_steal_pointer(&s->suspect_conversation);
        g_autoptr(StoreMessage) m = NULL;
        g_autofree char *why = NULL;

        if (!id)
                return false;
        if (resumed) {
                /* the server kept the session: what closed it was not a refusal,
                 * and the row of refusals is broken */
                g_debug("session: resumed; message %s was not refused", id);
                if (s->refusals)
                        g_hash_table_remove(s->refusals, id);
                return false;
        }
        if (s->suspect_is_action) {
                /* a correction: the outbox of actions would send it again,
                 * forever; it goes, and the edit stays ours alone */
                if (!s->store || !refused_enough(s, id) || store_action_done(s->store, id) < 0)
                        return false;
                why = g_strdup_printf("The server closed the connection each of the last %d times a correction "
                                      "to %s was sent; it is dropped: most likely it is larger than the server "
                                      "takes", POLICY_REFUSALS_MAX, conversation);
                s->events.error(-EMSGSIZE, why, s->userdata);
                return false;
        }
        if (!s->store || store_get_message(s->store, conversation, id, &m) < 0 ||
            m->direction != STORE_DIRECTION_OUT || g_strcmp0(m->status, "pending") != 0 || m->revoked)
                return false;
        if (!refused_enough(s, id))
                return false;
        why = g_strdup_printf("The server closed the connection each of the last %d times message %s to %s "
                              "was sent; it is marked failed: most likely it is larger than the server takes",
                              POLICY_REFUSALS_MAX, id, conversation);
        session_fail_message(s, conversation, id, -EMSGSIZE, why);
        return true;
}

void session_refusal_on_ready(Session *s, bool resumed) {
        GHashTableIter it;
        gpointer value;

        (void) judge_suspect(s, resumed);
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
