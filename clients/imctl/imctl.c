/* SPDX-License-Identifier: MIT */
/*
 * imctl: entry point. Global options, the command table, argument checking
 * (done before anything touches the bus) and the shared call/error helpers.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "imctl.h"

#define MAX_COMMAND_OPTIONS 4

enum option_kind {
        OPTION_STRING,          /* any non-empty value */
        OPTION_COUNT,           /* an integer in 1..UINT32_MAX */
        OPTION_SECONDS,         /* a positive decimal number of seconds: 3, 0.5 (parse_seconds()) */
        OPTION_NUMBER,          /* an integer in 0..UINT64_MAX (an event number) */
        OPTION_FLAG,            /* no value; the command gets the option's name when given */
};

struct command_option {
        const char *name;
        enum option_kind kind;
};

struct command {
        const char *name;
        const char *args;               /* usage text after the name */
        unsigned n_args;                /* exact number of positional arguments */
        /* the position (from 1) of an argument of free text, taken as written
         * even when it starts with "--" (only "--" itself ends the options):
         * `imctl send "$conv" "$text"` must send any text; 0: none */
        unsigned text_arg;
        /* the command gets the options' values in this order, NULL when not given */
        struct command_option options[MAX_COMMAND_OPTIONS];
        int (*run)(struct imctl *ctx, char **args, char **opts);
        const char *summary;
        /* not connected to the bus first: needs none (help, emoji), or checks
         * local arguments and then calls imctl_open_bus() itself (send-file, record) */
        bool local;
};

static int cmd_help(struct imctl *ctx, char **args, char **opts);

static const struct command commands[] = {
        { .name = "login", .args = "JID [--url WS_URL] [--ca-file FILE] [--remember]", .n_args = 1,
          .options = { { "--url", OPTION_STRING }, { "--ca-file", OPTION_STRING },
                       { "--remember", OPTION_FLAG } },
          .run = cmd_login, .summary = "Log in; the password is read from stdin (or the tty)" },
        { .name = "logout", .args = "",
          .run = cmd_logout, .summary = "Log out" },
        { .name = "status", .args = "",
          .run = cmd_status, .summary = "Show account, connection state, unread count, ..." },
        { .name = "get", .args = "PROPERTY", .n_args = 1,
          .run = cmd_get, .summary = "Print one property (NetState, Ready, Account, UnreadTotal, ...)" },
        { .name = "list", .args = "",
          .run = cmd_list, .summary = "List conversations" },
        { .name = "history", .args = "CONV [--limit N] [--before ID]", .n_args = 1,
          .options = { { "--limit", OPTION_COUNT }, { "--before", OPTION_STRING } },
          .run = cmd_history, .summary = "Show messages of a conversation (default 20)" },
        { .name = "send", .args = "CONV TEXT", .n_args = 2, .text_arg = 2,
          .run = cmd_send, .summary = "Send a text message" },
        { .name = "send-custom", .args = "CONV JSON [--description TEXT] [--extension TEXT]", .n_args = 2,
          .text_arg = 2,
          .options = { { "--description", OPTION_STRING }, { "--extension", OPTION_STRING } },
          .run = cmd_send_custom, .summary = "Send a custom message (JSON data)" },
        { .name = "send-file", .args = "CONV PATH [--name NAME] [--mime TYPE] [--type TYPE] [--no-wait]",
          .n_args = 2,
          .options = { { "--name", OPTION_STRING }, { "--mime", OPTION_STRING },
                       { "--type", OPTION_STRING }, { "--no-wait", OPTION_FLAG } },
          .run = cmd_send_file, .summary = "Send a file; waits until it is uploaded and sent",
          .local = true },
        { .name = "record", .args = "CONV [--duration SECONDS]", .n_args = 1,
          .options = { { "--duration", OPTION_SECONDS } },
          .run = cmd_record, .summary = "Record and send a voice message (Enter sends, c/Esc cancels)",
          .local = true },
        { .name = "resend", .args = "CONV ID", .n_args = 2,
          .run = cmd_resend, .summary = "Try a failed message (a file's upload) again" },
        { .name = "emoji", .args = "[--search WORD]",
          .options = { { "--search", OPTION_STRING } },
          .run = cmd_emoji, .summary = "List the :shortcode: names send, edit and chat expand",
          .local = true },
        { .name = "fetch", .args = "CONV ID", .n_args = 2,
          .run = cmd_fetch, .summary = "Download a received file; prints where it is" },
        { .name = "search", .args = "WORDS [--conversation CONV] [--limit N]", .n_args = 1, .text_arg = 1,
          .options = { { "--conversation", OPTION_STRING }, { "--limit", OPTION_COUNT } },
          .run = cmd_search, .summary = "Find messages holding every word (newest first)" },
        { .name = "react", .args = "CONV ID 'EMOJI ...'", .n_args = 3, .text_arg = 3,
          .run = cmd_react, .summary = "Set your reactions to a message ('' takes them back)" },
        { .name = "revoke", .args = "CONV ID", .n_args = 2,
          .run = cmd_revoke, .summary = "Revoke one of your messages (within the revoke window)" },
        { .name = "edit", .args = "CONV ID TEXT", .n_args = 3, .text_arg = 3,
          .run = cmd_edit, .summary = "Correct the text of one of your messages" },
        { .name = "read", .args = "CONV", .n_args = 1,
          .run = cmd_read, .summary = "Mark a conversation read" },
        { .name = "typing", .args = "CONV on|off", .n_args = 2,
          .run = cmd_typing, .summary = "Tell the peer you are typing, or stopped" },
        { .name = "monitor", .args = "[--since N]",
          .options = { { "--since", OPTION_NUMBER } },
          .run = cmd_monitor, .summary = "Print events until interrupted (first those after N)" },
        { .name = "events", .args = "[--since N]",
          .options = { { "--since", OPTION_NUMBER } },
          .run = cmd_events, .summary = "Print the events imd kept (after number N)" },
        { .name = "chat", .args = "CONV", .n_args = 1,
          .run = cmd_chat, .summary = "Interactive chat: stdin lines are sent, messages printed" },
        { .name = "help", .args = "",
          .run = cmd_help, .summary = "Show this help" },
};

