/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The local history cache of one account: SQLite in WAL mode.
 *
 * Knows nothing of D-Bus or XMPP. A Store must be used from one thread only.
 * Errors are negative errno:
 * -ENOENT (no such conversation / message), -EEXIST (duplicate message),
 * -EINVAL (bad argument), -EIO (SQLite failure, logged at debug level).
 *
 * Conversations and their unread counts are derived from the messages: they are
 * updated in the same transaction as the message that changes them, so they can
 * never disagree with the history.
 */

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct Store Store;

typedef enum StoreDirection {
        STORE_DIRECTION_IN,
        STORE_DIRECTION_OUT,
} StoreDirection;

typedef struct StoreMessage {
        int64_t seq;            /* local order (SQLite rowid); set by store_append_message */
        char *id;               /* stable id, unique in its conversation: XEP-0359 origin-id, else
                                 * the stanza's id, else one the daemon generated; or, for a
                                 * message whose sender reused an id, one the store gave it
                                 * (see store_append_messages()) */
        char *conversation;     /* bare JID */
        char *sender;           /* bare JID */
        char *stanza_id;        /* server-assigned XEP-0359 stanza-id, or NULL */
        StoreDirection direction;
        int64_t time_ms;        /* Unix milliseconds */
        char *type;             /* "text", ... */
        char *text;
        char *status;           /* "pending" "sent" "delivered" "read" "failed" "received" */
        char *data;             /* type "custom": the XEP-0335 JSON; else NULL */
        char *extension;        /* type "custom": imd's extension string, or NULL */
        bool revoked;           /* retracted: text, data and extension are gone */
        bool edited;            /* text is a correction of the original */
        char *reactions;        /* XEP-0444: JSON {"sender JID": ["emoji", ...]}, or NULL if none */
        /* Media (type "image", "video", "audio", "file"); url NULL otherwise.
         * The sender's word on the file; size -1 and the others 0 if unknown.
         * A StoreMessage made by hand must set size (0 is a real size). */
        char *url, *mime, *name;
        int64_t size;
        uint32_t width, height, duration_ms;
        char *path;             /* the file in the cache directory once fetched, or NULL */
        char *wire_id;          /* read back only: the id the message came with when the
                                 * store gave it another (id), else NULL */
} StoreMessage;

typedef struct StoreConversation {
        char *id;               /* bare JID */
        char *kind;             /* "chat" or "group" */
        char *name;             /* display name, "" if unknown */
        uint32_t unread;        /* incoming messages since the last store_mark_read(),
                                 * less those their sender retracted since */
        int64_t time_ms;        /* time of the last message */
        /* The newest message by time (of equal times, the one stored later),
         * not the one stored last; NULL if the conversation has no messages. */
        StoreMessage *last;
} StoreConversation;

/* Opens (creating if needed) DIR/history.sqlite, mode 0600, migrating the schema
 * to the current version. DIR must exist (-ENOENT otherwise). -EPROTO if the
 * schema is newer than this build knows (written by a newer imd). */
int store_open(const char *dir, Store **ret);
void store_close(Store *store);                       /* NULL is fine */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Store, store_close)

/* Group several writes into one transaction (nesting is counted; only the
 * outermost commit writes). Without them every write is its own transaction.
 * Inner levels are savepoints, and under a savepoint SQLite copies every page
 * it first changes to a statement journal: store_append_messages() inside a
 * store_begin() costs about twice as much as on its own. */
int store_begin(Store *store);
int store_commit(Store *store);
int store_rollback(Store *store);

/* Appends a message, creating its conversation (kind "chat") if new and
 * updating its last message and time unless it is older than the last one
 * (see StoreConversation.last) and, for incoming messages, the unread
 * count. -EEXIST if the conversation already has a message with this id or
 * this non-NULL stanza_id (XEP-0359 stanza-ids are unique per archive, i.e. per
 * conversation). *ret_seq (optional) gets the new seq. conversation and id must be
 * non-empty; sender, type, text and status may be NULL and read back as NULL;
 * stanza_id is NULL or non-empty; all strings valid UTF-8 (else -EINVAL).
 * wire_id is ignored. For messages of our own, which have no stanza-id: unlike
 * store_append_messages(), it never stores a message under another id. */
