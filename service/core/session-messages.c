/* SPDX-License-Identifier: MIT */
/*
 * Messages for the Session: sending (text, custom), the outbox, revoking,
 * editing, reacting, typing, reading and searching; and the same acts coming
 * from peers (statuses, retractions, corrections, reactions, chat states).
 */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "actions.h"
#include "custom.h"
#include "reactions.h"
#include "session-private.h"

/* What goes out for m; media is filled in for the content to point to. */
static XmppChatContent chat_content(const StoreMessage *m, XmppMedia *media) {
        *media = (XmppMedia) {
                .url = m->url, .mime = m->mime, .name = m->name, .size = m->size,
                .width = m->width, .height = m->height, .duration_ms = m->duration_ms,
        };
        return (XmppChatContent) {
                .body = m->text, .json = m->data, .extension = m->extension, .media = m->url ? media : NULL,
        };
}

int session_send_stored(Session *s, const StoreMessage *m, int64_t delayed_ms) {
        XmppMedia media;
        XmppChatContent content = chat_content(m, &media);
        int r;

        r = xmpp_stream_send_chat(s->stream, m->conversation, &content, m->id, delayed_ms);
        if (r <= 0)
                return r;
        session_note_written(s, m->conversation, m->id, false, (size_t) r);
        return 0;
}

int session_check_stanza_size(Session *s, const StoreMessage *m) {
        XmppMedia media;
        XmppChatContent content = chat_content(m, &media);

        if (xmpp_chat_stanza_bytes(s->account, m->conversation, &content, m->id) > s->max_stanza_bytes)
                return -EMSGSIZE;
        return 0;
}

void session_fail_message(Session *s, const char *conversation, const char *id, int error, const char *why) {
        if (store_set_message_status(s->store, conversation, id, "failed") < 0)
                return;
        s->events.error(error, why, s->userdata);
        s->events.message_status_changed(conversation, id, "failed", s->userdata);
}

void session_fail_too_large(Session *s, const StoreMessage *m) {
        g_autofree char *why = g_strdup_printf("Message %s to %s is larger than the %zu bytes the server takes; "
                                               "it is marked failed", m->id, m->conversation,
                                               s->max_stanza_bytes);

        session_fail_message(s, m->conversation, m->id, -EMSGSIZE, why);
}

/* Reactions travel through the store as one line each: a reaction has no
 * white space (xmpp_reaction_valid()). */
static char *reactions_to_payload(const char *const *reactions, size_t n) {
        GString *payload = g_string_new(NULL);

        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        g_string_append_c(payload, '\n');
                g_string_append(payload, reactions[i]);
        }
        return g_string_free(payload, FALSE);
}

static XmlNode *action_stanza(Session *s, const StoreAction *a) {
        g_autoptr(StoreMessage) m = NULL;
        const char *target = a->target;

        /* The peer knows a message the store gave an id of its own (its
         * sender reused one) by the id it came with. */
        if (store_get_message(s->store, a->conversation, a->target, &m) >= 0 && m->wire_id)
                target = m->wire_id;
        switch (a->kind) {
        case STORE_ACTION_RETRACT:
                return xmpp_retract_new(a->conversation, a->id, target);
        case STORE_ACTION_CORRECT:
                return xmpp_correction_new(a->conversation, a->id, target, a->payload ? a->payload : "");
        case STORE_ACTION_REACT: {
                g_auto(GStrv) reactions = g_strsplit(a->payload ? a->payload : "", "\n", -1);
                return xmpp_reactions_new(a->conversation, a->id, target, (const char *const *) reactions,
                                          g_strv_length(reactions));
        }
        case STORE_ACTION_DISPLAYED:
                return xmpp_displayed_new(a->conversation, a->id, a->target);
        }
        return NULL;
}

static const char *action_kind_name(StoreActionKind kind) {
        switch (kind) {
        case STORE_ACTION_RETRACT:
                return "retraction";
        case STORE_ACTION_CORRECT:
                return "correction";
        case STORE_ACTION_REACT:
                return "reaction";
        case STORE_ACTION_DISPLAYED:
                return "displayed marker";
        }
        return "message action";
}

