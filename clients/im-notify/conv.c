/* SPDX-License-Identifier: MIT */
/*
 * What each conversation's notification shows, and when.
 *
 * A conversation has at most one notification: Notify with replaces_id for
 * each new incoming message, CloseNotification once its unread count drops
 * to 0 (read from any frontend) or it is deleted. While a Notify is in
 * flight its id is not known yet, so changes wait for the reply
 * (show_again / close_after) instead of opening a second notification.
 *
 * A revoked message that the notification shows gives way to the previous
 * unread message of the conversation (among the last RECENT_MAX), or the
 * notification closes when there is none. A notification the user dismissed
 * is not shown again for the same message.
 *
 * While the catch-up runs (App.replaying), messages only mark their
 * conversation; conv_replay_flush() then shows each one's newest unread
 * message once, however many arrived meanwhile.
 *
 * Until the notification server's capabilities are known (at start, and
 * whenever another server takes over or none runs) a Notify is held, and
 * sent with what is newest then (notifier_wait_ready(), on_ready()).
 */
#include <string.h>

#include "im-notify.h"

typedef struct {
        char *id;
        char *label;
} Recent;

static void recent_free(void *p) {
        Recent *r = p;

        g_free(r->id);
        g_free(r->label);
        g_free(r);
}

Conv *conv_get(App *app, const char *id, bool create) {
        Conv *c = g_hash_table_lookup(app->convs, id);

        if (c || !create)
                return c;
        c = g_new0(Conv, 1);
        c->app = app;
        c->id = g_strdup(id);
        c->name = g_strdup("");
        g_queue_init(&c->recent);
        g_hash_table_insert(app->convs, c->id, c);
        return c;
}

void conv_free(Conv *c) {
        if (!c)
                return;
        sd_bus_slot_unref(c->notify_slot);
        g_queue_clear_full(&c->recent, recent_free);
        g_free(c->id);
        g_free(c->name);
        g_free(c->last_in_id);
        g_free(c->last_in_label);
        g_free(c->shown_id);
        g_free(c->shown_summary);
        g_free(c->shown_body);
        g_free(c);
}

static Recent *newest(Conv *c) {
        return g_queue_peek_tail(&c->recent);
}

static GList *find_recent(Conv *c, const char *id) {
        for (GList *l = c->recent.head; l; l = l->next)
                if (strcmp(((Recent *) l->data)->id, id) == 0)
                        return l;
        return NULL;
}

static bool is_open(const Conv *c) {
        return c->notification_id != 0 || c->notify_slot;
}

static Conv *conv_by_notification(App *app, uint32_t id) {
        GHashTableIter i;
        void *value;

        if (id == 0)
                return NULL;
        g_hash_table_iter_init(&i, app->convs);
        while (g_hash_table_iter_next(&i, NULL, &value))
                if (((Conv *) value)->notification_id == id)
                        return value;
        return NULL;
}

static void close_now(Conv *c) {
        c->inherited = c->taking_over = c->held = false;
        if (c->notify_slot) {
                c->close_after = true;
                c->show_again = false;
                return;
        }
        if (c->notification_id == 0)
                return;
        notifier_close(c->app->notifier, c->notification_id);
        c->notification_id = 0;
        state_mark_dirty(c->app);
}

static void send_notify(Conv *c);

static int on_notify_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Conv *c = userdata;
        uint32_t id = notifier_reply_id(reply);

        c->notify_slot = sd_bus_slot_unref(c->notify_slot);
        if (id != 0) {
                c->notification_id = id;
                state_mark_dirty(c->app);
        }
        if (c->close_after) {
                c->close_after = false;
                close_now(c);
        } else if (c->show_again) {
                c->show_again = false;
                send_notify(c);
        }
        return 0;
}

static void send_notify(Conv *c) {
        const char *summary = c->name[0] ? c->name : c->id;
        Recent *r = newest(c);
        int ret;

        if (!r)
                return;
        c->close_after = false;
        if (c->notify_slot) {
                c->show_again = true;
                return;
        }
        if (!notifier_ready(c->app->notifier)) {
                /* the body is written for the server: markup or not */
                c->held = true;
                notifier_wait_ready(c->app->notifier);
                return;
        }
        c->held = false;
        ret = notifier_show(c->app->notifier, c->notification_id, summary, r->label, on_notify_reply, c,
                            &c->notify_slot);
        if (ret < 0) {
                log_warning("cannot show a notification for %s: %s", c->id, strerror(-ret));
                return;
        }
        c->inherited = c->taking_over = false;
        g_free(c->shown_id);
        g_free(c->shown_summary);
        g_free(c->shown_body);
        c->shown_id = g_strdup(r->id);
        c->shown_summary = g_strdup(summary);
        c->shown_body = g_strdup(r->label);
        state_mark_dirty(c->app);
}

