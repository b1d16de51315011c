/* SPDX-License-Identifier: MIT */
/*
 * The org.freedesktop.Notifications side: which server runs, what it can do
 * (GetCapabilities, asked again whenever another server takes the name),
 * Notify / CloseNotification, and its signals.
 *
 * Servers send ActionInvoked and NotificationClosed to the connection that
 * called Notify only (dunst), or to everyone (others): the matches take both,
 * and only signals of the server that runs now count, since ids belong to it.
 *
 * Notify waits until the server's capabilities are known: the body is
 * markup for a server with body-markup (text must be escaped) and literal
 * for one without (escaped text would show "&amp;"). With no server
 * running, GetCapabilities to the well-known name is what starts one by
 * D-Bus activation, rather than the first Notify.
 */
#include <errno.h>
#include <string.h>

#include "im-notify.h"

struct Notifier {
        sd_bus *bus;
        NotifierCallbacks cb;
        void *userdata;

        char *unique;           /* the server's unique name, NULL when none runs */
        char *key;              /* bus id + unique name */
        bool known;             /* GetNameOwner answered or the name changed hands */
        bool caps_known;        /* the server that runs answered GetCapabilities */
        bool wanted;            /* a notification waits for caps_known */
        bool inline_reply;      /* "inline-reply": NotificationReplied (KDE) */
        bool markup;            /* "body-markup": the body must be escaped */
        sd_bus_slot *owner_slot;
        sd_bus_slot *caps_slot;
        sd_bus_slot *matches[4];
};

/* An error the server itself sent, not the bus (no server, none could be
 * started, it left) nor sd-bus (timeout). */
static bool answered_by_server(sd_bus_message *reply) {
        const char *sender = sd_bus_message_get_sender(reply);

        return sender && strcmp(sender, "org.freedesktop.DBus") != 0;
}

static void capabilities_done(Notifier *n, bool ok) {
        n->caps_known = ok;
        n->wanted = false;
        if (n->cb.ready)
                n->cb.ready(ok, n->userdata);
}

static int on_capabilities(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        const char *cap;
        int r;

        n->caps_slot = sd_bus_slot_unref(n->caps_slot);
        n->inline_reply = n->markup = false;
        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);

                if (!answered_by_server(reply)) {
                        log_warning("no notification server: %s (%s)", e->message ? e->message : "", e->name);
                        capabilities_done(n, false);
                        return 0;
                }
                /* it runs but cannot tell: plain text, the spec's baseline */
                log_warning("notification server: GetCapabilities failed: %s", e->message ? e->message : "");
                capabilities_done(n, true);
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'a', "s");
        while (r > 0 && (r = sd_bus_message_read_basic(reply, 's', &cap)) > 0) {
                if (strcmp(cap, "inline-reply") == 0)
                        n->inline_reply = true;
                else if (strcmp(cap, "body-markup") == 0)
                        n->markup = true;
        }
        if (r < 0)
                log_warning("notification server: bad GetCapabilities reply: %s", strerror(-r));
        capabilities_done(n, true);
        return 0;
}

static void query_capabilities(Notifier *n) {
        /* to the unique name: a reply from a server that has gone since says nothing */
        const char *destination = n->unique;
        int r;

        n->caps_slot = sd_bus_slot_unref(n->caps_slot);
        n->caps_known = n->inline_reply = n->markup = false;
        if (!destination) {
                if (!n->wanted)
                        return;
                /* none runs: this call starts one if D-Bus can; its
                 * NameOwnerChanged then asks the new one by its name */
                destination = NOTIFY_SERVICE;
        }
        r = sd_bus_call_method_async(n->bus, &n->caps_slot, destination, NOTIFY_PATH, NOTIFY_INTERFACE,
                                     "GetCapabilities", on_capabilities, n, NULL);
        if (r < 0) {
                log_warning("notification server: cannot ask for its capabilities: %s", strerror(-r));
                if (n->wanted)
                        capabilities_done(n, false);
        }
}

static void set_server(Notifier *n, const char *unique) {
        bool first = !n->known;

        if (unique && !unique[0])
                unique = NULL;
        n->known = true;
        if (!first && g_strcmp0(n->unique, unique) == 0)
                return;
        g_free(n->unique);
        g_free(n->key);
        n->unique = g_strdup(unique);
        n->key = unique ? owner_key_for(n->bus, unique) : NULL;
        query_capabilities(n);
        if (n->cb.server)
                n->cb.server(n->key, n->userdata);
}

static int on_name_owner(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        const char *unique = NULL;

        n->owner_slot = sd_bus_slot_unref(n->owner_slot);
        /* NameOwnerChanged came first: it is newer than this answer */
        if (n->known)
                return 0;
        if (!sd_bus_message_is_method_error(reply, NULL) && sd_bus_message_read(reply, "s", &unique) < 0)
                unique = NULL;
        set_server(n, unique);
        return 0;
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        const char *name, *old_owner, *new_owner;

        if (!sent_by_bus(m) || sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 ||
            strcmp(name, NOTIFY_SERVICE) != 0)
                return 0;
        n->owner_slot = sd_bus_slot_unref(n->owner_slot);
        set_server(n, new_owner);
        return 0;
}

static bool from_server(Notifier *n, sd_bus_message *m) {
        const char *sender = sd_bus_message_get_sender(m);

        return n->unique && sender && strcmp(sender, n->unique) == 0;
}

static int on_action_invoked(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        const char *key;
        uint32_t id;

        if (from_server(n, m) && sd_bus_message_read(m, "us", &id, &key) >= 0 && n->cb.action_invoked)
                n->cb.action_invoked(id, key, n->userdata);
        return 0;
}