/* -EMSGSIZE if the server would not take the action's stanza. */
static int check_action_size(Session *s, const StoreAction *a) {
        g_autoptr(XmlNode) stanza = action_stanza(s, a);
        g_autofree char *xml = NULL;
        size_t len = 0;

        if (!stanza)
                return -EINVAL;
        xml = xml_serialize(stanza, &len);
        return len > s->max_stanza_bytes ? -EMSGSIZE : 0;
}

/* Sends a queued action, minding the server's refusals of it as for a
 * message (session-refusal.c): its stanza's size, or negative errno. */
static int send_action(Session *s, const StoreAction *a) {
        XmlNode *stanza = action_stanza(s, a);
        int r;

        if (!stanza)
                return -EINVAL;
        r = xmpp_stream_send_action(s->stream, stanza, a->id, a->conversation);
        if (r > 0)
                session_note_written(s, a->conversation, a->id, true, (size_t) r);
        return r;
}

/* Our retractions, corrections, reactions and displayed markers that the
 * server has not acknowledged, with the ids they had, after the messages
 * they may act on: a fresh session has none of them in flight, a resumed
 * one sent its own again already. */
static void send_queued_actions(Session *s) {
        g_autoptr(GPtrArray) actions = NULL;

        if (store_list_actions(s->store, &actions) < 0)
                return;
        for (guint i = 0; i < actions->len; i++) {
                StoreAction *a = g_ptr_array_index(actions, i);
                int r;

                if (xmpp_stream_is_in_flight(s->stream, a->id))
                        continue;
                r = send_action(s, a);
                if (r == -EMSGSIZE) {
                        /* too large for the server this connection reached
                         * (which says so; in practice a correction): it would
                         * end every session */
                        g_autofree char *why = g_strdup_printf("A %s to %s is larger than the %zu bytes the server "
                                                               "takes; it is dropped", action_kind_name(a->kind),
                                                               a->conversation, s->max_stanza_bytes);
                        if (store_action_done(s->store, a->id) == 0)
                                s->events.error(-EMSGSIZE, why, s->userdata);
                } else if (r < 0)
                        return;
        }
}

/* Everything still "pending" goes out again after a (re)connect, with its
 * original id, so a receiver can tell a resend from a new message, and its
 * original time as an XEP-0203 delay stamp. A file not uploaded yet is
 * uploaded first (again, if a crash or logout cut the upload off). */
void session_send_outbox(Session *s) {
        g_autoptr(GPtrArray) unsent = NULL;

        if (!s->store || store_list_unsent(s->store, &unsent) < 0)
                return;
        for (guint i = 0; i < unsent->len; i++) {
                StoreMessage *m = g_ptr_array_index(unsent, i);
                if (session_upload_waiting(m)) {
                        session_upload_resume(s, m);
                        continue;
                }
                /* A resumed session already sent again what it had in flight. */
                if (xmpp_stream_is_in_flight(s->stream, m->id))
                        continue;
                /* queued before this server's limit was known */
                if (session_send_stored(s, m, m->time_ms) == -EMSGSIZE)
                        session_fail_too_large(s, m);
        }
        send_queued_actions(s);
        session_pump_uploads(s);
}

static int status_rank(const char *status) {
        static const char *const order[] = { "pending", "sent", "delivered", "read" };
        for (size_t i = 0; i < G_N_ELEMENTS(order); i++)
                if (status && strcmp(status, order[i]) == 0)
                        return (int) i;
        return -1;
}

/* Paging back (GetMessages), a report from the archive may be for a message
 * of the same page, which is stored only once the page is complete: the
 * message takes the status there, and nothing is announced, as nobody saw
 * it before. false if the page has no such message of ours. */
static bool advance_on_back_page(Session *s, const char *from, const char *id, const char *status) {
        GPtrArray *page = s->back_page;
        guint i;

        for (i = page->len; i > 0; i--) {
                const StoreMessage *m = g_ptr_array_index(page, i - 1);
                if (m->direction == STORE_DIRECTION_OUT && strcmp(m->id, id) == 0 &&
                    strcmp(m->conversation, from) == 0)
                        break;
        }
        if (i == 0)
                return false;
        /* the page is oldest first: XEP-0333 §3.2, the marker covers the
         * messages before it as well */
        for (guint j = strcmp(status, "read") == 0 ? 0 : i - 1; j < i; j++) {
                StoreMessage *m = g_ptr_array_index(page, j);
                if (m->direction != STORE_DIRECTION_OUT || strcmp(m->conversation, from) != 0 ||
                    status_rank(status) <= status_rank(m->status) || status_rank(m->status) < 0)
                        continue;
                g_free(m->status);
                m->status = g_strdup(status);
        }
        return true;
}

