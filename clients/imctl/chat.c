/* SPDX-License-Identifier: MIT */
/*
 * chat: one conversation, interactively. Prints recent history, then every
 * message of the conversation as imd announces it (MessageReceived, both
 * directions), and sends each stdin line with SendText. The user's own lines
 * appear once, when imd echoes them as direction "out".
 *
 * One sd-event loop serves the bus and stdin, so messages print while the
 * user types. At EOF we wait for outstanding SendText replies, and briefly
 * for their echoes, so that `printf 'hi\n' | imctl chat bob` shows "hi".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "emoji.h"
#include "jid.h"
#include "loop.h"

#define STDIN_CHUNK 4096
/* bound on a line still being typed; SendText allows 64 KiB of text */
#define MAX_LINE (64 * 1024 + 2)
#define ECHO_WAIT_USEC (2ULL * 1000000ULL)

struct chat {
        struct imctl *ctx;
        sd_event *event;
        char *conversation;     /* as imd names it (jid_normalize_bare()), else as typed */
        GHashTable *printed;    /* ids already shown */
        GHashTable *awaiting;   /* ids we sent whose echo has not been shown */
        GString *line;
        bool skipping;          /* a line grew past MAX_LINE: input is dropped up to its newline */
        sd_event_source *input;
        sd_event_source *linger;
        unsigned pending_sends;
        bool eof;
        int failed;             /* the exit code of the first failure; 0: none */
};

static void chat_check_done(struct chat *chat);

static bool is_this_conversation(struct chat *chat, struct json_object *message) {
        const char *conv = json_get_string(message, "conversation", NULL);

        return conv && strcmp(conv, chat->conversation) == 0;
}

/* The id imd gives the conversation with @typed: Unicode lower case and NFC,
 * by imd's own code (strcasecmp() knew only ASCII, so "Ünal@x" matched none
 * of the messages of "ünal@x"). A JID imd would refuse stays as typed, for
 * imd to say why. */
static char *conversation_id(const char *typed) {
        char *id = jid_normalize_bare(typed);

        return id ? id : g_strdup(typed);
}

/* Shows a message unless it was shown already; false if stdout is gone. */
static bool chat_show(struct chat *chat, struct json_object *message) {
        const char *id = json_get_string(message, "id", NULL);
        int r;

        if (id) {
                if (g_hash_table_contains(chat->printed, id))
                        return true;
                g_hash_table_add(chat->printed, g_strdup(id));
                g_hash_table_remove(chat->awaiting, id);
        }
        r = chat->ctx->json ? output_json(message) : output_message_line(message);
        if (r < 0) {
                imctl_print_errno("cannot write output", r);
                return false;
        }
        return true;
}

static void chat_mark_read_async(struct chat *chat) {
        /* errors (NotFound for a conversation imd does not know yet) do not matter */
        (void) sd_bus_call_method_async(chat->ctx->bus, NULL, IM_SERVICE, IM_PATH, IM_INTERFACE,
                                        "MarkRead", NULL, NULL, "s", chat->conversation);
}

static int on_message_received(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct chat *chat = userdata;
        _cleanup_json_ struct json_object *message = NULL;
        int r;

        if (!imctl_from_daemon(chat->ctx, m))
                return 0;
        r = bus_read_json(m, &message);
        if (r <= 0 || !json_object_is_type(message, json_type_object))
                return 0;
        if (!is_this_conversation(chat, message))
                return 0;
        if (!chat_show(chat, message))
                return sd_event_exit(chat->event, IMCTL_EXIT_BUS);
        if (strcmp(json_get_string(message, "direction", ""), "in") == 0)
                chat_mark_read_async(chat);
        chat_check_done(chat);
        return 0;
}

static int on_daemon_lost(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct chat *chat = userdata;

        if (!imctl_name_owner_lost(m))
                return 0;
        fprintf(stderr, "imctl: imd left the bus\n");
        return sd_event_exit(chat->event, IMCTL_EXIT_BUS);
}

