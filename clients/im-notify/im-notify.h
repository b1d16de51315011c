/* SPDX-License-Identifier: MIT */
/*
 * im-notify — desktop notifications for imd (org.example.IM), through imd's
 * public D-Bus API and the freedesktop notification spec only.
 *
 * One notification per conversation, replaced as messages arrive, closed
 * when the conversation is read from any frontend. The modules:
 *   main.c      options, event loop, exit
 *   imd.c       imd's name, signals and the catch-up (GetEventsSince)
 *   actions.c   MarkRead / SendText for the notifications' actions
 *   conv.c      what each conversation's notification shows, and when
 *   notifier.c  org.freedesktop.Notifications (capabilities, Notify, signals)
 *   state.c     the persisted position ($XDG_STATE_HOME/im-notify/state)
 *   dict.c      imd's a{sv} dictionaries into small structs
 *   label.c     a message's body text
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define IM_SERVICE   "org.example.IM"
#define IM_PATH      "/org/example/IM"
#define IM_INTERFACE "org.example.IM"
#define IM_ERROR_NOT_FOUND "org.example.IM.Error.NotFound"

#define NOTIFY_SERVICE   "org.freedesktop.Notifications"
#define NOTIFY_PATH      "/org/freedesktop/Notifications"
#define NOTIFY_INTERFACE "org.freedesktop.Notifications"

/* A notification body longer than this is cut (at a character boundary). */
#define LABEL_MAX_BYTES 400U
/* Unread messages remembered per conversation, so that a revoked one can
 * give way to the one before it. */
#define RECENT_MAX 8U
/* Live signals held while the catch-up runs; more means imd floods us: the
 * rest of them is read from imd's event log once the catch-up is done. */
#define QUEUE_MAX 4096U
/* How long progress may stay unsaved: a crash re-shows at most this much. */
#define SAVE_DELAY_USEC (500ULL * 1000ULL)

/* Local cleanup helpers: sd-bus's public header does not export _cleanup_. */
static inline void imn_bus_message_unrefp(sd_bus_message **m) {
        sd_bus_message_unref(*m);
}
static inline void imn_bus_error_freep(sd_bus_error *e) {
        sd_bus_error_free(e);
}
static inline void imn_freep(void *p) {
        g_free(*(void **) p);
}
#define _cleanup_message_ __attribute__((cleanup(imn_bus_message_unrefp)))
#define _cleanup_error_   __attribute__((cleanup(imn_bus_error_freep)))
#define _cleanup_free_    __attribute__((cleanup(imn_freep)))

static inline void *imn_take_ptr(void *pp) {
        void **p = pp, *v = *p;
        *p = NULL;
        return v;
}
#define TAKE_PTR(p) imn_take_ptr(&(p))

void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Whether the bus itself sent @m. sd-bus cannot check a match's sender=
 * locally, and any peer may send a signal straight to our unique name: a
 * NameOwnerChanged from anyone else would let it pose as imd or as the
 * notification server. */
static inline bool sent_by_bus(sd_bus_message *m) {
        const char *sender = sd_bus_message_get_sender(m);

        return sender && strcmp(sender, "org.freedesktop.DBus") == 0;
}

/* dict.c: the fields of imd's dictionaries im-notify uses (others are ignored) */
typedef struct {
        char *id;
        char *conversation;
        char *direction;
        char *type;
        char *text;
        char *name;
        char *description;
        uint32_t duration_ms;
        bool has_duration;
        bool revoked;
} ImMessage;

typedef struct {
        char *id;
        char *name;
        uint32_t unread;
        ImMessage last;                 /* its newest message; last.id NULL if none */
} ImConversation;

/* Each reads one a{sv}: 1 on success, 0 at the end of an enclosing array. */
int im_message_read(sd_bus_message *m, ImMessage *ret);
int im_conversation_read(sd_bus_message *m, ImConversation *ret);
void im_message_clear(ImMessage *msg);
void im_conversation_clear(ImConversation *conv);

/* label.c */
/* The body for a message, or NULL when it shows nothing (revoked, empty). */
char *label_for_message(const ImMessage *msg);
/* At most LABEL_MAX_BYTES of valid UTF-8 @text, "…" marking a cut. */
char *label_truncate(const char *text);

/* notifier.c */
typedef struct Notifier Notifier;

typedef struct {
        void (*action_invoked)(uint32_t id, const char *key, void *userdata);
        void (*replied)(uint32_t id, const char *text, void *userdata);
        void (*closed)(uint32_t id, void *userdata);
        /* The server is known for the first time, or another one replaced
         * it (@key NULL: none runs). Ids of any other server mean nothing. */
        void (*server)(const char *key, void *userdata);
        /* After notifier_wait_ready(): the server's capabilities are known
         * (@ok: notifier_show() works), or no server runs nor could be started. */
        void (*ready)(bool ok, void *userdata);
} NotifierCallbacks;

int notifier_new(sd_bus *bus, const NotifierCallbacks *cb, void *userdata, Notifier **ret);
Notifier *notifier_free(Notifier *n);
/* the server's identity (bus id and unique name), NULL when unknown */
const char *notifier_server_key(const Notifier *n);
/* Whether the server's capabilities are known, which notifier_show() needs. */
bool notifier_ready(const Notifier *n);
/* Asks for them (starting a server by D-Bus activation if none runs);
 * NotifierCallbacks.ready says when they are known. */