/* A report only counts from the conversation the message went to, only for
 * our own messages, and only moves the status forward: so one found in the
 * archive, maybe long after the fact and already applied, announces only
 * what it changes. */
static void advance_status(Session *s, const char *from, const char *id, const char *status, bool archived) {
        g_autoptr(StoreMessage) m = NULL;
        int r;

        session_flush_if_batched(s, from, id);
        r = store_get_message(s->store, from, id, &m);
        if (r == -ENOENT && archived && s->back_running && advance_on_back_page(s, from, id, status))
                return;
        if (r < 0 || m->direction != STORE_DIRECTION_OUT) {
                g_debug("session: ignoring a %s report from %s for %s", status, from, id);
                return;
        }
        if (status_rank(status) <= status_rank(m->status))
                return;
        if (store_set_message_status(s->store, from, id, status) < 0)
                return;
        s->events.message_status_changed(from, id, status, s->userdata);
        if (strcmp(status, "read") == 0) {
                g_autoptr(GPtrArray) earlier = NULL;
                /* XEP-0333 §3.2: the marker covers every earlier message too */
                if (store_mark_read_by_peer(s->store, from, id, &earlier) >= 0)
                        for (guint i = 0; i < earlier->len; i++)
                                s->events.message_status_changed(from, g_ptr_array_index(earlier, i), "read",
                                                                 s->userdata);
                s->events.read_by_peer(from, id, s->userdata);
        }
}

void on_stream_delivered(const char *from, const char *id, bool archived, void *userdata) {
        advance_status(userdata, from, id, "delivered", archived);
}

void on_stream_displayed(const char *from, const char *id, bool archived, void *userdata) {
        advance_status(userdata, from, id, "read", archived);
}

void on_stream_sent(const char *to, const char *id, void *userdata) {
        Session *s = userdata;

        session_forget_refusals_of(s, id);
        /* one of our actions: the server has it, it need not go again */
        if (s->store && store_action_done(s->store, id) == 0)
                return;
        advance_status(s, to, id, "sent", false);
}

/* Sets sender's reactions to message m: 1 and *ret_updated the new state
 * if that changed them, else 0. */
static int store_reactions(Session *s, const StoreMessage *m, const char *sender, const char *const *reactions,
                           size_t n, char **ret_updated) {
        g_autofree char *updated = reactions_update(m->reactions, sender, reactions, n);
        int r;

        if (g_strcmp0(updated, m->reactions) == 0)
                return 0;
        r = store_set_reactions(s->store, m->conversation, m->id, updated);
        if (r < 0)
                return r;
        *ret_updated = g_steal_pointer(&updated);
        return 1;
}

/* Sets sender's reactions to message m and announces the new state. */
static int apply_reactions(Session *s, const StoreMessage *m, const char *sender, const char *const *reactions,
                           size_t n, bool announce) {
        g_autofree char *updated = NULL;
        int r = store_reactions(s, m, sender, reactions, n, &updated);

        if (r > 0 && announce)
                s->events.reactions_changed(m->conversation, m->id, updated, s->userdata);
        return MIN(r, 0);
}

/* A retraction or correction changed message id: the conversation changed
 * for a list too when its unread count dropped (the peer took back a
 * message not read yet; announced even when the retraction itself is not,
 * from an archive page: the count the frontends show was announced), or
 * when id is its last message (the preview). */
static void announce_conversation_of(Session *s, const char *conversation, const char *id, bool unread_dropped) {
        g_autoptr(StoreConversation) c = NULL;
        g_autoptr(GPtrArray) convs = NULL;

        if (store_get_conversation(s->store, conversation, &c) < 0)
                return;
        if (!unread_dropped && !(c->last && strcmp(c->last->id, id) == 0))
                return;
        convs = g_ptr_array_new_with_free_func((GDestroyNotify) store_conversation_free);
        g_ptr_array_add(convs, g_steal_pointer(&c));
        s->events.conversations_changed(convs, s->userdata);
        if (unread_dropped)
                session_refresh_unread_total(s);
}

