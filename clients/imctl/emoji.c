/* SPDX-License-Identifier: MIT */

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "emoji.h"

struct EmojiTable {
        GHashTable *by_name;    /* name -> emoji (both in strings) */
        GPtrArray *strings;     /* alternating name, emoji; NULL-terminated */
};

/* "waving hand: medium skin tone" -> "waving_hand_medium_skin_tone" */
static char *shortcode_of(const char *name) {
        g_autofree char *lower = g_utf8_strdown(name, -1);
        GString *out = g_string_new(NULL);
        bool gap = false;

        for (const char *p = lower; *p; p = g_utf8_next_char(p)) {
                gunichar c = g_utf8_get_char(p);
                if (g_unichar_isalnum(c)) {
                        if (gap && out->len > 0)
                                g_string_append_c(out, '_');
                        g_string_append_unichar(out, c);
                        gap = false;
                } else
                        gap = true;
        }
        return g_string_free(out, FALSE);
}

/* "1F44B 1F3FD ; fully-qualified # 👋🏽 E1.0 waving hand: medium skin tone" */
static void parse_line(EmojiTable *t, const char *line) {
        const char *hash, *emoji, *version, *name;
        g_autofree char *code = NULL;

        if (!strstr(line, "; fully-qualified") || !(hash = strchr(line, '#')))
                return;
        emoji = hash + 1;
        while (*emoji == ' ')
                emoji++;
        version = strstr(emoji, " E");
        if (!version)
                return;
        name = strchr(version + 2, ' ');
        if (!name || version == emoji)
                return;
        code = shortcode_of(name + 1);
        if (!*code || g_hash_table_contains(t->by_name, code))
                return;
        char *e = g_strndup(emoji, (gsize) (version - emoji));
        char *n = g_steal_pointer(&code);
        g_ptr_array_add(t->strings, n);
        g_ptr_array_add(t->strings, e);
        g_hash_table_insert(t->by_name, n, e);
}

EmojiTable *emoji_table_load(const char *path, GError **error) {
        g_autofree char *contents = NULL;
        g_auto(GStrv) lines = NULL;
        EmojiTable *t;

        if (!path)
                path = g_getenv("IMCTL_EMOJI_DATA");
        if (!path)
                path = IMCTL_EMOJI_DATA;
        if (!g_file_get_contents(path, &contents, NULL, error))
                return NULL;
        t = g_new0(EmojiTable, 1);
        t->by_name = g_hash_table_new(g_str_hash, g_str_equal);
        t->strings = g_ptr_array_new_with_free_func(g_free);
        lines = g_strsplit(contents, "\n", -1);
        for (char **l = lines; *l; l++)
                parse_line(t, *l);
        g_ptr_array_add(t->strings, NULL);
        return t;
}

void emoji_table_free(EmojiTable *t) {
        if (!t)
                return;
        g_hash_table_unref(t->by_name);
        g_ptr_array_unref(t->strings);
        g_free(t);
}

const char *emoji_lookup(const EmojiTable *t, const char *name) {
        return g_hash_table_lookup(t->by_name, name);
}

const char *const *emoji_list(const EmojiTable *t) {
        return (const char *const *) t->strings->pdata;
}

static bool shortcode_char(char c) {
        return g_ascii_isalnum(c) || c == '_' || (unsigned char) c >= 0x80;
}

char *emoji_expand(const EmojiTable *t, const char *text) {
        GString *out = g_string_new(NULL);
        const char *p = text;

        while (*p) {
                const char *end;
                if (*p != ':') {
                        g_string_append_c(out, *p++);
                        continue;
                }
                for (end = p + 1; *end && shortcode_char(*end); end++)
                        ;
                if (*end == ':' && end > p + 1) {
                        g_autofree char *name = g_strndup(p + 1, (gsize) (end - p - 1));
                        const char *e = emoji_lookup(t, name);
                        if (e) {
                                g_string_append(out, e);
                                p = end + 1;
                                continue;
                        }
                }
                /* not a known name: the colon stays, and may open the next one */
                g_string_append_c(out, *p++);
        }
        return g_string_free(out, FALSE);
}

char *emoji_expand_text(const char *text) {
        static bool warned;
        g_autoptr(GError) error = NULL;
        g_autoptr(EmojiTable) t = NULL;

        if (!strchr(text, ':') || !strchr(strchr(text, ':') + 1, ':'))
                return g_strdup(text);
        t = emoji_table_load(NULL, &error);
        if (!t) {
                if (!warned)
                        fprintf(stderr, "imctl: no emoji names (%s); :shortcodes: are sent as typed\n",
                                error->message);
                warned = true;
                return g_strdup(text);
        }
        return emoji_expand(t, text);
}
