/* SPDX-License-Identifier: MIT */
/*
 * What the notifications ask of imd: for their actions, MarkRead (the
 * default action) and SendText (an inline reply, then MarkRead: replying is
 * reading); for a notification taken over from the previous run, the
 * message to show (GetMessages). Asynchronous, to the well-known name
 * without auto-start; a failed action is logged and changes nothing here,
 * since the notification only closes when imd reports the conversation read.
 */
#include <errno.h>
#include <string.h>

#include "im-notify.h"

typedef struct {
        App *app;
        char *conversation;
        bool mark_read;         /* SendText: then mark the conversation read */
} Action;

static void action_free(void *p) {
        Action *a = p;

        g_free(a->conversation);
        g_free(a);
}

static void call_action(App *app, const char *member, const char *conversation, const char *text);

static int on_action_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Action *a = userdata;
        const sd_bus_error *e;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                e = sd_bus_message_get_error(reply);
                log_warning("%s for %s failed: %s (%s)", a->mark_read ? "SendText" : "MarkRead",
                            a->conversation, e->message ? e->message : "", e->name);
                return 0;
        }
        /* replying is reading: the reply's author has seen the conversation */
        if (a->mark_read)
                call_action(a->app, "MarkRead", a->conversation, NULL);
        return 0;
}

static void call_action(App *app, const char *member, const char *conversation, const char *text) {
        _cleanup_message_ sd_bus_message *m = NULL;
        sd_bus_slot *slot = NULL;
        Action *a;
        int r;

        if (!app->imd_unique) {
                log_warning("imd is not running: cannot %s %s", text ? "reply to" : "mark read", conversation);
                return;
        }
        r = sd_bus_message_new_method_call(app->bus, &m, IM_SERVICE, IM_PATH, IM_INTERFACE, member);
        if (r >= 0)
                r = sd_bus_message_set_auto_start(m, false);
        if (r >= 0)
                r = text ? sd_bus_message_append(m, "ss", conversation, text) :
                           sd_bus_message_append(m, "s", conversation);
        if (r >= 0)
                r = sd_bus_call_async(app->bus, &slot, m, on_action_reply, NULL, 0);
        if (r < 0) {
                log_warning("cannot call %s: %s", member, strerror(-r));
                return;
        }
        a = g_new0(Action, 1);
        a->app = app;
        a->conversation = g_strdup(conversation);
        a->mark_read = text != NULL;
        /* floating: the slot lives until the reply, then frees the Action */
        sd_bus_slot_set_userdata(slot, a);
        sd_bus_slot_set_destroy_callback(slot, action_free);
        sd_bus_slot_set_floating(slot, true);
        sd_bus_slot_unref(slot);
}

void imd_mark_read(App *app, const char *conversation) {
        call_action(app, "MarkRead", conversation, NULL);
}

void imd_send_reply(App *app, const char *conversation, const char *text) {
        call_action(app, "SendText", conversation, text);
}

/* GetMessages' page is newest first; a few are enough to get past our own
 * replies (sent from elsewhere, they leave the conversation unread). */
#define NEWEST_PAGE 20

typedef struct {
        App *app;
        char *conversation;
        ImdNewestIncomingFunc done;
} Lookup;

static void lookup_free(void *p) {
        Lookup *l = p;

        g_free(l->conversation);
        g_free(l);
}

static int on_messages(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Lookup *l = userdata;
        ImMessage msg;
        int r;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                log_warning("cannot read the messages of %s: %s", l->conversation,
                            e->message ? e->message : e->name);
                l->done(l->app, l->conversation, NULL, -EIO);
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'a', "a{sv}");
        while (r > 0 && (r = im_message_read(reply, &msg)) > 0) {
                _cleanup_free_ char *label = NULL;
                bool found = g_strcmp0(msg.direction, "in") == 0 && msg.id && (label = label_for_message(&msg));
                if (found)
                        l->done(l->app, l->conversation, &msg, 0);
                im_message_clear(&msg);
                if (found)
                        return 0;
        }
        if (r < 0)
                log_warning("imd sent malformed messages: %s", strerror(-r));
        l->done(l->app, l->conversation, NULL, r < 0 ? r : 0);
        return 0;
}

void imd_newest_incoming(App *app, const char *conversation, ImdNewestIncomingFunc done) {
        sd_bus_slot *slot = NULL;
        Lookup *l;
        int r;

        r = app->imd_unique ? sd_bus_call_method_async(app->bus, &slot, app->imd_unique, IM_PATH, IM_INTERFACE,
                                                       "GetMessages", on_messages, NULL, "ssu", conversation, "",
                                                       (uint32_t) NEWEST_PAGE)
                            : -ENOTCONN;
        if (r < 0) {
                log_warning("cannot read the messages of %s: %s", conversation, strerror(-r));
                done(app, conversation, NULL, r);
                return;
        }
        l = g_new0(Lookup, 1);
        l->app = app;
        l->conversation = g_strdup(conversation);
        l->done = done;
        /* floating: the slot lives until the reply, then frees the Lookup */
        sd_bus_slot_set_userdata(slot, l);
        sd_bus_slot_set_destroy_callback(slot, lookup_free);
        sd_bus_slot_set_floating(slot, true);
        sd_bus_slot_unref(slot);
}