/* A retraction or correction counts only from the message's own sender: the
 * peer for its messages, our account (another device) for ours. Reactions
 * count from either. m: the message a names. */
static void apply_action_to(Session *s, const XmppMessageAction *a, const StoreMessage *m, ActionNews news) {
        StoreDirection want = a->outgoing ? STORE_DIRECTION_OUT : STORE_DIRECTION_IN;
        bool announce = news == ACTION_NEWS_ALL;
        const char *id = m->id;
        int r;

        if (m->direction != want && a->kind != XMPP_ACTION_REACT) {
                g_debug("session: ignoring a %s of %s in %s: not its sender's message",
                        a->kind == XMPP_ACTION_RETRACT ? "retraction" : "correction", a->target_id, a->peer);
                return;
        }
        if (a->kind == XMPP_ACTION_REACT) {
                /* anyone of the conversation may react to any of its messages */
                if (!m->revoked)
                        apply_reactions(s, m, a->outgoing ? s->account : a->peer, a->reactions, a->n_reactions,
                                        announce);
                return;
        }
        if (a->kind == XMPP_ACTION_RETRACT) {
                if (m->revoked || (r = store_revoke_message(s->store, a->peer, id)) < 0)
                        return;
                if (announce)
                        s->events.message_revoked(a->peer, id, s->userdata);
                if (announce || (r > 0 && news == ACTION_NEWS_COUNTS))
                        announce_conversation_of(s, a->peer, id, r > 0);
        } else {
                if (m->revoked || g_strcmp0(m->text, a->text) == 0 ||
                    store_edit_message(s->store, a->peer, id, a->text) < 0)
                        return;
                if (announce) {
                        s->events.message_edited(a->peer, id, a->text, s->userdata);
                        announce_conversation_of(s, a->peer, id, false);
                }
        }
}

/* False if the message is not in the history (yet). The target is the newest
 * message that came with the id named (a sender reusing ids means its
 * latest), which may be stored under another id. */
bool session_apply_action(Session *s, const XmppMessageAction *a, ActionNews news) {
        g_autoptr(StoreMessage) m = NULL;

        if (!s->store || store_get_message_by_wire_id(s->store, a->peer, a->target_id, &m) < 0)
                return false;
        apply_action_to(s, a, m, news);
        return true;
}

/* As session_apply_action() for a deferred action, which may name the one
 * message of its page it meant (PendingAction.target_stanza_id): stored
 * with that stanza-id, or, a copy of a message the history had without one
 * (our own), under the very id the action names. */
static bool apply_pending_action(Session *s, const PendingAction *p, ActionNews news) {
        g_autoptr(StoreMessage) m = NULL;
        XmppMessageAction a = pending_action_view(p, true);

        if (!p->target_stanza_id)
                return session_apply_action(s, &a, news);
        if (!s->store || (store_get_message_by_stanza_id(s->store, p->peer, p->target_stanza_id, &m) < 0 &&
                          store_get_message(s->store, p->peer, p->target_id, &m) < 0))
                return false;
        apply_action_to(s, &a, m, news);
        return true;
}

PendingAction *pending_action_new(const XmppMessageAction *a) {
        PendingAction *p = g_new0(PendingAction, 1);

        p->kind = a->kind;
        p->peer = g_strdup(a->peer);
        p->outgoing = a->outgoing;
        p->target_id = g_strdup(a->target_id);
        p->text = g_strdup(a->text);
        p->reactions = g_new0(char *, a->n_reactions + 1);
        for (size_t i = 0; i < a->n_reactions; i++)
                p->reactions[i] = g_strdup(a->reactions[i]);
        return p;
}

XmppMessageAction pending_action_view(const PendingAction *p, bool archived) {
        return (XmppMessageAction) {
                .kind = p->kind, .peer = p->peer, .outgoing = p->outgoing, .archived = archived,
                .target_id = p->target_id, .text = p->text,
                .reactions = (const char *const *) p->reactions,
                .n_reactions = g_strv_length(p->reactions),
        };
}

