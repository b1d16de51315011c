/* SPDX-License-Identifier: MIT */
/*
 * imd's side: who owns org.example.IM, its signals, and the catch-up.
 *
 * Every signal's event number is its D-Bus serial. When an owner appears
 * (at start, or imd restarted), the matches are in place already; live
 * signals from it are held in App.queue while im-notify catches up:
 *   - with a saved position: GetConversations, then GetEventsSince(last) if
 *     the position belongs to this owner, GetEventsSince(0) if it belongs to
 *     another (imd restarted: numbering started again; everything it kept is
 *     new to us);
 *   - without one (first run: no backlog): LastEvent, then GetConversations.
 *     LastEvent first: a message arriving between the two is then numbered
 *     above it and handled from the queue; read the other way round it would
 *     be in neither the snapshot nor the queue.
 * The held signals are then handled unless their serial is <= the last
 * event handled, so nothing falls into the gap and nothing counts twice.
 *
 * The queue is bounded (QUEUE_MAX). A catch-up that overflows it stops
 * holding and drops what it held, but still finishes: its answers are
 * handled, and another round, GetEventsSince(last) while holding again,
 * covers what was dropped from imd's event log. Every round thus makes
 * progress, however fast imd sends; the first one that does not overflow
 * goes live. Should imd no longer keep those events (NotFound), im-notify
 * reads everything again once.
 *
 * im-notify never starts imd (no auto-start): it waits for the name to
 * appear. imd is started by its own unit or D-Bus activation when a real
 * client needs it; a notifier alone should not bring a logged-out daemon up.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "im-notify.h"

static void sync_restart(App *app);

static void message_unref(void *m) {
        sd_bus_message_unref(m);
}

GPtrArray *imd_queue_new(void) {
        return g_ptr_array_new_with_free_func(message_unref);
}

char *owner_key_for(sd_bus *bus, const char *unique) {
        sd_id128_t id;
        char s[SD_ID128_STRING_MAX];

        if (sd_bus_get_bus_id(bus, &id) < 0)
                return g_strdup_printf("- %s", unique);
        return g_strdup_printf("%s %s", sd_id128_to_string(id, s), unique);
}

static int new_call(App *app, const char *destination, const char *member, sd_bus_message **ret) {
        int r;

        r = sd_bus_message_new_method_call(app->bus, ret, destination, IM_PATH, IM_INTERFACE, member);
        if (r >= 0)
                r = sd_bus_message_set_auto_start(*ret, false);
        return r;
}

/* --- events, live or replayed --- */

static const struct {
        const char *member;
        const char *signature;
} handled[] = {
        { "MessageReceived",      "a{sv}" },
        { "MessageRevoked",       "ss" },
        { "MessageEdited",        "sss" },
        { "ConversationsChanged", "aa{sv}" },
};

static const char *signature_of(const char *member) {
        for (size_t i = 0; i < G_N_ELEMENTS(handled); i++)
                if (strcmp(handled[i].member, member) == 0)
                        return handled[i].signature;
        return NULL;
}

/* @m is at the signal's first argument, whose types were checked. */
static int dispatch(App *app, const char *member, sd_bus_message *m) {
        const char *conv, *id, *text;
        int r;

        if (strcmp(member, "MessageReceived") == 0) {
                ImMessage msg;

                r = im_message_read(m, &msg);
                if (r > 0) {
                        conv_on_message(app, &msg);
                        im_message_clear(&msg);
                }
                return r;
        }
        if (strcmp(member, "MessageRevoked") == 0) {
                r = sd_bus_message_read(m, "ss", &conv, &id);
                if (r >= 0)
                        conv_on_revoked(app, conv, id);
                return r;
        }
        if (strcmp(member, "MessageEdited") == 0) {
                r = sd_bus_message_read(m, "sss", &conv, &id, &text);
                if (r >= 0)
                        conv_on_edited(app, conv, id, text);
                return r;
        }
        if (strcmp(member, "ConversationsChanged") == 0) {
                ImConversation ic;

                r = sd_bus_message_enter_container(m, 'a', "a{sv}");
                while (r > 0 && (r = im_conversation_read(m, &ic)) > 0) {
                        conv_on_conversation(app, &ic);
                        im_conversation_clear(&ic);
                }
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                return r;
        }
        return 0;
}