static void usage(FILE *f) {
        fprintf(f,
                "Usage: imctl [--json] [--timeout SECONDS] [--color[=WHEN]] COMMAND [ARGS...]\n"
                "\n"
                "Options:\n"
                "  --json               Print JSON (monitor, events and chat: one object per line)\n"
                "  --timeout SECONDS    D-Bus method call timeout (login default: 60)\n"
                "  --color[=WHEN]       auto (a terminal, no NO_COLOR; the default), always, never\n"
                "  --help               Show this help\n"
                "\n"
                "Commands:\n");
        for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
                const struct command *c = &commands[i];
                g_autofree char *head = g_strdup_printf("%s %s", c->name, c->args);

                fprintf(f, "  %-42s %s\n", head, c->summary);
        }
        fprintf(f, "\nExit status:\n");
        for (size_t i = 0; i < imctl_exit_table_len; i++)
                fprintf(f, "  %d  %s\n", imctl_exit_table[i].code, imctl_exit_table[i].meaning);
        fprintf(f, "\nSee imctl(1).\n");
}

/* The same as usage(), for programs (shell completion, front ends). */
static int help_json(void) {
        _cleanup_json_ struct json_object *out = json_object_new_object();
        struct json_object *list = json_object_new_array(), *codes = json_object_new_array();

        if (!out || !list || !codes) {
                json_object_put(list);
                json_object_put(codes);
                return imctl_print_errno("cannot build JSON", -ENOMEM);
        }
        json_object_object_add(out, "commands", list);
        json_object_object_add(out, "exit_codes", codes);
        for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
                struct json_object *c = json_object_new_object(), *options = json_object_new_array();

                json_object_object_add(c, "name", json_object_new_string(commands[i].name));
                json_object_object_add(c, "args", json_object_new_string(commands[i].args));
                json_object_object_add(c, "summary", json_object_new_string(commands[i].summary));
                for (size_t o = 0; o < MAX_COMMAND_OPTIONS && commands[i].options[o].name; o++)
                        json_object_array_add(options, json_object_new_string(commands[i].options[o].name));
                json_object_object_add(c, "options", options);
                json_object_array_add(list, c);
        }
        for (size_t i = 0; i < imctl_exit_table_len; i++) {
                struct json_object *e = json_object_new_object();

                json_object_object_add(e, "code", json_object_new_int(imctl_exit_table[i].code));
                json_object_object_add(e, "name", json_object_new_string(imctl_exit_table[i].name));
                json_object_object_add(e, "meaning", json_object_new_string(imctl_exit_table[i].meaning));
                json_object_array_add(codes, e);
        }
        if (output_json(out) < 0)
                return imctl_print_errno("cannot write output", -errno);
        return IMCTL_EXIT_OK;
}

static int cmd_help(struct imctl *ctx, char **args, char **opts) {
        if (ctx->json)
                return help_json();
        usage(stdout);
        return IMCTL_EXIT_OK;
}

