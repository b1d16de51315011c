/* SPDX-License-Identifier: MIT */

/*
 * Every method handler follows one order: read the arguments, validate them
 * (named errors), check the session state, act, reply. Validation lives here
 * because this is where untrusted input enters; the layers below assume it.
 */

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-args.h"
#include "bus-dict.h"
#include "bus-errors.h"
#include "bus-events.h"
#include "bus-files.h"
#include "bus-voice.h"
#include "bus-object.h"
#include "actions.h"
#include "custom.h"
#include "jid.h"

#define PASSWORD_MAX_BYTES  1024
#define MESSAGES_MAX_LIMIT  500
#define SEARCH_QUERY_MAX_BYTES 1024

/* --- Login --- */

typedef struct LoginOptions {
        char *websocket_url;
        char *ca_file;
        int remember;           /* 'b' reads into an int */
} LoginOptions;

static void login_options_clear(LoginOptions *o) {
        g_free(o->websocket_url);
        g_free(o->ca_file);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(LoginOptions, login_options_clear)

static int read_login_options(sd_bus_message *m, LoginOptions *o, sd_bus_error *error) {
        static const BusOption keys[] = {
                { "websocket_url", 's', offsetof(LoginOptions, websocket_url) },
                { "ca_file", 's', offsetof(LoginOptions, ca_file) },
                { "remember", 'b', offsetof(LoginOptions, remember) },
        };

        return bus_read_options(m, keys, G_N_ELEMENTS(keys), o, "option", error);
}

/* A regular file: opened without blocking (a FIFO would hang the main loop
 * until someone wrote to it) and checked through the fd it was opened as. */
static bool readable_regular_file(const char *path) {
        struct stat st;
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        bool ok = fd >= 0 && fstat(fd, &st) >= 0 && S_ISREG(st.st_mode);

        if (fd >= 0)
                close(fd);
        return ok;
}

static int check_login_options(Manager *mgr, LoginOptions *o, sd_bus_error *error) {
        /* none: the session finds it (XEP-0156) */
        if (o->websocket_url && !xmpp_websocket_url_valid(o->websocket_url))
                return bus_set_errno(error, -EINVAL, "websocket_url must be a ws:// or wss:// URL with a host");
        if (o->websocket_url && mgr->system_bus)
                /* A server of the caller's choosing would accept any
                 * password for any account: the member would get that
                 * account's history and its outbox. The endpoint must speak
                 * for the account's domain: the administrator's, or the one
                 * the domain names over verified https (XEP-0156). */
                return bus_set_errno(error, -EPERM, "websocket_url is not taken on the system bus: imd uses "
                                     "the administrator's (imd.conf) or the one the account's domain names");
        if (o->ca_file && mgr->system_bus)
                /* imd would open a path of the caller's choosing with its own
                 * rights (files only as fds); the system's trust store it is. */
                return bus_set_errno(error, -EPERM, "ca_file is not taken on the system bus: imd uses the "
                                     "system's trusted certificates there");
        if (o->ca_file) {
                char *real = realpath(o->ca_file, NULL);
                /* Resolved, so that one file is one trust store however it is spelled. */
                if (!g_path_is_absolute(o->ca_file) || !real || !readable_regular_file(real)) {
                        free(real);
                        return bus_set_errno(error, -EINVAL, "ca_file '%.200s' is not a readable file at an "
                                             "absolute path", o->ca_file);
                }
                g_free(o->ca_file);
                o->ca_file = g_strdup(real);
                free(real);
        }
        return 0;
}

static int method_login(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_auto(LoginOptions) opts = { 0 };
        g_autofree char *jid = NULL;
        const char *jid_arg, *password;
        int r;

        /* sd-bus erases the message, the password in it, when it frees it */
        (void) sd_bus_message_sensitive(m);
        r = sd_bus_message_read(m, "ss", &jid_arg, &password);
        if (r < 0)
                return r;
        r = read_login_options(m, &opts, error);
        if (r < 0)
                return r;

        jid = bus_parse_user_jid(jid_arg, "account", error);
        if (!jid)
                return -EINVAL;
        if (!*password || strlen(password) > PASSWORD_MAX_BYTES)
                return bus_set_errno(error, -EINVAL, "The password must be 1 to %d bytes", PASSWORD_MAX_BYTES);
        r = check_login_options(mgr, &opts, error);
        if (r < 0)
                return r;

        if (mgr->pending_login)
                return bus_set_errno(error, -EBUSY, "A login is already in progress");
        r = session_login(mgr->session, jid, password, opts.websocket_url, opts.ca_file, opts.remember);
        if (r == -EBUSY)
                return bus_set_errno(error, r, "Already logged in as %s; log out first",
                                     session_account(mgr->session));
        if (r == -EINVAL)
                return bus_set_errno(error, r, "Cannot use websocket_url '%.200s'", opts.websocket_url);
        if (r == -EIO && opts.ca_file)
                return bus_set_errno(error, -EINVAL, "Cannot load the certificates in ca_file '%.200s'",
                                     opts.ca_file);
        if (r == -ENOSPC)
                return bus_set_errno(error, -EINVAL, "Too many different ca_file values; restart imd");
        if (r < 0)
                return bus_set_errno(error, r, NULL);

        /* Replied to from on_login_finished(). */
        mgr->pending_login = sd_bus_message_ref(m);
        return 1;
}

static int method_logout(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;

        session_logout(mgr->session);
        return sd_bus_reply_method_return(m, NULL);
}

/* --- messages --- */

/* Within our own limits, but not the server's once encoded (XML escapes
 * included): sent, it would only make the server close the connection. */
static int too_large_for_server(Manager *mgr, sd_bus_error *error) {
        return bus_set_errno(error, -EMSGSIZE, "The message is too large for the server: encoded as XMPP it "
                             "would be over the %zu bytes the server takes",
                             session_max_stanza_bytes(mgr->session));
}

static int method_send_text(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL, *id = NULL;
        const char *conv_arg, *text;
        int r;

        r = sd_bus_message_read(m, "ss", &conv_arg, &text);
        if (r < 0)
                return r;
        conversation = bus_parse_user_jid(conv_arg, "conversation", error);
        if (!conversation)
                return -EINVAL;
        r = bus_check_text(text, error);
        if (r < 0)
                return r;

        r = session_send_text(mgr->session, conversation, text, &id);
        if (r == -EMSGSIZE)
                return too_large_for_server(mgr, error);
        if (r == -ENOTCONN)
                return bus_set_errno(error, r, "Not logged in: call Login first (and wait for it to succeed)");
        if (r < 0)
                return bus_set_errno(error, r, "Cannot send the message: %s", g_strerror(-r));
        return sd_bus_reply_method_return(m, "s", id);
}

static int method_send_custom(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL, *id = NULL;
        const char *conv_arg, *data, *description, *extension;
        int r;

        r = sd_bus_message_read(m, "ssss", &conv_arg, &data, &description, &extension);
        if (r < 0)
                return r;
        conversation = bus_parse_user_jid(conv_arg, "conversation", error);
        if (!conversation)
                return -EINVAL;
        if ((r = bus_check_optional_text(data, "data", CUSTOM_DATA_MAX, error)) < 0 ||
            (r = bus_check_optional_text(description, "description", TEXT_MAX_BYTES, error)) < 0 ||
            (r = bus_check_optional_text(extension, "extension", TEXT_MAX_BYTES, error)) < 0)
                return r;

        r = session_send_custom(mgr->session, conversation, data, description, extension, &id);
        if (r == -EMSGSIZE)
                return too_large_for_server(mgr, error);
        if (r == -EINVAL)
                return bus_set_errno(error, r, "The data is not a JSON document (at most %d levels deep)",
                                     CUSTOM_DATA_MAX_DEPTH);
        if (r == -ENOTCONN)
                return bus_set_errno(error, r, "Not logged in: call Login first (and wait for it to succeed)");
        if (r < 0)
                return bus_set_errno(error, r, "Cannot send the message: %s", g_strerror(-r));
        return sd_bus_reply_method_return(m, "s", id);
}

static int message_action_error(Manager *mgr, int r, const char *conversation, const char *id, sd_bus_error *error) {
        switch (r) {
        case -ENOTCONN:
                return bus_set_errno(error, r, "Not logged in: call Login first (and wait for it to succeed)");
        case -ENOENT:
                return bus_set_errno(error, r, "No message %s in the conversation with %s", id, conversation);
        case -EPERM:
                return bus_set_errno(error, r, "Message %s cannot be changed: it is not a text message of yours "
                                     "(or it was revoked)", id);
        case -ETIME:
                return bus_set_errno(error, r, "Message %s was sent more than %u seconds ago", id,
                                     session_revoke_window_s(mgr->session));
        case -ENETDOWN:
                return bus_set_errno(error, r, "Not connected to the server right now; try again when NetState "
                                     "is \"connected\"");
        case -EMSGSIZE:
                return too_large_for_server(mgr, error);
        default:
                return bus_set_errno(error, r, "Cannot change the message: %s", g_strerror(-r));
        }
}

static int method_revoke_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL;
        const char *id = NULL;         /* set by bus_read_message_ref() */
        int r;

        r = bus_read_message_ref(m, &conversation, &id, error);
        if (r < 0)
                return r;
        r = session_revoke_message(mgr->session, conversation, id);
        if (r < 0)
                return message_action_error(mgr, r, conversation, id, error);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_edit_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL;
        const char *id = NULL, *text;
        int r;

        r = bus_read_message_ref(m, &conversation, &id, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "s", &text);
        if (r < 0)
                return r;
        r = bus_check_text(text, error);
        if (r < 0)
                return r;
        r = session_edit_message(mgr->session, conversation, id, text);
        if (r < 0)
                return message_action_error(mgr, r, conversation, id, error);
        return sd_bus_reply_method_return(m, NULL);
}

