/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "credentials.h"
#include "custom.h"
#include "jid.h"
#include "media-type.h"
#include "session-private.h"

static void drop_stream(Session *s);
static void load_announced(Session *s);

const char *session_net_state_to_string(SessionNetState state) {
        switch (state) {
        case SESSION_NET_DISCONNECTED:
                return "disconnected";
        case SESSION_NET_CONNECTING:
                return "connecting";
        case SESSION_NET_CONNECTED:
                return "connected";
        }
        return "disconnected";
}

static void set_unread_total(Session *s, uint32_t total) {
        if (total == s->unread_total)
                return;
        s->unread_total = total;
        s->events.unread_total_changed(s->userdata);
}

void session_refresh_unread_total(Session *s) {
        uint32_t total = 0;

        /* a read that failed leaves the count as it was, not 0 */
        if (s->store && store_unread_total(s->store, &total) < 0)
                return;
        set_unread_total(s, total);
}

static void set_state(Session *s, SessionNetState net_state, bool ready) {
        if (s->net_state == net_state && s->ready == ready)
                return;
        s->net_state = net_state;
        s->ready = ready;
        s->events.state_changed(s->userdata);
}

/* Opens the history of account (closing another account's). */
static int open_account(Session *s, const char *account) {
        g_autofree char *dir = NULL;
        Store *store = NULL;
        uint32_t total;
        int r;

        if (s->account && strcmp(s->account, account) == 0 && s->store)
                return 0;
        dir = g_build_filename(s->data_dir, account, NULL);
        if (g_mkdir_with_parents(dir, 0700) < 0)
                return -errno;
        r = store_open(dir, &store);
        if (r < 0)
                return r;

        session_flush(s);
        session_archive_fail_waiting(s);
        session_cancel_fetches(s);
        /* the peer was chosen under the other account: not sent from this one */
        session_cancel_recording(s, "cancelled");
        session_cancel_uploads(s);
        g_clear_pointer(&s->pending_actions, g_ptr_array_unref);       /* another account's */
        store_close(s->store);
        s->store = store;
        g_free(s->account);
        s->account = g_strdup(account);
        session_waiting_load(s);
        load_announced(s);
        session_schedule_indexing(s, INDEX_QUIET_MS);   /* whatever an earlier run left unindexed */
        if (s->started)
                session_clean_outbox(s);
        /* Compared with the previous account's count, so that a change
         * (to 0 as well) is announced; one that cannot be read is 0 here,
         * not the previous account's. */
        if (store_unread_total(s->store, &total) < 0)
                total = 0;
        set_unread_total(s, total);
        s->events.state_changed(s->userdata);
        return 0;
}

/* private_history: the history goes with the login. What waits on it is
 * cancelled as for another account, and its events are no one's now. */
static void close_account(Session *s) {
        if (!s->store)
                return;
        session_flush(s);
        session_archive_fail_waiting(s);
        session_cancel_fetches(s);
        session_cancel_recording(s, "cancelled");
        session_cancel_uploads(s);
        g_clear_pointer(&s->pending_actions, g_ptr_array_unref);
        session_waiting_forget(s);
        g_clear_pointer(&s->roster_names, g_hash_table_unref);
        if (s->replay_source) {
                g_source_remove(s->replay_source);
                s->replay_source = 0;
        }
        if (s->index_source) {
                g_source_remove(s->index_source);
                s->index_source = 0;
        }
        g_debug("session: closing the history of %s", s->account);
        g_clear_pointer(&s->store, store_close);
        g_clear_pointer(&s->account, g_free);
        set_unread_total(s, 0);
        s->events.state_changed(s->userdata);
}

static int64_t parse_seq(const char *text) {
        gint64 v;
        return text && g_ascii_string_to_signed(text, 10, 0, G_MAXINT64, &v, NULL) ? v : -1;
}

/* Announces what the history holds beyond announced_seq: messages committed
 * by a previous run that was killed before their signals went out. */
static gboolean on_replay(gpointer userdata) {
        Session *s = userdata;
        int64_t pos = s->replay_from;

        s->replay_source = 0;
        /* Exactly the range found at opening: newer messages were announced
         * (and confirmed, moving the mark past these) as they came. */
        while (pos < s->replay_to) {
                g_autoptr(GPtrArray) msgs = NULL;
                if (store_list_messages_after(s->store, pos, REPLAY_CHUNK, &msgs) < 0 || msgs->len == 0)
                        break;
                while (msgs->len > 0 &&
                       ((StoreMessage *) g_ptr_array_index(msgs, msgs->len - 1))->seq > s->replay_to)
                        g_ptr_array_remove_index(msgs, msgs->len - 1);
                if (msgs->len == 0)
                        break;
                g_debug("session: announcing %u messages committed before imd stopped", msgs->len);
                pos = ((StoreMessage *) g_ptr_array_index(msgs, msgs->len - 1))->seq;
                s->events.messages_added(msgs, s->userdata);
        }
        return G_SOURCE_REMOVE;
}