static int command_usage_error(const struct command *c, const char *what) {
        return imctl_usage_error("%s\nUsage: imctl %s%s%s", what, c->name, c->args[0] ? " " : "", c->args);
}

/* Plain decimal notation only ("3", "0.5"): strtod() would also take " 3", "1e3" and "0x10". */
static bool is_decimal(const char *s) {
        size_t whole = strspn(s, "0123456789"), fraction = 0;
        const char *rest = s + whole;

        if (*rest == '.') {
                fraction = strspn(rest + 1, "0123456789");
                rest += 1 + fraction;
        }
        return whole + fraction > 0 && *rest == '\0';
}

static int check_option_value(const struct command *c, const struct command_option *o, const char *v) {
        g_autofree char *m = NULL;
        uint64_t usec, n64;
        uint32_t n;

        switch (o->kind) {
        case OPTION_STRING:
                if (v[0])
                        return 0;
                m = g_strdup_printf("option '%s' needs a non-empty value", o->name);
                break;
        case OPTION_COUNT:
                if (parse_uint32(v, 1, &n))
                        return 0;
                m = g_strdup_printf("invalid number '%s' for '%s': expected a positive integer", v, o->name);
                break;
        case OPTION_SECONDS:
                if (is_decimal(v) && parse_seconds(v, &usec))
                        return 0;
                m = g_strdup_printf("invalid duration '%s' for '%s': expected a positive number of seconds "
                                    "such as 3 or 0.5", v, o->name);
                break;
        case OPTION_NUMBER:
                if (parse_uint64(v, &n64))
                        return 0;
                m = g_strdup_printf("invalid number '%s' for '%s': expected an integer >= 0", v, o->name);
                break;
        case OPTION_FLAG:
                m = g_strdup_printf("option '%s' takes no value", o->name);
                break;
        }
        return command_usage_error(c, m);
}

bool parse_seconds(const char *s, uint64_t *ret_usec) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        /* at most a day: long enough for anything, far from overflowing usec */
        if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 || v > 86400)
                return false;
        *ret_usec = (uint64_t) (v * 1e6);
        if (*ret_usec == 0)
                *ret_usec = 1;
        return true;
}

bool parse_uint32(const char *s, uint32_t min, uint32_t *ret) {
        unsigned long long v;
        char *end;

        if (!g_ascii_isdigit(s[0]))
                return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0' || v < min || v > UINT32_MAX)
                return false;
        *ret = (uint32_t) v;
        return true;
}

bool parse_uint64(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (!g_ascii_isdigit(s[0]))
                return false;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return false;
        *ret = (uint64_t) v;
        return true;
}

/* "--name VALUE" or "--name=VALUE"; returns the value or NULL if @arg is not @name. */
static const char *match_option(const char *name, int argc, char **argv, int *i, bool *missing) {
        size_t n = strlen(name);
        const char *arg = argv[*i];

        *missing = false;
        if (strncmp(arg, name, n) != 0)
                return NULL;
        if (arg[n] == '=')
                return arg + n + 1;
        if (arg[n] != '\0')
                return NULL;
        if (*i + 1 >= argc) {
                *missing = true;
                return NULL;
        }
        return argv[++*i];
}

/* Options that are global but also accepted after the command. */
static int parse_global_option(struct imctl *ctx, int argc, char **argv, int *i, bool *handled) {
        const char *v;
        bool missing;

        *handled = true;
        if (strcmp(argv[*i], "--json") == 0) {
                ctx->json = true;
                return 0;
        }
        /* "--color" alone means always, as with ls(1); it never takes the next argument */
        if (strcmp(argv[*i], "--color") == 0) {
                color_init(IMCTL_COLOR_ALWAYS);
                return 0;
        }
        if (strncmp(argv[*i], "--color=", 8) == 0) {
                enum imctl_color_mode mode;

                if (!color_parse_mode(argv[*i] + 8, &mode))
                        return imctl_usage_error("invalid value '%s' for '--color': expected auto, always "
                                                 "or never", argv[*i] + 8);
                color_init(mode);
                return 0;
        }
        v = match_option("--timeout", argc, argv, i, &missing);
        if (missing)
                return imctl_usage_error("option '--timeout' needs a value");
        if (v) {
                if (!parse_seconds(v, &ctx->timeout_usec))
                        return imctl_usage_error("invalid timeout '%s': expected a positive number of seconds", v);
                return 0;
        }
        *handled = false;
        return 0;
}

/* Whether @a, the next word of @c's command line, is an option: @n
 * positional arguments came before it. */