static int on_send_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        struct chat *chat = userdata;
        const char *id;

        chat->pending_sends--;
        if (sd_bus_message_is_method_error(m, NULL)) {
                int code = imctl_bus_failure(sd_bus_message_get_error(m), -EIO);

                if (!chat->failed)
                        chat->failed = code;
        } else if (sd_bus_message_read(m, "s", &id) > 0 && !g_hash_table_contains(chat->printed, id))
                g_hash_table_add(chat->awaiting, g_strdup(id));
        chat_check_done(chat);
        return 0;
}

static void chat_send(struct chat *chat, const char *line) {
        _cleanup_message_ sd_bus_message *m = NULL;
        g_autofree char *text = NULL;
        int r;

        if (!g_utf8_validate(line, -1, NULL)) {
                fprintf(stderr, "imctl: not sent: the line is not valid UTF-8\n");
                if (!chat->failed)
                        chat->failed = IMCTL_EXIT_BUS;
                return;
        }
        text = emoji_expand_text(line);
        r = sd_bus_message_new_method_call(chat->ctx->bus, &m, IM_SERVICE, IM_PATH, IM_INTERFACE,
                                           "SendText");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", chat->conversation, text);
        if (r >= 0)
                r = sd_bus_call_async(chat->ctx->bus, NULL, m, on_send_reply, chat,
                                      chat->ctx->timeout_usec);
        if (r < 0) {
                if (!chat->failed)
                        chat->failed = imctl_print_errno("cannot send", r);
                return;
        }
        chat->pending_sends++;
}

static void chat_take_line(struct chat *chat, size_t len) {
        g_autofree char *text = g_strndup(chat->line->str, len);

        if (len > 0 && text[len - 1] == '\r')
                text[len - 1] = '\0';
        if (text[0])
                chat_send(chat, text);
}

/* A line too long to send is dropped whole: sending its tail, as what
 * follows the cut, would be a message the user never typed. */
static void chat_discard_line(struct chat *chat) {
        fprintf(stderr, "imctl: not sent: the line is longer than 64 KiB\n");
        if (!chat->failed)
                chat->failed = IMCTL_EXIT_BUS;
        g_string_truncate(chat->line, 0);
        chat->skipping = true;
}

/* One piece of input up to a newline (@complete) or the end of the chunk. */
static void chat_input_piece(struct chat *chat, const char *piece, size_t len, bool complete) {
        if (!chat->skipping) {
                if (chat->line->len + len > MAX_LINE)
                        chat_discard_line(chat);
                else
                        g_string_append_len(chat->line, piece, (gssize) len);
        }
        if (!complete)
                return;
        if (!chat->skipping)
                chat_take_line(chat, chat->line->len);
        g_string_truncate(chat->line, 0);
        chat->skipping = false;
}

static void chat_input(struct chat *chat, const char *buf, size_t n) {
        while (n > 0) {
                const char *nl = memchr(buf, '\n', n);
                size_t len = nl ? (size_t) (nl - buf) : n;

                chat_input_piece(chat, buf, len, nl != NULL);
                if (nl)
                        len++;
                buf += len;
                n -= len;
        }
}

static void chat_end_input(struct chat *chat) {
        /* a last line without a newline is still a line */
        if (chat->line->len > 0 && !chat->skipping)
                chat_take_line(chat, chat->line->len);
        g_string_truncate(chat->line, 0);
        chat->eof = true;
        sd_event_source_set_enabled(chat->input, SD_EVENT_OFF);
        chat_check_done(chat);
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct chat *chat = userdata;
        char buf[STDIN_CHUNK];
        ssize_t n;

        n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n < 0)
                fprintf(stderr, "imctl: cannot read stdin: %s\n", strerror(errno));
        if (n <= 0) {
                chat_end_input(chat);
                return 0;
        }
        chat_input(chat, buf, (size_t) n);
        return 0;
}

/* epoll refuses regular files and /dev/null; they are always readable anyway */
static int on_stdin_defer(sd_event_source *s, void *userdata) {
        return on_stdin(s, STDIN_FILENO, 0, userdata);
}

static int on_linger_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct chat *chat = userdata;

        return sd_event_exit(chat->event, chat->failed);
}

