/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The IM session: ties the XMPP stream to the history store and decides what
 * each event means (store it, which conversation changed, what to announce).
 * Knows nothing of D-Bus: it reports through SessionEvents, which the bus
 * layer turns into signals and method replies.
 */

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "store.h"
#include "transport.h"

typedef struct Session Session;

typedef enum SessionNetState {
        SESSION_NET_DISCONNECTED,
        SESSION_NET_CONNECTING,
        SESSION_NET_CONNECTED,
} SessionNetState;

typedef struct SessionConfig {
        unsigned ping_interval_ms;      /* 0: the stream's default */
        unsigned ping_timeout_ms;
        unsigned reconnect_min_ms;      /* first reconnect delay */
        unsigned reconnect_max_ms;      /* cap of the exponential backoff */
        unsigned revoke_window_ms;      /* how long after sending a message may be revoked */
        unsigned archive_wait_ms;       /* how long GetMessages waits for the archive; 0: 10 s */
        uint64_t max_download_bytes;    /* the largest file FetchMedia takes; 0: 100 MiB */
        unsigned stall_timeout_ms;      /* the longest silence of a download; 0: 60 s */
        /* The bytes an account's outbox may hold for uploads (waiting,
         * failed, being copied); 0: 1 GiB. */
        uint64_t max_outbox_bytes;
        /* Plain http to this machine too, for files (IMD_TEST_LOOPBACK_HTTP=1,
         * test suites only): else https only. */
        bool loopback_http;
        /* Voice messages; 0 / NULL: the defaults (1 s, 60 s, 24 kbit/s, PipeWire's default source). */
        unsigned voice_min_ms, voice_max_ms;
        unsigned voice_bitrate;
        char *voice_source;             /* a PipeWire node name */
        /* The endpoint when a Login names none (before discovery); NULL: none. */
        char *websocket_url;
        /* System mode, a machine shared by several people: an account's
         * history is open only while it is logged in (or logging in by
         * itself with its remembered login), not after Logout, a kick-out
         * or a restart, so that the next user cannot read it. */
        bool private_history;
} SessionConfig;

typedef struct SessionEvents {
        /* NetState, Ready or Account changed. */
        void (*state_changed)(void *userdata);
        /* Messages were added to the history (already committed), oldest first.
         * Once their announcement has certainly left the process, the listener
         * calls session_messages_announced() with the last one's seq; messages
         * not confirmed so are announced again when the history is next
         * opened (after a crash, say). */
        void (*messages_added)(GPtrArray *messages /* StoreMessage* */, void *userdata);
        void (*conversations_changed)(GPtrArray *conversations /* StoreConversation* */, void *userdata);
        void (*unread_total_changed)(void *userdata);
        /* The outcome of session_login(): 0 once ready, else negative errno and a text. */
        void (*login_finished)(int error, const char *text, void *userdata);
        /* Something went wrong outside any method call (e.g. connection lost). */
        void (*error)(int error, const char *text, void *userdata);
        /* The server ended the session for good: reason "conflict" (another
         * login took over) or "auth" (the credentials stopped working). imd
         * does not reconnect by itself after this. */
        void (*kicked_out)(const char *reason, const char *text, void *userdata);
        /* An outgoing message moved on: "sent", "delivered", "read"; or its
         * file's upload failed ("failed"), or it is tried again ("pending"). */
        void (*message_status_changed)(const char *conversation, const char *id, const char *status,
                                       void *userdata);
        /* The recipient displayed our message id (XEP-0333), after its status became "read". */
        void (*read_by_peer)(const char *conversation, const char *id, void *userdata);
        /* A message was retracted (XEP-0424) by its sender: its content is gone from the history. */
        void (*message_revoked)(const char *conversation, const char *id, void *userdata);
        /* A message was corrected (XEP-0308) by its sender: text is its new text. */
        void (*message_edited)(const char *conversation, const char *id, const char *text, void *userdata);
        /* The reactions to a message changed (XEP-0444): reactions is the whole
         * set, JSON {"sender JID": ["emoji", ...]}, or NULL when none are left. */
        void (*reactions_changed)(const char *conversation, const char *id, const char *reactions,
                                  void *userdata);
        /* sent of total bytes of our message id's file are uploaded (SendFile). */
        void (*transfer_progress)(const char *conversation, const char *id, uint64_t sent, uint64_t total,
                                  void *userdata);
        /* Voice recording: it started or ended (session_is_recording() changed);
         * the loudest sample (0..1) of the last tenth of a second; how it
         * ended (id: the message sent, or ""; reason: "sent", "maximum",
         * "cancelled", "too-short", "owner-left", "failed"). */
        void (*recording_changed)(void *userdata);
        void (*recording_level)(double peak, void *userdata);
        void (*recording_stopped)(const char *conversation, const char *id, const char *reason, void *userdata);
        /* who (in a one-to-one chat: the conversation itself) started or stopped typing. */
        void (*typing)(const char *conversation, const char *who, bool typing, void *userdata);
} SessionEvents;

