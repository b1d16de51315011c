/* SPDX-License-Identifier: MIT */
/*
 * im-tray — a StatusNotifierItem (tray icon) for imd, public D-Bus API only.
 *
 * Three parts share one context: the model (what imd says: properties and
 * conversations), the item (the org.kde.StatusNotifierItem object and its
 * registration with the watcher) and the menu (com.canonical.dbusmenu). The
 * model never talks to the item or the menu directly: it calls
 * tray_schedule_update(), and once per loop iteration tray_update() lets the
 * item and the menu compare what they show with what the model now says and
 * emit their change signals. Bursts (GetConversations replies, several
 * PropertiesChanged) thus cost one round of signals.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define IM_SERVICE   "org.example.IM"
#define IM_PATH      "/org/example/IM"
#define IM_INTERFACE "org.example.IM"

#define SNI_WATCHER_SERVICE   "org.kde.StatusNotifierWatcher"
#define SNI_WATCHER_PATH      "/StatusNotifierWatcher"
#define SNI_WATCHER_INTERFACE "org.kde.StatusNotifierWatcher"
#define SNI_INTERFACE         "org.kde.StatusNotifierItem"
/* where watchers look when they are given a bus name only */
#define SNI_PATH              "/StatusNotifierItem"

#define MENU_INTERFACE "com.canonical.dbusmenu"
#define MENU_PATH      "/MenuBar"

/* Local cleanup helpers: sd-bus's public header does not export _cleanup_. */
static inline void tray_bus_message_unrefp(sd_bus_message **m) {
        sd_bus_message_unref(*m);
}
static inline void tray_bus_error_freep(sd_bus_error *e) {
        sd_bus_error_free(e);
}
static inline void tray_freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_message_ __attribute__((cleanup(tray_bus_message_unrefp)))
#define _cleanup_error_   __attribute__((cleanup(tray_bus_error_freep)))
#define _cleanup_free_    __attribute__((cleanup(tray_freep)))

static inline void *tray_take_ptr(void *pp) {
        void **p = pp, *v = *p;
        *p = NULL;
        return v;
}
#define TAKE_PTR(p) tray_take_ptr(&(p))

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

/* Whether the bus itself sent @m. sd-bus cannot check a match's sender=
 * locally, and any peer may send a signal straight to our unique name. */
static inline bool sent_by_bus(sd_bus_message *m) {
        const char *sender = sd_bus_message_get_sender(m);

        return sender && strcmp(sender, "org.freedesktop.DBus") == 0;
}

/* The conversations the model keeps at most (the menu lists 10): whatever
 * imd sends, the tray's memory stays bounded (conversations.c). */
#define MODEL_MAX_CONVERSATIONS 4096U

/* ---- model.c: the state of imd, as read over D-Bus ---- */

struct conversation {
        char *id;               /* bare JID */
        char *name;             /* display name, "" when unknown */
        uint32_t unread;
        int64_t time;           /* Unix ms of the last message */
        uint32_t mark_round;    /* the "Mark all read" that last asked for it */
};

/* "Mark all read" sends this many MarkRead calls at a time: a bus caps the
 * replies a connection may wait for (dbus-daemon's max_replies_per_connection). */
#define MARK_ALL_PARALLEL 16U

struct model {
        struct tray *tray;
        /* imd's unique name, NULL when nobody owns org.example.IM (or not known
         * yet): its signals are the only ones the model takes */
        char *imd_unique;
        bool running;           /* imd answered, or signalled */
        bool ready;
        char *account;
        char *net_state;        /* "connected", "connecting", "disconnected" */
        uint32_t unread_total;
        bool unread_total_changed;      /* since model_check_unread() */
        struct conversation *conversations;     /* most recent first */
        size_t n_conversations;
        /* in-flight reads; dropped when imd changes hands so that a late reply
         * of the old instance cannot overwrite the new one's state */
        sd_bus_slot *get_all_slot;
        sd_bus_slot *get_conversations_slot;
        sd_bus_slot *owner_slot;        /* GetNameOwner at start */
        sd_bus_slot *match_slots[4];
        /* "Mark all read" in progress: its round, and its calls in flight */
        uint32_t mark_round;
        unsigned mark_all_in_flight;
        bool mark_all_wanted;
};

int model_init(struct model *m, struct tray *tray);
void model_done(struct model *m);
const struct conversation *model_find(const struct model *m, const char *id);
void model_check_unread(struct model *m);
int model_mark_read(struct model *m, const char *id);
int model_mark_all_read(struct model *m);

/* ---- conversations.c: the model's list of conversations ---- */

/* A conversation dictionary may grow keys; these are the ones the tray shows. */
struct conversation_fields {
        const char *id;
        const char *name;
        uint32_t unread;
        int64_t time;
};

void conversations_clear(struct model *m);
struct conversation *conversations_find(const struct model *m, const char *id);
/* Adds or replaces one conversation (bounded: see conversations.c). */
int conversations_merge(struct model *m, const struct conversation_fields *f);
/* most recent first */
void conversations_sort(struct model *m);

/* ---- text.c: what the item and the menu say about the model ---- */

enum tray_status {
        TRAY_STATUS_PASSIVE,
        TRAY_STATUS_ACTIVE,
        TRAY_STATUS_NEEDS_ATTENTION,
};

enum tray_status text_status(const struct model *m);
const char *text_status_name(enum tray_status s);
const char *text_icon_name(const struct model *m);
char *text_unread_summary(const struct model *m);
char *text_connection(const struct model *m);
char *text_conversation_label(const struct conversation *c);

/* ---- item.c: the StatusNotifierItem ---- */

struct item {
        struct tray *tray;
        sd_bus_slot *vtable_slot;
        sd_bus_slot *watcher_match_slot;
        sd_bus_slot *register_slot;
        bool waiting_logged;    /* "no watcher yet" said once, not on every try */
        /* what was last announced, to emit only real changes */
        enum tray_status status;
        char *icon_name;
        char *tooltip_title;
        char *tooltip_text;
};

int item_init(struct item *item, struct tray *tray);
void item_done(struct item *item);
int item_register(struct item *item);
void item_update(struct item *item);

/* ---- menu.c: com.canonical.dbusmenu ---- */

struct menu_entry;

struct menu {
        struct tray *tray;
        sd_bus_slot *vtable_slot;
        uint32_t revision;
        struct menu_entry *entries;     /* the root's children, in order */
        size_t n_entries;
        /* the id of the next conversation to be listed; one that stays listed
         * keeps its id (looked up in entries) */
        int32_t next_id;
};

int menu_init(struct menu *menu, struct tray *tray);
void menu_done(struct menu *menu);
void menu_update(struct menu *menu);

/* ---- main.c ---- */

struct tray {
        sd_event *event;
        sd_bus *bus;
        char *bus_name;         /* org.kde.StatusNotifierItem-PID-1 */
        sd_event_source *update_source;
        struct model model;
        struct item item;
        struct menu menu;
};

void tray_schedule_update(struct tray *t);
void tray_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
