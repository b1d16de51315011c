/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <grp.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "manager.h"

/* System mode's defaults: systemd's StateDirectory= and CacheDirectory=
 * when it set them up, else the usual places. */
static char *system_dir(const char *env, const char *fallback) {
        const char *dir = getenv(env);

        /* several directories are separated by ':'; imd asks for one */
        if (dir && dir[0] == '/' && !strchr(dir, ':'))
                return g_strdup(dir);
        return g_strdup(fallback);
}

/* The soft limit on file descriptors up to the hard one: the default soft
 * 1024 is there for programs that use select(), which imd does not (GLib
 * polls, sd-bus and PipeWire too), and libwebsockets sizes its tables by
 * its own cap (xmpp/transport.c), not by this limit. Running out makes
 * sd-bus drop the bus connection. */
static void raise_fd_limit(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                g_debug("Cannot raise the limit on open files: %s", g_strerror(errno));
}

int main(int argc, char **argv) {
        g_autofree char *data_dir = NULL, *cache_dir = NULL, *config_path = NULL, *group = NULL;
        gboolean verbose = FALSE, system_bus = FALSE;
        GOptionEntry entries[] = {
                { "data-dir", 0, 0, G_OPTION_ARG_FILENAME, &data_dir,
                  "Message history (default: $XDG_DATA_HOME/imd; system mode: /var/lib/imd)", "DIR" },
                { "cache-dir", 0, 0, G_OPTION_ARG_FILENAME, &cache_dir,
                  "Downloaded media (default: $XDG_CACHE_HOME/imd; system mode: /var/cache/imd)", "DIR" },
                { "system", 0, 0, G_OPTION_ARG_NONE, &system_bus,
                  "Serve on the system bus, for the members of one group", NULL },
                { "config", 0, 0, G_OPTION_ARG_FILENAME, &config_path,
                  "Settings (default: $XDG_CONFIG_HOME/imd/imd.conf; system mode: " SYSCONFDIR "/imd/imd.conf)",
                  "FILE" },
                { "group", 0, 0, G_OPTION_ARG_STRING, &group,
                  "System mode: the group whose members may use imd (default: imd)", "GROUP" },
                { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "Log debug messages", NULL },
                G_OPTION_ENTRY_NULL
        };
        g_autoptr(GOptionContext) context = NULL;
        g_autoptr(GError) error = NULL;
        g_autoptr(Manager) m = NULL;
        gid_t allowed_gid = (gid_t) -1;
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
        if (group && !system_bus) {
                fprintf(stderr, "imd: --group only applies with --system\n");
                return 2;
        }
        if (verbose)
                g_log_set_debug_enabled(TRUE);
        raise_fd_limit();
        if (system_bus) {
                const struct group *gr = getgrnam(group ? group : "imd");

                if (!gr) {
                        fprintf(stderr, "imd: there is no group '%s' to allow in\n", group ? group : "imd");
                        return 1;
                }
                allowed_gid = gr->gr_gid;
                if (!data_dir)
                        data_dir = system_dir("STATE_DIRECTORY", "/var/lib/imd");
                if (!cache_dir)
                        cache_dir = system_dir("CACHE_DIRECTORY", "/var/cache/imd");
                if (!config_path)
                        config_path = g_build_filename(SYSCONFDIR, "imd", "imd.conf", NULL);
        } else {
                if (!data_dir)
                        data_dir = g_build_filename(g_get_user_data_dir(), "imd", NULL);
                if (!cache_dir)
                        cache_dir = g_build_filename(g_get_user_cache_dir(), "imd", NULL);
                if (!config_path)
                        config_path = g_build_filename(g_get_user_config_dir(), "imd", "imd.conf", NULL);
        }

        r = manager_new(data_dir, cache_dir, config_path, system_bus, &m);
        if (r < 0) {
                fprintf(stderr, "imd: cannot set up in %s: %s\n", data_dir, strerror(-r));
                return 1;
        }
        r = manager_start(m, allowed_gid);
        if (r == -EEXIST) {
                fprintf(stderr, "imd: another instance already owns %s on this bus\n", IM_BUS_NAME);
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "imd: cannot connect to the %s bus: %s\n", system_bus ? "system" : "session",
                        strerror(-r));
                return 1;
        }
        return manager_run(m);
}