int session_new(const char *data_dir, const char *cache_dir, XmppTransportContext *transport_ctx,
                const SessionConfig *config,
                const SessionEvents *events, void *userdata, Session **ret);
/* This process is the one imd of its directories now (it owns the bus
 * name): what a crash left half-written goes, and the remembered login is
 * tried. Before, nothing is removed: a second imd, refused the name, must
 * not touch the files of the one that runs. */
void session_start(Session *s);
void session_free(Session *s);

/* Starts logging in; login_finished() follows. jid must be a normalised bare JID.
 * url NULL: the service's host-meta names it (XEP-0156), else it is
 * wss://DOMAIN/xmpp-websocket.
 * -EBUSY if connecting or connected, -EIO if the history cannot be opened
 * (or ca_file cannot be used), -ENOSPC after too many ca_file values.
 * Once logged in, a lost connection is re-established by itself (with
 * backoff) until session_logout() or a kick-out; the password is kept in
 * memory for that (SCRAM keys would do only where the server keeps its
 * salt), never on disk.
 * remember: once logged in, the SCRAM keys (not the password) go to the
 * account's credentials file (credentials.h), and the next session_new()
 * logs in with them by itself; a server offering only PLAIN then fails the
 * login with -ENOTSUP before the password is sent. Without remember, a
 * successful login removes any remembered one. Such a login by itself is
 * seen through state_changed() alone; if the server refuses the keys (a
 * new password), error(-EACCES) says so, the file goes and imd stays logged
 * out. Network failures are retried with backoff as after a lost connection. */
int session_login(Session *s, const char *jid, const char *password, const char *url, const char *ca_file,
                  bool remember);
/* Also forgets the remembered login. */
void session_logout(Session *s);

SessionNetState session_net_state(const Session *s);
bool session_is_ready(const Session *s);
const char *session_account(const Session *s);          /* "" if none */
uint32_t session_unread_total(const Session *s);

/* conversation must be a normalised bare JID. The message is stored first
 * (status "pending"), then sent; while the connection is being re-established
 * it waits in the outbox and goes out on reconnect. -ENOTCONN if not logged in. */
int session_send_text(Session *s, const char *conversation, const char *text, char **ret_id);
int session_get_conversations(Session *s, GPtrArray **ret);
/* Resets the unread count and queues the XEP-0333 displayed marker for the
 * newest incoming message in the outbox of actions (replacing one queued
 * for the conversation): sent now if ready, else by the next session, until
 * the server acknowledges it. -ENOTCONN if no history is open, -ENOENT if
 * the conversation does not exist. */
int session_mark_read(Session *s, const char *conversation);

/* The outcome of session_get_messages_async(): error 0 and the page (newest
 * first; the callee keeps ownership) or negative errno. */
