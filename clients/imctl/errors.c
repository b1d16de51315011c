/* SPDX-License-Identifier: MIT */
/*
 * Errors: the messages on stderr and the exit codes. imctl_exit_code() is the
 * one place where a failed D-Bus call becomes an exit code, so that every
 * command answers a script the same way (imctl(1), EXIT STATUS).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "imctl.h"

#define IM_ERROR_PREFIX "org.example.IM.Error."

const struct imctl_exit_info imctl_exit_table[] = {
        { IMCTL_EXIT_OK,        "ok",           "success" },
        { IMCTL_EXIT_BUS,       "failure",      "imd refused or failed (any other error), or the bus went away" },
        { IMCTL_EXIT_USAGE,     "usage",        "imctl's command line is wrong; nothing was sent to imd" },
        { IMCTL_EXIT_NO_DAEMON, "no-daemon",    "imd is not running (nor can be activated), or there is no bus" },
        { IMCTL_EXIT_NOT_FOUND, "not-found",    "no such conversation, message, recording or property" },
        { IMCTL_EXIT_INVALID,   "invalid",      "imd refused an argument (InvalidArgument: a bad JID, ...)" },
        { IMCTL_EXIT_TIMEOUT,   "timeout",      "no answer in time (--timeout), or the server did not answer" },
};
const size_t imctl_exit_table_len = sizeof imctl_exit_table / sizeof imctl_exit_table[0];

/* Errors by name. The bus's own names come first: they say imd never saw the call. */
static const struct {
        const char *name;
        bool prefix;            /* a family of names, e.g. every activation failure */
        int code;
} error_codes[] = {
        { SD_BUS_ERROR_SERVICE_UNKNOWN,                 false, IMCTL_EXIT_NO_DAEMON },
        { SD_BUS_ERROR_NAME_HAS_NO_OWNER,               false, IMCTL_EXIT_NO_DAEMON },
        { SD_BUS_ERROR_DISCONNECTED,                    false, IMCTL_EXIT_NO_DAEMON },
        /* D-Bus activation: dbus-daemon could not start imd */
        { "org.freedesktop.DBus.Error.Spawn.",          true,  IMCTL_EXIT_NO_DAEMON },
        /* ... or systemd could not (imd.service masked, failed, ...) */
        { "org.freedesktop.systemd1.",                  true,  IMCTL_EXIT_NO_DAEMON },
        { SD_BUS_ERROR_TIMEOUT,                         false, IMCTL_EXIT_TIMEOUT },
        /* sd-bus's own name when --timeout passed; also what dbus-daemon says
         * when imd left the bus without answering */
        { SD_BUS_ERROR_NO_REPLY,                        false, IMCTL_EXIT_TIMEOUT },
        /* dbus-daemon: activating imd took too long */
        { "org.freedesktop.DBus.Error.TimedOut",       false, IMCTL_EXIT_TIMEOUT },
        { IM_ERROR_PREFIX "Timeout",                    false, IMCTL_EXIT_TIMEOUT },
        { IM_ERROR_PREFIX "NotFound",                   false, IMCTL_EXIT_NOT_FOUND },
        { SD_BUS_ERROR_UNKNOWN_PROPERTY,                false, IMCTL_EXIT_NOT_FOUND },
        { IM_ERROR_PREFIX "InvalidArgument",            false, IMCTL_EXIT_INVALID },
};

static bool error_matches(const sd_bus_error *error, const char *name, bool prefix) {
        if (prefix)
                return strncmp(error->name, name, strlen(name)) == 0;
        return strcmp(error->name, name) == 0;
}

int imctl_exit_code(const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error)) {
                for (size_t i = 0; i < sizeof error_codes / sizeof error_codes[0]; i++)
                        if (error_matches(error, error_codes[i].name, error_codes[i].prefix))
                                return error_codes[i].code;
                return IMCTL_EXIT_BUS;
        }
        /* no error name: the call never got an answer from the bus itself */
        switch (-r) {
        case ETIMEDOUT:
                return IMCTL_EXIT_TIMEOUT;
        case ENOENT:            /* no socket at the bus address */
        case ECONNREFUSED:
        case ECONNRESET:
        case ENOTCONN:
        case EPIPE:
        case ENOMEDIUM:         /* sd-bus: no bus address known at all */
                return IMCTL_EXIT_NO_DAEMON;
        default:
                return IMCTL_EXIT_BUS;
        }
}

void imctl_error_prefix(void) {
        fprintf(stderr, "%simctl:%s ", color_err(COLOR_BAD), color_err(COLOR_RESET));
}

static bool error_is_no_daemon(const sd_bus_error *error) {
        return sd_bus_error_has_name(error, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
               sd_bus_error_has_name(error, SD_BUS_ERROR_NAME_HAS_NO_OWNER);
}

void imctl_print_bus_error(const sd_bus_error *error, int r) {
        imctl_error_prefix();
        if (error_is_no_daemon(error)) {
                fprintf(stderr, "imd is not running: nothing owns %s on the session bus (%s)\n",
                        IM_SERVICE, error->name);
                return;
        }
        if (sd_bus_error_is_set(error)) {
                fprintf(stderr, "%s (%s)\n", error->message ? error->message : error->name, error->name);
                return;
        }
        fprintf(stderr, "D-Bus call failed: %s\n", strerror(-r));
}

int imctl_bus_failure(const sd_bus_error *error, int r) {
        imctl_print_bus_error(error, r);
        return imctl_exit_code(error, r);
}

int imctl_print_errno(const char *what, int r) {
        imctl_error_prefix();
        fprintf(stderr, "%s: %s\n", what, strerror(r < 0 ? -r : r));
        return IMCTL_EXIT_BUS;
}

int imctl_usage_error(const char *fmt, ...) {
        va_list ap;

        imctl_error_prefix();
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nTry 'imctl --help' for more information.\n", stderr);
        return IMCTL_EXIT_USAGE;
}