static void conv_show(Conv *c) {
        if (c->app->replaying)
                c->replay_pending = true;
        else
                send_notify(c);
}

static void conv_withdraw(Conv *c) {
        c->replay_pending = false;
        close_now(c);
}

void conv_on_message(App *app, const ImMessage *msg) {
        _cleanup_free_ char *label = NULL;
        Recent *r;
        Conv *c;

        /* own messages, from any client or device (carbons), are "out" */
        if (!msg->id || !msg->conversation || g_strcmp0(msg->direction, "in") != 0 || msg->revoked)
                return;
        label = label_for_message(msg);
        if (!label)
                return;
        c = conv_get(app, msg->conversation, true);
        /* announced twice (a replayed event racing its live signal): shown already */
        if (find_recent(c, msg->id) || g_strcmp0(c->shown_id, msg->id) == 0)
                return;
        r = g_new0(Recent, 1);
        r->id = g_strdup(msg->id);
        r->label = TAKE_PTR(label);
        g_queue_push_tail(&c->recent, r);
        while (c->recent.length > RECENT_MAX)
                recent_free(g_queue_pop_head(&c->recent));
        /* ConversationsChanged follows with the real count */
        if (c->unread < UINT32_MAX)
                c->unread++;
        conv_show(c);
}

void conv_on_revoked(App *app, const char *conversation, const char *id) {
        Conv *c = conv_get(app, conversation, false);
        bool shown;
        GList *l;

        if (!c)
                return;
        l = find_recent(c, id);
        if (l) {
                recent_free(l->data);
                g_queue_delete_link(&c->recent, l);
        }
        shown = g_strcmp0(c->shown_id, id) == 0 && is_open(c);
        if (newest(c) && (shown || c->replay_pending))
                conv_show(c);
        else if (shown)
                conv_withdraw(c);
        else if (!newest(c))
                c->replay_pending = false;
}

void conv_on_edited(App *app, const char *conversation, const char *id, const char *text) {
        Conv *c = conv_get(app, conversation, false);
        Recent *r;
        GList *l;

        if (!c || !text[0])
                return;
        l = find_recent(c, id);
        if (!l)
                return;
        r = l->data;
        g_free(r->label);
        r->label = label_truncate(text);
        if (r == newest(c) && g_strcmp0(c->shown_id, id) == 0 && is_open(c))
                conv_show(c);
}

static void remember_last_incoming(Conv *c, const ImMessage *last) {
        g_clear_pointer(&c->last_in_id, g_free);
        g_clear_pointer(&c->last_in_label, g_free);
        if (!last->id || g_strcmp0(last->direction, "in") != 0 || last->revoked)
                return;
        c->last_in_label = label_for_message(last);
        if (c->last_in_label)
                c->last_in_id = g_strdup(last->id);
}

void conv_on_conversation(App *app, const ImConversation *ic) {
        const char *name = ic->name ? ic->name : "";
        bool renamed;
        Conv *c;

        if (!ic->id)
                return;
        c = conv_get(app, ic->id, true);
        if (c->inherited) {
                c->listed = true;
                remember_last_incoming(c, &ic->last);
        }
        renamed = strcmp(c->name, name) != 0;
        if (renamed) {
                g_free(c->name);
                c->name = g_strdup(name);
        }
        c->unread = ic->unread;
        if (c->unread == 0) {
                /* read, here or in any other frontend */
                g_queue_clear_full(&c->recent, recent_free);
                g_queue_init(&c->recent);
                conv_withdraw(c);
                return;
        }
        if (renamed && is_open(c) && newest(c))
                conv_show(c);
}

void conv_sync_done(App *app, GHashTable *present) {
        GHashTableIter i;
        void *value;

        g_hash_table_iter_init(&i, app->convs);
        while (g_hash_table_iter_next(&i, NULL, &value)) {
                Conv *c = value;

                if (g_hash_table_contains(present, c->id))
                        continue;
                /* deleted while we were not looking */
                c->unread = 0;
                g_queue_clear_full(&c->recent, recent_free);
                g_queue_init(&c->recent);
                conv_withdraw(c);
        }
}

void conv_replay_flush(App *app) {
        GHashTableIter i;
        void *value;

        g_hash_table_iter_init(&i, app->convs);
        while (g_hash_table_iter_next(&i, NULL, &value)) {
                Conv *c = value;

                if (!c->replay_pending)
                        continue;
                c->replay_pending = false;
                if (c->unread > 0 && newest(c))
                        send_notify(c);
        }
}

