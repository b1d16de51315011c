/* SPDX-License-Identifier: MIT */
/*
 * monitor: every signal of org.example.IM and its PropertiesChanged, as text
 * lines or NDJSON ({"number":N,"event":NAME, <named arguments>}), where N is
 * the signal's D-Bus serial: the number GetEventsSince knows it by. With
 * --since N it first prints the events imd kept after N, then the live ones,
 * none twice and none missed (the match rules are in place before
 * GetEventsSince is called).
 *
 * Arguments are named from the signal table; a signal imd adds later still
 * comes through, as {"number":N,"event":NAME,"args":[...]}.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "loop.h"

#define MAX_SIGNAL_ARGS 4

/* monitor options in the order of the command's option table */
enum { MONITOR_OPT_SINCE };

struct signal_kind {
        const char *member;
        const char *args[MAX_SIGNAL_ARGS];
        void (*text)(GString *s, struct json_object *event);
};

/* Every string of a signal goes through output_append_text(): a peer's text
 * with a newline or an escape sequence must not fake a line or drive the
 * terminal. Only the colours are written as they are. */
static void append_lead(GString *s, const char *lead) {
        g_string_append(s, color_out(COLOR_BOLD));
        output_append_text(s, lead);
        g_string_append(s, color_out(COLOR_RESET));
}

static void text_message(GString *s, struct json_object *event) {
        struct json_object *m = json_object_object_get(event, "message");
        g_autofree char *text = output_message_summary(m);
        bool out = strcmp(json_get_string(m, "direction", ""), "out") == 0;
        char when[16];

        output_format_time(json_get_int(m, "time", -1), when);
        append_lead(s, "message");
        g_string_append_c(s, ' ');
        output_append_text(s, json_get_string(m, "conversation", "?"));
        g_string_append_printf(s, " %s%s%s %s", color_out(COLOR_DIM), when, color_out(COLOR_RESET),
                               color_out(out ? COLOR_OUTGOING : COLOR_INCOMING));
        output_append_text(s, json_get_string(m, "sender", "?"));
        g_string_append_printf(s, "%s: %s", color_out(COLOR_RESET), text);
}

static void text_conversations(GString *s, struct json_object *event) {
        struct json_object *list = json_object_object_get(event, "conversations");

        append_lead(s, "conversations changed:");
        for (size_t i = 0; json_object_is_type(list, json_type_array) && i < json_object_array_length(list); i++) {
                struct json_object *c = json_object_array_get_idx(list, i);

                g_string_append(s, i ? ", " : " ");
                output_append_text(s, json_get_string(c, "id", "?"));
                g_string_append_printf(s, " [%" PRId64 " unread]", json_get_int(c, "unread", 0));
        }
}

static void text_error(GString *s, struct json_object *event) {
        g_string_append_printf(s, "%serror%s ", color_out(COLOR_BAD), color_out(COLOR_RESET));
        output_append_text(s, json_get_string(event, "name", "?"));
        g_string_append(s, ": ");
        output_append_text(s, json_get_string(event, "message", ""));
}

