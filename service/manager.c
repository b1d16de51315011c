/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <stdlib.h>
#include <glib-unix.h>

#include <systemd/sd-daemon.h>

#include "bus-auth.h"
#include "bus-errors.h"
#include "bus-object.h"
#include "bus-events.h"
#include "bus-voice.h"
#include "bus-source.h"
#include "manager.h"

/* How long the check whether the bus is still there may take. */
#define BUS_PROBE_TIMEOUT_US (2 * G_USEC_PER_SEC)

static gboolean on_quit_signal(gpointer userdata) {
        Manager *m = userdata;
        g_main_loop_quit(m->loop);
        return G_SOURCE_CONTINUE;
}

/* Whether the bus still takes connections: then it dropped ours, or sd-bus
 * did, and imd did not end with its bus. */
static bool bus_still_there(bool system_bus) {
        sd_bus *bus = NULL;
        uint64_t deadline = g_get_monotonic_time() + BUS_PROBE_TIMEOUT_US;
        bool there = false;
        int r;

        /* Waits on its own (not sd-bus's 25 s for Hello's answer): a bus
         * that takes the connection but does not answer counts as there. */
        r = system_bus ? sd_bus_open_system(&bus) : sd_bus_open_user(&bus);
        while (r >= 0) {
                uint64_t now = g_get_monotonic_time();
                if (sd_bus_is_ready(bus) > 0 || now >= deadline) {
                        there = true;
                        break;
                }
                r = sd_bus_process(bus, NULL);
                if (r == 0)
                        r = sd_bus_wait(bus, deadline - now);
        }
        g_debug("bus probe: %s", there ? "the bus is there" : g_strerror(-r));
        sd_bus_close_unref(bus);
        /* imd's own trouble says nothing of the bus (its socket refuses or
         * resets the connection when it is gone) */
        return there || r == -EMFILE || r == -ENFILE || r == -ENOMEM || r == -ENOBUFS;
}

static gboolean on_bus_disconnected(gpointer userdata) {
        Manager *m = userdata;
        int error = bus_source_error(m->bus_source);

        /* Nobody can reach us any more, so don't outlive the connection.
         * The bus ending (the session's, at logout) is a clean end; losing
         * the connection while the bus goes on is a failure, for
         * Restart=on-failure to start imd again. */
        if (error < 0) {
                g_warning("The D-Bus connection failed: %s; exiting", g_strerror(-error));
                m->exit_status = EXIT_FAILURE;
        } else if (bus_still_there(m->system_bus)) {
                g_warning("The bus closed imd's connection; exiting");
                m->exit_status = EXIT_FAILURE;
        } else
                g_message("The D-Bus connection is gone; exiting");
        g_main_loop_quit(m->loop);
        return G_SOURCE_REMOVE;
}

/* $XDG_CONFIG_HOME/imd/imd.conf (system mode: /etc/imd/imd.conf), all optional:
 *   [connection]
 *   websocket_url=       the server when a Login names none (system mode: the
 *                        only one taken; default: XEP-0156 discovery)
 *   ping_interval=30     seconds of silence before imd pings the server
 *   ping_timeout=10      seconds the answer may take before imd reconnects
 *   reconnect_min=1      first reconnect delay, seconds (then doubling)
 *   reconnect_max=60     longest reconnect delay, seconds
 *   [messages]
 *   revoke_window=120    seconds after sending during which a message may be revoked
 *   archive_wait=10      seconds GetMessages waits for the server archive before answering from the cache
 *   [media]
 *   max_download=104857600  bytes: the largest file FetchMedia takes
 *   stall_timeout=60     seconds a download may receive nothing before it fails
 *   max_outbox=1073741824   bytes an account's outbox may hold for uploads (SendFile)
 *   [voice]
 *   source=              PipeWire node name of the microphone (default: the default source)
 *   min_duration=1       seconds: shorter recordings are not sent
 *   max_duration=60      seconds: a recording this long is sent by itself
 *   bitrate=24000        bits/s of the Opus encoding */
/* A key that is there but cannot be read (a number with a comment after it,
 * say: GKeyFile takes only whole lines as comments) is named, not skipped
 * in silence. True if the key has a value to use. */
static bool key_read(const char *path, const char *key, const GError *e) {
        if (!e)
                return true;
        if (!g_error_matches(e, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND) &&
            !g_error_matches(e, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND))
                g_warning("%s: %s: %s; ignored", path, key, e->message);
        return false;
}