/* At most this many deferred or held actions; beyond, the newest are dropped. */
#define PENDING_ACTIONS_MAX 1024

static void hold_action(Session *s, const XmppMessageAction *a) {
        if (!s->held_actions)
                s->held_actions = g_ptr_array_new_with_free_func((GDestroyNotify) pending_action_free);
        if (s->held_actions->len >= PENDING_ACTIONS_MAX) {
                g_debug("session: too many actions waiting for held messages; dropping one");
                return;
        }
        g_ptr_array_add(s->held_actions, pending_action_new(a));
}

void session_batch_held_actions(Session *s) {
        GPtrArray *actions = s->held_actions;

        for (guint i = 0; actions && i < actions->len;) {
                XmppMessageAction a = pending_action_view(g_ptr_array_index(actions, i), false);
                if (!session_is_batched(s, a.peer, a.target_id)) {
                        i++;
                        continue;
                }
                session_keep_action(s, &a, false);
                g_ptr_array_remove_index(actions, i);
        }
}

void session_apply_held_actions(Session *s) {
        g_autoptr(GPtrArray) actions = g_steal_pointer(&s->held_actions);

        for (guint i = 0; actions && i < actions->len; i++) {
                XmppMessageAction a = pending_action_view(g_ptr_array_index(actions, i), false);
                if (!session_apply_action(s, &a, ACTION_NEWS_ALL))
                        session_keep_action(s, &a, false);
        }
}

void on_stream_action(const XmppMessageAction *a, void *userdata) {
        Session *s = userdata;

        if (a->archived && s->back_running) {
                session_defer_action(s, a);
                return;
        }
        /* Its message waits in the batch (the offline messages or the
         * catch-up's page that bring both, say): the action waits with it
         * and is applied as it is stored, so the message is announced as
         * the action leaves it (a retracted text never announced). */
        if (session_is_batched(s, a->peer, a->target_id)) {
                session_keep_action(s, a, false);
                return;
        }
        if (session_apply_action(s, a, ACTION_NEWS_ALL))
                return;
        if (!a->archived && s->held) {
                hold_action(s, a);
                return;
        }
        /* a message from before the history starts, or still on its way */
        session_keep_action(s, a, false);
}

void pending_action_free(PendingAction *p) {
        g_free(p->peer);
        g_free(p->target_id);
        g_free(p->target_stanza_id);
        g_free(p->text);
        g_strfreev(p->reactions);
        g_free(p);
}

void session_defer_action(Session *s, const XmppMessageAction *a) {
        PendingAction *p;

        if (!s->pending_actions)
                s->pending_actions = g_ptr_array_new_with_free_func((GDestroyNotify) pending_action_free);
        if (s->pending_actions->len >= PENDING_ACTIONS_MAX) {
                g_debug("session: too many archived actions waiting for their messages; dropping one");
                return;
        }
        p = pending_action_new(a);
        /* The page's results come oldest first: the message it names is
         * the newest of those so far that came with its target id (the
         * store may give that one another id, and a newer message the id;
         * its stanza-id stays). With none, it is older than the page. */
        for (guint i = s->back_page ? s->back_page->len : 0; i > 0; i--) {
                const StoreMessage *m = g_ptr_array_index(s->back_page, i - 1);
                if (m->stanza_id && strcmp(m->id, a->target_id) == 0 && strcmp(m->conversation, a->peer) == 0) {
                        p->target_stanza_id = g_strdup(m->stanza_id);
                        break;
                }
        }
        /* pages come newest first, each oldest first: a page's actions go
         * before those of the (newer) pages fetched earlier */
        g_ptr_array_insert(s->pending_actions, (gint) s->pending_insert_at++, p);
}

void session_retry_actions(Session *s) {
        g_autoptr(GPtrArray) actions = g_steal_pointer(&s->pending_actions);

        if (!actions)
                return;
        /* oldest first: a later correction wins over an earlier one */
        for (guint i = 0; i < actions->len;) {
                if (apply_pending_action(s, g_ptr_array_index(actions, i), ACTION_NEWS_COUNTS))
                        g_ptr_array_remove_index(actions, i);
                else
                        i++;
        }
        /* The rest act on older messages, of pages to come (maybe after a
         * restart): they wait on disk, older than every action kept so far,
         * so each goes below the one after it. */
        for (guint i = actions->len; i > 0; i--) {
                XmppMessageAction a = pending_action_view(g_ptr_array_index(actions, i - 1), true);
                session_keep_action(s, &a, true);
        }
}

