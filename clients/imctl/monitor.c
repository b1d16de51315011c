/* SPDX-License-Identifier: MIT */
/*
 * monitor: every signal of org.example.IM and its PropertiesChanged, as text
 * lines or NDJSON ({"event":NAME, <named arguments>}).
 *
 * Arguments are named from the signal table; a signal imd adds later still
 * comes through, as {"event":NAME,"args":[...]}.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "loop.h"

#define MAX_SIGNAL_ARGS 4

struct signal_kind {
        const char *member;
        const char *args[MAX_SIGNAL_ARGS];
        int (*text)(struct json_object *event);
};

static int text_message(struct json_object *event) {
        struct json_object *m = json_object_object_get(event, "message");
        g_autofree char *text = output_message_summary(m);
        char when[16];

        output_format_time(json_get_int(m, "time", -1), when);
        return output_line("message %s %s %s: %s", json_get_string(m, "conversation", "?"), when,
                           json_get_string(m, "sender", "?"), text);
}

static int text_conversations(struct json_object *event) {
        struct json_object *list = json_object_object_get(event, "conversations");
        g_autoptr(GString) s = g_string_new("conversations changed:");

        for (size_t i = 0; json_object_is_type(list, json_type_array) && i < json_object_array_length(list); i++) {
                struct json_object *c = json_object_array_get_idx(list, i);

                g_string_append_printf(s, "%s %s [%" PRId64 " unread]", i ? "," : "",
                                       json_get_string(c, "id", "?"), json_get_int(c, "unread", 0));
        }
        return output_line("%s", s->str);
}

static int text_error(struct json_object *event) {
        return output_line("error %s: %s", json_get_string(event, "name", "?"),
                           json_get_string(event, "message", ""));
}

static void append_value(GString *s, struct json_object *v) {
        if (json_object_is_type(v, json_type_string))
                g_string_append(s, json_object_get_string(v));
        else if (json_object_is_type(v, json_type_boolean))
                g_string_append(s, json_object_get_boolean(v) ? "yes" : "no");
        else
                g_string_append(s, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
}

static int text_properties(struct json_object *event) {
        g_autoptr(GString) s = g_string_new("properties changed:");

        json_object_object_foreach(json_object_object_get(event, "changed"), key, value) {
                g_string_append_printf(s, " %s=", key);
                append_value(s, value);
        }
        return output_line("%s", s->str);
}

/* Signals without a renderer of their own: "Name arg arg ..." */
static int text_generic(struct json_object *event) {
        g_autoptr(GString) s = g_string_new(json_get_string(event, "event", "?"));

        json_object_object_foreach(event, key, value) {
                if (strcmp(key, "event") == 0)
                        continue;
                g_string_append_c(s, ' ');
                append_value(s, value);
        }
        return output_line("%s", s->str);
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
};

static const struct signal_kind *find_signal_kind(const char *member) {
        for (size_t i = 0; i < G_N_ELEMENTS(signal_kinds); i++)
                if (strcmp(signal_kinds[i].member, member) == 0)
                        return &signal_kinds[i];
        return NULL;
}

/* Names the arguments if the signal is known and its arity matches. */
static struct json_object *build_event(const char *member, const struct signal_kind *kind,
                                       struct json_object *args) {
        struct json_object *event = json_object_new_object();
        size_t n = json_object_array_length(args), named = 0;

        if (!event)
                return NULL;
        json_object_object_add(event, "event", json_object_new_string(member));
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

static int emit(struct imctl *ctx, struct json_object *event, int (*text)(struct json_object *)) {
        int r;

        r = ctx->json ? output_json(event) : text(event);
        if (r < 0) {
                /* nobody reads us any more (e.g. a closed pipe): stop */
                imctl_print_errno("cannot write output", r);
                return r;
        }
        return 0;
}

static int on_im_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct imctl *ctx = userdata;
        _cleanup_json_ struct json_object *args = NULL, *event = NULL;
        const char *member = sd_bus_message_get_member(m);
        const struct signal_kind *kind;
        int r;

        if (!member)
                return 0;
        r = bus_read_json_args(m, &args);
        if (r < 0) {
                fprintf(stderr, "imctl: cannot decode signal %s: %s\n", member, strerror(-r));
                return 0;
        }
        kind = find_signal_kind(member);
        event = build_event(member, kind, args);
        if (!event)
                return -ENOMEM;
        /* arguments that did not fit the table are shown generically */
        if (!kind || json_object_object_get_ex(event, "args", NULL))
                r = emit(ctx, event, text_generic);
        else
                r = emit(ctx, event, kind->text);
        if (r < 0)
                return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), IMCTL_EXIT_BUS);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct imctl *ctx = userdata;
        _cleanup_json_ struct json_object *event = NULL;
        struct json_object *changed = NULL, *invalidated = NULL;
        const char *interface;
        int r;

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
        json_object_object_add(event, "event", json_object_new_string("PropertiesChanged"));
        json_object_object_add(event, "changed", changed);
        if (json_object_is_type(invalidated, json_type_array) && json_object_array_length(invalidated) > 0)
                json_object_object_add(event, "invalidated", invalidated);
        else
                json_object_put(invalidated);

        r = emit(ctx, event, text_properties);
        if (r < 0)
                return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), IMCTL_EXIT_BUS);
        return 0;
}

static int on_daemon_lost(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        if (!imctl_name_owner_lost(m))
                return 0;
        fprintf(stderr, "imctl: imd left the bus\n");
        return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(m)), IMCTL_EXIT_OK);
}

int cmd_monitor(struct imctl *ctx, char **args, char **opts) {
        sd_event *e = NULL;
        int r;

        r = loop_new(ctx, &e);
        if (r != 0)
                return r;

        /* subscribe first, then check the daemon: no event falls in between */
        r = sd_bus_add_match(ctx->bus, NULL,
                             "type='signal',sender='" IM_SERVICE "',path='" IM_PATH "',"
                             "interface='" IM_INTERFACE "'",
                             on_im_signal, ctx);
        if (r >= 0)
                r = sd_bus_add_match(ctx->bus, NULL,
                                     "type='signal',sender='" IM_SERVICE "',path='" IM_PATH "',"
                                     "interface='org.freedesktop.DBus.Properties',"
                                     "member='PropertiesChanged',arg0='" IM_INTERFACE "'",
                                     on_properties_changed, ctx);
        if (r < 0) {
                r = imctl_print_errno("cannot subscribe to signals", r);
                goto out;
        }
        r = imctl_watch_daemon(ctx, on_daemon_lost, NULL);
        if (r == 0)
                r = imctl_check_daemon(ctx);
        if (r == 0)
                r = loop_run(ctx, e);
out:
        sd_bus_detach_event(ctx->bus);
        sd_event_unref(e);
        return r;
}
