/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Session's insides, shared by its parts: session.c (login, connection,
 * receiving, announcing), session-messages.c (what the user does with
 * messages and what peers do to them) and session-archive.c (XEP-0313:
 * catch-up after a reconnect, and paging back for GetMessages). Nothing
 * outside service/core includes this.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <glib.h>

#include "backoff.h"
#include "http.h"
#include "session.h"
#include "store.h"
#include "stream.h"

#define LAST_ACCOUNT_FILE "last-account"

/* Incoming messages are committed and announced together at most this long
 * after the first of them arrived, or when this many are waiting. A user does
 * not notice 20 ms; the disk and the CPU notice a commit per message.
 * Under a flood (BATCH_BUSY_MESSAGES or more per BATCH_WINDOW_MS, i.e. 1,600
 * messages a second and up) the window doubles, up to BATCH_WINDOW_MAX_MS: a commit,
 * its WAL pages and the announcements after it then serve hundreds of
 * messages, which cut the CPU per message by a sixth in the benchmark. The
 * first batch at a lower rate brings the window back to BATCH_WINDOW_MS, and
 * so does a pause longer than the window: under a flood the next message
 * arrives at once, so a message after a pause is not part of one, and should
 * not wait up to BATCH_WINDOW_MAX_MS. */
#define BATCH_WINDOW_MS 20
#define BATCH_WINDOW_MAX_MS 160
#define BATCH_BUSY_MESSAGES 32
#define BATCH_MAX_MESSAGES 1024

/* Times a message is blamed for the server closing the connection before it
 * becomes "failed" (session-refusal.c). */
#define POLICY_REFUSALS_MAX 3

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
/* When the archive has to be asked by time (it did not know the stanza-id
 * of the oldest cached message it gave one), the query reaches this far past
 * the oldest cached message: our own messages carry our clock's time, which
 * may be behind the server's. What it brings twice drops out as duplicates. */
#define BACK_CLOCK_MARGIN_MS (INT64_C(24) * 3600 * 1000)

/* Search indexing waits until no message was stored for this long (so that a
 * flood is not slowed down by it), then indexes this many per step, with a
 * pause between steps so that the loop stays responsive. */
#define INDEX_QUIET_MS 2000
#define INDEX_STEP_MESSAGES 2000
#define INDEX_STEP_PAUSE_MS 20

/* Where the server's XEP-0363 upload service stands (session-upload.c). */
typedef enum UploadServiceState {
        UPLOAD_SERVICE_UNKNOWN,         /* not asked on this connection */
        UPLOAD_SERVICE_LOOKING,         /* service discovery is out */
        UPLOAD_SERVICE_FOUND,
        UPLOAD_SERVICE_NONE,            /* the server has none */
        /* Discovery timed out (an item, or the server, never answered):
         * not asked again by itself on this connection, only for a new
         * SendFile or ResendMessage; uploads meanwhile fail. */
        UPLOAD_SERVICE_SILENT,
} UploadServiceState;

typedef struct Recording Recording;       /* session-voice.c */
typedef struct VoiceSend VoiceSend;       /* session-voice.c */
typedef struct AudioModule AudioModule;   /* audio/audio-module.h, loaded when first needed */