typedef void (*SessionMessagesCallback)(int error, GPtrArray *messages, bool complete, void *userdata);
/* A page of the history, newest first: up to limit messages older than
 * before_id ("" or NULL: from the newest), from the cache. When the cache runs
 * out before limit messages, older pages come from the server archive (XEP-0313, RSM before)
 * first: merged into the cache (deduplicated, before everything cached) and
 * then answered from it. complete: the start of the history, of the cache and
 * of the archive. Offline, or with the archive exhausted, it answers from the
 * cache at once. callback runs exactly once, possibly before this returns;
 * also at logout or disconnection (then with what the cache has). -ENOENT
 * unknown before_id, -ENOTCONN no history open (callback not called). */
int session_get_messages_async(Session *s, const char *conversation, const char *before_id, unsigned limit,
                               SessionMessagesCallback callback, void *userdata);
/* Full-text search of the history (store_search()): -EINVAL no words,
 * -ENOTCONN no history open. */
int session_search(Session *s, const char *words, const char *conversation, unsigned limit, GPtrArray **ret);
/* Tells the peer (XEP-0085) that the user is typing, or stopped. Not queued:
 * -ENOTCONN unless the session is up (a stale "typing" is worse than none). */
int session_set_typing(Session *s, const char *conversation, bool typing);
/* A custom message: data must be JSON (custom.h; else -EINVAL); description
 * (the text other clients show) and extension may be NULL or "". Stored and
 * queued like a text message. */
int session_send_custom(Session *s, const char *conversation, const char *data, const char *description,
                        const char *extension, char **ret_id);
/* Retracts our message (XEP-0424) within config.revoke_window_ms of sending it:
 * -ENOENT no such message, -EPERM not ours, -ETIME too late, -ENETDOWN not
 * connected now (nothing changes). Revoking a revoked message does nothing. */
int session_revoke_message(Session *s, const char *conversation, const char *id);
/* Corrects the text of our text message (XEP-0308): -ENOENT, -EPERM (not ours,
 * revoked or not text), -ENETDOWN as above. */
int session_edit_message(Session *s, const char *conversation, const char *id, const char *text);
unsigned session_revoke_window_s(const Session *s);
/* The largest message stanza the server takes, in bytes: what it said, or
 * what servers take by default. Sending a larger message fails with -EMSGSIZE. */
size_t session_max_stanza_bytes(const Session *s);

/* The outcome of session_fetch_media(): error 0 and an fd open for reading
 * on the file (the callee closes it after the call: dup it to keep it), or
 * negative errno and, when the server or the connection said more, why
 * (for people; else NULL). */
typedef void (*SessionFetchCallback)(int error, int fd, const char *detail, void *userdata);
/* The file of a media message: from the cache directory if it was fetched
 * before, else downloaded there first (https only, trusting the login's
 * ca_file; see config.loopback_http) under a name imd makes up, at most
 * config.max_download_bytes and at most the size the sender gave, and kept
 * only whole (as HTTP frames it, and of the size the sender gave, if it gave
 * one). A call while that message's download runs waits for it and gets its
 * outcome (one download, one file, the same error). callback runs once,
 * possibly before this returns. Immediate errors (callback not called):
 * -ENOTCONN no history open, -ENOENT no such message, -ENOMEDIUM it carries no
 * file, -EPERM a URL imd does not fetch from, -EINVAL an unusable URL. Later,
 * through the callback: -EMSGSIZE too large, -ENOENT gone from the server,
 * -EIO refused or of another size than the sender gave, -ECONNREFUSED /
 * -EPROTO / -ECONNRESET network (a body cut short included), -ETIMEDOUT no
 * byte of the body for config.stall_timeout_ms, -ECANCELED logout. */
int session_fetch_media(Session *s, const char *conversation, const char *id, SessionFetchCallback callback,
                        void *userdata);
/* Our reactions to a message of conversation become reactions[0..n) (XEP-0444;
 * n == 0 takes them back): -EINVAL a reaction is empty, too long, holds white
 * space or repeats; -E2BIG more than XMPP_REACTIONS_MAX; -ENOENT no such
 * message; -EPERM it was revoked; -ENETDOWN not connected now. */
int session_react(Session *s, const char *conversation, const char *id, const char *const *reactions, size_t n);

