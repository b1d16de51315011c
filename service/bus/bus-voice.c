/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <glib.h>

#include "bus-args.h"
#include "bus-errors.h"
#include "bus-voice.h"

void bus_voice_forget_owner(Manager *mgr) {
        mgr->recording_owner_watch = sd_bus_slot_unref(mgr->recording_owner_watch);
        g_clear_pointer(&mgr->recording_owner, g_free);
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || *new_owner)
                return 0;
        g_debug("bus: %s, who was recording, left the bus", name);
        /* (the session's recording_stopped event forgets the owner) */
        session_cancel_recording(mgr->session, "owner-left");
        return 0;
}

/* Whether the caller may stop or cancel: -ENOENT none runs, -EPERM another's. */
static int check_owner(Manager *mgr, sd_bus_message *m, sd_bus_error *error) {
        if (!session_is_recording(mgr->session))
                return bus_set_errno(error, -ENOENT, "No recording is running");
        if (!mgr->recording_owner || strcmp(mgr->recording_owner, sd_bus_message_get_sender(m)) != 0)
                return bus_set_errno(error, -EPERM, "The recording belongs to another client (%s)",
                                     mgr->recording_owner ? mgr->recording_owner : "unknown");
        return 0;
}

typedef struct StartCall {
        Manager *mgr;
        sd_bus_message *call;
} StartCall;

static void on_started(int error, void *userdata) {
        StartCall *start = userdata;
        sd_bus_message *call = start->call;

        if (error < 0)
                bus_voice_forget_owner(start->mgr);     /* it never became anyone's */
        g_free(start);
        switch (error) {
        case 0:
                (void) sd_bus_reply_method_return(call, NULL);
                break;
        case -ENODEV:
                bus_reply_errno(call, -ENOENT, "No audio source (microphone) delivered anything");
                break;
        case -ECANCELED:
                bus_reply_errno(call, -ECONNABORTED, "The recording was cancelled before it started");
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
        StartCall *start;
        int r;

        r = sd_bus_message_read(m, "s", &conv_arg);
        if (r < 0)
                return r;
        conversation = bus_parse_user_jid(conv_arg, "conversation", error);
        if (!conversation)
                return -EINVAL;
        if (!sender)
                return bus_set_errno(error, -EINVAL, "A recording needs a caller with a bus name");

        start = g_new0(StartCall, 1);
        start->mgr = mgr;
        start->call = sd_bus_message_ref(m);
        r = session_start_recording(mgr->session, conversation, on_started, start);
        if (r < 0) {
                sd_bus_message_unref(m);
                g_free(start);
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
        /* watched before anything else can happen: leaving cancels it */
        bus_voice_forget_owner(mgr);
        mgr->recording_owner = g_strdup(sender);
        match = g_strdup_printf("type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'", sender);
        r = sd_bus_add_match(mgr->bus, &mgr->recording_owner_watch, match, on_owner_changed, mgr);
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
        else
                bus_reply_errno(call, error, "The voice message could not be sent");
        sd_bus_message_unref(call);
}

int bus_method_stop_recording(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        int r;

        r = check_owner(mgr, m, error);
        if (r < 0)
                return r;
        r = session_stop_recording(mgr->session, on_stopped_sent, sd_bus_message_ref(m));
        if (r == 0)
                return 1;       /* answered by on_stopped_sent() with the id */
        sd_bus_message_unref(m);
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
