/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <glib.h>

#include "bus-events.h"

typedef struct Event {
        uint64_t number;
        int64_t sent_usec;      /* monotonic */
        size_t weight;
        sd_bus_message *message;
} Event;

struct EventLog {
        GQueue events;          /* of Event*, oldest first */
        size_t bytes;           /* sum of the kept events' weights */
        uint64_t last;          /* newest number sent, kept or not */
        uint64_t dropped_upto;  /* newest number dropped from the log */
};

EventLog *event_log_new(void) {
        EventLog *log = g_new0(EventLog, 1);
        g_queue_init(&log->events);
        return log;
}

static void event_free(Event *e) {
        sd_bus_message_unref(e->message);
        g_free(e);
}

static void drop_oldest(EventLog *log) {
        Event *e = g_queue_pop_head(&log->events);

        log->bytes -= e->weight;
        log->dropped_upto = e->number;
        event_free(e);
}

/* Drops what is too old, and the oldest while over a bound; ROOM is what an
 * event about to be added needs. */
static void prune(EventLog *log, size_t room) {
        int64_t now = g_get_monotonic_time();

        while (!g_queue_is_empty(&log->events)) {
                const Event *oldest = g_queue_peek_head(&log->events);

                if ((uint64_t) (now - oldest->sent_usec) <= EVENT_LOG_MAX_AGE_USEC &&
                    log->bytes + room <= EVENT_LOG_MAX_BYTES &&
                    g_queue_get_length(&log->events) + (room ? 1 : 0) <= EVENT_LOG_MAX_EVENTS)
                        break;
                drop_oldest(log);
        }
}

void event_log_free(EventLog *log) {
        if (!log)
                return;
        g_queue_clear_full(&log->events, (GDestroyNotify) event_free);
        g_free(log);
}

int event_log_send(EventLog *log, sd_bus *bus, sd_bus_message *sig, bool keep, size_t weight) {
        uint64_t cookie = 0;
        int r;

        r = sd_bus_send(bus, sig, &cookie);
        if (r < 0 || !keep) {
                sd_bus_message_unref(sig);
                if (r >= 0)
                        log->last = cookie;
                return r;
        }
        log->last = cookie;
        weight += EVENT_LOG_MESSAGE_OVERHEAD;
        if (weight > EVENT_LOG_MAX_BYTES) {
                /* Too big to keep at all: a gap, said as such to whoever asks. */
                prune(log, 0);
                while (!g_queue_is_empty(&log->events))
                        drop_oldest(log);
                log->dropped_upto = cookie;
                sd_bus_message_unref(sig);
                return r;
        }
        prune(log, weight);
        Event *e = g_new(Event, 1);
        *e = (Event) {
                .number = cookie,
                .sent_usec = g_get_monotonic_time(),
                .weight = weight,
                .message = sig,
        };
        g_queue_push_tail(&log->events, e);
        log->bytes += weight;
        return r;
}

void event_log_forget(EventLog *log) {
        while (!g_queue_is_empty(&log->events))
                drop_oldest(log);
        log->dropped_upto = log->last;
}

uint64_t event_log_last(const EventLog *log) {
        return log->last;
}

uint64_t event_log_dropped_upto(const EventLog *log) {
        return log->dropped_upto;
}

/* One (tsv) entry: the number, the member, and the arguments as "(...)". */
static int append_event(sd_bus_message *reply, const Event *e) {
        const char *member = sd_bus_message_get_member(e->message);
        const char *signature = sd_bus_message_get_signature(e->message, true);
        g_autofree char *wrapped = NULL;
        int r;

        wrapped = g_strdup_printf("(%s)", signature);
        r = sd_bus_message_open_container(reply, 'r', "tsv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "ts", e->number, member);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'v', wrapped);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'r', signature);
        if (r < 0)
                return r;
        /* The kept message was sent, so it is sealed and can be read back. */
        r = sd_bus_message_rewind(e->message, true);
        if (r < 0)
                return r;
        r = sd_bus_message_copy(reply, e->message, true);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

int event_log_append_since(EventLog *log, sd_bus_message *reply, uint64_t after) {
        int r;

        prune(log, 0);
        if (after != 0 && after < log->dropped_upto)
                return -ESTALE;
        r = sd_bus_message_open_container(reply, 'a', "(tsv)");
        if (r < 0)
                return r;
        /* Callers usually want the last few: find the first from the end. */
        GList *first = log->events.tail;
        while (first && first->prev && ((const Event *) first->prev->data)->number > after)
                first = first->prev;
        if (first && ((const Event *) first->data)->number <= after)
                first = NULL;
        for (GList *l = first; l; l = l->next) {
                const Event *e = l->data;

                /* A signal without arguments cannot be a struct; imd keeps none. */
                if (!*sd_bus_message_get_signature(e->message, true))
                        continue;
                r = append_event(reply, e);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}
