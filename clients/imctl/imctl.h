/* SPDX-License-Identifier: MIT */
/*
 * imctl — command-line client of imd (org.example.IM), public D-Bus API only.
 *
 * Shared declarations of the command modules. Commands return an exit code:
 * IMCTL_EXIT_OK, IMCTL_EXIT_BUS (a D-Bus error, already printed) or
 * IMCTL_EXIT_USAGE (bad arguments, already printed).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <json-c/json.h>
#include <systemd/sd-bus.h>

#define IM_SERVICE   "org.example.IM"
#define IM_PATH      "/org/example/IM"
#define IM_INTERFACE "org.example.IM"

enum {
        IMCTL_EXIT_OK = 0,
        IMCTL_EXIT_BUS = 1,
        IMCTL_EXIT_USAGE = 2,
};

/* Method-call timeout of Login, which waits for the whole session setup. */
#define IMCTL_LOGIN_TIMEOUT_USEC (60ULL * 1000000ULL)
#define IMCTL_HISTORY_DEFAULT_LIMIT 20U
#define IMCTL_CHAT_HISTORY 20U
/* Method-call timeout of FetchMedia, which waits for the download. */
#define IMCTL_FETCH_TIMEOUT_USEC (300ULL * 1000000ULL)
/* Method-call timeout of SendFile, which copies the file before replying. */
#define IMCTL_SEND_FILE_TIMEOUT_USEC (300ULL * 1000000ULL)

struct imctl {
        sd_bus *bus;
        bool json;
        uint64_t timeout_usec; /* 0: sd-bus default, unless a command has its own */
};

/* Local cleanup helpers: sd-bus's public header does not export _cleanup_. */
static inline void imctl_bus_message_unrefp(sd_bus_message **m) {
        sd_bus_message_unref(*m);
}
static inline void imctl_bus_error_freep(sd_bus_error *e) {
        sd_bus_error_free(e);
}
static inline void imctl_json_putp(struct json_object **o) {
        json_object_put(*o);
}
static inline void imctl_freep(void *p) {
        free(*(void **) p);
}
static inline void imctl_closep(int *fd) {
        if (*fd >= 0)
                close(*fd);
}
#define _cleanup_message_ __attribute__((cleanup(imctl_bus_message_unrefp)))
#define _cleanup_error_   __attribute__((cleanup(imctl_bus_error_freep)))
#define _cleanup_json_    __attribute__((cleanup(imctl_json_putp)))
#define _cleanup_free_    __attribute__((cleanup(imctl_freep)))
#define _cleanup_close_   __attribute__((cleanup(imctl_closep)))

static inline void *imctl_take_ptr(void *pp) {
        void **p = pp, *v = *p;
        *p = NULL;
        return v;
}
#define TAKE_PTR(p) imctl_take_ptr(&(p))

/* imctl.c: the bus connection, calls and errors */
int imctl_open_bus(struct imctl *ctx);
int imctl_new_call(struct imctl *ctx, const char *member, sd_bus_message **ret);
int imctl_call(struct imctl *ctx, sd_bus_message *m, uint64_t usec, sd_bus_message **reply);
int imctl_call_simple(struct imctl *ctx, const char *member, sd_bus_message **reply,
                      const char *types, ...);
void imctl_print_bus_error(const sd_bus_error *error, int r);
int imctl_print_errno(const char *what, int r);
int imctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool imctl_error_is_no_daemon(const sd_bus_error *error);
int imctl_check_daemon(struct imctl *ctx);
int imctl_watch_daemon(struct imctl *ctx, sd_bus_message_handler_t lost, void *userdata);
bool imctl_name_owner_lost(sd_bus_message *m);

/* dict.c: D-Bus values to json-c, generically */
int bus_read_json(sd_bus_message *m, struct json_object **ret);
int bus_read_json_args(sd_bus_message *m, struct json_object **ret);

/* output.c: text and JSON rendering */
int output_json(struct json_object *o);
int output_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *json_get_string(struct json_object *o, const char *key, const char *fallback);
int64_t json_get_int(struct json_object *o, const char *key, int64_t fallback);
bool json_get_bool(struct json_object *o, const char *key, bool fallback);
void output_format_time(int64_t unix_ms, char buf[static 16]);
int output_message_line(struct json_object *message);
int output_conversation_line(struct json_object *conversation);
char *output_message_summary(struct json_object *message);
/* the width of the terminal on stderr, 80 when unknown (progress lines) */
unsigned output_terminal_columns(void);

/* cmd-messages.c: a new message's id, as a line or {"id": ID} */
int print_message_id(struct imctl *ctx, const char *id);

/* password.c */
int password_read(char **ret);

/* command families */
int cmd_login(struct imctl *ctx, char **args, char **opts);
int cmd_logout(struct imctl *ctx, char **args, char **opts);
int cmd_status(struct imctl *ctx, char **args, char **opts);
int cmd_list(struct imctl *ctx, char **args, char **opts);
int cmd_history(struct imctl *ctx, char **args, char **opts);
int cmd_send(struct imctl *ctx, char **args, char **opts);
int cmd_read(struct imctl *ctx, char **args, char **opts);
int cmd_typing(struct imctl *ctx, char **args, char **opts);
int cmd_send_custom(struct imctl *ctx, char **args, char **opts);
int cmd_revoke(struct imctl *ctx, char **args, char **opts);
int cmd_edit(struct imctl *ctx, char **args, char **opts);
int cmd_emoji(struct imctl *ctx, char **args, char **opts);
int cmd_react(struct imctl *ctx, char **args, char **opts);
int cmd_search(struct imctl *ctx, char **args, char **opts);
int cmd_fetch(struct imctl *ctx, char **args, char **opts);
int cmd_send_file(struct imctl *ctx, char **args, char **opts);
int cmd_record(struct imctl *ctx, char **args, char **opts);
int cmd_resend(struct imctl *ctx, char **args, char **opts);
int cmd_monitor(struct imctl *ctx, char **args, char **opts);
int cmd_chat(struct imctl *ctx, char **args, char **opts);

/* number parsing shared by the option parsers; false on a bad number */
bool parse_seconds(const char *s, uint64_t *ret_usec);
bool parse_uint32(const char *s, uint32_t min, uint32_t *ret);