static void handle_live(App *app, sd_bus_message *m) {
        const char *member = sd_bus_message_get_member(m), *signature;
        uint64_t number = 0;
        int r;

        if (sd_bus_message_get_cookie(m, &number) < 0 || number <= app->last)
                return;         /* handled already, from GetEventsSince */
        app->last = number;
        state_mark_dirty(app);
        signature = member ? signature_of(member) : NULL;
        if (!signature || !sd_bus_message_has_signature(m, signature))
                return;
        r = dispatch(app, member, m);
        if (r < 0)
                log_warning("imd sent a malformed %s: %s", member, strerror(-r));
}

static int on_imd_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        App *app = userdata;
        const char *sender = sd_bus_message_get_sender(m);

        /* a late signal of an imd that has gone counts in another numbering */
        if (!app->imd_unique || !sender || strcmp(sender, app->imd_unique) != 0)
                return 0;
        switch (app->phase) {
        case IMD_ABSENT:
                return 0;
        case IMD_SYNCING:
                if (app->overflowed)
                        return 0;       /* the next round reads it from imd's event log */
                if (app->queue->len >= QUEUE_MAX) {
                        log_warning("imd sends faster than the catch-up runs: "
                                    "reading the rest from its event log afterwards");
                        g_ptr_array_set_size(app->queue, 0);
                        app->overflowed = true;
                        return 0;
                }
                g_ptr_array_add(app->queue, sd_bus_message_ref(m));
                return 0;
        case IMD_LIVE:
                handle_live(app, m);
                return 0;
        }
        return 0;
}

/* --- the catch-up --- */

static void go_live(App *app) {
        g_autoptr(GPtrArray) held = TAKE_PTR(app->queue);

        app->queue = imd_queue_new();
        app->phase = IMD_LIVE;
        app->overflowed = app->refetching = app->resynced = false;
        for (guint i = 0; i < held->len; i++)
                handle_live(app, held->pdata[i]);
        conv_take_over(app);
        /* at once: the position is consistent now, and the file appearing
         * tells whoever watches (the tests) that im-notify is caught up */
        (void) state_save(app);
}