typedef struct BackRequest {
        Session *session;
        char *conversation;
        char *before_id;                /* "" for the newest */
        unsigned limit;
        unsigned queries;               /* archive pages asked for so far */
        bool by_time;                   /* the archive did not know the cached message's id */
        SessionMessagesCallback callback;       /* NULL once answered (the wait ran out) */
        void *userdata;
        guint deadline;                 /* answers from the cache after config.archive_wait_ms */
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
        ScramKeys *keys;                /* a remembered login's (credentials.h), when there is no password */
        bool remember;                  /* Login's remember: store the keys once logged in */
        bool autologin;                 /* logging in by itself with remembered keys, not ready yet */
        bool started;                   /* session_start(): the bus name is ours */
        guint autologin_source;         /* at start: the remembered login is tried */
        char *autologin_account;        /* ... of this account, the last one */
        Backoff backoff;
        guint reconnect_source;
        XmppSm *resumable;              /* XEP-0198 state of the lost connection */
        guint reap_source;              /* frees a closed stream outside its callback */
        /* A batch could not be stored: this connection acknowledges nothing
         * more (unstored) and is dropped from the main loop (drop_source),
         * so that the server sends the batch again; store_trouble holds the
         * reconnect backoff until a batch is stored again. */
        bool unstored;
        guint drop_source;
        bool store_trouble;
        XmppStream *dead_stream;

        /* Incoming messages are stored in one transaction per batch and announced
         * after it commits: a signalled message is always on disk, and a flood
         * costs one commit (and one update per conversation) per batch rather
         * than per message. */
        guint batch_source;
        guint batch_window_ms;          /* BATCH_WINDOW_MS, longer under a flood */
        int64_t batch_flushed_us;       /* monotonic time the last batch was stored */
        GPtrArray *batch_messages;      /* StoreMessage*, in arrival order; NULL if none */
        uint32_t unread_total;

        /* The last stream's xmpp_stream_max_stanza_bytes(): a message whose
         * stanza is larger is refused at once (TooLarge), also while offline;
         * sent, it would only make the server close the connection. */
        size_t max_stanza_bytes;
        /* session-refusal.c: what may be refused, id -> Written (NULL when none) */
        GHashTable *written;
        char *suspect, *suspect_conversation;   /* of the last connection's end, or NULL */
        bool suspect_is_action;         /* a queued correction, not a message */
        GHashTable *refusals;           /* message id -> times blamed (POLICY_REFUSALS_MAX); or NULL */

        /* Announcing survives a kill -9: every message up to announced_seq was
         * announced; the ones after it (committed, then killed before their
         * signals left) are announced again when the history is next opened. */
        int64_t announced_seq;
        int64_t replay_from, replay_to; /* (from, to]: what the opening found unannounced */
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
        /* Live retractions, corrections and reactions that came meanwhile
         * for a message not in the history: it may be among the held ones.
         * Applied, and announced, once they are stored. */
        GPtrArray *held_actions;        /* PendingAction*, in arrival order; NULL if none */

        /* GetMessages calls that ran out of cache and wait for older pages of
         * the archive, one query at a time, after any catch-up. */
        GQueue back_requests;           /* BackRequest*, the head's query may be out */
        bool back_running;              /* a query for the head is out */
        GPtrArray *back_page;           /* StoreMessage*, its results, oldest first */
        /* Retractions, corrections and reactions from archive pages fetched
         * backwards: newest first, they come before the older messages they
         * act on, so they wait here and are tried again after each page. */
        GPtrArray *pending_actions;     /* PendingAction*, oldest first */
        /* What of the above finds no message, and was not held, waits in
         * the store (session-waiting.c) for a message with the id it
         * names: "conversation\ntarget" -> how many wait for it (the
         * store's waiting actions, so that storing a message needs no
         * lookup unless one waits for it); NULL when none. */
        GHashTable *waiting;

        char *cache_dir;                /* $XDG_CACHE_HOME/imd: fetched files go to its media/ */
        GPtrArray *fetches;             /* FetchMedia downloads in progress (session-media.c) */
        /* Login without a URL: the host-meta request (session-discover.c) */
        XmppHttp *discovery;
        int discovery_fd;               /* its body, -1 when none */
        guint discovery_timer;
        guint pending_insert_at;        /* where the current page's actions go */

        /* SendFile (session-upload.c): the server's upload service, the
         * calls not yet answered (copying the file) and the accepted files
         * on their way up. */
        UploadServiceState upload_state;
        char *upload_service;           /* its JID, once found */
        uint64_t upload_max;            /* its max-file-size; 0: it gives none */
        GArray *upload_lookups;         /* unsigned: handles of the discovery IQs out */
        bool upload_lookup_unsure;      /* an item did not answer: "none" is not sure */
        GPtrArray *file_requests;       /* FileRequest* */
        GPtrArray *abandoned_copies;    /* FileRequest*: cancelled while a thread copies */
        GPtrArray *uploads;             /* Upload* */

        Recording *recording;           /* the voice message being recorded, or NULL */
        /* The last recording that went by itself at its maximum: being
         * handed to SendFile, then its id for a while (a Stop may cross it). */
        VoiceSend *voice_sending;
        char *voice_auto_owner, *voice_auto_id;
        int64_t voice_auto_us;
        const AudioModule *audio;       /* imd-audio.so, once loaded */

        /* The roster's names of the logged-in account (session-roster.c):
         * bare JID -> name ("" if none); NULL before the first roster. */
        GHashTable *roster_names;
};

/* What applying a peer's action announces: everything (it is news), only a
 * drop of the unread count (a change to a message of an archive page,
 * which nobody saw; the count was announced), or nothing (the message is
 * about to be announced as it is now). */
typedef enum ActionNews {
        ACTION_NEWS_ALL,
        ACTION_NEWS_COUNTS,
        ACTION_NEWS_NONE,
} ActionNews;

/* An XmppMessageAction kept beyond the stanza it came in. */
typedef struct PendingAction {
        XmppActionKind kind;
        char *peer;
        bool outgoing;
        char *target_id;
        /* From an archive page paged back: the stanza-id of the message of
         * that page, before the action, that came with target_id, which is
         * the one it names (the store may keep it under another id, and a
         * newer one may have come with target_id); NULL: none came before
         * it in its page, it names the newest message that came with
         * target_id, as a live action does. */
        char *target_stanza_id;
        char *text;
        char **reactions;               /* NULL-terminated */
} PendingAction;

