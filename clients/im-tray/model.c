/* SPDX-License-Identifier: MIT */
/*
 * The model: imd's properties and conversations, as its public D-Bus API
 * reports them.
 *
 * Everything is read asynchronously, so a busy or hung imd never freezes the
 * tray. Replies and signals of one sender arrive in the order it sent them, so
 * applying them in arrival order keeps the model consistent. When
 * org.example.IM changes hands (imd restarted) the model starts over: pending
 * reads of the old instance are dropped and everything is read again.
 *
 * Who imd is comes from the bus alone (GetNameOwner, then NameOwnerChanged
 * sent by org.freedesktop.DBus): a match's sender= is not checked by sd-bus
 * here, and anyone may send a signal straight to the tray, so a signal from
 * any other connection than imd's is ignored. The reads go to that unique
 * name too, so the answer of a later instance cannot be taken for this one's.
 *
 * Calls never auto-start imd: the tray shows the session, it does not decide
 * when there is one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tray.h"

static int set_string(char **dst, const char *s) {
        char *copy;

        if (*dst && strcmp(*dst, s) == 0)
                return 0;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        free(*dst);
        *dst = copy;
        return 1;
}

/* Reads a variant holding @type into @ret; skips (returns 0) a variant of any other type. */
static int read_variant(sd_bus_message *msg, char type, void *ret) {
        const char *contents;
        char t[2] = { type, 0 };
        int r;

        r = sd_bus_message_peek_type(msg, NULL, &contents);
        if (r < 0)
                return r;
        if (strcmp(contents, t) != 0) {
                r = sd_bus_message_skip(msg, "v");
                return r < 0 ? r : 0;
        }
        r = sd_bus_message_enter_container(msg, SD_BUS_TYPE_VARIANT, t);
        if (r < 0)
                return r;
        r = sd_bus_message_read_basic(msg, type, ret);
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(msg);
        return r < 0 ? r : 1;
}

/* One a{sv} conversation dictionary; the strings point into @msg. */
static int read_conversation(sd_bus_message *msg, struct conversation_fields *f) {
        int r;

        *f = (struct conversation_fields) { .name = "" };
        r = sd_bus_message_enter_container(msg, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "id") == 0)
                        r = read_variant(msg, 's', &f->id);
                else if (strcmp(key, "name") == 0)
                        r = read_variant(msg, 's', &f->name);
                else if (strcmp(key, "unread") == 0)
                        r = read_variant(msg, 'u', &f->unread);
                else if (strcmp(key, "time") == 0)
                        r = read_variant(msg, 'x', &f->time);
                else
                        r = sd_bus_message_skip(msg, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);
}

const struct conversation *model_find(const struct model *m, const char *id) {
        return conversations_find(m, id);
}

