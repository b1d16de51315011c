/* SPDX-License-Identifier: MIT */
/*
 * D-Bus values to json-c, by signature rather than by known keys, so that
 * keys imd adds later pass through to --json output unchanged.
 *
 *   s o g -> string     b -> bool     y n q i u x t h -> integer     d -> double
 *   v -> its contents   a{..} -> object (keys as strings)   other arrays and
 *   structs -> array
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "imctl.h"

static int read_basic(sd_bus_message *m, char type, struct json_object **ret) {
        union {
                uint8_t u8;
                int16_t s16;
                uint16_t u16;
                int32_t s32;
                uint32_t u32;
                int64_t s64;
                uint64_t u64;
                int b;
                double d;
                const char *str;
        } v;
        struct json_object *o;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;

        switch (type) {
        case SD_BUS_TYPE_STRING:
        case SD_BUS_TYPE_OBJECT_PATH:
        case SD_BUS_TYPE_SIGNATURE:
                o = json_object_new_string(v.str);
                break;
        case SD_BUS_TYPE_BOOLEAN:
                o = json_object_new_boolean(v.b);
                break;
        case SD_BUS_TYPE_BYTE:
                o = json_object_new_int64(v.u8);
                break;
        case SD_BUS_TYPE_INT16:
                o = json_object_new_int64(v.s16);
                break;
        case SD_BUS_TYPE_UINT16:
                o = json_object_new_int64(v.u16);
                break;
        case SD_BUS_TYPE_INT32:
        case SD_BUS_TYPE_UNIX_FD:
                o = json_object_new_int64(v.s32);
                break;
        case SD_BUS_TYPE_UINT32:
                o = json_object_new_int64(v.u32);
                break;
        case SD_BUS_TYPE_INT64:
                o = json_object_new_int64(v.s64);
                break;
        case SD_BUS_TYPE_UINT64:
                o = v.u64 <= INT64_MAX ? json_object_new_int64((int64_t) v.u64)
                                       : json_object_new_uint64(v.u64);
                break;
        case SD_BUS_TYPE_DOUBLE:
                o = json_object_new_double(v.d);
                break;
        default:
                return -EBADMSG;
        }
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 1;
}

/* A dictionary key as a JSON object key. */
static int read_key(sd_bus_message *m, char type, char **ret) {
        _cleanup_json_ struct json_object *k = NULL;
        const char *s;
        int r;

        r = read_basic(m, type, &k);
        if (r < 0)
                return r;
        s = json_object_get_type(k) == json_type_string ? json_object_get_string(k)
                                                        : json_object_to_json_string(k);
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int read_dict(sd_bus_message *m, const char *contents, struct json_object **ret) {
        _cleanup_json_ struct json_object *obj = json_object_new_object();
        int r;

        if (!obj)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, contents);
        if (r < 0)
                return r;
        for (;;) {
                _cleanup_free_ char *key = NULL;
                struct json_object *value = NULL;
                const char *entry;
                char type;

                r = sd_bus_message_peek_type(m, &type, &entry);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, entry);
                if (r < 0)
                        return r;
                r = read_key(m, contents[1], &key);
                if (r < 0)
                        return r;
                r = bus_read_json(m, &value);
                if (r < 0)
                        return r;
                if (r == 0)
                        return -EBADMSG;
                json_object_object_add(obj, key, value);
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(obj);
        return 1;
}

static int read_list(sd_bus_message *m, char type, const char *contents, struct json_object **ret) {
        _cleanup_json_ struct json_object *arr = json_object_new_array();
        int r;

        if (!arr)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        for (;;) {
                struct json_object *item = NULL;

                r = bus_read_json(m, &item);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                json_object_array_add(arr, item);
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(arr);
        return 1;
}

/*
 * Reads the next complete value. Returns 1 and sets *ret, 0 at the end of
 * the current container, or a negative errno.
 */
int bus_read_json(sd_bus_message *m, struct json_object **ret) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r;

        switch (type) {
        case SD_BUS_TYPE_VARIANT: {
                struct json_object *inner = NULL;

                r = sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, contents);
                if (r < 0)
                        return r;
                r = bus_read_json(m, &inner);
                if (r < 0)
                        return r;
                if (r == 0)
                        return -EBADMSG;
                r = sd_bus_message_exit_container(m);
                if (r < 0) {
                        json_object_put(inner);
                        return r;
                }
                *ret = inner;
                return 1;
        }
        case SD_BUS_TYPE_ARRAY:
                if (contents[0] == SD_BUS_TYPE_DICT_ENTRY_BEGIN)
                        return read_dict(m, contents, ret);
                return read_list(m, SD_BUS_TYPE_ARRAY, contents, ret);
        case SD_BUS_TYPE_STRUCT:
                return read_list(m, SD_BUS_TYPE_STRUCT, contents, ret);
        default:
                return read_basic(m, type, ret);
        }
}

/* All remaining values of the message (e.g. a signal's arguments) as an array. */
int bus_read_json_args(sd_bus_message *m, struct json_object **ret) {
        _cleanup_json_ struct json_object *arr = json_object_new_array();
        int r;

        if (!arr)
                return -ENOMEM;
        for (;;) {
                struct json_object *item = NULL;

                r = bus_read_json(m, &item);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                json_object_array_add(arr, item);
        }
        *ret = TAKE_PTR(arr);
        return 0;
}