/* session-roster.c */
void session_roster_update(Session *s, const XmppRosterItem *items, size_t n_items, bool full);
/* Writes the roster's names of the conversations in IDS (every contact's if
 * NULL) to the store; adds those whose name changed to CHANGED if not NULL. */
void session_roster_name_conversations(Session *s, GHashTable *ids, GHashTable *changed);
/* Names every conversation and announces those that changed. */
void session_roster_apply(Session *s);

/* session.c */
/* Stores and announces the batch of incoming messages; negative errno if it
 * could not be stored (then nothing of it is announced or acknowledged). */
int session_flush(Session *s);
/* True if the batch holds conversation's message id (not stored yet). */
bool session_is_batched(const Session *s, const char *conversation, const char *id);
/* Stores the batch first only if it holds conversation's message id (a carbon
 * of our own message, say), so that a report on a message finds it; any
 * other leaves the batch to its timer. */
void session_flush_if_batched(Session *s, const char *conversation, const char *id);
/* XEP-0198: once nothing waits to be stored, every message the stream counted
 * is stored or deliberately dropped, and the count may move on. */
void session_settle_acks(Session *s);
/* messages were just stored (a message's seq 0: it was not, a duplicate);
 * ids: for each, the id it came with where actions wait for it, else NULL
 * (NULL: none). Applies those actions; reread: replaces each message
 * changed by the history's copy of it. */
void session_apply_waiting_to(Session *s, GPtrArray *messages, GPtrArray *ids, ActionNews news, bool reread);
/* The ids session_apply_waiting_to() wants, taken before messages are stored. */
GPtrArray *session_waited_for(Session *s, GPtrArray *messages);
/* The catch-up is over (or broke off): what was held goes into the history. */
void session_release_held(Session *s);
void session_announce_conversations(Session *s, GHashTable *ids);
void session_refresh_unread_total(Session *s);
/* (Re)starts the wait for quiet before search indexing. */
void session_schedule_indexing(Session *s, unsigned delay_ms);

/* session-messages.c */
void session_send_outbox(Session *s);
/* Sends stored message m (ours) as it is: text, custom data, uploaded file. */
int session_send_stored(Session *s, const StoreMessage *m, int64_t delayed_ms);
/* -EMSGSIZE if m's stanza is larger than the server takes. */
int session_check_stanza_size(Session *s, const StoreMessage *m);
/* Our message, "failed" now, with an Error saying why first: a frontend
 * waiting for "failed" has the reason when that comes. */
void session_fail_message(Session *s, const char *conversation, const char *id, int error, const char *why);
/* ... because it is larger than the server takes. */
void session_fail_too_large(Session *s, const StoreMessage *m);

/* session-refusal.c */
/* Message (or queued action, see store_queue_action()) id to conversation
 * went out, its stanza this large. */
void session_note_written(Session *s, const char *conversation, const char *id, bool action, size_t bytes);
/* A connection ended (error as the stream reported it; stream_error: the
 * condition of the server's stream error, NULL if none): if it was ready,
 * picks a suspect (else the last ready connection's waits for the next). */
void session_refusal_on_close(Session *s, int error, const char *stream_error);
/* A connection is ready, a fresh session or a resume of the last one: the
 * verdict on the suspect (it may become "failed"), before the outbox runs. */
void session_refusal_on_ready(Session *s, bool resumed);
/* id was acknowledged (or logout: everything). */
void session_forget_refusals_of(Session *s, const char *id);
void session_forget_refusals(Session *s);
/* Applies a peer's (or our other device's) action to the message it names,
 * if its actor may act on it: false if the history has no such message. */
bool session_apply_action(Session *s, const XmppMessageAction *a, ActionNews news);
PendingAction *pending_action_new(const XmppMessageAction *a);
/* The action p holds, valid as long as p. */
XmppMessageAction pending_action_view(const PendingAction *p, bool archived);
/* Keeps an action from an archive page for session_retry_actions(). */
void session_defer_action(Session *s, const XmppMessageAction *a);
/* Applies the deferred actions whose message is now in the history, without
 * announcing them (they change history the caller is about to be given);
 * the others wait in the store, as the oldest (session_keep_action()). */
void session_retry_actions(Session *s);
/* The held actions whose message is in the batch wait for it
 * (session_keep_action()): applied as it is stored, before it is announced. */
void session_batch_held_actions(Session *s);
/* Applies the actions that waited for the held messages (just stored). */
void session_apply_held_actions(Session *s);
void pending_action_free(PendingAction *p);
void on_stream_delivered(const char *from, const char *id, bool archived, void *userdata);
void on_stream_displayed(const char *from, const char *id, bool archived, void *userdata);
void on_stream_sent(const char *to, const char *id, void *userdata);
void on_stream_action(const XmppMessageAction *a, void *userdata);
void on_stream_typing(const char *from, bool typing, void *userdata);