/* Reads an aa{sv} into the model; @replace: it is the whole list. */
static int read_conversations(struct model *m, sd_bus_message *msg, bool replace) {
        int r;

        if (replace)
                conversations_clear(m);
        r = sd_bus_message_enter_container(msg, SD_BUS_TYPE_ARRAY, "a{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_at_end(msg, false)) == 0) {
                struct conversation_fields f;

                r = read_conversation(msg, &f);
                if (r < 0)
                        return r;
                r = conversations_merge(m, &f);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        conversations_sort(m);
        return sd_bus_message_exit_container(msg);
}

static void refresh_conversations(struct model *m);

/* One property of org.example.IM; @msg is at its variant. */
static int apply_property(struct model *m, const char *name, sd_bus_message *msg) {
        const char *s;
        uint32_t u;
        int b, r;

        if (strcmp(name, "NetState") == 0) {
                r = read_variant(msg, 's', &s);
                return r > 0 ? set_string(&m->net_state, s) : r;
        }
        if (strcmp(name, "Account") == 0) {
                r = read_variant(msg, 's', &s);
                if (r > 0 && (r = set_string(&m->account, s)) > 0)
                        refresh_conversations(m);       /* another account's conversations */
                return r;
        }
        if (strcmp(name, "Ready") == 0) {
                r = read_variant(msg, 'b', &b);
                if (r > 0 && m->ready != !!b) {
                        m->ready = b;
                        /* a login may bring a whole history at once */
                        refresh_conversations(m);
                }
                return r;
        }
        if (strcmp(name, "UnreadTotal") == 0) {
                r = read_variant(msg, 'u', &u);
                if (r > 0 && m->unread_total != u) {
                        m->unread_total = u;
                        m->unread_total_changed = true;
                }
                return r;
        }
        return sd_bus_message_skip(msg, "v");
}

static int read_properties(struct model *m, sd_bus_message *msg) {
        int r;

        r = sd_bus_message_enter_container(msg, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
                const char *name;

                r = sd_bus_message_read(msg, "s", &name);
                if (r < 0)
                        return r;
                r = apply_property(m, name, msg);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);
}

static bool error_is_no_daemon(const sd_bus_error *e) {
        return sd_bus_error_has_name(e, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
               sd_bus_error_has_name(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER);
}

static int call_async(struct model *m, sd_bus_slot **slot, const char *interface, const char *member,
                      sd_bus_message_handler_t callback, const char *types, ...) {
        _cleanup_message_ sd_bus_message *call = NULL;
        va_list ap;
        int r;

        if (!m->imd_unique)
                return -ENOTCONN;
        r = sd_bus_message_new_method_call(m->tray->bus, &call, m->imd_unique, IM_PATH, interface, member);
        if (r < 0)
                return r;
        r = sd_bus_message_set_auto_start(call, false);
        if (r < 0)
                return r;
        if (types) {
                va_start(ap, types);
                r = sd_bus_message_appendv(call, types, ap);
                va_end(ap);
                if (r < 0)
                        return r;
        }
        return sd_bus_call_async(m->tray->bus, slot, call, callback, m, 0);
}

static int on_get_all(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct model *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        m->get_all_slot = sd_bus_slot_unref(m->get_all_slot);
        if (e) {
                if (!error_is_no_daemon(e))
                        tray_log("cannot read imd's properties: %s", e->message ? e->message : e->name);
                return 0;
        }
        m->running = true;
        r = read_properties(m, reply);
        if (r < 0)
                tray_log("imd sent properties the tray cannot read: %s", strerror(-r));
        tray_schedule_update(m->tray);
        return 0;
}

static void refresh_properties(struct model *m) {
        int r;

        m->get_all_slot = sd_bus_slot_unref(m->get_all_slot);
        r = call_async(m, &m->get_all_slot, "org.freedesktop.DBus.Properties", "GetAll", on_get_all,
                       "s", IM_INTERFACE);
        if (r < 0)
                tray_log("cannot ask imd for its properties: %s", strerror(-r));
}

static int on_get_conversations(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct model *m = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int r;

        m->get_conversations_slot = sd_bus_slot_unref(m->get_conversations_slot);
        if (e) {
                if (!error_is_no_daemon(e))
                        tray_log("cannot read the conversations: %s", e->message ? e->message : e->name);
                return 0;
        }
        r = read_conversations(m, reply, true);
        if (r < 0)
                tray_log("imd sent conversations the tray cannot read: %s", strerror(-r));
        tray_schedule_update(m->tray);
        return 0;
}

/* A newer read replaces one in flight: its answer would be older. */
static void refresh_conversations(struct model *m) {
        int r;

        m->get_conversations_slot = sd_bus_slot_unref(m->get_conversations_slot);
        r = call_async(m, &m->get_conversations_slot, IM_INTERFACE, "GetConversations",
                       on_get_conversations, NULL);
        if (r < 0)
                tray_log("cannot ask imd for the conversations: %s", strerror(-r));
}

/* Forget the old instance's state, then read the new one's, if there is one. */
static void model_restart(struct model *m, bool running) {
        m->get_all_slot = sd_bus_slot_unref(m->get_all_slot);
        m->get_conversations_slot = sd_bus_slot_unref(m->get_conversations_slot);
        m->running = false;
        m->ready = false;
        m->unread_total = 0;
        (void) set_string(&m->account, "");
        (void) set_string(&m->net_state, "disconnected");
        conversations_clear(m);
        if (running) {
                refresh_properties(m);
                refresh_conversations(m);
        }
        tray_schedule_update(m->tray);
}

/* org.example.IM is @unique's now (NULL or "": nobody's). */
static void set_owner(struct model *m, const char *unique) {
        char *copy = NULL;

        if (unique && !unique[0])
                unique = NULL;
        if (unique && m->imd_unique && strcmp(unique, m->imd_unique) == 0)
                return;
        if (!unique && !m->imd_unique)
                return;
        if (unique) {
                copy = strdup(unique);
                if (!copy) {
                        tray_log("out of memory");
                        return;
                }
        } else
                tray_log("imd left the bus");
        free(m->imd_unique);
        m->imd_unique = copy;
        model_restart(m, copy != NULL);
}

static bool from_imd(const struct model *m, sd_bus_message *msg) {
        const char *sender = sd_bus_message_get_sender(msg);

        return m->imd_unique && sender && strcmp(sender, m->imd_unique) == 0;
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        struct model *m = userdata;
        const char *name, *old_owner, *new_owner;

        if (!sent_by_bus(msg) || sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0 ||
            strcmp(name, IM_SERVICE) != 0)
                return 0;
        set_owner(m, new_owner);
        return 0;
}

/* The bus answers in order: a change after this answer comes as NameOwnerChanged after it. */
static int on_name_owner(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct model *m = userdata;
        const char *unique = NULL;

        m->owner_slot = sd_bus_slot_unref(m->owner_slot);
        /* an error is NameHasNoOwner: nobody runs imd yet */
        if (!sd_bus_message_is_method_error(reply, NULL) && sd_bus_message_read(reply, "s", &unique) < 0)
                unique = NULL;
        set_owner(m, unique);
        return 0;
}

static int on_properties_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        struct model *m = userdata;
        const char *interface;
        int r;

        if (!from_imd(m, msg))
                return 0;
        r = sd_bus_message_read(msg, "s", &interface);
        if (r < 0 || strcmp(interface, IM_INTERFACE) != 0)
                return 0;
        if (!m->running) {
                /* the first read failed (imd was busy past the call timeout):
                 * it is there after all, read everything again */
                m->running = true;
                refresh_properties(m);
                refresh_conversations(m);
        }
        r = read_properties(m, msg);
        if (r >= 0) {
                r = sd_bus_message_enter_container(msg, SD_BUS_TYPE_ARRAY, "s");
                /* invalidated without values: read them */
                if (r >= 0 && sd_bus_message_at_end(msg, false) == 0)
                        refresh_properties(m);
        }
        if (r < 0)
                tray_log("cannot read imd's PropertiesChanged: %s", strerror(-r));
        tray_schedule_update(m->tray);
        return 0;
}

static int on_conversations_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        struct model *m = userdata;
        int r;

        if (!from_imd(m, msg))
                return 0;
        r = read_conversations(m, msg, false);
        if (r < 0) {
                /* the model may hold half of it now: read the whole list again */
                tray_log("cannot read ConversationsChanged: %s", strerror(-r));
                refresh_conversations(m);
        }
        tray_schedule_update(m->tray);
        return 0;
}

