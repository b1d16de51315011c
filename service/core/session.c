/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "backoff.h"
#include "actions.h"
#include "custom.h"
#include "reactions.h"
#include "jid.h"
#include "session.h"
#include "stream.h"

#define LAST_ACCOUNT_FILE "last-account"

/* Incoming messages are committed and announced together at most this long
 * after the first of them arrived, or when this many are waiting. A user does
 * not notice 20 ms; the disk and the CPU notice a commit per message. */
#define BATCH_WINDOW_MS 20
#define BATCH_MAX_MESSAGES 512

/* XEP-0313 catch-up: archive messages per page, and the store's meta key for
 * the archive id of the last message stored from the archive ("" when the
 * archive was empty: the next catch-up starts at its beginning). */
#define MAM_PAGE_SIZE 100
#define META_MAM_LAST_ID "mam-last-id"
/* Live messages held back while the catch-up runs; beyond this many they are
 * stored at once (memory matters more than order in a flood). */
#define MAM_HELD_MAX 4096

/* The store's meta key for the newest seq whose MessageReceived has certainly
 * left imd (see session_messages_announced()), and how many messages one
 * replay step re-announces. */
#define META_ANNOUNCED_SEQ "announced-seq"
#define REPLAY_CHUNK 512

/* Paging GetMessages back through the server archive: meta keys (suffixed
 * with the conversation) for the archive id of the oldest page fetched and
 * for "the archive has nothing older"; at most this many archive pages per
 * request (pages that only repeat cached messages included). */
#define META_ARCHIVE_CURSOR "archive-cursor:"
#define META_ARCHIVE_DONE "archive-done:"
#define BACK_PAGE_MIN 20
#define BACK_QUERIES_MAX 8

/* Search indexing waits until no message was stored for this long (so that a
 * flood is not slowed down by it), then indexes this many per step, with a
 * pause between steps so that the loop stays responsive. */
#define INDEX_QUIET_MS 2000
#define INDEX_STEP_MESSAGES 2000
#define INDEX_STEP_PAUSE_MS 20

typedef struct BackRequest {
        char *conversation;
        char *before_id;                /* "" for the newest */
        unsigned limit;
        unsigned queries;               /* archive pages asked for so far */
        SessionMessagesCallback callback;
        void *userdata;
} BackRequest;

struct Session {
        SessionEvents events;
        void *userdata;
        char *data_dir;                 /* $XDG_DATA_HOME/imd */
        XmppTransportContext *transport_ctx;

        char *account;                  /* bare JID whose history is open, or NULL */
        Store *store;
        XmppStream *stream;
        SessionNetState net_state;
        bool ready;
        bool login_pending;             /* login_finished() not yet delivered */
        char *login_jid;                /* account being logged in */

        /* Kept while the user wants to be online, to reconnect without asking. */
        SessionConfig config;
        bool online_wanted;
        char *password, *url, *ca_file;
        Backoff backoff;
        guint reconnect_source;
        XmppSm *resumable;              /* XEP-0198 state of the lost connection */
        guint reap_source;              /* frees a closed stream outside its callback */
        XmppStream *dead_stream;

        /* Incoming messages are stored in one transaction per batch and announced
         * after it commits: a signalled message is always on disk, and a flood
         * costs one commit (and one update per conversation) per batch rather
         * than per message. */
        guint batch_source;
        GPtrArray *batch_messages;      /* StoreMessage*, in arrival order; NULL if none */
        uint32_t unread_total;

        /* Announcing survives a kill -9: every message up to announced_seq was
         * announced; the ones after it (committed, then killed before their
         * signals left) are announced again when the history is next opened. */
        int64_t announced_seq;
        guint replay_source;

        guint index_source;             /* the next step of search indexing */

        /* Archive catch-up of the current connection. Live messages (and
         * offline ones, and carbons) that arrive meanwhile wait in held until
         * the archive's pages are stored, so the history keeps the archive's
         * order; the copies of them that the pages bring are stored first and
         * the held ones then turn out to be duplicates. */
        bool mam_running;               /* a query is out */
        bool mam_done;                  /* caught up; a resumed session need not again */
        GPtrArray *held;                /* StoreMessage*, in arrival order; NULL if none */

        /* GetMessages calls that ran out of cache and wait for older pages of
         * the archive, one query at a time, after any catch-up. */
        GQueue back_requests;           /* BackRequest*, the head's query may be out */
        bool back_running;              /* a query for the head is out */
        GPtrArray *back_page;           /* StoreMessage*, its results, oldest first */
};

