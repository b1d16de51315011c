/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "bus-args.h"
#include "bus-errors.h"
#include "bus-voice.h"

/* The recording's owner is the session's to remember (it goes with the
 * recording, so a late event of an earlier one cannot touch it); the bus
 * watches that owner's name. */

void bus_voice_forget_owner(Manager *mgr) {
        mgr->recording_owner_watch = sd_bus_slot_unref(mgr->recording_owner_watch);
}

static void owner_gone(Manager *mgr, const char *name) {
        if (g_strcmp0(session_recording_owner(mgr->session), name) != 0)
                return;         /* an earlier recording's owner */
        g_debug("bus: %s, who was recording, left the bus", name);
        session_cancel_recording(mgr->session, "owner-left");
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) >= 0 && !*new_owner)
                owner_gone(userdata, name);
        return 0;
}

typedef struct OwnerCheck {
        Manager *mgr;
        char *name;
} OwnerCheck;

static int on_has_owner(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        OwnerCheck *check = userdata;
        int has = 1;

        if (!sd_bus_message_is_method_error(reply, NULL))
                (void) sd_bus_message_read(reply, "b", &has);
        if (!has)
                owner_gone(check->mgr, check->name);
        g_free(check->name);
        g_free(check);
        return 0;
}

/* The match is in place: a caller that left before it was (even before its
 * call was handled) would never be noticed by it, so ask once. */
static int on_watch_installed(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        const char *owner = session_recording_owner(mgr->session);
        OwnerCheck *check;

        if (!owner)
                return 0;
        check = g_new0(OwnerCheck, 1);
        check->mgr = mgr;
        check->name = g_strdup(owner);
        if (sd_bus_call_method_async(mgr->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "NameHasOwner", on_has_owner, check, "s",
                                     check->name) < 0) {
                g_free(check->name);
                g_free(check);
        }
        return 0;
}

/* Whether the caller may stop or cancel: -ENOENT none runs, -EPERM another's. */
static int check_owner(Manager *mgr, sd_bus_message *m, sd_bus_error *error) {
        const char *owner = session_recording_owner(mgr->session);

        if (!owner)
                return bus_set_errno(error, -ENOENT, "No recording is running");
        if (g_strcmp0(owner, sd_bus_message_get_sender(m)) != 0)
                return bus_set_errno(error, -EPERM, "The recording belongs to another client (%s)", owner);
        return 0;
}

static void on_started(int error, void *userdata) {
        sd_bus_message *call = userdata;

        switch (error) {
        case 0:
                (void) sd_bus_reply_method_return(call, NULL);
                break;
        case -ENODEV:
                bus_reply_errno(call, -ENOENT, "No audio source (microphone) delivered anything");
                break;
        case -ECANCELED:
                bus_reply_errno(call, error, "The recording was cancelled before it started");
                break;
        default:
                bus_reply_errno(call, error, "The recording could not start");
                break;
        }
        sd_bus_message_unref(call);
}

int bus_method_start_recording(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL, *match = NULL;
        const char *conv_arg, *sender = sd_bus_message_get_sender(m);
        int r;

        r = sd_bus_message_read(m, "s", &conv_arg);
        if (r < 0)
                return r;
        conversation = bus_parse_user_jid(conv_arg, "conversation", error);
        if (!conversation)
                return -EINVAL;
        if (!sender)
                return bus_set_errno(error, -EINVAL, "A recording needs a caller with a bus name");

        r = session_start_recording(mgr->session, conversation, sender, on_started, sd_bus_message_ref(m));
        if (r < 0) {
                sd_bus_message_unref(m);
                switch (r) {
                case -ENOTCONN:
                        return bus_set_errno(error, r, "Not logged in: call Login first (and wait for it to succeed)");
                case -EBUSY:
                        return bus_set_errno(error, r, "A recording is already running");
                case -ENOTSUP:
                        return bus_set_errno(error, r, "Cannot reach PipeWire: no audio capture on this machine");
                case -ENOPKG:
                        return bus_set_errno(error, -ENOTSUP, "imd's audio module (%s) is not installed",
                                             "imd-audio.so");
                default:
                        return bus_set_errno(error, r, "Cannot start recording: %s", g_strerror(-r));
                }
        }
        bus_voice_forget_owner(mgr);
        match = g_strdup_printf("type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'", sender);
        r = sd_bus_add_match_async(mgr->bus, &mgr->recording_owner_watch, match, on_owner_changed,
                                   on_watch_installed, mgr);
        if (r < 0) {
                g_warning("Cannot watch %s: %s", sender, g_strerror(-r));
                session_cancel_recording(mgr->session, "cancelled");    /* answers the call too */
        }
        return 1;       /* answered by on_started() */
}

static void on_stopped_sent(int error, const char *id, void *userdata) {
        sd_bus_message *call = userdata;

        if (error == 0)
                (void) sd_bus_reply_method_return(call, "s", id);
        else if (error == -ECANCELED)
                bus_reply_errno(call, error, "Logged out before the voice message was taken");
        else if (error == -EDQUOT)
                bus_reply_errno(call, error, "The voice message was not sent: imd's outbox is full "
                                "([media] max_outbox); wait for uploads to finish, or revoke failed ones");
        else
                bus_reply_errno(call, error, "The voice message could not be sent");
        sd_bus_message_unref(call);
}

int bus_method_stop_recording(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        int r;

        /* (the session checks the owner: a recording that went by itself at
         * its maximum the moment its owner let go still answers) */
        r = session_stop_recording(mgr->session, sd_bus_message_get_sender(m), on_stopped_sent,
                                   sd_bus_message_ref(m));
        if (r == 0)
                return 1;       /* answered by on_stopped_sent() with the id */
        sd_bus_message_unref(m);
        if (r == -ENOENT)
                return bus_set_errno(error, r, "No recording is running");
        if (r == -EPERM)
                return bus_set_errno(error, r, "The recording belongs to another client (%s)",
                                     session_recording_owner(mgr->session));
        if (r == -ENODATA)
                return bus_set_errno(error, r, "The recording is shorter than the minimum; it was not sent");
        return bus_set_errno(error, r, "Cannot send the recording: %s", g_strerror(-r));
}

int bus_method_cancel_recording(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        int r;

        r = check_owner(mgr, m, error);
        if (r < 0)
                return r;
        session_cancel_recording(mgr->session, "cancelled");
        return sd_bus_reply_method_return(m, NULL);
}
