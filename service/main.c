/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "manager.h"

int main(int argc, char **argv) {
        g_autofree char *data_dir = NULL, *cache_dir = NULL;
        gboolean verbose = FALSE;
        GOptionEntry entries[] = {
                { "data-dir", 0, 0, G_OPTION_ARG_FILENAME, &data_dir,
                  "Message history (default: $XDG_DATA_HOME/imd)", "DIR" },
                { "cache-dir", 0, 0, G_OPTION_ARG_FILENAME, &cache_dir,
                  "Downloaded media (default: $XDG_CACHE_HOME/imd)", "DIR" },
                { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Log debug messages", NULL },
                { NULL }
        };
        g_autoptr(GOptionContext) context = NULL;
        g_autoptr(GError) error = NULL;
        g_autoptr(Manager) m = NULL;
        int r;

        setlocale(LC_ALL, "");
        context = g_option_context_new("- the instant messaging daemon");
        g_option_context_set_summary(context, "Owns one IM session and serves it on D-Bus as org.example.IM.");
        g_option_context_add_main_entries(context, entries, NULL);
        if (!g_option_context_parse(context, &argc, &argv, &error)) {
                fprintf(stderr, "imd: %s\n", error->message);
                return 2;
        }
        if (argc > 1) {
                fprintf(stderr, "imd: unexpected argument '%s'\n", argv[1]);
                return 2;
        }
        if (verbose)
                g_log_set_debug_enabled(TRUE);
        if (!data_dir)
                data_dir = g_build_filename(g_get_user_data_dir(), "imd", NULL);
        if (!cache_dir)
                cache_dir = g_build_filename(g_get_user_cache_dir(), "imd", NULL);

        r = manager_new(data_dir, cache_dir, &m);
        if (r < 0) {
                fprintf(stderr, "imd: cannot set up in %s: %s\n", data_dir, strerror(-r));
                return 1;
        }
        r = manager_start(m);
        if (r == -EEXIST) {
                fprintf(stderr, "imd: another instance already owns %s on this bus\n", IM_BUS_NAME);
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "imd: cannot connect to the session bus: %s\n", strerror(-r));
                return 1;
        }
        manager_run(m);
        return 0;
}
