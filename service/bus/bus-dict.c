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

static size_t message_full_weight(const StoreMessage *msg);

int bus_append_message(sd_bus_message *m, const StoreMessage *msg) {
        int r;

        /* Sent whole it could take the D-Bus message over dbus-daemon's limit. */
        if (message_full_weight(msg) > BUS_ENTRY_MAX_BYTES)
                return bus_append_message_ref(m, msg);
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

/* --- weights: upper bounds of the bytes on the wire --- */

/* The most an a{sv} entry takes besides its value's own bytes: up to 7 of
 * padding to its 8-byte boundary, the key as a string (4 + at most 12 for
 * "conversation" + 1), the variant's signature (3 for one letter, 8 for
 * "a{sas}"), up to 7 of padding to the value, a string's length and NUL (5). */
#define ENTRY_WEIGHT 48U
/* An a{sv} in an array: padding to it, its length, padding to its first entry. */
#define DICT_WEIGHT 16U
/* XEP-0444 reactions are kept as JSON, sent as a{sas}: each string costs at
 * most 8 bytes besides its own there (a sender 19), and at least 2 in the JSON
 * (its quotes; a sender also its ":[]"), whose strings are never empty. */
#define REACTIONS_JSON_FACTOR 4U

static size_t str_entry_weight(const char *s) {
        return ENTRY_WEIGHT + (s ? strlen(s) : 0);
}

/* What bus_append_message() would take with every field, the same fields in
 * the same cases. */
static size_t message_full_weight(const StoreMessage *msg) {
        size_t w = DICT_WEIGHT +
                   str_entry_weight(msg->id) + str_entry_weight(msg->conversation) +
                   str_entry_weight(msg->sender) + str_entry_weight("out") + ENTRY_WEIGHT /* time */ +
                   str_entry_weight(msg->type) + str_entry_weight(msg->text) + str_entry_weight(msg->status);

        if (msg->data)
                w += str_entry_weight(msg->data) + str_entry_weight(msg->text) + str_entry_weight(msg->extension);
        if (msg->mime)
                w += str_entry_weight(msg->url) + str_entry_weight(msg->mime) + str_entry_weight(msg->name) +
                     4 * ENTRY_WEIGHT /* size, width, height, duration_ms */ + str_entry_weight(msg->path);
        w += (msg->revoked ? ENTRY_WEIGHT : 0) + (msg->edited ? ENTRY_WEIGHT : 0);
        if (msg->reactions)
                w += ENTRY_WEIGHT + REACTIONS_JSON_FACTOR * strlen(msg->reactions);
        return w;
}

static size_t message_ref_weight(const StoreMessage *msg) {
        return DICT_WEIGHT + str_entry_weight(msg->id) + str_entry_weight(msg->conversation) +
               str_entry_weight("out") + ENTRY_WEIGHT + str_entry_weight(msg->type);
}

size_t bus_message_weight(const StoreMessage *msg) {
        size_t w = message_full_weight(msg);
        return w > BUS_ENTRY_MAX_BYTES ? message_ref_weight(msg) : w;
}

static size_t message_item_weight(const void *item) {
        return bus_message_weight(item);
}

/* A conversation without its last message. */
static size_t conversation_item_weight(const void *item) {
        const StoreConversation *c = item;
        return DICT_WEIGHT + str_entry_weight(c->id) + str_entry_weight(c->kind) + str_entry_weight(c->name) +
               2 * ENTRY_WEIGHT;
}

static size_t last_weight(const StoreConversation *c) {
        return c->last ? ENTRY_WEIGHT + bus_message_weight(c->last) : 0;
}

static size_t conversation_ref_item_weight(const void *item) {
        const StoreConversation *c = item;
        return DICT_WEIGHT + str_entry_weight(c->id) + 2 * ENTRY_WEIGHT;
}

size_t bus_conversations_weight(GPtrArray *convs, guint start, guint n) {
        size_t weight = 0;

        for (guint i = start; i < start + n && i < convs->len; i++)
                weight += conversation_item_weight(g_ptr_array_index(convs, i)) +
                          last_weight(g_ptr_array_index(convs, i));
        return weight;
}

/* What a list may weigh: the rest of the bound is for the D-Bus header, the
 * list's own array and what follows it (GetMessages' complete). */
#define LIST_MAX_WEIGHT (BUS_LIST_MAX_BYTES - 4096U)

/* How many of ITEMS from START on fit in LIST_MAX_WEIGHT by their WEIGHT, in
 * order: at least one, however large, or a caller paging by the last one it
 * got could never get past it. *ret_bytes (optional): their weight. */
static guint count_fitting(GPtrArray *items, guint start, size_t (*weight)(const void *item), size_t *ret_bytes) {
        size_t bytes = 0;
        guint n = 0;

        for (guint i = start; i < items->len; i++) {
                size_t w = weight(g_ptr_array_index(items, i));
                if (n > 0 && bytes + w > LIST_MAX_WEIGHT)
                        break;
                bytes += w;
                n++;
        }
        if (ret_bytes)
                *ret_bytes = bytes;
        return n;
}

/* --- lists --- */

int bus_append_conversation_refs(sd_bus_message *m, GPtrArray *convs, guint start) {
        guint n = count_fitting(convs, start, conversation_ref_item_weight, NULL);
        int r;

        r = sd_bus_message_open_container(m, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (guint i = start; i < start + n; i++) {
                const StoreConversation *conv = g_ptr_array_index(convs, i);

                if ((r = sd_bus_message_open_container(m, 'a', "{sv}")) < 0 ||
                    (r = append_str(m, "id", conv->id)) < 0 ||
                    (r = append_entry(m, "unread", 'u', &conv->unread)) < 0 ||
                    (r = append_entry(m, "time", 'x', &conv->time_ms)) < 0 ||
                    (r = sd_bus_message_close_container(m)) < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        return r < 0 ? r : (int) n;
}

static int append_conversation(sd_bus_message *m, const StoreConversation *conv, bool with_last) {
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
        if (conv->last && with_last) {
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

int bus_append_conversations(sd_bus_message *m, GPtrArray *convs, guint start) {
        size_t bytes;
        guint n = count_fitting(convs, start, conversation_item_weight, &bytes);
        /* What the entries leave for last messages: a list of every
         * conversation is worth more than the text of a few of them. */
        size_t room = bytes < LIST_MAX_WEIGHT ? LIST_MAX_WEIGHT - bytes : 0;
        bool with_last = true;
        int r;

        r = sd_bus_message_open_container(m, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (guint i = start; i < start + n; i++) {
                const StoreConversation *conv = g_ptr_array_index(convs, i);
                size_t w = last_weight(conv);

                /* The most recent carry it while it fits, none after the first
                 * that goes without; the first always does, as a page always
                 * has its first message. */
                with_last = with_last && (i == start || w <= room);
                if (with_last)
                        room -= MIN(room, w);
                r = append_conversation(m, conv, with_last);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        return r < 0 ? r : (int) n;
}

int bus_append_messages(sd_bus_message *m, GPtrArray *msgs) {
        guint n = count_fitting(msgs, 0, message_item_weight, NULL);
        int r;

        r = sd_bus_message_open_container(m, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (guint i = 0; i < n; i++) {
                r = bus_append_message(m, g_ptr_array_index(msgs, i));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(m);
        return r < 0 ? r : (int) n;
}