static int on_replied(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        const char *text;
        uint32_t id;

        if (from_server(n, m) && sd_bus_message_read(m, "us", &id, &text) >= 0 && n->cb.replied)
                n->cb.replied(id, text, n->userdata);
        return 0;
}

static int on_closed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        uint32_t id, reason;

        if (from_server(n, m) && sd_bus_message_read(m, "uu", &id, &reason) >= 0 && n->cb.closed)
                n->cb.closed(id, n->userdata);
        return 0;
}

int notifier_new(sd_bus *bus, const NotifierCallbacks *cb, void *userdata, Notifier **ret) {
        static const struct {
                const char *member;
                sd_bus_message_handler_t handler;
        } signals[] = {
                { "ActionInvoked",       on_action_invoked },
                { "NotificationReplied", on_replied },
                { "NotificationClosed",  on_closed },
        };
        Notifier *n;
        int r;

        n = g_new0(Notifier, 1);
        n->bus = sd_bus_ref(bus);
        n->cb = *cb;
        n->userdata = userdata;

        r = sd_bus_add_match(bus, &n->matches[0],
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                             "arg0='" NOTIFY_SERVICE "'", on_owner_changed, n);
        for (size_t i = 0; r >= 0 && i < G_N_ELEMENTS(signals); i++)
                r = sd_bus_match_signal(bus, &n->matches[1 + i], NOTIFY_SERVICE, NOTIFY_PATH, NOTIFY_INTERFACE,
                                        signals[i].member, signals[i].handler, n);
        /* never auto-started here: Notify itself may start a server */
        if (r >= 0)
                r = sd_bus_call_method_async(bus, &n->owner_slot, "org.freedesktop.DBus",
                                             "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner",
                                             on_name_owner, n, "s", NOTIFY_SERVICE);
        if (r < 0) {
                notifier_free(n);
                return r;
        }
        *ret = n;
        return 0;
}

Notifier *notifier_free(Notifier *n) {
        if (!n)
                return NULL;
        sd_bus_slot_unref(n->owner_slot);
        sd_bus_slot_unref(n->caps_slot);
        for (size_t i = 0; i < G_N_ELEMENTS(n->matches); i++)
                sd_bus_slot_unref(n->matches[i]);
        sd_bus_unref(n->bus);
        g_free(n->unique);
        g_free(n->key);
        g_free(n);
        return NULL;
}

const char *notifier_server_key(const Notifier *n) {
        return n->key;
}

bool notifier_ready(const Notifier *n) {
        return n->caps_known;
}

void notifier_wait_ready(Notifier *n) {
        if (n->caps_known || n->wanted)
                return;
        n->wanted = true;
        /* before GetNameOwner's answer, set_server() asks */
        if (n->known && !n->caps_slot)
                query_capabilities(n);
}

int notifier_show(Notifier *n, uint32_t replaces_id, const char *summary, const char *body,
                  sd_bus_message_handler_t callback, void *userdata, sd_bus_slot **ret_slot) {
        _cleanup_message_ sd_bus_message *m = NULL;
        _cleanup_free_ char *escaped = NULL;
        int r;

        if (!n->caps_known)
                return -EAGAIN;
        /* the spec: with body-markup the body is markup, so text must be escaped */
        if (n->markup)
                body = escaped = g_markup_escape_text(body, -1);

        r = sd_bus_message_new_method_call(n->bus, &m, NOTIFY_SERVICE, NOTIFY_PATH, NOTIFY_INTERFACE, "Notify");
        if (r >= 0)
                r = sd_bus_message_append(m, "susss", "im-notify", replaces_id, "", summary, body);
        /* "default" is what clicking the notification does */
        if (r >= 0)
                r = n->inline_reply ?
                        sd_bus_message_append(m, "as", 4, "default", "Mark as read", "inline-reply", "Reply") :
                        sd_bus_message_append(m, "as", 2, "default", "Mark as read");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "category", "s", "im.received");
        if (r >= 0)
                r = sd_bus_message_append(m, "{sv}", "urgency", "y", (uint8_t) 1);
        if (r >= 0 && n->inline_reply)
                r = sd_bus_message_append(m, "{sv}", "x-kde-reply-placeholder-text", "s", "Reply…");
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        /* -1: the server's (the user's) timeout */
        if (r >= 0)
                r = sd_bus_message_append(m, "i", (int32_t) -1);
        if (r >= 0)
                r = sd_bus_call_async(n->bus, ret_slot, m, callback, userdata, 0);
        return r;
}

uint32_t notifier_reply_id(sd_bus_message *reply) {
        uint32_t id = 0;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);

                log_warning("cannot show a notification: %s (%s)", e->message ? e->message : "", e->name);
                return 0;
        }
        if (sd_bus_message_read(reply, "u", &id) < 0)
                return 0;
        return id;
}

static int on_close_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        /* gone already (expired, dismissed): nothing to do either way */
        return 0;
}

void notifier_close(Notifier *n, uint32_t id) {
        _cleanup_message_ sd_bus_message *m = NULL;
        int r;

        if (id == 0 || !n->unique)
                return;
        r = sd_bus_message_new_method_call(n->bus, &m, n->unique, NOTIFY_PATH, NOTIFY_INTERFACE,
                                           "CloseNotification");
        if (r >= 0)
                r = sd_bus_message_append(m, "u", id);
        if (r >= 0)
                r = sd_bus_call_async(n->bus, NULL, m, on_close_reply, NULL, 0);
        if (r < 0)
                log_warning("cannot close notification %u: %s", id, strerror(-r));
}