static void load_config(const char *path, SessionConfig *ret) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) error = NULL;
        static const struct {
                const char *group, *key;
                size_t offset;
                double max_seconds;
        } keys[] = {
                { "connection", "ping_interval", G_STRUCT_OFFSET(SessionConfig, ping_interval_ms), 3600 },
                { "connection", "ping_timeout", G_STRUCT_OFFSET(SessionConfig, ping_timeout_ms), 3600 },
                { "connection", "reconnect_min", G_STRUCT_OFFSET(SessionConfig, reconnect_min_ms), 3600 },
                { "connection", "reconnect_max", G_STRUCT_OFFSET(SessionConfig, reconnect_max_ms), 3600 },
                { "messages", "revoke_window", G_STRUCT_OFFSET(SessionConfig, revoke_window_ms), 7 * 86400 },
                { "messages", "archive_wait", G_STRUCT_OFFSET(SessionConfig, archive_wait_ms), 60 },
                { "media", "stall_timeout", G_STRUCT_OFFSET(SessionConfig, stall_timeout_ms), 3600 },
                { "voice", "min_duration", G_STRUCT_OFFSET(SessionConfig, voice_min_ms), 60 },
                { "voice", "max_duration", G_STRUCT_OFFSET(SessionConfig, voice_max_ms), 3600 },
        };

        *ret = (SessionConfig) { 0 };
        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &error)) {
                if (!g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                        g_warning("Ignoring %s: %s", path, error->message);
                return;
        }
        ret->websocket_url = g_key_file_get_string(kf, "connection", "websocket_url", NULL);
        if (ret->websocket_url && !xmpp_websocket_url_valid(ret->websocket_url)) {
                g_warning("%s: websocket_url is not a ws:// or wss:// URL with a host; ignored", path);
                g_clear_pointer(&ret->websocket_url, g_free);
        }
        {
                g_autoptr(GError) e = NULL;
                guint64 bytes = g_key_file_get_uint64(kf, "media", "max_download", &e);
                if (key_read(path, "max_download", e) && bytes > 0)
                        ret->max_download_bytes = bytes;
        }
        {
                g_autoptr(GError) e = NULL;
                guint64 bytes = g_key_file_get_uint64(kf, "media", "max_outbox", &e);
                if (key_read(path, "max_outbox", e) && bytes > 0)
                        ret->max_outbox_bytes = bytes;
        }
        {
                g_autoptr(GError) e = NULL;
                gint bitrate = g_key_file_get_integer(kf, "voice", "bitrate", &e);
                /* what Opus takes */
                if (key_read(path, "bitrate", e) && (bitrate < 6000 || bitrate > 510000))
                        g_warning("%s: bitrate=%d is outside 6000..510000; ignored", path, bitrate);
                else if (!e)
                        ret->voice_bitrate = (unsigned) bitrate;
                ret->voice_source = g_key_file_get_string(kf, "voice", "source", NULL);
                if (ret->voice_source && !*ret->voice_source)
                        g_clear_pointer(&ret->voice_source, g_free);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(keys); i++) {
                g_autoptr(GError) e = NULL;
                double seconds = g_key_file_get_double(kf, keys[i].group, keys[i].key, &e);
                if (!key_read(path, keys[i].key, e))
                        continue;
                if (seconds < 0.1 || seconds > keys[i].max_seconds) {
                        g_warning("%s: %s=%g is outside 0.1..%g seconds; ignored", path, keys[i].key, seconds,
                                  keys[i].max_seconds);
                        continue;
                }
                G_STRUCT_MEMBER(unsigned, ret, keys[i].offset) = (unsigned) (seconds * 1000);
        }
}

/* DIR (created 0700 if missing) by its real name: SQLite opens no history
 * with a symlink anywhere in its path (SQLITE_OPEN_NOFOLLOW, which keeps a
 * planted link from redirecting it), and a home directory may be reached
 * through one (/home -> /var/home). */
static int real_dir(const char *dir, char **ret) {
        char *real;

        if (g_mkdir_with_parents(dir, 0700) < 0)
                return -errno;
        real = realpath(dir, NULL);
        if (!real)
                return -errno;
        *ret = g_strdup(real);
        free(real);
        return 0;
}

