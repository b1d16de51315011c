/* SPDX-License-Identifier: MIT */

#include <string.h>

#include <json-c/json.h>

#include "bus-dict.h"

/* A key of ours: a literal in ASCII, so it skips the UTF-8 check that
 * sd_bus_message_append_basic() runs on every string (an eighth of the cost
 * of an entry). */
static int append_key(sd_bus_message *m, const char *key) {
        size_t len = strlen(key);
        char *space;
        int r;

        r = sd_bus_message_append_string_space(m, len, &space);
        if (r < 0)
                return r;
        memcpy(space, key, len);
        return 0;
}

/* One {sv} entry built with the basic calls: sd_bus_message_append()'s format
 * parsing costs more than the data itself, and a flood builds eight of these
 * per message. */
static int append_entry(sd_bus_message *m, const char *key, char type, const void *value) {
        const char contents[2] = { type, 0 };
        int r;

        if ((r = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
            (r = append_key(m, key)) < 0 ||
            (r = sd_bus_message_open_container(m, 'v', contents)) < 0 ||
            (r = sd_bus_message_append_basic(m, type, value)) < 0 ||
            (r = sd_bus_message_close_container(m)) < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int append_str(sd_bus_message *m, const char *key, const char *value) {
        return append_entry(m, key, 's', value ? value : "");
}

int bus_append_reactions(sd_bus_message *m, const char *reactions) {
        struct json_object *all = reactions ? json_tokener_parse(reactions) : NULL;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sas}");
        if (r >= 0 && json_object_is_type(all, json_type_object)) {
                json_object_object_foreach(all, sender, list) {
                        size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
                        if ((r = sd_bus_message_open_container(m, 'e', "sas")) < 0 ||
                            (r = sd_bus_message_append_basic(m, 's', sender)) < 0 ||
                            (r = sd_bus_message_open_container(m, 'a', "s")) < 0)
                                break;
                        for (size_t i = 0; i < n && r >= 0; i++) {
                                const char *e = json_object_get_string(json_object_array_get_idx(list, i));
                                r = sd_bus_message_append_basic(m, 's', e ? e : "");
                        }
                        if (r < 0 || (r = sd_bus_message_close_container(m)) < 0 ||
                            (r = sd_bus_message_close_container(m)) < 0)
                                break;
                }
        }
        json_object_put(all);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

int bus_append_message(sd_bus_message *m, const StoreMessage *msg) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = append_str(m, "id", msg->id)) < 0 ||
            (r = append_str(m, "conversation", msg->conversation)) < 0 ||
            (r = append_str(m, "sender", msg->sender)) < 0 ||
            (r = append_str(m, "direction", store_direction_to_string(msg->direction))) < 0 ||
            (r = append_entry(m, "time", 'x', &msg->time_ms)) < 0 ||
            (r = append_str(m, "type", msg->type)) < 0 ||
            (r = append_str(m, "text", msg->text)) < 0 ||
            (r = append_str(m, "status", msg->status)) < 0)
                return r;
        /* The rest only where it applies (absent means "none" / false), so a
         * plain text message costs no more than it did. */
        if (msg->data && ((r = append_str(m, "data", msg->data)) < 0 ||
                          (r = append_str(m, "description", msg->text)) < 0 ||
                          (r = append_str(m, "extension", msg->extension)) < 0))
                return r;
        /* a file: ours has no url until it is uploaded */
        if (msg->mime) {
                uint64_t size = (uint64_t) msg->size;
                if ((msg->url && (r = append_str(m, "url", msg->url)) < 0) ||
                    (r = append_str(m, "mime", msg->mime)) < 0 ||
                    (r = append_str(m, "name", msg->name)) < 0 ||
                    (msg->size >= 0 && (r = append_entry(m, "size", 't', &size)) < 0) ||
                    (msg->width && (r = append_entry(m, "width", 'u', &msg->width)) < 0) ||
                    (msg->height && (r = append_entry(m, "height", 'u', &msg->height)) < 0) ||
                    (msg->duration_ms && (r = append_entry(m, "duration_ms", 'u', &msg->duration_ms)) < 0) ||
                    (msg->path && (r = append_str(m, "path", msg->path)) < 0))
                        return r;
        }
        if (msg->revoked) {
                int yes = 1;
                if ((r = append_entry(m, "revoked", 'b', &yes)) < 0)
                        return r;
        }
        if (msg->edited) {
                int yes = 1;
                if ((r = append_entry(m, "edited", 'b', &yes)) < 0)
                        return r;
        }
        if (msg->reactions) {
                if ((r = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
                    (r = sd_bus_message_append_basic(m, 's', "reactions")) < 0 ||
                    (r = sd_bus_message_open_container(m, 'v', "a{sas}")) < 0 ||
                    (r = bus_append_reactions(m, msg->reactions)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int bus_append_message_ref(sd_bus_message *m, const StoreMessage *msg) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = append_str(m, "id", msg->id)) < 0 ||
            (r = append_str(m, "conversation", msg->conversation)) < 0 ||
            (r = append_str(m, "direction", store_direction_to_string(msg->direction))) < 0 ||
            (r = append_entry(m, "time", 'x', &msg->time_ms)) < 0 ||
            (r = append_str(m, "type", msg->type)) < 0)
                return r;
        return sd_bus_message_close_container(m);
}

int bus_append_conversation_refs(sd_bus_message *m, GPtrArray *convs) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (guint i = 0; i < convs->len; i++) {
                const StoreConversation *conv = g_ptr_array_index(convs, i);

                if ((r = sd_bus_message_open_container(m, 'a', "{sv}")) < 0 ||
                    (r = append_str(m, "id", conv->id)) < 0 ||
                    (r = append_entry(m, "unread", 'u', &conv->unread)) < 0 ||
                    (r = append_entry(m, "time", 'x', &conv->time_ms)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int bus_append_conversation(sd_bus_message *m, const StoreConversation *conv) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = append_str(m, "id", conv->id)) < 0 ||
            (r = append_str(m, "kind", conv->kind)) < 0 ||
            (r = append_str(m, "name", conv->name)) < 0 ||
            (r = append_entry(m, "unread", 'u', &conv->unread)) < 0 ||
            (r = append_entry(m, "time", 'x', &conv->time_ms)) < 0)
                return r;
        if (conv->last) {
                if ((r = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
                    (r = sd_bus_message_append(m, "s", "last")) < 0 ||
                    (r = sd_bus_message_open_container(m, 'v', "a{sv}")) < 0 ||
                    (r = bus_append_message(m, conv->last)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int bus_append_conversations(sd_bus_message *m, GPtrArray *convs) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (guint i = 0; i < convs->len; i++) {
                r = bus_append_conversation(m, g_ptr_array_index(convs, i));
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int bus_append_messages(sd_bus_message *m, GPtrArray *msgs) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (guint i = 0; i < msgs->len; i++) {
                r = bus_append_message(m, g_ptr_array_index(msgs, i));
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

#define FIELD_WEIGHT 24U        /* key, signature, alignment of one a{sv} entry */

static size_t str_weight(const char *s) {
        return s ? strlen(s) + FIELD_WEIGHT : 0;
}

size_t bus_message_weight(const StoreMessage *msg) {
        return 8 * FIELD_WEIGHT +
               str_weight(msg->id) + str_weight(msg->conversation) + str_weight(msg->sender) +
               str_weight(msg->type) + str_weight(msg->text) + str_weight(msg->status) +
               str_weight(msg->data) + str_weight(msg->extension) + str_weight(msg->reactions) +
               str_weight(msg->url) + str_weight(msg->mime) + str_weight(msg->name) + str_weight(msg->path);
}

size_t bus_conversations_weight(GPtrArray *convs) {
        size_t weight = 0;

        for (guint i = 0; i < convs->len; i++) {
                const StoreConversation *c = g_ptr_array_index(convs, i);
                weight += 5 * FIELD_WEIGHT + str_weight(c->id) + str_weight(c->kind) + str_weight(c->name) +
                          (c->last ? bus_message_weight(c->last) : 0);
        }
        return weight;
}