void on_stream_typing(const char *from, bool typing, void *userdata) {
        Session *s = userdata;
        s->events.typing(from, from, typing, s->userdata);
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
        r = session_check_stanza_size(s, &m);
        if (r < 0)
                return r;

        /* Stored (committed) before it goes out: a message the caller was told
         * about is never lost. */
        r = store_append_message(s->store, &m, &seq);
        if (r < 0)
                return r == -EEXIST ? -EIO : r;
        m.seq = seq;
        if (s->ready && s->stream)
                r = session_send_stored(s, &m, 0);
        else
                r = -ENOTCONN;
        if (r < 0)
                g_debug("session: %s waits in the outbox: %s", id, g_strerror(-r));

        session_schedule_indexing(s, INDEX_QUIET_MS);
        added = g_ptr_array_new_with_free_func((GDestroyNotify) store_message_free);
        g_ptr_array_add(added, store_message_copy(&m));
        s->events.messages_added(added, s->userdata);
        changed = g_hash_table_new(g_str_hash, g_str_equal);
        g_hash_table_add(changed, (char *) conversation);
        session_announce_conversations(s, changed);

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
/* A message of conversation to act on: -ENOTCONN not logged in, -ENOENT no such message. */
static int history_message(Session *s, const char *conversation, const char *id, StoreMessage **ret) {
        if (!s->online_wanted || !s->store || s->login_pending)
                return -ENOTCONN;
        session_flush(s);
        return store_get_message(s->store, conversation, id, ret);
}

static int own_message(Session *s, const char *conversation, const char *id, StoreMessage **ret) {
        g_autoptr(StoreMessage) m = NULL;
        int r;

        r = history_message(s, conversation, id, &m);
        if (r < 0)
                return r;
        if (m->direction != STORE_DIRECTION_OUT)
                return -EPERM;
        *ret = g_steal_pointer(&m);
        return 0;
}

/* Ends the transaction (store_begin()) of an action's effect on its message
 * (r: how applying it went): queues the action with it, so that a crash
 * leaves both or neither, commits, and only then sends it if the session is
 * ready: what the peer gets is always recorded here. One the server would
 * not take (TooLarge) changes nothing. An action not sent now, or lost
 * unacknowledged with the connection, waits in the queue for the next
 * session (session_send_outbox()). action NULL: nothing goes out, only the
 * effect is committed. */
static int end_action(Session *s, const StoreAction *action, int r) {
        if (r >= 0 && action)
                r = check_action_size(s, action);
        if (r >= 0 && action)
                r = store_queue_action(s->store, action);
        if (r < 0) {
                (void) store_rollback(s->store);
                return r;
        }
        r = store_commit(s->store);
        if (r < 0)
                return r;
        if (action && (!s->ready || !s->stream || send_action(s, action) < 0))
                g_debug("session: action %s waits for the next session", action->id);
        return 0;
}

int session_revoke_message(Session *s, const char *conversation, const char *id) {
        g_autoptr(StoreMessage) m = NULL;
        g_autofree char *action_id = NULL;
        StoreAction action = { 0 };
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
        /* A file whose upload has not finished, or failed, never went out:
         * nothing to take back from anyone; the upload and our copy go,
         * once the revoke is committed: until then the message is pending
         * or failed, and its file must be there (a crash in between
         * leaves a copy no message keeps, which the next opening removes). */
        if (session_upload_waiting(m) || g_strcmp0(m->status, "failed") == 0) {
                r = store_revoke_message(s->store, conversation, id);
                if (r < 0)
                        return r;
                session_upload_drop(s, m);
                s->events.message_revoked(conversation, id, s->userdata);
                announce_conversation_of(s, conversation, id, false);
                return 0;
        }
        if (!s->ready || !s->stream)
                return -ENETDOWN;
        /* Never sent, nothing to take back: only our copy goes. */
        if (g_strcmp0(m->status, "pending") != 0 || xmpp_stream_is_in_flight(s->stream, id)) {
                action_id = xmpp_new_id();
                action = (StoreAction) { .id = action_id, .conversation = (char *) conversation,
                                         .target = (char *) id, .kind = STORE_ACTION_RETRACT };
        }
        r = store_begin(s->store);
        if (r < 0)
                return r;
        r = end_action(s, action.id ? &action : NULL, store_revoke_message(s->store, conversation, id));
        if (r < 0)
                return r;
        s->events.message_revoked(conversation, id, s->userdata);
        announce_conversation_of(s, conversation, id, false);
        return 0;
}

int session_react(Session *s, const char *conversation, const char *id, const char *const *reactions, size_t n) {
        g_autoptr(StoreMessage) m = NULL;
        g_autofree char *action_id = NULL, *payload = NULL, *updated = NULL;
        StoreAction action;
        int changed, r;

        if (n > XMPP_REACTIONS_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                if (!xmpp_reaction_valid(reactions[i]))
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(reactions[i], reactions[j]) == 0)
                                return -EINVAL;
        }
        r = history_message(s, conversation, id, &m);
        if (r < 0)
                return r;
        if (m->revoked)
                return -EPERM;
        if (!s->ready || !s->stream)
                return -ENETDOWN;
        action_id = xmpp_new_id();
        payload = reactions_to_payload(reactions, n);
        action = (StoreAction) { .id = action_id, .conversation = (char *) conversation, .target = (char *) id,
                                 .kind = STORE_ACTION_REACT, .payload = payload };
        r = store_begin(s->store);
        if (r < 0)
                return r;
        changed = store_reactions(s, m, s->account, reactions, n, &updated);
        r = end_action(s, &action, changed);
        if (r < 0)
                return r;
        /* updated NULL: nobody reacts any more */
        if (changed > 0)
                s->events.reactions_changed(conversation, id, updated, s->userdata);
        return 0;
}

