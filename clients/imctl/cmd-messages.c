/* SPDX-License-Identifier: MIT */
/*
 * Conversation commands: list, history, send, send-custom, resend, revoke, edit,
 * react, fetch, search, emoji, read, typing.
 */
#include <errno.h>
#include <stdio.h>

#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "emoji.h"
#include "imctl.h"

/* History options in the order of the command's option table. */
enum { HISTORY_OPT_LIMIT, HISTORY_OPT_BEFORE };
enum { SEND_CUSTOM_OPT_DESCRIPTION, SEND_CUSTOM_OPT_EXTENSION };
enum { SEARCH_OPT_CONVERSATION, SEARCH_OPT_LIMIT };

static int read_reply_value(sd_bus_message *reply, const char *what, json_type type,
                            struct json_object **ret) {
        int r;

        r = bus_read_json(reply, ret);
        if (r <= 0 || !json_object_is_type(*ret, type)) {
                fprintf(stderr, "imctl: unexpected reply to %s\n", what);
                return IMCTL_EXIT_BUS;
        }
        return IMCTL_EXIT_OK;
}

int cmd_list(struct imctl *ctx, char **args, char **opts) {
        _cleanup_message_ sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *list = NULL;
        int r;

        r = imctl_call_simple(ctx, "GetConversations", &reply, NULL);
        if (r != 0)
                return r;
        r = read_reply_value(reply, "GetConversations", json_type_array, &list);
        if (r != 0)
                return r;

        if (ctx->json)
                r = output_json(list);
        else
                for (size_t i = 0; i < json_object_array_length(list) && r >= 0; i++)
                        r = output_conversation_line(json_object_array_get_idx(list, i));
        if (r < 0)
                return imctl_print_errno("cannot write output", r);
        return IMCTL_EXIT_OK;
}

int cmd_history(struct imctl *ctx, char **args, char **opts) {
        _cleanup_message_ sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *messages = NULL, *complete = NULL, *out = NULL;
        uint32_t limit = IMCTL_HISTORY_DEFAULT_LIMIT;
        const char *before = opts[HISTORY_OPT_BEFORE] ? opts[HISTORY_OPT_BEFORE] : "";
        int r;

        /* validated by the option table */
        if (opts[HISTORY_OPT_LIMIT] && !parse_uint32(opts[HISTORY_OPT_LIMIT], 1, &limit))
                return IMCTL_EXIT_USAGE;

        r = imctl_call_simple(ctx, "GetMessages", &reply, "ssu", args[0], before, limit);
        if (r != 0)
                return r;
        r = read_reply_value(reply, "GetMessages", json_type_array, &messages);
        if (r == 0)
                r = read_reply_value(reply, "GetMessages", json_type_boolean, &complete);
        if (r != 0)
                return r;

        if (ctx->json) {
                out = json_object_new_object();
                if (!out)
                        return imctl_print_errno("cannot build JSON", -ENOMEM);
                json_object_object_add(out, "messages", TAKE_PTR(messages));
                json_object_object_add(out, "complete", TAKE_PTR(complete));
                r = output_json(out);
        } else {
                /* imd returns newest first; a transcript reads oldest first */
                for (size_t i = json_object_array_length(messages); i > 0 && r >= 0; i--)
                        r = output_message_line(json_object_array_get_idx(messages, i - 1));
        }
        if (r < 0)
                return imctl_print_errno("cannot write output", r);
        return IMCTL_EXIT_OK;
}

int print_message_id(struct imctl *ctx, const char *id) {
        _cleanup_json_ struct json_object *out = NULL;
        int r;

        if (ctx->json) {
                out = json_object_new_object();
                if (!out)
                        return imctl_print_errno("cannot build JSON", -ENOMEM);
                json_object_object_add(out, "id", json_object_new_string(id));
                r = output_json(out);
        } else
                r = output_line("%s", id);
        if (r < 0)
                return imctl_print_errno("cannot write output", r);
        return IMCTL_EXIT_OK;
}

/* Methods that return nothing: silence for people (as cp(1)), and for scripts
 * one JSON document all the same, so that every --json run prints one. */
