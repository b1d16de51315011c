/* SPDX-License-Identifier: MIT */
#pragma once

#include <glib.h>
#include <systemd/sd-bus.h>

#include "store.h"

/* The message and conversation dictionaries of dbus/org.example.IM.xml. */
int bus_append_message(sd_bus_message *m, const StoreMessage *msg);                  /* a{sv} */
int bus_append_conversation(sd_bus_message *m, const StoreConversation *conv);       /* a{sv} */
int bus_append_conversations(sd_bus_message *m, GPtrArray *convs);                   /* aa{sv} */
int bus_append_messages(sd_bus_message *m, GPtrArray *msgs);                         /* aa{sv} */
/* What broadcast signals carry on the system bus, where anyone may listen:
 * which message or conversation changed, never what it says (a member of the
 * group fetches that with GetMessages / GetConversations). A message: id,
 * conversation, direction, time, type; a conversation: id, unread, time. */
int bus_append_message_ref(sd_bus_message *m, const StoreMessage *msg);              /* a{sv} */
int bus_append_conversation_refs(sd_bus_message *m, GPtrArray *convs);              /* aa{sv} */
/* The reactions JSON of StoreMessage (NULL: none) as a{sas}, sender -> emoji. */
int bus_append_reactions(sd_bus_message *m, const char *reactions);

/* Roughly the bytes the dictionaries above take in a message, for the event
 * log's memory bound (bus-events.h): the strings plus a little per field. */
size_t bus_message_weight(const StoreMessage *msg);
size_t bus_conversations_weight(GPtrArray *convs);