static bool is_option(const struct command *c, const char *a, unsigned n, bool dashdash) {
        if (dashdash || a[0] != '-' || a[1] != '-')
                return false;
        return a[2] == '\0' || n + 1 != c->text_arg;
}

static int too_many_arguments(const struct command *c, char **args) {
        const char *text = c->text_arg ? args[c->text_arg - 1] : NULL;
        g_autofree char *m = NULL;

        /* most likely an option meant before the text */
        if (text && text[0] == '-' && text[1] == '-')
                m = g_strdup_printf("too many arguments for '%s' ('%s' is taken as text: options go after it)",
                                    c->name, text);
        else
                m = g_strdup_printf("too many arguments for '%s'", c->name);
        return command_usage_error(c, m);
}

static int run_command(struct imctl *ctx, const struct command *c, int argc, char **argv) {
        char *args[3] = { NULL };
        char *opts[MAX_COMMAND_OPTIONS] = { NULL };
        unsigned n = 0;
        bool dashdash = false;
        int r;

        for (int i = 0; i < argc; i++) {
                const char *a = argv[i];

                if (!g_utf8_validate(a, -1, NULL))
                        return command_usage_error(c, "argument is not valid UTF-8");

                if (is_option(c, a, n, dashdash)) {
                        bool handled = false, missing = false;

                        if (a[2] == '\0') {
                                dashdash = true;
                                continue;
                        }
                        if (strcmp(a, "--help") == 0)
                                return cmd_help(ctx, NULL, NULL);
                        r = parse_global_option(ctx, argc, argv, &i, &handled);
                        if (r != 0)
                                return r;
                        if (handled)
                                continue;
                        for (size_t o = 0; o < MAX_COMMAND_OPTIONS && c->options[o].name; o++) {
                                const char *v;

                                if (c->options[o].kind == OPTION_FLAG) {
                                        size_t len = strlen(c->options[o].name);

                                        if (strncmp(a, c->options[o].name, len) != 0 ||
                                            (a[len] != '\0' && a[len] != '='))
                                                continue;
                                        if (a[len] == '=')
                                                return check_option_value(c, &c->options[o], a + len + 1);
                                        opts[o] = (char *) c->options[o].name;
                                        handled = true;
                                        break;
                                }
                                v = match_option(c->options[o].name, argc, argv, &i, &missing);
                                if (missing) {
                                        g_autofree char *m = g_strdup_printf("option '%s' needs a value",
                                                                             c->options[o].name);
                                        return command_usage_error(c, m);
                                }
                                if (v) {
                                        r = check_option_value(c, &c->options[o], v);
                                        if (r != 0)
                                                return r;
                                        opts[o] = (char *) v;
                                        handled = true;
                                        break;
                                }
                        }
                        if (!handled) {
                                g_autofree char *m = g_strdup_printf("unknown option '%s' for '%s'", a, c->name);
                                return command_usage_error(c, m);
                        }
                        continue;
                }

                if (n >= c->n_args)
                        return too_many_arguments(c, args);
                args[n++] = (char *) a;
        }

        if (n < c->n_args) {
                g_autofree char *m = g_strdup_printf("missing argument for '%s'", c->name);
                return command_usage_error(c, m);
        }

        if (c->run == cmd_help || c->local)
                return c->run(ctx, args, opts);

        r = imctl_open_bus(ctx);
        if (r != 0)
                return r;
        return c->run(ctx, args, opts);
}

/* The global options, then the command. An exit code. */
static int run(struct imctl *ctx, int argc, char **argv) {
        int i, r;

        for (i = 1; i < argc; i++) {
                bool handled;

                if (argv[i][0] != '-')
                        break;
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                        return cmd_help(ctx, NULL, NULL);
                if (strcmp(argv[i], "--") == 0) {
                        i++;
                        break;
                }
                r = parse_global_option(ctx, argc, argv, &i, &handled);
                if (r != 0)
                        return r;
                if (!handled)
                        return imctl_usage_error("unknown option '%s'", argv[i]);
        }

        if (i >= argc)
                return imctl_usage_error("missing command");

        for (size_t c = 0; c < G_N_ELEMENTS(commands); c++)
                if (strcmp(commands[c].name, argv[i]) == 0)
                        return run_command(ctx, &commands[c], argc - i - 1, argv + i + 1);

        return imctl_usage_error("unknown command '%s'", argv[i]);
}

/* Whatever stdout still buffers goes out; a write that failed on the way
 * (stdio only keeps the error flag) fails the command too. */
static int finish_output(int r) {
        int e = 0;

        if (fflush(stdout) != 0)
                e = -errno;
        else if (ferror(stdout))
                e = -EIO;
        if (e == 0 || r != IMCTL_EXIT_OK)
                return r;
        return imctl_print_errno("cannot write output", e);
}