int print_ok(struct imctl *ctx) {
        _cleanup_json_ struct json_object *out = NULL;

        if (!ctx->json)
                return IMCTL_EXIT_OK;
        out = json_object_new_object();
        if (!out)
                return imctl_print_errno("cannot build JSON", -ENOMEM);
        json_object_object_add(out, "ok", json_object_new_boolean(true));
        if (output_json(out) < 0)
                return imctl_print_errno("cannot write output", -errno);
        return IMCTL_EXIT_OK;
}

/* A call without a reply value, then print_ok(). */
static int call_and_ok(struct imctl *ctx, int r) {
        return r != 0 ? r : print_ok(ctx);
}

/* Prints the id a Send* call returned. */
static int print_new_id(struct imctl *ctx, sd_bus_message *reply, const char *method) {
        const char *id;

        if (sd_bus_message_read(reply, "s", &id) < 0) {
                fprintf(stderr, "imctl: unexpected reply to %s\n", method);
                return IMCTL_EXIT_BUS;
        }
        return print_message_id(ctx, id);
}

int cmd_send(struct imctl *ctx, char **args, char **opts) {
        _cleanup_message_ sd_bus_message *reply = NULL;
        g_autofree char *text = emoji_expand_text(args[1]);
        int r;

        r = imctl_call_simple(ctx, "SendText", &reply, "ss", args[0], text);
        if (r != 0)
                return r;
        return print_new_id(ctx, reply, "SendText");
}

int cmd_send_custom(struct imctl *ctx, char **args, char **opts) {
        _cleanup_message_ sd_bus_message *reply = NULL;
        int r;

        /* imd checks the JSON: one place decides what is valid */
        r = imctl_call_simple(ctx, "SendCustom", &reply, "ssss", args[0], args[1],
                              opts[SEND_CUSTOM_OPT_DESCRIPTION] ? opts[SEND_CUSTOM_OPT_DESCRIPTION] : "",
                              opts[SEND_CUSTOM_OPT_EXTENSION] ? opts[SEND_CUSTOM_OPT_EXTENSION] : "");
        if (r != 0)
                return r;
        return print_new_id(ctx, reply, "SendCustom");
}

int cmd_resend(struct imctl *ctx, char **args, char **opts) {
        return call_and_ok(ctx, imctl_call_simple(ctx, "ResendMessage", NULL, "ss", args[0], args[1]));
}

int cmd_revoke(struct imctl *ctx, char **args, char **opts) {
        return call_and_ok(ctx, imctl_call_simple(ctx, "RevokeMessage", NULL, "ss", args[0], args[1]));
}

int cmd_edit(struct imctl *ctx, char **args, char **opts) {
        g_autofree char *text = emoji_expand_text(args[2]);
        return call_and_ok(ctx, imctl_call_simple(ctx, "EditMessage", NULL, "sss", args[0], args[1], text));
}

int cmd_fetch(struct imctl *ctx, char **args, char **opts) {
        _cleanup_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_json_ struct json_object *out = NULL;
        char link[64], path[4096];
        ssize_t n;
        int fd, r;

        r = imctl_new_call(ctx, "FetchMedia", &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append(m, "ss", args[0], args[1]);
        if (r < 0)
                return imctl_print_errno("cannot build the call", r);
        /* a download may take a while */
        r = imctl_call(ctx, m, ctx->timeout_usec ? 0 : IMCTL_FETCH_TIMEOUT_USEC, &reply);
        if (r != 0)
                return r;
        r = sd_bus_message_read(reply, "h", &fd);
        if (r < 0) {
                fprintf(stderr, "imctl: unexpected reply to FetchMedia\n");
                return IMCTL_EXIT_BUS;
        }
        /* the fd is imd's file in its cache: say where it is */
        g_snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof path - 1);
        if (n < 0)
                return imctl_print_errno("cannot tell where the file is", -errno);
        path[n] = 0;
        if (ctx->json) {
                out = json_object_new_object();
                if (!out)
                        return imctl_print_errno("cannot build JSON", -ENOMEM);
                json_object_object_add(out, "path", json_object_new_string(path));
                r = output_json(out);
        } else
                r = output_line("%s", path);
        if (r < 0)
                return imctl_print_errno("cannot write output", r);
        return IMCTL_EXIT_OK;
}

