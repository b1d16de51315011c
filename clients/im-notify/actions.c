/* SPDX-License-Identifier: MIT */
/*
 * What the notifications' actions ask of imd: MarkRead (the default action)
 * and SendText (an inline reply, then MarkRead: replying is reading).
 * Asynchronous, to the well-known name without auto-start; a failure is
 * logged and changes nothing here, since the notification only closes when
 * imd reports the conversation read.
 */
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