/* Loads the announcement mark of the history just opened; a history without
 * one (new, or from before the mark existed) counts as fully announced. */
static void load_announced(Session *s) {
        g_autofree char *text = NULL;
        int64_t last = 0;

        if (s->replay_source) {
                g_source_remove(s->replay_source);
                s->replay_source = 0;
        }
        if (store_last_seq(s->store, &last) < 0)
                last = 0;
        if (store_get_meta(s->store, META_ANNOUNCED_SEQ, &text) >= 0 && parse_seq(text) >= 0) {
                s->announced_seq = parse_seq(text);
                s->replay_from = s->announced_seq;
                s->replay_to = last;
                /* From an idle callback: at start-up the bus is not connected yet. */
                if (s->replay_from < s->replay_to)
                        s->replay_source = g_idle_add(on_replay, s);
                return;
        }
        s->announced_seq = -1;
        session_messages_announced(s, last);
}

void session_messages_announced(Session *s, int64_t seq) {
        char text[24];
        int r;

        if (!s->store || seq <= s->announced_seq)
                return;
        g_snprintf(text, sizeof text, "%" G_GINT64_FORMAT, (gint64) seq);
        r = store_set_meta(s->store, META_ANNOUNCED_SEQ, text);
        if (r < 0) {
                g_debug("session: cannot record the announcement mark: %s", g_strerror(-r));
                return;
        }
        s->announced_seq = seq;
}

static void remember_account(Session *s) {
        g_autofree char *path = g_build_filename(s->data_dir, LAST_ACCOUNT_FILE, NULL);
        g_autoptr(GError) error = NULL;

        if (!g_file_set_contents_full(path, s->account, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error))
                g_warning("Cannot record the last account: %s", error->message);
}

/* --- credentials kept for reconnecting --- */

static void forget_credentials(Session *s) {
        if (s->password) {
                explicit_bzero(s->password, strlen(s->password));
                g_clear_pointer(&s->password, g_free);
        }
        g_clear_pointer(&s->url, g_free);
        g_clear_pointer(&s->ca_file, g_free);
        g_clear_pointer(&s->keys, scram_keys_free);
        g_clear_pointer(&s->resumable, xmpp_sm_free);
        session_forget_refusals(s);
        s->remember = false;
        s->autologin = false;
        s->online_wanted = false;
        if (s->reconnect_source) {
                g_source_remove(s->reconnect_source);
                s->reconnect_source = 0;
        }
}

/* --- the remembered login (credentials.h) --- */

static void forget_remembered(Session *s, const char *account) {
        g_autofree char *dir = NULL;
        int r;

        if (!account)
                return;
        dir = g_build_filename(s->data_dir, account, NULL);
        r = credentials_remove(dir);
        if (r < 0)
                g_warning("Cannot remove the remembered login of %s: %s", account, g_strerror(-r));
}

/* A Login succeeded: its keys are stored if it asked for that; else no
 * remembered login may outlive it, its account's or the previous one's
 * (only the last account's is ever used). */
static void settle_remembered(Session *s, const char *previous) {
        g_autofree char *dir = NULL, *text = NULL;
        ScramKeys *keys;
        int r;

        if (previous && strcmp(previous, s->account) != 0)
                forget_remembered(s, previous);
        if (!s->remember) {
                forget_remembered(s, s->account);
                return;
        }
        dir = g_build_filename(s->data_dir, s->account, NULL);
        keys = xmpp_stream_steal_scram_keys(s->stream);
        /* No keys: not SCRAM, which the stream refuses when remembering. */
        r = keys ? credentials_save(dir, keys, s->url, s->ca_file) : -ENOTSUP;
        scram_keys_free(keys);
        if (r >= 0)
                return;
        forget_remembered(s, s->account);
        text = g_strdup_printf("Logged in, but the login cannot be remembered: %s", g_strerror(-r));
        /* A file system errno such as EACCES must not read as AuthFailed. */
        s->events.error(r == -ENOTSUP ? r : -EIO, text, s->userdata);
}

/* --- batching of incoming messages --- */

static gboolean on_batch_flush(gpointer userdata) {
        Session *s = userdata;
        s->batch_source = 0;
        session_flush(s);
        return G_SOURCE_REMOVE;
}

void session_announce_conversations(Session *s, GHashTable *ids) {
        g_autoptr(GPtrArray) convs = g_ptr_array_new_with_free_func((GDestroyNotify) store_conversation_free);
        GHashTableIter it;
        gpointer key;

        g_hash_table_iter_init(&it, ids);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                StoreConversation *c = NULL;
                if (store_get_conversation(s->store, key, &c) >= 0)
                        g_ptr_array_add(convs, c);
        }
        if (convs->len > 0)
                s->events.conversations_changed(convs, s->userdata);
}

static gboolean on_index_step(gpointer userdata);

/* (Re)starts the wait for quiet before indexing what was stored. */
void session_schedule_indexing(Session *s, unsigned delay_ms) {
        if (s->index_source)
                g_source_remove(s->index_source);
        s->index_source = g_timeout_add(delay_ms, on_index_step, s);
}

