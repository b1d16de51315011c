/* SPDX-License-Identifier: MIT */
/*
 * imctl — command-line client of imd (org.example.IM), public D-Bus API only.
 *
 * Shared declarations of the command modules. Commands return an exit code
 * (the table below; the message is already printed on stderr). An error a
 * D-Bus call returned becomes its code in one place, imctl_exit_code().
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib.h>
#include <json-c/json.h>
#include <systemd/sd-bus.h>

#define IM_SERVICE   "org.example.IM"
#define IM_PATH      "/org/example/IM"
#define IM_INTERFACE "org.example.IM"

/* The exit codes, as documented in imctl(1) and `imctl help` (errors.c has
 * their descriptions). Scripts branch on them: keep the numbers stable. */
enum {
        IMCTL_EXIT_OK = 0,
        IMCTL_EXIT_BUS = 1,             /* any other failure: a daemon error, a lost bus, output */
        IMCTL_EXIT_USAGE = 2,           /* imctl's own command line was wrong; nothing was called */
        IMCTL_EXIT_NO_DAEMON = 3,       /* no bus, or nobody owns org.example.IM (nor can activate it) */
        IMCTL_EXIT_NOT_FOUND = 4,       /* org.example.IM.Error.NotFound: no such message, conversation, ... */
        IMCTL_EXIT_INVALID = 5,         /* org.example.IM.Error.InvalidArgument: imd refused an argument */
        IMCTL_EXIT_TIMEOUT = 6,         /* no answer in time (--timeout), or imd's own Timeout */
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
        char *daemon_owner;    /* imd's unique name, once asked (imctl_from_daemon) */
};

/* One event of imd: a signal as it arrives (monitor) or as GetEventsSince
 * kept it (events). number is the signal's D-Bus serial, 0 when unknown. */
struct imctl_event {
        uint64_t number;
        const char *member;
        struct json_object *args;       /* the signal's arguments, a JSON array */
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

/* imctl.c: the bus connection and calls */
int imctl_open_bus(struct imctl *ctx);
int imctl_new_call(struct imctl *ctx, const char *member, sd_bus_message **ret);
int imctl_call(struct imctl *ctx, sd_bus_message *m, uint64_t usec, sd_bus_message **reply);
int imctl_call_simple(struct imctl *ctx, const char *member, sd_bus_message **reply,
                      const char *types, ...);
int imctl_check_daemon(struct imctl *ctx);
int imctl_watch_daemon(struct imctl *ctx, sd_bus_message_handler_t lost, void *userdata);
bool imctl_name_owner_lost(sd_bus_message *m);
/* Whether a signal comes from imd itself: sd-bus does not check a match's
 * sender= against a well-known name, and anyone may send a signal straight
 * to us. imctl exits when imd goes, so its unique name is asked once. */
bool imctl_from_daemon(struct imctl *ctx, sd_bus_message *m);

/* errors.c: messages on stderr and the exit codes */
struct imctl_exit_info {
        int code;
        const char *name;               /* for --json help */
        const char *meaning;
};
extern const struct imctl_exit_info imctl_exit_table[];
extern const size_t imctl_exit_table_len;
/* The exit code of a failed call: @error as returned (may be unset), @r its errno. */
int imctl_exit_code(const sd_bus_error *error, int r);
void imctl_print_bus_error(const sd_bus_error *error, int r);
/* Prints the error and returns its exit code. */
int imctl_bus_failure(const sd_bus_error *error, int r);
int imctl_print_errno(const char *what, int r);
int imctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "imctl: " on stderr, red on a terminal: the start of every error line */
void imctl_error_prefix(void);

/* color.c: colour only for a terminal and never with NO_COLOR (unless --color=always) */
enum imctl_color_mode {
        IMCTL_COLOR_AUTO,
        IMCTL_COLOR_ALWAYS,
        IMCTL_COLOR_NEVER,
};
enum imctl_color {
        COLOR_RESET,
        COLOR_DIM,              /* times, [revoked], secondary text */
        COLOR_BOLD,             /* names: conversations, events */
        COLOR_INCOMING,         /* the sender of a received message */
        COLOR_OUTGOING,         /* our own messages */
        COLOR_UNREAD,           /* a non-zero unread count */
        COLOR_GOOD,             /* connected, yes */
        COLOR_WARN,             /* connecting */
        COLOR_BAD,              /* disconnected, errors */
};
bool color_parse_mode(const char *s, enum imctl_color_mode *ret);
void color_init(enum imctl_color_mode mode);
/* the escape sequence for @c on stdout or stderr, "" when that stream gets no colour */
const char *color_out(enum imctl_color c);
const char *color_err(enum imctl_color c);

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
/* a property's value for people: yes/no, (none) for "", numbers and strings as they are */
const char *output_value_text(struct json_object *v);
int output_conversation_line(struct json_object *conversation);
char *output_message_summary(struct json_object *message);
/* C0, DEL and C1 control characters of @s become spaces, in place */
void output_strip_controls(char *s);
/* @text appended to @s with its control characters as spaces: for any
 * string from imd or a peer in a line of text */
void output_append_text(GString *s, const char *text);
/* the width of the terminal on stderr, 80 when unknown (progress lines) */
unsigned output_terminal_columns(void);

/* cmd-messages.c: a new message's id, as a line or {"id": ID} */
int print_message_id(struct imctl *ctx, const char *id);

/* monitor.c: one event, as a line for people or as JSON (monitor's shape:
 * {"number":N,"event":NAME,<named arguments>}); a negative errno if stdout failed */
int event_print(struct imctl *ctx, const struct imctl_event *ev);
/* the text form alone, for `imctl events` */
int event_print_text(const struct imctl_event *ev, bool with_number);
/* signals that only describe a moment: imd does not keep them for GetEventsSince */
bool event_is_momentary(const char *member);

/* cmd-events.c: GetEventsSince(@after), @each called for every event in order
 * (a negative errno from it stops, as a write error); *ret_last gets the
 * reply's last. An @after newer than imd's last (imd restarted: numbers
 * start again) fetches from 0, with a warning on stderr. An exit code. */
typedef int (*imctl_event_handler)(struct imctl *ctx, const struct imctl_event *ev, void *userdata);
int events_fetch(struct imctl *ctx, uint64_t after, imctl_event_handler each, void *userdata,
                 uint64_t *ret_last);

/* cmd-messages.c: a call that returns nothing succeeded: {"ok":true} with --json */
int print_ok(struct imctl *ctx);

/* password.c */
int password_read(char **ret);

/* command families */
int cmd_login(struct imctl *ctx, char **args, char **opts);
int cmd_logout(struct imctl *ctx, char **args, char **opts);
int cmd_status(struct imctl *ctx, char **args, char **opts);
int cmd_get(struct imctl *ctx, char **args, char **opts);
int cmd_events(struct imctl *ctx, char **args, char **opts);
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
bool parse_uint64(const char *s, uint64_t *ret);