/* One (tsv) of GetEventsSince, inside its struct. */
static int replay_event(App *app, sd_bus_message *reply) {
        const char *member, *contents, *signature;
        _cleanup_free_ char *wrapped = NULL;
        uint64_t number;
        int r;

        r = sd_bus_message_read(reply, "ts", &number, &member);
        if (r < 0)
                return r;
        r = sd_bus_message_peek_type(reply, NULL, &contents);
        if (r < 0)
                return r;
        signature = signature_of(member);
        if (signature)
                wrapped = g_strdup_printf("(%s)", signature);
        if (number <= app->last || !wrapped || strcmp(contents, wrapped) != 0)
                r = sd_bus_message_skip(reply, "v");
        else {
                r = sd_bus_message_enter_container(reply, 'v', contents);
                if (r >= 0)
                        r = sd_bus_message_enter_container(reply, 'r', signature);
                if (r >= 0)
                        r = dispatch(app, member, reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r >= 0 && number > app->last)
                app->last = number;
        return r;
}

static int replay(App *app, sd_bus_message *reply, uint64_t *ret_last) {
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "(tsv)");
        while (r > 0 && (r = sd_bus_message_enter_container(reply, 'r', "tsv")) > 0) {
                r = replay_event(app, reply);
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_read(reply, "t", ret_last);
        return r;
}

static void ask_events_since(App *app, uint64_t after);

/* A catch-up round is done: live, unless it dropped signals it should have held. */
static void round_done(App *app) {
        if (!app->overflowed) {
                go_live(app);
                return;
        }
        app->overflowed = false;
        app->refetching = true;
        ask_events_since(app, app->last);
}

static int on_events(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        App *app = userdata;
        uint64_t after = app->last, last = 0;
        int r;

        app->sync_slot = sd_bus_slot_unref(app->sync_slot);
        if (sd_bus_message_is_method_error(reply, IM_ERROR_NOT_FOUND) && after > 0) {
                app->last = 0;
                if (app->refetching && !app->resynced) {
                        /* the signals dropped while flooded are gone from the log too:
                         * what they changed is only in a fresh snapshot */
                        log_warning("imd no longer keeps the events after %" PRIu64 ": reading everything again",
                                    after);
                        app->resynced = true;
                        sync_restart(app);
                        return 0;
                }
                /* dropped already: what imd still keeps is all newer than what we handled */
                log_warning("imd no longer keeps the events after %" PRIu64 ": catching up on what it has", after);
                ask_events_since(app, 0);
                return 0;
        }
        if (sd_bus_message_is_method_error(reply, NULL)) {
                log_warning("cannot catch up on missed events: %s", sd_bus_message_get_error(reply)->message);
                go_live(app);
                return 0;
        }
        app->replaying = true;
        r = replay(app, reply, &last);
        app->replaying = false;
        if (r < 0)
                log_warning("imd sent malformed events: %s", strerror(-r));
        if (r >= 0 && last < after) {
                /* numbers from before a restart that reused the unique name */
                app->last = 0;
                ask_events_since(app, 0);
                return 0;
        }
        conv_replay_flush(app);
        if (last > app->last)
                app->last = last;
        round_done(app);
        return 0;
}

static void ask_events_since(App *app, uint64_t after) {
        _cleanup_message_ sd_bus_message *m = NULL;
        int r;

        r = new_call(app, app->imd_unique, "GetEventsSince", &m);
        if (r >= 0)
                r = sd_bus_message_append(m, "t", after);
        if (r >= 0)
                r = sd_bus_call_async(app->bus, &app->sync_slot, m, on_events, app, 0);
        if (r < 0) {
                log_warning("cannot ask imd for missed events: %s", strerror(-r));
                go_live(app);
        }
}

static void ask_conversations(App *app);

static int on_last_event(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        App *app = userdata;
        uint64_t last = 0;
        int r;

        app->sync_slot = sd_bus_slot_unref(app->sync_slot);
        if (sd_bus_message_is_method_error(reply, NULL))
                log_warning("cannot read LastEvent: %s", sd_bus_message_get_error(reply)->message);
        else if ((r = sd_bus_message_read(reply, "v", "t", &last)) < 0)
                log_warning("imd sent a malformed LastEvent: %s", strerror(-r));
        else {
                /* from now on: the position belongs to this imd */
                g_free(app->owner_key);
                app->owner_key = owner_key_for(app->bus, app->imd_unique);
                app->last = last;
        }
        ask_conversations(app);
        return 0;
}

static void ask_last_event(App *app) {
        int r;

        r = sd_bus_call_method_async(app->bus, &app->sync_slot, app->imd_unique, IM_PATH,
                                     "org.freedesktop.DBus.Properties", "Get", on_last_event, app,
                                     "ss", IM_INTERFACE, "LastEvent");
        if (r < 0) {
                log_warning("cannot read LastEvent: %s", strerror(-r));
                ask_conversations(app);
        }
}

static int read_conversations(App *app, sd_bus_message *reply, GHashTable *present) {
        ImConversation ic;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "a{sv}");
        while (r > 0 && (r = im_conversation_read(reply, &ic)) > 0) {
                if (ic.id)
                        g_hash_table_add(present, g_strdup(ic.id));
                conv_on_conversation(app, &ic);
                im_conversation_clear(&ic);
        }
        return r;
}