/* session-waiting.c */
/* Keeps action a, whose message is not in the history, in the store until
 * one with its target id is stored; older: it is older than every action
 * kept so far (from an archive page fetched backwards). */
void session_keep_action(Session *s, const XmppMessageAction *a, bool older);
/* Whether actions may wait for message id of conversation (the id it
 * came with): no lookup, so that storing a message costs nothing more. */
bool session_waiting_for(const Session *s, const char *conversation, const char *id);
/* Message id of conversation (as it came) was just stored: the actions
 * waiting for it are applied, oldest first, and forgotten. true if there
 * were any (the message may have changed). */
bool session_apply_waiting(Session *s, const char *conversation, const char *id, ActionNews news);
/* The history just opened: learns what waits in it, and applies what
 * waits for a message it already has (stored, then imd stopped). */
void session_waiting_load(Session *s);
void session_waiting_forget(Session *s);

/* session.c: the login goes on, to s->url (after discovery). */
void session_login_connect(Session *s);

/* session-discover.c */
/* Finds s->login_jid's WebSocket endpoint (XEP-0156), sets s->url and calls
 * session_login_connect(), always later. */
void session_discover_endpoint(Session *s);
bool session_discovering(const Session *s);
/* No session_login_connect() from it any more. */
void session_cancel_discovery(Session *s);

/* session-media.c */
/* Stops the downloads; their callers hear -ECANCELED. */
void session_cancel_fetches(Session *s);

/* https anywhere (and, with config.loopback_http, http to this machine): 0,
 * or -EPERM / -EINVAL. */
int session_media_url_allowed(const Session *s, const char *url);
/* A new file cache/media/<random>.<from mime>, created exclusively (no link
 * followed), mode 0600: its fd, or negative errno. */
int session_media_create_file(Session *s, const char *mime, char **ret_path);
/* The file from gets a second name cache/media/<random>.<from mime>
 * (link(): -EXDEV if the cache is on another file system): 0, or negative
 * errno. */
int session_media_link_file(Session *s, const char *mime, const char *from, char **ret_path);
/* Removes what downloads cut short by a crash left in cache/media (their
 * partial names): at the start, before any download. */
void session_media_remove_partial(Session *s);
/* A name in cache/media of the file st (the same inode), or NULL. */
char *session_media_find_link(Session *s, const struct stat *st);

/* session-upload.c */
/* session_send_file() for the voice recording that ends, which is not held
 * to SESSION_MAX_FILE_REQUESTS (one runs at a time: a recording is not
 * lost because files are being taken). */
int session_send_recording(Session *s, const char *conversation, int fd, const SessionFileInfo *info,
                           SessionSendFileCallback callback, void *userdata);
/* m is our file message whose upload has not finished (no URL yet). */
bool session_upload_waiting(const StoreMessage *m);
/* Queues the upload of m (session_upload_waiting()) unless it is queued;
 * session_pump_uploads() starts it. */
void session_upload_resume(Session *s, const StoreMessage *m);
/* m (ours, never sent) is revoked, and that is committed: its upload stops
 * and imd's copy goes. */
void session_upload_drop(Session *s, const StoreMessage *m);
/* Moves every queued upload on as far as it can go now (connected: service
 * discovery, slot request). */
void session_pump_uploads(Session *s);
/* Starts XEP-0030 discovery of the upload service unless it is known or
 * being looked for. */
void session_lookup_upload_service(Session *s);
/* A new connection or account: the service is asked for again. */
void session_forget_upload_service(Session *s);
/* A user asks to send a file (SendFile, ResendMessage): a discovery that
 * timed out on this connection is tried once more. */
void session_ask_upload_service_again(Session *s);
/* Removes what a crash, a kill or a stop left in the account's outbox
 * directory (when the account is opened): copies cut off (*.part), whole
 * copies no message names (killed before the history did), copies of
 * messages revoked before they went out, and the name the history does
 * not hold of a copy caught moving to the cache. Copies this process is
 * still writing stay. If the history cannot say, everything stays. */
void session_clean_outbox(Session *s);
/* Logout, another account, the end: SendFile calls hear -ECANCELED, uploads
 * stop (their messages stay "pending" and go on at the next login). */
void session_cancel_uploads(Session *s);
/* The session goes (imd stops): copies still running, abandoned by
 * session_cancel_uploads(), no longer report to it. What they leave is
 * session_clean_outbox()'s at the next start. */
void session_disown_copies(Session *s);

/* session-archive.c */
void session_archive_catch_up(Session *s);
/* Whoever waits for archive pages gets what the cache has (disconnected,
 * logged out, another account). */
void session_archive_fail_waiting(Session *s);
void on_stream_mam_finished(int error, bool complete, const char *first, const char *last, void *userdata);