int model_init(struct model *m, struct tray *tray) {
        int r;

        *m = (struct model) { .tray = tray };
        r = sd_bus_add_match(tray->bus, &m->match_slots[0],
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                             "arg0='" IM_SERVICE "'",
                             on_name_owner_changed, m);
        if (r >= 0)
                r = sd_bus_match_signal(tray->bus, &m->match_slots[1], IM_SERVICE, IM_PATH,
                                        "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                        on_properties_changed, m);
        if (r >= 0)
                r = sd_bus_match_signal(tray->bus, &m->match_slots[2], IM_SERVICE, IM_PATH,
                                        IM_INTERFACE, "ConversationsChanged", on_conversations_changed, m);
        if (r < 0)
                return r;
        model_restart(m, false);
        /* The matches are in place: an imd that appears from now on is seen by
         * NameOwnerChanged, one that is already there is named in the answer. */
        return sd_bus_call_method_async(tray->bus, &m->owner_slot, "org.freedesktop.DBus",
                                        "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner",
                                        on_name_owner, m, "s", IM_SERVICE);
}

void model_done(struct model *m) {
        for (size_t i = 0; i < ELEMENTSOF(m->match_slots); i++)
                m->match_slots[i] = sd_bus_slot_unref(m->match_slots[i]);
        m->get_all_slot = sd_bus_slot_unref(m->get_all_slot);
        m->get_conversations_slot = sd_bus_slot_unref(m->get_conversations_slot);
        m->owner_slot = sd_bus_slot_unref(m->owner_slot);
        conversations_clear(m);
        free(m->imd_unique);
        free(m->account);
        free(m->net_state);
        m->imd_unique = m->account = m->net_state = NULL;
}

/* Called once the signals of a burst are handled: if the conversations do not
 * add up to UnreadTotal the tray missed a change (a conversation imd dropped,
 * a signal lost while it restarted): read them again. Once per change of
 * UnreadTotal, so that an imd that counts differently cannot start a loop. */
void model_check_unread(struct model *m) {
        uint64_t sum = 0;

        if (!m->unread_total_changed || m->get_conversations_slot || !m->running)
                return;
        m->unread_total_changed = false;
        for (size_t i = 0; i < m->n_conversations; i++)
                sum += m->conversations[i].unread;
        if (sum != m->unread_total)
                refresh_conversations(m);
}

struct mark_read_call {
        struct model *model;
        char *id;
        bool mark_all;          /* one of "Mark all read"'s */
};

static void mark_all_step(struct model *m);

static int on_mark_read(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        struct mark_read_call *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e) {
                tray_log("cannot mark %s read: %s", c->id, e->message ? e->message : e->name);
                /* the tray's list was out of date (the conversation is gone) */
                if (sd_bus_error_has_name(e, "org.example.IM.Error.NotFound"))
                        refresh_conversations(c->model);
        }
        if (c->mark_all) {
                c->model->mark_all_in_flight--;
                mark_all_step(c->model);
        }
        return 0;
}