unsigned session_revoke_window_s(const Session *s) {
        return s->config.revoke_window_ms / 1000;
}

int session_edit_message(Session *s, const char *conversation, const char *id, const char *text) {
        g_autoptr(StoreMessage) m = NULL;
        g_autofree char *action_id = NULL;
        StoreAction action;
        int r;

        r = own_message(s, conversation, id, &m);
        if (r < 0)
                return r;
        if (m->revoked || g_strcmp0(m->type, "text") != 0)
                return -EPERM;
        if (!s->ready || !s->stream)
                return -ENETDOWN;
        action_id = xmpp_new_id();
        action = (StoreAction) { .id = action_id, .conversation = (char *) conversation, .target = (char *) id,
                                 .kind = STORE_ACTION_CORRECT, .payload = (char *) text };
        r = store_begin(s->store);
        if (r < 0)
                return r;
        r = end_action(s, &action, store_edit_message(s->store, conversation, id, text));
        if (r < 0)
                return r;
        s->events.message_edited(conversation, id, text, s->userdata);
        announce_conversation_of(s, conversation, id, false);
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

/* The displayed marker for the newest incoming message is an action like a
 * retraction: queued with the unread count's reset, sent now if the session
 * is ready, else (or if the connection loses it) by the next session, until
 * the server has it. A newer one replaces the one still queued. */
int session_mark_read(Session *s, const char *conversation) {
        g_autofree char *last_incoming = NULL, *action_id = NULL;
        g_autoptr(GHashTable) changed = NULL;
        StoreConversation *before = NULL;
        StoreAction action = { 0 };
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

        r = store_begin(s->store);
        if (r < 0)
                return r;
        r = store_mark_read(s->store, conversation, &last_incoming);
        if (r >= 0 && last_incoming) {
                action_id = xmpp_new_id();
                action = (StoreAction) { .id = action_id, .conversation = (char *) conversation,
                                         .target = last_incoming, .kind = STORE_ACTION_DISPLAYED };
        }
        r = end_action(s, action.id ? &action : NULL, r);
        if (r < 0)
                return r;
        if (unread == 0)
                return 0;
        changed = g_hash_table_new(g_str_hash, g_str_equal);
        g_hash_table_add(changed, (char *) conversation);
        session_announce_conversations(s, changed);
        session_refresh_unread_total(s);
        return 0;
}