int store_append_message(Store *store, const StoreMessage *msg, int64_t *ret_seq);

/* Appends a batch in one transaction (or inside the caller's): each message as
 * store_append_message() would, but every conversation is updated once for the
 * whole batch, which is what makes a flood cheap. Duplicates are skipped: their
 * seq is set to 0; the others get their new seq. *ret_added (optional) counts
 * the messages stored. On error nothing of the batch is stored.
 *
 * A message with a stanza-id already in its conversation is a duplicate. One
 * whose id is taken is a duplicate too (a copy from the archive, offline
 * storage or a carbon), unless both it and the message holding the id have a
 * stanza-id and the two differ: then the server took them for two messages
 * (a sender reusing ids, such as a bot counting from 1), and the second is
 * kept under an id of the store's own: its stanza-id, or if that is taken as
 * well, a random one. Its id is set to that; read back, the message has the
 * id it came with as wire_id. Only such a collision costs more than the
 * INSERT: a lookup, and a second INSERT. */
int store_append_messages(Store *store, StoreMessage *const *msgs, size_t n_msgs, size_t *ret_added);

/* Older history (from the server's archive), newest first: each message goes
 * before every message the store holds (seq below the smallest so far), so
 * that paging by seq keeps each conversation in time order. Duplicates are
 * skipped (seq 0), the others get their seq; an id reused by its sender as in
 * store_append_messages() (the message's id is then changed). The conversation
 * is created if new (and then takes the newest of them as its last message);
 * unread counts do not change. On error nothing is stored. */
int store_prepend_messages(Store *store, StoreMessage *const *msgs, size_t n_msgs);
/* Full-text search (FTS5, unicode61 without diacritics): messages whose text
 * holds every word of words (the last one also as a word's start), in one
 * conversation or (NULL or "") all, newest first, at most limit. -EINVAL if
 * words holds no word. Nothing the caller types is taken as query syntax. */
int store_search(Store *store, const char *words, const char *conversation, unsigned limit,
                 GPtrArray **ret /* of StoreMessage* */);
/* Indexes for search up to max_messages of the messages appended since the
 * last call, in one transaction; *ret_done true when none were left. Appends
 * do not index (it would double their cost): the daemon calls this when idle,
 * and store_search() first catches up with it. */
int store_index_pending(Store *store, unsigned max_messages, bool *ret_done);
/* The conversation's oldest message; -ENOENT if it has none. */
int store_oldest_message(Store *store, const char *conversation, StoreMessage **ret);
/* The conversation's oldest message with a stanza_id (the server's id for it,
 * which its archive knows); -ENOENT if it has none. Walks the messages older
 * than it: our own, which get none. */
int store_oldest_archived_message(Store *store, const char *conversation, StoreMessage **ret);

int store_get_message(Store *store, const char *conversation, const char *id, StoreMessage **ret);
/* What a peer means by id wire_id (XEP-0308, XEP-0424, XEP-0444 name their
 * target so): the newest message of the conversation that came with that id,
 * whether stored under it or, its id being taken, under another (see
 * store_append_messages()). -ENOENT if none. */
int store_get_message_by_wire_id(Store *store, const char *conversation, const char *wire_id, StoreMessage **ret);
/* The message of the conversation the server gave stanza_id (unique within
 * it), whatever id it is stored under; -ENOENT if none. */
int store_get_message_by_stanza_id(Store *store, const char *conversation, const char *stanza_id,
                                   StoreMessage **ret);
int store_set_message_status(Store *store, const char *conversation, const char *id, const char *status);

/* XEP-0424: marks the message revoked and drops its text, data and extension
 * (the row stays: the conversation keeps its order and later copies are still
 * duplicates), and the actions queued on it (store_queue_action()). An
 * incoming message not read yet no longer counts as unread: 1 if the
 * conversation's unread count dropped so, else 0. -ENOENT if there is no
 * such message. Idempotent. */
