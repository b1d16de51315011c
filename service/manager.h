/* SPDX-License-Identifier: MIT */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "session.h"
#include "transport.h"

#define IM_BUS_NAME "org.example.IM"
#define IM_OBJECT_PATH "/org/example/IM"
#define IM_INTERFACE "org.example.IM"

/* The one owner of everything the daemon runs: no globals elsewhere. */
typedef struct Manager {
        GMainLoop *loop;
        sd_bus *bus;
        GSource *bus_source;
        sd_bus_slot *object_slot;
        XmppTransportContext *transport_ctx;
        Session *session;
        sd_bus_message *pending_login;  /* the Login call waiting for the session */
        char *data_dir;
        char *cache_dir;
        guint sigterm_source, sigint_source;
        bool stopping;                  /* in manager_free(): no more loop iterations */
        /* MessageReceived signals still in sd-bus' write queue: the newest seq
         * among them, confirmed to the session once written. */
        int64_t announce_seq;
        guint announce_source;
        /* The match that notices the owner of the last voice recording
         * (session_recording_owner()) leaving the bus. */
        sd_bus_slot *recording_owner_watch;
        /* The signals sent lately, for GetEventsSince (bus-events.h). */
        struct EventLog *events;
        char *events_account;           /* whose events the log holds */
        /* System mode (--system): the caller check (bus-auth.c), and no
         * message content in broadcast signals. */
        bool system_bus;
        struct BusAuth *auth;
        guint watchdog_source;
        int exit_status;                /* manager_run()'s */
} Manager;

/* CONFIG_PATH: the GKeyFile read at start (see manager.c); it need not exist.
 * SYSTEM_BUS: system mode (the system bus, the histories private to their
 * logins). */
int manager_new(const char *data_dir, const char *cache_dir, const char *config_path, bool system_bus,
                Manager **ret);
/* Connects to the session bus (in system mode to the system bus, letting
 * only root, imd's own user and members of ALLOWED_GID in), exports the
 * object and takes the bus name. -EEXIST if another instance owns the name. */
int manager_start(Manager *m, gid_t allowed_gid);
/* Until SIGTERM or SIGINT (0) or the end of the bus connection: 0 when the
 * bus itself went away (the session ended), EXIT_FAILURE when the
 * connection failed or the bus dropped it while it goes on. */
int manager_run(Manager *m);
void manager_free(Manager *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Manager, manager_free)
