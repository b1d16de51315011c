/* SPDX-License-Identifier: MIT */
/*
 * im-tray: entry point. Options, the bus connection and its well-known name,
 * the event loop, and the deferred update that carries model changes to the
 * item and the menu.
 *
 * Exit status: 0 on SIGTERM/SIGINT and when the bus goes away (the session is
 * ending: as imd does, and so that Restart=on-failure does not start a tray
 * into a dead session), 1 when it cannot start, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tray.h"

#ifndef IM_TRAY_VERSION
#define IM_TRAY_VERSION "unknown"
#endif

void tray_log(const char *fmt, ...) {
        va_list ap;

        fputs("im-tray: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static int on_update(sd_event_source *s, void *userdata) {
        struct tray *t = userdata;

        model_check_unread(&t->model);
        item_update(&t->item);
        menu_update(&t->menu);
        return 0;
}

void tray_schedule_update(struct tray *t) {
        int r;

        if (!t->update_source)
                return;         /* still starting: the item and the menu read the model when made */
        r = sd_event_source_set_enabled(t->update_source, SD_EVENT_ONESHOT);
        if (r < 0)
                tray_log("cannot schedule an update: %s", strerror(-r));
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct tray *t = userdata;

        tray_log("disconnected from the bus");
        return sd_event_exit(t->event, EXIT_SUCCESS);
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: im-tray [OPTIONS]\n"
                "\n"
                "A tray icon (StatusNotifierItem) for imd: unread messages and the\n"
                "connection state, with a menu to mark conversations read.\n"
                "\n"
                "Options:\n"
                "  -h --help       Show this help\n"
                "     --version    Show the version\n");
}

static int parse_args(int argc, char **argv) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "help",    no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        usage(stdout);
                        return 0;
                case ARG_VERSION:
                        printf("im-tray %s\n", IM_TRAY_VERSION);
                        return 0;
                case '?':
                        fputs("Try 'im-tray --help' for more information.\n", stderr);
                        return -EINVAL;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "im-tray: unexpected argument '%s'\n"
                        "Try 'im-tray --help' for more information.\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static void tray_done(struct tray *t) {
        menu_done(&t->menu);
        item_done(&t->item);
        model_done(&t->model);
        t->update_source = sd_event_source_unref(t->update_source);
        if (t->bus) {
                sd_bus_detach_event(t->bus);
                t->bus = sd_bus_flush_close_unref(t->bus);
        }
        t->event = sd_event_unref(t->event);
        free(t->bus_name);
}

static int tray_setup(struct tray *t) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        r = sd_event_default(&t->event);
        if (r < 0)
                return r;
        r = sd_event_add_signal(t->event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(t->event, NULL, SIGTERM, NULL, NULL);
        if (r < 0)
                return r;

        r = sd_bus_open_user(&t->bus);
        if (r < 0) {
                tray_log("cannot connect to the session bus: %s", strerror(-r));
                return r;
        }
        r = sd_bus_attach_event(t->bus, t->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        /* a local match: sd-bus synthesises this message when the bus goes away */
        r = sd_bus_match_signal(t->bus, NULL, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                                "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, t);
        if (r < 0)
                return r;

        /* objects first, then the name: a watcher that sees the name finds them */
        r = model_init(&t->model, t);
        if (r >= 0)
                r = item_init(&t->item, t);
        if (r >= 0)
                r = menu_init(&t->menu, t);
        if (r < 0)
                return r;

        /* after everything else that is ready, so one update covers a burst of signals */
        r = sd_event_add_defer(t->event, &t->update_source, on_update, t);
        if (r >= 0)
                r = sd_event_source_set_priority(t->update_source, SD_EVENT_PRIORITY_IDLE);
        if (r >= 0)
                r = sd_event_source_set_enabled(t->update_source, SD_EVENT_ONESHOT);
        if (r < 0)
                return r;

        /* the name the StatusNotifierItem specification suggests */
        if (asprintf(&t->bus_name, "org.kde.StatusNotifierItem-%d-1", (int) getpid()) < 0) {
                t->bus_name = NULL;
                return -ENOMEM;
        }
        r = sd_bus_request_name(t->bus, t->bus_name, 0);
        if (r < 0) {
                tray_log("cannot own %s: %s", t->bus_name, strerror(-r));
                return r;
        }
        return item_register(&t->item);
}

int main(int argc, char **argv) {
        struct tray t = { 0 };
        int r;

        r = parse_args(argc, argv);
        if (r <= 0)
                return r < 0 ? 2 : 0;

        r = tray_setup(&t);
        if (r < 0) {
                tray_log("cannot start: %s", strerror(-r));
                tray_done(&t);
                return EXIT_FAILURE;
        }
        r = sd_event_loop(t.event);
        tray_done(&t);
        if (r < 0) {
                tray_log("event loop failed: %s", strerror(-r));
                return EXIT_FAILURE;
        }
        return r;
}