static gboolean on_index_step(gpointer userdata) {
        Session *s = userdata;
        bool done = true;
        int r;

        s->index_source = 0;
        if (!s->store)
                return G_SOURCE_REMOVE;
        r = store_index_pending(s->store, INDEX_STEP_MESSAGES, &done);
        if (r < 0)
                g_debug("session: search indexing failed: %s", g_strerror(-r));
        else if (!done)
                session_schedule_indexing(s, INDEX_STEP_PAUSE_MS);
#ifdef __GLIBC__
        else
                /* Quiet and caught up: hand the kernel back the heap pages that
                 * the login or a burst of messages used and freed. malloc only
                 * returns free memory at the top of the heap by itself. Once
                 * per quiet spell (2 s after the last stored batch). */
                (void) malloc_trim(0);
#endif
        return G_SOURCE_REMOVE;
}

/* The connection a failed write had condemned is gone (or never to be used
 * again): the next one starts clean. */
static void forget_unstored(Session *s) {
        s->unstored = false;
        g_clear_handle_id(&s->drop_source, g_source_remove);
}

/* Not from within the stream's callbacks: it calls us back, closed. */
static gboolean on_drop_unstored(gpointer userdata) {
        Session *s = userdata;

        s->drop_source = 0;
        if (s->stream)
                xmpp_stream_abort(s->stream, -EIO, "imd could not store what the server sent");
        return G_SOURCE_REMOVE;
}

void session_settle_acks(Session *s) {
        if (s->stream && !s->held && !s->batch_messages && !s->back_running && !s->unstored)
                xmpp_stream_messages_committed(s->stream);
}

/* The ids the messages came with (the store may give one another), where
 * actions wait for it, else NULL; NULL if none waits for any. */
GPtrArray *session_waited_for(Session *s, GPtrArray *messages) {
        GPtrArray *ids = NULL;

        if (!s->waiting)
                return NULL;
        for (guint i = 0; i < messages->len; i++) {
                const StoreMessage *m = g_ptr_array_index(messages, i);
                if (!session_waiting_for(s, m->conversation, m->id))
                        continue;
                if (!ids) {
                        ids = g_ptr_array_new_full(messages->len, g_free);
                        g_ptr_array_set_size(ids, (gint) messages->len);
                }
                ids->pdata[i] = g_strdup(m->id);
        }
        return ids;
}

void session_apply_waiting_to(Session *s, GPtrArray *messages, GPtrArray *ids, ActionNews news, bool reread) {
        if (!ids)
                return;
        for (guint i = 0; i < messages->len; i++) {
                const StoreMessage *m = g_ptr_array_index(messages, i);
                const char *id = g_ptr_array_index(ids, i);
                /* a copy of a message stored before (seq 0) brings it as
                 * well: it was announced then, so its change is news */
                if (id)
                        (void) session_apply_waiting(s, m->conversation, id, m->seq ? news : ACTION_NEWS_ALL);
        }
        if (!reread)
                return;
        /* Each message an action waited for, as it is now, for its
         * announcement: not only the one whose turn applied them, as two
         * of the batch may have come with the same id (the actions went to
         * the newest). */
        for (guint i = 0; i < messages->len; i++) {
                StoreMessage *m = g_ptr_array_index(messages, i), *now = NULL;
                if (!g_ptr_array_index(ids, i) || m->seq == 0 ||
                    store_get_message(s->store, m->conversation, m->id, &now) < 0)
                        continue;
                store_message_free(m);
                messages->pdata[i] = now;
        }
}

/* Stores a batch and announces what was new in it. */
static int store_and_announce(Session *s, GPtrArray *messages) {
        g_autoptr(GHashTable) conversations = NULL;
        g_autoptr(GPtrArray) waited = session_waited_for(s, messages);
        int r;

        r = store_append_messages(s->store, (StoreMessage *const *) messages->pdata, messages->len, NULL);
        if (r < 0) {
                /* Nothing of the batch is on disk: neither announce nor
                 * acknowledge it. The next batch stored would acknowledge
                 * this one too (XEP-0198 counts in arrival order), so the
                 * connection goes instead, and the server sends it again. */
                g_warning("Cannot write the message history: %s", g_strerror(-r));
                s->events.error(r, "Cannot write the message history", s->userdata);
                s->store_trouble = true;
                if (s->stream && !s->unstored) {
                        s->unstored = true;
                        s->drop_source = g_idle_add(on_drop_unstored, s);
                }
                return r;
        }
        s->store_trouble = false;
        /* Held messages are not stored yet: acknowledging now would
         * acknowledge them too (XEP-0198 counts in arrival order). */
        session_settle_acks(s);
        /* A message others acted on before it came is announced as it is
         * after their actions: a retracted one never with its text. (A
         * crash before they are applied leaves them waiting: the next
         * opening applies them before announcing the message again.) */
        session_apply_waiting_to(s, messages, waited, ACTION_NEWS_NONE, true);
        conversations = g_hash_table_new(g_str_hash, g_str_equal);
        for (guint i = 0; i < messages->len;) {
                StoreMessage *m = g_ptr_array_index(messages, i);
                if (m->seq == 0) {
                        g_debug("session: duplicate message %s from %s ignored", m->id, m->conversation);
                        g_ptr_array_remove_index(messages, i);
                        continue;
                }
                g_hash_table_add(conversations, m->conversation);
                i++;
        }
        if (messages->len == 0)
                return 0;
        /* a conversation this batch created gets its contact's name */
        session_roster_name_conversations(s, conversations, NULL);
        session_schedule_indexing(s, INDEX_QUIET_MS);
        s->events.messages_added(messages, s->userdata);
        session_announce_conversations(s, conversations);
        session_refresh_unread_total(s);
        return 0;
}