static int method_react(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL;
        const char *reactions[XMPP_REACTIONS_MAX], *reaction;
        const char *id = NULL;         /* set by bus_read_message_ref() */
        size_t n = 0;
        int r;

        r = bus_read_message_ref(m, &conversation, &id, error);
        if (r < 0)
                return r;
        /* Counted while read: sd_bus_message_read_strv() grows its array one
         * string at a time, and 300,000 of them took 25 s of the main loop. */
        r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read_basic(m, 's', &reaction)) > 0) {
                if (n == XMPP_REACTIONS_MAX)
                        return bus_set_errno(error, -E2BIG, "At most %d reactions per message", XMPP_REACTIONS_MAX);
                reactions[n++] = reaction;
        }
        if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0)
                return r;
        r = session_react(mgr->session, conversation, id, reactions, n);
        switch (r) {
        case 0:
                return sd_bus_reply_method_return(m, NULL);
        case -EINVAL:
                return bus_set_errno(error, r, "Each reaction must be one emoji: non-empty, at most %d bytes, "
                                     "no white space, none twice", XMPP_REACTION_MAX_BYTES);
        case -E2BIG:
                return bus_set_errno(error, r, "At most %d reactions per message", XMPP_REACTIONS_MAX);
        case -EPERM:
                return bus_set_errno(error, r, "Message %s was revoked", id);
        default:
                return message_action_error(mgr, r, conversation, id, error);
        }
}