static void append_value(GString *s, struct json_object *v) {
        if (json_object_is_type(v, json_type_string))
                output_append_text(s, json_object_get_string(v));
        else if (json_object_is_type(v, json_type_boolean))
                g_string_append(s, json_object_get_boolean(v) ? "yes" : "no");
        else    /* JSON escapes C0, but not DEL and C1 */
                output_append_text(s, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
}

static void text_properties(GString *s, struct json_object *event) {
        append_lead(s, "properties changed:");
        json_object_object_foreach(json_object_object_get(event, "changed"), key, value) {
                g_string_append_c(s, ' ');
                output_append_text(s, key);
                g_string_append_c(s, '=');
                append_value(s, value);
        }
}

/* Signals without a renderer of their own: "Name arg arg ..." */
static void text_generic(GString *s, struct json_object *event) {
        append_lead(s, json_get_string(event, "event", "?"));
        json_object_object_foreach(event, key, value) {
                if (strcmp(key, "event") == 0 || strcmp(key, "number") == 0)
                        continue;
                g_string_append_c(s, ' ');
                if (strcmp(key, "args") == 0 && json_object_is_type(value, json_type_array))
                        for (size_t i = 0; i < json_object_array_length(value); i++) {
                                if (i)
                                        g_string_append_c(s, ' ');
                                append_value(s, json_object_array_get_idx(value, i));
                        }
                else
                        append_value(s, value);
        }
}

static const struct signal_kind signal_kinds[] = {
        { "MessageReceived",      { "message" },                               text_message },
        { "ConversationsChanged", { "conversations" },                         text_conversations },
        { "Error",                { "name", "message" },                       text_error },
        { "MessageStatusChanged", { "conversation", "id", "status" },          text_generic },
        { "MessageReadByPeer",    { "conversation", "id" },                    text_generic },
        { "Typing",               { "conversation", "who", "typing" },         text_generic },
        { "MessageRevoked",       { "conversation", "id" },                    text_generic },
        { "MessageEdited",        { "conversation", "id", "text" },            text_generic },
        { "ReactionsChanged",     { "conversation", "id", "reactions" },       text_generic },
        { "KickedOut",            { "reason" },                                text_generic },
        /* in DESIGN.md, not yet in the interface XML */
        { "GroupsChanged",        { "groups" },                                text_generic },
        { "ProfilesChanged",      { "profiles" },                              text_generic },
        { "BlocklistChanged",     { "jids" },                                  text_generic },
        { "ContactsChanged",      { "contacts" },                              text_generic },
        { "TransferProgress",     { "conversation", "id", "done", "total" },   text_generic },
        { "RecordingLevel",       { "peak" },                                  text_generic },
        { "RecordingStopped",     { "conversation", "id", "reason" },          text_generic },
};

/* In step with the interface XML (GetEventsSince: what imd does not keep). */
bool event_is_momentary(const char *member) {
        return strcmp(member, "RecordingLevel") == 0 || strcmp(member, "TransferProgress") == 0 ||
               strcmp(member, "Typing") == 0;
}

static const struct signal_kind *find_signal_kind(const char *member) {
        for (size_t i = 0; i < G_N_ELEMENTS(signal_kinds); i++)
                if (strcmp(signal_kinds[i].member, member) == 0)
                        return &signal_kinds[i];
        return NULL;
}

/* Names the arguments if the signal is known and its arity matches. */
static struct json_object *build_event(const struct imctl_event *ev, const struct signal_kind *kind) {
        struct json_object *event = json_object_new_object(), *args = ev->args;
        size_t n = json_object_array_length(args), named = 0;

        if (!event)
                return NULL;
        if (ev->number)
                json_object_object_add(event, "number", json_object_new_uint64(ev->number));
        json_object_object_add(event, "event", json_object_new_string(ev->member));
        if (kind)
                while (named < MAX_SIGNAL_ARGS && kind->args[named])
                        named++;
        if (kind && named == n)
                for (size_t i = 0; i < n; i++)
                        json_object_object_add(event, kind->args[i],
                                               json_object_get(json_object_array_get_idx(args, i)));
        else
                json_object_object_add(event, "args", json_object_get(args));
        return event;
}

static int print_text(struct json_object *event, void (*text)(GString *s, struct json_object *event),
                      bool with_number) {
        g_autoptr(GString) s = g_string_new(NULL);
        int64_t number = json_get_int(event, "number", 0);

        if (with_number)
                g_string_append_printf(s, "%s%" PRId64 "%s ", color_out(COLOR_DIM), number, color_out(COLOR_RESET));
        text(s, event);
        return output_line("%s", s->str);
}

/* The event as monitor shows it, text renderer included; NULL without memory. */
static struct json_object *render_event(const struct imctl_event *ev,
                                        void (**ret_text)(GString *s, struct json_object *event)) {
        const struct signal_kind *kind = find_signal_kind(ev->member);
        struct json_object *event = build_event(ev, kind);

        /* arguments that did not fit the table are shown generically */
        if (!kind || !event || json_object_object_get_ex(event, "args", NULL))
                *ret_text = text_generic;
        else
                *ret_text = kind->text;
        return event;
}

int event_print(struct imctl *ctx, const struct imctl_event *ev) {
        _cleanup_json_ struct json_object *event = NULL;
        void (*text)(GString *s, struct json_object *event);

        event = render_event(ev, &text);
        if (!event)
                return -ENOMEM;
        return ctx->json ? output_json(event) : print_text(event, text, false);
}

int event_print_text(const struct imctl_event *ev, bool with_number) {
        _cleanup_json_ struct json_object *event = NULL;
        void (*text)(GString *s, struct json_object *event);

        event = render_event(ev, &text);
        if (!event)
                return -ENOMEM;
        return print_text(event, text, with_number);
}

struct monitor {
        struct imctl *ctx;
        /* --since: live signals up to this number were in GetEventsSince's answer */
        uint64_t replayed_through;
};

/* nobody reads us any more (e.g. a closed pipe): stop */
static int stop_on_write_error(sd_bus_message *m, int r) {
        imctl_print_errno("cannot write output", r);
        return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), IMCTL_EXIT_BUS);
}