/* Stores and announces the batch; negative errno if it could not be stored. */
int session_flush(Session *s) {
        g_autoptr(GPtrArray) messages = g_steal_pointer(&s->batch_messages);
        guint window;
        bool busy;
        int r;

        if (s->batch_source) {
                g_source_remove(s->batch_source);
                s->batch_source = 0;
        }
        if (!messages || messages->len == 0) {
                session_settle_acks(s);
                return 0;
        }
        /* busy: BATCH_BUSY_MESSAGES per BATCH_WINDOW_MS or more, whatever the window */
        window = MAX(s->batch_window_ms, BATCH_WINDOW_MS);
        busy = (uint64_t) messages->len * BATCH_WINDOW_MS >= (uint64_t) BATCH_BUSY_MESSAGES * window;
        s->batch_window_ms = busy ? MIN(window * 2, BATCH_WINDOW_MAX_MS) : BATCH_WINDOW_MS;

        r = store_and_announce(s, messages);
        /* after the work: what arrived meanwhile waited in the socket */
        s->batch_flushed_us = g_get_monotonic_time();
        return r;
}

bool session_is_batched(const Session *s, const char *conversation, const char *id) {
        for (guint i = 0; s->batch_messages && i < s->batch_messages->len; i++) {
                const StoreMessage *m = g_ptr_array_index(s->batch_messages, i);
                if (g_strcmp0(m->id, id) == 0 && g_strcmp0(m->conversation, conversation) == 0)
                        return true;
        }
        return false;
}

void session_flush_if_batched(Session *s, const char *conversation, const char *id) {
        if (session_is_batched(s, conversation, id))
                session_flush(s);
}

static void batch_add(Session *s, StoreMessage *m);

/* The catch-up is over (or broke off): what was held goes into the history,
 * after the archive's pages. */
void session_release_held(Session *s) {
        g_autoptr(GPtrArray) held = g_steal_pointer(&s->held);

        if (!held)
                return;
        g_ptr_array_set_free_func(held, NULL);  /* batch_add() takes them */
        for (guint i = 0; i < held->len; i++)
                batch_add(s, g_ptr_array_index(held, i));
        session_batch_held_actions(s);
        session_flush(s);
        session_apply_held_actions(s);
}

static void batch_add(Session *s, StoreMessage *m) {
        if (!s->batch_messages) {
                /* the flood, if there was one, is over */
                if (g_get_monotonic_time() - s->batch_flushed_us > (int64_t) s->batch_window_ms * 1000)
                        s->batch_window_ms = BATCH_WINDOW_MS;
                s->batch_messages = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
                /* A timer, not an idle source: under a sustained flood an idle
                 * source would never run and the batch would never be stored. */
                s->batch_source = g_timeout_add(MAX(s->batch_window_ms, BATCH_WINDOW_MS), on_batch_flush, s);
        }
        g_ptr_array_add(s->batch_messages, m);
        if (s->batch_messages->len >= BATCH_MAX_MESSAGES)
                session_flush(s);
}

/* --- stream callbacks --- */

static void on_stream_ready(bool resumed, void *userdata) {
        Session *s = userdata;
        g_autofree char *previous = g_strdup(s->account);
        int r;

        /* The account's history opens only once the server accepted it, so a
         * mistyped JID leaves nothing behind. */
        r = open_account(s, s->login_jid);
        if (r < 0) {
                /* Orphaned, not dropped: it must not call us again. */
                xmpp_stream_close_and_free(g_steal_pointer(&s->stream));
                forget_unstored(s);
                /* not logged in: the next Login may try again (not Busy) */
                forget_credentials(s);
                set_state(s, SESSION_NET_DISCONNECTED, false);
                s->login_pending = false;
                s->events.login_finished(-EIO, "Cannot open the message history", s->userdata);
                return;
        }
        remember_account(s);
        if (s->login_pending)
                settle_remembered(s, previous);
        s->autologin = false;
        session_roster_apply(s);        /* the roster came before the history was open */
        if (!s->store_trouble)
                backoff_reset(&s->backoff);
        s->max_stanza_bytes = xmpp_stream_max_stanza_bytes(s->stream);
        set_state(s, SESSION_NET_CONNECTED, true);
        if (!resumed)
                session_forget_upload_service(s);       /* a new connection may have another */
        session_refusal_on_ready(s, resumed);
        session_send_outbox(s);
        /* A fresh session may have missed anything; a resumed one missed
         * nothing, unless the catch-up of its first connection broke off. */
        if (!resumed)
                s->mam_done = false;
        s->mam_running = false;
        if (!s->mam_done)
                session_archive_catch_up(s);
        if (s->login_pending) {
                s->login_pending = false;
                s->events.login_finished(0, NULL, s->userdata);
        }
}

