/* SPDX-License-Identifier: MIT */
/*
 * im-notify: entry point. Options, the session bus, the event loop, and a
 * clean exit: SIGINT/SIGTERM save the position and exit 0; losing the bus
 * saves it and exits 1, so that the unit's Restart=on-failure brings
 * im-notify back with the session bus.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "im-notify.h"

enum {
        EXIT_OK = 0,
        EXIT_RUNTIME = 1,
        EXIT_USAGE = 2,
};

void log_warning(const char *fmt, ...) {
        va_list ap;

        fputs("im-notify: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: im-notify [OPTIONS]\n"
                "\n"
                "Shows a desktop notification for each incoming message of imd\n"
                "(org.example.IM on the session bus): one per conversation, closed\n"
                "when the conversation is read.\n"
                "\n"
                "Options:\n"
                "  -h, --help       Show this help\n"
                "  -V, --version    Show the version\n");
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), EXIT_OK);
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        App *app = userdata;

        log_warning("disconnected from the session bus");
        return sd_event_exit(app->event, EXIT_RUNTIME);
}

static void app_done(App *app) {
        if (app->dirty)
                (void) state_save(app);
        imd_unwatch(app);
        sd_event_source_unref(app->save_timer);
        g_clear_pointer(&app->convs, g_hash_table_unref);
        app->notifier = notifier_free(app->notifier);
        if (app->queue)
                g_ptr_array_unref(app->queue);
        if (app->bus) {
                sd_bus_detach_event(app->bus);
                sd_bus_flush_close_unref(app->bus);
        }
        sd_event_unref(app->event);
        g_free(app->imd_unique);
        g_free(app->state_path);
        g_free(app->owner_key);
        g_free(app->saved_server);
}

static int run(App *app) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                log_warning("cannot block signals: %s", strerror(errno));
                return EXIT_RUNTIME;
        }

        app->convs = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify) conv_free);
        app->queue = imd_queue_new();
        app->state_path = state_default_path();
        (void) state_load(app);

        r = sd_event_default(&app->event);
        if (r < 0) {
                log_warning("cannot create the event loop: %s", strerror(-r));
                return EXIT_RUNTIME;
        }
        r = sd_bus_open_user(&app->bus);
        if (r < 0) {
                log_warning("cannot connect to the session bus: %s", strerror(-r));
                return EXIT_RUNTIME;
        }
        (void) sd_bus_set_description(app->bus, "im-notify");
        r = sd_event_add_signal(app->event, NULL, SIGINT, on_terminate, NULL);
        if (r >= 0)
                r = sd_event_add_signal(app->event, NULL, SIGTERM, on_terminate, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(app->bus, app->event, SD_EVENT_PRIORITY_NORMAL);
        /* a local match: sd-bus synthesises this message when the bus goes away */
        if (r >= 0)
                r = sd_bus_match_signal(app->bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                        "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, app);
        if (r >= 0)
                r = notifier_new(app->bus, &conv_notifier_callbacks, app, &app->notifier);
        if (r >= 0)
                r = imd_watch(app);
        if (r < 0) {
                log_warning("cannot set up: %s", strerror(-r));
                return EXIT_RUNTIME;
        }

        r = sd_event_loop(app->event);
        if (r < 0) {
                log_warning("event loop failed: %s", strerror(-r));
                return EXIT_RUNTIME;
        }
        return r;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "help",    no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {}
        };
        App app = { 0 };
        int c, r;

        while ((c = getopt_long(argc, argv, "hV", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        usage(stdout);
                        return EXIT_OK;
                case 'V':
                        printf("im-notify %s\n", IM_NOTIFY_VERSION);
                        return EXIT_OK;
                default:
                        fputs("Try 'im-notify --help' for more information.\n", stderr);
                        return EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "im-notify: unexpected argument '%s'\n"
                        "Try 'im-notify --help' for more information.\n", argv[optind]);
                return EXIT_USAGE;
        }

        r = run(&app);
        app_done(&app);
        return r;
}
