/* SPDX-License-Identifier: MIT */
/*
 * Rendering: JSON documents (one line each, flushed, since scripts read
 * imctl through pipes) and the one-line text forms of messages and
 * conversations.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "imctl.h"

static int flush_stdout(void) {
        if (fflush(stdout) != 0)
                return -errno;
        return 0;
}

#define DEFAULT_COLUMNS 80U

unsigned output_terminal_columns(void) {
        struct winsize ws;

        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
                return DEFAULT_COLUMNS;
        return ws.ws_col;
}

int output_json(struct json_object *o) {
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE);

        if (!s)
                return -ENOMEM;
        fputs(s, stdout);
        fputc('\n', stdout);
        return flush_stdout();
}

int output_line(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
        return flush_stdout();
}

const char *json_get_string(struct json_object *o, const char *key, const char *fallback) {
        struct json_object *v;

        if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        return fallback;
}

int64_t json_get_int(struct json_object *o, const char *key, int64_t fallback) {
        struct json_object *v;

        if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int))
                return json_object_get_int64(v);
        return fallback;
}

bool json_get_bool(struct json_object *o, const char *key, bool fallback) {
        struct json_object *v;

        if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean))
                return json_object_get_boolean(v);
        return fallback;
}

void output_format_time(int64_t unix_ms, char buf[static 16]) {
        time_t t;
        struct tm tm;

        if (unix_ms < 0) {
                strcpy(buf, "--:--");
                return;
        }
        t = (time_t) (unix_ms / 1000);
        if (!localtime_r(&t, &tm) || strftime(buf, 16, "%H:%M", &tm) == 0)
                strcpy(buf, "--:--");
}

/* Control characters become spaces, in place: C0 (newlines, ESC), DEL and
 * C1 (U+0080..U+009F; U+009B is CSI to many terminals). What a peer or imd
 * sends can then neither fake a line of its own nor drive the terminal. @s
 * is UTF-8 (D-Bus strings are), so a C1 character is 0xC2 0x80..0x9F. */
void output_strip_controls(char *s) {
        char *w = s;

        for (const char *p = s; *p; p++) {
                unsigned char c = (unsigned char) *p;

                if (c < 0x20 || c == 0x7f)
                        c = ' ';
                else if (c == 0xc2 && (unsigned char) p[1] >= 0x80 && (unsigned char) p[1] <= 0x9f) {
                        c = ' ';
                        p++;
                }
                *w++ = (char) c;
        }
        *w = '\0';
}

void output_append_text(GString *s, const char *text) {
        size_t start = s->len;

        g_string_append(s, text);
        output_strip_controls(s->str + start);
        g_string_truncate(s, strlen(s->str));
}

/* Text of a message for one-line displays: control characters become spaces. */
char *output_message_summary(struct json_object *message) {
        const char *type = json_get_string(message, "type", "text");
        const char *text = json_get_string(message, "text", NULL);
        char *s;

        if (json_get_bool(message, "revoked", false))
                return g_strdup("[revoked]");
        if (text && text[0])
                s = g_strdup(text);
        else if (strcmp(type, "text") != 0)
                s = g_strdup_printf("[%s]", type);
        else
                s = g_strdup("");
        output_strip_controls(s);
        return s;
}

const char *output_value_text(struct json_object *v) {
        if (json_object_is_type(v, json_type_boolean))
                return json_object_get_boolean(v) ? "yes" : "no";
        if (json_object_is_type(v, json_type_string) && !json_object_get_string(v)[0])
                return "(none)";
        if (json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

/* "HH:MM sender: text"; on a terminal the time dim and the sender coloured by
 * direction, so that a transcript reads at a glance */
int output_message_line(struct json_object *message) {
        g_autofree char *text = output_message_summary(message);
        bool out = strcmp(json_get_string(message, "direction", ""), "out") == 0;
        bool revoked = json_get_bool(message, "revoked", false);
        char when[16];

        output_format_time(json_get_int(message, "time", -1), when);
        return output_line("%s%s%s %s%s%s: %s%s%s",
                           color_out(COLOR_DIM), when, color_out(COLOR_RESET),
                           color_out(out ? COLOR_OUTGOING : COLOR_INCOMING),
                           json_get_string(message, "sender", "?"), color_out(COLOR_RESET),
                           revoked ? color_out(COLOR_DIM) : "", text, revoked ? color_out(COLOR_RESET) : "");
}

/* "ID  [N unread]  last-text"; on a terminal the id bold, a non-zero count highlighted */
int output_conversation_line(struct json_object *conversation) {
        struct json_object *last = NULL;
        g_autofree char *text = NULL;
        int64_t unread = json_get_int(conversation, "unread", 0);

        if (json_object_object_get_ex(conversation, "last", &last) &&
            json_object_is_type(last, json_type_object))
                text = output_message_summary(last);

        return output_line("%s%s%s  %s[%" PRId64 " unread]%s%s%s",
                           color_out(COLOR_BOLD), json_get_string(conversation, "id", "?"),
                           color_out(COLOR_RESET),
                           color_out(unread > 0 ? COLOR_UNREAD : COLOR_DIM), unread, color_out(COLOR_RESET),
                           text && text[0] ? "  " : "", text ? text : "");
}