/* Only a Notify to a server that has gone is in flight here: with none
 * running, Notify waits (held) for the capabilities of the one that starts,
 * whose NameOwnerChanged comes before them. A held one goes to the new server. */
void conv_forget_notifications(App *app) {
        GHashTableIter i;
        void *value;

        g_hash_table_iter_init(&i, app->convs);
        while (g_hash_table_iter_next(&i, NULL, &value)) {
                Conv *c = value;

                c->notify_slot = sd_bus_slot_unref(c->notify_slot);
                c->notification_id = 0;
                c->show_again = c->close_after = c->inherited = c->taking_over = false;
        }
        state_mark_dirty(app);
}

static void push_recent(Conv *c, const char *id, const char *label) {
        Recent *r = g_new0(Recent, 1);

        r->id = g_strdup(id);
        r->label = g_strdup(label);
        g_queue_push_tail(&c->recent, r);
}

static void on_newest_incoming(App *app, const char *conversation, const ImMessage *msg, int error) {
        _cleanup_free_ char *label = msg ? label_for_message(msg) : NULL;
        Conv *c = conv_get(app, conversation, false);

        /* meanwhile shown again (a new message), or closed (read): settled */
        if (!c || !c->taking_over)
                return;
        c->taking_over = false;
        /* not asked (imd went away, say): nothing known, nothing changed */
        if (error < 0 || c->notification_id == 0 || c->notify_slot || newest(c))
                return;
        if (!label || c->unread == 0) {
                /* nothing to show: better gone than unclickable */
                close_now(c);
                return;
        }
        push_recent(c, msg->id, label);
        send_notify(c);
}

void conv_take_over(App *app) {
        GHashTableIter i;
        void *value;

        g_hash_table_iter_init(&i, app->convs);
        while (g_hash_table_iter_next(&i, NULL, &value)) {
                Conv *c = value;

                if (!c->inherited)
                        continue;
                c->inherited = false;
                /* not in imd's list (GetConversations failed): nothing known to show */
                if (!c->listed)
                        continue;
                /* With nothing newer from the catch-up, the newest unread message
                 * is the conversation's last incoming one. Shown again with the
                 * same id, a notification still open is updated where it is; one
                 * the user dismissed while im-notify was not running comes back,
                 * as the server cannot be asked whether it still shows an id. */
                if (c->unread > 0 && g_queue_is_empty(&c->recent) && c->last_in_id)
                        push_recent(c, c->last_in_id, c->last_in_label);
                g_clear_pointer(&c->last_in_id, g_free);
                g_clear_pointer(&c->last_in_label, g_free);
                if (c->unread == 0)
                        close_now(c);
                else if (newest(c))
                        send_notify(c);
                else {
                        /* the last message is our own reply, or revoked: look further back */
                        c->taking_over = true;
                        imd_newest_incoming(app, c->id, on_newest_incoming);
                }
        }
}

static void on_action_invoked(uint32_t id, const char *key, void *userdata) {
        Conv *c = conv_by_notification(userdata, id);

        /* "default": the notification itself was clicked */
        if (c && strcmp(key, "default") == 0)
                imd_mark_read(userdata, c->id);
}

static void on_replied(uint32_t id, const char *text, void *userdata) {
        Conv *c = conv_by_notification(userdata, id);

        if (c && text[0])
                imd_send_reply(userdata, c->id, text);
}

static void on_closed(uint32_t id, void *userdata) {
        Conv *c = conv_by_notification(userdata, id);

        /* expired or dismissed: the next message opens a new one */
        if (c) {
                c->notification_id = 0;
                c->inherited = c->taking_over = false;
                state_mark_dirty(userdata);
        }
}

static void on_ready(bool ok, void *userdata) {
        GHashTableIter i;
        void *value;

        g_hash_table_iter_init(&i, ((App *) userdata)->convs);
        while (g_hash_table_iter_next(&i, NULL, &value)) {
                Conv *c = value;

                if (!c->held)
                        continue;
                c->held = false;
                /* without a server: given up, as a Notify that failed (notifier.c said why) */
                if (ok)
                        send_notify(c);
        }
}

static void on_server(const char *key, void *userdata) {
        App *app = userdata;

        if (!app->server_known) {
                app->server_known = true;
                /* the ids saved by the last run belong to this server: keep them */
                if (key && g_strcmp0(key, app->saved_server) == 0)
                        return;
        }
        g_free(app->saved_server);
        app->saved_server = g_strdup(key);
        conv_forget_notifications(app);
}

const NotifierCallbacks conv_notifier_callbacks = {
        .action_invoked = on_action_invoked,
        .replied = on_replied,
        .closed = on_closed,
        .server = on_server,
        .ready = on_ready,
};