static gboolean on_reap(gpointer userdata);

/* Called from within the stream's own callbacks: free it from the main loop. */
static void drop_stream(Session *s) {
        xmpp_stream_free(s->dead_stream);
        s->dead_stream = g_steal_pointer(&s->stream);
        if (!s->reap_source)
                s->reap_source = g_idle_add(on_reap, s);
}

static gboolean on_reap(gpointer userdata) {
        Session *s = userdata;
        s->reap_source = 0;
        xmpp_stream_free(g_steal_pointer(&s->dead_stream));
        return G_SOURCE_REMOVE;
}

static void schedule_reconnect(Session *s);

/* The server ended the session for good (kicked out, the remembered login
 * refused): it ends as Logout ends it. A recording left running would be
 * sent, once stopped, by whichever account logs in next; it is cancelled
 * before KickedOut goes out, so that a client hearing that finds Recording
 * false. */
static void end_for_good(Session *s) {
        forget_credentials(s);
        session_cancel_recording(s, "cancelled");
        set_state(s, SESSION_NET_DISCONNECTED, false);
        if (s->config.private_history)
                close_account(s);
}

static void on_stream_closed(int error, const char *text, void *userdata) {
        Session *s = userdata;

        s->mam_running = false;         /* the query went with the connection */
        session_flush(s);
        session_release_held(s);
        session_archive_fail_waiting(s);
        /* only now: until here, what could not be stored stays unacknowledged */
        forget_unstored(s);
        /* What the lost connection had in flight, to resume it (or resend). */
        if (s->stream) {
                XmppSm *sm = xmpp_stream_steal_sm(s->stream);
                session_refusal_on_close(s, error, xmpp_stream_error_condition(s->stream));
                if (sm) {
                        xmpp_sm_free(s->resumable);
                        s->resumable = sm;
                }
        }
        drop_stream(s);

        if (s->login_pending) {
                /* The first login failed: tell the caller, don't retry behind its back. */
                s->login_pending = false;
                forget_credentials(s);
                set_state(s, SESSION_NET_DISCONNECTED, false);
                s->events.login_finished(error ? error : -ECONNRESET, text, s->userdata);
                return;
        }
        if (!s->online_wanted) {
                set_state(s, SESSION_NET_DISCONNECTED, false);
                return;
        }
        if (error == -EACCES && s->autologin) {
                /* The remembered keys no longer work (a new password, most
                 * likely): they go, and imd waits for a Login instead of
                 * trying them again at every start. Nobody was logged in to
                 * be kicked out. */
                g_autofree char *msg = g_strdup_printf("The remembered login of %s no longer works (%s); "
                                                       "log in again with the password", s->login_jid,
                                                       text ? text : "refused");
                forget_remembered(s, s->login_jid);
                end_for_good(s);
                s->events.error(error, msg, s->userdata);
                return;
        }
        if (error == -EADDRINUSE || error == -EACCES) {
                /* Fighting back would kick the other login out in turn, or
                 * hammer the server with a password it refuses. */
                const char *reason = error == -EACCES ? "auth" : "conflict";
                /* Refused credentials are refused at the next start too. */
                if (error == -EACCES)
                        forget_remembered(s, s->login_jid);
                end_for_good(s);
                s->events.error(error, text, s->userdata);
                s->events.kicked_out(reason, text, s->userdata);
                return;
        }
        set_state(s, SESSION_NET_CONNECTING, false);
        s->events.error(error ? error : -ECONNRESET, text, s->userdata);
        schedule_reconnect(s);
}

/* Messages of ours from another device (carbons, the archive) were sent by
 * the time we hear of them. */