int store_revoke_message(Store *store, const char *conversation, const char *id);
/* XEP-0308: replaces the text and marks the message edited. -ENOENT if there is
 * no such message or it was revoked. */
int store_edit_message(Store *store, const char *conversation, const char *id, const char *text);

/* XEP-0333: the peer displayed our message id, and so every earlier one:
 * those still "sent" or "delivered" become "read". *ret_ids gets their ids,
 * oldest first (not id itself). -ENOENT if id is not in the conversation.
 * Uses a partial index of the messages not yet displayed. */
int store_mark_read_by_peer(Store *store, const char *conversation, const char *id, GPtrArray **ret_ids);
/* Records where the message's file was put (NULL: forget it). -ENOENT no such message. */
int store_set_media_path(Store *store, const char *conversation, const char *id, const char *path);
/* Our file went up to url (the message can go out now); path: where our copy
 * of it is now, or NULL. -ENOENT no such message. */
int store_set_uploaded(Store *store, const char *conversation, const char *id, const char *url, const char *path);
/* Sets conversation ID's display name (from the roster): 1 if it changed, 0
 * if it was NAME already or there is no such conversation yet. */
int store_set_conversation_name(Store *store, const char *id, const char *name);
/* Replaces the reactions (opaque text to the store, NULL for none).
 * -ENOENT if there is no such message. */
int store_set_reactions(Store *store, const char *conversation, const char *id, const char *reactions);

/* Newest first: up to limit messages older than before_id (NULL or "" = from the
 * newest). -ENOENT if before_id is not in that conversation. *ret_complete is
 * true when no older message exists in the cache. Uses the (conversation, seq)
 * index: never scans the table. */
int store_get_messages(Store *store, const char *conversation, const char *before_id, unsigned limit,
                       GPtrArray **ret /* of StoreMessage*, owns them */, bool *ret_complete);

/* The outbox: outgoing messages still "pending", oldest first. Uses a partial
 * index, so it costs nothing when the outbox is empty. */
int store_list_unsent(Store *store, GPtrArray **ret /* of StoreMessage* */);

/* Our messages (any status, revoked ones too) with this id that name a file
 * (path), in no particular order: what the history says of outbox/<id>.
 * Uses a partial index of our file messages. */
int store_list_own_files(Store *store, const char *id, GPtrArray **ret /* of StoreMessage* */);

/* Every message (all conversations) with seq > after_seq, oldest first, at
 * most limit of them; a range of the rowid, so it costs what it returns. */
int store_list_messages_after(Store *store, int64_t after_seq, unsigned limit,
                              GPtrArray **ret /* of StoreMessage* */);
/* The newest seq, 0 if the history is empty. */
int store_last_seq(Store *store, int64_t *ret);

/* All conversations, most recent first, each with its last message. */
int store_list_conversations(Store *store, GPtrArray **ret /* of StoreConversation* */);
int store_get_conversation(Store *store, const char *id, StoreConversation **ret);

/* Sets unread to 0. -ENOENT if the conversation does not exist.
 * *ret_last_incoming_id (optional) gets the id of the newest incoming message
 * (NULL if none), for the XEP-0333 displayed marker. */
int store_mark_read(Store *store, const char *conversation, char **ret_last_incoming_id);
int store_unread_total(Store *store, uint32_t *ret);

/* The outbox of actions: what we did to a message that the server must
 * pass on (XEP-0424 retraction, XEP-0308 correction, XEP-0444 reactions,
 * XEP-0333 displayed marker), kept from the moment it is done until the
 * server acknowledges it, so that it goes out again after a crash or a
 * session the server did not resume. Queue it in the same transaction as
 * its effect on the message (for a marker, on the unread count). */
typedef enum StoreActionKind {
        STORE_ACTION_RETRACT,
        STORE_ACTION_CORRECT,
        STORE_ACTION_REACT,
        STORE_ACTION_DISPLAYED,
} StoreActionKind;