int manager_new(const char *data_dir, const char *cache_dir, const char *config_path, bool system_bus,
                Manager **ret) {
        g_autoptr(Manager) m = g_new0(Manager, 1);
        SessionConfig config;
        int r;

        m->loop = g_main_loop_new(NULL, FALSE);
        m->system_bus = system_bus;
        m->events = event_log_new();
        if ((r = real_dir(data_dir, &m->data_dir)) < 0 || (r = real_dir(cache_dir, &m->cache_dir)) < 0)
                return r;
        r = xmpp_transport_context_new(m->loop, &m->transport_ctx);
        if (r < 0)
                return r;
        load_config(config_path, &config);
        config.private_history = system_bus;
        /* Not in imd.conf: nobody should turn it on but a test suite, whose
         * file servers speak plain http on 127.0.0.1. */
        config.loopback_http = g_strcmp0(g_getenv("IMD_TEST_LOOPBACK_HTTP"), "1") == 0;
        if (config.loopback_http)
                g_message("IMD_TEST_LOOPBACK_HTTP=1: files also over plain http to this machine (for tests only)");
        r = session_new(m->data_dir, m->cache_dir, m->transport_ctx, &config, &bus_session_events, m, &m->session);
        g_free(config.voice_source);
        g_free(config.websocket_url);
        if (r < 0)
                return r;
        *ret = g_steal_pointer(&m);
        return 0;
}

/* Tells systemd the main loop still runs (WatchdogSec= in the units). */
static gboolean on_watchdog(gpointer userdata) {
        sd_notify(false, "WATCHDOG=1");
        return G_SOURCE_CONTINUE;
}

static void start_watchdog(Manager *m) {
        uint64_t usec = 0;

        if (sd_watchdog_enabled(false, &usec) <= 0 || usec == 0)
                return;
        /* twice per period, as sd_watchdog_enabled(3) advises */
        m->watchdog_source = g_timeout_add(MAX(usec / 2000, 1), on_watchdog, m);
}

int manager_start(Manager *m, gid_t allowed_gid) {
        bool system_bus = m->system_bus;
        int r;

        if (system_bus)
                r = sd_bus_open_system_with_description(&m->bus, "imd");
        else
                r = sd_bus_open_user_with_description(&m->bus, "imd");
        if (r < 0)
                return r;
        /* the check comes before the object, so no call can slip past it */
        if (system_bus) {
                r = bus_auth_install(m, allowed_gid);
                if (r < 0)
                        return r;
        }
        r = bus_object_add(m);
        if (r < 0)
                return r;
        /* Export first, then take the name: an activated client's first call
         * must find the object. */
        r = sd_bus_request_name(m->bus, IM_BUS_NAME, 0);
        if (r < 0)
                return r;
        session_start(m->session);

        m->bus_source = bus_source_new(m->bus, on_bus_disconnected, m);
        g_source_attach(m->bus_source, NULL);
        m->sigterm_source = g_unix_signal_add(SIGTERM, on_quit_signal, m);
        m->sigint_source = g_unix_signal_add(SIGINT, on_quit_signal, m);
        start_watchdog(m);
        return 0;
}

int manager_run(Manager *m) {
        g_main_loop_run(m->loop);
        return m->exit_status;
}

void manager_free(Manager *m) {
        if (!m)
                return;
        if (m->sigterm_source)
                g_source_remove(m->sigterm_source);
        if (m->sigint_source)
                g_source_remove(m->sigint_source);
        if (m->watchdog_source)
                g_source_remove(m->watchdog_source);
        /* The session first: it may still announce its last batch on the bus. */
        m->stopping = true;
        if (m->announce_source) {
                g_source_remove(m->announce_source);
                m->announce_source = 0;
                if (m->bus && sd_bus_flush(m->bus) >= 0)
                        session_messages_announced(m->session, m->announce_seq);
        }
        session_free(m->session);
        bus_voice_forget_owner(m);
        if (m->pending_login) {
                bus_reply_errno(m->pending_login, -ECANCELED, "imd is shutting down");
                sd_bus_message_unref(m->pending_login);
        }
        sd_bus_slot_unref(m->object_slot);
        bus_auth_free(m);
        event_log_free(m->events);      /* its messages hold references on the bus */
        g_free(m->events_account);
        if (m->bus_source) {
                g_source_destroy(m->bus_source);
                g_source_unref(m->bus_source);
        }
        if (m->bus) {
                sd_bus_flush(m->bus);
                sd_bus_close_unref(m->bus);
        }
        xmpp_transport_context_free(m->transport_ctx);
        g_main_loop_unref(m->loop);
        g_free(m->data_dir);
        g_free(m->cache_dir);
        g_free(m);
}
