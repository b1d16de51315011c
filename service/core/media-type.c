/* SPDX-License-Identifier: MIT */

#include <string.h>
#include <gio/gio.h>

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

const char *media_describe(const char *url, const char *mime, const char *name, char **ret_mime, char **ret_name) {
        g_autofree char *guessed = NULL;

        *ret_name = name ? g_strdup(name) : name_from_url(url);
        if (!*ret_name)
                *ret_name = g_strdup("file");
        if (mime)
                *ret_mime = g_ascii_strdown(mime, -1);
        else {
                gboolean uncertain = FALSE;
                g_autofree char *type = g_content_type_guess(*ret_name, NULL, 0, &uncertain);
                guessed = type ? g_content_type_get_mime_type(type) : NULL;
                *ret_mime = g_strdup(guessed && !uncertain ? guessed : "application/octet-stream");
        }
        if (g_str_has_prefix(*ret_mime, "image/"))
                return "image";
        if (g_str_has_prefix(*ret_mime, "video/"))
                return "video";
        if (g_str_has_prefix(*ret_mime, "audio/"))
                return "audio";
        return "file";
}