typedef struct StoreAction {
        char *id;               /* the stanza's id, the same every time it goes */
        char *conversation;     /* bare JID */
        char *target;           /* the id of the message acted on (a marker's:
                                 * the newest one read, the peer's) */
        StoreActionKind kind;
        char *payload;          /* a correction's text, the reactions (opaque to
                                 * the store); NULL for a retraction or a marker */
} StoreAction;

/* Queues an action, dropping the queued ones it makes pointless: a
 * retraction every other action on its message, a correction or a set of
 * reactions (each the whole new state) the earlier ones of its kind, a
 * displayed marker (which covers every earlier message) the earlier marker
 * of its conversation, whatever message that named; so a conversation has
 * one marker queued at most. A marker is not an action on our message: a
 * retraction, or a revoke (store_revoke_message()), leaves it queued.
 * -EEXIST if another queued action has its id; -EINVAL for a bad argument. */
int store_queue_action(Store *store, const StoreAction *action);
/* The server has action id: it leaves the queue. -ENOENT if it was not in it. */
int store_action_done(Store *store, const char *id);
/* The queue, oldest first. */
int store_list_actions(Store *store, GPtrArray **ret /* of StoreAction* */);
void store_action_free(StoreAction *action);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StoreAction, store_action_free)

/* Actions of others on a message the history does not have (yet): a
 * retraction, correction or reaction (live, or from the archive) naming a
 * message that came before imd's history starts, or that is still on its
 * way. They wait, on disk, until a message with that id is stored (paging
 * back through the archive, a catch-up, a late delivery); the caller then
 * applies them (checking, as for a live one, who may act on the message)
 * and drops them. The newest STORE_WAITING_ACTIONS_MAX of an account are
 * kept: anyone can send actions naming ids that never come. */
#define STORE_WAITING_ACTIONS_MAX 1000

typedef struct StoreWaitingAction {
        int64_t seq;            /* order of application: oldest first; set by the store */
        char *conversation;     /* bare JID */
        char *target;           /* the id the actor named (the message's id as it came) */
        StoreActionKind kind;
        bool outgoing;          /* by our account (another device of ours), not the peer */
        char *payload;          /* as StoreAction's */
} StoreWaitingAction;

/* Keeps action (seq ignored): as the newest of all, or with older as the
 * oldest (an action from an archive page fetched backwards, older than
 * every one kept so far). Beyond STORE_WAITING_ACTIONS_MAX, the oldest go
 * (the one kept, if it is the oldest): *ret_dropped (optional) gets them,
 * for a caller that keeps track of the targets. */
int store_keep_waiting_action(Store *store, const StoreWaitingAction *action, bool older,
                              GPtrArray **ret_dropped /* of StoreWaitingAction* */);
/* The actions waiting for target of conversation, oldest first; or, with
 * conversation and target NULL, all of them. */
int store_list_waiting_actions(Store *store, const char *conversation, const char *target,
                               GPtrArray **ret /* of StoreWaitingAction* */);
/* Forgets the actions waiting for target of conversation. */
int store_drop_waiting_actions(Store *store, const char *conversation, const char *target);
void store_waiting_action_free(StoreWaitingAction *action);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StoreWaitingAction, store_waiting_action_free)

/* Small key/value table for per-account state. *ret NULL if unset.
 * store_set_meta() with value NULL unsets the key. */
int store_get_meta(Store *store, const char *key, char **ret);
int store_set_meta(Store *store, const char *key, const char *value);

/* For tests: EXPLAIN QUERY PLAN of every cached statement, each as its SQL on
 * one line followed by its plan lines indented with a tab, so a test can check
 * that nothing scans the messages table. */
int store_explain(Store *store, char **ret);

StoreMessage *store_message_copy(const StoreMessage *msg);
void store_message_free(StoreMessage *msg);
void store_conversation_free(StoreConversation *conv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StoreMessage, store_message_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(StoreConversation, store_conversation_free)

const char *store_direction_to_string(StoreDirection d);   /* "in" / "out" */
