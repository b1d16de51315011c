/* SPDX-License-Identifier: MIT */
/*
 * A message's notification body: its text, or a short label for what cannot
 * be shown in a notification (media, custom data). Bounded, because the
 * text comes from a remote peer and notification servers lay out whatever
 * they are given.
 */
#include <string.h>

#include "im-notify.h"

char *label_truncate(const char *text) {
        static const char ellipsis[] = "…";
        size_t n = strlen(text), cut;

        if (n <= LABEL_MAX_BYTES)
                return g_strdup(text);
        cut = LABEL_MAX_BYTES - (sizeof(ellipsis) - 1);
        /* back to the start of a character: the text is valid UTF-8 */
        while (cut > 0 && ((unsigned char) text[cut] & 0xC0) == 0x80)
                cut--;
        return g_strdup_printf("%.*s%s", (int) cut, text, ellipsis);
}

static bool is_set(const char *s) {
        return s && s[0];
}

/* "[Voice 0:04]": rounded to the second, as players show it */
static char *voice_label(const ImMessage *msg) {
        uint64_t s;

        if (!msg->has_duration)
                return g_strdup("[Voice]");
        s = ((uint64_t) msg->duration_ms + 500) / 1000;
        if (s >= 3600)
                return g_strdup_printf("[Voice %u:%02u:%02u]", (unsigned) (s / 3600),
                                       (unsigned) (s / 60 % 60), (unsigned) (s % 60));
        return g_strdup_printf("[Voice %u:%02u]", (unsigned) (s / 60), (unsigned) (s % 60));
}

static char *label_raw(const ImMessage *msg) {
        const char *type = is_set(msg->type) ? msg->type : "text";

        if (strcmp(type, "image") == 0)
                return g_strdup("[Image]");
        if (strcmp(type, "video") == 0)
                return g_strdup("[Video]");
        if (strcmp(type, "audio") == 0)
                return voice_label(msg);
        if (strcmp(type, "file") == 0)
                return is_set(msg->name) ? g_strdup_printf("[File %s]", msg->name) : g_strdup("[File]");
        if (strcmp(type, "custom") == 0) {
                if (is_set(msg->description))
                        return g_strdup(msg->description);
                return g_strdup(is_set(msg->text) ? msg->text : "[Custom message]");
        }
        /* "text", or a type a later imd adds: its text is what clients show */
        if (is_set(msg->text))
                return g_strdup(msg->text);
        return strcmp(type, "text") == 0 ? NULL : g_strdup("[Message]");
}

char *label_for_message(const ImMessage *msg) {
        _cleanup_free_ char *raw = NULL;

        if (msg->revoked)
                return NULL;
        raw = label_raw(msg);
        return raw ? label_truncate(raw) : NULL;
}