static void mark_read_call_free(void *userdata) {
        struct mark_read_call *c = userdata;

        free(c->id);
        free(c);
}

/* Fire and forget: the slot is floating, imd's signals report the result. */
static int send_mark_read(struct model *m, const char *id, bool mark_all) {
        _cleanup_message_ sd_bus_message *call = NULL;
        sd_bus_slot *slot = NULL;
        struct mark_read_call *c;
        int r;

        if (!m->running)
                return -ENOTCONN;
        r = sd_bus_message_new_method_call(m->tray->bus, &call, IM_SERVICE, IM_PATH, IM_INTERFACE,
                                           "MarkRead");
        if (r >= 0)
                r = sd_bus_message_set_auto_start(call, false);
        if (r >= 0)
                r = sd_bus_message_append(call, "s", id);
        if (r < 0)
                return r;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->model = m;
        c->mark_all = mark_all;
        c->id = strdup(id);
        if (!c->id) {
                free(c);
                return -ENOMEM;
        }
        r = sd_bus_call_async(m->tray->bus, &slot, call, on_mark_read, c, 0);
        if (r < 0) {
                mark_read_call_free(c);
                return r;
        }
        sd_bus_slot_set_destroy_callback(slot, mark_read_call_free);
        /* the bus takes a reference of its own: drop ours */
        sd_bus_slot_set_floating(slot, 1);
        sd_bus_slot_unref(slot);
        return 0;
}

int model_mark_read(struct model *m, const char *id) {
        return send_mark_read(m, id, false);
}

/* Sends the next MarkRead calls of "Mark all read", up to MARK_ALL_PARALLEL
 * in flight; it ends when every conversation that had unread messages was
 * asked for once in this round. */
static void mark_all_step(struct model *m) {
        for (size_t i = 0; m->mark_all_wanted && i < m->n_conversations; i++) {
                struct conversation *c = &m->conversations[i];

                if (m->mark_all_in_flight >= MARK_ALL_PARALLEL)
                        return;
                if (c->unread == 0 || c->mark_round == m->mark_round)
                        continue;
                c->mark_round = m->mark_round;
                if (send_mark_read(m, c->id, true) < 0) {
                        tray_log("cannot mark %s read", c->id);
                        continue;
                }
                m->mark_all_in_flight++;
        }
        if (m->mark_all_in_flight == 0)
                m->mark_all_wanted = false;
}

/* imd has no "mark everything read" call: one MarkRead per conversation with
 * unread messages, a few at a time. */
int model_mark_all_read(struct model *m) {
        if (!m->running)
                return -ENOTCONN;
        m->mark_round++;
        m->mark_all_wanted = true;
        mark_all_step(m);
        return 0;
}