static void chat_check_done(struct chat *chat) {
        if (!chat->eof || chat->pending_sends > 0)
                return;
        if (g_hash_table_size(chat->awaiting) == 0) {
                sd_event_exit(chat->event, chat->failed);
                return;
        }
        if (!chat->linger &&
            sd_event_add_time_relative(chat->event, &chat->linger, CLOCK_MONOTONIC, ECHO_WAIT_USEC,
                                       0, on_linger_timeout, chat) < 0)
                sd_event_exit(chat->event, chat->failed);
}

static int chat_show_history(struct chat *chat) {
        _cleanup_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_message_ sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_json_ struct json_object *messages = NULL;
        int r;

        r = sd_bus_message_new_method_call(chat->ctx->bus, &m, IM_SERVICE, IM_PATH, IM_INTERFACE,
                                           "GetMessages");
        if (r >= 0)
                r = sd_bus_message_append(m, "ssu", chat->conversation, "", IMCTL_CHAT_HISTORY);
        if (r < 0)
                return imctl_print_errno("cannot build the method call", r);
        r = sd_bus_call(chat->ctx->bus, m, chat->ctx->timeout_usec, &error, &reply);
        if (r < 0) {
                /* a new conversation has no history yet */
                if (sd_bus_error_has_name(&error, "org.example.IM.Error.NotFound"))
                        return IMCTL_EXIT_OK;
                return imctl_bus_failure(&error, r);
        }
        r = bus_read_json(reply, &messages);
        if (r <= 0 || !json_object_is_type(messages, json_type_array)) {
                fprintf(stderr, "imctl: unexpected reply to GetMessages\n");
                return IMCTL_EXIT_BUS;
        }
        for (size_t i = json_object_array_length(messages); i > 0; i--)
                if (!chat_show(chat, json_object_array_get_idx(messages, i - 1)))
                        return IMCTL_EXIT_BUS;
        return IMCTL_EXIT_OK;
}

static void chat_mark_read(struct chat *chat) {
        _cleanup_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(chat->ctx->bus, IM_SERVICE, IM_PATH, IM_INTERFACE, "MarkRead",
                               &error, NULL, "s", chat->conversation);
        if (r < 0 && !sd_bus_error_has_name(&error, "org.example.IM.Error.NotFound"))
                imctl_print_bus_error(&error, r);
}

static int chat_watch_stdin(struct chat *chat) {
        int r;

        r = sd_event_add_io(chat->event, &chat->input, STDIN_FILENO, EPOLLIN, on_stdin, chat);
        if (r == -EPERM)
                r = sd_event_add_defer(chat->event, &chat->input, on_stdin_defer, chat);
        if (r >= 0)
                r = sd_event_source_set_enabled(chat->input, SD_EVENT_ON);
        if (r < 0)
                return imctl_print_errno("cannot watch stdin", r);
        return IMCTL_EXIT_OK;
}

int cmd_chat(struct imctl *ctx, char **args, char **opts) {
        struct chat chat = {
                .ctx = ctx,
                .conversation = conversation_id(args[0]),
                .printed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
                .awaiting = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
                .line = g_string_new(NULL),
        };
        int r;

        r = loop_new(ctx, &chat.event);
        if (r != 0)
                goto out;

        /* subscribe before reading history; chat_show() drops the overlap by id */
        r = sd_bus_match_signal(ctx->bus, NULL, IM_SERVICE, IM_PATH, IM_INTERFACE, "MessageReceived",
                                on_message_received, &chat);
        if (r < 0) {
                r = imctl_print_errno("cannot subscribe to MessageReceived", r);
                goto out;
        }
        r = imctl_watch_daemon(ctx, on_daemon_lost, &chat);
        if (r == 0)
                r = chat_show_history(&chat);
        if (r != 0)
                goto out;
        chat_mark_read(&chat);

        r = chat_watch_stdin(&chat);
        if (r == 0)
                r = loop_run(ctx, chat.event);
out:
        /* the bus outlives us in main(): drop our callbacks' userdata first */
        sd_bus_detach_event(ctx->bus);
        sd_event_source_unref(chat.input);
        sd_event_source_unref(chat.linger);
        sd_event_unref(chat.event);
        g_hash_table_destroy(chat.printed);
        g_hash_table_destroy(chat.awaiting);
        g_string_free(chat.line, TRUE);
        g_free(chat.conversation);
        return r;
}
