/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <glib.h>
#include <systemd/sd-bus.h>

/* A GSource that runs an sd-bus connection inside the GLib main loop, in the
 * manner of systemd's man/glib-event-glue.c: poll the bus fd for the events
 * sd-bus wants, honour its timeout, and process until it has nothing to do.
 * on_disconnect runs once when the connection is gone. */
GSource *bus_source_new(sd_bus *bus, GSourceFunc on_disconnect, gpointer userdata);
/* Once on_disconnect ran: sd_bus_process()'s negative errno if sd-bus
 * failed on our side (out of file descriptors, say: it could not take a
 * message's), 0 if the connection was closed (by the bus, or the bus
 * went away). */
int bus_source_error(GSource *source);