static void on_stream_chat_message(const XmppChatMessage *msg, void *userdata) {
        Session *s = userdata;
        StoreMessage *m = g_new0(StoreMessage, 1);

        m->id = msg->id ? g_strdup(msg->id) : xmpp_new_id();
        m->conversation = g_strdup(msg->peer);
        m->sender = g_strdup(msg->outgoing ? s->account : msg->peer);
        m->stanza_id = g_strdup(msg->stanza_id);
        m->direction = msg->outgoing ? STORE_DIRECTION_OUT : STORE_DIRECTION_IN;
        m->time_ms = msg->time_ms ? msg->time_ms : g_get_real_time() / 1000;
        m->type = g_strdup("text");
        m->text = g_strdup(msg->body);
        if (msg->json) {
                if (custom_data_valid(msg->json)) {
                        g_free(m->type);
                        m->type = g_strdup("custom");
                        m->data = g_strdup(msg->json);
                        m->extension = g_strdup(msg->extension);
                } else {
                        g_debug("session: ignoring invalid custom data from %s", msg->peer);
                        if (!msg->body) {
                                store_message_free(m);
                                session_settle_acks(s);
                                return;
                        }
                }
        }
        if (msg->media.url && strcmp(m->type, "custom") != 0) {
                g_free(m->type);
                m->type = g_strdup(media_describe(msg->media.url, msg->media.mime, msg->media.name, &m->mime,
                                                  &m->name));
                m->url = g_strdup(msg->media.url);
                m->size = msg->media.size;
                m->width = msg->media.width;
                m->height = msg->media.height;
                m->duration_ms = msg->media.duration_ms;
        }
        m->status = g_strdup(msg->outgoing ? "sent" : "received");
        if (s->back_running && msg->archived) {
                g_ptr_array_add(s->back_page, m);
                return;
        }
        if (s->mam_running && !msg->archived) {
                if (!s->held)
                        s->held = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
                g_ptr_array_add(s->held, m);
                if (s->held->len >= MAM_HELD_MAX)
                        session_release_held(s);
                return;
        }
        batch_add(s, m);
}


static void on_stream_roster(const XmppRosterItem *items, size_t n_items, bool full, void *userdata) {
        Session *s = userdata;

        /* The roster is fetched as part of the login (the TIM SDK_READY
         * contract); its names are the conversations' names. Contacts
         * themselves are exposed in a later interface version. */
        g_debug("session: roster %s with %zu items", full ? "received" : "push", n_items);
        session_roster_update(s, items, n_items, full);
}

/* Someone's words that never reach the history: the user is told. */
static void on_stream_message_dropped(const char *from, size_t bytes, void *userdata) {
        Session *s = userdata;
        g_autofree char *sender = from ? jid_normalize_bare(from) : NULL;
        g_autofree char *text = g_strdup_printf("A message from %s (%zu bytes) was over imd's limits and was dropped",
                                                sender ? sender : "an unknown sender", bytes);

        s->events.error(-EMSGSIZE, text, s->userdata);
}

static const XmppStreamCallbacks stream_callbacks = {
        .ready = on_stream_ready,
        .closed = on_stream_closed,
        .chat_message = on_stream_chat_message,
        .roster = on_stream_roster,
        .delivered = on_stream_delivered,
        .displayed = on_stream_displayed,
        .sent = on_stream_sent,
        .typing = on_stream_typing,
        .action = on_stream_action,
        .mam_finished = on_stream_mam_finished,
        .message_dropped = on_stream_message_dropped,
};

/* --- public API --- */

static char *read_last_account(const char *data_dir) {
        g_autofree char *path = g_build_filename(data_dir, LAST_ACCOUNT_FILE, NULL);
        g_autofree char *contents = NULL;

        if (!g_file_get_contents(path, &contents, NULL, NULL))
                return NULL;
        g_strstrip(contents);
        return jid_normalize_bare(contents);
}

static int start_stream(Session *s);

/* At start, after the bus is up (an idle callback runs once the main loop
 * does): the last account logs in by itself if its login was remembered. */
static gboolean on_autologin(gpointer userdata) {
        Session *s = userdata;
        g_autofree char *account = NULL, *dir = NULL, *msg = NULL;
        Credentials *c = NULL;
        int r;

        s->autologin_source = 0;
        account = g_steal_pointer(&s->autologin_account);
        /* A Login that came first (D-Bus activation) wins. */
        if (!account || s->stream || s->online_wanted || s->login_pending)
                return G_SOURCE_REMOVE;
        dir = g_build_filename(s->data_dir, account, NULL);
        r = credentials_load(dir, &c);
        if (r == -ENOENT)
                return G_SOURCE_REMOVE;
        if (r < 0) {
                /* Keys others could read may be theirs now; keys others could
                 * plant would log us in as them. Either way: not used, and
                 * gone, so that a new Login writes a good file. */
                bool unsafe = r == -EPERM || r == -ELOOP;
                msg = g_strdup_printf("Not logging in as %s by itself: its remembered login %s/%s %s; it was "
                                      "removed, log in again", account, dir, CREDENTIALS_FILE,
                                      unsafe ? "is not a private file of this user (mode 0600)"
                                             : r == -EBADMSG ? "is malformed" : g_strerror(-r));
                g_warning("%s", msg);
                (void) credentials_remove(dir);
                s->events.error(unsafe ? -EPERM : -EIO, msg, s->userdata);
                return G_SOURCE_REMOVE;
        }
        /* private_history: only now, with a login to go with it */
        if (!s->account && open_account(s, account) < 0) {
                g_warning("Cannot open the history of %s", account);
                credentials_free(c);
                return G_SOURCE_REMOVE;
        }

        g_free(s->login_jid);
        s->login_jid = g_steal_pointer(&account);
        s->keys = g_steal_pointer(&c->keys);
        s->url = g_steal_pointer(&c->url);
        s->ca_file = g_steal_pointer(&c->ca_file);
        credentials_free(c);
        if (s->config.private_history) {
                /* Not the endpoint stored with the keys: an older imd let
                 * the caller choose it (see bus-object.c's Login). */
                g_free(s->url);
                s->url = g_strdup(s->config.websocket_url);
        }
        r = s->url ? start_stream(s) : 0;
        if (r >= 0 && !s->url)
                session_discover_endpoint(s);
        if (r < 0) {
                /* A CA file gone, say: the file stays for the next start. */
                msg = g_strdup_printf("Cannot log in as %s by itself: %s", s->login_jid, g_strerror(-r));
                forget_credentials(s);
                s->events.error(r, msg, s->userdata);
                if (s->config.private_history)
                        close_account(s);
                return G_SOURCE_REMOVE;
        }
        g_debug("session: logging in as %s with the remembered login", s->login_jid);
        s->online_wanted = true;
        s->autologin = true;
        backoff_reset(&s->backoff);
        set_state(s, SESSION_NET_CONNECTING, false);
        return G_SOURCE_REMOVE;
}

