/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "bus-args.h"
#include "bus-errors.h"
#include "jid.h"

/* A conversation or account id: a bare JID with a localpart. Returns the
 * normalised form or sets an InvalidArgument error. */
char *bus_parse_user_jid(const char *s, const char *what, sd_bus_error *error) {
        char *bare;

        if (!jid_is_valid_user_bare(s) || !(bare = jid_normalize_bare(s))) {
                bus_set_errno(error, -EINVAL, "Invalid %s '%.100s': expected a bare JID like user@example.org",
                              what, s);
                return NULL;
        }
        return bare;
}

/* XML 1.0 cannot carry most control characters; a stanza with one would make
 * the server close the whole stream. */
static bool text_is_xml_safe(const char *text) {
        for (const char *p = text; *p; p = g_utf8_next_char(p)) {
                gunichar c = g_utf8_get_char(p);
                if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0xFFFE || c == 0xFFFF)
                        return false;
        }
        return true;
}

int bus_check_text(const char *text, sd_bus_error *error) {
        size_t len = strlen(text);

        if (len == 0)
                return bus_set_errno(error, -EINVAL, "The text is empty");
        if (len > TEXT_MAX_BYTES)
                return bus_set_errno(error, -EMSGSIZE, "The text is %zu bytes; at most %d are allowed",
                                     len, TEXT_MAX_BYTES);
        if (!g_utf8_validate(text, (gssize) len, NULL) || !text_is_xml_safe(text))
                return bus_set_errno(error, -EINVAL, "The text contains characters that cannot be sent");
        return 0;
}

/* An optional string argument: "" or valid, XML-safe UTF-8 of at most max bytes. */
int bus_check_optional_text(const char *text, const char *what, size_t max, sd_bus_error *error) {
        size_t len = strlen(text);

        if (len > max)
                return bus_set_errno(error, -EMSGSIZE, "The %s is %zu bytes; at most %zu are allowed", what, len, max);
        if (!g_utf8_validate(text, (gssize) len, NULL) || !text_is_xml_safe(text))
                return bus_set_errno(error, -EINVAL, "The %s contains characters that cannot be sent", what);
        return 0;
}

/* The (conversation, id) arguments naming one of the history's messages. */
int bus_read_message_ref(sd_bus_message *m, char **ret_conversation, const char **ret_id, sd_bus_error *error) {
        const char *conv_arg, *id;
        int r;

        r = sd_bus_message_read(m, "ss", &conv_arg, &id);
        if (r < 0)
                return r;
        *ret_conversation = bus_parse_user_jid(conv_arg, "conversation", error);
        if (!*ret_conversation)
                return -EINVAL;
        if (!*id || strlen(id) > ID_MAX_BYTES || !g_utf8_validate(id, -1, NULL))
                return bus_set_errno(error, -EINVAL, "Invalid message id");
        *ret_id = id;
        return 0;
}


static int read_option_value(sd_bus_message *m, const BusOption *o, void *base, const char *what,
                             sd_bus_error *error) {
        char signature[2] = { o->type, 0 };
        void *field = (char *) base + o->offset;
        const char *s;
        int r;

        r = sd_bus_message_enter_container(m, 'v', signature);
        if (r < 0)
                return bus_set_errno(error, -EINVAL, "%s '%s' must be of type %s", what, o->key, signature);
        if (o->type == 's') {
                r = sd_bus_message_read_basic(m, 's', &s);
                if (r >= 0) {
                        g_free(*(char **) field);
                        *(char **) field = g_strdup(s);
                }
        } else
                r = sd_bus_message_read_basic(m, o->type, field);
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

int bus_read_options(sd_bus_message *m, const BusOption *options, size_t n, void *base, const char *what,
                     sd_bus_error *error) {
        const char *key;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const BusOption *o = NULL;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n && !o; i++)
                        if (strcmp(key, options[i].key) == 0)
                                o = &options[i];
                if (!o)
                        return bus_set_errno(error, -EINVAL, "Unknown %s '%.100s'", what, key);
                r = read_option_value(m, o, base, what, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}
