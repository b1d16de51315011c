/* SPDX-License-Identifier: MIT */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

#include "store.h"

/*
 * Byte bounds. dbus-daemon disconnects a connection that sends a message over
 * its max_message_size, 32 MiB unless its configuration raises it (the system
 * bus, a session bus from a minimal config; sd-bus itself refuses 128 MiB),
 * and imd exits when it loses the bus. So a list in one reply or signal is
 * cut at BUS_LIST_MAX_BYTES, a quarter of that: room for the one entry that
 * is always sent however large and for the slack of the weights below, and a
 * page a frontend (a Python one too) decodes in a fraction of a second, where
 * 500 custom messages of 3 x 64 KiB would be 128 MiB.
 */
#define BUS_LIST_MAX_BYTES  (8U * 1024U * 1024U)
/* A message whose dictionary would weigh more goes out as its reference
 * (bus_append_message_ref()), so that with a list's worth beside it a D-Bus
 * message stays under 32 MiB. imd stores none that large: a received stanza
 * is at most 2 MiB, and what a frontend sends at most a few 64 KiB fields. */
#define BUS_ENTRY_MAX_BYTES (16U * 1024U * 1024U)

/* The message and conversation dictionaries of dbus/org.example.IM.xml. */
int bus_append_message(sd_bus_message *m, const StoreMessage *msg);                  /* a{sv} */
/* aa{sv}: the lists, from the first (START) on, as many as fit in
 * BUS_LIST_MAX_BYTES and always one. They return how many they took (the
 * caller tells a cut reply from a whole one, or sends the rest in the next
 * signal), or negative errno. Every conversation whose entry fits is listed;
 * the last message only in the most recent ones, as far as it fits. */
int bus_append_messages(sd_bus_message *m, GPtrArray *msgs);
int bus_append_conversations(sd_bus_message *m, GPtrArray *convs, guint start);
/* What broadcast signals carry on the system bus, where anyone may listen:
 * which message or conversation changed, never what it says (a member of the
 * group fetches that with GetMessages / GetConversations). A message: id,
 * conversation, direction, time, type; a conversation: id, unread, time. */
int bus_append_message_ref(sd_bus_message *m, const StoreMessage *msg);              /* a{sv} */
int bus_append_conversation_refs(sd_bus_message *m, GPtrArray *convs, guint start); /* aa{sv}, as above */
/* The reactions JSON of StoreMessage (NULL: none) as a{sas}, sender -> emoji. */
int bus_append_reactions(sd_bus_message *m, const char *reactions);

/* At least the bytes the dictionaries above take in a message (headers
 * aside): for the bounds above, and the event log's memory bound
 * (bus-events.h). */
size_t bus_message_weight(const StoreMessage *msg);
size_t bus_conversations_weight(GPtrArray *convs, guint start, guint n);
