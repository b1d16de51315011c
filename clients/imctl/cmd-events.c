/* SPDX-License-Identifier: MIT */
/*
 * events: what imd kept of its signals (GetEventsSince), oldest first, for a
 * script that was not listening: `imctl --json events --since N` prints one
 * {"number":N,"signal":NAME,"args":[...]} per line, the method's own shape.
 * The number of the last line is what the next --since takes (numbers have
 * gaps: they are D-Bus serials); nothing printed means nothing new.
 * NotFound (exit 4) says events after N were dropped already: read the state
 * again (list, history) and go on from `--since 0`.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "imctl.h"

/* events options in the order of the command's option table */
enum { EVENTS_OPT_SINCE };

/* One (tsv) entry; the variant holds the signal's arguments as one struct. */
static int read_event(sd_bus_message *reply, struct imctl_event *ev, struct json_object **ret_args) {
        _cleanup_json_ struct json_object *args = NULL;
        int r;

        r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_STRUCT, "tsv");
        if (r <= 0)
                return r;
        r = sd_bus_message_read(reply, "ts", &ev->number, &ev->member);
        if (r < 0)
                return r;
        r = bus_read_json(reply, &args);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;
        /* a struct reads as an array; anything else is one argument */
        if (!json_object_is_type(args, json_type_array)) {
                struct json_object *one = json_object_new_array();

                if (!one)
                        return -ENOMEM;
                json_object_array_add(one, TAKE_PTR(args));
                args = one;
        }
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;
        ev->args = args;
        *ret_args = TAKE_PTR(args);
        return 1;
}

static int fetch_once(struct imctl *ctx, uint64_t after, imctl_event_handler each, void *userdata,
                      uint64_t *ret_last) {
        _cleanup_message_ sd_bus_message *reply = NULL;
        uint64_t last;
        int r;

        r = imctl_call_simple(ctx, "GetEventsSince", &reply, "t", after);
        if (r != 0)
                return r;
        r = sd_bus_message_enter_container(reply, SD_BUS_TYPE_ARRAY, "(tsv)");
        while (r >= 0) {
                _cleanup_json_ struct json_object *args = NULL;
                struct imctl_event ev = { 0 };

                r = read_event(reply, &ev, &args);
                if (r <= 0)
                        break;
                r = each(ctx, &ev, userdata);
                if (r < 0)
                        return imctl_print_errno("cannot write output", r);
        }
        if (r >= 0)
                r = sd_bus_message_exit_container(reply);
        if (r >= 0)
                r = sd_bus_message_read(reply, "t", &last);
        if (r < 0) {
                fprintf(stderr, "imctl: unexpected reply to GetEventsSince: %s\n", strerror(-r));
                return IMCTL_EXIT_BUS;
        }
        *ret_last = last;
        return IMCTL_EXIT_OK;
}

int events_fetch(struct imctl *ctx, uint64_t after, imctl_event_handler each, void *userdata,
                 uint64_t *ret_last) {
        uint64_t last;
        int r;

        r = fetch_once(ctx, after, each, userdata, &last);
        /* Numbers belong to imd's bus connection: a restarted imd counts
         * afresh, and @after, from the one before, is past all it has.
         * Everything it keeps is news then (as im-notify takes it). */
        if (r == IMCTL_EXIT_OK && last < after) {
                fprintf(stderr, "imctl: event %" PRIu64 " is newer than imd's newest (%" PRIu64 "): imd "
                        "restarted since; showing every event it keeps\n", after, last);
                r = fetch_once(ctx, 0, each, userdata, &last);
        }
        if (r == IMCTL_EXIT_OK && ret_last)
                *ret_last = last;
        return r;
}

static int print_event(struct imctl *ctx, const struct imctl_event *ev, void *userdata) {
        _cleanup_json_ struct json_object *o = NULL;

        if (!ctx->json)
                return event_print_text(ev, true);
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "number", json_object_new_uint64(ev->number));
        json_object_object_add(o, "signal", json_object_new_string(ev->member));
        json_object_object_add(o, "args", json_object_get(ev->args));
        return output_json(o);
}

int cmd_events(struct imctl *ctx, char **args, char **opts) {
        uint64_t since = 0;

        /* validated by the option table */
        if (opts[EVENTS_OPT_SINCE] && !parse_uint64(opts[EVENTS_OPT_SINCE], &since))
                return IMCTL_EXIT_USAGE;
        return events_fetch(ctx, since, print_event, NULL, NULL);
}
