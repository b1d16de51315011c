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
/* The reactions JSON of StoreMessage (NULL: none) as a{sas}, sender -> emoji. */
int bus_append_reactions(sd_bus_message *m, const char *reactions);

/* Roughly the bytes the dictionaries above take in a message, for the event
 * log's memory bound (bus-events.h): the strings plus a little per field. */
size_t bus_message_weight(const StoreMessage *msg);
size_t bus_conversations_weight(GPtrArray *convs);