int session_new(const char *data_dir, const char *cache_dir, XmppTransportContext *transport_ctx,
                const SessionConfig *config,
                const SessionEvents *events, void *userdata, Session **ret) {
        Session *s;
        g_autofree char *last = NULL;

        if (g_mkdir_with_parents(data_dir, 0700) < 0)
                return -errno;

        s = g_new0(Session, 1);
        s->events = *events;
        s->userdata = userdata;
        s->data_dir = g_strdup(data_dir);
        s->cache_dir = g_strdup(cache_dir);
        s->transport_ctx = transport_ctx;
        s->net_state = SESSION_NET_DISCONNECTED;
        s->max_stanza_bytes = XMPP_DEFAULT_MAX_STANZA_BYTES;
        s->discovery_fd = -1;
        s->config = *config;
        s->config.voice_source = g_strdup(config->voice_source);
        s->config.websocket_url = g_strdup(config->websocket_url);
        s->backoff.min_ms = config->reconnect_min_ms ? config->reconnect_min_ms : 1000;
        s->backoff.max_ms = config->reconnect_max_ms ? config->reconnect_max_ms : 60000;
        if (!s->config.revoke_window_ms)
                s->config.revoke_window_ms = 120000;    /* TIM's default: two minutes */
        if (!s->config.archive_wait_ms)
                s->config.archive_wait_ms = 10000;      /* well inside D-Bus's 25 s default call timeout */

        /* The last account's history stays readable while logged out; with
         * private_history it opens only for its remembered login (in
         * on_autologin(), which calls waiting on the bus precede). */
        last = read_last_account(data_dir);
        if (last && !s->config.private_history && open_account(s, last) < 0)
                g_warning("Cannot open the history of %s", last);
        if (last && (s->account || s->config.private_history))
                s->autologin_account = g_steal_pointer(&last);
        *ret = s;
        return 0;
}

void session_start(Session *s) {
        s->started = true;
        session_media_remove_partial(s);
        if (s->store)
                session_clean_outbox(s);
        if (s->autologin_account)
                s->autologin_source = g_idle_add(on_autologin, s);
}

void session_free(Session *s) {
        if (!s)
                return;
        s->mam_running = false;
        session_flush(s);
        session_release_held(s);
        session_archive_fail_waiting(s);
        session_cancel_fetches(s);
        session_cancel_recording(s, "cancelled");
        session_cancel_uploads(s);
        session_disown_copies(s);
        session_cancel_discovery(s);
        forget_credentials(s);
        if (s->reap_source)
                g_source_remove(s->reap_source);
        forget_unstored(s);
        if (s->autologin_source)
                g_source_remove(s->autologin_source);
        if (s->replay_source)
                g_source_remove(s->replay_source);
        if (s->index_source)
                g_source_remove(s->index_source);
        xmpp_stream_free(s->dead_stream);
        xmpp_stream_free(s->stream);
        g_clear_pointer(&s->pending_actions, g_ptr_array_unref);
        g_clear_pointer(&s->held_actions, g_ptr_array_unref);
        session_waiting_forget(s);
        g_clear_pointer(&s->roster_names, g_hash_table_unref);
        store_close(s->store);
        g_free(s->account);
        g_free(s->login_jid);
        g_free(s->data_dir);
        g_free(s->cache_dir);
        g_free(s->config.voice_source);
        g_free(s->config.websocket_url);
        g_free(s->autologin_account);
        g_free(s->voice_auto_owner);
        g_free(s->voice_auto_id);
        g_clear_pointer(&s->upload_lookups, g_array_unref);
        g_clear_pointer(&s->file_requests, g_ptr_array_unref);
        g_clear_pointer(&s->uploads, g_ptr_array_unref);
        g_free(s);
}

