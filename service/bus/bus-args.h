/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Checks of method arguments shared by the object's handlers: each sets a
 * named error (InvalidArgument, TooLarge) with a text for people and returns
 * negative errno, or returns 0 / the value.
 */

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-bus.h>

#define TEXT_MAX_BYTES      65536
#define ID_MAX_BYTES        256

/* A conversation or account id: a bare JID with a localpart. Returns the
 * normalised form (g_free() it) or NULL with an InvalidArgument error. */
char *bus_parse_user_jid(const char *s, const char *what, sd_bus_error *error);
/* A message text: non-empty, valid XML-safe UTF-8, at most TEXT_MAX_BYTES. */
int bus_check_text(const char *text, sd_bus_error *error);
/* An optional string argument: "" or valid, XML-safe UTF-8 of at most max bytes. */
int bus_check_optional_text(const char *text, const char *what, size_t max, sd_bus_error *error);
/* The (conversation, id) arguments naming one of the history's messages:
 * *ret_conversation normalised (g_free() it), *ret_id in the message. */
int bus_read_message_ref(sd_bus_message *m, char **ret_conversation, const char **ret_id, sd_bus_error *error);

/* One key of an a{sv} argument: its variant's type ('s': a g_strdup()ed
 * char *, which replaces and frees an earlier value; 'u', 'b', 'x', 't':
 * that basic type) and where it goes in the struct being filled. */
typedef struct BusOption {
        const char *key;
        char type;
        size_t offset;
} BusOption;

/* Reads an a{sv} argument into the struct at base. A key that is not one
 * of options[0..n), or a value of another type, is InvalidArgument; what
 * names the dictionary in that message ("option", "info"). */
int bus_read_options(sd_bus_message *m, const BusOption *options, size_t n, void *base, const char *what,
                     sd_bus_error *error);