/* What SendFile's caller says of its file; everything may be NULL / 0. */
typedef struct SessionFileInfo {
        const char *name;               /* shown to the peer; NULL: "file" */
        const char *mime;               /* NULL: from the name (shared-mime-info) */
        const char *type;               /* "image" "video" "audio" "file"; NULL: from the mime type */
        uint32_t width, height;         /* 0: unknown (an image's are read from it) */
        uint32_t duration_ms;
} SessionFileInfo;
/* SendFile calls taken at once (copying, or waiting for the upload service),
 * copies a logout abandoned that still run included: each holds file
 * descriptors and a thread. */
#define SESSION_MAX_FILE_REQUESTS 8

/* The outcome of session_send_file(): the new message's id, or negative errno. */
typedef void (*SessionSendFileCallback)(int error, const char *id, void *userdata);
/* Sends the file fd (a regular file, read from offset 0; the callee dups
 * it) to conversation (a normalised bare JID; info checked by the caller for
 * form). First the server's upload limit, if connected (service discovery);
 * then a copy into the account's outbox directory, in a thread; then the
 * message is stored ("pending", no URL), callback() gets its id, and the
 * upload starts (session-upload.c). Immediate errors (callback not called):
 * -ENOTCONN not logged in, -EINVAL not a regular file or empty, -EMSGSIZE
 * larger than the server takes (or than 4 GiB), -ENOTSUP the server has no
 * upload service, -EBUSY SESSION_MAX_FILE_REQUESTS are being taken,
 * -EDQUOT the files waiting in the outbox and this one would be over
 * session_max_outbox_bytes().
 * Through callback: the same (once the server was asked), -ETIMEDOUT
 * the server did not answer service discovery (the next call asks again),
 * -ECANCELED logout, or the copy's errno. Upload failures come later, as the status
 * "failed" and an error() event. */
int session_send_file(Session *s, const char *conversation, int fd, const SessionFileInfo *info,
                      SessionSendFileCallback callback, void *userdata);
/* config.max_outbox_bytes, or its default. */
uint64_t session_max_outbox_bytes(const Session *s);
/* Tries our "failed" message again (status back to "pending"; a file is
 * uploaded anew). -ENOENT no such message (or its file is gone), -EPERM not
 * ours or not failed, -ENOTCONN no history open. */
int session_resend_message(Session *s, const char *conversation, const char *id);

/* The outcome of an operation that finishes later: 0 or negative errno. */
typedef void (*SessionDoneCallback)(int error, void *userdata);
/* Starts recording a voice message for conversation, on behalf of owner (an
 * opaque name: who may stop it); the microphone feeds
 * an Ogg Opus file in the cache directory (session-voice.c). started() runs
 * once the source delivers (0), or with -ENODEV when none does within 3 s,
 * -ECANCELED when the recording ended first. Immediate errors: -ENOTCONN,
 * -EBUSY (one runs), -ENOTSUP (PipeWire cannot be reached), -ENOPKG (the
 * audio module imd-audio.so is missing). */
int session_start_recording(Session *s, const char *conversation, const char *owner, SessionDoneCallback started,
                            void *userdata);
/* owner ends its recording and sends it like session_send_file() (callback
 * gets the id; also when the recording had just gone by itself at its
 * maximum). -ENOENT none runs; -EPERM another owner's; -ENODATA shorter
 * than the minimum (it is thrown away). */
int session_stop_recording(Session *s, const char *owner, SessionSendFileCallback callback, void *userdata);
/* Throws the recording away; recording_stopped() gets reason. -ENOENT none runs. */
int session_cancel_recording(Session *s, const char *reason);
/* A recording runs and its source delivers (one that is starting is not
 * shown yet, but already makes another start -EBUSY). */
bool session_is_recording(const Session *s);
/* The owner given to session_start_recording() while that recording runs
 * (starting included), else NULL. */
const char *session_recording_owner(const Session *s);

const char *session_net_state_to_string(SessionNetState state);

/* Every message up to seq (in history order) has been announced for good. */
void session_messages_announced(Session *s, int64_t seq);