static int start_stream(Session *s) {
        XmppStreamConfig config = {
                .jid = s->login_jid,
                .password = s->password,
                .keys = s->password ? NULL : s->keys,
                .need_scram_keys = s->remember,
                .url = s->url,
                .ca_file = s->ca_file,
                .ping_interval_ms = s->config.ping_interval_ms,
                .ping_timeout_ms = s->config.ping_timeout_ms,
                .sm = s->resumable,
        };
        int r = xmpp_stream_new(s->transport_ctx, &config, &stream_callbacks, s, &s->stream);
        if (r >= 0)
                s->resumable = NULL;    /* the stream owns it now */
        return r;
}

static gboolean on_reconnect(gpointer userdata) {
        Session *s = userdata;
        int r;

        s->reconnect_source = 0;
        r = start_stream(s);
        if (r < 0) {
                g_debug("session: reconnect attempt failed at once: %s", g_strerror(-r));
                schedule_reconnect(s);
        }
        return G_SOURCE_REMOVE;
}

static void schedule_reconnect(Session *s) {
        unsigned delay = backoff_next_ms(&s->backoff, g_random_int());

        g_debug("session: reconnecting in %u ms", delay);
        if (s->reconnect_source)
                g_source_remove(s->reconnect_source);
        s->reconnect_source = g_timeout_add(delay, on_reconnect, s);
}

int session_login(Session *s, const char *jid, const char *password, const char *url, const char *ca_file,
                  bool remember) {
        int r;

        if (s->stream || s->login_pending || s->online_wanted)
                return -EBUSY;
        /* Another account's contact names must not name this one's
         * conversations, should its roster not come. */
        if (!s->login_jid || strcmp(s->login_jid, jid) != 0)
                g_clear_pointer(&s->roster_names, g_hash_table_unref);
        g_free(s->login_jid);
        s->login_jid = g_strdup(jid);
        s->password = g_strdup(password);
        if (!url)
                url = s->config.websocket_url;
        s->url = g_strdup(url);
        s->ca_file = g_strdup(ca_file);
        s->remember = remember;
        /* An unusable ca_file is the caller's mistake, said now: with no URL
         * it would show only as a failed connection, after the discovery. */
        r = url ? start_stream(s) : xmpp_transport_check_ca_file(s->transport_ctx, ca_file);
        if (r < 0) {
                forget_credentials(s);
                return r;
        }
        if (!url)
                session_discover_endpoint(s);
        s->online_wanted = true;
        s->login_pending = true;
        backoff_reset(&s->backoff);
        set_state(s, SESSION_NET_CONNECTING, false);
        return 0;
}

void session_login_connect(Session *s) {
        g_autofree char *text = NULL;
        int r = start_stream(s);

        if (r >= 0)
                return;
        text = g_strdup_printf("Cannot connect to %s: %s", s->url, g_strerror(-r));
        if (s->autologin) {
                /* no Login call to answer */
                forget_credentials(s);
                set_state(s, SESSION_NET_DISCONNECTED, false);
                s->events.error(r, text, s->userdata);
                if (s->config.private_history)
                        close_account(s);
                return;
        }
        s->login_pending = false;
        forget_credentials(s);
        set_state(s, SESSION_NET_DISCONNECTED, false);
        s->events.login_finished(r, text, s->userdata);
}

/* Logout but for the history: the login ends, and nothing logs in again by
 * itself at the next start. */
static void end_login(Session *s) {
        session_cancel_recording(s, "cancelled");
        session_cancel_uploads(s);
        session_cancel_fetches(s);      /* downloads need no connection to the server */
        /* The user logged out: not in again by itself at the next start. */
        forget_remembered(s, s->account);
        if (s->login_jid && (!s->account || strcmp(s->login_jid, s->account) != 0))
                forget_remembered(s, s->login_jid);
        forget_credentials(s);
        if (session_discovering(s)) {
                session_cancel_discovery(s);
                s->login_pending = false;
                set_state(s, SESSION_NET_DISCONNECTED, false);
                s->events.login_finished(-ECANCELED, "Logged out before the login completed", s->userdata);
                return;
        }
        if (!s->stream) {
                set_state(s, SESSION_NET_DISCONNECTED, false);
                return;
        }
        s->mam_running = false;
        session_flush(s);
        session_release_held(s);
        session_archive_fail_waiting(s);
        if (s->login_pending) {
                s->login_pending = false;
                s->events.login_finished(-ECANCELED, "Logged out before the login completed", s->userdata);
        }
        xmpp_stream_close_and_free(g_steal_pointer(&s->stream));
        forget_unstored(s);
        set_state(s, SESSION_NET_DISCONNECTED, false);
}

void session_logout(Session *s) {
        end_login(s);
        if (s->config.private_history)
                close_account(s);
}

SessionNetState session_net_state(const Session *s) {
        return s->net_state;
}

bool session_is_ready(const Session *s) {
        return s->ready;
}

const char *session_account(const Session *s) {
        return s->account ? s->account : "";
}

uint32_t session_unread_total(const Session *s) {
        return s->unread_total;
}