static int on_im_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct monitor *mon = userdata;
        _cleanup_json_ struct json_object *args = NULL;
        struct imctl_event ev = { .member = sd_bus_message_get_member(m) };
        int r;

        if (!ev.member || !imctl_from_daemon(mon->ctx, m))
                return 0;
        (void) sd_bus_message_get_cookie(m, &ev.number);
        if (ev.number && ev.number <= mon->replayed_through && !event_is_momentary(ev.member))
                return 0;
        r = bus_read_json_args(m, &args);
        if (r < 0) {
                fprintf(stderr, "imctl: cannot decode signal %s: %s\n", ev.member, strerror(-r));
                return 0;
        }
        ev.args = args;
        r = event_print(mon->ctx, &ev);
        if (r < 0)
                return stop_on_write_error(m, r);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct monitor *mon = userdata;
        _cleanup_json_ struct json_object *event = NULL;
        struct json_object *changed = NULL, *invalidated = NULL;
        const char *interface;
        uint64_t number = 0;
        int r;

        if (!imctl_from_daemon(mon->ctx, m))
                return 0;
        r = sd_bus_message_read(m, "s", &interface);
        if (r < 0 || strcmp(interface, IM_INTERFACE) != 0)
                return 0;
        r = bus_read_json(m, &changed);
        if (r > 0)
                r = bus_read_json(m, &invalidated);
        if (r <= 0 || !json_object_is_type(changed, json_type_object)) {
                json_object_put(changed);
                json_object_put(invalidated);
                fprintf(stderr, "imctl: cannot decode PropertiesChanged\n");
                return 0;
        }

        event = json_object_new_object();
        if (!event)
                return -ENOMEM;
        /* a number too, though imd does not keep these: it orders them among the events */
        if (sd_bus_message_get_cookie(m, &number) >= 0)
                json_object_object_add(event, "number", json_object_new_uint64(number));
        json_object_object_add(event, "event", json_object_new_string("PropertiesChanged"));
        json_object_object_add(event, "changed", changed);
        if (json_object_is_type(invalidated, json_type_array) && json_object_array_length(invalidated) > 0)
                json_object_object_add(event, "invalidated", invalidated);
        else
                json_object_put(invalidated);

        r = mon->ctx->json ? output_json(event) : print_text(event, text_properties, false);
        if (r < 0)
                return stop_on_write_error(m, r);
        return 0;
}

static int on_daemon_lost(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        if (!imctl_name_owner_lost(m))
                return 0;
        fprintf(stderr, "imctl: imd left the bus\n");
        return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), IMCTL_EXIT_OK);
}

static int replay_one(struct imctl *ctx, const struct imctl_event *ev, void *userdata) {
        return event_print(ctx, ev);
}

int cmd_monitor(struct imctl *ctx, char **args, char **opts) {
        struct monitor mon = { .ctx = ctx };
        sd_event *e = NULL;
        uint64_t since;
        int r;

        r = loop_new(ctx, &e);
        if (r != 0)
                return r;

        /* subscribe first, then check the daemon: no event falls in between */
        r = sd_bus_add_match(ctx->bus, NULL,
                             "type='signal',sender='" IM_SERVICE "',path='" IM_PATH "',"
                             "interface='" IM_INTERFACE "'",
                             on_im_signal, &mon);
        if (r >= 0)
                r = sd_bus_add_match(ctx->bus, NULL,
                                     "type='signal',sender='" IM_SERVICE "',path='" IM_PATH "',"
                                     "interface='org.freedesktop.DBus.Properties',"
                                     "member='PropertiesChanged',arg0='" IM_INTERFACE "'",
                                     on_properties_changed, &mon);
        if (r < 0) {
                r = imctl_print_errno("cannot subscribe to signals", r);
                goto out;
        }
        r = imctl_watch_daemon(ctx, on_daemon_lost, NULL);
        if (r == 0)
                r = imctl_check_daemon(ctx);
        /* signals that came meanwhile wait in sd-bus's queue; on_im_signal() drops those replayed */
        if (r == 0 && opts[MONITOR_OPT_SINCE] && parse_uint64(opts[MONITOR_OPT_SINCE], &since))
                r = events_fetch(ctx, since, replay_one, NULL, &mon.replayed_through);
        if (r == 0)
                r = loop_run(ctx, e);
out:
        /* the bus outlives us in main(): drop our callbacks' userdata first */
        sd_bus_detach_event(ctx->bus);
        sd_event_unref(e);
        return r;
}
