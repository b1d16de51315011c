/* SPDX-License-Identifier: MIT */

#include "bus-dict.h"

/* One {sv} entry built with the basic calls: sd_bus_message_append()'s format
 * parsing costs more than the data itself, and a flood builds eight of these
 * per message. */
static int append_entry(sd_bus_message *m, const char *key, char type, const void *value) {
        const char contents[2] = { type, 0 };
        int r;

        if ((r = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
            (r = sd_bus_message_append_basic(m, 's', key)) < 0 ||
            (r = sd_bus_message_open_container(m, 'v', contents)) < 0 ||
            (r = sd_bus_message_append_basic(m, type, value)) < 0 ||
            (r = sd_bus_message_close_container(m)) < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int append_str(sd_bus_message *m, const char *key, const char *value) {
        return append_entry(m, key, 's', value ? value : "");
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
