/* SPDX-License-Identifier: MIT */

#include <glib.h>
#include <json-c/json.h>

#include "reactions.h"

char *reactions_update(const char *current, const char *sender, const char *const *reactions, size_t n) {
        struct json_object *all = current ? json_tokener_parse(current) : NULL;
        char *out = NULL;

        if (!json_object_is_type(all, json_type_object)) {
                json_object_put(all);
                all = json_object_new_object();
        }
        if (!all)
                return NULL;
        if (n == 0)
                json_object_object_del(all, sender);
        else {
                struct json_object *list = json_object_new_array_ext((int) n);
                for (size_t i = 0; list && i < n; i++)
                        json_object_array_add(list, json_object_new_string(reactions[i]));
                if (list)
                        json_object_object_add(all, sender, list);
        }
        if (json_object_object_length(all) > 0)
                out = g_strdup(json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN |
                                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(all);
        return out;
}