static int on_conversations(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        g_autoptr(GHashTable) present = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        App *app = userdata;
        _cleanup_free_ char *key = owner_key_for(app->bus, app->imd_unique);
        int r;

        app->sync_slot = sd_bus_slot_unref(app->sync_slot);
        if (sd_bus_message_is_method_error(reply, NULL))
                log_warning("cannot read the conversations: %s", sd_bus_message_get_error(reply)->message);
        else {
                r = read_conversations(app, reply, present);
                if (r < 0)
                        log_warning("imd sent malformed conversations: %s", strerror(-r));
                else
                        conv_sync_done(app, present);
        }

        if (app->from_now) {
                /* first run: LastEvent came first, no backlog; without it
                 * (unreadable), from whatever the held signals bring */
                if (!app->owner_key)
                        app->owner_key = TAKE_PTR(key);
                round_done(app);
                return 0;
        }
        if (strcmp(app->owner_key, key) != 0) {
                /* imd restarted: its numbers started again, and all it kept is new */
                g_free(app->owner_key);
                app->owner_key = TAKE_PTR(key);
                app->last = 0;
        }
        ask_events_since(app, app->last);
        return 0;
}

static void ask_conversations(App *app) {
        int r;

        r = sd_bus_call_method_async(app->bus, &app->sync_slot, app->imd_unique, IM_PATH, IM_INTERFACE,
                                     "GetConversations", on_conversations, app, NULL);
        if (r < 0) {
                log_warning("cannot read the conversations: %s", strerror(-r));
                app->phase = IMD_ABSENT;
        }
}

/* A catch-up from the start, holding live signals again. */
static void sync_restart(App *app) {
        app->sync_slot = sd_bus_slot_unref(app->sync_slot);
        g_ptr_array_set_size(app->queue, 0);
        app->overflowed = false;
        app->phase = IMD_SYNCING;
        app->from_now = !app->owner_key;
        if (app->from_now)
                ask_last_event(app);
        else
                ask_conversations(app);
}

static void sync_start(App *app) {
        app->refetching = app->resynced = false;
        sync_restart(app);
}

static void set_owner(App *app, const char *unique) {
        if (unique && !unique[0])
                unique = NULL;
        if (g_strcmp0(app->imd_unique, unique) == 0 && (unique == NULL || app->phase != IMD_ABSENT))
                return;
        g_free(app->imd_unique);
        app->imd_unique = g_strdup(unique);
        app->sync_slot = sd_bus_slot_unref(app->sync_slot);
        g_ptr_array_set_size(app->queue, 0);
        app->phase = IMD_ABSENT;
        if (unique)
                sync_start(app);
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *name, *old_owner, *new_owner;

        if (sent_by_bus(m) && sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) >= 0 &&
            strcmp(name, IM_SERVICE) == 0)
                set_owner(userdata, new_owner);
        return 0;
}

static int on_name_owner(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        App *app = userdata;
        const char *unique = NULL;

        app->sync_slot = sd_bus_slot_unref(app->sync_slot);
        /* no owner: NameOwnerChanged says when one comes */
        if (!sd_bus_message_is_method_error(reply, NULL) && sd_bus_message_read(reply, "s", &unique) >= 0)
                set_owner(app, unique);
        return 0;
}

int imd_watch(App *app) {
        int r;

        r = sd_bus_add_match(app->bus, NULL,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                             "arg0='" IM_SERVICE "'", on_owner_changed, app);
        /* every signal of the interface: the number of each one counts */
        if (r >= 0)
                r = sd_bus_add_match(app->bus, NULL,
                                     "type='signal',sender='" IM_SERVICE "',path='" IM_PATH "',"
                                     "interface='" IM_INTERFACE "'", on_imd_signal, app);
        /* sent after the matches: the bus answers in order, so no owner change is missed */
        if (r >= 0)
                r = sd_bus_call_method_async(app->bus, &app->sync_slot, "org.freedesktop.DBus",
                                             "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner",
                                             on_name_owner, app, "s", IM_SERVICE);
        return r;
}

void imd_unwatch(App *app) {
        app->sync_slot = sd_bus_slot_unref(app->sync_slot);
        if (app->queue)
                g_ptr_array_set_size(app->queue, 0);
}
