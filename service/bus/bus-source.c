/* SPDX-License-Identifier: MIT */

#include <errno.h>
#include <poll.h>
#include <time.h>

#include "bus-source.h"

/* Messages handled per dispatch before other sources get a turn. */
#define MAX_PROCESS_PER_DISPATCH 64

typedef struct BusSource {
        GSource source;
        sd_bus *bus;
        gpointer fd_tag;
        GIOCondition events;    /* what the fd is polled for now */
        bool more;              /* sd_bus_process() had more work when we stopped */
        bool disconnected;
        int error;              /* sd_bus_process()'s, when it failed */
} BusSource;

static GIOCondition poll_to_gio(int events) {
        GIOCondition c = 0;
        if (events & POLLIN)
                c |= G_IO_IN;
        if (events & POLLOUT)
                c |= G_IO_OUT;
        return c | G_IO_HUP | G_IO_ERR;
}

static gboolean bus_source_prepare(GSource *source, gint *timeout) {
        BusSource *s = (BusSource *) source;
        uint64_t usec = UINT64_MAX;
        int events;

        *timeout = -1;
        if (s->more || s->disconnected)
                return TRUE;
        events = sd_bus_get_events(s->bus);
        if (events < 0)
                return TRUE;    /* closed: let dispatch notice */
        /* Only on change: modifying the fd wakes the main context, and doing it on
         * every prepare would spin the loop. */
        if (poll_to_gio(events) != s->events) {
                s->events = poll_to_gio(events);
                g_source_modify_unix_fd(source, s->fd_tag, s->events);
        }

        if (sd_bus_get_timeout(s->bus, &usec) >= 0 && usec != UINT64_MAX) {
                struct timespec ts;
                uint64_t now;

                if (usec == 0)
                        return TRUE;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                now = (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
                if (usec <= now)
                        return TRUE;
                *timeout = (gint) MIN((usec - now + 999) / 1000, (uint64_t) G_MAXINT);
        }
        return FALSE;
}

static gboolean bus_source_check(GSource *source) {
        BusSource *s = (BusSource *) source;
        return s->more || g_source_query_unix_fd(source, s->fd_tag) != 0;
}

/* What sd_bus_process() says when the other end closed the connection
 * (the bus went away, or dropped us), as opposed to a failure of ours. */
static bool closed_by_peer(int r) {
        return r >= 0 || r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN || r == -ECONNABORTED ||
               r == -ESHUTDOWN;
}

static gboolean bus_source_dispatch(GSource *source, GSourceFunc callback, gpointer userdata) {
        BusSource *s = (BusSource *) source;
        int r = 0;

        s->more = false;
        for (unsigned i = 0; i < MAX_PROCESS_PER_DISPATCH; i++) {
                r = sd_bus_process(s->bus, NULL);
                if (r <= 0)
                        break;
        }
        s->more = r > 0;

        if (r < 0 || !sd_bus_is_open(s->bus)) {
                if (!s->disconnected) {
                        s->disconnected = true;
                        s->error = closed_by_peer(r) ? 0 : r;
                        if (callback)
                                callback(userdata);
                }
                return G_SOURCE_REMOVE;
        }
        return G_SOURCE_CONTINUE;
}

static void bus_source_finalize(GSource *source) {
        BusSource *s = (BusSource *) source;
        sd_bus_unref(s->bus);
}

static GSourceFuncs bus_source_funcs = {
        .prepare = bus_source_prepare,
        .check = bus_source_check,
        .dispatch = bus_source_dispatch,
        .finalize = bus_source_finalize,
};

int bus_source_error(GSource *source) {
        return ((BusSource *) source)->error;
}

GSource *bus_source_new(sd_bus *bus, GSourceFunc on_disconnect, gpointer userdata) {
        BusSource *s = (BusSource *) g_source_new(&bus_source_funcs, sizeof(BusSource));

        s->bus = sd_bus_ref(bus);
        s->events = G_IO_IN | G_IO_HUP | G_IO_ERR;
        s->fd_tag = g_source_add_unix_fd(&s->source, sd_bus_get_fd(bus), s->events);
        g_source_set_callback(&s->source, on_disconnect, userdata, NULL);
        g_source_set_name(&s->source, "sd-bus");
        return &s->source;
}
