/* SPDX-License-Identifier: MIT */
/*
 * imd's a{sv} dictionaries, reduced to the fields im-notify needs. Keys it
 * does not know, and known keys with an unexpected type, are skipped: the
 * interface says dictionaries may grow, and a wrong type is no reason to
 * drop the whole message. sd-bus has already checked that every string is
 * valid UTF-8.
 */
#include <stddef.h>
#include <string.h>

#include "im-notify.h"

/* Reads the entry's variant into *@field when it holds a string. */
static int read_string(sd_bus_message *m, char **field) {
        const char *contents, *s;
        int r;

        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (strcmp(contents, "s") != 0)
                return sd_bus_message_skip(m, "v");
        r = sd_bus_message_read(m, "v", "s", &s);
        if (r < 0)
                return r;
        g_free(*field);
        *field = g_strdup(s);
        return 0;
}

static int read_basic(sd_bus_message *m, const char *type, void *value, bool *found) {
        const char *contents;
        int r;

        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (strcmp(contents, type) != 0)
                return sd_bus_message_skip(m, "v");
        r = sd_bus_message_enter_container(m, 'v', type);
        if (r >= 0)
                r = sd_bus_message_read_basic(m, type[0], value);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        if (r >= 0 && found)
                *found = true;
        return r;
}

static char **message_string_field(ImMessage *msg, const char *key) {
        static const struct {
                const char *key;
                size_t offset;
        } fields[] = {
                { "id",           offsetof(ImMessage, id) },
                { "conversation", offsetof(ImMessage, conversation) },
                { "direction",    offsetof(ImMessage, direction) },
                { "type",         offsetof(ImMessage, type) },
                { "text",         offsetof(ImMessage, text) },
                { "name",         offsetof(ImMessage, name) },
                { "description",  offsetof(ImMessage, description) },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(fields); i++)
                if (strcmp(fields[i].key, key) == 0)
                        return (char **) ((char *) msg + fields[i].offset);
        return NULL;
}

static int message_entry(sd_bus_message *m, void *target) {
        ImMessage *msg = target;
        const char *key;
        char **field;
        int b, r;

        r = sd_bus_message_read(m, "s", &key);
        if (r < 0)
                return r;
        field = message_string_field(msg, key);
        if (field)
                return read_string(m, field);
        if (strcmp(key, "duration_ms") == 0)
                return read_basic(m, "u", &msg->duration_ms, &msg->has_duration);
        if (strcmp(key, "revoked") == 0) {
                b = 0;
                r = read_basic(m, "b", &b, NULL);
                msg->revoked = b;
                return r;
        }
        return sd_bus_message_skip(m, "v");
}

static int read_dict(sd_bus_message *m, int (*entry)(sd_bus_message *m, void *target), void *target);

/* A conversation's "last": a message a{sv} in the entry's variant. */
static int read_last(sd_bus_message *m, ImMessage *last) {
        const char *contents;
        int r;

        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (strcmp(contents, "a{sv}") != 0)
                return sd_bus_message_skip(m, "v");
        im_message_clear(last);
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r >= 0)
                r = read_dict(m, message_entry, last);
        if (r >= 0)
                r = sd_bus_message_exit_container(m);
        return r;
}

static int conversation_entry(sd_bus_message *m, void *target) {
        ImConversation *conv = target;
        const char *key;
        int r;

        r = sd_bus_message_read(m, "s", &key);
        if (r < 0)
                return r;
        if (strcmp(key, "id") == 0)
                return read_string(m, &conv->id);
        if (strcmp(key, "name") == 0)
                return read_string(m, &conv->name);
        if (strcmp(key, "unread") == 0)
                return read_basic(m, "u", &conv->unread, NULL);
        if (strcmp(key, "last") == 0)
                return read_last(m, &conv->last);
        return sd_bus_message_skip(m, "v");
}

/* Walks one a{sv}, calling @entry inside each dict entry. */
static int read_dict(sd_bus_message *m, int (*entry)(sd_bus_message *m, void *target), void *target) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r <= 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = entry(m, target);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        return r < 0 ? r : 1;
}

int im_message_read(sd_bus_message *m, ImMessage *ret) {
        ImMessage msg = { 0 };
        int r;

        r = read_dict(m, message_entry, &msg);
        if (r <= 0) {
                im_message_clear(&msg);
                return r;
        }
        *ret = msg;
        return 1;
}

int im_conversation_read(sd_bus_message *m, ImConversation *ret) {
        ImConversation conv = { 0 };
        int r;

        r = read_dict(m, conversation_entry, &conv);
        if (r <= 0) {
                im_conversation_clear(&conv);
                return r;
        }
        *ret = conv;
        return 1;
}

void im_message_clear(ImMessage *msg) {
        g_free(msg->id);
        g_free(msg->conversation);
        g_free(msg->direction);
        g_free(msg->type);
        g_free(msg->text);
        g_free(msg->name);
        g_free(msg->description);
        *msg = (ImMessage) { 0 };
}

void im_conversation_clear(ImConversation *conv) {
        g_free(conv->id);
        g_free(conv->name);
        im_message_clear(&conv->last);
        *conv = (ImConversation) { 0 };
}