void notifier_wait_ready(Notifier *n);
/* Sends Notify (-EAGAIN unless notifier_ready()); @callback gets the reply,
 * notifier_reply_id() reads it. */
int notifier_show(Notifier *n, uint32_t replaces_id, const char *summary, const char *body,
                  sd_bus_message_handler_t callback, void *userdata, sd_bus_slot **ret_slot);
/* the id in a Notify reply, 0 (and a warning) for an error */
uint32_t notifier_reply_id(sd_bus_message *reply);
void notifier_close(Notifier *n, uint32_t id);

/* the app: one of it, owning everything */
typedef enum {
        IMD_ABSENT,     /* nobody owns org.example.IM */
        IMD_SYNCING,    /* reading conversations and missed events; live signals wait */
        IMD_LIVE,       /* handling signals as they come */
} ImdPhase;

typedef struct Conv Conv;

typedef struct {
        sd_event *event;
        sd_bus *bus;
        Notifier *notifier;
        GHashTable *convs;              /* conversation id -> Conv* */

        char *imd_unique;               /* imd's unique name, NULL when absent */
        ImdPhase phase;
        sd_bus_slot *sync_slot;         /* the catch-up call in flight */
        GPtrArray *queue;               /* live signals (sd_bus_message*) held while syncing */
        bool from_now;                  /* this catch-up started with LastEvent (first run) */
        bool overflowed;                /* the queue overflowed: this round holds nothing more */
        bool refetching;                /* this round reads what an overflow dropped */
        bool resynced;                  /* ... and had to read everything again */
        bool replaying;                 /* handling GetEventsSince's events */

        /* the persisted position: events of owner_key up to last are handled */
        char *state_path;
        char *owner_key;                /* bus id + imd's unique name, NULL: no state */
        uint64_t last;
        char *saved_server;             /* notification server the saved ids belong to */
        bool server_known;
        sd_event_source *save_timer;
        bool dirty;
} App;

/* conv.c */
struct Conv {
        App *app;
        char *id;
        char *name;                     /* display name, "" unknown */
        uint32_t unread;
        GQueue recent;                  /* Recent*: unread messages shown, oldest first */
        uint32_t notification_id;       /* 0: none open */
        sd_bus_slot *notify_slot;       /* Notify in flight */
        bool held;                      /* Notify waits for the server's capabilities */
        bool show_again;                /* content changed while Notify was in flight */
        bool close_after;               /* read while Notify was in flight */
        bool replay_pending;            /* show once the catch-up is done */
        /* The notification was opened by the previous run (the state file)
         * and this run has neither shown nor closed it yet. Servers send its
         * actions to the program that showed it only: conv_take_over(). */
        bool inherited;
        bool listed;                    /* ... and imd listed its conversation since */
        bool taking_over;               /* ... and GetMessages is asked for what to show */
        char *last_in_id;               /* the conversation's newest message, if incoming */
        char *last_in_label;
        char *shown_id;                 /* message the notification shows (or showed, if dismissed) */
        char *shown_summary;
        char *shown_body;
};

Conv *conv_get(App *app, const char *id, bool create);
void conv_free(Conv *c);
void conv_on_message(App *app, const ImMessage *msg);
void conv_on_revoked(App *app, const char *conversation, const char *id);
void conv_on_edited(App *app, const char *conversation, const char *id, const char *text);
void conv_on_conversation(App *app, const ImConversation *ic);
/* after GetConversations: closes what was read or deleted meanwhile */
void conv_sync_done(App *app, GHashTable *present);
/* after the catch-up: shows each conversation's newest unread message once */
void conv_replay_flush(App *app);
void conv_forget_notifications(App *app);
/* once caught up: shows the inherited notifications again, in place, so that
 * their actions come to this run; or closes them when nothing is left to show */
void conv_take_over(App *app);
extern const NotifierCallbacks conv_notifier_callbacks;

/* imd.c */
int imd_watch(App *app);
void imd_unwatch(App *app);
/* an empty App.queue */
GPtrArray *imd_queue_new(void);
/* bus id + unique name: unique names repeat across bus daemons */
char *owner_key_for(sd_bus *bus, const char *unique);

/* actions.c */
void imd_mark_read(App *app, const char *conversation);
void imd_send_reply(App *app, const char *conversation, const char *text);
/* GetMessages: @done gets the conversation's newest incoming message that
 * shows something (label_for_message()), among the last few; NULL if none,
 * or if the call failed (@error negative then). */
typedef void (*ImdNewestIncomingFunc)(App *app, const char *conversation, const ImMessage *msg, int error);
void imd_newest_incoming(App *app, const char *conversation, ImdNewestIncomingFunc done);

/* state.c */
char *state_default_path(void);
/* Reads @app->state_path into owner_key, last, saved_server and the
 * conversations' notification ids; a missing file is no state. */
int state_load(App *app);
int state_save(App *app);
/* progress to persist: saved within SAVE_DELAY_USEC */
void state_mark_dirty(App *app);
