/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "bus-auth.h"
#include "bus-errors.h"

#define CREDENTIALS_TIMEOUT_USEC (2ULL * 1000000ULL)

struct BusAuth {
        gid_t gid;
        /* unique name -> GINT_TO_POINTER(Verdict): a connection's
         * credentials cannot change, so it is asked about once; forgotten
         * when it leaves the bus */
        GHashTable *verdicts;
        sd_bus_slot *filter_slot, *watch_slot;
};

/* Reads UnixUserID and UnixGroupIDs of a GetConnectionCredentials reply:
 * what dbus-daemon took from the caller's socket (SO_PEERCRED, SO_PEERGROUPS)
 * when it connected. sd_bus_query_sender_creds() would give the uid but, in
 * this libsystemd, not the groups. */
static int read_credentials(sd_bus_message *reply, uid_t *ret_uid, GArray *gids) {
        bool have_uid = false, have_gids = false;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "UnixUserID") == 0) {
                        uint32_t uid;
                        r = sd_bus_message_read(reply, "v", "u", &uid);
                        *ret_uid = uid;
                        have_uid = true;
                } else if (strcmp(key, "UnixGroupIDs") == 0) {
                        const uint32_t *ids;
                        size_t size;

                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r >= 0)
                                r = sd_bus_message_read_array(reply, 'u', (const void **) &ids, &size);
                        if (r >= 0) {
                                for (size_t i = 0; i < size / sizeof(uint32_t); i++) {
                                        gid_t gid = ids[i];
                                        g_array_append_val(gids, gid);
                                }
                                have_gids = true;
                                r = sd_bus_message_exit_container(reply);
                        }
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        /* without the groups only root and imd's own user could be let in;
         * a bus that does not tell them gets nobody else in */
        return have_uid ? (have_gids ? 1 : 0) : -ENODATA;
}

typedef enum Verdict {
        VERDICT_UNKNOWN,        /* the bus did not say: refused this time, asked again next time */
        VERDICT_ALLOWED,
        VERDICT_REFUSED,
} Verdict;

/* What the credentials the bus holds for the sender of M say. */
static Verdict caller_verdict(Manager *mgr, sd_bus_message *m) {
        struct BusAuth *auth = mgr->auth;
        const char *sender = sd_bus_message_get_sender(m);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        g_autoptr(GArray) gids = g_array_new(FALSE, FALSE, sizeof(gid_t));
        uid_t uid = (uid_t) -1;
        bool allowed = false;
        Verdict verdict = VERDICT_UNKNOWN;
        int r;

        sd_bus_message *call = NULL;

        /* Synchronous, once per connection and only in system mode: the bus
         * answers at once, and a bounded wait keeps a stuck bus from holding
         * the loop for sd-bus's default 25 s. */
        r = sd_bus_message_new_method_call(mgr->bus, &call, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "GetConnectionCredentials");
        if (r >= 0)
                r = sd_bus_message_append(call, "s", sender);
        if (r >= 0)
                r = sd_bus_call(mgr->bus, call, CREDENTIALS_TIMEOUT_USEC, &error, &reply);
        sd_bus_message_unref(call);
        if (r >= 0)
                r = read_credentials(reply, &uid, gids);
        if (r < 0) {
                g_message("Cannot read the credentials of %s: %s", sender,
                          error.message ? error.message : g_strerror(-r));
                goto out;
        }
        if (uid == 0 || uid == geteuid())
                allowed = true;
        for (guint i = 0; !allowed && i < gids->len; i++)
                allowed = g_array_index(gids, gid_t, i) == auth->gid;
        g_debug("Caller %s: uid %u, %u groups: %s", sender, (unsigned) uid, gids->len,
                allowed ? "allowed" : "refused");
        verdict = allowed ? VERDICT_ALLOWED : VERDICT_REFUSED;
out:
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return verdict;
}

static int on_message(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Manager *mgr = userdata;
        struct BusAuth *auth = mgr->auth;
        const char *sender = sd_bus_message_get_sender(m);
        gpointer verdict;

        if (!sd_bus_message_is_method_call(m, NULL, NULL))
                return 0;
        if (!sender)
                return 0;       /* not from the bus: sd-bus's own */
        verdict = g_hash_table_lookup(auth->verdicts, sender);
        if (!verdict) {
                Verdict v = caller_verdict(mgr, m);

                /* only a definite answer is remembered for the connection */
                verdict = GINT_TO_POINTER(v);
                if (v != VERDICT_UNKNOWN)
                        g_hash_table_insert(auth->verdicts, g_strdup(sender), verdict);
        }
        if (GPOINTER_TO_INT(verdict) == VERDICT_ALLOWED)
                return 0;
        g_debug("Refusing %s.%s from %s", sd_bus_message_get_interface(m), sd_bus_message_get_member(m), sender);
        (void) bus_reply_errno(m, -EPERM, "Only members of the group allowed to use imd may call it");
        return 1;       /* handled: never reaches the object */
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Manager *mgr = userdata;
        const char *name, *old_owner, *new_owner, *sender = sd_bus_message_get_sender(m);

        if (!sender || strcmp(sender, "org.freedesktop.DBus") != 0)
                return 0;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (name[0] == ':' && new_owner[0] == '\0')
                g_hash_table_remove(mgr->auth->verdicts, name);
        return 0;
}

int bus_auth_install(Manager *m, gid_t gid) {
        struct BusAuth *auth = g_new0(struct BusAuth, 1);
        int r;

        auth->gid = gid;
        auth->verdicts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        m->auth = auth;
        r = sd_bus_add_filter(m->bus, &auth->filter_slot, on_message, m);
        if (r < 0)
                return r;
        /* synchronous: without it the verdicts would never be forgotten */
        return sd_bus_match_signal(m->bus, &auth->watch_slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                   "org.freedesktop.DBus", "NameOwnerChanged", on_name_owner_changed, m);
}

void bus_auth_free(Manager *m) {
        struct BusAuth *auth = m->auth;

        if (!auth)
                return;
        sd_bus_slot_unref(auth->filter_slot);
        sd_bus_slot_unref(auth->watch_slot);
        g_hash_table_unref(auth->verdicts);
        g_free(auth);
        m->auth = NULL;
}
