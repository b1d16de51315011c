/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * No missed events: the signals imd sent lately, for GetEventsSince.
 *
 * An event's number is the D-Bus serial (cookie) of its signal message, which
 * every receiver sees on the live signal, so a frontend knows the number of
 * the last event it handled without any extra argument in the signals. The
 * log keeps references to the sent messages themselves: recording an event
 * copies nothing, and GetEventsSince copies their bodies into its reply.
 *
 * Bounded by age, count and an estimate of the memory held (sd-bus does not
 * tell a message's size, so senders pass a weight: the bytes of its
 * arguments). Events older than the bound are dropped; a caller asking for
 * what was dropped is told so (-ESTALE) rather than given a silent gap.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#define EVENT_LOG_MAX_AGE_USEC  (3600ULL * 1000000ULL)  /* one hour */
#define EVENT_LOG_MAX_BYTES     (512U * 1024U)
#define EVENT_LOG_MAX_EVENTS    16384U
/* What sd-bus holds per message besides its arguments (struct, header). */
#define EVENT_LOG_MESSAGE_OVERHEAD 768U

typedef struct EventLog EventLog;

EventLog *event_log_new(void);
/* Drops every kept message (they hold references on their bus: free the log
 * before the bus). */
void event_log_free(EventLog *log);

/* Sends SIG on BUS, and if KEEP, keeps it as an event of WEIGHT bytes of
 * arguments. Consumes the caller's reference to SIG either way. */
int event_log_send(EventLog *log, sd_bus *bus, sd_bus_message *sig, bool keep, size_t weight);

/* Drops every kept event, as if they had aged out: callers asking for any of
 * them get -ESTALE (another account logged in: its events are not theirs). */
void event_log_forget(EventLog *log);

/* The number of the newest signal sent through the log, 0 before the first. */
uint64_t event_log_last(const EventLog *log);

/* Appends a(tsv) to REPLY: every kept event numbered after AFTER, oldest
 * first, each with its signal's arguments as one struct in the variant.
 * -ESTALE if events after AFTER were dropped already (AFTER 0 never is). */
int event_log_append_since(EventLog *log, sd_bus_message *reply, uint64_t after);

/* The oldest number that may still be asked for without -ESTALE. */
uint64_t event_log_dropped_upto(const EventLog *log);
