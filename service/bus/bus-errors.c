/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "bus-errors.h"

typedef struct ErrnoMapping {
        int error;
        const char *name;
        const char *text;
} ErrnoMapping;

/* Whatever has no name of its own (a disk error, a refusal nobody
 * explained) is still one of ours: callers match on the prefix. */
#define IM_ERROR_FAILED IM_ERROR_PREFIX "Failed"

static const ErrnoMapping mappings[] = {
        { EINVAL,       IM_ERROR_PREFIX "InvalidArgument", "Invalid argument" },
        { ENOTCONN,     IM_ERROR_PREFIX "NotLoggedIn",     "Not logged in" },
        { EACCES,       IM_ERROR_PREFIX "AuthFailed",      "The server refused the credentials" },
        { ECONNREFUSED, IM_ERROR_PREFIX "Network",         "Cannot reach the server" },
        { ECONNRESET,   IM_ERROR_PREFIX "Network",         "The connection to the server was lost" },
        { ECONNABORTED, IM_ERROR_PREFIX "Network",         "The connection was closed" },
        { EPROTO,       IM_ERROR_PREFIX "Network",         "Protocol or TLS failure talking to the server" },
        { ENETUNREACH,  IM_ERROR_PREFIX "Network",         "The network is unreachable" },
        { ENETDOWN,     IM_ERROR_PREFIX "Network",         "Not connected to the server right now" },
        { ENETRESET,    IM_ERROR_PREFIX "Network",         "The server cannot check the credentials right now" },
        { ENOENT,       IM_ERROR_PREFIX "NotFound",        "Not found" },
        { EPERM,        IM_ERROR_PREFIX "NotAllowed",      "Not allowed" },
        { ETIME,        IM_ERROR_PREFIX "NotAllowed",      "Too late" },
        { ENODATA,      IM_ERROR_PREFIX "TooShort",        "Too short" },
        { EMSGSIZE,     IM_ERROR_PREFIX "TooLarge",        "Too large" },
        { E2BIG,        IM_ERROR_PREFIX "TooLarge",        "Too large" },
        { EDQUOT,       IM_ERROR_PREFIX "TooLarge",        "imd's outbox is full ([media] max_outbox)" },
        { EBUSY,        IM_ERROR_PREFIX "Busy",            "Busy" },
        { ENOTSUP,      IM_ERROR_PREFIX "NotSupported",    "Not supported" },
        { ETIMEDOUT,    IM_ERROR_PREFIX "Timeout",         "The server did not answer in time" },
        { ENODEV,       IM_ERROR_PREFIX "NotFound",        "No such device" },
        { ECANCELED,    IM_ERROR_PREFIX "Cancelled",       "Cancelled" },
        { EIO,          IM_ERROR_PREFIX "Failed",          "Input/output error" },
};

/* Error texts quote caller and network input cut to a length: never let a cut
 * through a UTF-8 sequence (or any invalid byte) make sd-bus refuse the reply,
 * which would leave the caller waiting for its timeout. */
static void truncate_to_valid_utf8(char *text) {
        const char *end;
        if (!g_utf8_validate(text, -1, &end))
                text[end - text] = '\0';
}

static const ErrnoMapping *lookup(int error) {
        if (error < 0)
                error = -error;
        for (size_t i = 0; i < sizeof(mappings) / sizeof(mappings[0]); i++)
                if (mappings[i].error == error)
                        return &mappings[i];
        return NULL;
}

const char *bus_error_name_from_errno(int error) {
        const ErrnoMapping *m = lookup(error);
        return m ? m->name : IM_ERROR_FAILED;
}

const char *bus_error_text_from_errno(int error) {
        const ErrnoMapping *m = lookup(error);
        return m ? m->text : "Failed";
}

int bus_reply_errno(sd_bus_message *m, int error, const char *message) {
        const char *fallback = bus_error_text_from_errno(error);
        const ErrnoMapping *map = lookup(error);
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char text[512];
        int r;

        snprintf(text, sizeof(text), "%s", message ? message : fallback);
        truncate_to_valid_utf8(text);
        sd_bus_error_set(&e, map ? map->name : IM_ERROR_FAILED, text);
        r = sd_bus_reply_method_error(m, &e);
        sd_bus_error_free(&e);
        if (r < 0) {
                sd_bus_error_set(&e, map ? map->name : IM_ERROR_FAILED, fallback);
                r = sd_bus_reply_method_error(m, &e);
                sd_bus_error_free(&e);
        }
        return r;
}

int bus_set_errno(sd_bus_error *ret_error, int error, const char *format, ...) {
        const ErrnoMapping *map = lookup(error);
        char text[512];
        va_list ap;

        if (format) {
                va_start(ap, format);
                vsnprintf(text, sizeof(text), format, ap);
                va_end(ap);
        } else
                snprintf(text, sizeof(text), "%s", map ? map->text : strerror(error < 0 ? -error : error));
        truncate_to_valid_utf8(text);
        return sd_bus_error_set(ret_error, map ? map->name : IM_ERROR_FAILED, text);
}
