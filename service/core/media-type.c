/* SPDX-License-Identifier: MIT */

#include <string.h>
#include <glib.h>

#include "media-type.h"

/* The URL path's last segment, unescaped; NULL if it is no usable name. */
static char *name_from_url(const char *url) {
        g_autofree char *path = NULL;
        const char *end = url + strcspn(url, "?#"), *slash;

        path = g_strndup(url, (gsize) (end - url));
        slash = strrchr(path, '/');
        if (!slash || !slash[1])
                return NULL;
        char *name = g_uri_unescape_string(slash + 1, "/");
        if (!name || !*name || !g_utf8_validate(name, -1, NULL) || strlen(name) > 255) {
                g_free(name);
                return NULL;
        }
        for (char *p = name; *p; p = g_utf8_next_char(p))
                if (g_unichar_iscntrl(g_utf8_get_char(p))) {
                        g_free(name);
                        return NULL;
                }
        return name;
}

/* The media type shared-mime-info gives the name's extension: its globs2
 * file, read when needed (received files without a type are rare; GIO would
 * do this too, at a megabyte of resident libraries the daemon pays always).
 * NULL if it has none. */
static char *mime_from_name(const char *name) {
        const char *ext = strrchr(name, '.');
        const char *const *dirs = g_get_system_data_dirs();

        if (!ext || !ext[1])
                return NULL;
        for (size_t d = 0; dirs[d]; d++) {
                g_autofree char *path = g_build_filename(dirs[d], "mime", "globs2", NULL);
                g_autofree char *contents = NULL;
                g_auto(GStrv) lines = NULL;
                char *best = NULL;
                gint64 best_weight = -1;

                if (!g_file_get_contents(path, &contents, NULL, NULL))
                        continue;
                lines = g_strsplit(contents, "\n", -1);
                /* weight:type:glob[:flags]; the first of the heaviest wins */
                for (char **l = lines; *l; l++) {
                        g_auto(GStrv) f = NULL;
                        gint64 weight;
                        if (**l == '#' || !**l)
                                continue;
                        f = g_strsplit(*l, ":", 4);
                        if (!f[0] || !f[1] || !f[2] || f[2][0] != '*' || g_ascii_strcasecmp(f[2] + 1, ext) != 0)
                                continue;
                        weight = g_ascii_strtoll(f[0], NULL, 10);
                        if (weight > best_weight) {
                                g_free(best);
                                best = g_strdup(f[1]);
                                best_weight = weight;
                        }
                }
                if (best)
                        return best;
        }
        return NULL;
}

const char *media_describe(const char *url, const char *mime, const char *name, char **ret_mime, char **ret_name) {
        g_autofree char *guessed = NULL;

        *ret_name = name ? g_strdup(name) : name_from_url(url);
        if (!*ret_name)
                *ret_name = g_strdup("file");
        if (mime)
                *ret_mime = g_ascii_strdown(mime, -1);
        else {
                guessed = mime_from_name(*ret_name);
                *ret_mime = g_strdup(guessed ? guessed : "application/octet-stream");
        }
        if (g_str_has_prefix(*ret_mime, "image/"))
                return "image";
        if (g_str_has_prefix(*ret_mime, "video/"))
                return "video";
        if (g_str_has_prefix(*ret_mime, "audio/"))
                return "audio";
        return "file";
}
