/* SPDX-License-Identifier: MIT */
/*
 * Session commands: login, logout, status, get.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <glib.h>

#include "imctl.h"

/* Login options in the order of the command's option table. */
enum { LOGIN_OPT_URL, LOGIN_OPT_CA_FILE, LOGIN_OPT_REMEMBER };

/* imd opens ca_file from its own working directory: send an absolute path. */
static char *absolute_path(const char *path) {
        g_autofree char *cwd = NULL;

        if (g_path_is_absolute(path))
                return g_strdup(path);
        cwd = g_get_current_dir();
        return g_build_filename(cwd, path, NULL);
}

static int append_options(sd_bus_message *m, char **opts) {
        g_autofree char *ca_file = NULL;
        int r;

        r = sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        if (opts[LOGIN_OPT_URL]) {
                r = sd_bus_message_append(m, "{sv}", "websocket_url", "s", opts[LOGIN_OPT_URL]);
                if (r < 0)
                        return r;
        }
        if (opts[LOGIN_OPT_CA_FILE]) {
                ca_file = absolute_path(opts[LOGIN_OPT_CA_FILE]);
                r = sd_bus_message_append(m, "{sv}", "ca_file", "s", ca_file);
                if (r < 0)
                        return r;
        }
        if (opts[LOGIN_OPT_REMEMBER]) {
                r = sd_bus_message_append(m, "{sv}", "remember", "b", 1);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int cmd_login(struct imctl *ctx, char **args, char **opts) {
        _cleanup_message_ sd_bus_message *m = NULL;
        char *password = NULL;
        size_t len;
        int r;

        r = password_read(&password);
        if (r == -ENODATA)
                return imctl_usage_error("login: no password given on stdin");
        if (r < 0)
                return imctl_print_errno("cannot read the password", r);
        len = strlen(password);

        if (!g_utf8_validate(password, -1, NULL)) {
                r = imctl_usage_error("login: the password is not valid UTF-8");
                goto out;
        }

        r = imctl_new_call(ctx, "Login", &m);
        if (r != 0)
                goto out;
        r = sd_bus_message_append(m, "ss", args[0], password);
        if (r >= 0)
                r = append_options(m, opts);
        if (r < 0) {
                r = imctl_print_errno("cannot build the method call", r);
                goto out;
        }
        /* session setup takes a while: --timeout if given, else 60 s */
        r = imctl_call(ctx, m, ctx->timeout_usec ? ctx->timeout_usec : IMCTL_LOGIN_TIMEOUT_USEC, NULL);
        if (r == 0)
                r = print_ok(ctx);
out:
        /* the call message holds a copy too; sd-bus does not wipe it, we can only wipe ours */
        explicit_bzero(password, len);
        free(password);
        return r;
}

int cmd_logout(struct imctl *ctx, char **args, char **opts) {
        int r = imctl_call_simple(ctx, "Logout", NULL, NULL);

        return r != 0 ? r : print_ok(ctx);
}

static int get_properties(struct imctl *ctx, struct json_object **ret) {
        _cleanup_message_ sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = sd_bus_message_new_method_call(ctx->bus, &m, IM_SERVICE, IM_PATH,
                                           "org.freedesktop.DBus.Properties", "GetAll");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", IM_INTERFACE);
        if (r < 0)
                return imctl_print_errno("cannot build the method call", r);
        r = imctl_call(ctx, m, 0, &reply);
        if (r != 0)
                return r;
        r = bus_read_json(reply, ret);
        if (r <= 0 || !json_object_is_type(*ret, json_type_object))
                return imctl_print_errno("unexpected reply to GetAll", r < 0 ? r : -EBADMSG);
        return IMCTL_EXIT_OK;
}

/* The properties imctl knows, in status's order: the D-Bus name, status's
 * JSON key and label. `get` takes either name; a property imd adds later
 * still shows in status --json under its D-Bus name, and `get` reads it. */
static const struct {
        const char *property;
        const char *json_key;
        const char *label;
} status_fields[] = {
        { "Account",     "account",      "Account" },
        { "NetState",    "net_state",    "State" },
        { "Ready",       "ready",        "Ready" },
        { "UnreadTotal", "unread_total", "Unread" },
        { "Recording",   "recording",    "Recording" },
        { "LastEvent",   "last_event",   "Last event" },
};

static ssize_t find_status_field(const char *name) {
        for (size_t i = 0; i < G_N_ELEMENTS(status_fields); i++)
                if (strcasecmp(name, status_fields[i].property) == 0 ||
                    strcasecmp(name, status_fields[i].json_key) == 0)
                        return (ssize_t) i;
        return -1;
}

/* What deserves attention: the connection's state, an unread count. */
static enum imctl_color value_color(const char *property, struct json_object *v) {
        const char *s = json_object_get_string(v);

        if (strcmp(property, "NetState") == 0)
                return strcmp(s, "connected") == 0 ? COLOR_GOOD :
                       strcmp(s, "connecting") == 0 ? COLOR_WARN : COLOR_BAD;
        if (strcmp(property, "Ready") == 0)
                return json_object_get_boolean(v) ? COLOR_GOOD : COLOR_BAD;
        if (strcmp(property, "UnreadTotal") == 0 && json_object_get_int64(v) > 0)
                return COLOR_UNREAD;
        return COLOR_RESET;
}

static int print_property_line(const char *label, const char *property, struct json_object *v) {
        enum imctl_color c = value_color(property, v);

        return output_line("%s: %s%s%s", label, c == COLOR_RESET ? "" : color_out(c), output_value_text(v),
                           c == COLOR_RESET ? "" : color_out(COLOR_RESET));
}

static int status_json(struct json_object *props) {
        _cleanup_json_ struct json_object *out = json_object_new_object();

        if (!out)
                return -ENOMEM;
        json_object_object_foreach(props, key, value) {
                ssize_t i = find_status_field(key);

                json_object_object_add(out, i >= 0 ? status_fields[i].json_key : key, json_object_get(value));
        }
        return output_json(out);
}

int cmd_status(struct imctl *ctx, char **args, char **opts) {
        _cleanup_json_ struct json_object *props = NULL;
        int r;

        r = get_properties(ctx, &props);
        if (r != 0)
                return r;

        if (ctx->json)
                r = status_json(props);
        else {
                r = 0;
                for (size_t i = 0; i < G_N_ELEMENTS(status_fields) && r >= 0; i++) {
                        struct json_object *v;

                        if (json_object_object_get_ex(props, status_fields[i].property, &v))
                                r = print_property_line(status_fields[i].label, status_fields[i].property, v);
                }
        }
        if (r < 0)
                return imctl_print_errno("cannot write output", r);
        return IMCTL_EXIT_OK;
}

/* The value alone, so that `state=$(imctl get NetState)` needs no parsing. */
int cmd_get(struct imctl *ctx, char **args, char **opts) {
        _cleanup_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_json_ struct json_object *value = NULL, *out = NULL;
        ssize_t i = find_status_field(args[0]);
        const char *property = i >= 0 ? status_fields[i].property : args[0];
        int r;

        r = sd_bus_message_new_method_call(ctx->bus, &m, IM_SERVICE, IM_PATH,
                                           "org.freedesktop.DBus.Properties", "Get");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", IM_INTERFACE, property);
        if (r < 0)
                return imctl_print_errno("cannot build the method call", r);
        r = imctl_call(ctx, m, 0, &reply);
        if (r != 0)
                return r;
        r = bus_read_json(reply, &value);
        if (r <= 0)
                return imctl_print_errno("unexpected reply to Get", r < 0 ? r : -EBADMSG);

        if (ctx->json) {
                out = json_object_new_object();
                if (!out)
                        return imctl_print_errno("cannot build JSON", -ENOMEM);
                json_object_object_add(out, property, json_object_get(value));
                r = output_json(out);
        } else if (json_object_is_type(value, json_type_string))
                r = output_line("%s", json_object_get_string(value));
        else    /* true, false, numbers: as JSON writes them, which scripts compare easily */
                r = output_line("%s", json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN));
        if (r < 0)
                return imctl_print_errno("cannot write output", r);
        return IMCTL_EXIT_OK;
}