int cmd_search(struct imctl *ctx, char **args, char **opts) {
        _cleanup_message_ sd_bus_message *reply = NULL;
        _cleanup_json_ struct json_object *messages = NULL;
        uint32_t limit = IMCTL_HISTORY_DEFAULT_LIMIT;
        int r;

        if (opts[SEARCH_OPT_LIMIT] && !parse_uint32(opts[SEARCH_OPT_LIMIT], 1, &limit))
                return IMCTL_EXIT_USAGE;
        r = imctl_call_simple(ctx, "SearchMessages", &reply, "ssu", args[0],
                              opts[SEARCH_OPT_CONVERSATION] ? opts[SEARCH_OPT_CONVERSATION] : "", limit);
        if (r != 0)
                return r;
        r = read_reply_value(reply, "SearchMessages", json_type_array, &messages);
        if (r != 0)
                return r;
        if (ctx->json)
                r = output_json(messages);
        else
                for (size_t i = 0; i < json_object_array_length(messages) && r >= 0; i++)
                        r = output_message_line(json_object_array_get_idx(messages, i));
        if (r < 0)
                return imctl_print_errno("cannot write output", r);
        return IMCTL_EXIT_OK;
}

int cmd_react(struct imctl *ctx, char **args, char **opts) {
        _cleanup_message_ sd_bus_message *m = NULL, *reply = NULL;
        g_autofree char *expanded = emoji_expand_text(args[2]);
        g_auto(GStrv) emoji = g_strsplit_set(expanded, " \t", -1);
        GPtrArray *list = g_ptr_array_new();
        int r;

        for (char **e = emoji; *e; e++)
                if (**e)
                        g_ptr_array_add(list, *e);
        g_ptr_array_add(list, NULL);
        r = imctl_new_call(ctx, "React", &m);
        if (r != 0) {
                g_ptr_array_free(list, TRUE);
                return r;
        }
        r = sd_bus_message_append(m, "ss", args[0], args[1]);
        if (r >= 0)
                r = sd_bus_message_append_strv(m, (char **) list->pdata);
        g_ptr_array_free(list, TRUE);
        if (r < 0)
                return imctl_print_errno("cannot build the call", r);
        return call_and_ok(ctx, imctl_call(ctx, m, 0, &reply));
}

int cmd_emoji(struct imctl *ctx, char **args, char **opts) {
        g_autoptr(GError) error = NULL;
        g_autoptr(EmojiTable) t = emoji_table_load(NULL, &error);
        _cleanup_json_ struct json_object *list = NULL;
        const char *search = opts[0];
        int r = 0;

        if (!t) {
                imctl_error_prefix();
                fprintf(stderr, "cannot read the emoji names: %s (Debian package unicode-data)\n",
                        error->message);
                return IMCTL_EXIT_BUS;
        }
        if (ctx->json && !(list = json_object_new_array()))
                return imctl_print_errno("cannot build JSON", -ENOMEM);
        for (const char *const *p = emoji_list(t); *p && r >= 0; p += 2) {
                if (search && !strstr(p[0], search))
                        continue;
                if (ctx->json) {
                        struct json_object *o = json_object_new_object();
                        json_object_object_add(o, "name", json_object_new_string(p[0]));
                        json_object_object_add(o, "emoji", json_object_new_string(p[1]));
                        json_object_array_add(list, o);
                } else
                        r = output_line(":%s: %s", p[0], p[1]);
        }
        if (ctx->json)
                r = output_json(list);
        if (r < 0)
                return imctl_print_errno("cannot write output", r);
        return IMCTL_EXIT_OK;
}

int cmd_read(struct imctl *ctx, char **args, char **opts) {
        return call_and_ok(ctx, imctl_call_simple(ctx, "MarkRead", NULL, "s", args[0]));
}

int cmd_typing(struct imctl *ctx, char **args, char **opts) {
        int typing;

        if (strcmp(args[1], "on") == 0)
                typing = 1;
        else if (strcmp(args[1], "off") == 0)
                typing = 0;
        else
                return imctl_usage_error("typing: expected \"on\" or \"off\", not \"%s\"", args[1]);
        return call_and_ok(ctx, imctl_call_simple(ctx, "SetTyping", NULL, "sb", args[0], typing));
}
