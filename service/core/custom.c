/* SPDX-License-Identifier: MIT */

#include <string.h>
#include <json-c/json.h>

#include "custom.h"

/* json-c accepts single-quoted object keys even in strict mode (0.16); JSON
 * (RFC 8259) does not, and the peer's parser may not. A quote outside a
 * double-quoted string is such a key. */
static bool has_single_quote_outside_strings(const char *data) {
        bool in_string = false;

        for (const char *p = data; *p; p++) {
                if (in_string) {
                        if (*p == '\\' && p[1])
                                p++;
                        else if (*p == '"')
                                in_string = false;
                } else if (*p == '"')
                        in_string = true;
                else if (*p == '\'')
                        return true;
        }
        return false;
}

bool custom_data_valid(const char *data) {
        struct json_tokener *tok;
        struct json_object *obj;
        size_t len;
        bool ok;

        if (!data)
                return false;
        len = strlen(data);
        if (len == 0 || len > CUSTOM_DATA_MAX || has_single_quote_outside_strings(data))
                return false;
        tok = json_tokener_new_ex(CUSTOM_DATA_MAX_DEPTH);
        if (!tok)
                return false;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        /* -1: up to the NUL, which also ends a number at the very end ("1") */
        obj = json_tokener_parse_ex(tok, data, -1);
        ok = json_tokener_get_error(tok) == json_tokener_success;     /* "null" parses to NULL */
        if (ok) {
                /* the parser stops after the first value: the rest must be blank */
                for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                        if (!strchr(" \t\r\n", data[i])) {
                                ok = false;
                                break;
                        }
        }
        json_object_put(obj);
        json_tokener_free(tok);
        return ok;
}
