/* SPDX-License-Identifier: MIT */
/*
 * The event loop of the long-running commands (monitor, chat, record): sd-event
 * with the bus attached, leaving with exit code 0 on SIGINT/SIGTERM (unless the
 * command handles them itself) and 1 when the bus connection goes away.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>

#include "loop.h"

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), IMCTL_EXIT_OK);
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        sd_event *e = userdata;

        fprintf(stderr, "imctl: disconnected from the bus\n");
        return sd_event_exit(e, IMCTL_EXIT_BUS);
}

int loop_new(struct imctl *ctx, sd_event **ret) {
        return loop_new_with_signal_handler(ctx, on_signal, NULL, ret);
}

int loop_new_with_signal_handler(struct imctl *ctx, sd_event_signal_handler_t handler, void *userdata,
                                 sd_event **ret) {
        sd_event *e = NULL;
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return imctl_print_errno("cannot block signals", -errno);

        r = sd_event_new(&e);
        if (r < 0)
                return imctl_print_errno("cannot create the event loop", r);
        r = sd_event_add_signal(e, NULL, SIGINT, handler, userdata);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGTERM, handler, userdata);
        if (r >= 0)
                r = sd_bus_attach_event(ctx->bus, e, SD_EVENT_PRIORITY_NORMAL);
        /* a local match: sd-bus synthesises this message, nothing goes to the bus */
        if (r >= 0)
                r = sd_bus_match_signal(ctx->bus, NULL, "org.freedesktop.DBus.Local",
                                        "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                        "Disconnected", on_disconnected, e);
        if (r < 0) {
                sd_bus_detach_event(ctx->bus);
                sd_event_unref(e);
                return imctl_print_errno("cannot set up the event loop", r);
        }
        *ret = e;
        return IMCTL_EXIT_OK;
}

int loop_run(struct imctl *ctx, sd_event *e) {
        int r;

        r = sd_event_loop(e);
        sd_bus_flush(ctx->bus);
        sd_bus_detach_event(ctx->bus);
        if (r < 0)
                return imctl_print_errno("event loop failed", r);
        return r;
}