static int method_set_typing(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL;
        const char *conv_arg;
        int typing, r;

        r = sd_bus_message_read(m, "sb", &conv_arg, &typing);
        if (r < 0)
                return r;
        conversation = bus_parse_user_jid(conv_arg, "conversation", error);
        if (!conversation)
                return -EINVAL;

        r = session_set_typing(mgr->session, conversation, typing);
        if (r == -ENOTCONN)
                return bus_set_errno(error, r, "Not logged in: call Login first (and wait for it to succeed)");
        if (r == -ENETDOWN)
                return bus_set_errno(error, r, "Not connected to the server right now; typing is not queued");
        if (r < 0)
                return bus_set_errno(error, r, "Cannot send the typing state: %s", g_strerror(-r));
        return sd_bus_reply_method_return(m, NULL);
}

static int method_get_conversations(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autoptr(GPtrArray) convs = NULL;
        sd_bus_message *reply = NULL;
        int r;

        r = session_get_conversations(mgr->session, &convs);
        if (r < 0)
                return bus_set_errno(error, r, "Cannot read the conversations");
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = bus_append_conversations(reply, convs, 0);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

/* The page is ready (perhaps after a trip to the server archive): the reply. */
static void on_messages_page(int error, GPtrArray *msgs, bool complete, void *userdata) {
        sd_bus_message *call = userdata;
        sd_bus_message *reply = NULL;
        int r, n = 0;

        if (error < 0) {
                bus_reply_errno(call, error, "Cannot read the history");
                sd_bus_message_unref(call);
                return;
        }
        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = n = bus_append_messages(reply, msgs);
        /* Cut at the byte bound: older messages follow on the next page. */
        if (r >= 0)
                r = sd_bus_message_append(reply, "b", complete && (guint) n == msgs->len);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                bus_reply_errno(call, r, "Cannot build the reply");
        sd_bus_message_unref(reply);
        sd_bus_message_unref(call);
}

static int method_get_messages(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL;
        const char *conv_arg, *before_id;
        uint32_t limit;
        int r;

        r = sd_bus_message_read(m, "ssu", &conv_arg, &before_id, &limit);
        if (r < 0)
                return r;
        conversation = bus_parse_user_jid(conv_arg, "conversation", error);
        if (!conversation)
                return -EINVAL;
        if (strlen(before_id) > ID_MAX_BYTES)
                return bus_set_errno(error, -EINVAL, "before_id is too long");
        if (limit < 1 || limit > MESSAGES_MAX_LIMIT)
                return bus_set_errno(error, -EINVAL, "limit must be between 1 and %d", MESSAGES_MAX_LIMIT);

        r = session_get_messages_async(mgr->session, conversation, before_id, limit, on_messages_page,
                                       sd_bus_message_ref(m));
        if (r < 0)
                sd_bus_message_unref(m);
        if (r == -ENOTCONN)
                return bus_set_errno(error, r, "No account's history is open: call Login first");
        if (r == -ENOENT)
                return bus_set_errno(error, r, "No message '%.100s' in %s", before_id, conversation);
        if (r < 0)
                return bus_set_errno(error, r, "Cannot read the history");
        return 1;       /* answered by on_messages_page(), now or later */
}

static int method_search_messages(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autoptr(GPtrArray) msgs = NULL;
        g_autofree char *conversation = NULL;
        const char *query, *conv_arg;
        sd_bus_message *reply = NULL;
        uint32_t limit;
        int r;

        r = sd_bus_message_read(m, "ssu", &query, &conv_arg, &limit);
        if (r < 0)
                return r;
        r = bus_check_optional_text(query, "query", SEARCH_QUERY_MAX_BYTES, error);
        if (r < 0)
                return r;
        if (*conv_arg && !(conversation = bus_parse_user_jid(conv_arg, "conversation", error)))
                return -EINVAL;
        if (limit < 1 || limit > MESSAGES_MAX_LIMIT)
                return bus_set_errno(error, -EINVAL, "limit must be between 1 and %d", MESSAGES_MAX_LIMIT);

        r = session_search(mgr->session, query, conversation, limit, &msgs);
        if (r == -ENOTCONN)
                return bus_set_errno(error, r, "No account's history is open: call Login first");
        if (r == -EINVAL)
                return bus_set_errno(error, r, "The query has no word to search for");
        if (r < 0)
                return bus_set_errno(error, r, "Cannot search the history");
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = bus_append_messages(reply, msgs);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r;
}

static int method_mark_read(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        g_autofree char *conversation = NULL;
        const char *conv_arg;
        int r;

        r = sd_bus_message_read(m, "s", &conv_arg);
        if (r < 0)
                return r;
        conversation = bus_parse_user_jid(conv_arg, "conversation", error);
        if (!conversation)
                return -EINVAL;

        r = session_mark_read(mgr->session, conversation);
        if (r == -ENOTCONN)
                return bus_set_errno(error, r, "No account's history is open: call Login first");
        if (r == -ENOENT)
                return bus_set_errno(error, r, "No conversation with %s", conversation);
        if (r < 0)
                return bus_set_errno(error, r, "Cannot update the history");
        return sd_bus_reply_method_return(m, NULL);
}

/* --- GetEventsSince --- */

static int method_get_events_since(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;
        sd_bus_message *reply = NULL;
        uint64_t after;
        int r;

        r = sd_bus_message_read(m, "t", &after);
        if (r < 0)
                return r;
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = event_log_append_since(mgr->events, reply, after);
        if (r >= 0)
                r = sd_bus_message_append(reply, "t", event_log_last(mgr->events));
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        if (r == -ESTALE)
                return bus_set_errno(error, -ENOENT,
                                     "Events after %" PRIu64 " are no longer kept (the oldest that may be asked "
                                     "for is %" PRIu64 "): read the state again, or ask for 0",
                                     after, event_log_dropped_upto(mgr->events));
        return r;
}

/* --- properties --- */

static int property_get(sd_bus *bus, const char *path, const char *interface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *mgr = userdata;

        if (strcmp(property, "NetState") == 0)
                return sd_bus_message_append(reply, "s",
                                             session_net_state_to_string(session_net_state(mgr->session)));
        if (strcmp(property, "Ready") == 0)
                return sd_bus_message_append(reply, "b", session_is_ready(mgr->session));
        if (strcmp(property, "Account") == 0)
                return sd_bus_message_append(reply, "s", session_account(mgr->session));
        if (strcmp(property, "UnreadTotal") == 0)
                return sd_bus_message_append(reply, "u", session_unread_total(mgr->session));
        if (strcmp(property, "Recording") == 0)
                return sd_bus_message_append(reply, "b", session_is_recording(mgr->session));
        if (strcmp(property, "LastEvent") == 0)
                return sd_bus_message_append(reply, "t", event_log_last(mgr->events));
        return -ENOENT;
}

static const sd_bus_vtable im_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Login",
                                SD_BUS_ARGS("s", jid, "s", password, "a{sv}", options),
                                SD_BUS_NO_RESULT,
                                method_login, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("Logout", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT,
                                method_logout, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SendText",
                                SD_BUS_ARGS("s", conversation, "s", text),
                                SD_BUS_RESULT("s", id),
                                method_send_text, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetConversations", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("aa{sv}", conversations),
                                method_get_conversations, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetMessages",
                                SD_BUS_ARGS("s", conversation, "s", before_id, "u", limit),
                                SD_BUS_RESULT("aa{sv}", messages, "b", complete),
                                method_get_messages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SearchMessages",
                                SD_BUS_ARGS("s", query, "s", conversation, "u", limit),
                                SD_BUS_RESULT("aa{sv}", messages),
                                method_search_messages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MarkRead",
                                SD_BUS_ARGS("s", conversation),
                                SD_BUS_NO_RESULT,
                                method_mark_read, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SendCustom",
                                SD_BUS_ARGS("s", conversation, "s", data, "s", description, "s", extension),
                                SD_BUS_RESULT("s", id),
                                method_send_custom, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RevokeMessage",
                                SD_BUS_ARGS("s", conversation, "s", id),
                                SD_BUS_NO_RESULT,
                                method_revoke_message, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("EditMessage",
                                SD_BUS_ARGS("s", conversation, "s", id, "s", text),
                                SD_BUS_NO_RESULT,
                                method_edit_message, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("React",
                                SD_BUS_ARGS("s", conversation, "s", id, "as", emoji),
                                SD_BUS_NO_RESULT,
                                method_react, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SendFile",
                                SD_BUS_ARGS("s", conversation, "h", fd, "a{sv}", info),
                                SD_BUS_RESULT("s", id),
                                bus_method_send_file, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ResendMessage",
                                SD_BUS_ARGS("s", conversation, "s", id),
                                SD_BUS_NO_RESULT,
                                bus_method_resend_message, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FetchMedia",
                                SD_BUS_ARGS("s", conversation, "s", id),
                                SD_BUS_RESULT("h", fd),
                                bus_method_fetch_media, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StartRecording",
                                SD_BUS_ARGS("s", conversation),
                                SD_BUS_NO_RESULT,
                                bus_method_start_recording, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("StopRecording",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("s", id),
                                bus_method_stop_recording, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CancelRecording",
                                SD_BUS_NO_ARGS,
                                SD_BUS_NO_RESULT,
                                bus_method_cancel_recording, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetEventsSince",
                                SD_BUS_ARGS("t", after),
                                SD_BUS_RESULT("a(tsv)", events, "t", last),
                                method_get_events_since, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetTyping",
                                SD_BUS_ARGS("s", conversation, "b", typing),
                                SD_BUS_NO_RESULT,
                                method_set_typing, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("MessageReceived", SD_BUS_ARGS("a{sv}", message), 0),
        SD_BUS_SIGNAL_WITH_ARGS("ConversationsChanged", SD_BUS_ARGS("aa{sv}", conversations), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Error", SD_BUS_ARGS("s", name, "s", message), 0),
        SD_BUS_SIGNAL_WITH_ARGS("KickedOut", SD_BUS_ARGS("s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MessageStatusChanged",
                                SD_BUS_ARGS("s", conversation, "s", id, "s", status), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MessageReadByPeer", SD_BUS_ARGS("s", conversation, "s", id), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MessageRevoked", SD_BUS_ARGS("s", conversation, "s", id), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MessageEdited", SD_BUS_ARGS("s", conversation, "s", id, "s", text), 0),
        SD_BUS_SIGNAL_WITH_ARGS("ReactionsChanged",
                                SD_BUS_ARGS("s", conversation, "s", id, "a{sas}", reactions), 0),
        SD_BUS_SIGNAL_WITH_ARGS("RecordingLevel", SD_BUS_ARGS("d", peak), 0),
        SD_BUS_SIGNAL_WITH_ARGS("RecordingStopped",
                                SD_BUS_ARGS("s", conversation, "s", id, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("TransferProgress",
                                SD_BUS_ARGS("s", conversation, "s", id, "t", done, "t", total), 0),
        SD_BUS_SIGNAL_WITH_ARGS("Typing", SD_BUS_ARGS("s", conversation, "s", who, "b", typing), 0),
        SD_BUS_PROPERTY("NetState", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Ready", "b", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Account", "s", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UnreadTotal", "u", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Recording", "b", property_get, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastEvent", "t", property_get, 0, 0),
        SD_BUS_VTABLE_END
};

int bus_object_add(Manager *m) {
        return sd_bus_add_object_vtable(m->bus, &m->object_slot, IM_OBJECT_PATH, IM_INTERFACE, im_vtable, m);
}

/* --- session events -> signals --- */

/* How often a backed-up bus is checked for having written its queue. */
#define ANNOUNCE_CHECK_MS 5

/* Sends SIG (consumed) through the event log; R: how building it went. */
static void emit_signal_logged(Manager *mgr, sd_bus_message *sig, int r, bool keep, size_t weight) {
        const char *name = sig ? sd_bus_message_get_member(sig) : "a signal";

        if (r >= 0)
                r = event_log_send(mgr->events, mgr->bus, sig, keep, weight);
        else
                sd_bus_message_unref(sig);
        if (r < 0)
                g_warning("Cannot emit %s: %s", name, g_strerror(-r));
}

/* A signal whose arguments are basic types (s, b, u, t, d), as
 * sd_bus_emit_signal() takes them, sent through the event log and kept
 * unless it only describes a moment (RecordingLevel, TransferProgress). */
static void emit(Manager *mgr, bool keep, const char *member, const char *types, ...) {
        sd_bus_message *sig = NULL;
        size_t weight = 0;
        va_list ap;
        int r;

        if (!mgr->bus)
                return;
        r = sd_bus_message_new_signal(mgr->bus, &sig, IM_OBJECT_PATH, IM_INTERFACE, member);
        if (r < 0) {
                g_warning("Cannot emit %s: %s", member, g_strerror(-r));
                return;
        }
        va_start(ap, types);
        r = sd_bus_message_appendv(sig, types, ap);
        va_end(ap);
        va_start(ap, types);
        for (const char *t = types; *t; t++)
                switch (*t) {
                case 's': {
                        const char *str = va_arg(ap, const char *);
                        weight += (str ? strlen(str) : 0) + 8;
                        break;
                }
                case 'b': case 'u': (void) va_arg(ap, int); weight += 4; break;
                case 't': (void) va_arg(ap, uint64_t); weight += 8; break;
                case 'd': (void) va_arg(ap, double); weight += 8; break;
                default: g_assert_not_reached();
                }
        va_end(ap);
        emit_signal_logged(mgr, sig, r, keep, weight);
}

static void on_state_changed(void *userdata) {
        Manager *mgr = userdata;
        /* no session yet while session_new() opens the last account */
        const char *account = mgr->session ? session_account(mgr->session) : "";

        /* Another account's history is open (logged out in between or not),
         * or none (system mode, logged out): what was said before is not
         * this account's, or anyone's, to replay. */
        if (g_strcmp0(*account ? account : NULL, mgr->events_account) != 0) {
                if (mgr->events_account)
                        event_log_forget(mgr->events);
                g_free(mgr->events_account);
                mgr->events_account = *account ? g_strdup(account) : NULL;
        }
        if (mgr->bus)
                sd_bus_emit_properties_changed(mgr->bus, IM_OBJECT_PATH, IM_INTERFACE,
                                               "NetState", "Ready", "Account", NULL);
}

static void on_unread_total_changed(void *userdata) {
        Manager *mgr = userdata;
        if (mgr->bus)
                sd_bus_emit_properties_changed(mgr->bus, IM_OBJECT_PATH, IM_INTERFACE, "UnreadTotal", NULL);
}

/* True once everything sd-bus was given is in the kernel's socket buffer: from
 * there dbus-daemon gets it even if imd is killed the next moment. */
static bool bus_written(Manager *mgr) {
        uint64_t queued = 0;
        return sd_bus_get_n_queued_write(mgr->bus, &queued) >= 0 && queued == 0;
}

static gboolean on_announce_check(gpointer userdata) {
        Manager *mgr = userdata;

        if (mgr->bus && !bus_written(mgr))
                return G_SOURCE_CONTINUE;
        mgr->announce_source = 0;
        if (mgr->bus)
                session_messages_announced(mgr->session, mgr->announce_seq);
        return G_SOURCE_REMOVE;
}

/* Tells the session that the MessageReceived signals up to seq are out, as soon
 * as they are: usually at once (sd-bus writes straight to the socket), else
 * when the write queue has drained. */
static void confirm_announced(Manager *mgr, int64_t seq) {
        if (mgr->stopping && !bus_written(mgr))
                sd_bus_flush(mgr->bus);         /* the loop will not run again */
        if (!mgr->announce_source && bus_written(mgr)) {
                session_messages_announced(mgr->session, seq);
                return;
        }
        mgr->announce_seq = seq;
        if (!mgr->announce_source)
                mgr->announce_source = g_timeout_add(ANNOUNCE_CHECK_MS, on_announce_check, mgr);
}

static void on_messages_added(GPtrArray *messages, void *userdata) {
        Manager *mgr = userdata;

        if (!mgr->bus || messages->len == 0)
                return;
        for (guint i = 0; i < messages->len; i++) {
                sd_bus_message *sig = NULL;
                const StoreMessage *msg = g_ptr_array_index(messages, i);
                int r = sd_bus_message_new_signal(mgr->bus, &sig, IM_OBJECT_PATH, IM_INTERFACE, "MessageReceived");
                if (r >= 0)
                        r = mgr->system_bus ? bus_append_message_ref(sig, msg) : bus_append_message(sig, msg);
                emit_signal_logged(mgr, sig, r, true, bus_message_weight(g_ptr_array_index(messages, i)));
        }
        confirm_announced(mgr, ((StoreMessage *) g_ptr_array_index(messages, messages->len - 1))->seq);
}

/* One signal per BUS_LIST_MAX_BYTES of conversations (a roster naming them
 * all at login changes every one): a signal over dbus-daemon's limit would
 * cost imd its bus, and a cut one would lose the rest. */
static void on_conversations_changed(GPtrArray *conversations, void *userdata) {
        Manager *mgr = userdata;

        if (!mgr->bus)
                return;
        for (guint start = 0; start < conversations->len;) {
                sd_bus_message *sig = NULL;
                int r = sd_bus_message_new_signal(mgr->bus, &sig, IM_OBJECT_PATH, IM_INTERFACE,
                                                  "ConversationsChanged");
                if (r >= 0)
                        r = mgr->system_bus ? bus_append_conversation_refs(sig, conversations, start)
                                            : bus_append_conversations(sig, conversations, start);
                emit_signal_logged(mgr, sig, r, true,
                                   r > 0 ? bus_conversations_weight(conversations, start, (guint) r) : 0);
                if (r <= 0)
                        return;
                start += (guint) r;
        }
}

static void on_error(int error, const char *text, void *userdata) {
        Manager *mgr = userdata;

        g_message("%s", text);
        /* The text may name a file, a peer or the server's words: on the
         * system bus, where anyone may listen, only the kind of error goes
         * out (the details are in imd's log, a message's own status tells
         * a member which one failed). */
        emit(mgr, true, "Error", "ss", bus_error_name_from_errno(error),
             mgr->system_bus ? bus_error_text_from_errno(error) : text);
}

static void on_login_finished(int error, const char *text, void *userdata) {
        Manager *mgr = userdata;
        sd_bus_message *call = g_steal_pointer(&mgr->pending_login);

        if (!call)
                return;
        if (error == 0)
                sd_bus_reply_method_return(call, NULL);
        else
                bus_reply_errno(call, error, text);
        sd_bus_message_unref(call);
}

static void on_kicked_out(const char *reason, const char *text, void *userdata) {
        Manager *mgr = userdata;

        g_message("Kicked out (%s): %s", reason, text);
        emit(mgr, true, "KickedOut", "s", reason);
}

static void on_message_status_changed(const char *conversation, const char *id, const char *status,
                                      void *userdata) {
        Manager *mgr = userdata;

        emit(mgr, true, "MessageStatusChanged", "sss", conversation, id, status);
}

static void on_read_by_peer(const char *conversation, const char *id, void *userdata) {
        Manager *mgr = userdata;

        emit(mgr, true, "MessageReadByPeer", "ss", conversation, id);
}

static void on_message_revoked(const char *conversation, const char *id, void *userdata) {
        Manager *mgr = userdata;

        emit(mgr, true, "MessageRevoked", "ss", conversation, id);
}

static void on_message_edited(const char *conversation, const char *id, const char *text, void *userdata) {
        Manager *mgr = userdata;

        /* on the system bus the new text is fetched with GetMessages */
        emit(mgr, true, "MessageEdited", "sss", conversation, id, mgr->system_bus ? "" : text);
}

static void on_reactions_changed(const char *conversation, const char *id, const char *reactions,
                                 void *userdata) {
        Manager *mgr = userdata;
        sd_bus_message *sig = NULL;
        int r;

        if (!mgr->bus)
                return;
        r = sd_bus_message_new_signal(mgr->bus, &sig, IM_OBJECT_PATH, IM_INTERFACE, "ReactionsChanged");
        if (r >= 0)
                r = sd_bus_message_append(sig, "ss", conversation, id);
        if (r >= 0)
                r = bus_append_reactions(sig, mgr->system_bus ? NULL : reactions);
        emit_signal_logged(mgr, sig, r, true, strlen(conversation) + strlen(id) + (reactions ? strlen(reactions) : 0));
}

static void on_typing(const char *conversation, const char *who, bool typing, void *userdata) {
        Manager *mgr = userdata;

        emit(mgr, false, "Typing", "ssb", conversation, who, (int) typing);
}

static void on_transfer_progress(const char *conversation, const char *id, uint64_t sent, uint64_t total,
                                 void *userdata) {
        Manager *mgr = userdata;

        emit(mgr, false, "TransferProgress", "sstt", conversation, id, sent, total);
}

static void on_recording_changed(void *userdata) {
        Manager *mgr = userdata;

        if (mgr->bus)
                sd_bus_emit_properties_changed(mgr->bus, IM_OBJECT_PATH, IM_INTERFACE, "Recording", NULL);
}

static void on_recording_level(double peak, void *userdata) {
        Manager *mgr = userdata;

        emit(mgr, false, "RecordingLevel", "d", peak);
}

static void on_recording_stopped(const char *conversation, const char *id, const char *reason, void *userdata) {
        Manager *mgr = userdata;

        emit(mgr, true, "RecordingStopped", "sss", conversation, id ? id : "", reason);
}

const SessionEvents bus_session_events = {
        .state_changed = on_state_changed,
        .messages_added = on_messages_added,
        .conversations_changed = on_conversations_changed,
        .unread_total_changed = on_unread_total_changed,
        .login_finished = on_login_finished,
        .error = on_error,
        .kicked_out = on_kicked_out,
        .message_status_changed = on_message_status_changed,
        .read_by_peer = on_read_by_peer,
        .typing = on_typing,
        .message_revoked = on_message_revoked,
        .message_edited = on_message_edited,
        .reactions_changed = on_reactions_changed,
        .transfer_progress = on_transfer_progress,
        .recording_changed = on_recording_changed,
        .recording_level = on_recording_level,
        .recording_stopped = on_recording_stopped,
};