int main(int argc, char **argv) {
        struct imctl ctx = { 0 };
        int r;

        /* A reader that went away (`imctl help | head -1`) makes our writes
         * fail with EPIPE: exit status 1, as imctl(1) says, rather than
         * death by SIGPIPE. */
        (void) signal(SIGPIPE, SIG_IGN);
        /* before anything is printed; --color may change it */
        color_init(IMCTL_COLOR_AUTO);
        r = run(&ctx, argc, argv);
        /* flush queued calls (async MarkRead etc.) before leaving */
        ctx.bus = sd_bus_flush_close_unref(ctx.bus);
        free(ctx.daemon_owner);
        return finish_output(r);
}

int imctl_open_bus(struct imctl *ctx) {
        int r;

        r = sd_bus_open_user(&ctx->bus);
        if (r < 0) {
                imctl_error_prefix();
                fprintf(stderr, "cannot connect to the session bus: %s\n", strerror(-r));
                return IMCTL_EXIT_NO_DAEMON;
        }
        return IMCTL_EXIT_OK;
}

int imctl_new_call(struct imctl *ctx, const char *member, sd_bus_message **ret) {
        int r;

        r = sd_bus_message_new_method_call(ctx->bus, ret, IM_SERVICE, IM_PATH, IM_INTERFACE, member);
        if (r < 0)
                return imctl_print_errno("cannot create the method call", r);
        return IMCTL_EXIT_OK;
}

int imctl_call(struct imctl *ctx, sd_bus_message *m, uint64_t usec, sd_bus_message **reply) {
        _cleanup_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call(ctx->bus, m, usec ? usec : ctx->timeout_usec, &error, reply);
        if (r < 0)
                return imctl_bus_failure(&error, r);
        return IMCTL_EXIT_OK;
}

int imctl_call_simple(struct imctl *ctx, const char *member, sd_bus_message **reply,
                      const char *types, ...) {
        _cleanup_message_ sd_bus_message *m = NULL;
        va_list ap;
        int r;

        r = imctl_new_call(ctx, member, &m);
        if (r != 0)
                return r;
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(m, types, ap);
                va_end(ap);
                if (r < 0)
                        return imctl_print_errno("cannot build the method call", r);
        }
        return imctl_call(ctx, m, 0, reply);
}

/* Fails (printing the usual message) when nobody owns the service name. */
int imctl_check_daemon(struct imctl *ctx) {
        _cleanup_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_message_ sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(ctx->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "GetNameOwner", &error, &reply,
                               "s", IM_SERVICE);
        if (r < 0)
                return imctl_bus_failure(&error, r);
        return IMCTL_EXIT_OK;
}

/* Calls @lost when the daemon drops its name; install before imctl_check_daemon(). */
int imctl_watch_daemon(struct imctl *ctx, sd_bus_message_handler_t lost, void *userdata) {
        int r;

        r = sd_bus_add_match(ctx->bus, NULL,
                             "type='signal',sender='org.freedesktop.DBus',"
                             "path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',"
                             "member='NameOwnerChanged',arg0='" IM_SERVICE "'",
                             lost, userdata);
        if (r < 0)
                return imctl_print_errno("cannot watch the service name", r);
        return IMCTL_EXIT_OK;
}

bool imctl_from_daemon(struct imctl *ctx, sd_bus_message *m) {
        const char *sender = sd_bus_message_get_sender(m);

        if (!sender)
                return false;
        if (!ctx->daemon_owner) {
                _cleanup_message_ sd_bus_message *reply = NULL;
                const char *owner;

                if (sd_bus_call_method(ctx->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "GetNameOwner", NULL, &reply,
                                       "s", IM_SERVICE) < 0 ||
                    sd_bus_message_read(reply, "s", &owner) < 0)
                        return false;
                ctx->daemon_owner = strdup(owner);
                if (!ctx->daemon_owner)
                        return false;
        }
        return strcmp(sender, ctx->daemon_owner) == 0;
}

bool imctl_name_owner_lost(sd_bus_message *m) {
        const char *name, *old_owner, *new_owner, *sender = sd_bus_message_get_sender(m);

        /* only the bus says so: sd-bus does not check the match's sender= here,
         * and anyone may send a NameOwnerChanged straight to us */
        if (!sender || strcmp(sender, "org.freedesktop.DBus") != 0)
                return false;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return false;
        return strcmp(name, IM_SERVICE) == 0 && new_owner[0] == '\0';
}
