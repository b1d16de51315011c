/* SPDX-License-Identifier: MIT */
/*
 * The persisted position, $XDG_STATE_HOME/im-notify/state (default
 * ~/.local/state/im-notify/state), a few text lines:
 *
 *   im-notify-state 1
 *   owner BUSID UNIQUE          imd's connection the numbers belong to
 *   last N                      the last event handled
 *   server BUSID UNIQUE         the notification server of the ids below
 *   notification ID CONV SHOWN  an open notification: its id, conversation
 *                               and the message it shows
 *
 * Written whole to a temporary file and renamed over the old one (GLib's
 * g_file_set_contents_full), at most every SAVE_DELAY_USEC and when
 * im-notify exits; GLib syncs only where the filesystem needs it for the
 * rename to be atomic. A crash loses at most that last half second of
 * progress: those events are shown again, nothing is missed. The
 * notification ids let a restarted im-notify replace the notifications it
 * left open instead of adding a second one per conversation.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "im-notify.h"

#define STATE_MAGIC "im-notify-state 1"
/* far more than any real state; a bigger file is not ours */
#define STATE_MAX_BYTES (4U * 1024U * 1024U)

char *state_default_path(void) {
        /* GLib's user state dir: $XDG_STATE_HOME, else ~/.local/state */
        return g_build_filename(g_get_user_state_dir(), "im-notify", "state", NULL);
}

static bool parse_u64(const char *s, uint64_t *ret) {
        char *end;

        if (!g_ascii_isdigit(s[0]))
                return false;
        errno = 0;
        *ret = g_ascii_strtoull(s, &end, 10);
        return errno == 0 && *end == '\0';
}

static void load_line(App *app, char *line) {
        g_auto(GStrv) f = g_strsplit(line, " ", 4);
        guint n = g_strv_length(f);
        uint64_t v;

        if (n == 3 && strcmp(f[0], "owner") == 0) {
                g_free(app->owner_key);
                app->owner_key = g_strdup_printf("%s %s", f[1], f[2]);
        } else if (n == 2 && strcmp(f[0], "last") == 0 && parse_u64(f[1], &v)) {
                app->last = v;
        } else if (n == 3 && strcmp(f[0], "server") == 0) {
                g_free(app->saved_server);
                app->saved_server = g_strdup_printf("%s %s", f[1], f[2]);
        } else if (n == 4 && strcmp(f[0], "notification") == 0 && parse_u64(f[1], &v) &&
                   v > 0 && v <= UINT32_MAX) {
                Conv *c = conv_get(app, f[2], true);

                c->notification_id = (uint32_t) v;
                c->inherited = true;
                g_free(c->shown_id);
                c->shown_id = g_strdup(f[3]);
        }
        /* anything else: a later version's, ignored */
}

int state_load(App *app) {
        _cleanup_free_ char *text = NULL;
        g_autoptr(GError) error = NULL;
        g_auto(GStrv) lines = NULL;
        gsize len = 0;

        if (!g_file_get_contents(app->state_path, &text, &len, &error)) {
                if (g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                        return 0;
                log_warning("cannot read %s: %s; starting afresh", app->state_path, error->message);
                return -EIO;
        }
        if (len > STATE_MAX_BYTES || strlen(text) != len || !g_utf8_validate(text, (gssize) len, NULL)) {
                log_warning("%s is not im-notify's state; starting afresh", app->state_path);
                return -EBADMSG;
        }
        lines = g_strsplit(text, "\n", -1);
        if (!lines[0] || strcmp(lines[0], STATE_MAGIC) != 0) {
                log_warning("%s is not im-notify's state; starting afresh", app->state_path);
                return -EBADMSG;
        }
        for (size_t i = 1; lines[i]; i++)
                load_line(app, lines[i]);
        return 0;
}

/* ids and unique names never hold spaces or newlines; conversation and
 * message ids could, in theory, and such a line is simply not saved */
static bool one_word(const char *s) {
        return s && s[0] && !strpbrk(s, " \n\r");
}

int state_save(App *app) {
        g_autoptr(GString) s = g_string_new(STATE_MAGIC "\n");
        g_autoptr(GError) error = NULL;
        _cleanup_free_ char *dir = NULL;
        const char *server = app->server_known ? notifier_server_key(app->notifier) : app->saved_server;
        GHashTableIter i;
        void *value;

        app->dirty = false;
        if (app->owner_key) {
                g_string_append_printf(s, "owner %s\n", app->owner_key);
                g_string_append_printf(s, "last %" PRIu64 "\n", app->last);
        }
        if (server) {
                g_string_append_printf(s, "server %s\n", server);
                g_hash_table_iter_init(&i, app->convs);
                while (g_hash_table_iter_next(&i, NULL, &value)) {
                        Conv *c = value;

                        if (c->notification_id != 0 && one_word(c->id) && one_word(c->shown_id))
                                g_string_append_printf(s, "notification %" PRIu32 " %s %s\n",
                                                       c->notification_id, c->id, c->shown_id);
                }
        }

        dir = g_path_get_dirname(app->state_path);
        if (g_mkdir_with_parents(dir, 0700) < 0) {
                int r = -errno;

                log_warning("cannot create %s: %s", dir, strerror(-r));
                return r;
        }
        if (!g_file_set_contents_full(app->state_path, s->str, (gssize) s->len,
                                      G_FILE_SET_CONTENTS_CONSISTENT, 0600, &error)) {
                log_warning("cannot save the position: %s", error->message);
                return -EIO;
        }
        return 0;
}

static int on_save_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        App *app = userdata;

        /* not while catching up: going live saves, so that the file appearing
         * on a first run says im-notify is caught up */
        if (app->dirty && app->phase != IMD_SYNCING)
                (void) state_save(app);
        return 0;
}

void state_mark_dirty(App *app) {
        int r;

        if (app->dirty)
                return;
        app->dirty = true;
        if (!app->event)
                return;
        if (!app->save_timer)
                r = sd_event_add_time_relative(app->event, &app->save_timer, CLOCK_MONOTONIC, SAVE_DELAY_USEC,
                                               0, on_save_timer, app);
        else {
                r = sd_event_source_set_time_relative(app->save_timer, SAVE_DELAY_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(app->save_timer, SD_EVENT_ONESHOT);
        }
        if (r < 0) {
                log_warning("cannot schedule saving the position: %s; saving now", strerror(-r));
                (void) state_save(app);
        }
}