static int session_flush(Session *s);
static void drop_stream(Session *s);
static void send_outbox(Session *s);
static void mam_catch_up(Session *s);
static void load_announced(Session *s);
static void back_run(Session *s);
static void schedule_indexing(Session *s, unsigned delay_ms);
static void back_fail_all(Session *s);

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

static void refresh_unread_total(Session *s) {
        uint32_t total = 0;

        if (s->store && store_unread_total(s->store, &total) < 0)
                return;
        if (total == s->unread_total)
                return;
        s->unread_total = total;
        s->events.unread_total_changed(s->userdata);
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
        back_fail_all(s);
        store_close(s->store);
        s->store = store;
        g_free(s->account);
        s->account = g_strdup(account);
        load_announced(s);
        schedule_indexing(s, INDEX_QUIET_MS);   /* whatever an earlier run left unindexed */
        s->unread_total = 0;
        refresh_unread_total(s);
        s->events.state_changed(s->userdata);
        return 0;
}

static int64_t parse_seq(const char *text) {
        gint64 v;
        return text && g_ascii_string_to_signed(text, 10, 0, G_MAXINT64, &v, NULL) ? v : -1;
}

/* Announces what the history holds beyond announced_seq: messages committed
 * by a previous run that was killed before their signals went out. */
static gboolean on_replay(gpointer userdata) {
        Session *s = userdata;
        int64_t pos = s->announced_seq;

        s->replay_source = 0;
        for (;;) {
                g_autoptr(GPtrArray) msgs = NULL;
                if (store_list_messages_after(s->store, pos, REPLAY_CHUNK, &msgs) < 0 || msgs->len == 0)
                        break;
                g_debug("session: announcing %u messages committed before imd stopped", msgs->len);
                pos = ((StoreMessage *) g_ptr_array_index(msgs, msgs->len - 1))->seq;
                s->events.messages_added(msgs, s->userdata);
                if (msgs->len < REPLAY_CHUNK)
                        break;
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
        if (store_get_meta(s->store, META_ANNOUNCED_SEQ, &text) >= 0 && parse_seq(text) >= 0) {
                s->announced_seq = parse_seq(text);
                /* From an idle callback: at start-up the bus is not connected yet. */
                s->replay_source = g_idle_add(on_replay, s);
                return;
        }
        if (store_last_seq(s->store, &last) < 0)
                last = 0;
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
        g_clear_pointer(&s->resumable, xmpp_sm_free);
        s->online_wanted = false;
        if (s->reconnect_source) {
                g_source_remove(s->reconnect_source);
                s->reconnect_source = 0;
        }
}

/* --- batching of incoming messages --- */

static gboolean on_batch_flush(gpointer userdata) {
        Session *s = userdata;
        s->batch_source = 0;
        session_flush(s);
        return G_SOURCE_REMOVE;
}

static void announce_conversations(Session *s, GHashTable *ids) {
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
static void schedule_indexing(Session *s, unsigned delay_ms) {
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
                schedule_indexing(s, INDEX_STEP_PAUSE_MS);
        return G_SOURCE_REMOVE;
}

/* Stores and announces the batch; negative errno if it could not be stored. */
static int session_flush(Session *s) {
        g_autoptr(GPtrArray) messages = g_steal_pointer(&s->batch_messages);
        g_autoptr(GHashTable) conversations = NULL;
        int r;

        if (s->batch_source) {
                g_source_remove(s->batch_source);
                s->batch_source = 0;
        }
        if (!messages || messages->len == 0)
                return 0;

        r = store_append_messages(s->store, (StoreMessage *const *) messages->pdata, messages->len, NULL);
        if (r < 0) {
                /* Nothing of the batch is on disk: neither announce nor
                 * acknowledge it, so the server keeps it for us. */
                s->events.error(r, "Cannot write the message history", s->userdata);
                return r;
        }
        /* Held messages are not stored yet: acknowledging now would
         * acknowledge them too (XEP-0198 counts in arrival order). */
        if (s->stream && !s->held)
                xmpp_stream_messages_committed(s->stream);
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
        schedule_indexing(s, INDEX_QUIET_MS);
        s->events.messages_added(messages, s->userdata);
        announce_conversations(s, conversations);
        refresh_unread_total(s);
        return 0;
}

static void batch_add(Session *s, StoreMessage *m);

/* The catch-up is over (or broke off): what was held goes into the history,
 * after the archive's pages. */
static void release_held(Session *s) {
        g_autoptr(GPtrArray) held = g_steal_pointer(&s->held);

        if (!held)
                return;
        g_ptr_array_set_free_func(held, NULL);  /* batch_add() takes them */
        for (guint i = 0; i < held->len; i++)
                batch_add(s, g_ptr_array_index(held, i));
        session_flush(s);
}

static void batch_add(Session *s, StoreMessage *m) {
        if (!s->batch_messages) {
                s->batch_messages = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
                /* A timer, not an idle source: under a sustained flood an idle
                 * source would never run and the batch would never be stored. */
                s->batch_source = g_timeout_add(BATCH_WINDOW_MS, on_batch_flush, s);
        }
        g_ptr_array_add(s->batch_messages, m);
        if (s->batch_messages->len >= BATCH_MAX_MESSAGES)
                session_flush(s);
}

/* --- stream callbacks --- */

static void on_stream_ready(bool resumed, void *userdata) {
        Session *s = userdata;
        int r;

        /* The account's history opens only once the server accepted it, so a
         * mistyped JID leaves nothing behind. */
        r = open_account(s, s->login_jid);
        if (r < 0) {
                /* Orphaned, not dropped: it must not call us again. */
                xmpp_stream_close_and_free(g_steal_pointer(&s->stream));
                set_state(s, SESSION_NET_DISCONNECTED, false);
                s->login_pending = false;
                s->events.login_finished(-EIO, "Cannot open the message history", s->userdata);
                return;
        }
        remember_account(s);
        backoff_reset(&s->backoff);
        set_state(s, SESSION_NET_CONNECTED, true);
        send_outbox(s);
        /* A fresh session may have missed anything; a resumed one missed
         * nothing, unless the catch-up of its first connection broke off. */
        if (!resumed)
                s->mam_done = false;
        s->mam_running = false;
        if (!s->mam_done)
                mam_catch_up(s);
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

static void on_stream_closed(int error, const char *text, void *userdata) {
        Session *s = userdata;

        s->mam_running = false;         /* the query went with the connection */
        session_flush(s);
        release_held(s);
        back_fail_all(s);
        /* What the lost connection had in flight, to resume it (or resend). */
        if (s->stream) {
                XmppSm *sm = xmpp_stream_steal_sm(s->stream);
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
        if (error == -EADDRINUSE || error == -EACCES) {
                /* Fighting back would kick the other login out in turn, or
                 * hammer the server with a password it refuses. */
                const char *reason = error == -EACCES ? "auth" : "conflict";
                forget_credentials(s);
                set_state(s, SESSION_NET_DISCONNECTED, false);
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
                                return;
                        }
                }
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
                        release_held(s);
                return;
        }
        batch_add(s, m);
}

/* --- archive catch-up (XEP-0313) --- */

/* Pages through our archive from the last archive id stored, so that what
 * arrived while we were away (offline storage only keeps messages no device
 * took, and nothing our other devices sent) is in the history too. A first
 * login only learns where the archive ends: the history starts there rather
 * than with years of old messages. Messages that also arrive live or from
 * offline storage carry the same stanza-id (or id) and are stored once. */
static void mam_query(Session *s, XmppMamQueryKind kind, const char *after_id) {
        int r = xmpp_stream_mam_query(s->stream, kind, after_id, MAM_PAGE_SIZE);

        if (r < 0) {
                g_debug("session: cannot query the archive: %s", g_strerror(-r));
                return;
        }
        s->mam_running = true;
        g_debug("session: archive query: %s %s", kind == XMPP_MAM_NEWEST ? "newest" : "after",
                after_id ? after_id : "(start)");
}

static void mam_catch_up(Session *s) {
        g_autofree char *last = NULL;

        if (!s->store || !s->stream || s->mam_running)
                return;
        if (store_get_meta(s->store, META_MAM_LAST_ID, &last) < 0)
                return;
        if (!last)
                mam_query(s, XMPP_MAM_NEWEST, NULL);
        else
                mam_query(s, XMPP_MAM_AFTER, *last ? last : NULL);
}

/* A page is in: store it, remember where it ends, ask for the next. */
static void mam_page_done(Session *s, int error, bool complete, const char *last) {
        g_autofree char *saved = NULL;
        bool learning;
        int r;

        if (error == -ENOENT) {
                /* The archive lost the id we continue from (expired, reset):
                 * start again from where it ends now. */
                g_debug("session: the archive no longer knows our last id; starting from its end");
                if (store_set_meta(s->store, META_MAM_LAST_ID, NULL) >= 0)
                        mam_catch_up(s);
                return;
        }
        if (error < 0) {
                g_debug("session: archive catch-up failed: %s", g_strerror(-error));
                return;
        }
        if (store_get_meta(s->store, META_MAM_LAST_ID, &saved) < 0)
                return;
        learning = !saved;
        /* The page is on disk before the id that says so. */
        if (session_flush(s) < 0)
                return;
        if (last || learning) {
                r = store_set_meta(s->store, META_MAM_LAST_ID, last ? last : "");
                if (r < 0) {
                        g_debug("session: cannot record the archive position: %s", g_strerror(-r));
                        return;
                }
        }
        if (learning || complete || !last) {
                s->mam_done = true;
                return;
        }
        mam_query(s, XMPP_MAM_AFTER, last);
}

static void back_page_done(Session *s, int error, bool complete, const char *first);

static void on_stream_mam_finished(int error, bool complete, const char *first, const char *last, void *userdata) {
        Session *s = userdata;

        if (s->back_running) {
                back_page_done(s, error, complete, first);
                return;
        }
        s->mam_running = false;
        mam_page_done(s, error, complete, last);
        if (!s->mam_running) {
                release_held(s);
                back_run(s);
        }
}

/* Everything still "pending" goes out again after a (re)connect, with its
 * original id, so a receiver can tell a resend from a new message, and its
 * original time as an XEP-0203 delay stamp. */
static void send_outbox(Session *s) {
        g_autoptr(GPtrArray) unsent = NULL;

        if (!s->store || store_list_unsent(s->store, &unsent) < 0)
                return;
        for (guint i = 0; i < unsent->len; i++) {
                StoreMessage *m = g_ptr_array_index(unsent, i);
                /* A resumed session already sent again what it had in flight. */
                if (xmpp_stream_is_in_flight(s->stream, m->id))
                        continue;
                xmpp_stream_send_chat(s->stream, m->conversation, &(XmppChatContent) {
                                              .body = m->text, .json = m->data, .extension = m->extension },
                                      m->id, m->time_ms);
        }
}

static int status_rank(const char *status) {
        static const char *const order[] = { "pending", "sent", "delivered", "read" };
        for (size_t i = 0; i < G_N_ELEMENTS(order); i++)
                if (status && strcmp(status, order[i]) == 0)
                        return (int) i;
        return -1;
}

/* A report only counts from the conversation the message went to, only for
 * our own messages, and only moves the status forward. */
static void advance_status(Session *s, const char *from, const char *id, const char *status) {
        g_autoptr(StoreMessage) m = NULL;

        session_flush(s);
        if (store_get_message(s->store, from, id, &m) < 0 || m->direction != STORE_DIRECTION_OUT) {
                g_debug("session: ignoring a %s report from %s for %s", status, from, id);
                return;
        }
        if (status_rank(status) <= status_rank(m->status))
                return;
        if (store_set_message_status(s->store, from, id, status) < 0)
                return;
        s->events.message_status_changed(from, id, status, s->userdata);
        if (strcmp(status, "read") == 0)
                s->events.read_by_peer(from, id, s->userdata);
}

static void on_stream_delivered(const char *from, const char *id, void *userdata) {
        advance_status(userdata, from, id, "delivered");
}

static void on_stream_displayed(const char *from, const char *id, void *userdata) {
        advance_status(userdata, from, id, "read");
}

static void on_stream_sent(const char *to, const char *id, void *userdata) {
        advance_status(userdata, to, id, "sent");
}

/* Sets sender's reactions to message m and announces the new state. */
static int apply_reactions(Session *s, const StoreMessage *m, const char *sender, const char *const *reactions,
                           size_t n) {
        g_autofree char *updated = reactions_update(m->reactions, sender, reactions, n);
        int r;

        if (g_strcmp0(updated, m->reactions) == 0)
                return 0;
        r = store_set_reactions(s->store, m->conversation, m->id, updated);
        if (r < 0)
                return r;
        s->events.reactions_changed(m->conversation, m->id, updated, s->userdata);
        return 0;
}

/* A retraction or correction counts only from the message's own sender: the
 * peer for its messages, our account (another device) for ours. Reactions
 * count from either. */
static void on_stream_action(const XmppMessageAction *a, void *userdata) {
        Session *s = userdata;
        g_autoptr(StoreMessage) m = NULL;
        StoreDirection want = a->outgoing ? STORE_DIRECTION_OUT : STORE_DIRECTION_IN;

        session_flush(s);       /* the message may still be in the batch */
        if (!s->store || store_get_message(s->store, a->peer, a->target_id, &m) < 0 ||
            (m->direction != want && a->kind != XMPP_ACTION_REACT)) {
                g_debug("session: ignoring a %s of %s in %s: no such message of its sender",
                        a->kind == XMPP_ACTION_RETRACT ? "retraction" : "correction", a->target_id, a->peer);
                return;
        }
        if (a->kind == XMPP_ACTION_REACT) {
                /* anyone of the conversation may react to any of its messages */
                if (!m->revoked)
                        apply_reactions(s, m, a->outgoing ? s->account : a->peer, a->reactions, a->n_reactions);
                return;
        }
        if (a->kind == XMPP_ACTION_RETRACT) {
                if (m->revoked || store_revoke_message(s->store, a->peer, a->target_id) < 0)
                        return;
                s->events.message_revoked(a->peer, a->target_id, s->userdata);
        } else {
                if (m->revoked || g_strcmp0(m->text, a->text) == 0 ||
                    store_edit_message(s->store, a->peer, a->target_id, a->text) < 0)
                        return;
                s->events.message_edited(a->peer, a->target_id, a->text, s->userdata);
        }
}

static void on_stream_typing(const char *from, bool typing, void *userdata) {
        Session *s = userdata;
        s->events.typing(from, from, typing, s->userdata);
}

static void on_stream_roster(const XmppRosterItem *items, size_t n_items, bool full, void *userdata) {
        /* The roster is fetched as part of the login (the TIM SDK_READY contract);
         * contacts are exposed in a later interface version. */
        g_debug("session: roster %s with %zu items", full ? "received" : "push", n_items);
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

int session_new(const char *data_dir, XmppTransportContext *transport_ctx, const SessionConfig *config,
                const SessionEvents *events, void *userdata, Session **ret) {
        Session *s;
        g_autofree char *last = NULL;

        if (g_mkdir_with_parents(data_dir, 0700) < 0)
                return -errno;

        s = g_new0(Session, 1);
        s->events = *events;
        s->userdata = userdata;
        s->data_dir = g_strdup(data_dir);
        s->transport_ctx = transport_ctx;
        s->net_state = SESSION_NET_DISCONNECTED;
        s->config = *config;
        s->backoff.min_ms = config->reconnect_min_ms ? config->reconnect_min_ms : 1000;
        s->backoff.max_ms = config->reconnect_max_ms ? config->reconnect_max_ms : 60000;
        if (!s->config.revoke_window_ms)
                s->config.revoke_window_ms = 120000;    /* TIM's default: two minutes */

        /* The last account's history stays readable while logged out. */
        last = read_last_account(data_dir);
        if (last && open_account(s, last) < 0)
                g_warning("Cannot open the history of %s", last);
        *ret = s;
        return 0;
}

void session_free(Session *s) {
        if (!s)
                return;
        s->mam_running = false;
        session_flush(s);
        release_held(s);
        back_fail_all(s);
        forget_credentials(s);
        if (s->reap_source)
                g_source_remove(s->reap_source);
        if (s->replay_source)
                g_source_remove(s->replay_source);
        if (s->index_source)
                g_source_remove(s->index_source);
        xmpp_stream_free(s->dead_stream);
        xmpp_stream_free(s->stream);
        store_close(s->store);
        g_free(s->account);
        g_free(s->login_jid);
        g_free(s->data_dir);
        g_free(s);
}

static int start_stream(Session *s) {
        XmppStreamConfig config = {
                .jid = s->login_jid,
                .password = s->password,
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

int session_login(Session *s, const char *jid, const char *password, const char *url, const char *ca_file) {
        int r;

        if (s->stream || s->login_pending || s->online_wanted)
                return -EBUSY;
        g_free(s->login_jid);
        s->login_jid = g_strdup(jid);
        s->password = g_strdup(password);
        s->url = g_strdup(url);
        s->ca_file = g_strdup(ca_file);
        r = start_stream(s);
        if (r < 0) {
                forget_credentials(s);
                return r;
        }
        s->online_wanted = true;
        s->login_pending = true;
        backoff_reset(&s->backoff);
        set_state(s, SESSION_NET_CONNECTING, false);
        return 0;
}

void session_logout(Session *s) {
        forget_credentials(s);
        if (!s->stream) {
                set_state(s, SESSION_NET_DISCONNECTED, false);
                return;
        }
        s->mam_running = false;
        session_flush(s);
        release_held(s);
        back_fail_all(s);
        if (s->login_pending) {
                s->login_pending = false;
                s->events.login_finished(-ECONNABORTED, "Logged out before the login completed", s->userdata);
        }
        xmpp_stream_close_and_free(g_steal_pointer(&s->stream));
        set_state(s, SESSION_NET_DISCONNECTED, false);
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

/* Stores m (type and content filled in) as our new message to conversation,
 * sends it if the session is up, and announces it. */
static int send_message(Session *s, const char *conversation, StoreMessage m, char **ret_id) {
        g_autofree char *id = NULL;
        g_autoptr(GPtrArray) added = NULL;
        g_autoptr(GHashTable) changed = NULL;
        int64_t seq;
        int r;

        if (!s->online_wanted || !s->store || s->login_pending)
                return -ENOTCONN;
        session_flush(s);

        id = xmpp_new_id();
        m.id = id;
        m.conversation = (char *) conversation;
        m.sender = s->account;
        m.direction = STORE_DIRECTION_OUT;
        m.time_ms = g_get_real_time() / 1000;
        m.status = (char *) "pending";

        /* Stored (committed) before it goes out: a message the caller was told
         * about is never lost. */
        r = store_append_message(s->store, &m, &seq);
        if (r < 0)
                return r == -EEXIST ? -EIO : r;
        m.seq = seq;
        if (s->ready && s->stream)
                r = xmpp_stream_send_chat(s->stream, conversation, &(XmppChatContent) {
                                                  .body = m.text, .json = m.data, .extension = m.extension },
                                          id, 0);
        else
                r = -ENOTCONN;
        if (r < 0)
                g_debug("session: %s waits in the outbox: %s", id, g_strerror(-r));

        schedule_indexing(s, INDEX_QUIET_MS);
        added = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
        g_ptr_array_add(added, store_message_copy(&m));
        s->events.messages_added(added, s->userdata);
        changed = g_hash_table_new(g_str_hash, g_str_equal);
        g_hash_table_add(changed, (char *) conversation);
        announce_conversations(s, changed);

        *ret_id = g_steal_pointer(&id);
        return 0;
}

int session_send_text(Session *s, const char *conversation, const char *text, char **ret_id) {
        return send_message(s, conversation, (StoreMessage) { .type = (char *) "text", .text = (char *) text },
                            ret_id);
}

int session_send_custom(Session *s, const char *conversation, const char *data, const char *description,
                        const char *extension, char **ret_id) {
        if (!custom_data_valid(data))
                return -EINVAL;
        return send_message(s, conversation, (StoreMessage) {
                                    .type = (char *) "custom",
                                    .text = description && *description ? (char *) description : NULL,
                                    .data = (char *) data,
                                    .extension = extension && *extension ? (char *) extension : NULL,
                            }, ret_id);
}

/* Our own message id of conversation, for revoking or editing: -ENOENT if
 * there is none, -EPERM if it is someone else's; the session must be up. */
static int own_message(Session *s, const char *conversation, const char *id, StoreMessage **ret) {
        g_autoptr(StoreMessage) m = NULL;
        int r;

        if (!s->online_wanted || !s->store || s->login_pending)
                return -ENOTCONN;
        session_flush(s);
        r = store_get_message(s->store, conversation, id, &m);
        if (r < 0)
                return r;
        if (m->direction != STORE_DIRECTION_OUT)
                return -EPERM;
        *ret = g_steal_pointer(&m);
        return 0;
}

int session_revoke_message(Session *s, const char *conversation, const char *id) {
        g_autoptr(StoreMessage) m = NULL;
        int64_t age_ms;
        int r;

        r = own_message(s, conversation, id, &m);
        if (r < 0)
                return r;
        if (m->revoked)
                return 0;
        age_ms = g_get_real_time() / 1000 - m->time_ms;
        if (age_ms > (int64_t) s->config.revoke_window_ms)
                return -ETIME;
        if (!s->ready || !s->stream)
                return -ENETDOWN;
        /* Never sent, nothing to take back: only our copy goes. */
        if (strcmp(m->status, "pending") != 0 || xmpp_stream_is_in_flight(s->stream, id)) {
                r = xmpp_stream_send_retract(s->stream, conversation, id);
                if (r < 0)
                        return r;
        }
        r = store_revoke_message(s->store, conversation, id);
        if (r < 0)
                return r;
        s->events.message_revoked(conversation, id, s->userdata);
        return 0;
}

int session_react(Session *s, const char *conversation, const char *id, const char *const *reactions, size_t n) {
        g_autoptr(StoreMessage) m = NULL;
        int r;

        if (n > XMPP_REACTIONS_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                if (!xmpp_reaction_valid(reactions[i]))
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(reactions[i], reactions[j]) == 0)
                                return -EINVAL;
        }
        if (!s->online_wanted || !s->store || s->login_pending)
                return -ENOTCONN;
        session_flush(s);
        r = store_get_message(s->store, conversation, id, &m);
        if (r < 0)
                return r;
        if (m->revoked)
                return -EPERM;
        if (!s->ready || !s->stream)
                return -ENETDOWN;
        r = xmpp_stream_send_reactions(s->stream, conversation, id, reactions, n);
        if (r < 0)
                return r;
        return apply_reactions(s, m, s->account, reactions, n);
}

unsigned session_revoke_window_s(const Session *s) {
        return s->config.revoke_window_ms / 1000;
}

int session_edit_message(Session *s, const char *conversation, const char *id, const char *text) {
        g_autoptr(StoreMessage) m = NULL;
        int r;

        r = own_message(s, conversation, id, &m);
        if (r < 0)
                return r;
        if (m->revoked || strcmp(m->type, "text") != 0)
                return -EPERM;
        if (!s->ready || !s->stream)
                return -ENETDOWN;
        r = xmpp_stream_send_correction(s->stream, conversation, id, text);
        if (r < 0)
                return r;
        r = store_edit_message(s->store, conversation, id, text);
        if (r < 0)
                return r;
        s->events.message_edited(conversation, id, text, s->userdata);
        return 0;
}

int session_search(Session *s, const char *words, const char *conversation, unsigned limit, GPtrArray **ret) {
        if (!s->store)
                return -ENOTCONN;
        session_flush(s);
        return store_search(s->store, words, conversation, limit, ret);
}

int session_set_typing(Session *s, const char *conversation, bool typing) {
        if (!s->online_wanted || !s->store || s->login_pending)
                return -ENOTCONN;
        if (!s->ready || !s->stream)
                return -ENETDOWN;
        return xmpp_stream_send_chat_state(s->stream, conversation, typing);
}

int session_get_conversations(Session *s, GPtrArray **ret) {
        if (!s->store) {
                *ret = g_ptr_array_new_with_free_func((GDestroyNotify) store_conversation_free);
                return 0;
        }
        session_flush(s);
        return store_list_conversations(s->store, ret);
}

/* --- paging back through the server archive --- */

static char *meta_key(const char *prefix, const char *conversation) {
        return g_strconcat(prefix, conversation, NULL);
}

static bool archive_done(Session *s, const char *conversation) {
        g_autofree char *key = meta_key(META_ARCHIVE_DONE, conversation);
        g_autofree char *value = NULL;
        return store_get_meta(s->store, key, &value) >= 0 && value;
}

static void back_request_free(BackRequest *req) {
        g_free(req->conversation);
        g_free(req->before_id);
        g_free(req);
}

/* The cache's page for req. -ENOENT for an unknown before_id; an unknown
 * conversation is an empty one (its history may be on the server only). */
static int cache_page(Session *s, const BackRequest *req, GPtrArray **ret, bool *ret_complete) {
        int r = store_get_messages(s->store, req->conversation, req->before_id, req->limit, ret, ret_complete);

        if (r == -ENOENT && !*req->before_id) {
                *ret = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
                *ret_complete = true;
                return 0;
        }
        return r;
}

/* Answers req from the cache as it is now. complete only when the cache has
 * nothing older and neither has the archive (archive_known: it was asked). */
static void back_reply(Session *s, BackRequest *req, bool archive_known) {
        g_autoptr(GPtrArray) msgs = NULL;
        bool cache_complete = false;
        int r = cache_page(s, req, &msgs, &cache_complete);

        if (r < 0)
                req->callback(r, NULL, false, req->userdata);
        else
                req->callback(0, msgs, cache_complete && (archive_known || archive_done(s, req->conversation)),
                              req->userdata);
}

/* Asks the archive for the page before what the cache holds of the head request's conversation. */
static void back_run(Session *s) {
        BackRequest *req = g_queue_peek_head(&s->back_requests);
        g_autofree char *key = NULL, *cursor = NULL;
        int64_t end_ms = 0;
        int r;

        if (!req || s->back_running || s->mam_running)
                return;
        if (!s->stream || !s->ready) {
                back_fail_all(s);
                return;
        }
        key = meta_key(META_ARCHIVE_CURSOR, req->conversation);
        if (store_get_meta(s->store, key, &cursor) < 0)
                cursor = NULL;
        /* The first time, the archive's newest messages up to (and in the
         * second of) the oldest cached one; duplicates of cached ones drop out. */
        if (!cursor && store_oldest_time(s->store, req->conversation, &end_ms) >= 0)
                end_ms += 1000;
        r = xmpp_stream_mam_query_before(s->stream, req->conversation, cursor, end_ms,
                                         MAX(req->limit, BACK_PAGE_MIN) > MAM_PAGE_SIZE ? MAM_PAGE_SIZE
                                                                                       : MAX(req->limit, BACK_PAGE_MIN));
        if (r < 0) {
                g_debug("session: cannot page back through the archive: %s", g_strerror(-r));
                g_queue_pop_head(&s->back_requests);
                back_reply(s, req, false);
                back_request_free(req);
                back_run(s);
                return;
        }
        req->queries++;
        s->back_running = true;
        s->back_page = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
        g_debug("session: archive page before %s for %s", cursor ? cursor : "(its end)", req->conversation);
}

static void back_page_done(Session *s, int error, bool complete, const char *first) {
        g_autoptr(GPtrArray) page = g_steal_pointer(&s->back_page);
        BackRequest *req = g_queue_peek_head(&s->back_requests);
        g_autofree char *cursor_key = meta_key(META_ARCHIVE_CURSOR, req->conversation);
        g_autoptr(GPtrArray) msgs = NULL;
        bool cache_complete = false, done = false;

        s->back_running = false;
        if (error == -ENOENT) {
                /* the archive forgot our cursor: start again from its end */
                (void) store_set_meta(s->store, cursor_key, NULL);
        } else if (error == 0) {
                /* live messages of the batch first: then the acknowledgement
                 * below counts exactly what is on disk */
                session_flush(s);
                for (guint i = 0; i < page->len / 2; i++) {     /* newest first */
                        gpointer t = page->pdata[i];
                        page->pdata[i] = page->pdata[page->len - 1 - i];
                        page->pdata[page->len - 1 - i] = t;
                }
                if (store_prepend_messages(s->store, (StoreMessage *const *) page->pdata, page->len) < 0) {
                        error = -EIO;
                } else {
                        if (s->stream && !s->held)
                                xmpp_stream_messages_committed(s->stream);
                        if (first)
                                (void) store_set_meta(s->store, cursor_key, first);
                        if (complete || !first) {
                                g_autofree char *done_key = meta_key(META_ARCHIVE_DONE, req->conversation);
                                (void) store_set_meta(s->store, done_key, "1");
                                done = true;
                        }
                }
        }
        if (error == 0 && !done && req->queries < BACK_QUERIES_MAX &&
            cache_page(s, req, &msgs, &cache_complete) >= 0 && msgs->len < req->limit) {
                back_run(s);            /* still short: the next older page */
                return;
        }
        g_queue_pop_head(&s->back_requests);
        /* A server without an archive (or one that refuses) has nothing older to give. */
        back_reply(s, req, error == -EPROTO || done);
        back_request_free(req);
        back_run(s);
}

/* Not connected any more: whoever waits gets what the cache has. */
static void back_fail_all(Session *s) {
        BackRequest *req;

        s->back_running = false;
        g_clear_pointer(&s->back_page, g_ptr_array_unref);
        while ((req = g_queue_pop_head(&s->back_requests))) {
                if (s->store)
                        back_reply(s, req, false);
                else
                        req->callback(-ENOTCONN, NULL, false, req->userdata);
                back_request_free(req);
        }
}

int session_get_messages_async(Session *s, const char *conversation, const char *before_id, unsigned limit,
                               SessionMessagesCallback callback, void *userdata) {
        g_autoptr(GPtrArray) msgs = NULL;
        BackRequest *req;
        bool cache_complete = false;
        int r;

        if (!s->store)
                return -ENOTCONN;
        session_flush(s);
        req = g_new0(BackRequest, 1);
        req->conversation = g_strdup(conversation);
        req->before_id = g_strdup(before_id ? before_id : "");
        req->limit = limit;
        req->callback = callback;
        req->userdata = userdata;
        r = cache_page(s, req, &msgs, &cache_complete);
        if (r < 0) {
                back_request_free(req);
                return r;
        }
        /* Enough in the cache, or nothing more to get: answer now. */
        if (msgs->len >= limit || !cache_complete || archive_done(s, conversation) || !s->ready || !s->stream) {
                callback(0, msgs, cache_complete && archive_done(s, conversation), userdata);
                back_request_free(req);
                return 0;
        }
        g_queue_push_tail(&s->back_requests, req);
        back_run(s);
        return 0;
}

int session_mark_read(Session *s, const char *conversation) {
        g_autofree char *last_incoming = NULL;
        g_autoptr(GHashTable) changed = NULL;
        StoreConversation *before = NULL;
        uint32_t unread;
        int r;

        if (!s->store)
                return -ENOTCONN;
        session_flush(s);
        r = store_get_conversation(s->store, conversation, &before);
        if (r < 0)
                return r;
        unread = before->unread;
        store_conversation_free(before);

        r = store_mark_read(s->store, conversation, &last_incoming);
        if (r < 0)
                return r;
        if (last_incoming && s->ready && s->stream)
                xmpp_stream_send_displayed(s->stream, conversation, last_incoming);
        if (unread == 0)
                return 0;
        changed = g_hash_table_new(g_str_hash, g_str_equal);
        g_hash_table_add(changed, (char *) conversation);
        announce_conversations(s, changed);
        refresh_unread_total(s);
        return 0;
}
